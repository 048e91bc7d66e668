#include "kernels/gemm.h"

#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

enum {
    SPLIT_MIN_FLOPS = 1 << 27,   /* products this large are split over the threads here (about 1 ms each) */
    SPLIT_ALIGN = 64,            /* columns per chunk: a multiple of OpenBLAS's widest register block */
};

static void sgemm_call(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                       const float *B, int ldb, float beta, float *C, int ldc)
{
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* A large product runs as one column chunk of C per thread, each an OpenBLAS call inside our parallel region
 * (where the OpenMP build of OpenBLAS runs single-threaded). Left to its own threads, OpenBLAS ran TinyLlama's
 * lm_head products (256 x 32000 x 2048) at 100-110 ms most of the time and at twice that one call in three;
 * split this way, 103-106 ms every time. The chunks are whole SPLIT_ALIGN-column units dealt out evenly; with
 * fewer units than threads the product stays with OpenBLAS's own threads. */
void pc_sgemm(bool trans_a, bool trans_b, int M, int N, int K,
              float alpha, const float *A, int lda, const float *B, int ldb,
              float beta, float *C, int ldc)
{
    if (M == 0 || N == 0) return;
    const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
    const int units = (N + SPLIT_ALIGN - 1) / SPLIT_ALIGN;
    if (threads < 2 || 2.0 * M * N * K < SPLIT_MIN_FLOPS || units < threads) {
        sgemm_call(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    #pragma omp parallel for schedule(static) num_threads(threads)
    for (int t = 0; t < threads; t++) {
        const int j0 = (int)((long)t * units / threads) * SPLIT_ALIGN;
        const int j1 = t + 1 == threads ? N : (int)((long)(t + 1) * units / threads) * SPLIT_ALIGN;
        sgemm_call(trans_a, trans_b, M, j1 - j0, K, alpha, A, lda, trans_b ? B + (size_t)j0 * ldb : B + j0, ldb, beta,
                   C + j0, ldc);
    }
}

void pc_linear_xwT(float *y, const float *x, const float *W, const float *bias, int rows, int in, int out)
{
    if (bias) {
        for (int r = 0; r < rows; r++) memcpy(y + (size_t)r * out, bias, sizeof(float) * (size_t)out);
    }
    pc_sgemm(false, true, rows, out, in, 1.0f, x, in, W, in, bias ? 1.0f : 0.0f, y, out);
}

bool pc_gemm_openblas_avx512(void)
{
    const char *core = openblas_get_corename();
    static const char *const avx512[] = { "skylakex", "cooperlake", "sapphirerapids" };
    for (size_t i = 0; core && i < sizeof avx512 / sizeof avx512[0]; i++)
        if (strcasecmp(core, avx512[i]) == 0) return true;
    return false;
}

const char *pc_gemm_backend(void)
{
    static char name[256];
    snprintf(name, sizeof name, "OpenBLAS (%s; core %s; %d threads)", openblas_get_config(),
             openblas_get_corename(), openblas_get_num_threads());
    return name;
}
