/* Fused products with a frozen 4-bit weight W [rows = out, cols = in] (kernels/quant4.h), for the
 * 4-bit Linear: forward y = x · deq(W)ᵀ and input gradient dx = dy · deq(W). The whole fp32 matrix
 * is never materialized: each thread dequantizes one tile of W (up to 64 rows, or 64 columns for
 * dx) into its slice of a scratch buffer and multiplies it; OpenMP runs over the tiles.
 *
 * Compute types:
 * - F32: fp32 tiles (bit-identical to pc_q4_dequantize), products by OpenBLAS sgemm.
 * - BF16: activations and the dequantized tile rounded to bfloat16 (round to nearest even, subnormals
 *   to zero, as VCVTNEPS2BF16), products accumulated in fp32 with AVX-512 BF16 dot products
 *   (VDPBF16PS) when the CPU has them, else computed as BF16_EMULATED.
 * - BF16_EMULATED: the same bf16 rounding, products by fp32 sgemm on the rounded values (exact
 *   products; only the summation order differs from BF16).
 *
 * Scratch: pc_q4_scratch_bytes(w, M, compute, threads) bytes serve both directions for up to
 * `threads` OpenMP threads. Passing NULL makes a call allocate (and free) its own for
 * omp_get_max_threads(); a smaller buffer runs with as many threads as it holds. */
#ifndef PC_KERNELS_GEMM4_H
#define PC_KERNELS_GEMM4_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "kernels/quant4.h"

typedef enum { PC_Q4_COMPUTE_F32, PC_Q4_COMPUTE_BF16, PC_Q4_COMPUTE_BF16_EMULATED } pc_q4_compute;

/* Whether PC_Q4_COMPUTE_BF16 runs on AVX-512 BF16 instructions on this CPU. */
bool pc_q4_bf16_native(void);

size_t pc_q4_scratch_bytes(const pc_q4_weight *w, int64_t M, pc_q4_compute compute, int threads);

/* y[M, rows] = x[M, cols] · deq(W)ᵀ, or y += that when accumulate. */
pc_status pc_q4_matmul_xwT(const pc_q4_weight *w, pc_q4_compute compute, const float *x, int64_t M, float *y,
                           bool accumulate, void *scratch, size_t scratch_bytes, pc_error *err);

/* dx[M, cols] = dy[M, rows] · deq(W), or dx += that when accumulate. */
pc_status pc_q4_matmul_dyW(const pc_q4_weight *w, pc_q4_compute compute, const float *dy, int64_t M, float *dx,
                           bool accumulate, void *scratch, size_t scratch_bytes, pc_error *err);

#endif
