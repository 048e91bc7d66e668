/* bitsandbytes' 8-bit "dynamic" quantization: the 256-entry maps of create_dynamic_map(signed,
 * max_exponent_bits = 7, total_bits = 8) and blockwise quantization with them, as bitsandbytes'
 * CUDA kernels compute it (kQuantizeBlockwise with dQuantize<0>).
 * Used for double quantization of the 4-bit absmax and by the 8-bit optimizers.
 *
 * The maps are the exact float32 values PyTorch's CPU linspace produces in create_dynamic_map
 * (committed from tools/make_quant4_fixtures.py). Recomputing them with the textbook float32 linspace
 * formula gives about 45 of the 256 entries 1 or 2 ulp away, because PyTorch evaluates linspace
 * partly with vector code and fused multiply-adds; the embedded tables are the source of truth.
 *
 * CUDA semantics followed: bitsandbytes is built with --use_fast_math, so subnormal inputs and
 * results of float32 arithmetic are flushed to (sign-preserving) zero. */
#ifndef PC_KERNELS_DYNAMIC_MAP_H
#define PC_KERNELS_DYNAMIC_MAP_H

#include <float.h>
#include <math.h>
#include <stdint.h>

/* 127 negatives, 0.0 at index 127, 127 positives, 1.0 at index 255 (ascending). */
extern const float pc_dynamic_map_signed[256];
/* 0.0 at index 0, 254 positives, 1.0 at index 255 (ascending). */
extern const float pc_dynamic_map_unsigned[256];

/* x, or a zero of x's sign when x is subnormal (CUDA's flush-to-zero). */
static inline float pc_ftz(float x)
{
    return fabsf(x) < FLT_MIN ? copysignf(0.0f, x) : x;
}

/* Index of the code nearest to x in an ascending 256-entry map: CUDA dQuantize<0> exactly
 * (x flushed; 7-step binary search from index 127, then the neighbour chosen by the float32
 * midpoint with strict comparisons; NaN fails every comparison and ends on index 0). */
uint8_t pc_dynamic_quantize(const float code[256], float x);

/* Blockwise 8-bit quantization of a[n] with the given map: per block of `block` elements
 * absmax[b] = max |a| (float32), q[i] = pc_dynamic_quantize(code, a[i] * (1 / absmax[b])).
 * absmax has ceil(n / block) entries. An all-zero block gets absmax 0 and codes of NaN (index 0). */
void pc_quantize_blockwise8(const float *a, int64_t n, int block, const float code[256], uint8_t *q, float *absmax);

#endif
