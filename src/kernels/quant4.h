/* bitsandbytes-compatible 4-bit quantization (NF4 / FP4, blocksize 64, optional double
 * quantization), bit for bit as bitsandbytes' CUDA kernels compute it:
 * - W [rows, cols] is flattened row-major into blocks of 64 (the last may be partial);
 * - absmax[b] = max |w| over the block (float32); v = w * (1.0f / absmax[b]);
 * - the code comes from the CUDA strict-'>' decision tree (NF4) or sign + tree on |v| (FP4);
 *   an all-zero block gives v = 0 * inf = NaN, code 0, which dequantizes to -0.0 (NF4) / 0.0 (FP4);
 * - element 2j goes to the high nibble of byte j; an odd numel pads the last low nibble with the
 *   code of the value 0.0;
 * - double quantization: offset = mean(absmax) (pairwise float32 sum of adjacent pairs, level by
 *   level, divided by the float32 block count), absmax - offset quantized with the signed dynamic
 *   map in blocks of 256 (see kernels/dynamic_map.h), float32 nested absmax;
 * - dequantization: table[code] * absmax (nested: code2[q] * absmax2[b / 256] + offset).
 * bitsandbytes builds its kernels with --use_fast_math: subnormal inputs and results are flushed to
 * zero here as there. Its reciprocal is the hardware approximation (at most 1 ulp off); this code
 * uses the correctly rounded one, so an element within 1 ulp of a threshold may land on the other
 * side of it. The offset of a GPU-made checkpoint may differ in the last bit (another summation
 * order); checkpoints store theirs. */
#ifndef PC_KERNELS_QUANT4_H
#define PC_KERNELS_QUANT4_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"

/* bitsandbytes' DataType_t numbering. */
typedef enum { PC_Q4_FP4 = 1, PC_Q4_NF4 = 2 } pc_q4_type;

enum { PC_Q4_BLOCK = 64, PC_Q4_NESTED_BLOCK = 256 };

typedef struct pc_q4_weight {
    pc_q4_type type;
    int64_t rows, cols;   /* the float matrix [rows, cols] (nn.Linear: [out, in]) */
    uint8_t *packed;      /* (rows * cols + 1) / 2 bytes */
    bool nested;          /* double quantization: qabsmax/absmax2/offset/code2 instead of absmax */
    float *absmax;        /* [pc_q4_blocks(w)] when !nested */
    uint8_t *qabsmax;     /* [pc_q4_blocks(w)] when nested */
    float *absmax2;       /* [pc_q4_nested_blocks(w)] when nested */
    float offset;         /* when nested */
    float code2[256];     /* the nested map (when nested): a checkpoint's nested_quant_map */
    unsigned owned;       /* PC_Q4_OWN_* bits: the arrays pc_q4_free releases (the others point into a mapped file) */
} pc_q4_weight;

enum { PC_Q4_OWN_PACKED = 1, PC_Q4_OWN_ABSMAX = 2, PC_Q4_OWN_QABSMAX = 4, PC_Q4_OWN_ABSMAX2 = 8, PC_Q4_OWN_ALL = 15 };

int64_t pc_q4_numel(const pc_q4_weight *w);
int64_t pc_q4_blocks(const pc_q4_weight *w);        /* ceil(numel / 64) */
int64_t pc_q4_nested_blocks(const pc_q4_weight *w); /* ceil(blocks / 256) */

/* The 16 code values in code order: bitsandbytes' quant_map (get_4bit_type) and the CUDA tables. */
const float *pc_q4_code_table(pc_q4_type type);
const char *pc_q4_type_name(pc_q4_type type); /* "nf4" / "fp4" */

/* Quantizes W[rows, cols] (float32, row-major) into *out (owning its memory). Fails with
 * PEFTC_ERR_NUMERIC naming the element when W holds NaN or an infinity, PEFTC_ERR_INVALID on
 * a bad shape or type, PEFTC_ERR_NOMEM when out of memory (out is then left empty). */
pc_status pc_q4_quantize(const float *W, int64_t rows, int64_t cols, pc_q4_type type, bool double_quant,
                         pc_q4_weight *out, pc_error *err);

void pc_q4_free(pc_q4_weight *w);

/* The scale of block b: absmax[b], or code2[qabsmax[b]] * absmax2[b / 256] + offset when nested. */
float pc_q4_block_scale(const pc_q4_weight *w, int64_t b);

/* out[0, count) = the dequantized elements [start, start + count) of the flattened matrix. */
void pc_q4_dequantize_range(const pc_q4_weight *w, int64_t start, int64_t count, float *out);

/* out[rows * cols] = the whole dequantized matrix (OpenMP over rows). */
void pc_q4_dequantize(const pc_q4_weight *w, float *out);

#if defined(__x86_64__)
#include <immintrin.h>
/* The codes of the elements i..i+15 (i even) in element order, one per 32-bit lane, in the lane's low 4 bits
 * (element 2j is the high nibble of byte j; each byte is duplicated and shifted by 4 in the even lanes). The
 * bits above hold the other nibble: mask with 15, or use VPERMD/VPERMPS, which read only the low 4. */
__attribute__((target("avx512f"))) static inline __m512i pc_q4_codes16(const uint8_t *packed, int64_t i)
{
    const __m512i shifts = _mm512_set_epi32(0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4);
    __m128i bytes = _mm_loadl_epi64((const __m128i *)(packed + i / 2));
    return _mm512_srlv_epi32(_mm512_cvtepu8_epi32(_mm_unpacklo_epi8(bytes, bytes)), shifts);
}
#endif

#endif
