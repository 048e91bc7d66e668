#include "kernels/vec.h"

void pc_vec_add(float *y, const float *x, long n)
{
    #pragma omp parallel for schedule(static) if (n > 262144)
    for (long i = 0; i < n; i++) y[i] += x[i];
}
