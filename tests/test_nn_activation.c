#include "testlib.h"
#include "test_nn_gradcheck.h"
#include "nn/activation.h"
#include "nn/exp.h"

/* pc_exp_nonpositive against exp in double on 2 million points of [-80, 0] (every float was checked once: 2.3e-7
 * at most), and its edges: exp(0) = 1 exactly, 0 below -80 and for -inf, NaN kept. */
TEST(nn_exp_nonpositive_matches_double_precision)
{
    double worst = 0;
    for (int i = 0; i <= 2000000; i++) {
        float x = -80.0f * (float)i / 2000000.0f;
        double rel = fabs(pc_exp_nonpositive(x) / exp((double)x) - 1.0);
        if (rel > worst) worst = rel;
    }
    CHECK_MSG(worst < 2.5e-7, "relative error %.3g", worst);
    CHECK(pc_exp_nonpositive(0.0f) == 1.0f);
    CHECK(pc_exp_nonpositive(-80.5f) == 0.0f && pc_exp_nonpositive(-INFINITY) == 0.0f);
    CHECK(isnan(pc_exp_nonpositive(NAN)));
}

/* Reference values: x * Phi(x) with Phi from erf tables; tanh form and SiLU by hand in double. */
TEST(nn_gelu_known_values)
{
    const float x[6] = {0, 1, -1, 2, -3, 0.5f};
    const double exact[6] = {0, 0.8413447460685429, -0.15865525393145707, 1.9544997361036416,
                             -0.00404969409489031, 0.34573123063700656};
    const double tanh_form[6] = {0, 0.8411919906082768, -0.15880800939172324, 1.954597694087775,
                                 -0.0036373920817729943, 0.34571400982514394};
    float y[6], slope[6];
    pc_gelu_forward(y, slope, x, 6);
    for (int i = 0; i < 6; i++) CHECK_NEAR(y[i], exact[i], 1e-6);
    pc_gelu_tanh_forward(y, x, 6);
    for (int i = 0; i < 6; i++) CHECK_NEAR(y[i], tanh_form[i], 1e-6);
}

/* The exact GELU x Phi(x) and its derivative Phi(x) + x phi(x) (Phi from libm's erfc in double) across
 * [-12, 12]: ours (no libm) within 3e-6 relative in both tails (0.5 x (1 + erff(x / sqrt 2)) in float is off
 * by 16 % at x = -5.5), the derivative relative to the size of its two terms (it crosses 0 near -0.75). */
TEST(nn_gelu_matches_double_precision_across_range)
{
    enum { N = 24001 };
    static float x[N], y[N], dx[N], slope[N], ones[N];
    for (int i = 0; i < N; i++) { x[i] = -12.0f + 0.001f * (float)i; ones[i] = 1.0f; }
    pc_gelu_forward(y, slope, x, N);
    pc_gelu_backward(dx, ones, slope, N);
    double worst_y = 0, worst_d = 0;
    for (int i = 0; i < N; i++) {
        double xi = x[i], cdf = 0.5 * erfc(-xi / sqrt(2.0)), pdf = exp(-0.5 * xi * xi) / sqrt(2 * M_PI);
        double ey = fabs(y[i] - xi * cdf) / fmax(fabs(xi * cdf), 1e-12 / 2e-6);
        double ed = fabs(dx[i] - (cdf + xi * pdf)) / fmax(cdf + fabs(xi * pdf), 1e-12 / 2e-6);
        if (ey > worst_y) worst_y = ey;
        if (ed > worst_d) worst_d = ed;
    }
    CHECK_MSG(worst_y < 3e-6, "GELU forward relative error %.3g", worst_y);
    CHECK_MSG(worst_d < 3e-6, "GELU derivative relative error %.3g", worst_d);
}

/* SiLU x sigmoid(x) and its derivative against double precision across [-30, 30]. */
TEST(nn_silu_matches_double_precision_across_range)
{
    enum { N = 60001 };
    static float x[N], y[N], dx[N], ones[N];
    for (int i = 0; i < N; i++) { x[i] = -30.0f + 0.001f * (float)i; ones[i] = 1.0f; }
    pc_silu_forward(y, x, N);
    pc_silu_backward(dx, ones, x, N);
    double worst_y = 0, worst_d = 0;
    for (int i = 0; i < N; i++) {
        double xi = x[i], s = 1.0 / (1.0 + exp(-xi)), d = s * (1.0 + xi * (1.0 - s));
        double ey = fabs(y[i] - xi * s) / fmax(fabs(xi * s), 1e-30);
        double ed = fabs(dx[i] - d) / (s + fabs(xi * s * (1.0 - s)) + 1e-30);   /* d crosses 0 near -1.28 */
        if (ey > worst_y) worst_y = ey;
        if (ed > worst_d) worst_d = ed;
    }
    CHECK_MSG(worst_y < 1e-6, "SiLU forward relative error %.3g", worst_y);
    CHECK_MSG(worst_d < 1e-6, "SiLU derivative relative error %.3g", worst_d);
}

TEST(nn_relu_silu_known_values)
{
    const float x[4] = {1, -2, 3, 0};
    const double silu[4] = {0.7310585786300049, -0.2384058440442351, 2.8577223804672998, 0};
    float y[4];
    pc_silu_forward(y, x, 4);
    for (int i = 0; i < 4; i++) CHECK_NEAR(y[i], silu[i], 1e-6);
    pc_relu_forward(y, x, 4);
    CHECK(y[0] == 1 && y[1] == 0 && y[2] == 3 && y[3] == 0);
    /* far tails stay finite */
    const float big[2] = {-100, 100};
    pc_silu_forward(y, big, 2);
    CHECK(y[0] == 0 && y[1] == 100);
    float slope[2];
    pc_gelu_forward(y, slope, big, 2);
    CHECK(y[0] == 0 && y[1] == 100);
    CHECK(slope[0] == 0 && slope[1] == 1);
}

/* The slope may overwrite the input (DistilBERT keeps it in place of lin1's output): the same values. */
TEST(nn_gelu_slope_in_place_equals_separate)
{
    enum { N = 40000 };   /* above the parallel threshold */
    static float x[N], y[N], slope[N], y2[N];
    for (int i = 0; i < N; i++) x[i] = -6.0f + 12.0f * (float)i / N;
    pc_gelu_forward(y, slope, x, N);
    pc_gelu_forward(y2, x, x, N);
    CHECK(memcmp(y, y2, sizeof y) == 0);
    CHECK(memcmp(slope, x, sizeof x) == 0);
}

/* GELU in the shape of the other activations, for the finite-difference table: the slope kept aside. */
static void gelu_forward_only(float *y, const float *x, long n)
{
    float slope[64];
    for (long i0 = 0; i0 < n; i0 += 64) pc_gelu_forward(y + i0, slope, x + i0, n - i0 < 64 ? n - i0 : 64);
}

static void gelu_backward_from_x(float *dx, const float *dy, const float *x, long n)
{
    float y[64], slope[64];
    for (long i0 = 0; i0 < n; i0 += 64) {
        long m = n - i0 < 64 ? n - i0 : 64;
        pc_gelu_forward(y, slope, x + i0, m);
        pc_gelu_backward(dx + i0, dy + i0, slope, m);
    }
}

enum { ACT_N = 41 };
typedef struct {
    float x[ACT_N], w[ACT_N];
    void (*forward)(float *, const float *, long);
} act_case;

static double act_loss(void *ctx)
{
    act_case *c = ctx;
    float y[ACT_N];
    c->forward(y, c->x, ACT_N);
    return nn_weighted_sum(y, c->w, ACT_N);
}

/* Inputs in [-4, 4], kept at least 0.01 away from 0 so ReLU's kink is never straddled. */
static void act_setup(act_case *c)
{
    nn_fill(c->x, ACT_N, "act_x", -4, 4);
    for (int i = 0; i < ACT_N; i++) if (fabsf(c->x[i]) < 0.01f) c->x[i] = 0.5f;
    nn_fill(c->w, ACT_N, "act_w", -1, 1);
}

TEST(nn_activation_gradients_match_finite_differences)
{
    act_case c;
    act_setup(&c);
    float dx[ACT_N];
    struct { const char *name; void (*fwd)(float *, const float *, long);
             void (*bwd)(float *, const float *, const float *, long); } fns[3] = {
        {"gelu", gelu_forward_only, gelu_backward_from_x},
        {"gelu_tanh", pc_gelu_tanh_forward, pc_gelu_tanh_backward},
        {"silu", pc_silu_forward, pc_silu_backward},
    };
    for (int f = 0; f < 3; f++) {
        c.forward = fns[f].fwd;
        fns[f].bwd(dx, c.w, c.x, ACT_N);
        double err = nn_gradcheck(c.x, ACT_N, dx, act_loss, &c, 1e-3f);
        CHECK_MSG(err < 5e-3, "%s rel err %g", fns[f].name, err);
        /* in place: dx overwrites dy */
        float inplace[ACT_N];
        memcpy(inplace, c.w, sizeof inplace);
        fns[f].bwd(inplace, inplace, c.x, ACT_N);
        CHECK_MSG(memcmp(inplace, dx, sizeof dx) == 0, "%s in place differs", fns[f].name);
    }
    float y[ACT_N];
    c.forward = pc_relu_forward;
    pc_relu_forward(y, c.x, ACT_N);
    pc_relu_backward(dx, c.w, y, ACT_N);
    double err = nn_gradcheck(c.x, ACT_N, dx, act_loss, &c, 1e-3f);
    CHECK_MSG(err < 5e-3, "relu rel err %g", err);
}
