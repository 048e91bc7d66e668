#include "testlib.h"
#include "test_nn_gradcheck.h"
#include "nn/loss.h"

#include <omp.h>

/* Row 0: logits log(1), log(2), log(3) give probs 1/6, 2/6, 3/6; label 2 costs -log(1/2).
 * Row 1 is ignored. Row 2: logits (1000, 0, -1000), label 1 costs 1000 + log(1 + e^-1000 + ...)
 * = 1000 to float precision, and needs the max shift to stay finite. */
TEST(nn_cross_entropy_known_values)
{
    const float logits[3 * 3] = {0, 0.69314718f, 1.09861229f, 5, 6, 7, 1000, 0, -1000};
    const int32_t labels[3] = {2, PC_IGNORE_INDEX, 1};
    float probs[9];
    int counted = -1;
    float loss = pc_cross_entropy_forward(probs, logits, labels, 3, 3, &counted);
    CHECK_INT_EQ(counted, 2);
    CHECK_NEAR(loss, (0.69314718056 + 1000.0) / 2, 1e-6);
    CHECK_NEAR(probs[0], 1.0 / 6, 1e-6);
    CHECK_NEAR(probs[1], 2.0 / 6, 1e-6);
    CHECK_NEAR(probs[2], 3.0 / 6, 1e-6);
    CHECK(probs[6] == 1.0f && probs[7] == 0.0f && probs[8] == 0.0f);
    float dlogits[9];
    pc_cross_entropy_backward(dlogits, probs, labels, 3, 3, 0.5f);
    CHECK_NEAR(dlogits[0], 0.5 / 6, 1e-6);
    CHECK_NEAR(dlogits[2], 0.5 * (0.5 - 1), 1e-6);
    for (int c = 3; c < 6; c++) CHECK(dlogits[c] == 0.0f);
    CHECK_NEAR(dlogits[7], -0.5, 1e-7);
}

TEST(nn_cross_entropy_all_ignored)
{
    const float logits[2 * 2] = {1, 2, 3, 4};
    const int32_t labels[2] = {PC_IGNORE_INDEX, PC_IGNORE_INDEX};
    float probs[4];
    int counted = -1;
    CHECK(pc_cross_entropy_forward(probs, logits, labels, 2, 2, &counted) == 0.0f);
    CHECK_INT_EQ(counted, 0);
}

enum { CE_N = 11, CE_C = 7 };
typedef struct { float logits[CE_N * CE_C]; int32_t labels[CE_N]; } ce_case;

static double ce_loss(void *ctx)
{
    ce_case *c = ctx;
    float probs[CE_N * CE_C];
    int counted;
    return pc_cross_entropy_forward(probs, c->logits, c->labels, CE_N, CE_C, &counted);
}

TEST(nn_cross_entropy_gradient_matches_finite_differences)
{
    ce_case c;
    nn_fill(c.logits, CE_N * CE_C, "ce_logits", -3, 3);
    for (int r = 0; r < CE_N; r++) c.labels[r] = r % 4 == 1 ? PC_IGNORE_INDEX : (r * 3) % CE_C;
    float probs[CE_N * CE_C], dlogits[CE_N * CE_C];
    int counted;
    pc_cross_entropy_forward(probs, c.logits, c.labels, CE_N, CE_C, &counted);
    CHECK_INT_EQ(counted, 8);
    pc_cross_entropy_backward(dlogits, probs, c.labels, CE_N, CE_C, 1.0f / counted);
    /* loss is a mean of ~1: central differences on a float loss need a wider step */
    double err = nn_gradcheck(c.logits, CE_N * CE_C, dlogits, ce_loss, &c, 1e-2f);
    CHECK_MSG(err < 5e-3, "dlogits rel err %g", err);
    /* in place over probs */
    pc_cross_entropy_backward(probs, probs, c.labels, CE_N, CE_C, 1.0f / counted);
    CHECK(memcmp(probs, dlogits, sizeof probs) == 0);
}

TEST(nn_cross_entropy_same_bits_for_any_thread_count)
{
    enum { N = 517, C = 300 };
    float *logits = malloc(sizeof(float) * N * C), *p1 = malloc(sizeof(float) * N * C),
          *p2 = malloc(sizeof(float) * N * C);
    int32_t labels[N];
    CHECK(logits && p1 && p2);
    if (logits && p1 && p2) {
        nn_fill(logits, (long)N * C, "ce_t", -10, 10);
        for (int r = 0; r < N; r++) labels[r] = r % 9 == 0 ? PC_IGNORE_INDEX : (r * 13) % C;
        int n1, n2;
        const int saved = omp_get_max_threads();
        omp_set_num_threads(1);
        float l1 = pc_cross_entropy_forward(p1, logits, labels, N, C, &n1);
        omp_set_num_threads(saved > 1 ? saved : 3);
        float l2 = pc_cross_entropy_forward(p2, logits, labels, N, C, &n2);
        omp_set_num_threads(saved);
        CHECK(l1 == l2);
        CHECK_INT_EQ(n1, n2);
        CHECK(memcmp(p1, p2, sizeof(float) * N * C) == 0);
    }
    free(logits); free(p1); free(p2);
}

/* The causal head's form (2 floats a row, the gradient written over the logits) against the probability
 * form, on rows with ignored labels and large logits (the max shift). */
TEST(nn_cross_entropy_stats_form_matches_probability_form)
{
    enum { N = 37, C = 301 };
    float *logits = malloc(sizeof(float) * N * C), *probs = malloc(sizeof(float) * N * C),
          *dlogits = malloc(sizeof(float) * N * C), *in_place = malloc(sizeof(float) * N * C);
    float row_max[N], row_inv[N];
    int32_t labels[N];
    CHECK(logits && probs && dlogits && in_place);
    if (logits && probs && dlogits && in_place) {
        nn_fill(logits, (long)N * C, "ce_stats", -30, 30);
        logits[5 * C + 7] = 900;   /* a row whose exp would overflow unshifted */
        for (int r = 0; r < N; r++) labels[r] = r % 5 == 2 ? PC_IGNORE_INDEX : (r * 17) % C;
        int n_probs = -1, n_stats = -1;
        float want = pc_cross_entropy_forward(probs, logits, labels, N, C, &n_probs);
        float got = pc_cross_entropy_forward_stats(row_max, row_inv, logits, labels, N, C, &n_stats);
        CHECK_INT_EQ(n_stats, n_probs);
        CHECK_NEAR(got, want, 1e-6 * fabs(want));
        pc_cross_entropy_backward(dlogits, probs, labels, N, C, 1.0f / (float)n_probs);
        memcpy(in_place, logits, sizeof(float) * N * C);
        pc_cross_entropy_backward_in_place(in_place, row_max, row_inv, labels, N, C, 1.0f / (float)n_stats);
        double worst = 0;
        for (long i = 0; i < (long)N * C; i++) {
            double e = fabs((double)in_place[i] - dlogits[i]);
            worst = e > worst || e != e ? e : worst;
        }
        CHECK_MSG(worst <= 1e-9, "in-place gradient differs from the probability form by %.3g", worst);
        for (int c = 0; c < C; c++) CHECK(in_place[2 * C + c] == 0.0f);   /* row 2 is ignored */
    }
    free(logits); free(probs); free(dlogits); free(in_place);
}

/* No rows: a zero loss, nothing counted, nothing written. */
TEST(nn_cross_entropy_stats_form_without_rows)
{
    float row_max[1] = {7}, row_inv[1] = {7}, logits[3] = {1, 2, 3};
    int32_t labels[1] = {0};
    int counted = -1;
    CHECK(pc_cross_entropy_forward_stats(row_max, row_inv, logits, labels, 0, 3, &counted) == 0.0f);
    CHECK_INT_EQ(counted, 0);
    pc_cross_entropy_backward_in_place(logits, row_max, row_inv, labels, 0, 3, 1.0f);
    CHECK(row_max[0] == 7 && row_inv[0] == 7 && logits[0] == 1 && logits[2] == 3);
}
