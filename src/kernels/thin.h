/* Thin products: the rank-r matrix products of a LoRA adapter (r a few to a few dozen), which a general GEMM
 * runs far below the machine's speed (OpenBLAS: 6-9 % of peak on [1024, 768] x [768, 8]). Each is one pass
 * over its large operand, with the dropout mask of LoRA's input applied as it is read (nn.Dropout's
 * x * 1/(1-p) where kept, 0 where dropped), so no dropped-out copy of x is ever written.
 *
 * All matrices row-major; x, y have `rows` rows of n values; h has `rows` rows of r values; F (a factor) has
 * r rows of n values. AVX-512 kernels (when base/isa says so: pc_isa_active) or portable C.
 * Each output element is summed in an order that depends on neither the thread count nor the ISA's
 * scheduling of rows, so a run gives the same bits on any number of threads. */
#ifndef PC_KERNELS_THIN_H
#define PC_KERNELS_THIN_H

#include <stdbool.h>
#include <stdint.h>

/* The dropout factor of each element of x: keep[i * n + j] ? scale : 0; keep NULL: every factor 1. */
typedef struct pc_thin_mask {
    const uint8_t *keep;
    float scale;
} pc_thin_mask;

/* h[i, k] = alpha * sum_j (x ∘ mask)[i, j] F[k, j]   (x·Fᵀ: LoRA's down product x A^T, and dy B = dy (B^T)^T) */
void pc_thin_down(float *h, const float *x, pc_thin_mask mask, const float *F, int rows, int n, int r, float alpha);

/* y[i, j] += mask[i, j] * alpha * sum_k h[i, k] F[k, j]   (h·F: LoRA's up product h B^T with F = B^T, and the
 * input gradient g A) */
void pc_thin_up(float *y, pc_thin_mask mask, const float *h, const float *F, int rows, int n, int r, float alpha);

/* G [r, n] += alpha * hᵀ (x ∘ mask): the gradient of a factor (dA = gᵀ x_d; dBᵀ = s hᵀ dy). Each G element
 * takes the rows' sum a chunk of rows at a time, in row order. */
void pc_thin_grad(float *G, const float *h, const float *x, pc_thin_mask mask, int rows, int n, int r, float alpha);

#endif
