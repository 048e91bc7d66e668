/* Packed GEMM for frozen weights: y = x·Wᵀ (forward) and dx = dy·W (input gradient) of a Linear whose
 * weight W [out, in] (or [in, out] for GPT-2's Conv1D) never changes. The weight is packed once, in the
 * micro-kernels' layout, so a step pays no packing for it; only the activations are packed per call.
 *
 * Layout (one per direction; both are kept, see below): the right operand B [K, N] of C = A·B is cut into
 * blocks of KC reduction steps and, inside a block, panels of NR = 32 columns; a panel holds, per step,
 * 32 consecutive 32-bit words: fp32 values (one step = one k) or bf16 pairs (one step = k, k+1, the low half
 * the even k), zero-padded. The activations are packed per call into panels of MR = 12 rows the same way.
 * Forward has B = Wᵀ, the input gradient B = W: the reduction runs along different axes of W, so one
 * packed copy cannot serve both with contiguous vector loads (and bf16 pairs must lie along the reduction).
 * Memory: fp32 packing costs 2 × the fp32 weight, bf16 packing 1 × (two bf16 copies); the fp32 original is
 * then no longer read by the products (when it is mmap'd, its pages need not become resident).
 *
 * Micro-kernels: AVX-512 (fp32 FMA 12x32; bf16 VDPBF16PS 12x32 with fp32 accumulation), AVX2+FMA (6x16
 * sub-tiles; bf16 widened to fp32), portable C. The instruction set is chosen from CPUID at first use,
 * lowered by PEFTC_ISA=avx512|avx2|portable or pc_isa_force() (tests). bf16 on a CPU without AVX-512 BF16
 * runs the AVX2 (or portable) kernel on the same bf16 data: identical roundings, exact products.
 * bf16 rounding of activations is round-to-nearest-even with subnormals flushed, as VCVTNEPS2BF16. */
#ifndef PC_KERNELS_PGEMM_H
#define PC_KERNELS_PGEMM_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "base/isa.h"

typedef enum { PC_PACK_F32, PC_PACK_BF16 } pc_pack_dtype;
/* The kernel a product of this dtype runs now, e.g. "avx512-bf16", "avx2-f32". */
const char *pc_pgemm_kernel_name(pc_pack_dtype dtype);

/* B [K, N] packed (see the layout above). */
typedef struct pc_packed_b {
    pc_pack_dtype dtype;
    int K, N, steps, npad;
    uint32_t *data;
} pc_packed_b;

/* Packs B[k][n] = src[k * ld + n], or src[n * ld + k] when transposed. */
pc_status pc_pack_b(pc_packed_b *b, const float *src, int ld, bool transposed, int K, int N, pc_pack_dtype dtype,
                    pc_error *err);
void pc_packed_b_free(pc_packed_b *b);

/* C[M, N] (=, or += when accumulate) A[M, K] · B, A row-major with leading dimension lda; without accumulate,
 * plus bias[N] on every row when bias is not NULL. */
void pc_pgemm(const float *A, int lda, int M, const pc_packed_b *B, float *C, int ldc, bool accumulate,
              const float *bias);

/* A frozen Linear weight in both directions' packings. src is the weight it was packed from. */
typedef struct pc_packed_weight {
    const float *src;
    int in, out;
    pc_packed_b fwd;   /* Wᵀ: K = in, N = out */
    pc_packed_b bwd;   /* W:  K = out, N = in */
} pc_packed_weight;

pc_status pc_pack_weight(pc_packed_weight *p, const float *W, bool w_in_out, int in, int out, pc_pack_dtype dtype,
                         pc_error *err);
void pc_packed_weight_free(pc_packed_weight *p);

/* y[rows, out] (=, or +=) x[rows, in] · Wᵀ (+ bias[out] when not NULL and not accumulating);
 * dx[rows, in] (=, or +=) dy[rows, out] · W. */
void pc_packed_xwT(const pc_packed_weight *p, const float *x, int rows, float *y, const float *bias, bool accumulate);
void pc_packed_dyW(const pc_packed_weight *p, const float *dy, int rows, float *dx, bool accumulate);

#endif
