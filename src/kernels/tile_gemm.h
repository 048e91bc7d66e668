/* Products of small tiles held in cache (attention's score, probability and gradient tiles: m, n, k of a few
 * dozen to a few hundred), called inside the caller's own parallel region: no packing, no threads.
 *   C[m, n] = alpha * op(A)[m, k] * B[k, n] (+ C when accumulate), B row-major (B[p][j] = B[p * ldb + j]),
 *   op(A)[i][p] = A[i * lda + p], or A[p * lda + i] when trans_a.
 * AVX-512 micro-kernel (4 rows x 64 columns of sums in registers, A broadcast, B loaded) where pc_isa_active()
 * is AVX-512; otherwise OpenBLAS's sgemm (kernels/gemm). On 64 x 64 x 64 tiles the micro-kernel runs at ~200
 * GFLOP/s on one Zen 5 core, as OpenBLAS's SkylakeX kernels do and 2.3x its Haswell ones (which a program that
 * does not set OPENBLAS_CORETYPE may get). The two differ only in rounding: sums run in p order here. */
#ifndef PC_KERNELS_TILE_GEMM_H
#define PC_KERNELS_TILE_GEMM_H

#include <stdbool.h>

void pc_tile_gemm(bool trans_a, int m, int n, int k, float alpha, const float *A, int lda, const float *B, int ldb,
                  bool accumulate, float *C, int ldc);

/* dst[j * ldd + i] = src[i * lds + j] for i < rows, j < cols. */
void pc_tile_transpose(float *dst, int ldd, const float *src, int lds, int rows, int cols);

#endif
