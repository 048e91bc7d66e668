#include "kernels/quant4.h"

#include <stdlib.h>
#include <string.h>

#include "kernels/dynamic_map.h"

#if defined(__x86_64__)
#define PC_Q4_X86 1
#include <immintrin.h>
#else
#define PC_Q4_X86 0
#endif

/* Code values in code order, the float literals of bitsandbytes' CUDA tables. */
static const float nf4_table[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
    -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
    0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
    0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f,
};
static const float fp4_table[16] = {
    0.0f, 0.005208333333f, 0.66666667f, 1.0f, 0.33333333f, 0.5f, 0.16666667f, 0.25f,
    -0.0f, -0.005208333333f, -0.66666667f, -1.0f, -0.33333333f, -0.5f, -0.16666667f, -0.25f,
};

/* dQuantizeNF4's tree compares with strict '>' against (near-)midpoints of neighbouring codes, as float literals; as the
 * tree is a binary search over these sorted thresholds, the code is the number of thresholds below v
 * (NaN is below none: code 0, as in the tree). */
static const float nf4_thresholds[15] = {
    -0.8480964004993439f, -0.6106329262256622f, -0.4599952697753906f, -0.33967943489551544f,
    -0.23460740596055984f, -0.13791173323988914f, -0.045525018125772476f, 0.03979014977812767f,
    0.1202552504837513f, 0.2035212516784668f, 0.2920137718319893f, 0.3893125355243683f,
    0.5016634166240692f, 0.6427869200706482f, 0.8614784181118011f,
};
/* dQuantizeFP4: sign bit 0b1000 when v < 0, then the tree on |v|; counting the thresholds below |v|
 * gives the position in magnitude order, fp4_by_rank maps it to the 3-bit code. */
static const float fp4_thresholds[7] = {
    0.00260417f, 0.0859375f, 0.20833333f, 0.29166667f, 0.4166667f, 0.583333f, 0.8333333f,
};
static const uint8_t fp4_by_rank[8] = {0, 1, 6, 7, 4, 5, 2, 3};

static uint8_t nf4_code(float v)
{
    uint8_t code = 0;
    for (int k = 0; k < 15; k++) code += v > nf4_thresholds[k];
    return code;
}

static uint8_t fp4_code(float v)
{
    float a = fabsf(v);
    int rank = 0;
    for (int k = 0; k < 7; k++) rank += a > fp4_thresholds[k];
    return (uint8_t)(fp4_by_rank[rank] | (v < 0.0f ? 8 : 0));
}

int64_t pc_q4_numel(const pc_q4_weight *w) { return w->rows * w->cols; }
int64_t pc_q4_blocks(const pc_q4_weight *w) { return (pc_q4_numel(w) + PC_Q4_BLOCK - 1) / PC_Q4_BLOCK; }
int64_t pc_q4_nested_blocks(const pc_q4_weight *w)
{
    return (pc_q4_blocks(w) + PC_Q4_NESTED_BLOCK - 1) / PC_Q4_NESTED_BLOCK;
}

const float *pc_q4_code_table(pc_q4_type type) { return type == PC_Q4_NF4 ? nf4_table : fp4_table; }
const char *pc_q4_type_name(pc_q4_type type) { return type == PC_Q4_NF4 ? "nf4" : "fp4"; }

/* One block of len <= 64 elements starting at an even element: absmax and the packed bytes.
 * The padding of a partial block reads as 0.0, as CUDA's block load does. */
static void quantize_block(const float *x, int len, pc_q4_type type, uint8_t *bytes, float *absmax)
{
    float v[PC_Q4_BLOCK];
    float amax = 0.0f;
    for (int i = 0; i < PC_Q4_BLOCK; i++) {
        v[i] = i < len ? pc_ftz(x[i]) : 0.0f;
        amax = fmaxf(amax, fabsf(v[i]));
    }
    float recip = pc_ftz(1.0f / amax);
    uint8_t codes[PC_Q4_BLOCK];
    for (int i = 0; i < PC_Q4_BLOCK; i++) {
        float s = pc_ftz(v[i] * recip);
        codes[i] = type == PC_Q4_NF4 ? nf4_code(s) : fp4_code(s);
    }
    for (int j = 0; j < (len + 1) / 2; j++) bytes[j] = (uint8_t)(codes[2 * j] << 4 | codes[2 * j + 1]);
    *absmax = amax;
}

#if PC_Q4_X86
/* quantize_block for a full block, 16 lanes at a time: the same flushes, the same float32 reciprocal
 * and product, codes by counting thresholds (masked adds), then pairs of 32-bit codes folded into
 * bytes (even element << 4 | odd element). */
__attribute__((target("avx512f"))) static void quantize_full_block_avx512(const float *x, pc_q4_type type,
                                                                          uint8_t *bytes, float *absmax)
{
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u), one = _mm512_set1_epi32(1);
    const __m512 flt_min = _mm512_set1_ps(FLT_MIN);
    __m512 v[4], amax = _mm512_setzero_ps();
    for (int r = 0; r < 4; r++) {
        __m512i xi = _mm512_castps_si512(_mm512_loadu_ps(x + 16 * r));
        __m512 ax = _mm512_castsi512_ps(_mm512_andnot_si512(sign, xi));
        __mmask16 tiny = _mm512_cmp_ps_mask(ax, flt_min, _CMP_LT_OQ);
        v[r] = _mm512_castsi512_ps(_mm512_mask_and_epi32(xi, tiny, xi, sign));
        amax = _mm512_max_ps(amax, _mm512_castsi512_ps(_mm512_andnot_si512(sign, _mm512_castps_si512(v[r]))));
    }
    float a = _mm512_reduce_max_ps(amax);
    __m512 recip = _mm512_set1_ps(pc_ftz(1.0f / a));
    for (int r = 0; r < 4; r++) {
        __m512i si = _mm512_castps_si512(_mm512_mul_ps(v[r], recip));
        __mmask16 tiny = _mm512_cmp_ps_mask(_mm512_castsi512_ps(_mm512_andnot_si512(sign, si)), flt_min, _CMP_LT_OQ);
        __m512 s = _mm512_castsi512_ps(_mm512_mask_and_epi32(si, tiny, si, sign));
        __m512i code = _mm512_setzero_si512();
        if (type == PC_Q4_NF4) {
            for (int k = 0; k < 15; k++) {
                __mmask16 gt = _mm512_cmp_ps_mask(s, _mm512_set1_ps(nf4_thresholds[k]), _CMP_GT_OQ);
                code = _mm512_mask_add_epi32(code, gt, code, one);
            }
        } else {
            __m512 as = _mm512_castsi512_ps(_mm512_andnot_si512(sign, _mm512_castps_si512(s)));
            for (int k = 0; k < 7; k++) {
                __mmask16 gt = _mm512_cmp_ps_mask(as, _mm512_set1_ps(fp4_thresholds[k]), _CMP_GT_OQ);
                code = _mm512_mask_add_epi32(code, gt, code, one);
            }
            code = _mm512_permutexvar_epi32(code, _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 3, 2, 5, 4, 7, 6, 1, 0));
            __mmask16 neg = _mm512_cmp_ps_mask(s, _mm512_setzero_ps(), _CMP_LT_OQ);
            code = _mm512_mask_or_epi32(code, neg, code, _mm512_set1_epi32(8));
        }
        __m512i lo = _mm512_and_si512(code, _mm512_set1_epi64(0xffffffff));
        __m512i packed = _mm512_or_si512(_mm512_slli_epi64(lo, 4), _mm512_srli_epi64(code, 32));
        _mm_storel_epi64((__m128i *)(bytes + 8 * r), _mm512_cvtepi64_epi8(packed));
    }
    *absmax = a;
}
#endif

static void quantize_blocks(const float *W, int64_t n, pc_q4_type type, uint8_t *packed, float *absmax)
{
    int64_t nblocks = (n + PC_Q4_BLOCK - 1) / PC_Q4_BLOCK;
#if PC_Q4_X86
    bool avx512 = __builtin_cpu_supports("avx512f");
#endif
#pragma omp parallel for schedule(static) if (nblocks > 256)
    for (int64_t b = 0; b < nblocks; b++) {
        int64_t start = b * PC_Q4_BLOCK;
        int len = n - start < PC_Q4_BLOCK ? (int)(n - start) : PC_Q4_BLOCK;
#if PC_Q4_X86
        if (avx512 && len == PC_Q4_BLOCK) {
            quantize_full_block_avx512(W + start, type, packed + start / 2, &absmax[b]);
            continue;
        }
#endif
        quantize_block(W + start, len, type, packed + start / 2, &absmax[b]);
    }
}

/* Sum of adjacent pairs, level by level (an odd last element moves up unchanged); t is overwritten. */
static float pairwise_sum(float *t, int64_t n)
{
    if (n == 0) return 0.0f;
    while (n > 1) {
        int64_t half = n / 2;
        for (int64_t i = 0; i < half; i++) t[i] = t[2 * i] + t[2 * i + 1];
        if (n & 1) t[half] = t[n - 1];
        n = half + (n & 1);
    }
    return t[0];
}

static pc_status check_input(const float *W, int64_t rows, int64_t cols, pc_q4_type type, pc_error *err)
{
    if (type != PC_Q4_NF4 && type != PC_Q4_FP4)
        return pc_fail(err, PEFTC_ERR_INVALID, "4-bit quantization: unknown quant type %d", (int)type);
    if (rows <= 0 || cols <= 0 || rows > INT64_MAX / 2 / cols)
        return pc_fail(err, PEFTC_ERR_INVALID, "4-bit quantization: bad shape [%lld, %lld]", (long long)rows,
                       (long long)cols);
    int64_t n = rows * cols;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(W[i]))
            return pc_fail(err, PEFTC_ERR_NUMERIC, "4-bit quantization: element [%lld, %lld] is %s",
                           (long long)(i / cols), (long long)(i % cols), isnan(W[i]) ? "NaN" : "infinite");
    }
    return PEFTC_OK;
}

/* Double quantization of absmax[nblocks] (overwritten) into w->qabsmax / absmax2 / offset / code2. */
static pc_status nest_absmax(pc_q4_weight *w, float *absmax, int64_t nblocks, pc_error *err)
{
    float *t = malloc(sizeof(float) * (size_t)nblocks);
    w->qabsmax = malloc((size_t)nblocks);
    w->absmax2 = malloc(sizeof(float) * (size_t)pc_q4_nested_blocks(w));
    if (!t || !w->qabsmax || !w->absmax2) {
        free(t);
        return pc_fail(err, PEFTC_ERR_NOMEM, "4-bit quantization: out of memory for %lld nested blocks",
                       (long long)nblocks);
    }
    memcpy(t, absmax, sizeof(float) * (size_t)nblocks);
    w->offset = pairwise_sum(t, nblocks) / (float)nblocks;
    free(t);
    for (int64_t b = 0; b < nblocks; b++) absmax[b] -= w->offset;
    memcpy(w->code2, pc_dynamic_map_signed, sizeof w->code2);
    pc_quantize_blockwise8(absmax, nblocks, PC_Q4_NESTED_BLOCK, w->code2, w->qabsmax, w->absmax2);
    return PEFTC_OK;
}

pc_status pc_q4_quantize(const float *W, int64_t rows, int64_t cols, pc_q4_type type, bool double_quant,
                         pc_q4_weight *out, pc_error *err)
{
    memset(out, 0, sizeof *out);
    PC_TRY(check_input(W, rows, cols, type, err));
    pc_q4_weight w = {.type = type, .rows = rows, .cols = cols, .nested = double_quant, .owned = PC_Q4_OWN_ALL};
    int64_t n = rows * cols, nblocks = pc_q4_blocks(&w);
    w.packed = malloc((size_t)((n + 1) / 2));
    float *absmax = malloc(sizeof(float) * (size_t)nblocks);
    if (!w.packed || !absmax) {
        free(absmax);
        pc_q4_free(&w);
        return pc_fail(err, PEFTC_ERR_NOMEM, "4-bit quantization: out of memory for [%lld, %lld]", (long long)rows,
                       (long long)cols);
    }
    quantize_blocks(W, n, type, w.packed, absmax);
    if (!double_quant) {
        w.absmax = absmax;
    } else {
        pc_status s = nest_absmax(&w, absmax, nblocks, err);
        free(absmax);
        if (s != PEFTC_OK) {
            pc_q4_free(&w);
            return s;
        }
    }
    *out = w;
    return PEFTC_OK;
}

void pc_q4_free(pc_q4_weight *w)
{
    if (w->owned & PC_Q4_OWN_PACKED) free(w->packed);
    if (w->owned & PC_Q4_OWN_ABSMAX) free(w->absmax);
    if (w->owned & PC_Q4_OWN_QABSMAX) free(w->qabsmax);
    if (w->owned & PC_Q4_OWN_ABSMAX2) free(w->absmax2);
    memset(w, 0, sizeof *w);
}

float pc_q4_block_scale(const pc_q4_weight *w, int64_t b)
{
    if (!w->nested) return w->absmax[b];
    return pc_ftz(w->code2[w->qabsmax[b]] * w->absmax2[b / PC_Q4_NESTED_BLOCK]) + w->offset;
}

static void dequantize_scalar(const pc_q4_weight *w, int64_t start, int64_t count, float *out)
{
    const float *table = pc_q4_code_table(w->type);
    int64_t block = -1;
    float scale = 0.0f;
    for (int64_t k = 0; k < count; k++) {
        int64_t i = start + k;
        if (i / PC_Q4_BLOCK != block) {
            block = i / PC_Q4_BLOCK;
            scale = pc_q4_block_scale(w, block);
        }
        uint8_t code = (uint8_t)((w->packed[i >> 1] >> ((i & 1) ? 0 : 4)) & 15);
        out[k] = pc_ftz(table[code] * scale);
    }
}

#if PC_Q4_X86
/* 16 elements from 8 packed bytes at a time (pc_q4_codes16), looked up in the 16-entry table with a permute
 * (which reads only the codes' low 4 bits), scaled, and subnormal results flushed to signed zero. Chunks start
 * at multiples of 16, inside one block. */
__attribute__((target("avx512f"))) static void dequantize_avx512(const pc_q4_weight *w, int64_t start,
                                                                 int64_t count, float *out)
{
    int64_t end = start + count, head_end = (start + 15) & ~(int64_t)15;
    if (head_end > end) head_end = end;
    dequantize_scalar(w, start, head_end - start, out);
    const __m512 table = _mm512_loadu_ps(pc_q4_code_table(w->type));
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    const __m512 flt_min = _mm512_set1_ps(FLT_MIN);
    int64_t i = head_end;
    for (; i + 16 <= end; i += 16) {
        __m512i codes = pc_q4_codes16(w->packed, i);
        __m512 v = _mm512_mul_ps(_mm512_permutexvar_ps(codes, table), _mm512_set1_ps(pc_q4_block_scale(w, i / PC_Q4_BLOCK)));
        __m512i vi = _mm512_castps_si512(v);
        __mmask16 tiny = _mm512_cmp_ps_mask(_mm512_castsi512_ps(_mm512_andnot_si512(sign, vi)), flt_min, _CMP_LT_OQ);
        vi = _mm512_mask_and_epi32(vi, tiny, vi, sign);
        _mm512_storeu_ps(out + (i - start), _mm512_castsi512_ps(vi));
    }
    dequantize_scalar(w, i, end - i, out + (i - start));
}
#endif

void pc_q4_dequantize_range(const pc_q4_weight *w, int64_t start, int64_t count, float *out)
{
#if PC_Q4_X86
    if (__builtin_cpu_supports("avx512f")) {
        dequantize_avx512(w, start, count, out);
        return;
    }
#endif
    dequantize_scalar(w, start, count, out);
}

void pc_q4_dequantize(const pc_q4_weight *w, float *out)
{
    const int64_t chunk = 16 * 1024;
    int64_t n = pc_q4_numel(w), chunks = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < chunks; c++) {
        int64_t start = c * chunk;
        pc_q4_dequantize_range(w, start, n - start < chunk ? n - start : chunk, out + start);
    }
}
