#include "testlib.h"
#include "test_nn_gradcheck.h"
#include "nn/rope.h"
#include "formats/safetensors.h"

#include <stdbool.h>
#include <stdlib.h>

/* Reads F32 tensor `name` of the open fixture into a fresh buffer of n floats (NULL on failure). */
static float *read_fixture(const pc_safetensors *st, const char *name, long n)
{
    pc_error err = {0};
    const pc_st_tensor *t = pc_st_find(st, name);
    CHECK_MSG(t != NULL, "tensor %s missing from rope.safetensors", name);
    float *buf = t ? malloc(sizeof(float) * (size_t)n) : NULL;
    if (buf && pc_st_read_f32(t, buf, n, &err) != PEFTC_OK) {
        CHECK_MSG(false, "%s", err.msg);
        free(buf);
        buf = NULL;
    }
    return buf;
}

static double max_abs_diff(const float *a, const float *b, long n)
{
    double m = 0;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) m = d;
    }
    return m;
}

/* The tables of tools/make_causal_fixtures.py (ROPE_TABLES), computed there by transformers' formulas
 * in torch: inv_freq, then cos/sin of float32 angles. Torch's vectorised pow and cos may differ from
 * libm by an ulp, so entries agree to a few 1e-7. */
TEST(nn_rope_tables_match_transformers)
{
    const char *path = pc_test_fixture("causal_tiny/rope.safetensors");
    pc_safetensors *st = NULL;
    pc_error err = {0};
    CHECK_MSG(pc_st_open(path, &st, &err) == PEFTC_OK, "%s", err.msg);
    if (!st) return;
    const pc_rope_scaling llama3 = {8.0f, 1.0f, 4.0f, 256}, tied_bias = {8.0f, 1.0f, 4.0f, 16};
    const struct { const char *name; double theta; int dim, max_pos; const pc_rope_scaling *scaling; } tables[] = {
        {"default", 10000.0, 16, 40, NULL},
        {"llama3", 500000.0, 64, 64, &llama3},
        {"tied_bias", 10000.0, 16, 64, &tied_bias},
    };
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
        const long n = (long)tables[i].max_pos * tables[i].dim;
        char key[64];
        snprintf(key, sizeof key, "%s.cos", tables[i].name);
        float *want_cos = read_fixture(st, key, n);
        snprintf(key, sizeof key, "%s.sin", tables[i].name);
        float *want_sin = read_fixture(st, key, n);
        float *cos_t = malloc(sizeof(float) * (size_t)n), *sin_t = malloc(sizeof(float) * (size_t)n);
        CHECK(cos_t && sin_t);
        if (want_cos && want_sin && cos_t && sin_t) {
            pc_rope_table(cos_t, sin_t, tables[i].max_pos, tables[i].dim, tables[i].theta, tables[i].scaling);
            double ec = max_abs_diff(cos_t, want_cos, n), es = max_abs_diff(sin_t, want_sin, n);
            CHECK_MSG(ec < 5e-7, "%s: cos max abs err %g", tables[i].name, ec);
            CHECK_MSG(es < 5e-7, "%s: sin max abs err %g", tables[i].name, es);
        }
        free(want_cos);
        free(want_sin);
        free(cos_t);
        free(sin_t);
    }
    pc_st_close(st);
}

/* head_dim 4, theta 10000: inv_freq = [1, 0.01]; row p = [cos p, cos 0.01p, cos p, cos 0.01p] (emb = cat). */
TEST(nn_rope_table_plain_by_hand)
{
    float c[10 * 4], s[10 * 4];
    pc_rope_table(c, s, 10, 4, 10000.0, NULL);
    for (int p = 0; p < 10; p++) {
        const double f[2] = {1.0, 0.01};
        for (int j = 0; j < 4; j++) {
            CHECK_NEAR(c[p * 4 + j], cos(p * f[j % 2]), 1e-6);
            CHECK_NEAR(s[p * 4 + j], sin(p * f[j % 2]), 1e-6);
        }
    }
}

/* llama3 scaling with factor 8, low 1, high 4, original 16 on inv_freq = [1, 0.01]: wavelengths 2*pi and
 * 200*pi. 2*pi lies between 16/4 and 16/1, so it is interpolated with smooth = (16/(2 pi) - 1) / 3:
 * inv = (1 - smooth) / 8 + smooth; 200*pi > 16 is divided by 8. */
TEST(nn_rope_table_llama3_by_hand)
{
    const pc_rope_scaling sc = {8.0f, 1.0f, 4.0f, 16};
    float c[6 * 4], s[6 * 4];
    pc_rope_table(c, s, 6, 4, 10000.0, &sc);
    const double smooth = (16.0 / (2 * M_PI) - 1.0) / 3.0;
    const double f[2] = {(1 - smooth) / 8 + smooth, 0.01 / 8};
    for (int p = 0; p < 6; p++)
        for (int j = 0; j < 4; j++) {
            CHECK_NEAR(c[p * 4 + j], cos(p * f[j % 2]), 1e-6);
            CHECK_NEAR(s[p * 4 + j], sin(p * f[j % 2]), 1e-6);
        }
    /* high-frequency band: with original 64 and high factor 4, wavelength 2*pi < 16 keeps inv_freq = 1 */
    const pc_rope_scaling keep = {8.0f, 1.0f, 4.0f, 64};
    pc_rope_table(c, s, 6, 4, 10000.0, &keep);
    CHECK_NEAR(s[4 + 0], sin(1.0), 1e-7);
    CHECK_NEAR(s[4 + 1], sin(0.01 / 8), 1e-7);
}

/* apply_rotary_pos_emb of transformers on x [2, 5, 3 heads * 64] at positions 7..11 (fixture apply.x/y). */
TEST(nn_rope_apply_matches_transformers)
{
    enum { B = 2, T = 5, H = 3, HD = 64, N = B * T * H * HD, POS0 = 7, MAX_POS = 64 };
    const char *path = pc_test_fixture("causal_tiny/rope.safetensors");
    pc_safetensors *st = NULL;
    pc_error err = {0};
    CHECK_MSG(pc_st_open(path, &st, &err) == PEFTC_OK, "%s", err.msg);
    if (!st) return;
    float *x = read_fixture(st, "apply.x", N), *want = read_fixture(st, "apply.y", N);
    static float c[MAX_POS * HD], s[MAX_POS * HD];
    const pc_rope_scaling sc = {8.0f, 1.0f, 4.0f, 256};
    pc_rope_table(c, s, MAX_POS, HD, 500000.0, &sc);
    if (x && want) {
        pc_rope_apply(x, c, s, B, T, H, HD, POS0);
        double e = pc_test_max_rel_err(x, want, N);
        CHECK_MSG(e < 1e-6, "rope apply rel err %g", e);
    }
    free(x);
    free(want);
    pc_st_close(st);
}

enum { RB = 2, RT = 4, RH = 3, RHD = 6, RN = RB * RT * RH * RHD, RMAX = 12 };
typedef struct { float x[RN], w[RN], c[RMAX * RHD], s[RMAX * RHD]; } rope_case;

static void rope_setup(rope_case *r)
{
    nn_fill(r->x, RN, "rope_x", -1, 1);
    nn_fill(r->w, RN, "rope_w", -1, 1);
    pc_rope_table(r->c, r->s, RMAX, RHD, 100.0, NULL);
}

static double rope_loss(void *ctx)
{
    rope_case *r = ctx;
    float y[RN];
    memcpy(y, r->x, sizeof y);
    pc_rope_apply(y, r->c, r->s, RB, RT, RH, RHD, 5);
    return nn_weighted_sum(y, r->w, RN);
}

TEST(nn_rope_backward_matches_finite_differences)
{
    static rope_case r;
    rope_setup(&r);
    float dx[RN];
    memcpy(dx, r.w, sizeof dx);
    pc_rope_apply_backward(dx, r.c, r.s, RB, RT, RH, RHD, 5);
    double e = nn_gradcheck(r.x, RN, dx, rope_loss, &r, 1e-3f);
    CHECK_MSG(e < 1e-3, "rope dx rel err %g", e);
}

/* The rotation is orthogonal: backward(forward(x)) = x, and norms per pair are kept. */
TEST(nn_rope_backward_inverts_forward)
{
    static rope_case r;
    rope_setup(&r);
    float y[RN];
    memcpy(y, r.x, sizeof y);
    pc_rope_apply(y, r.c, r.s, RB, RT, RH, RHD, 3);
    double moved = 0;
    for (int i = 0; i < RN; i++) moved = fmax(moved, fabs((double)y[i] - r.x[i]));
    CHECK(moved > 0.1);
    for (int v = 0; v < RN / RHD; v++)
        for (int j = 0; j < RHD / 2; j++) {
            const float *a = r.x + v * RHD, *b = y + v * RHD;
            CHECK_NEAR(hypot(b[j], b[j + RHD / 2]), hypot(a[j], a[j + RHD / 2]), 1e-6);
        }
    pc_rope_apply_backward(y, r.c, r.s, RB, RT, RH, RHD, 3);
    CHECK_MSG(pc_test_max_rel_err(y, r.x, RN) < 1e-6, "round trip rel err %g", pc_test_max_rel_err(y, r.x, RN));
}

/* Row t of each batch gets position pos0 + t: rotating tokens 3..4 with pos0 = 3 equals tokens 3..4 of a
 * rotation of tokens 0..4 from position 0 (the KV-cache decode path relies on this). */
TEST(nn_rope_position_offset)
{
    enum { T = 5, H = 2, HD = 8 };
    float c[T * HD], s[T * HD], full[T * H * HD], tail[2 * H * HD];
    pc_rope_table(c, s, T, HD, 10000.0, NULL);
    nn_fill(full, T * H * HD, "rope_off", -1, 1);
    memcpy(tail, full + 3 * H * HD, sizeof tail);
    pc_rope_apply(full, c, s, 1, T, H, HD, 0);
    pc_rope_apply(tail, c, s, 1, 2, H, HD, 3);
    CHECK(memcmp(tail, full + 3 * H * HD, sizeof tail) == 0);
}
