/* A LoRA adapter on its own (peft/lora.c): forward and backward, with LoRA dropout and without, against the
 * formulas of Hu et al. (2021) written out here in double, with the mask the forward drew (l->keep):
 *   y += s (x_d A^T) B^T,  x_d = x * keep / (1 - p);
 *   dB += s dy^T h,  g = s dy B,  dA += g^T x_d,  dx += (g A) * keep / (1 - p). */
#include <stdlib.h>

#include "peft/lora.h"
#include "testlib.h"

enum { IN = 37, OUT = 21, R = 5, ROWS = 9 };

static double max_rel(const float *got, const double *want, int n)
{
    double err = 0, mag = 1e-30;
    for (int i = 0; i < n; i++) {
        err = fmax(err, fabs((double)got[i] - want[i]));
        mag = fmax(mag, fabs(want[i]));
    }
    return err / mag;
}

static void check_case(float p, bool training)
{
    static float x[ROWS * IN], y[ROWS * OUT], dy[ROWS * OUT], dx[ROWS * IN];
    static double xd[ROWS * IN], h[ROWS * R], g[ROWS * R], want_y[ROWS * OUT], want_dx[ROWS * IN];
    static double want_dA[R * IN], want_dB[OUT * R];
    unsigned seed = 99;
    pc_rng rng;
    pc_rng_init(&rng, 5, "lora");
    pc_lora l;
    pc_error err = { 0 };
    CHECK(pc_lora_create(&l, IN, OUT, R, 1.5f, p, PC_LORA_INIT_NONE, &rng, &err) == PEFTC_OK);   /* B random */
    CHECK(pc_lora_reserve(&l, ROWS, &err) == PEFTC_OK);
    pc_test_fill_uniform(x, ROWS * IN, &seed); pc_test_fill_uniform(y, ROWS * OUT, &seed);
    pc_test_fill_uniform(dy, ROWS * OUT, &seed); pc_test_fill_uniform(dx, ROWS * IN, &seed);
    for (int i = 0; i < ROWS * OUT; i++) want_y[i] = y[i];
    for (int i = 0; i < ROWS * IN; i++) want_dx[i] = dx[i];
    pc_lora_forward(&l, y, x, ROWS, training, &rng);
    pc_lora_backward(&l, dx, dy, x, ROWS);
    const bool dropped = training && p > 0;
    long kept = 0;
    for (int i = 0; i < ROWS * IN; i++) {
        double f = dropped ? (l.keep[i] ? 1.0 / (1.0 - p) : 0.0) : 1.0;
        kept += f != 0.0;
        xd[i] = x[i] * f;
    }
    if (dropped) CHECK_MSG(kept > ROWS * IN / 2 && kept < ROWS * IN, "mask keeps %ld of %d", kept, ROWS * IN);
    memset(want_dA, 0, sizeof want_dA);
    memset(want_dB, 0, sizeof want_dB);
    for (int i = 0; i < ROWS; i++)
        for (int k = 0; k < R; k++) {
            h[i * R + k] = g[i * R + k] = 0;
            for (int j = 0; j < IN; j++) h[i * R + k] += xd[i * IN + j] * l.A[k * IN + j];
            for (int o = 0; o < OUT; o++) g[i * R + k] += 1.5 * dy[i * OUT + o] * l.B[o * R + k];
        }
    for (int i = 0; i < ROWS; i++) {
        for (int o = 0; o < OUT; o++)
            for (int k = 0; k < R; k++) {
                want_y[i * OUT + o] += 1.5 * h[i * R + k] * l.B[o * R + k];
                want_dB[o * R + k] += 1.5 * dy[i * OUT + o] * h[i * R + k];
            }
        for (int j = 0; j < IN; j++) {
            double f = dropped ? (l.keep[i * IN + j] ? 1.0 / (1.0 - p) : 0.0) : 1.0, gA = 0;
            for (int k = 0; k < R; k++) {
                gA += g[i * R + k] * l.A[k * IN + j];
                want_dA[k * IN + j] += g[i * R + k] * xd[i * IN + j];
            }
            want_dx[i * IN + j] += gA * f;
        }
    }
    CHECK_MSG(max_rel(y, want_y, ROWS * OUT) < 1e-5, "p %.2f: y", p);
    CHECK_MSG(max_rel(dx, want_dx, ROWS * IN) < 1e-5, "p %.2f: dx", p);
    CHECK_MSG(max_rel(l.dA, want_dA, R * IN) < 1e-5, "p %.2f: dA", p);
    CHECK_MSG(max_rel(l.dB, want_dB, OUT * R) < 1e-5, "p %.2f: dB", p);
    pc_lora_free(&l);
}

TEST(lora_forward_and_backward_match_the_formulas)
{
    check_case(0.0f, true);
    check_case(0.3f, false);   /* eval: no dropout */
}

TEST(lora_dropout_masks_the_branch_input_and_its_gradient)
{
    check_case(0.3f, true);
}
