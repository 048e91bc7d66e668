/* Thin (rank-r) products: each kernel path (AVX-512 where the CPU has it, portable) against a naive product
 * written out here in double, on odd shapes around the vector width (16), the AVX-512 row chunks of F
 * (4, 2, 1 for 4 rows of x at a time, and a row or three left over), the 32- and 16-column blocks and 32-row chunks
 * of the gradient, with and without a dropout mask; and the same
 * bits on 1 and 2 threads. */
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>

#include "kernels/pgemm.h"
#include "kernels/thin.h"
#include "testlib.h"

typedef struct { int rows, n, r; } thin_shape;

static const thin_shape SHAPES[] = {
    { 1, 1, 1 }, { 3, 17, 3 }, { 17, 16, 8 }, { 5, 15, 13 }, { 33, 255, 19 }, { 2, 257, 24 }, { 64, 33, 16 },
    { 7, 100, 31 }, { 70, 40, 9 },
};

static void fill_keep(uint8_t *keep, long n, unsigned *seed)
{
    for (long i = 0; i < n; i++) {
        *seed = *seed * 1664525u + 1013904223u;
        keep[i] = (*seed >> 16) % 10 != 0;   /* about 10 % dropped */
    }
}

static double factor_of(const uint8_t *keep, float scale, long idx)
{
    return keep ? (keep[idx] ? scale : 0.0) : 1.0;
}

/* |got - want| <= 1e-5 * (sum of |terms|) + 1e-30 */
static bool close_to(float got, double want, double magnitude)
{
    return fabs((double)got - want) <= 1e-5 * magnitude + 1e-30;
}

static long check_down(thin_shape s, const float *x, const uint8_t *keep, const float *F, float alpha)
{
    float *h = malloc(sizeof(float) * (size_t)(s.rows * s.r));
    pc_thin_down(h, x, (pc_thin_mask){ keep, 1.25f }, F, s.rows, s.n, s.r, alpha);
    long bad = 0;
    for (int i = 0; i < s.rows; i++)
        for (int k = 0; k < s.r; k++) {
            double sum = 0, mag = 0;
            for (int j = 0; j < s.n; j++) {
                double t = x[i * s.n + j] * factor_of(keep, 1.25f, (long)i * s.n + j) * F[k * s.n + j];
                sum += t;
                mag += fabs(t);
            }
            bad += !close_to(h[i * s.r + k], alpha * sum, fabs(alpha) * mag);
        }
    free(h);
    return bad;
}

static long check_up(thin_shape s, const float *y0, const uint8_t *keep, const float *h, const float *F, float alpha)
{
    float *y = malloc(sizeof(float) * (size_t)(s.rows * s.n));
    memcpy(y, y0, sizeof(float) * (size_t)(s.rows * s.n));
    pc_thin_up(y, (pc_thin_mask){ keep, 1.25f }, h, F, s.rows, s.n, s.r, alpha);
    long bad = 0;
    for (int i = 0; i < s.rows; i++)
        for (int j = 0; j < s.n; j++) {
            double sum = 0, mag = 0;
            for (int k = 0; k < s.r; k++) {
                sum += (double)h[i * s.r + k] * F[k * s.n + j];
                mag += fabs((double)h[i * s.r + k] * F[k * s.n + j]);
            }
            double f = factor_of(keep, 1.25f, (long)i * s.n + j) * alpha;
            bad += !close_to(y[i * s.n + j], y0[i * s.n + j] + f * sum, fabs(f) * mag + fabs(y0[i * s.n + j]));
        }
    free(y);
    return bad;
}

static long check_grad(thin_shape s, const float *h, const float *x, const uint8_t *keep,
                       const float *G0, float alpha)
{
    const long size = (long)s.r * s.n;
    float *G = malloc(sizeof(float) * (size_t)size);
    memcpy(G, G0, sizeof(float) * (size_t)size);
    pc_thin_grad(G, h, x, (pc_thin_mask){ keep, 1.25f }, s.rows, s.n, s.r, alpha);
    long bad = 0;
    for (int k = 0; k < s.r; k++)
        for (int j = 0; j < s.n; j++) {
            double sum = 0, mag = 0;
            for (int i = 0; i < s.rows; i++) {
                double t = (double)h[i * s.r + k] * x[i * s.n + j] * factor_of(keep, 1.25f, (long)i * s.n + j);
                sum += t;
                mag += fabs(t);
            }
            long at = (long)k * s.n + j;
            bad += !close_to(G[at], G0[at] + alpha * sum, fabs(alpha) * mag + fabs(G0[at]));
        }
    free(G);
    return bad;
}

/* Every kernel on shape s, masked and not: the count of wrong elements. */
static long check_shape(thin_shape s)
{
    unsigned seed = (unsigned)(s.rows * 7919 + s.n * 31 + s.r);
    const long xs = (long)s.rows * s.n, fs = (long)s.r * s.n, hs = (long)s.rows * s.r;
    float *x = malloc(sizeof(float) * (size_t)xs), *F = malloc(sizeof(float) * (size_t)fs);
    float *h = malloc(sizeof(float) * (size_t)hs), *G0 = malloc(sizeof(float) * (size_t)fs);
    uint8_t *keep = malloc((size_t)xs);
    pc_test_fill_uniform(x, xs, &seed); pc_test_fill_uniform(F, fs, &seed); pc_test_fill_uniform(h, hs, &seed);
    pc_test_fill_uniform(G0, fs, &seed); fill_keep(keep, xs, &seed);
    long bad = 0;
    for (int masked = 0; masked < 2; masked++) {
        const uint8_t *k = masked ? keep : NULL;
        bad += check_down(s, x, k, F, 0.75f);
        bad += check_up(s, x, k, h, F, 0.75f);
        bad += check_grad(s, h, x, k, G0, 0.75f);
    }
    free(x); free(F); free(h); free(G0); free(keep);
    return bad;
}

TEST(thin_every_kernel_matches_naive_products)
{
    pc_isa before = pc_isa_active(), best = pc_isa_detected();
    const pc_isa paths[] = { PC_ISA_AVX512, PC_ISA_PORTABLE };   /* AVX2 CPUs run the portable kernels */
    for (size_t p = 0; p < 2; p++) {
        if (paths[p] > best) {
            printf("  (thin: %s not on this CPU, not tested)\n", pc_isa_name(paths[p]));
            continue;
        }
        pc_isa_force(paths[p]);
        for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; i++) {
            long bad = check_shape(SHAPES[i]);
            CHECK_MSG(bad == 0, "%s: rows %d n %d r %d: %ld elements off", pc_isa_name(paths[p]), SHAPES[i].rows,
                      SHAPES[i].n, SHAPES[i].r, bad);
        }
    }
    pc_isa_force(before);
}

/* The three products on 1 and on 2 threads (a shape large enough to be shared out): the same bits. */
TEST(thin_results_do_not_depend_on_the_thread_count)
{
    const thin_shape s = { 300, 257, 8 };
    const long xs = (long)s.rows * s.n, fs = (long)s.r * s.n, hs = (long)s.rows * s.r;
    unsigned seed = 5;
    float *x = malloc(sizeof(float) * (size_t)xs), *F = malloc(sizeof(float) * (size_t)fs);
    float *h = malloc(sizeof(float) * (size_t)hs);
    uint8_t *keep = malloc((size_t)xs);
    pc_test_fill_uniform(x, xs, &seed); pc_test_fill_uniform(F, fs, &seed); pc_test_fill_uniform(h, hs, &seed);
    fill_keep(keep, xs, &seed);
    const pc_thin_mask mask = { keep, 1.25f };
    float *out[2][3];
    const int saved = omp_get_max_threads();
    for (int t = 0; t < 2; t++) {
        omp_set_num_threads(t + 1);
        out[t][0] = calloc((size_t)hs, sizeof(float));
        out[t][1] = calloc((size_t)xs, sizeof(float));
        out[t][2] = calloc((size_t)fs, sizeof(float));
        pc_thin_down(out[t][0], x, mask, F, s.rows, s.n, s.r, 1.0f);
        pc_thin_up(out[t][1], mask, h, F, s.rows, s.n, s.r, 1.0f);
        pc_thin_grad(out[t][2], h, x, mask, s.rows, s.n, s.r, 1.0f);
    }
    omp_set_num_threads(saved);
    CHECK(memcmp(out[0][0], out[1][0], sizeof(float) * (size_t)hs) == 0);
    CHECK(memcmp(out[0][1], out[1][1], sizeof(float) * (size_t)xs) == 0);
    CHECK(memcmp(out[0][2], out[1][2], sizeof(float) * (size_t)fs) == 0);
    for (int t = 0; t < 2; t++)
        for (int p = 0; p < 3; p++) free(out[t][p]);
    free(x); free(F); free(h); free(keep);
}
