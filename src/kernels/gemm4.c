#include "kernels/gemm4.h"

#include <limits.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/gemm.h"

#if defined(__x86_64__)
#define PC_Q4_X86 1
#include <immintrin.h>
#else
#define PC_Q4_X86 0
#endif

#define BF16_TARGET "avx512bf16,avx512f,avx512bw,avx512vl"

enum {
    TILE = 64,  /* most rows (forward) or columns (dx) of W one thread dequantizes at a time */
    PANEL = 16, /* activation rows per packed panel = fp32 lanes of a zmm register */
    NR = 8,     /* W rows (forward) or columns (dx) per micro-kernel call */
    MR = 3,     /* activation panels per micro-kernel call: MR x NR zmm accumulators */
    PREFETCH_PAIRS = 8, /* dx: W row pairs requested ahead of their unpacking (prefetch_column_pairs) */
    KC = 512,   /* bf16 pairs of the reduction per pass: the panels' slices stay in L2, and the accumulators
                 * are reloaded rarely (128: 4-7 % slower on TinyLlama's shapes, bench_quant4) */
    ALIGN = 64,
};

typedef enum { FORWARD, INPUT_GRAD } direction;

/* ---- bf16 rounding, as VCVTNEPS2BF16: NaN stays (quiet) NaN, subnormals become signed zero, else
 * round to nearest even ---- */

static uint16_t bf16_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    if ((u & 0x7f800000u) == 0) u &= 0x80000000u;
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static float bf16_round(float f)
{
    uint32_t u = (uint32_t)bf16_bits(f) << 16;
    float r;
    memcpy(&r, &u, sizeof r);
    return r;
}

static void round_bf16_inplace(float *v, int64_t n)
{
    for (int64_t i = 0; i < n; i++) v[i] = bf16_round(v[i]);
}

bool pc_q4_bf16_native(void)
{
#if PC_Q4_X86
    return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl");
#else
    return false;
#endif
}

/* ---- scratch layout: [shared part][one part per thread], every part 64-byte aligned ---- */

typedef struct {
    pc_q4_compute compute; /* BF16 only when native */
    int64_t M, N, K;       /* N = W rows (out), K = W cols (in) */
    size_t shared_bytes, thread_bytes;
} layout;

static size_t round_up(size_t n) { return (n + ALIGN - 1) / ALIGN * ALIGN; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t panels_of(int64_t M) { return (M + PANEL - 1) / PANEL; }
static int64_t pairs_of(int64_t L) { return (L + 1) / 2; }

static layout make_layout(const pc_q4_weight *w, int64_t M, pc_q4_compute compute)
{
    layout l = {.compute = compute, .M = M, .N = w->rows, .K = w->cols};
    if (compute == PC_Q4_COMPUTE_BF16 && !pc_q4_bf16_native()) l.compute = PC_Q4_COMPUTE_BF16_EMULATED;
    size_t f = sizeof(float), u = sizeof(uint32_t);
    int64_t L = max64(l.N, l.K);
    size_t tile_f32 = round_up(f * (size_t)max64(TILE * l.K, l.N * TILE));
    if (l.compute == PC_Q4_COMPUTE_F32) {
        l.thread_bytes = tile_f32;
    } else if (l.compute == PC_Q4_COMPUTE_BF16_EMULATED) {
        l.shared_bytes = round_up(f * (size_t)(M * L));
        l.thread_bytes = tile_f32;
    } else {
        size_t acc = round_up(f * (size_t)(panels_of(M) * PANEL * TILE)) + round_up(f * MR * PANEL * TILE);
        size_t fwd = round_up(u * (size_t)(TILE * pairs_of(l.K))) + round_up(f * (size_t)l.K);
        size_t bwd = round_up(u * (size_t)(pairs_of(l.N) * TILE)) + round_up(f * 2 * TILE);
        l.shared_bytes = round_up(u * (size_t)(panels_of(M) * PANEL * pairs_of(L)));
        l.thread_bytes = acc + (fwd > bwd ? fwd : bwd);
    }
    return l;
}

size_t pc_q4_scratch_bytes(const pc_q4_weight *w, int64_t M, pc_q4_compute compute, int threads)
{
    layout l = make_layout(w, M, compute);
    return ALIGN + l.shared_bytes + (size_t)(threads > 0 ? threads : 1) * l.thread_bytes;
}

/* Rows or columns per tile: at most TILE, few enough that every thread gets a tile. */
static int64_t tile_extent(int64_t n, int threads)
{
    int64_t e = (n + threads - 1) / threads;
    e = (e + NR - 1) / NR * NR;
    return e < NR ? NR : e > TILE ? TILE : e;
}

/* ---- fp32 tiles and OpenBLAS (F32; BF16_EMULATED rounds activations and tiles first) ---- */

static void dequantize_tile(const pc_q4_weight *w, direction dir, int64_t t0, int64_t tn, float *tile, bool round)
{
    if (dir == FORWARD) {
        pc_q4_dequantize_range(w, t0 * w->cols, tn * w->cols, tile);
    } else {
        for (int64_t n = 0; n < w->rows; n++) pc_q4_dequantize_range(w, n * w->cols + t0, tn, tile + n * tn);
    }
    if (round) round_bf16_inplace(tile, dir == FORWARD ? tn * w->cols : w->rows * tn);
}

static void matmul_f32(const pc_q4_weight *w, const layout *l, direction dir, const float *in, float *out,
                       bool accumulate, char *shared, char *per_thread, int threads)
{
    bool round = l->compute == PC_Q4_COMPUTE_BF16_EMULATED;
    int64_t M = l->M, N = l->N, K = l->K, L = dir == FORWARD ? K : N;
    const float *a = in;
    if (round) {
        float *r = (float *)shared;
#pragma omp parallel for schedule(static) num_threads(threads)
        for (int64_t m = 0; m < M; m++) {
            for (int64_t i = 0; i < L; i++) r[m * L + i] = bf16_round(in[m * L + i]);
        }
        a = r;
    }
    int64_t extent = tile_extent(dir == FORWARD ? N : K, threads);
    int64_t tiles = ((dir == FORWARD ? N : K) + extent - 1) / extent;
    float beta = accumulate ? 1.0f : 0.0f;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (int64_t t = 0; t < tiles; t++) {
        float *tile = (float *)(per_thread + (size_t)omp_get_thread_num() * l->thread_bytes);
        int64_t t0 = t * extent, tn = min64(extent, (dir == FORWARD ? N : K) - t0);
        dequantize_tile(w, dir, t0, tn, tile, round);
        if (dir == FORWARD)
            pc_sgemm(false, true, (int)M, (int)tn, (int)K, 1.0f, a, (int)K, tile, (int)K, beta, out + t0, (int)N);
        else
            pc_sgemm(false, false, (int)M, (int)tn, (int)N, 1.0f, a, (int)N, tile, (int)tn, beta, out + t0, (int)K);
    }
}

#if PC_Q4_X86
/* ---- AVX-512 BF16: activations packed as panels of 16 rows, [panel][pair][16] uint32 (a bf16 pair
 * along the reduction per row); W as bf16 pairs along the reduction too: forward the natural
 * row-major rows of a tile, for dx rows 2p and 2p+1 interleaved. The micro-kernel keeps up to MR = 3
 * panels x NR = 8 outputs (48 x 8 sums) in 24 zmm accumulators; per reduction pair it loads one
 * activation vector per panel and broadcasts one W pair per output (VDPBF16PS: two bf16 products
 * added to each fp32 lane). ---- */

__attribute__((target(BF16_TARGET))) static void pairs_from_floats(const float *src, int64_t L, uint32_t *dst)
{
    int64_t s = 0;
    for (; 2 * s + 32 <= L; s += 16) {
        __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + 2 * s + 16), _mm512_loadu_ps(src + 2 * s));
        _mm512_storeu_si512(dst + s, (__m512i)v);
    }
    for (; s < pairs_of(L); s++) {
        uint32_t lo = bf16_bits(src[2 * s]), hi = 2 * s + 1 < L ? bf16_bits(src[2 * s + 1]) : 0;
        dst[s] = lo | hi << 16;
    }
}

/* dst[i] = (bf16(lo[i]), bf16(hi[i])) for i < n. */
__attribute__((target(BF16_TARGET))) static void interleave_pairs(const float *lo, const float *hi, int64_t n,
                                                                  uint32_t *dst)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i l = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(lo + i)));
        __m512i h = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(hi + i)));
        _mm512_storeu_si512(dst + i, _mm512_or_si512(l, _mm512_slli_epi32(h, 16)));
    }
    for (; i < n; i++) dst[i] = (uint32_t)bf16_bits(lo[i]) | (uint32_t)bf16_bits(hi[i]) << 16;
}

/* 16 x 16 transpose of 32-bit words: out[c] lane r = in[r] lane c. Words within 128-bit lanes first (two unpack
 * stages: u[4g + c], lane l holds column 4l + c of rows 4g..4g+3), then the 128-bit lanes of each column
 * quartet (two lane shuffles). */
__attribute__((target(BF16_TARGET))) static void transpose_16x16(const __m512i in[16], __m512i out[16])
{
    __m512i t[16], u[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(in[i], in[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(in[i], in[i + 1]);
    }
    for (int g = 0; g < 16; g += 4) {
        u[g] = _mm512_unpacklo_epi64(t[g], t[g + 2]);
        u[g + 1] = _mm512_unpackhi_epi64(t[g], t[g + 2]);
        u[g + 2] = _mm512_unpacklo_epi64(t[g + 1], t[g + 3]);
        u[g + 3] = _mm512_unpackhi_epi64(t[g + 1], t[g + 3]);
    }
    for (int c = 0; c < 4; c++) {
        __m512i x0 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x44), x1 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xEE);
        __m512i y0 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x44), y1 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xEE);
        out[c] = _mm512_shuffle_i32x4(x0, y0, 0x88);
        out[4 + c] = _mm512_shuffle_i32x4(x0, y0, 0xDD);
        out[8 + c] = _mm512_shuffle_i32x4(x1, y1, 0x88);
        out[12 + c] = _mm512_shuffle_i32x4(x1, y1, 0xDD);
    }
}

/* Panel p's pairs s0..s0+15 (fewer at the end): 16 rows x 16 pairs rounded to bf16 and transposed to the panel
 * layout, 16 full-line stores; an edge block (rows past M, pairs past L) goes row by row, zero-padded. */
__attribute__((target(BF16_TARGET))) static void pack_panel_block(const float *src, int64_t M, int64_t L,
                                                                  int64_t p, int64_t s0, uint32_t *A)
{
    int64_t steps = pairs_of(L), ns = min64(PANEL, steps - s0);
    uint32_t *dst = A + (p * steps + s0) * PANEL;
    if ((p + 1) * PANEL <= M && 2 * (s0 + PANEL) <= L) {
        __m512i rows[PANEL], cols[PANEL];
        for (int r = 0; r < PANEL; r++) {
            const float *x = src + (p * PANEL + r) * L + 2 * s0;
            rows[r] = (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + 16), _mm512_loadu_ps(x));
        }
        transpose_16x16(rows, cols);
        for (int s = 0; s < PANEL; s++) _mm512_storeu_si512(dst + s * PANEL, cols[s]);
        return;
    }
    uint32_t buf[PANEL];
    for (int64_t r = 0; r < PANEL; r++) {
        int64_t m = p * PANEL + r;
        if (m < M)
            pairs_from_floats(src + m * L + 2 * s0, min64(2 * ns, L - 2 * s0), buf);
        else
            memset(buf, 0, sizeof buf);
        for (int64_t s = 0; s < ns; s++) dst[s * PANEL + r] = buf[s];
    }
}

__attribute__((target(BF16_TARGET))) static void pack_activations(const float *src, int64_t M, int64_t L,
                                                                  uint32_t *A, int threads)
{
    int64_t blocks = (pairs_of(L) + PANEL - 1) / PANEL, panels = panels_of(M);
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t pb = 0; pb < panels * blocks; pb++) pack_panel_block(src, M, L, pb / blocks, pb % blocks * PANEL, A);
}

/* The sums of one panel x group, NR = 8 vectors of PANEL = 16 rows, as 16 rows of 8 sums:
 * rows[r][j] = v[j][r]. Two unpack stages gather 4 columns of one row per 128-bit lane, then a
 * two-source permute joins the lanes of columns 0-3 and 4-7. */
__attribute__((target(BF16_TARGET))) static void transpose_8x16(const __m512 v[NR], __m256 rows[PANEL])
{
    __m512 t[NR], u[NR];
    for (int j = 0; j < NR; j += 2) {   /* per lane l: (v_j, v_j+1) at rows 4l, 4l+1 (lo) and 4l+2, 4l+3 (hi) */
        t[j] = _mm512_unpacklo_ps(v[j], v[j + 1]);
        t[j + 1] = _mm512_unpackhi_ps(v[j], v[j + 1]);
    }
    for (int h = 0; h < NR; h += 4) {   /* u[h + q], lane l: columns h..h+3 of row 4l + q */
        __m512d t0 = _mm512_castps_pd(t[h]), t1 = _mm512_castps_pd(t[h + 1]);
        __m512d t2 = _mm512_castps_pd(t[h + 2]), t3 = _mm512_castps_pd(t[h + 3]);
        u[h] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
        u[h + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
        u[h + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
        u[h + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
    }
    const __m512i first = _mm512_set_epi32(23, 22, 21, 20, 7, 6, 5, 4, 19, 18, 17, 16, 3, 2, 1, 0);
    const __m512i second = _mm512_set_epi32(31, 30, 29, 28, 15, 14, 13, 12, 27, 26, 25, 24, 11, 10, 9, 8);
    for (int q = 0; q < 4; q++) {
        __m512 rows_q_4q = _mm512_permutex2var_ps(u[q], first, u[4 + q]);     /* rows q, 4 + q */
        __m512 rows_8q_12q = _mm512_permutex2var_ps(u[q], second, u[4 + q]); /* rows 8 + q, 12 + q */
        rows[q] = _mm512_castps512_ps256(rows_q_4q);
        rows[4 + q] = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(rows_q_4q), 1));
        rows[8 + q] = _mm512_castps512_ps256(rows_8q_12q);
        rows[12 + q] = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(rows_8q_12q), 1));
    }
}

/* Where a micro-kernel call's sums go on the reduction's last pass: `at` is the stage's row i * PANEL (for panel
 * p + i), column g * NR; cols: the group's columns inside the tile. */
typedef struct {
    float *at;
    __mmask8 cols;
} out_block;

/* One panel's sums (v[j]: 16 rows of output column j) as 16 rows of the stage (row stride TILE). */
__attribute__((target(BF16_TARGET))) static void store_panel(const __m512 v[NR], float *stage, __mmask8 cols)
{
    __m256 r[PANEL];
    transpose_8x16(v, r);
    for (int q = 0; q < PANEL; q++) _mm256_mask_storeu_ps(stage + q * TILE, cols, r[q]);
}

/* The stage's first `rows` rows (cols floats each) into out (=, or += when accumulate): whole runs of a row's
 * columns. Storing each micro-kernel call's 8 columns into out directly wrote 32-byte pieces of 16-48 rows whose
 * addresses, N or K floats apart, share an L1 set when that is 2048 (2048x2048 forward: 15-20 % slower than
 * 5632x2048 per flop, bench_quant4). */
__attribute__((target(BF16_TARGET))) static void flush_stage(const float *stage, int64_t rows, int64_t cols,
                                                             float *out, int64_t ldo, bool accumulate)
{
    __mmask16 tail = (__mmask16)((1u << (cols % 16)) - 1);
    for (int64_t r = 0; r < rows; r++) {
        const float *s = stage + r * TILE;
        float *o = out + r * ldo;
        int64_t c = 0;
        for (; c + 16 <= cols; c += 16) {
            __m512 v = _mm512_loadu_ps(s + c);
            _mm512_storeu_ps(o + c, accumulate ? _mm512_add_ps(v, _mm512_loadu_ps(o + c)) : v);
        }
        if (tail) {
            __m512 v = _mm512_maskz_loadu_ps(tail, s + c);
            _mm512_mask_storeu_ps(o + c, tail, accumulate ? _mm512_add_ps(v, _mm512_maskz_loadu_ps(tail, o + c)) : v);
        }
    }
}

__attribute__((target(BF16_TARGET), always_inline)) static inline void dot_panels(
    int mr, const uint32_t *a, int64_t a_stride, const uint32_t *const b[NR], int64_t sp, int64_t steps, float *c,
    int64_t c_stride, bool zero, const out_block *last)
{
    __m512 acc[MR][NR];
#pragma GCC unroll 3
    for (int i = 0; i < mr; i++) {
#pragma GCC unroll 8
        for (int j = 0; j < NR; j++) acc[i][j] = zero ? _mm512_setzero_ps() : _mm512_loadu_ps(c + i * c_stride + PANEL * j);
    }
    for (int64_t s = 0; s < steps; s++) {
        __m512bh x[MR];
#pragma GCC unroll 3
        for (int i = 0; i < mr; i++) x[i] = (__m512bh)_mm512_loadu_si512(a + i * a_stride + s * PANEL);
#pragma GCC unroll 8
        for (int j = 0; j < NR; j++) {
            __m512bh wj = (__m512bh)_mm512_set1_epi32((int)b[j][s * sp]);
#pragma GCC unroll 3
            for (int i = 0; i < mr; i++) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], x[i], wj);
        }
    }
    if (last) {   /* the reduction's last pass: to the stage, 16 rows of 8 columns per panel */
        for (int i = 0; i < mr; i++) store_panel(acc[i], last->at + i * PANEL * TILE, last->cols);
        return;
    }
#pragma GCC unroll 3
    for (int i = 0; i < mr; i++) {
#pragma GCC unroll 8
        for (int j = 0; j < NR; j++) _mm512_storeu_ps(c + i * c_stride + PANEL * j, acc[i][j]);
    }
}

/* mr = 1, 2, 3 panels, each with the accumulator count fixed at compile time. */
#define DOT_PANELS(MR_)                                                                                          \
    __attribute__((target(BF16_TARGET))) static void dot_panels_##MR_(                                           \
        const uint32_t *a, int64_t a_stride, const uint32_t *const b[NR], int64_t sp, int64_t steps, float *c,  \
        int64_t c_stride, bool zero, const out_block *last)                                                      \
    {                                                                                                            \
        dot_panels(MR_, a, a_stride, b, sp, steps, c, c_stride, zero, last);                                     \
    }
DOT_PANELS(1)
DOT_PANELS(2)
DOT_PANELS(3)

/* The packed W tile seen by the micro-kernel: output column j's pair at reduction step s is
 * base[j * col_stride + s * step_stride], for j < cols. */
typedef struct {
    const uint32_t *base;
    int64_t col_stride, step_stride, cols;
} packed_tile;

/* out[m * ldo + j] (=, or += when accumulate) sum over the reduction of A row m · tile column j. The reduction
 * runs in passes of KC pairs; the partial sums wait in acc between passes, and on the last pass each run of
 * panels goes through the stage ([MR * PANEL][TILE] floats, in L1) into out. */
__attribute__((target(BF16_TARGET))) static void tile_product(const uint32_t *A, int64_t M, int64_t steps,
                                                              packed_tile t, float *acc, float *stage, float *out,
                                                              int64_t ldo, bool accumulate)
{
    int64_t panels = panels_of(M), groups = (t.cols + NR - 1) / NR;
    for (int64_t k0 = 0; k0 < steps; k0 += KC) {
        int64_t ks = min64(KC, steps - k0);
        bool last_pass = k0 + ks == steps;
        for (int64_t p = 0, mr; p < panels; p += mr) {
            mr = panels - p == 4 ? 2 : min64(MR, panels - p);   /* 4 panels run faster as 2 + 2 than as 3 + 1 */
            const uint32_t *a = A + (p * steps + k0) * PANEL;
            for (int64_t g = 0; g < groups; g++) {
                const uint32_t *b[NR];
                for (int j = 0; j < NR; j++) b[j] = t.base + min64(g * NR + j, t.cols - 1) * t.col_stride + k0 * t.step_stride;
                float *c = acc + (p * groups + g) * NR * PANEL;
                int64_t a_stride = steps * PANEL, c_stride = groups * NR * PANEL;
                out_block to_stage = {stage + g * NR, (__mmask8)((1u << min64(NR, t.cols - g * NR)) - 1)};
                const out_block *last = last_pass ? &to_stage : NULL;
                switch (mr) {
                case 3: dot_panels_3(a, a_stride, b, t.step_stride, ks, c, c_stride, k0 == 0, last); break;
                case 2: dot_panels_2(a, a_stride, b, t.step_stride, ks, c, c_stride, k0 == 0, last); break;
                default: dot_panels_1(a, a_stride, b, t.step_stride, ks, c, c_stride, k0 == 0, last);
                }
            }
            if (last_pass)
                flush_stage(stage, min64(mr * PANEL, M - p * PANEL), t.cols, out + p * PANEL * ldo, ldo, accumulate);
        }
    }
}

/* ---- nibbles straight to bf16: when every 64-element block lies whole inside what a tile reads, each block's
 * 16 possible values are rounded to bf16 once, into a 16-entry table, and the nibbles index it (VPERMD). Same
 * roundings as dequantizing to fp32 (table[code] * scale, subnormals flushed) and then rounding to bf16. ---- */

/* Block b's 16 values as bf16, one per 32-bit lane (low half). */
__attribute__((target(BF16_TARGET))) static __m512i block_bf16_table(const pc_q4_weight *w, __m512 codes, int64_t b)
{
    __m512 v = _mm512_mul_ps(codes, _mm512_set1_ps(pc_q4_block_scale(w, b)));
    return _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(v));
}

/* Forward, K % 64 == 0: the row starting at element `start` as K / 2 bf16 pairs (k, k+1). 16 bytes hold 16
 * pairs: the high nibble is the pair's first (low) half. */
__attribute__((target(BF16_TARGET))) static void row_pairs_direct(const pc_q4_weight *w, int64_t start, __m512 codes,
                                                                  uint32_t *dst)
{
    for (int64_t e = 0; e < w->cols; e += PC_Q4_BLOCK) {
        __m512i table = block_bf16_table(w, codes, (start + e) / PC_Q4_BLOCK);
        for (int64_t c = 0; c < PC_Q4_BLOCK; c += 32) {
            __m512i bytes = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(w->packed + (start + e + c) / 2)));
            __m512i first = _mm512_permutexvar_epi32(_mm512_srli_epi32(bytes, 4), table);
            __m512i second = _mm512_permutexvar_epi32(bytes, table);
            _mm512_storeu_si512(dst + (e + c) / 2, _mm512_or_si512(first, _mm512_slli_epi32(second, 16)));
        }
    }
}

/* dx, columns t0..t0+tn inside one block of every row (K % 64 == 0, t0 % 64 == 0, tn % 16 == 0): row pair p
 * as tn words (bf16 of row 2p, of row 2p+1). */
__attribute__((target(BF16_TARGET))) static void column_pairs_direct(const pc_q4_weight *w, int64_t p, int64_t t0,
                                                                     int64_t tn, __m512 codes, uint32_t *dst)
{
    int64_t K = w->cols, lo = 2 * p * K + t0, hi = lo + K;
    bool has_hi = 2 * p + 1 < w->rows;
    __m512i table_lo = block_bf16_table(w, codes, lo / PC_Q4_BLOCK);
    __m512i table_hi = has_hi ? block_bf16_table(w, codes, hi / PC_Q4_BLOCK) : _mm512_setzero_si512();
    for (int64_t j = 0; j < tn; j += 16) {
        __m512i a = _mm512_permutexvar_epi32(pc_q4_codes16(w->packed, lo + j), table_lo);
        __m512i b = has_hi ? _mm512_permutexvar_epi32(pc_q4_codes16(w->packed, hi + j), table_hi)
                           : _mm512_setzero_si512();
        _mm512_storeu_si512(dst + j, _mm512_or_si512(a, _mm512_slli_epi32(b, 16)));
    }
}

/* dx reads tn / 2 <= 32 bytes (one cache line: t0 and K are multiples of 64) from each row of W, rows K / 2 bytes
 * apart. The hardware prefetcher does not follow such strides across pages, so the two rows of pair p are
 * requested PREFETCH_PAIRS pairs ahead of their unpacking. (Always inlined: GCC finds a function that only prefetches free of side effects and drops its calls.) */
__attribute__((always_inline)) static inline void prefetch_column_pairs(const pc_q4_weight *w, int64_t p, int64_t t0)
{
    int64_t K = w->cols;
    if (2 * p < w->rows) __builtin_prefetch(w->packed + (2 * p * K + t0) / 2);
    if (2 * p + 1 < w->rows) __builtin_prefetch(w->packed + ((2 * p + 1) * K + t0) / 2);
}

/* Packs the W tile (forward: rows t0..t0+tn as bf16 rows; dx: columns t0..t0+tn as row pairs). */
__attribute__((target(BF16_TARGET))) static packed_tile pack_w_tile(const pc_q4_weight *w, direction dir,
                                                                    int64_t t0, int64_t tn, uint32_t *Wp, float *row)
{
    int64_t K = w->cols, N = w->rows;
    const __m512 codes = _mm512_loadu_ps(pc_q4_code_table(w->type));
    bool whole_blocks = K % PC_Q4_BLOCK == 0;
    if (dir == FORWARD && whole_blocks) {
        for (int64_t r = 0; r < tn; r++) row_pairs_direct(w, (t0 + r) * K, codes, Wp + r * (K / 2));
        return (packed_tile){Wp, K / 2, 1, tn};
    }
    if (dir == INPUT_GRAD && whole_blocks && t0 % PC_Q4_BLOCK == 0 && tn % 16 == 0) {
        for (int64_t p = 0; p < pairs_of(N); p++) {
            prefetch_column_pairs(w, p + PREFETCH_PAIRS, t0);
            column_pairs_direct(w, p, t0, tn, codes, Wp + p * tn);
        }
        return (packed_tile){Wp, 1, tn, tn};
    }
    if (dir == FORWARD) {
        int64_t steps = pairs_of(K);
        for (int64_t r = 0; r < tn; r++) {
            pc_q4_dequantize_range(w, (t0 + r) * K, K, row);
            pairs_from_floats(row, K, Wp + r * steps);
        }
        return (packed_tile){Wp, steps, 1, tn};
    }
    float *lo = row, *hi = row + TILE;
    for (int64_t p = 0; p < pairs_of(N); p++) {
        pc_q4_dequantize_range(w, 2 * p * K + t0, tn, lo);
        if (2 * p + 1 < N)
            pc_q4_dequantize_range(w, (2 * p + 1) * K + t0, tn, hi);
        else
            memset(hi, 0, sizeof(float) * (size_t)tn);
        interleave_pairs(lo, hi, tn, Wp + p * tn);
    }
    return (packed_tile){Wp, 1, tn, tn};
}

__attribute__((target(BF16_TARGET))) static void matmul_bf16(const pc_q4_weight *w, const layout *l, direction dir,
                                                             const float *in, float *out, bool accumulate,
                                                             char *shared, char *per_thread, int threads)
{
    int64_t M = l->M, N = l->N, K = l->K, L = dir == FORWARD ? K : N, outer = dir == FORWARD ? N : K;
    uint32_t *A = (uint32_t *)shared;
    pack_activations(in, M, L, A, threads);
    size_t acc_bytes = round_up(sizeof(float) * (size_t)(panels_of(M) * PANEL * TILE));
    size_t stage_bytes = round_up(sizeof(float) * MR * PANEL * TILE);
    size_t wp_bytes = dir == FORWARD ? round_up(sizeof(uint32_t) * (size_t)(TILE * pairs_of(K)))
                                     : round_up(sizeof(uint32_t) * (size_t)(pairs_of(N) * TILE));
    int64_t extent = tile_extent(outer, threads), tiles = (outer + extent - 1) / extent;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (int64_t t = 0; t < tiles; t++) {
        char *mine = per_thread + (size_t)omp_get_thread_num() * l->thread_bytes;
        float *acc = (float *)mine;
        float *stage = (float *)(mine + acc_bytes);
        uint32_t *Wp = (uint32_t *)(mine + acc_bytes + stage_bytes);
        float *row = (float *)(mine + acc_bytes + stage_bytes + wp_bytes);
        int64_t t0 = t * extent, tn = min64(extent, outer - t0);
        packed_tile pt = pack_w_tile(w, dir, t0, tn, Wp, row);
        tile_product(A, M, pairs_of(L), pt, acc, stage, out + t0, dir == FORWARD ? N : K, accumulate);
    }
}
#endif

/* ---- entry points ---- */

static pc_status matmul(const pc_q4_weight *w, pc_q4_compute compute, direction dir, const float *in, int64_t M,
                        float *out, bool accumulate, void *scratch, size_t scratch_bytes, pc_error *err)
{
    const char *what = dir == FORWARD ? "4-bit matmul x·Wᵀ" : "4-bit matmul dy·W";
    if (compute != PC_Q4_COMPUTE_F32 && compute != PC_Q4_COMPUTE_BF16 && compute != PC_Q4_COMPUTE_BF16_EMULATED)
        return pc_fail(err, PEFTC_ERR_INVALID, "%s: unknown compute type %d", what, (int)compute);
    if (M < 0 || M > INT_MAX || w->rows > INT_MAX || w->cols > INT_MAX)
        return pc_fail(err, PEFTC_ERR_INVALID, "%s: sizes M=%lld, W [%lld, %lld] out of range", what, (long long)M,
                       (long long)w->rows, (long long)w->cols);
    if (M == 0) return PEFTC_OK;
    layout l = make_layout(w, M, compute);
    int threads = omp_get_max_threads();
    void *own = NULL;
    if (!scratch) {
        scratch_bytes = pc_q4_scratch_bytes(w, M, compute, threads);
        scratch = own = malloc(scratch_bytes);
        if (!own) return pc_fail(err, PEFTC_ERR_NOMEM, "%s: out of memory for %zu bytes of scratch", what, scratch_bytes);
    }
    size_t need = pc_q4_scratch_bytes(w, M, compute, 1);
    if (scratch_bytes < need)
        return pc_fail(err, PEFTC_ERR_INVALID, "%s: scratch of %zu bytes is too small (at least %zu)", what,
                       scratch_bytes, need);
    size_t fit = 1 + (scratch_bytes - need) / l.thread_bytes;
    if ((size_t)threads > fit) threads = (int)fit;
    char *base = (char *)scratch + (ALIGN - (uintptr_t)scratch % ALIGN) % ALIGN;
    char *per_thread = base + l.shared_bytes;
#if PC_Q4_X86
    if (l.compute == PC_Q4_COMPUTE_BF16)
        matmul_bf16(w, &l, dir, in, out, accumulate, base, per_thread, threads);
    else
#endif
        matmul_f32(w, &l, dir, in, out, accumulate, base, per_thread, threads);
    free(own);
    return PEFTC_OK;
}

pc_status pc_q4_matmul_xwT(const pc_q4_weight *w, pc_q4_compute compute, const float *x, int64_t M, float *y,
                           bool accumulate, void *scratch, size_t scratch_bytes, pc_error *err)
{
    return matmul(w, compute, FORWARD, x, M, y, accumulate, scratch, scratch_bytes, err);
}

pc_status pc_q4_matmul_dyW(const pc_q4_weight *w, pc_q4_compute compute, const float *dy, int64_t M, float *dx,
                           bool accumulate, void *scratch, size_t scratch_bytes, pc_error *err)
{
    return matmul(w, compute, INPUT_GRAD, dy, M, dx, accumulate, scratch, scratch_bytes, err);
}
