#include "kernels/gemm.h"

#include <cblas.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

void pc_sgemm(bool trans_a, bool trans_b, int M, int N, int K,
              float alpha, const float *A, int lda, const float *B, int ldb,
              float beta, float *C, int ldc)
{
    if (M == 0 || N == 0) return;
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
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
