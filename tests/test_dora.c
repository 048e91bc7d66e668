/* DoRA (peft/dora.h) on one Linear and in DistilBERT against PyTorch fixtures written after PEFT
 * (tools/make_dora_fixtures.py); the dropout path against a float64 hand computation and finite
 * differences; merge / unmerge (peft/lora.h) against PEFT's merge formulas from the same fixtures. */
#include "testlib.h"

#include <stdlib.h>

#include "base/fs.h"
#include "formats/safetensors.h"
#include "models/distilbert.h"
#include "models/peft_model.h"
#include "models/quantized.h"
#include "nn/linear.h"
#include "peft/dora.h"
#include "train/optim.h"
#include "train/trainer.h"

enum { IN = 24, OUT = 16, R = 4, ROWS = 5 };

/* ---------- fixture access ---------- */

static pc_safetensors *open_fixture(const char *name)
{
    pc_safetensors *st = NULL;
    pc_error err = { 0 };
    CHECK_MSG(pc_st_open(pc_test_fixture(name), &st, &err) == PEFTC_OK, "open %s: %s", name, err.msg);
    return st;
}

/* Copies tensor "<prefix><key>" into dst (n floats); false when absent. */
static bool read_into(const pc_safetensors *st, const char *prefix, const char *key, float *dst, long n)
{
    char name[200];
    snprintf(name, sizeof name, "%s%s", prefix, key);
    const pc_st_tensor *t = pc_st_find(st, name);
    if (!t) return false;
    pc_error err = { 0 };
    CHECK_MSG(pc_st_numel(t) == n, "%s has %lld elements, expected %ld", name, (long long)pc_st_numel(t), n);
    CHECK_MSG(pc_st_read_f32(t, dst, n, &err) == PEFTC_OK, "%s: %s", name, err.msg);
    return true;
}

static void check_against(const pc_safetensors *st, const char *prefix, const char *key, const float *got, long n,
                          double tol)
{
    float *want = malloc(sizeof(float) * (size_t)n);
    CHECK(want != NULL);
    if (!want) return;
    CHECK_MSG(read_into(st, prefix, key, want, n), "fixture has no %s%s", prefix, key);
    double rel = pc_test_max_rel_err(got, want, n);
    CHECK_MSG(rel <= tol, "%s%s: max relative error %.3g > %.1g", prefix, key, rel, tol);
    free(want);
}

/* ---------- one Linear with a DoRA adapter, from a fixture case ---------- */

typedef struct dora_linear {
    pc_linear lin;
    pc_lora lora;
    pc_scratch scratch;
    float W[IN * OUT], b[OUT], x[ROWS * IN], w[ROWS * OUT], y[ROWS * OUT], dx[ROWS * IN];
} dora_linear;

/* Case "bias" / "nobias" / "conv1d" of the fixture: W, b, x, w and a LoRA adapter (dropout p) with its A, B. */
static int load_linear(dora_linear *d, const pc_safetensors *st, const char *name, float p)
{
    char prefix[32];
    snprintf(prefix, sizeof prefix, "%s.", name);
    memset(d, 0, sizeof *d);
    pc_error err = { 0 };
    pc_rng rng;
    pc_rng_init(&rng, 1, "test");
    float s;
    if (!read_into(st, "", "scaling", &s, 1) || !read_into(st, prefix, "W", d->W, IN * OUT)) return -1;
    bool has_bias = read_into(st, prefix, "b", d->b, OUT);
    d->lin = (pc_linear){ .in = IN, .out = OUT, .w_in_out = strcmp(name, "conv1d") == 0, .W = d->W,
                          .b = has_bias ? d->b : NULL, .lora = &d->lora };
    CHECK(pc_lora_create(&d->lora, IN, OUT, R, s, p, PC_LORA_INIT_DEFAULT, &rng, &err) == PEFTC_OK);
    read_into(st, prefix, "A", d->lora.A, R * IN);
    read_into(st, prefix, "B", d->lora.B, OUT * R);
    read_into(st, prefix, "x", d->x, ROWS * IN);
    read_into(st, prefix, "w", d->w, ROWS * OUT);
    return 0;
}

/* load_linear, then DoRA with the fixture's magnitude (after checking pc_dora_init's against PEFT's norm). */
static int setup_linear(dora_linear *d, const pc_safetensors *st, const char *name, float p)
{
    char prefix[32];
    snprintf(prefix, sizeof prefix, "%s.", name);
    if (load_linear(d, st, name, p) != 0) return -1;
    pc_error err = { 0 };
    pc_base_weight base = pc_linear_base(&d->lin);
    CHECK_MSG(pc_dora_init(&d->lora, &base, &err) == PEFTC_OK, "%s", err.msg);
    CHECK_MSG(pc_linear_reserve(&d->lin, ROWS, &d->scratch, &err) == PEFTC_OK, "%s", err.msg);
    /* pc_dora_init's magnitude is PEFT's ||W + s B A|| per output row */
    check_against(st, prefix, "weight_norm", d->lora.m, OUT, 1e-6);
    read_into(st, prefix, "m", d->lora.m, OUT);
    return 0;
}

static void check_linear_case(const char *name)
{
    pc_safetensors *st = open_fixture("dora/linear.safetensors");
    dora_linear *d = calloc(1, sizeof *d);
    char prefix[32];
    snprintf(prefix, sizeof prefix, "%s.", name);
    if (st && d && setup_linear(d, st, name, 0.0f) == 0) {
        pc_linear_forward(&d->lin, d->y, d->x, ROWS, true, NULL);
        check_against(st, prefix, "y", d->y, ROWS * OUT, 1e-5);
        pc_linear_backward(&d->lin, d->dx, false, d->w, d->x, ROWS);   /* loss = sum(y * w): dy = w */
        check_against(st, prefix, "grad.A", d->lora.dA, R * IN, 1e-4);
        check_against(st, prefix, "grad.B", d->lora.dB, OUT * R, 1e-4);
        check_against(st, prefix, "grad.m", d->lora.dm, OUT, 1e-4);
        check_against(st, prefix, "grad.x", d->dx, ROWS * IN, 1e-4);
        /* accumulate: dx += the same gradient */
        float twice[ROWS * IN];
        memcpy(twice, d->dx, sizeof twice);
        pc_linear_backward(&d->lin, twice, true, d->w, d->x, ROWS);
        for (int i = 0; i < ROWS * IN; i++) CHECK_NEAR(twice[i], 2.0f * d->dx[i], 1e-6);
    }
    if (d) { pc_lora_free(&d->lora); pc_linear_release(&d->lin); pc_scratch_free(&d->scratch); }
    free(d);
    pc_st_close(st);
}

TEST(dora_linear_with_bias_matches_pytorch) { check_linear_case("bias"); }
TEST(dora_linear_without_bias_matches_pytorch) { check_linear_case("nobias"); }
TEST(dora_conv1d_layout_matches_pytorch) { check_linear_case("conv1d"); }

/* Dropout configured but not training: PEFT reuses the base result, exactly as with dropout 0. */
TEST(dora_eval_ignores_dropout)
{
    pc_safetensors *st = open_fixture("dora/linear.safetensors");
    dora_linear *d = calloc(1, sizeof *d);
    if (st && d && setup_linear(d, st, "bias", 0.3f) == 0) {
        pc_linear_forward(&d->lin, d->y, d->x, ROWS, false, NULL);
        check_against(st, "bias.", "y", d->y, ROWS * OUT, 1e-5);
    }
    if (d) { pc_lora_free(&d->lora); pc_linear_release(&d->lin); pc_scratch_free(&d->scratch); }
    free(d);
    pc_st_close(st);
}

static void linear_adamw_case(const char *name)
{
    pc_safetensors *st = open_fixture("dora/linear.safetensors");
    dora_linear *d = calloc(1, sizeof *d);
    char prefix[32];
    snprintf(prefix, sizeof prefix, "%s.", name);
    if (st && d && setup_linear(d, st, name, 0.0f) == 0) {
        pc_param_list params = { 0 };
        int64_t sa[2] = { R, IN }, sb[2] = { OUT, R }, sm[2] = { OUT, 0 };
        CHECK(pc_param_list_add(&params, "A", d->lora.A, d->lora.dA, 2, sa, true) == 0);
        CHECK(pc_param_list_add(&params, "B", d->lora.B, d->lora.dB, 2, sb, true) == 0);
        CHECK(pc_param_list_add(&params, "m", d->lora.m, d->lora.dm, 1, sm, true) == 0);
        pc_adamw opt;
        pc_error err = { 0 };
        CHECK(pc_adamw_init(&opt, &params, 0.9, 0.999, 1e-8, 0.01, &err) == PEFTC_OK);
        for (int step = 0; step < 3; step++) {
            pc_param_list_zero_grad(&params);
            pc_linear_forward(&d->lin, d->y, d->x, ROWS, true, NULL);
            pc_linear_backward(&d->lin, NULL, false, d->w, d->x, ROWS);
            pc_adamw_step(&opt, &params, 1e-2);
        }
        check_against(st, prefix, "step3.A", d->lora.A, R * IN, 1e-4);
        check_against(st, prefix, "step3.B", d->lora.B, OUT * R, 1e-4);
        check_against(st, prefix, "step3.m", d->lora.m, OUT, 1e-4);
        pc_adamw_free(&opt);
        pc_param_list_free(&params);
    }
    if (d) { pc_lora_free(&d->lora); pc_linear_release(&d->lin); pc_scratch_free(&d->scratch); }
    free(d);
    pc_st_close(st);
}

TEST(dora_linear_three_adamw_steps_match_pytorch)
{
    linear_adamw_case("bias");
    linear_adamw_case("nobias");
    linear_adamw_case("conv1d");
}

/* ---------- dropout: float64 hand computation and finite differences ---------- */

/* W[o, i] whatever the layout. */
static double w_at(const pc_linear *lin, int o, int i)
{
    return lin->w_in_out ? lin->W[(long)i * lin->out + o] : lin->W[(long)o * lin->in + i];
}

/* c[o] = m[o] / ||W_o + s (B A)_o||, in double. */
static void hand_scale(const dora_linear *d, double *c)
{
    const pc_lora *l = &d->lora;
    for (int o = 0; o < OUT; o++) {
        double sq = 0;
        for (int i = 0; i < IN; i++) {
            double ba = 0;
            for (int k = 0; k < R; k++) ba += (double)l->B[o * R + k] * l->A[k * IN + i];
            double v = w_at(&d->lin, o, i) + l->scaling * ba;
            sq += v * v;
        }
        c[o] = l->m[o] / sqrt(sq);
    }
}

/* y = x W^T + b + (c - 1) x_d W^T + c s x_d A^T B^T, x_d = mask x (the mask the forward drew). */
static void hand_forward(const dora_linear *d, const double *c, double *y)
{
    const pc_lora *l = &d->lora;
    for (int r = 0; r < ROWS; r++) {
        double xd[IN], h[R];
        for (int i = 0; i < IN; i++) xd[i] = (double)d->x[r * IN + i] * (l->keep[r * IN + i] ? 1.0 / (1.0 - l->dropout) : 0.0);
        for (int k = 0; k < R; k++) {
            h[k] = 0;
            for (int i = 0; i < IN; i++) h[k] += xd[i] * l->A[k * IN + i];
        }
        for (int o = 0; o < OUT; o++) {
            double base = d->lin.b ? d->lin.b[o] : 0, based = 0, lora = 0;
            for (int i = 0; i < IN; i++) {
                base += (double)d->x[r * IN + i] * w_at(&d->lin, o, i);
                based += xd[i] * w_at(&d->lin, o, i);
            }
            for (int k = 0; k < R; k++) lora += h[k] * l->B[o * R + k];
            y[r * OUT + o] = base + (c[o] - 1) * based + c[o] * l->scaling * lora;
        }
    }
}

typedef struct fd_ctx {
    dora_linear *d;
} fd_ctx;

/* sum(y * w) with the same dropout mask every time (the stream restarts). */
static double dropout_loss(void *p)
{
    dora_linear *d = ((fd_ctx *)p)->d;
    pc_rng rng;
    pc_rng_init(&rng, 7, "dropout");
    pc_linear_forward(&d->lin, d->y, d->x, ROWS, true, &rng);
    double s = 0;
    for (int i = 0; i < ROWS * OUT; i++) s += (double)d->y[i] * d->w[i];
    return s;
}

static double max_rel_d(const float *got, const double *want, long n)
{
    double num = 0, den = 1e-30;
    for (long i = 0; i < n; i++) {
        num = fmax(num, fabs(got[i] - want[i]));
        den = fmax(den, fabs(want[i]));
    }
    return num / den;
}

static double central_difference(float *v, double (*loss)(void *), void *ctx, float eps)
{
    float saved = *v, plus = saved + eps, minus = saved - eps;
    *v = plus;
    double lp = loss(ctx);
    *v = minus;
    double lm = loss(ctx);
    *v = saved;
    return (lp - lm) / ((double)plus - (double)minus);
}

static void check_dropout_case(const char *name)
{
    pc_safetensors *st = open_fixture("dora/linear.safetensors");
    dora_linear *d = calloc(1, sizeof *d);
    if (st && d && setup_linear(d, st, name, 0.3f) == 0) {
        fd_ctx ctx = { d };
        double c[OUT], y_ref[ROWS * OUT];
        dropout_loss(&ctx);
        int dropped = 0;
        for (int i = 0; i < ROWS * IN; i++) dropped += d->lora.keep[i] == 0;
        CHECK_MSG(dropped > 10 && dropped < ROWS * IN - 10, "mask drops %d of %d inputs", dropped, ROWS * IN);
        hand_scale(d, c);
        hand_forward(d, c, y_ref);
        CHECK_MSG(max_rel_d(d->y, y_ref, ROWS * OUT) < 1e-5, "%s: dropout forward rel err %.3g", name,
                  max_rel_d(d->y, y_ref, ROWS * OUT));
        pc_linear_backward(&d->lin, d->dx, false, d->w, d->x, ROWS);
        /* x and m do not enter the norm: plain central differences */
        for (int i = 0; i < ROWS * IN; i += 7) {
            double fd = central_difference(&d->x[i], dropout_loss, &ctx, 1e-2f);
            CHECK_NEAR(d->dx[i], fd, 2e-3);
        }
        for (int o = 0; o < OUT; o += 3) {
            double fd = central_difference(&d->lora.m[o], dropout_loss, &ctx, 1e-2f);
            CHECK_NEAR(d->lora.dm[o], fd, 2e-3);
        }
        /* dB = s (c dy)^T (x_d A^T), dA = s ((c dy) B)^T x_d, by hand (the norm is a constant) */
        double dA[R * IN] = { 0 }, dB[OUT * R] = { 0 };
        const pc_lora *l = &d->lora;
        for (int r = 0; r < ROWS; r++) {
            double xd[IN], h[R] = { 0 }, gB[R] = { 0 };
            for (int i = 0; i < IN; i++) xd[i] = (double)d->x[r * IN + i] * (l->keep[r * IN + i] ? 1.0 / (1.0 - l->dropout) : 0.0);
            for (int k = 0; k < R; k++)
                for (int i = 0; i < IN; i++) h[k] += xd[i] * l->A[k * IN + i];
            for (int o = 0; o < OUT; o++) {
                double g = c[o] * d->w[r * OUT + o] * l->scaling;
                for (int k = 0; k < R; k++) {
                    dB[o * R + k] += g * h[k];
                    gB[k] += g * l->B[o * R + k];
                }
            }
            for (int k = 0; k < R; k++)
                for (int i = 0; i < IN; i++) dA[k * IN + i] += gB[k] * xd[i];
        }
        CHECK_MSG(max_rel_d(l->dA, dA, R * IN) < 1e-5, "%s: dA rel err %.3g", name, max_rel_d(l->dA, dA, R * IN));
        CHECK_MSG(max_rel_d(l->dB, dB, OUT * R) < 1e-5, "%s: dB rel err %.3g", name, max_rel_d(l->dB, dB, OUT * R));
    }
    if (d) { pc_lora_free(&d->lora); pc_linear_release(&d->lin); pc_scratch_free(&d->scratch); }
    free(d);
    pc_st_close(st);
}

TEST(dora_dropout_matches_hand_computation_and_finite_differences)
{
    check_dropout_case("bias");
    check_dropout_case("conv1d");
}

/* ---------- a 4-bit base ---------- */

/* DoRA on a 4-bit W equals DoRA on its dequantized f32 copy (the path the PyTorch fixtures check), as PEFT
 * computes the norm of the dequantized weight: magnitude init, forward and gradients, with and without dropout. */
static void check_4bit_against_dequantized(float p)
{
    pc_safetensors *st = open_fixture("dora/linear.safetensors");
    dora_linear *f = calloc(1, sizeof *f), *q = calloc(1, sizeof *q);
    pc_q4_weight w4 = { 0 };
    pc_scratch scratch = { 0 };
    pc_error err = { 0 };
    if (st && f && q && load_linear(f, st, "bias", p) == 0 && load_linear(q, st, "bias", p) == 0) {
        /* q holds W in 4 bits, f the dequantized copy in f32 */
        CHECK_MSG(pc_q4_quantize(q->W, OUT, IN, PC_Q4_NF4, true, &w4, &err) == PEFTC_OK, "%s", err.msg);
        pc_q4_dequantize(&w4, f->W);
        q->lin.W = NULL;
        q->lin.q4 = &w4;
        q->lin.q4_compute = PC_Q4_COMPUTE_F32;
        dora_linear *both[2] = { f, q };
        for (int i = 0; i < 2; i++) {
            pc_base_weight base = pc_linear_base(&both[i]->lin);
            CHECK(pc_dora_init(&both[i]->lora, &base, &err) == PEFTC_OK);
            CHECK_MSG(pc_linear_reserve(&both[i]->lin, ROWS, &scratch, &err) == PEFTC_OK, "%s", err.msg);
        }
        CHECK_MSG(pc_test_max_rel_err(q->lora.m, f->lora.m, OUT) < 1e-6, "4-bit magnitude init");
        for (int o = 0; o < OUT; o++) f->lora.m[o] = q->lora.m[o] = 0.9f * f->lora.m[o] + 0.01f * (float)o;
        for (int i = 0; i < 2; i++) {
            pc_rng rng;
            pc_rng_init(&rng, 9, "dropout");   /* the same mask for both */
            pc_linear_forward(&both[i]->lin, both[i]->y, both[i]->x, ROWS, true, &rng);
            pc_linear_backward(&both[i]->lin, both[i]->dx, false, both[i]->w, both[i]->x, ROWS);
        }
        CHECK_MSG(pc_test_max_rel_err(q->y, f->y, ROWS * OUT) < 1e-5, "4-bit forward (p %.2f)", p);
        CHECK_MSG(pc_test_max_rel_err(q->dx, f->dx, ROWS * IN) < 1e-5, "4-bit dx (p %.2f)", p);
        CHECK_MSG(pc_test_max_rel_err(q->lora.dA, f->lora.dA, R * IN) < 1e-5, "4-bit dA (p %.2f)", p);
        CHECK_MSG(pc_test_max_rel_err(q->lora.dB, f->lora.dB, OUT * R) < 1e-5, "4-bit dB (p %.2f)", p);
        CHECK_MSG(pc_test_max_rel_err(q->lora.dm, f->lora.dm, OUT) < 1e-5, "4-bit dm (p %.2f)", p);
    }
    if (f) { pc_lora_free(&f->lora); pc_linear_release(&f->lin); }
    if (q) pc_lora_free(&q->lora);
    pc_q4_free(&w4);
    pc_scratch_free(&scratch);
    free(f);
    free(q);
    pc_st_close(st);
}

TEST(dora_on_4bit_base_equals_dora_on_dequantized_weight)
{
    check_4bit_against_dequantized(0.0f);
    check_4bit_against_dequantized(0.3f);
}

/* ---------- magnitude init and the cached row norms ---------- */

TEST(dora_magnitude_init_is_row_norm_of_w_when_b_is_zero)
{
    for (int layout = 0; layout < 2; layout++) {
        float W[IN * OUT];
        pc_rng rng;
        pc_rng_init(&rng, 3, "w");
        pc_rng_fill_uniform(&rng, W, IN * OUT, -1.0f, 1.0f);
        pc_lora l;
        pc_error err = { 0 };
        CHECK(pc_lora_create(&l, IN, OUT, R, 2.0f, 0.0f, PC_LORA_INIT_DEFAULT, &rng, &err) == PEFTC_OK);
        pc_base_weight base = { .W = W, .w_in_out = layout == 1 };
        CHECK(pc_dora_init(&l, &base, &err) == PEFTC_OK);
        for (int o = 0; o < OUT; o++) {
            double sq = 0;
            for (int i = 0; i < IN; i++) {
                double v = layout ? W[i * OUT + o] : W[o * IN + i];
                sq += v * v;
            }
            CHECK_NEAR(l.m[o], sqrt(sq), 1e-6);
        }
        pc_lora_free(&l);
    }
}

/* The cache of ||W_o||^2 stands in for rows whose B row is zero: the same bits as the full pass. */
TEST(dora_cached_row_norms_give_the_same_bits)
{
    for (int layout = 0; layout < 2; layout++) {
        enum { BIG_IN = 150, BIG_OUT = 130 };   /* several chunks, a partial one last */
        float *W = malloc(sizeof(float) * BIG_IN * BIG_OUT), A[R * BIG_IN], B[BIG_OUT * R], Bt[R * BIG_OUT];
        float with[BIG_OUT], without[BIG_OUT];
        double wnorm2[BIG_OUT];
        CHECK(W != NULL);
        if (!W) return;
        pc_rng rng;
        pc_rng_init(&rng, 5, "w");
        pc_rng_fill_uniform(&rng, W, BIG_IN * BIG_OUT, -1.0f, 1.0f);
        pc_rng_fill_uniform(&rng, A, R * BIG_IN, -1.0f, 1.0f);
        pc_rng_fill_uniform(&rng, B, BIG_OUT * R, -1.0f, 1.0f);
        for (int o = 64; o < BIG_OUT; o++)   /* the second chunk of columns and the rest: B rows zero */
            for (int k = 0; k < R; k++) B[o * R + k] = 0.0f;
        for (int k = 0; k < R; k++) B[3 * R + k] = 0.0f;
        pc_base_weight base = { .W = W, .w_in_out = layout == 1 };
        pc_lora_row_norms2(wnorm2, &base, BIG_IN, BIG_OUT);
        pc_lora_weight_norm(with, &base, BIG_IN, BIG_OUT, A, B, R, 1.5f, Bt, wnorm2);
        pc_lora_weight_norm(without, &base, BIG_IN, BIG_OUT, A, B, R, 1.5f, Bt, NULL);
        CHECK(memcmp(with, without, sizeof with) == 0);
        CHECK_NEAR(with[3], sqrt(wnorm2[3]), 1e-7);
        free(W);
    }
}

/* ---------- merge / unmerge ---------- */

static void check_merge_case(const char *name)
{
    pc_safetensors *st = open_fixture("dora/linear.safetensors");
    dora_linear *d = calloc(1, sizeof *d);
    char prefix[32];
    snprintf(prefix, sizeof prefix, "%s.", name);
    if (st && d && setup_linear(d, st, name, 0.0f) == 0) {
        const pc_lora *l = &d->lora;
        bool t = d->lin.w_in_out;
        float W[IN * OUT];
        pc_error err = { 0 };
        memcpy(W, d->W, sizeof W);
        CHECK(pc_lora_merge(W, t, IN, OUT, l->A, l->B, R, l->scaling, NULL, &err) == PEFTC_OK);
        check_against(st, prefix, "merged.lora", W, IN * OUT, 1e-6);
        CHECK(pc_lora_unmerge(W, t, IN, OUT, l->A, l->B, R, l->scaling, &err) == PEFTC_OK);
        CHECK_MSG(pc_test_max_rel_err(W, d->W, IN * OUT) < 1e-6, "%s: unmerge does not restore W", name);
        memcpy(W, d->W, sizeof W);
        CHECK(pc_lora_merge(W, t, IN, OUT, l->A, l->B, R, l->scaling, l->m, &err) == PEFTC_OK);
        check_against(st, prefix, "merged.dora", W, IN * OUT, 1e-6);
    }
    if (d) { pc_lora_free(&d->lora); pc_linear_release(&d->lin); pc_scratch_free(&d->scratch); }
    free(d);
    pc_st_close(st);
}

TEST(lora_and_dora_merge_match_peft)
{
    check_merge_case("bias");
    check_merge_case("nobias");
    check_merge_case("conv1d");
}

/* ---------- DistilBERT with DoRA on q_lin, v_lin ---------- */

typedef struct model_case {
    pc_model *model;
    pc_peft_model *peft;
    pc_safetensors *ref;
    int32_t ids[64], labels[8];
    uint8_t mask[64];
    pc_batch batch;
} model_case;

static void read_ints(const pc_safetensors *st, const char *key, int32_t *dst, long cap)
{
    const pc_st_tensor *t = pc_st_find(st, key);
    CHECK_MSG(t && pc_st_numel(t) <= cap, "fixture tensor %s", key);
    for (long i = 0; t && i < pc_st_numel(t) && i < cap; i++) {
        int64_t v;
        memcpy(&v, (const char *)t->data + 8 * i, 8);
        dst[i] = (int32_t)v;
    }
}

static int open_model_case(model_case *c)
{
    memset(c, 0, sizeof *c);
    pc_error err = { 0 };
    char path[600];
    snprintf(path, sizeof path, "%s", pc_test_fixture("distilbert_tiny/qv/model"));
    CHECK_MSG(pc_model_load(path, NULL, &c->model, &err) == PEFTC_OK, "load model: %s", err.msg);
    if (!c->model) return -1;
    snprintf(path, sizeof path, "%s", pc_test_fixture("dora/distilbert_qv/adapter_init"));
    CHECK_MSG(pc_peft_load(c->model, path, &c->peft, &err) == PEFTC_OK, "load adapter: %s", err.msg);
    c->ref = open_fixture("dora/distilbert_qv/case.safetensors");
    if (!c->peft || !c->ref) return -1;
    const pc_st_tensor *ids = pc_st_find(c->ref, "input_ids");
    int B = (int)ids->shape[0], T = (int)ids->shape[1];
    int32_t mask32[64];
    read_ints(c->ref, "input_ids", c->ids, 64);
    read_ints(c->ref, "attention_mask", mask32, 64);
    read_ints(c->ref, "labels", c->labels, 8);
    for (int i = 0; i < B * T; i++) c->mask[i] = (uint8_t)mask32[i];
    c->batch = (pc_batch){ B, T, c->ids, c->mask, c->labels };
    CHECK(c->model->ops->reserve(c->model, B, T, &err) == PEFTC_OK);
    return 0;
}

static void close_model_case(model_case *c)
{
    pc_peft_model_free(c->peft);
    pc_model_free(c->model);
    pc_st_close(c->ref);
}

static void model_step(model_case *c, float *loss)
{
    pc_error err = { 0 };
    pc_param_list_zero_grad(&c->peft->trainable);
    CHECK_MSG(c->model->ops->forward(c->model, &c->batch, false, loss, &err) == PEFTC_OK, "%s", err.msg);
    c->model->ops->backward(c->model, &c->batch, 1.0f);
}

TEST(dora_distilbert_forward_and_gradients_match_pytorch)
{
    model_case c;
    if (open_model_case(&c) == 0) {
        float loss;
        model_step(&c, &loss);
        long nl = (long)c.batch.B * c.model->num_labels;
        check_against(c.ref, "", "logits", c.model->logits, nl, 1e-5);
        check_against(c.ref, "", "loss", &loss, 1, 1e-5);
        int magnitudes = 0;
        for (int i = 0; i < c.peft->trainable.n; i++) {
            const pc_param *p = &c.peft->trainable.items[i];
            magnitudes += strstr(p->name, ".lora_magnitude_vector") != NULL;
            check_against(c.ref, "grad.", p->name, p->grad, (long)p->numel, 1e-4);
        }
        CHECK_INT_EQ(magnitudes, 4);
    }
    close_model_case(&c);
}

TEST(dora_distilbert_three_adamw_steps_match_pytorch)
{
    model_case c;
    if (open_model_case(&c) == 0) {
        pc_adamw opt;
        pc_error err = { 0 };
        CHECK(pc_adamw_init(&opt, &c.peft->trainable, 0.9, 0.999, 1e-8, 0.01, &err) == PEFTC_OK);
        float losses[3], norms[3];
        for (int step = 0; step < 3; step++) {
            model_step(&c, &losses[step]);
            norms[step] = (float)pc_clip_grad_norm(&c.peft->trainable, 0.5);
            pc_adamw_step(&opt, &c.peft->trainable, 1e-2 * pc_schedule_factor(PC_SCHED_LINEAR, step, 0, 3));
        }
        check_against(c.ref, "", "train.loss", losses, 3, 1e-5);
        check_against(c.ref, "", "train.grad_norm", norms, 3, 1e-4);
        for (int i = 0; i < c.peft->trainable.n; i++) {
            const pc_param *p = &c.peft->trainable.items[i];
            check_against(c.ref, "step3.", p->name, p->data, (long)p->numel, 1e-4);
        }
        pc_adamw_free(&opt);
    }
    close_model_case(&c);
}

/* PEFT counts the magnitudes: 2,146 of the LoRA case + 2 layers x 2 modules x 32 (the generator's formula). */
TEST(dora_print_trainable_parameters)
{
    model_case c;
    if (open_model_case(&c) == 0) {
        char line[200];
        pc_peft_trainable_line(c.peft, line, sizeof line);
        CHECK_STR_EQ(line, "trainable params: 2,274 || all params: 25,028 || trainable%: 9.0858");
    }
    close_model_case(&c);
}

/* Saved as PEFT saves it (no ".weight", shape [out], F32), and loaded back. */
TEST(dora_adapter_save_and_load_round_trip)
{
    model_case c;
    if (open_model_case(&c) == 0) {
        pc_error err = { 0 };
        const char *key = "base_model.model.distilbert.transformer.layer.1.attention.v_lin.lora_magnitude_vector";
        pc_param *m = pc_param_list_find(&c.peft->trainable, key);
        CHECK_MSG(m != NULL, "no trainable %s", key);
        if (m) for (int i = 0; i < m->numel; i++) m->data[i] += 0.25f * (float)i;   /* differ from the init */
        char dir[600];
        snprintf(dir, sizeof dir, "%s/dora_adapter", pc_test_tmpdir());
        CHECK(pc_mkdirs(dir, &err) == PEFTC_OK);
        CHECK_MSG(pc_peft_save(c.peft, dir, &err) == PEFTC_OK, "%s", err.msg);
        char path[700];
        snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
        pc_safetensors *st = NULL;
        CHECK(pc_st_open(path, &st, &err) == PEFTC_OK);
        const pc_st_tensor *t = st ? pc_st_find(st, key) : NULL;
        CHECK_MSG(t != NULL, "saved adapter has no %s", key);
        if (t) {
            CHECK_INT_EQ(t->ndim, 1);
            CHECK_INT_EQ(t->shape[0], 32);
            CHECK_INT_EQ(t->dtype, PC_DT_F32);
        }
        pc_st_close(st);
        pc_model *model2 = NULL;
        pc_peft_model *peft2 = NULL;
        char mdir[600];
        snprintf(mdir, sizeof mdir, "%s", pc_test_fixture("distilbert_tiny/qv/model"));
        CHECK(pc_model_load(mdir, NULL, &model2, &err) == PEFTC_OK);
        if (model2) CHECK_MSG(pc_peft_load(model2, dir, &peft2, &err) == PEFTC_OK, "%s", err.msg);
        if (peft2) {
            CHECK(peft2->config.use_dora);
            pc_param *m2 = pc_param_list_find(&peft2->trainable, key);
            CHECK(m && m2 && memcmp(m->data, m2->data, sizeof(float) * (size_t)m->numel) == 0);
        }
        pc_peft_model_free(peft2);
        pc_model_free(model2);
    }
    close_model_case(&c);
}

/* ---------- a training run with use_dora ---------- */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CHECK_MSG(f != NULL, "cannot write %s", path);
    if (f) { fputs(text, f); fclose(f); }
}

/* use_dora reaches the adapter: the run trains the magnitudes and saves them as PEFT does. */
TEST(dora_training_run_saves_magnitudes)
{
    char dir[512], path[700], value[700];
    pc_error err = { 0 };
    snprintf(dir, sizeof dir, "%s/dora_train", pc_test_tmpdir());
    snprintf(path, sizeof path, "%s/model", dir);
    CHECK(pc_mkdirs(path, &err) == PEFTC_OK);
    char *labels[2] = { "NEGATIVE", "POSITIVE" };
    pc_distilbert_config mc = { .dim = 16, .n_layers = 2, .n_heads = 2, .hidden_dim = 32, .vocab_size = 9,
                                .max_position_embeddings = 16, .dropout = 0.1f, .attention_dropout = 0.1f,
                                .seq_classif_dropout = 0.2f, .num_labels = 2, .id2label = labels };
    CHECK_MSG(pc_distilbert_write_random(path, &mc, 7, &err) == PEFTC_OK, "%s", err.msg);
    snprintf(path, sizeof path, "%s/model/vocab.txt", dir);
    write_file(path, "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\ngood\nbad\na\nfilm\n");
    snprintf(path, sizeof path, "%s/train.jsonl", dir);
    write_file(path, "{\"text\": \"a good film\", \"label\": 1}\n{\"text\": \"a bad film\", \"label\": 0}\n"
                     "{\"text\": \"good good\", \"label\": 1}\n{\"text\": \"bad film\", \"label\": 0}\n");
    pc_config cfg;
    pc_config_init(&cfg);
    /* paths are relative to dir */
    const char *paths[][2] = { { "model_name_or_path", "model" }, { "train_file", "train.jsonl" },
                               { "output_dir", "out" } };
    const char *keys[][2] = {
        { "task_type", "SEQ_CLS" }, { "use_dora", "true" }, { "target_modules", "q_lin,v_lin" },
        { "lora_dropout", "0.1" }, { "max_steps", "2" }, { "per_device_train_batch_size", "2" },
        { "learning_rate", "1e-2" }, { "id2label", "NEGATIVE,POSITIVE" },
    };
    for (int i = 0; i < 3; i++) {
        snprintf(value, sizeof value, "%s/%s", dir, paths[i][1]);
        CHECK_MSG(pc_config_set(&cfg, paths[i][0], value, "test", &err) == PEFTC_OK, "%s", err.msg);
    }
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        CHECK_MSG(pc_config_set(&cfg, keys[i][0], keys[i][1], "test", &err) == PEFTC_OK, "%s", err.msg);
    pc_train_result res;
    CHECK_MSG(pc_train(&cfg, NULL, &res, &err) == PEFTC_OK, "train: %s", err.msg);
    pc_config_free(&cfg);
    snprintf(path, sizeof path, "%s/out/adapter_model.safetensors", dir);
    pc_safetensors *st = NULL;
    CHECK_MSG(pc_st_open(path, &st, &err) == PEFTC_OK, "%s", err.msg);
    if (st) {
        /* 2 layers x {q_lin, v_lin} x {A, B, magnitude} + pre_classifier and classifier weight and bias */
        CHECK_INT_EQ(pc_st_count(st), 16);
        const pc_st_tensor *t = pc_st_find(st, "base_model.model.distilbert.transformer.layer.1.attention.q_lin."
                                               "lora_magnitude_vector");
        CHECK(t != NULL && t->ndim == 1 && t->shape[0] == 16);
    }
    pc_st_close(st);
    pc_lora_config lc;
    snprintf(path, sizeof path, "%s/out/adapter_config.json", dir);
    CHECK_MSG(pc_lora_config_load(&lc, path, &err) == PEFTC_OK, "%s", err.msg);
    CHECK(lc.use_dora);
    pc_lora_config_free(&lc);
}

/* QLoRA + DoRA: DistilBERT with every Linear but the heads in NF4 equals the fp32 model holding the
 * dequantized weights (whose DoRA path the fixtures check): logits and every gradient, magnitudes included. */
TEST(dora_on_4bit_distilbert_equals_dequantized_fp32)
{
    pc_model *q = NULL, *ref = NULL;
    pc_peft_model *pq = NULL, *pr = NULL;
    pc_error err = { 0 };
    char dir[600], adapter[600];
    snprintf(dir, sizeof dir, "%s", pc_test_fixture("distilbert_tiny/qv/model"));
    CHECK(pc_model_load(dir, NULL, &q, &err) == PEFTC_OK);
    CHECK(pc_model_load(dir, NULL, &ref, &err) == PEFTC_OK);
    float *owned[64];
    int n_owned = 0;
    if (q && ref) {
        char *skip[] = { "pre_classifier", "classifier" };
        pc_quant_options o = { PC_Q4_NF4, true, PC_Q4_COMPUTE_F32, skip, 2 };
        CHECK_MSG(pc_model_quantize_4bit(q, &o, &err) == PEFTC_OK, "%s", err.msg);
        for (int i = 0; i < q->n_linears && n_owned < 64; i++) {
            if (!q->linears[i]->q4) continue;
            float *w = malloc(sizeof(float) * (size_t)q->linears[i]->in * q->linears[i]->out);
            pc_q4_dequantize(q->linears[i]->q4, w);
            ref->linears[i]->W = w;
            owned[n_owned++] = w;
        }
        CHECK(n_owned == 12);
        snprintf(adapter, sizeof adapter, "%s", pc_test_fixture("dora/distilbert_qv/adapter_init"));
        CHECK_MSG(pc_peft_load(q, adapter, &pq, &err) == PEFTC_OK, "%s", err.msg);
        CHECK_MSG(pc_peft_load(ref, adapter, &pr, &err) == PEFTC_OK, "%s", err.msg);
    }
    if (pq && pr) {
        int32_t ids[6] = { 5, 17, 33, 4, 9, 0 }, labels[2] = { 1, 0 };
        uint8_t mask[6] = { 1, 1, 1, 1, 1, 0 };
        pc_batch b = { 2, 3, ids, mask, labels };
        float lq, lr, logits_q[4];
        pc_model *models[2] = { q, ref };
        pc_peft_model *pefts[2] = { pq, pr };
        float *losses[2] = { &lq, &lr };
        for (int i = 0; i < 2; i++) {
            CHECK(models[i]->ops->reserve(models[i], 2, 3, &err) == PEFTC_OK);
            pc_param_list_zero_grad(&pefts[i]->trainable);
            CHECK_MSG(models[i]->ops->forward(models[i], &b, false, losses[i], &err) == PEFTC_OK, "%s", err.msg);
            models[i]->ops->backward(models[i], &b, 1.0f);
            if (i == 0) memcpy(logits_q, q->logits, sizeof logits_q);
        }
        CHECK_MSG(pc_test_max_rel_err(logits_q, ref->logits, 4) <= 1e-5, "4-bit DoRA logits differ");
        CHECK_NEAR(lq, lr, 1e-5);
        for (int i = 0; i < pq->trainable.n; i++) {
            double rel = pc_test_max_rel_err(pq->trainable.items[i].grad, pr->trainable.items[i].grad,
                                             pq->trainable.items[i].numel);
            CHECK_MSG(rel <= 1e-4, "gradient of %s differs by %.3g", pq->trainable.items[i].name, rel);
        }
    }
    pc_peft_model_free(pq);
    pc_peft_model_free(pr);
    for (int i = 0; i < n_owned; i++) free(owned[i]);
    pc_model_free(q);
    pc_model_free(ref);
}
