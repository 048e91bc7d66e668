#include "kernels/pgemm.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/x86.h"

enum {
    MR = 12,   /* rows of A per micro-tile */
    NR = 32,   /* columns of B per micro-tile (two zmm) */
    KC = 1024, /* reduction steps per block: few blocks, so C's tiles are reloaded rarely; a 32-column B panel
                * (128 KB) is read from L2, each step prefetched into L1 a few steps ahead */
    MC = 96,   /* rows of A per packed block: 96 x 1024 words (384 KB, on each thread's stack) stay in L2
                * (1 MB) beside the B panel */
};
_Static_assert(MC % MR == 0, "a row block is whole micro-panels (pack_a fills MR rows per panel)");

/* ---- instruction set (base/isa) ---- */

static bool bf16_native(void)
{
#if PC_X86
    return __builtin_cpu_supports("avx512bf16");
#else
    return false;
#endif
}

/* The kernel's instruction set: bf16 on AVX-512 needs AVX-512 BF16, else it runs the AVX2 kernel. */
static pc_isa kernel_isa(pc_pack_dtype dtype)
{
    pc_isa isa = pc_isa_active();
    if (isa == PC_ISA_AVX512 && dtype == PC_PACK_BF16 && !bf16_native()) isa = PC_ISA_AVX2;
    return isa;
}

const char *pc_pgemm_kernel_name(pc_pack_dtype dtype)
{
    static const char *names[3][2] = { { "portable-f32", "portable-bf16" }, { "avx2-f32", "avx2-bf16" },
                                       { "avx512-f32", "avx512-bf16" } };
    return names[kernel_isa(dtype)][dtype];
}

/* ---- bf16 ---- */

/* bf16 bits of f as VCVTNEPS2BF16 rounds: NaN stays (quiet) NaN, subnormals become signed zero, else
 * round to nearest even. */
static uint32_t bf16_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (u >> 16) | 0x40u;
    if ((u & 0x7f800000u) == 0) u &= 0x80000000u;
    u += 0x7fffu + ((u >> 16) & 1u);
    return u >> 16;
}

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* The 32-bit word of step s of a row: the fp32 value, or the bf16 pair (row[2s], row[2s+1]) (0 past K). */
static uint32_t word_at(const float *row, long stride, int s, int K, pc_pack_dtype dtype)
{
    if (dtype == PC_PACK_F32) return f32_bits(row[(long)s * stride]);
    uint32_t lo = bf16_bits(row[2L * s * stride]);
    uint32_t hi = 2 * s + 1 < K ? bf16_bits(row[(2L * s + 1) * stride]) : 0;
    return lo | hi << 16;
}

/* ---- packing B (once per weight) ---- */

static int steps_of(int K, pc_pack_dtype dtype) { return dtype == PC_PACK_F32 ? K : (K + 1) / 2; }

pc_status pc_pack_b(pc_packed_b *b, const float *src, int ld, bool transposed, int K, int N, pc_pack_dtype dtype,
                    pc_error *err)
{
    *b = (pc_packed_b){ .dtype = dtype, .K = K, .N = N, .steps = steps_of(K, dtype), .npad = (N + NR - 1) / NR * NR };
    size_t bytes = sizeof(uint32_t) * (size_t)b->steps * (size_t)b->npad;
    b->data = aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
    if (!b->data) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory packing a [%d, %d] weight (%zu bytes)", K, N, bytes);
    /* element (k, n): transposed ? src[n*ld + k] : src[k*ld + n]; along k the stride is 1 or ld */
    long k_stride = transposed ? 1 : ld;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < b->npad; n++) {
        const float *col = transposed ? src + (long)n * ld : src + n;
        for (int s0 = 0; s0 < b->steps; s0 += KC) {
            int ks = b->steps - s0 < KC ? b->steps - s0 : KC;
            uint32_t *panel = b->data + (size_t)s0 * b->npad + (size_t)(n / NR) * ks * NR + n % NR;
            for (int s = 0; s < ks; s++) {
                int k = dtype == PC_PACK_F32 ? s0 + s : 2 * (s0 + s);
                panel[(size_t)s * NR] = n < N ? word_at(col + k * k_stride, k_stride, 0, K - k, dtype) : 0;
            }
        }
    }
    return PEFTC_OK;
}

void pc_packed_b_free(pc_packed_b *b)
{
    free(b->data);
    b->data = NULL;
}

/* ---- packing A (per call): rows m0..m0+mc, steps s0..s0+ks as [row panel][step][MR] words ---- */

/* Steps s_from..ks-1 of one row of A (the block starts at step s0), as words MR apart. */
static void pack_row_words(const float *row, int K, pc_pack_dtype dtype, int s0, int s_from, int ks, uint32_t *dst)
{
    for (int s = s_from; s < ks; s++) {
        int k = dtype == PC_PACK_F32 ? s0 + s : 2 * (s0 + s);
        dst[(size_t)s * MR] = word_at(row + k, 1, 0, K - k, dtype);
    }
}

#if PC_X86
/* r[i] = row i of a 16 x 16 block of words, transposed in place (r[j] = column j): pairs of words, then of
 * doublewords, interleaved within 128-bit lanes, then the lanes of each group of four rows exchanged. */
__attribute__((target("avx512f"), always_inline)) static inline void transpose_16x16(__m512i r[16])
{
    __m512i t[16], x[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);       /* rows 2i, 2i+1: columns 4L, 4L+1 */
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);   /* columns 4L+2, 4L+3 */
    }
    for (int g = 0; g < 4; g++) {   /* x[4g + off]: lane L holds rows 4g..4g+3 of column 4L + off */
        x[4 * g] = _mm512_unpacklo_epi64(t[4 * g], t[4 * g + 2]);
        x[4 * g + 1] = _mm512_unpackhi_epi64(t[4 * g], t[4 * g + 2]);
        x[4 * g + 2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
        x[4 * g + 3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
    }
    for (int off = 0; off < 4; off++) {   /* column 4L + off = lane L of x[off], x[4 + off], x[8 + off], x[12 + off] */
        __m512i u0 = _mm512_shuffle_i32x4(x[off], x[4 + off], 0x44), u1 = _mm512_shuffle_i32x4(x[off], x[4 + off], 0xEE);
        __m512i u2 = _mm512_shuffle_i32x4(x[8 + off], x[12 + off], 0x44);
        __m512i u3 = _mm512_shuffle_i32x4(x[8 + off], x[12 + off], 0xEE);
        r[off] = _mm512_shuffle_i32x4(u0, u2, 0x88);
        r[4 + off] = _mm512_shuffle_i32x4(u0, u2, 0xDD);
        r[8 + off] = _mm512_shuffle_i32x4(u1, u3, 0x88);
        r[12 + off] = _mm512_shuffle_i32x4(u1, u3, 0xDD);
    }
}

/* The next panel's values of the coming 16 steps (`bytes` per row from element k), a panel's work ahead. */
__attribute__((target("avx512f"), always_inline)) static inline void prefetch_next_panel(const float *A, int lda,
                                                                                      int next_rows, int k, int bytes)
{
    for (int i = 0; i < next_rows; i++)
        for (int off = 0; off < bytes; off += 64)
            _mm_prefetch((const char *)(A + (long)(MR + i) * lda + k) + off, _MM_HINT_T0);
}

/* 16 steps of a panel, r[j] = step j's words (rows in lanes 0..MR-1), stored as 16 runs of MR words. */
__attribute__((target("avx512f"), always_inline)) static inline void store_steps(const __m512i r[16], uint32_t *dst)
{
    for (int j = 0; j < 16; j++) _mm512_mask_storeu_epi32(dst + (size_t)j * MR, (1u << MR) - 1, r[j]);
}

/* A panel's `rows` (<= MR) rows in bf16 pairs, 16 steps at a time while whole: each row's 32 floats rounded
 * with VCVTNE2PS2BF16 (same rounding as bf16_bits), the words transposed in registers into the panel's
 * step-major order and stored as 16 runs of MR words (rather than one word at a time). Returns the first step
 * left for pack_row_words; rows past `rows` are zeros. */
__attribute__((target("avx512f,avx512bf16"))) static int pack_panel_bf16_avx512(const float *A, int lda, int rows,
                                                                                 int K, int s0, int ks, uint32_t *dst,
                                                                                 int next_rows)
{
    int s = 0;
    for (; s + 16 <= ks && 2 * (s0 + s) + 32 <= K; s += 16) {
        prefetch_next_panel(A, lda, next_rows, 2 * (s0 + s), 128);
        __m512i r[16];
        for (int i = 0; i < 16; i++) {
            const float *src = A + (long)i * lda + 2 * (s0 + s);
            r[i] = i < rows ? (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + 16), _mm512_loadu_ps(src))
                            : _mm512_setzero_si512();
        }
        transpose_16x16(r);
        store_steps(r, dst + (size_t)s * MR);
    }
    return s;
}

/* The same for fp32 words: each row's 16 floats as they are. A step is one element, so the block's steps
 * s0..s0+ks-1 lie inside K and need no bound of their own. */
__attribute__((target("avx512f"))) static int pack_panel_f32_avx512(const float *A, int lda, int rows, int s0,
                                                                    int ks, uint32_t *dst, int next_rows)
{
    int s = 0;
    for (; s + 16 <= ks; s += 16) {
        prefetch_next_panel(A, lda, next_rows, s0 + s, 64);
        __m512i r[16];
        for (int i = 0; i < 16; i++)
            r[i] = i < rows ? _mm512_loadu_si512(A + (long)i * lda + s0 + s) : _mm512_setzero_si512();
        transpose_16x16(r);
        store_steps(r, dst + (size_t)s * MR);
    }
    return s;
}
#endif

static void pack_a(pc_isa isa, const float *A, int lda, int M, int K, pc_pack_dtype dtype, int m0, int mc, int s0,
                   int ks, uint32_t *Ap)
{
    for (int p = 0; p < mc; p += MR) {
        int rows = MR;   /* rows of this panel inside A and the block */
        if (mc - p < rows) rows = mc - p;
        if (M - (m0 + p) < rows) rows = M - (m0 + p);
        int s = 0;
#if PC_X86
        if (isa == PC_ISA_AVX512) {
            int next_rows = MR;   /* rows of the next panel inside A and the block */
            if (mc - (p + MR) < next_rows) next_rows = mc - (p + MR);
            if (M - (m0 + p + MR) < next_rows) next_rows = M - (m0 + p + MR);
            if (next_rows < 0) next_rows = 0;
            const float *panel = A + (long)(m0 + p) * lda;
            s = dtype == PC_PACK_BF16
                    ? pack_panel_bf16_avx512(panel, lda, rows, K, s0, ks, Ap + (size_t)p * ks, next_rows)
                    : pack_panel_f32_avx512(panel, lda, rows, s0, ks, Ap + (size_t)p * ks, next_rows);
        }
#endif
        for (int r = 0; r < MR; r++) {
            uint32_t *dst = Ap + (size_t)p * ks + r;
            if (r >= rows) {
                for (int z = s; z < ks; z++) dst[(size_t)z * MR] = 0;
                continue;
            }
            pack_row_words(A + (long)(m0 + p + r) * lda, K, dtype, s0, s, ks, dst);
        }
    }
    (void)isa;
}

/* ---- micro-kernels: c[MR x NR] (=, or += when load_c) over ks steps of a (MR words per step) and b (NR) ---- */

/* Lines of the next B panel for a kernel to bring into L2 while it runs, one every `every` steps: a panel not
 * yet in cache (B is read from memory once per row block) would stall the first tile of its sweep. */
typedef struct {
    const char *at;
    int lines, every;
} l2_prefetch;

typedef void micro_kernel(int ks, const uint32_t *a, const uint32_t *b, float *c, long ldc, bool load_c,
                          l2_prefetch next);

static void kernel_portable_f32(int ks, const uint32_t *a, const uint32_t *b, float *c, long ldc, bool load_c,
                                l2_prefetch next)
{
    (void)next;
    float acc[MR][NR];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) acc[i][j] = load_c ? c[i * ldc + j] : 0.0f;
    for (int s = 0; s < ks; s++)
        for (int i = 0; i < MR; i++) {
            float ai = bits_f32(a[s * MR + i]);
            for (int j = 0; j < NR; j++) acc[i][j] += ai * bits_f32(b[s * NR + j]);
        }
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) c[i * ldc + j] = acc[i][j];
}

static void kernel_portable_bf16(int ks, const uint32_t *a, const uint32_t *b, float *c, long ldc, bool load_c,
                                 l2_prefetch next)
{
    (void)next;
    float acc[MR][NR];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) acc[i][j] = load_c ? c[i * ldc + j] : 0.0f;
    for (int s = 0; s < ks; s++)
        for (int i = 0; i < MR; i++) {
            uint32_t w = a[s * MR + i];
            float lo = bits_f32(w << 16), hi = bits_f32(w & 0xffff0000u);
            for (int j = 0; j < NR; j++) {
                uint32_t v = b[s * NR + j];
                acc[i][j] += lo * bits_f32(v << 16) + hi * bits_f32(v & 0xffff0000u);
            }
        }
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) c[i * ldc + j] = acc[i][j];
}

#if PC_X86
/* The accumulators of a 12x32 tile (AVX-512) or a 6x16 sub-tile (AVX2): C's values (load_c) or zeros, and
 * back into C. Inlined into each kernel, so the accumulators stay in registers. */
__attribute__((target("avx512f"), always_inline)) static inline void tile_load_avx512(__m512 acc[MR][2], const float *c,
                                                                                   long ldc, bool load_c)
{
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) {
        acc[i][0] = load_c ? _mm512_loadu_ps(c + i * ldc) : _mm512_setzero_ps();
        acc[i][1] = load_c ? _mm512_loadu_ps(c + i * ldc + 16) : _mm512_setzero_ps();
    }
}

__attribute__((target("avx512f"), always_inline)) static inline void tile_store_avx512(__m512 acc[MR][2], float *c,
                                                                                    long ldc)
{
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) {
        _mm512_storeu_ps(c + i * ldc, acc[i][0]);
        _mm512_storeu_ps(c + i * ldc + 16, acc[i][1]);
    }
}

__attribute__((target("avx2,fma"), always_inline)) static inline void tile_load_avx2(__m256 acc[6][2], const float *c,
                                                                                  long ldc, bool load_c)
{
#pragma GCC unroll 6
    for (int i = 0; i < 6; i++) {
        acc[i][0] = load_c ? _mm256_loadu_ps(c + i * ldc) : _mm256_setzero_ps();
        acc[i][1] = load_c ? _mm256_loadu_ps(c + i * ldc + 8) : _mm256_setzero_ps();
    }
}

__attribute__((target("avx2,fma"), always_inline)) static inline void tile_store_avx2(__m256 acc[6][2], float *c,
                                                                                   long ldc)
{
#pragma GCC unroll 6
    for (int i = 0; i < 6; i++) {
        _mm256_storeu_ps(c + i * ldc, acc[i][0]);
        _mm256_storeu_ps(c + i * ldc + 8, acc[i][1]);
    }
}

/* One step's share of the next panel: a line into L2 when its countdown runs out. */
__attribute__((target("avx512f"), always_inline)) static inline void l2_prefetch_step(l2_prefetch *next,
                                                                                    int *countdown)
{
    if (next->lines > 0 && --*countdown == 0) {
        _mm_prefetch(next->at, _MM_HINT_T1);
        next->at += 64;
        next->lines--;
        *countdown = next->every;
    }
}

__attribute__((target("avx512f"))) static void kernel_avx512_f32(int ks, const uint32_t *a, const uint32_t *b,
                                                                 float *c, long ldc, bool load_c, l2_prefetch next)
{
    __m512 acc[MR][2];
    tile_load_avx512(acc, c, ldc, load_c);
    const float *af = (const float *)a, *bf = (const float *)b;
    int countdown = next.every;
    for (int s = 0; s < ks; s++) {
        l2_prefetch_step(&next, &countdown);
        __m512 b0 = _mm512_load_ps(bf + s * NR), b1 = _mm512_load_ps(bf + s * NR + 16);
        _mm_prefetch((const char *)(bf + (s + 8) * NR), _MM_HINT_T0);
#pragma GCC unroll 12
        for (int i = 0; i < MR; i++) {
            __m512 ai = _mm512_set1_ps(af[s * MR + i]);
            acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
        }
    }
    tile_store_avx512(acc, c, ldc);
}

/* VDPBF16PS: each fp32 lane adds the two products of its bf16 pair. */
__attribute__((target("avx512f,avx512bf16"))) static void kernel_avx512_bf16(int ks, const uint32_t *a,
                                                                              const uint32_t *b, float *c, long ldc,
                                                                              bool load_c, l2_prefetch next)
{
    __m512 acc[MR][2];
    tile_load_avx512(acc, c, ldc, load_c);
    int countdown = next.every;
    for (int s = 0; s < ks; s++) {
        l2_prefetch_step(&next, &countdown);
        __m512bh b0 = (__m512bh)_mm512_load_si512(b + s * NR), b1 = (__m512bh)_mm512_load_si512(b + s * NR + 16);
        _mm_prefetch((const char *)(b + (s + 8) * NR), _MM_HINT_T0);
#pragma GCC unroll 12
        for (int i = 0; i < MR; i++) {
            __m512bh ai = (__m512bh)_mm512_set1_epi32((int)a[s * MR + i]);
            acc[i][0] = _mm512_dpbf16_ps(acc[i][0], ai, b0);
            acc[i][1] = _mm512_dpbf16_ps(acc[i][1], ai, b1);
        }
    }
    tile_store_avx512(acc, c, ldc);
}

/* AVX2: the 12x32 tile as four 6x16 sub-tiles (12 ymm accumulators each). */
__attribute__((target("avx2,fma"))) static void sub_avx2_f32(int ks, const uint32_t *a, const uint32_t *b, float *c,
                                                             long ldc, bool load_c)
{
    __m256 acc[6][2];
    tile_load_avx2(acc, c, ldc, load_c);
    const float *af = (const float *)a, *bf = (const float *)b;
    for (int s = 0; s < ks; s++) {
        __m256 b0 = _mm256_loadu_ps(bf + s * NR), b1 = _mm256_loadu_ps(bf + s * NR + 8);
#pragma GCC unroll 6
        for (int i = 0; i < 6; i++) {
            __m256 ai = _mm256_broadcast_ss(af + s * MR + i);
            acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
        }
    }
    tile_store_avx2(acc, c, ldc);
}

/* bf16 pairs widened to fp32 (a bf16 is the high half of its fp32): lo·lo + hi·hi per lane. */
__attribute__((target("avx2,fma"))) static void sub_avx2_bf16(int ks, const uint32_t *a, const uint32_t *b, float *c,
                                                              long ldc, bool load_c)
{
    __m256 acc[6][2];
    tile_load_avx2(acc, c, ldc, load_c);
    const __m256i high = _mm256_set1_epi32((int)0xffff0000u);
    for (int s = 0; s < ks; s++) {
        __m256i v0 = _mm256_loadu_si256((const __m256i *)(b + s * NR));
        __m256i v1 = _mm256_loadu_si256((const __m256i *)(b + s * NR + 8));
        __m256 l0 = _mm256_castsi256_ps(_mm256_slli_epi32(v0, 16)), h0 = _mm256_castsi256_ps(_mm256_and_si256(v0, high));
        __m256 l1 = _mm256_castsi256_ps(_mm256_slli_epi32(v1, 16)), h1 = _mm256_castsi256_ps(_mm256_and_si256(v1, high));
#pragma GCC unroll 6
        for (int i = 0; i < 6; i++) {
            uint32_t w = a[s * MR + i];
            __m256 alo = _mm256_set1_ps(bits_f32(w << 16)), ahi = _mm256_set1_ps(bits_f32(w & 0xffff0000u));
            acc[i][0] = _mm256_fmadd_ps(ahi, h0, _mm256_fmadd_ps(alo, l0, acc[i][0]));
            acc[i][1] = _mm256_fmadd_ps(ahi, h1, _mm256_fmadd_ps(alo, l1, acc[i][1]));
        }
    }
    tile_store_avx2(acc, c, ldc);
}

static void kernel_avx2_f32(int ks, const uint32_t *a, const uint32_t *b, float *c, long ldc, bool load_c,
                            l2_prefetch next)
{
    (void)next;
    for (int i = 0; i < MR; i += 6)
        for (int j = 0; j < NR; j += 16) sub_avx2_f32(ks, a + i, b + j, c + i * ldc + j, ldc, load_c);
}

static void kernel_avx2_bf16(int ks, const uint32_t *a, const uint32_t *b, float *c, long ldc, bool load_c,
                             l2_prefetch next)
{
    (void)next;
    for (int i = 0; i < MR; i += 6)
        for (int j = 0; j < NR; j += 16) sub_avx2_bf16(ks, a + i, b + j, c + i * ldc + j, ldc, load_c);
}
#endif

static micro_kernel *kernel_for(pc_isa isa, pc_pack_dtype dtype)
{
#if PC_X86
    if (isa == PC_ISA_AVX512) return dtype == PC_PACK_F32 ? kernel_avx512_f32 : kernel_avx512_bf16;
    if (isa == PC_ISA_AVX2) return dtype == PC_PACK_F32 ? kernel_avx2_f32 : kernel_avx2_bf16;
#endif
    (void)isa;
    return dtype == PC_PACK_F32 ? kernel_portable_f32 : kernel_portable_bf16;
}

/* ---- the blocked product ---- */

typedef struct {
    const float *A;
    int lda, M;
    const pc_packed_b *B;
    float *C;
    int ldc;
    bool accumulate;
    const float *bias;   /* [N] or NULL: the start of C's sums in place of zeros (accumulate false) */
    pc_isa isa;
    micro_kernel *kernel;
} product;

/* Tile `tile` of a sweep's `tiles` prefetches this share of the panel that follows `panel` in B (none after the
 * sweep's last panel), spread evenly over its ks steps. */
static l2_prefetch next_panel_share(const uint32_t *panel, int ks, bool has_next, int tile, int tiles)
{
    int all = has_next ? ks * NR * (int)sizeof(uint32_t) / 64 : 0, share = (all + tiles - 1) / tiles;
    int first = tile * share, lines = all - first < share ? all - first : share;
    if (lines <= 0) return (l2_prefetch){ NULL, 0, 1 };
    return (l2_prefetch){ (const char *)(panel + (size_t)ks * NR) + (size_t)first * 64, lines,
                          ks / lines > 1 ? ks / lines : 1 };
}

/* C rows m_lo..m_hi, columns of panels p_lo..p_hi: for each row block and reduction block, pack A, then
 * sweep the B panels (each reused from L2 across the row block's micro-tiles). */
static void product_part(const product *pr, int m_lo, int m_hi, int p_lo, int p_hi)
{
    _Alignas(64) uint32_t Ap[MC * KC];
    _Alignas(64) float edge[MR * NR];
    const pc_packed_b *B = pr->B;
    for (int m0 = m_lo; m0 < m_hi; m0 += MC) {
        int mc = m_hi - m0 < MC ? m_hi - m0 : MC;
        for (int s0 = 0; s0 < B->steps; s0 += KC) {
            int ks = B->steps - s0 < KC ? B->steps - s0 : KC;
            /* the first reduction block starts from C (accumulate), the bias, or zeros; later ones from C */
            const bool from_bias = s0 == 0 && pr->bias, load_c = s0 > 0 || pr->accumulate || from_bias;
            pack_a(pr->isa, pr->A, pr->lda, pr->M, B->K, B->dtype, m0, mc, s0, ks, Ap);
            for (int p = p_lo; p < p_hi; p++) {
                const uint32_t *panel = B->data + (size_t)s0 * B->npad + (size_t)p * ks * NR;
                int n0 = p * NR, nr = B->N - n0 < NR ? B->N - n0 : NR;
                for (int i = 0; i < mc; i += MR) {
                    int mr = mc - i < MR ? mc - i : MR;
                    l2_prefetch next = next_panel_share(panel, ks, p + 1 < p_hi, i / MR, (mc + MR - 1) / MR);
                    float *c = pr->C + (long)(m0 + i) * pr->ldc + n0;
                    /* the bias goes into the tile just before its kernel loads it (from L1) */
                    const bool whole = mr == MR && nr == NR;
                    float *tile = whole ? c : edge;
                    const long ld = whole ? pr->ldc : NR;
                    for (int r = 0; from_bias && r < mr; r++) memcpy(tile + r * ld, pr->bias + n0, sizeof(float) * nr);
                    if (whole) {
                        pr->kernel(ks, Ap + (size_t)i * ks, panel, c, pr->ldc, load_c, next);
                        continue;
                    }
                    for (int r = 0; load_c && !from_bias && r < mr; r++)
                        memcpy(edge + r * NR, c + (long)r * pr->ldc, sizeof(float) * nr);
                    pr->kernel(ks, Ap + (size_t)i * ks, panel, edge, NR, load_c, next);
                    for (int r = 0; r < mr; r++) memcpy(c + (long)r * pr->ldc, edge + r * NR, sizeof(float) * nr);
                }
            }
        }
    }
}

void pc_pgemm(const float *A, int lda, int M, const pc_packed_b *B, float *C, int ldc, bool accumulate,
              const float *bias)
{
    if (M <= 0 || B->N <= 0) return;
    if (B->K == 0) {
        for (int m = 0; !accumulate && m < M; m++) {
            if (bias) memcpy(C + (long)m * ldc, bias, sizeof(float) * (size_t)B->N);
            else memset(C + (long)m * ldc, 0, sizeof(float) * (size_t)B->N);
        }
        return;
    }
    pc_isa isa = kernel_isa(B->dtype);
    product pr = { A, lda, M, B, C, ldc, accumulate, accumulate ? NULL : bias, isa, kernel_for(isa, B->dtype) };
    int panels = B->npad / NR;
    int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
    /* Split the rows, so that each thread packs only its own A; or the columns, so that each streams only its
     * part of B: with few rows (generation, small batches), and from N >= 2M on, where every thread streaming
     * all of B cost more than packing A twice (bench_gemm's frozen-weight table: up to +13 %). */
    bool split_rows = M >= threads * 4 * MR && B->N < 2L * M;
    int parts = split_rows ? threads : (panels < threads ? panels : threads);
    if (parts < 1) parts = 1;
#pragma omp parallel num_threads(parts)
    {
        int t = omp_get_thread_num(), n = omp_get_num_threads();
        if (split_rows) {
            int tiles = (M + MR - 1) / MR;
            int lo = (int)((long)tiles * t / n) * MR, hi = (int)((long)tiles * (t + 1) / n) * MR;
            product_part(&pr, lo, hi < M ? hi : M, 0, panels);
        } else {
            product_part(&pr, 0, M, (int)((long)panels * t / n), (int)((long)panels * (t + 1) / n));
        }
    }
}

/* ---- a Linear's weight ---- */

pc_status pc_pack_weight(pc_packed_weight *p, const float *W, bool w_in_out, int in, int out, pc_pack_dtype dtype,
                         pc_error *err)
{
    *p = (pc_packed_weight){ .src = W, .in = in, .out = out };
    /* W [out, in]: forward B[k=i][n=o] = W[o*in + i] (transposed), backward B[k=o][n=i] = W[o*in + i];
     * W [in, out] the other way round */
    int ld = w_in_out ? out : in;
    pc_status s = pc_pack_b(&p->fwd, W, ld, !w_in_out, in, out, dtype, err);
    if (!s) s = pc_pack_b(&p->bwd, W, ld, w_in_out, out, in, dtype, err);
    if (s) pc_packed_weight_free(p);
    return s;
}

void pc_packed_weight_free(pc_packed_weight *p)
{
    pc_packed_b_free(&p->fwd);
    pc_packed_b_free(&p->bwd);
}

void pc_packed_xwT(const pc_packed_weight *p, const float *x, int rows, float *y, const float *bias, bool accumulate)
{
    pc_pgemm(x, p->in, rows, &p->fwd, y, p->out, accumulate, bias);
}

void pc_packed_dyW(const pc_packed_weight *p, const float *dy, int rows, float *dx, bool accumulate)
{
    pc_pgemm(dy, p->out, rows, &p->bwd, dx, p->in, accumulate, NULL);
}
