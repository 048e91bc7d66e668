/* Matrix products. Row-major throughout: C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C.
 * trans_a / trans_b say whether A / B are stored transposed. Backed by OpenBLAS
 * (OpenMP build, so it shares the program's one thread pool). */
#ifndef PC_KERNELS_GEMM_H
#define PC_KERNELS_GEMM_H

#include <stdbool.h>

void pc_sgemm(bool trans_a, bool trans_b, int M, int N, int K,
              float alpha, const float *A, int lda, const float *B, int ldb,
              float beta, float *C, int ldc);

/* y[rows, out] = x[rows, in] * W^T (+ bias), W stored [out, in] as nn.Linear. */
void pc_linear_xwT(float *y, const float *x, const float *W, const float *bias, int rows, int in, int out);

/* Whether OpenBLAS runs its AVX-512 sgemm kernels (core SkylakeX, Cooperlake, SapphireRapids); there it is
 * as fast as or faster than kernels/pgemm's fp32 path (bench_gemm), so frozen fp32 weights stay unpacked. */
bool pc_gemm_openblas_avx512(void);

/* Name of the BLAS kernel in use (e.g. "OpenBLAS 0.3.21 ... SkylakeX"). */
const char *pc_gemm_backend(void);

#endif
