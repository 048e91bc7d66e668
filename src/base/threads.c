#include "base/threads.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>

void pc_set_threads(int n)
{
    const char *env = getenv("OMP_NUM_THREADS");
    if (n <= 0) n = env && atoi(env) > 0 ? atoi(env) : omp_get_num_procs();
    omp_set_max_active_levels(1);
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int pc_threads(void)
{
    return omp_get_max_threads();
}
