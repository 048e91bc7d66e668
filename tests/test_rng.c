#include "testlib.h"
#include "base/rng.h"
#include "base/isa.h"

#include <stdlib.h>

/* Random123 tests/kat_vectors, "philox4x32 10" lines: counter[4], key[2] -> output[4]. */
TEST(rng_philox_known_answers)
{
    static const uint32_t kat[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff,
         0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0,
         0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1},
    };
    for (int t = 0; t < 3; t++) {
        uint32_t out[4];
        pc_philox4x32_10(out, kat[t], kat[t] + 4);
        for (int i = 0; i < 4; i++) CHECK_INT_EQ(out[i], kat[t][6 + i]);
    }
}

TEST(rng_same_seed_and_name_repeat)
{
    pc_rng a, b;
    pc_rng_init(&a, 42, "dropout");
    pc_rng_init(&b, 42, "dropout");
    for (int i = 0; i < 100; i++) CHECK_INT_EQ(pc_rng_u32(&a), pc_rng_u32(&b));
    CHECK_INT_EQ(a.counter, 100);
}

/* Streams differ by name and by seed, and their values are uncorrelated. */
TEST(rng_streams_independent_by_name_and_seed)
{
    enum { N = 200000 };
    pc_rng r[4];
    pc_rng_init(&r[0], 42, "dropout");
    pc_rng_init(&r[1], 42, "dropout2");
    pc_rng_init(&r[2], 43, "dropout");
    pc_rng_init(&r[3], 42, "lora_init");
    float *x = malloc(sizeof(float) * N * 4);
    CHECK(x != NULL);
    if (!x) return;
    for (int s = 0; s < 4; s++) pc_rng_fill_uniform(&r[s], x + (long)s * N, N, -1.0f, 1.0f);
    for (int s = 1; s < 4; s++) {
        double dot = 0, same = 0;
        for (long i = 0; i < N; i++) {
            dot += (double)x[i] * x[(long)s * N + i];
            same += x[i] == x[(long)s * N + i];
        }
        /* correlation of independent U(-1,1): mean 0, sd = (1/3) / sqrt(N) ~ 7.5e-4 */
        CHECK_MSG(fabs(dot / N) < 5e-3, "stream %d correlation %g", s, dot / N);
        CHECK_MSG(same < 50, "stream %d shares %g values", s, same);
    }
    free(x);
}

TEST(rng_bulk_equals_sequential)
{
    enum { N = 1003 };
    float bulk_u[N], bulk_n[N];
    pc_rng a, b;
    pc_rng_init(&a, 7, "s");
    pc_rng_init(&b, 7, "s");
    pc_rng_u32(&a);  /* start at counter 1 in both */
    pc_rng_u32(&b);
    pc_rng_fill_uniform(&a, bulk_u, N, 0.0f, 1.0f);
    pc_rng_fill_normal(&a, bulk_n, N, 0.0f, 1.0f);
    CHECK_INT_EQ(a.counter, 1 + 2 * N);
    for (int i = 0; i < N; i++) CHECK(bulk_u[i] == pc_rng_uniform(&b));
    for (int i = 0; i < N; i++) CHECK(bulk_n[i] == pc_rng_normal(&b));
    /* resuming from a saved counter reproduces the tail */
    pc_rng c;
    pc_rng_init(&c, 7, "s");
    c.counter = 1 + 500;
    CHECK(pc_rng_uniform(&c) == bulk_u[500]);
}

/* The 64-bit counter's low word wraps inside a bulk block: the high word must follow per element. */
TEST(rng_bulk_equals_sequential_across_counter_carry)
{
    enum { N = 40 };
    float bulk[N];
    pc_rng a, b;
    pc_rng_init(&a, 9, "carry");
    pc_rng_init(&b, 9, "carry");
    a.counter = b.counter = 0xFFFFFFFFull - 20;
    pc_rng_fill_uniform(&a, bulk, N, 0.0f, 1.0f);
    for (int i = 0; i < N; i++) CHECK(bulk[i] == pc_rng_uniform(&b));
    CHECK(a.counter == b.counter);
}

/* Every path of the bulk draws (AVX-512 products where the CPU has them, portable C) gives the sequential
 * draws, also where the 64-bit block counter's low word wraps inside a 16-block group (carry per lane). */
TEST(rng_bulk_paths_equal_sequential)
{
    enum { N = 300 };
    static const uint64_t starts[] = { 3, 4 * (0x100000000ull - 5) + 1 };
    pc_isa before = pc_isa_active();
    const pc_isa paths[] = { PC_ISA_AVX512, PC_ISA_PORTABLE };
    for (int p = 0; p < 2; p++) {
        if (paths[p] > pc_isa_detected()) {
            printf("  (rng: %s not on this CPU, not tested)\n", pc_isa_name(paths[p]));
            continue;
        }
        pc_isa_force(paths[p]);
        for (int k = 0; k < 2; k++) {
            float u[N], n[N];
            pc_rng a, b;
            pc_rng_init(&a, 21, "paths");
            pc_rng_init(&b, 21, "paths");
            a.counter = b.counter = starts[k];
            pc_rng_fill_uniform(&a, u, N, 0.0f, 1.0f);
            pc_rng_fill_normal(&a, n, N, 0.0f, 1.0f);
            long wrong = 0;
            for (int i = 0; i < N; i++) wrong += u[i] != pc_rng_uniform(&b);
            for (int i = 0; i < N; i++) wrong += n[i] != pc_rng_normal(&b);
            CHECK_MSG(wrong == 0, "%s, counter %llu: %ld draws differ", pc_isa_name(paths[p]),
                      (unsigned long long)starts[k], wrong);
        }
    }
    pc_isa_force(before);
}

/* The dropout mask is the sequential uniforms thresholded, from a position inside a block, over whole and
 * partial 64-draw groups; it advances the stream as the uniform fill does. */
TEST(rng_dropout_mask_equals_thresholded_uniforms)
{
    enum { N = 1003 };
    static float mask[N];
    pc_rng a, b;
    pc_rng_init(&a, 11, "dropout");
    pc_rng_init(&b, 11, "dropout");
    a.counter = b.counter = 6;
    pc_rng_fill_dropout_mask(&a, mask, N, 0.25f, 4.0f / 3.0f);
    long dropped = 0;
    for (int i = 0; i < N; i++) {
        float u = pc_rng_uniform(&b);
        CHECK(mask[i] == (u < 0.25f ? 0.0f : 4.0f / 3.0f));
        dropped += mask[i] == 0.0f;
    }
    CHECK(a.counter == b.counter);
    CHECK(dropped > 200 && dropped < 300);
}

TEST(rng_keep_bytes_equal_thresholded_uniforms)
{
    enum { N = 40000 };   /* above the parallel threshold: the threads' groups meet inside the buffer */
    static uint8_t keep[N];
    pc_rng a, b;
    pc_rng_init(&a, 12, "dropout");
    pc_rng_init(&b, 12, "dropout");
    a.counter = b.counter = 3;
    pc_rng_fill_keep_bytes(&a, keep, N, 0.1f);
    long dropped = 0, wrong = 0;
    for (int i = 0; i < N; i++) {
        float u = pc_rng_uniform(&b);
        wrong += keep[i] != (u < 0.1f ? 0 : 1);
        dropped += keep[i] == 0;
    }
    CHECK_INT_EQ(wrong, 0);
    CHECK(a.counter == b.counter);
    CHECK(dropped > 3600 && dropped < 4400);
}

TEST(rng_fill_affine_map)
{
    float u[64], v[64], n[64], m[64];
    pc_rng a, b;
    pc_rng_init(&a, 1, "x");
    pc_rng_init(&b, 1, "x");
    pc_rng_fill_uniform(&a, u, 64, 0.0f, 1.0f);
    pc_rng_fill_uniform(&b, v, 64, -3.0f, 5.0f);
    for (int i = 0; i < 64; i++) CHECK_NEAR(v[i], -3.0 + 8.0 * u[i], 1e-6);
    pc_rng_fill_normal(&a, n, 64, 0.0f, 1.0f);
    pc_rng_fill_normal(&b, m, 64, 2.0f, 0.5f);
    for (int i = 0; i < 64; i++) CHECK_NEAR(m[i], 2.0 + 0.5 * n[i], 1e-6);
}

TEST(rng_uniform_moments)
{
    enum { N = 1000000 };
    float *x = malloc(sizeof(float) * N);
    CHECK(x != NULL);
    if (!x) return;
    pc_rng r;
    pc_rng_init(&r, 123, "moments");
    pc_rng_fill_uniform(&r, x, N, 0.0f, 1.0f);
    double s = 0, s2 = 0, lo = 1, hi = 0;
    int bins[10] = {0};
    for (long i = 0; i < N; i++) {
        s += x[i];
        s2 += (double)x[i] * x[i];
        lo = fmin(lo, x[i]);
        hi = fmax(hi, x[i]);
        bins[(int)(x[i] * 10)]++;
    }
    double mean = s / N, var = s2 / N - mean * mean;
    CHECK_NEAR(mean, 0.5, 1.5e-3);     /* sd of mean 2.9e-4 */
    CHECK_NEAR(var, 1.0 / 12, 1e-3);   /* sd of var ~7.5e-5 */
    CHECK(lo >= 0.0 && hi < 1.0);
    double chi2 = 0;
    for (int b = 0; b < 10; b++) chi2 += (bins[b] - N / 10.0) * (bins[b] - N / 10.0) / (N / 10.0);
    CHECK_MSG(chi2 < 30, "chi2 %g with 9 dof", chi2);  /* p ~ 4e-4 */
    free(x);
}

TEST(rng_normal_moments)
{
    enum { N = 1000000 };
    float *x = malloc(sizeof(float) * N);
    CHECK(x != NULL);
    if (!x) return;
    pc_rng r;
    pc_rng_init(&r, 123, "normal");
    pc_rng_fill_normal(&r, x, N, 0.0f, 1.0f);
    double s = 0, s2 = 0, s4 = 0, within1 = 0;
    for (long i = 0; i < N; i++) {
        double v = x[i];
        s += v;
        s2 += v * v;
        s4 += v * v * v * v;
        within1 += fabs(v) < 1.0;
    }
    CHECK_NEAR(s / N, 0.0, 5e-3);           /* sd 1e-3 */
    CHECK_NEAR(s2 / N, 1.0, 7e-3);          /* sd 1.4e-3 */
    CHECK_NEAR(s4 / N, 3.0, 0.05);          /* sd ~1e-2 */
    CHECK_NEAR(within1 / N, 0.6826894921, 2.5e-3);  /* erf(1/sqrt 2); sd 4.7e-4 */
    free(x);
}

TEST(rng_below_range_and_uniformity)
{
    pc_rng r;
    pc_rng_init(&r, 5, "shuffle");
    enum { N = 70000, K = 7 };
    int counts[K] = {0};
    for (int i = 0; i < N; i++) {
        uint64_t v = pc_rng_below(&r, K);
        CHECK(v < K);
        if (v < K) counts[v]++;
    }
    double chi2 = 0;
    for (int k = 0; k < K; k++) chi2 += (counts[k] - N / (double)K) * (counts[k] - N / (double)K) / (N / (double)K);
    CHECK_MSG(chi2 < 25, "chi2 %g with 6 dof", chi2);
    CHECK_INT_EQ(pc_rng_below(&r, 1), 0);
    /* a bound just above 2^63 rejects about half the draws and still stays in range */
    uint64_t big = (1ull << 63) + 12345;
    for (int i = 0; i < 100; i++) CHECK(pc_rng_below(&r, big) < big);
}
