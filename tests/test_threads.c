/* The thread count reaches OpenMP and OpenBLAS alike, OMP_NUM_THREADS is the default, and the optimizer
 * (which shares small tensors out among threads) gives the same bits for any count. */
#include "testlib.h"
#include "test_nn_gradcheck.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>

#include "base/param.h"
#include "base/threads.h"
#include "train/optim.h"

static int team_size(void)
{
    int n = 0;
    #pragma omp parallel
    {
        #pragma omp single
        n = omp_get_num_threads();
    }
    return n;
}

TEST(threads_count_reaches_openmp_and_openblas)
{
    const int saved = omp_get_max_threads();
    pc_set_threads(3);
    CHECK_INT_EQ(omp_get_max_threads(), 3);
    CHECK_INT_EQ(team_size(), 3);
    CHECK_INT_EQ(openblas_get_num_threads(), 3);
    CHECK_INT_EQ(omp_get_max_active_levels(), 1);  /* no nested teams: BLAS inside a parallel loop runs alone */
    const char *env = getenv("OMP_NUM_THREADS");
    char old[32] = "";
    if (env) snprintf(old, sizeof old, "%s", env);
    setenv("OMP_NUM_THREADS", "2", 1);
    pc_set_threads(0);
    CHECK_INT_EQ(omp_get_max_threads(), 2);
    CHECK_INT_EQ(openblas_get_num_threads(), 2);
    if (env) setenv("OMP_NUM_THREADS", old, 1);
    else unsetenv("OMP_NUM_THREADS");
    pc_set_threads(saved);
}

/* 40 LoRA-sized tensors and one larger than PC_PARAM_SPLIT_MIN; three AdamW steps and a clip. */
static void train_params(float *data, float *grad, long total, const long *sizes, int n, double *norm)
{
    pc_param_list list = {0};
    pc_error err = {0};
    long at = 0;
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "p%d", i);
        int64_t shape[1] = {sizes[i]};
        CHECK(pc_param_list_add(&list, name, data + at, grad + at, 1, shape, i % 2 == 0) == 0);
        at += sizes[i];
    }
    CHECK_INT_EQ(at, total);
    pc_adamw o;
    CHECK(pc_adamw_init(&o, &list, 0.9, 0.999, 1e-8, 0.01, &err) == PEFTC_OK);
    for (int step = 0; step < 3; step++) {
        nn_fill(grad, total, step == 0 ? "g0" : step == 1 ? "g1" : "g2", -1, 1);
        *norm = pc_clip_grad_norm(&list, 0.5);
        pc_adamw_step(&o, &list, 1e-3);
    }
    pc_adamw_free(&o);
    pc_param_list_free(&list);
}

TEST(threads_optimizer_same_bits_for_any_count)
{
    enum { N = 41 };
    long sizes[N], total = 0;
    for (int i = 0; i < N; i++) total += sizes[i] = i == N - 1 ? PC_PARAM_SPLIT_MIN + 1000 : 2000 + 37 * i;
    float *data[2], *grad[2];
    double norm[2];
    const int saved = omp_get_max_threads();
    for (int r = 0; r < 2; r++) {
        data[r] = malloc(sizeof(float) * (size_t)total);
        grad[r] = malloc(sizeof(float) * (size_t)total);
        CHECK(data[r] && grad[r]);
        if (!data[r] || !grad[r]) return;
        nn_fill(data[r], total, "params", -1, 1);
        pc_set_threads(r == 0 ? 1 : 3);
        train_params(data[r], grad[r], total, sizes, N, &norm[r]);
    }
    pc_set_threads(saved);
    CHECK(memcmp(data[0], data[1], sizeof(float) * (size_t)total) == 0);
    CHECK(norm[0] == norm[1]);
    for (int r = 0; r < 2; r++) { free(data[r]); free(grad[r]); }
}
