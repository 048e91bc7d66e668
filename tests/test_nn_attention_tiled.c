/* The tiled (flash-style) attention against the plain one, which tests/test_nn_attention.c checks against
 * a textbook reference and finite differences: outputs and all three gradients, on odd lengths, with and
 * without the causal mask, with padding on both ends (so some rows have every key masked), grouped-query. */
#include "testlib.h"
#include "test_nn_gradcheck.h"
#include "nn/attention.h"

#include <stdlib.h>

enum { PB = 2, PH = 4, PHD = 8 };

typedef struct { float *out, *saved, *dq, *dk, *dv, *scratch; } att_run;

static bool run_alloc(att_run *r, int T, int Hkv)
{
    const size_t N = (size_t)PB * T * PH * PHD, NKV = (size_t)PB * T * Hkv * PHD;
    r->out = malloc(sizeof(float) * N);
    r->saved = malloc(sizeof(float) * (size_t)PB * PH * T * T);
    r->dq = malloc(sizeof(float) * N);
    r->dk = malloc(sizeof(float) * NKV);
    r->dv = malloc(sizeof(float) * NKV);
    const size_t S = pc_attention_scratch_floats(PB, T, PH, Hkv, PHD, true);
    r->scratch = malloc(sizeof(float) * S);
    if (!(r->out && r->saved && r->dq && r->dk && r->dv && r->scratch)) return false;
    /* NaN everywhere the passes write: an element they leave unwritten, or add into instead of overwriting, shows */
    float *bufs[] = {r->out, r->dq, r->dk, r->dv, r->scratch};
    const size_t sizes[] = {N, N, NKV, NKV, S};
    for (int b = 0; b < 5; b++)
        for (size_t i = 0; i < sizes[b]; i++) bufs[b][i] = NAN;
    return true;
}

static void run_free(att_run *r)
{
    free(r->out); free(r->saved); free(r->dq); free(r->dk); free(r->dv); free(r->scratch);
}

/* Batch 0 pads its last quarter of keys; batch 1 pads key 0 (so with a causal mask its row 0 sees no key)
 * and every seventh key. At T = 1 batch 1 has no key at all. */
static void padding_mask(uint8_t *mask, int T)
{
    for (int j = 0; j < T; j++) {
        mask[j] = j < T - T / 4;
        mask[T + j] = j != 0 && j % 7 != 6;
    }
}

/* max |a - b| / max(max |b|, 1): gradients that are exactly 0 on one path (a single key) are rounding-level on the other. */
static double max_err(const float *a, const float *b, long n)
{
    double diff = 0, scale = 1;
    for (long i = 0; i < n; i++) {
        if (isnan(a[i]) || isnan(b[i])) return INFINITY;   /* fmax would skip a NaN */
        diff = fmax(diff, fabs((double)a[i] - b[i]));
        scale = fmax(scale, fabs((double)b[i]));
    }
    return diff / scale;
}

static void compare_paths(int T, int Hkv, bool causal, bool padded)
{
    const long N = (long)PB * T * PH * PHD, NKV = (long)PB * T * Hkv * PHD;
    float *q = malloc(sizeof(float) * N), *dout = malloc(sizeof(float) * N);
    float *k = malloc(sizeof(float) * NKV), *v = malloc(sizeof(float) * NKV);
    uint8_t *mask = malloc((size_t)PB * T);
    att_run plain, tiled;
    bool ok = q && dout && k && v && mask && run_alloc(&plain, T, Hkv) && run_alloc(&tiled, T, Hkv);
    CHECK(ok);
    if (ok) {
        nn_fill(q, N, "tq", -2, 2);
        nn_fill(k, NKV, "tk", -2, 2);
        nn_fill(v, NKV, "tv", -1, 1);
        nn_fill(dout, N, "tdout", -1, 1);
        padding_mask(mask, T);
        const uint8_t *m = padded ? mask : NULL;
        const float scale = 1.0f / sqrtf((float)PHD);
        pc_attention_forward_plain(plain.out, plain.saved, q, k, v, m, NULL, PB, T, PH, Hkv, PHD, scale, causal,
                                   plain.scratch);
        pc_attention_backward_plain(plain.dq, plain.dk, plain.dv, dout, plain.saved, q, k, v, m, NULL, PB, T, PH, Hkv,
                                    PHD, scale, causal, plain.scratch);
        pc_attention_forward_tiled(tiled.out, tiled.saved, q, k, v, m, PB, T, PH, Hkv, PHD, scale, causal,
                                   tiled.scratch);
        pc_attention_backward_tiled(tiled.dq, tiled.dk, tiled.dv, dout, tiled.out, tiled.saved, q, k, v, m, PB, T, PH,
                                    Hkv, PHD, scale, causal, tiled.scratch);
        const char *what[] = {"out", "dq", "dk", "dv"};
        const float *a[] = {tiled.out, tiled.dq, tiled.dk, tiled.dv}, *b[] = {plain.out, plain.dq, plain.dk, plain.dv};
        const long n[] = {N, N, NKV, NKV};
        for (int i = 0; i < 4; i++) {
            double e = max_err(a[i], b[i], n[i]);
            CHECK_MSG(e < 2e-5, "T %d Hkv %d causal %d padded %d: %s err %g", T, Hkv, causal, padded, what[i], e);
        }
    }
    free(q); free(dout); free(k); free(v); free(mask);
    run_free(&plain);
    run_free(&tiled);
}

TEST(nn_attention_tiled_matches_plain)
{
    const int lengths[] = {1, 3, 17, 65, 257};
    for (int t = 0; t < 5; t++)
        for (int variant = 0; variant < 4; variant++)
            compare_paths(lengths[t], variant == 3 ? 1 : PH / (1 + variant % 2), variant & 1, variant >= 2);
}

TEST(nn_attention_tiled_matches_plain_grouped_causal_padded)
{
    compare_paths(65, 2, true, true);
    compare_paths(130, 1, false, true);
}

/* Long sequences without dropout run tiled and save O(T) per head; with dropout they run plain. The tiled scratch
 * of one head is O(T * hd) (its K and V transposed for kernels/tile_gemm), never T x T. */
TEST(nn_attention_long_sequences_save_only_row_statistics)
{
    CHECK(!pc_attention_tiled(16, false));
    CHECK(pc_attention_tiled(4096, false));
    CHECK(!pc_attention_tiled(4096, true));
    CHECK(pc_attention_saved_floats(1, 4096, 1, false) < (size_t)4096 * 64);
    CHECK(pc_attention_saved_floats(1, 4096, 1, true) == (size_t)4096 * 4096);
    CHECK(pc_attention_scratch_floats(1, 4096, 1, 1, 64, false) < (size_t)3 * 4096 * 64);
}
