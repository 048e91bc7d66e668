#include "kernels/thin.h"

#include <omp.h>
#include <string.h>

#include "base/threads.h"
#include "base/isa.h"

#include "kernels/x86.h"

enum {
    CHUNK = 64,   /* columns a portable kernel sums at a time, on the stack */
    BLOCK = 32,   /* columns of G one pc_thin_grad task owns at most (two AVX-512 vectors) */
    ROWS = 4,     /* rows of x one pc_thin_down / pc_thin_up task owns */
    GRAD_ROWS = 64,   /* rows of x pc_thin_grad sums over all its column blocks before it moves on */
};

/* The dropout factor of element idx (as nn.Dropout: 1/(1-p) kept, 0 dropped; 1 without a mask). */
static inline float factor(pc_thin_mask m, long idx)
{
    return m.keep ? (m.keep[idx] ? m.scale : 0.0f) : 1.0f;
}

static inline int min_int(int a, int b) { return a < b ? a : b; }

/* ---------- portable C ---------- */

static void down_row_portable(float *hi, const float *xi, pc_thin_mask m, long first, const float *F, int n, int r,
                              float alpha)
{
    for (int k = 0; k < r; k++) {
        const float *fk = F + (long)k * n;
        float sum = 0.0f;
        for (int j = 0; j < n; j++) sum += xi[j] * factor(m, first + j) * fk[j];
        hi[k] = alpha * sum;
    }
}

static void up_row_portable(float *yi, pc_thin_mask m, long first, const float *hi, const float *F, int n, int r,
                            float alpha)
{
    for (int j0 = 0; j0 < n; j0 += CHUNK) {
        const int cnt = min_int(CHUNK, n - j0);
        float acc[CHUNK] = { 0 };
        for (int k = 0; k < r; k++) {
            const float hk = hi[k], *fk = F + (long)k * n + j0;
            #pragma omp simd
            for (int c = 0; c < cnt; c++) acc[c] += hk * fk[c];
        }
        for (int c = 0; c < cnt; c++) yi[j0 + c] += factor(m, first + j0 + c) * (alpha * acc[c]);
    }
}

/* G[k, j0 ..] += alpha * sum over the cnt rows from i0 of h[i, k] (x ∘ mask)[i, j0 ..], width columns. */
static void grad_block_portable(float *G, const float *h, const float *x, pc_thin_mask m, int i0, int cnt, int n, int r,
                                float alpha, int j0, int width)
{
    const int cols = min_int(width, n - j0);
    for (int k = 0; k < r; k++) {
        float acc[BLOCK] = { 0 };
        for (int i = i0; i < i0 + cnt; i++) {
            const float hk = h[(long)i * r + k];
            const long first = (long)i * n + j0;
            for (int c = 0; c < cols; c++) acc[c] += hk * (x[first + c] * factor(m, first + c));
        }
        for (int c = 0; c < cols; c++) G[(long)k * n + j0 + c] += alpha * acc[c];
    }
}

/* ---------- AVX-512 ---------- */
#if PC_X86
#define AVX512 __attribute__((target("avx512f")))
#define AVX512_INLINE __attribute__((target("avx512f"), always_inline)) static inline

/* The lanes of the vector at column j of an n-long row that lie inside the row. */
static inline __mmask16 lanes_at(int j, int n)
{
    const int left = n - j;
    return left >= 16 ? (__mmask16)0xFFFF : left <= 0 ? (__mmask16)0 : (__mmask16)((1u << left) - 1);
}

/* The lanes whose keep byte is set, for the bytes at keep[j ..] inside `lanes`. */
AVX512_INLINE __mmask16 kept_lanes(const uint8_t *keep, int j, __mmask16 lanes)
{
    uint8_t tail[16] = { 0 };
    const uint8_t *bytes = keep + j;
    if (lanes != 0xFFFF) {   /* never read past the row */
        memcpy(tail, bytes, (size_t)__builtin_popcount(lanes));
        bytes = tail;
    }
    const __m512i words = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)bytes));
    return _mm512_test_epi32_mask(words, words) & lanes;
}

/* x[j .. j+15] times the dropout factors (keep NULL: as it is); lanes outside the row are 0. */
AVX512_INLINE __m512 load_x(const float *x, const uint8_t *keep, __m512 scale, int j, __mmask16 lanes)
{
    const __m512 v = _mm512_maskz_loadu_ps(lanes, x + j);
    return keep ? _mm512_maskz_mul_ps(kept_lanes(keep, j, lanes), v, scale) : v;
}

/* h[rr, kk] = alpha * (x_rr ∘ mask) · F[kk] for RB rows of x and KB rows of F (constants where inlined): RB·KB
 * independent sums, each vector of x and of F loaded once per tile. */
AVX512_INLINE void down_tile(float *h, int r, const float *x, const uint8_t *keep, __m512 scale, const float *F, int n,
                             int RB, int KB, float alpha)
{
    __m512 acc[4][4];
    #pragma GCC unroll 4
    for (int rr = 0; rr < RB; rr++)
        #pragma GCC unroll 4
        for (int kk = 0; kk < KB; kk++) acc[rr][kk] = _mm512_setzero_ps();
    for (int j = 0; j < n; j += 16) {
        const __mmask16 lanes = lanes_at(j, n);
        __m512 xv[4], fv[4];
        #pragma GCC unroll 4
        for (int rr = 0; rr < RB; rr++) xv[rr] = load_x(x + (long)rr * n, keep ? keep + (long)rr * n : NULL, scale, j, lanes);
        #pragma GCC unroll 4
        for (int kk = 0; kk < KB; kk++) fv[kk] = _mm512_maskz_loadu_ps(lanes, F + (long)kk * n + j);
        #pragma GCC unroll 4
        for (int rr = 0; rr < RB; rr++)
            #pragma GCC unroll 4
            for (int kk = 0; kk < KB; kk++) acc[rr][kk] = _mm512_fmadd_ps(xv[rr], fv[kk], acc[rr][kk]);
    }
    #pragma GCC unroll 4
    for (int rr = 0; rr < RB; rr++)
        #pragma GCC unroll 4
        for (int kk = 0; kk < KB; kk++) h[(long)rr * r + kk] = alpha * _mm512_reduce_add_ps(acc[rr][kk]);
}

/* RB rows of h (a constant where inlined), every k: F taken 4, 2, 1 rows at a time. */
AVX512_INLINE void down_rows(float *h, int r, const float *x, const uint8_t *keep, __m512 scale, const float *F, int n,
                             int RB, float alpha)
{
    int k = 0;
    for (; k + 4 <= r; k += 4) down_tile(h + k, r, x, keep, scale, F + (long)k * n, n, RB, 4, alpha);
    if (r - k >= 2) { down_tile(h + k, r, x, keep, scale, F + (long)k * n, n, RB, 2, alpha); k += 2; }
    if (r - k >= 1) down_tile(h + k, r, x, keep, scale, F + (long)k * n, n, RB, 1, alpha);
}

/* `cnt` (<= ROWS) rows of h from as many rows of x. */
AVX512 static void down_block_avx512(float *h, const float *x, const uint8_t *keep, float scale, const float *F, int n,
                                     int r, int cnt, float alpha)
{
    const __m512 vscale = _mm512_set1_ps(scale);
    if (cnt == ROWS) {
        down_rows(h, r, x, keep, vscale, F, n, ROWS, alpha);
        return;
    }
    for (int i = 0; i < cnt; i++)
        down_rows(h + (long)i * r, r, x + (long)i * n, keep ? keep + (long)i * n : NULL, vscale, F, n, 1, alpha);
}

/* RB rows of y (a constant where inlined) += mask ∘ alpha h F, 64 columns at a time: RB x 4 independent sums,
 * each vector of F loaded once for the RB rows. */
AVX512_INLINE void up_rows(float *y, const uint8_t *keep, __m512 scale, const float *h, const float *F, int n, int r,
                           int RB, float alpha)
{
    const __m512 valpha = _mm512_set1_ps(alpha);
    for (int j = 0; j < n; j += 64) {
        __m512 acc[4][4];
        __mmask16 lanes[4];
        #pragma GCC unroll 4
        for (int v = 0; v < 4; v++) {
            lanes[v] = lanes_at(j + 16 * v, n);
            #pragma GCC unroll 4
            for (int rr = 0; rr < RB; rr++) acc[rr][v] = _mm512_setzero_ps();
        }
        for (int k = 0; k < r; k++) {
            __m512 fv[4];
            #pragma GCC unroll 4
            for (int v = 0; v < 4; v++) fv[v] = _mm512_maskz_loadu_ps(lanes[v], F + (long)k * n + j + 16 * v);
            #pragma GCC unroll 4
            for (int rr = 0; rr < RB; rr++) {
                const __m512 hk = _mm512_set1_ps(h[(long)rr * r + k]);
                #pragma GCC unroll 4
                for (int v = 0; v < 4; v++) acc[rr][v] = _mm512_fmadd_ps(hk, fv[v], acc[rr][v]);
            }
        }
        #pragma GCC unroll 4
        for (int rr = 0; rr < RB; rr++)
            #pragma GCC unroll 4
            for (int v = 0; v < 4; v++) {
                const int c = j + 16 * v;
                float *yc = y + (long)rr * n + c;
                __m512 add = _mm512_mul_ps(acc[rr][v], valpha);
                if (keep) add = _mm512_maskz_mul_ps(kept_lanes(keep + (long)rr * n, c, lanes[v]), add, scale);
                _mm512_mask_storeu_ps(yc, lanes[v], _mm512_add_ps(_mm512_maskz_loadu_ps(lanes[v], yc), add));
            }
    }
}

/* `cnt` (<= ROWS) rows of y. */
AVX512 static void up_block_avx512(float *y, const uint8_t *keep, float scale, const float *h, const float *F, int n,
                                   int r, int cnt, float alpha)
{
    const __m512 vscale = _mm512_set1_ps(scale);
    if (cnt == ROWS) {
        up_rows(y, keep, vscale, h, F, n, r, ROWS, alpha);
        return;
    }
    for (int i = 0; i < cnt; i++)
        up_rows(y + (long)i * n, keep ? keep + (long)i * n : NULL, vscale, h + (long)i * r, F, n, r, 1, alpha);
}

/* G rows k0 .. k0+KB-1, columns j0 .. j0 + 16 VB - 1 (VB, KB constants where inlined) += alpha times VB·KB
 * sums over the cnt rows of x from i0, each x vector loaded once. */
AVX512_INLINE void grad_tile(float *G, const float *h, const float *x, pc_thin_mask m, int i0, int cnt, int n, int r,
                             float alpha, int j0, int k0, int VB, int KB)
{
    const __mmask16 lanes[2] = { lanes_at(j0, n), lanes_at(j0 + 16, n) };
    const __m512 vscale = _mm512_set1_ps(m.scale);
    __m512 acc[16][2];
    #pragma GCC unroll 16
    for (int kk = 0; kk < KB; kk++)
        #pragma GCC unroll 2
        for (int v = 0; v < VB; v++) acc[kk][v] = _mm512_setzero_ps();
    for (int i = i0; i < i0 + cnt; i++) {
        const float *xi = x + (long)i * n;
        const uint8_t *ki = m.keep ? m.keep + (long)i * n : NULL;
        __m512 xv[2];
        #pragma GCC unroll 2
        for (int v = 0; v < VB; v++) xv[v] = load_x(xi, ki, vscale, j0 + 16 * v, lanes[v]);
        const float *hk = h + (long)i * r + k0;
        #pragma GCC unroll 16
        for (int kk = 0; kk < KB; kk++) {
            const __m512 b = _mm512_set1_ps(hk[kk]);
            #pragma GCC unroll 2
            for (int v = 0; v < VB; v++) acc[kk][v] = _mm512_fmadd_ps(b, xv[v], acc[kk][v]);
        }
    }
    const __m512 valpha = _mm512_set1_ps(alpha);
    #pragma GCC unroll 16
    for (int kk = 0; kk < KB; kk++)
        #pragma GCC unroll 2
        for (int v = 0; v < VB; v++) {
            float *g = G + (long)(k0 + kk) * n + j0 + 16 * v;
            const __m512 sum = _mm512_add_ps(_mm512_maskz_loadu_ps(lanes[v], g), _mm512_mul_ps(acc[kk][v], valpha));
            _mm512_mask_storeu_ps(g, lanes[v], sum);
        }
}

/* The columns j0 .. j0 + width - 1 of G over cnt rows: width 32 (two vectors, G rows 8 at a time) or 16 (one
 * vector, 16 at a time), so that each row of x in the block is read once for up to 8 or 16 rows of G. */
AVX512 static void grad_block_avx512(float *G, const float *h, const float *x, pc_thin_mask m, int i0, int cnt, int n,
                                     int r, float alpha, int j0, int width)
{
    int k = 0;
    if (width == 32) {
        for (; k + 8 <= r; k += 8) grad_tile(G, h, x, m, i0, cnt, n, r, alpha, j0, k, 2, 8);
        if (r - k >= 4) { grad_tile(G, h, x, m, i0, cnt, n, r, alpha, j0, k, 2, 4); k += 4; }
        if (r - k >= 2) { grad_tile(G, h, x, m, i0, cnt, n, r, alpha, j0, k, 2, 2); k += 2; }
        if (r - k >= 1) grad_tile(G, h, x, m, i0, cnt, n, r, alpha, j0, k, 2, 1);
        return;
    }
    for (; k + 16 <= r; k += 16) grad_tile(G, h, x, m, i0, cnt, n, r, alpha, j0, k, 1, 16);
    if (r - k >= 8) { grad_tile(G, h, x, m, i0, cnt, n, r, alpha, j0, k, 1, 8); k += 8; }
    if (r - k >= 4) { grad_tile(G, h, x, m, i0, cnt, n, r, alpha, j0, k, 1, 4); k += 4; }
    if (r - k >= 2) { grad_tile(G, h, x, m, i0, cnt, n, r, alpha, j0, k, 1, 2); k += 2; }
    if (r - k >= 1) grad_tile(G, h, x, m, i0, cnt, n, r, alpha, j0, k, 1, 1);
}
#endif

/* ---------- drivers: rows (or column blocks) shared out among the threads ---------- */

static bool avx512(void)
{
    return PC_X86 && pc_isa_active() == PC_ISA_AVX512;
}

/* Rows shared out ROWS at a time (a task of the AVX-512 kernels). */
static int row_tasks(int rows) { return (rows + ROWS - 1) / ROWS; }

void pc_thin_down(float *h, const float *x, pc_thin_mask mask, const float *F, int rows, int n, int r, float alpha)
{
    const bool wide = avx512();
    #pragma omp parallel for schedule(static) if ((long)rows * n >= PC_PARALLEL_MIN)
    for (int t = 0; t < row_tasks(rows); t++) {
        const int i0 = t * ROWS, cnt = min_int(ROWS, rows - i0);
        const long first = (long)i0 * n;
#if PC_X86
        if (wide) {
            down_block_avx512(h + (long)i0 * r, x + first, mask.keep ? mask.keep + first : NULL, mask.scale, F, n, r,
                              cnt, alpha);
            continue;
        }
#endif
        for (int i = 0; i < cnt; i++)
            down_row_portable(h + (long)(i0 + i) * r, x + first + (long)i * n, mask, first + (long)i * n, F, n, r, alpha);
    }
    (void)wide;
}

void pc_thin_up(float *y, pc_thin_mask mask, const float *h, const float *F, int rows, int n, int r, float alpha)
{
    const bool wide = avx512();
    #pragma omp parallel for schedule(static) if ((long)rows * n >= PC_PARALLEL_MIN)
    for (int t = 0; t < row_tasks(rows); t++) {
        const int i0 = t * ROWS, cnt = min_int(ROWS, rows - i0);
        const long first = (long)i0 * n;
#if PC_X86
        if (wide) {
            up_block_avx512(y + first, mask.keep ? mask.keep + first : NULL, mask.scale, h + (long)i0 * r, F, n, r, cnt,
                            alpha);
            continue;
        }
#endif
        for (int i = 0; i < cnt; i++)
            up_row_portable(y + first + (long)i * n, mask, first + (long)i * n, h + (long)(i0 + i) * r, F, n, r, alpha);
    }
    (void)wide;
}

/* Each thread owns a range of G's column blocks, and walks the rows GRAD_ROWS at a time over all its blocks: the
 * rows of a chunk stay in cache while the blocks read across them. */
void pc_thin_grad(float *G, const float *h, const float *x, pc_thin_mask mask, int rows, int n, int r, float alpha)
{
    const bool wide = avx512();
    const int width = r <= 8 ? BLOCK : BLOCK / 2, blocks = (n + width - 1) / width;
    #pragma omp parallel if ((long)rows * n >= PC_PARALLEL_MIN)
    {
        const int threads = omp_get_num_threads(), t = omp_get_thread_num();
        const int b0 = (int)((long)blocks * t / threads), b1 = (int)((long)blocks * (t + 1) / threads);
        for (int i0 = 0; i0 < rows; i0 += GRAD_ROWS) {
            const int cnt = min_int(GRAD_ROWS, rows - i0);
            for (int b = b0; b < b1; b++) {
#if PC_X86
                if (wide) {
                    grad_block_avx512(G, h, x, mask, i0, cnt, n, r, alpha, b * width, width);
                    continue;
                }
#endif
                grad_block_portable(G, h, x, mask, i0, cnt, n, r, alpha, b * width, width);
            }
        }
    }
    (void)wide;
}
