#include "testlib.h"
#include "test_nn_gradcheck.h"
#include "nn/layernorm.h"

#include <omp.h>

/* x = [1 2 3 4]: mean 2.5, biased var 1.25, rstd = 1/sqrt(1.25) = 0.894427191 */
TEST(nn_layernorm_known_vector)
{
    const float x[4] = {1, 2, 3, 4}, gamma[4] = {1, 2, 0.5f, -1}, beta[4] = {0, 1, 0, 0.5f};
    float y[4], mean, rstd;
    pc_layernorm_forward(y, &mean, &rstd, x, gamma, beta, 1, 4, 0.0f);
    CHECK_NEAR(mean, 2.5, 1e-7);
    CHECK_NEAR(rstd, 0.894427191, 1e-6);
    const double xhat[4] = {-1.341640786, -0.447213595, 0.447213595, 1.341640786};
    for (int j = 0; j < 4; j++) CHECK_NEAR(y[j], xhat[j] * gamma[j] + beta[j], 1e-6);
}

/* A constant row has zero variance: rstd = 1/sqrt(eps) and y = beta. */
TEST(nn_layernorm_constant_row_uses_eps)
{
    const float x[3] = {5, 5, 5}, gamma[3] = {1, 1, 1}, beta[3] = {0.25f, -1, 2};
    float y[3], mean, rstd;
    pc_layernorm_forward(y, &mean, &rstd, x, gamma, beta, 1, 3, 1e-12f);
    CHECK_NEAR(rstd, 1e6, 1e-6);
    for (int j = 0; j < 3; j++) CHECK_NEAR(y[j], beta[j], 1e-7);
}

/* Mean 100, spread 0.1: a one-pass E[x^2] - E[x]^2 in float would get the variance ~30 % wrong.
 * Reference: the textbook formula evaluated in double in this test. */
TEST(nn_layernorm_large_offset_accuracy)
{
    enum { DIM = 37 };
    float x[DIM], gamma[DIM], beta[DIM], y[DIM], mean, rstd;
    nn_fill(x, DIM, "ln_offset", -0.1f, 0.1f);
    for (int j = 0; j < DIM; j++) { x[j] += 100.0f; gamma[j] = 1.0f; beta[j] = 0.0f; }
    pc_layernorm_forward(y, &mean, &rstd, x, gamma, beta, 1, DIM, 1e-12f);
    double m = 0, v = 0;
    for (int j = 0; j < DIM; j++) m += x[j];
    m /= DIM;
    for (int j = 0; j < DIM; j++) v += (x[j] - m) * (x[j] - m);
    v /= DIM;
    float ref[DIM];
    for (int j = 0; j < DIM; j++) ref[j] = (float)((x[j] - m) / sqrt(v + 1e-12));
    CHECK_MSG(pc_test_max_rel_err(y, ref, DIM) < 1e-3, "rel err %g", pc_test_max_rel_err(y, ref, DIM));
}

enum { LN_ROWS = 5, LN_DIM = 13 };
typedef struct {
    float x[LN_ROWS * LN_DIM], gamma[LN_DIM], beta[LN_DIM], w[LN_ROWS * LN_DIM];
} ln_case;

static double ln_loss(void *ctx)
{
    ln_case *c = ctx;
    float y[LN_ROWS * LN_DIM], mean[LN_ROWS], rstd[LN_ROWS];
    pc_layernorm_forward(y, mean, rstd, c->x, c->gamma, c->beta, LN_ROWS, LN_DIM, 1e-5f);
    return nn_weighted_sum(y, c->w, LN_ROWS * LN_DIM);
}

TEST(nn_layernorm_gradients_match_finite_differences)
{
    ln_case c;
    nn_fill(c.x, LN_ROWS * LN_DIM, "ln_x", -2, 2);
    nn_fill(c.gamma, LN_DIM, "ln_gamma", 0.5f, 1.5f);
    nn_fill(c.beta, LN_DIM, "ln_beta", -1, 1);
    nn_fill(c.w, LN_ROWS * LN_DIM, "ln_w", -1, 1);
    float y[LN_ROWS * LN_DIM], mean[LN_ROWS], rstd[LN_ROWS], dx[LN_ROWS * LN_DIM];
    float dgamma[LN_DIM], dbeta[LN_DIM];
    pc_layernorm_forward(y, mean, rstd, c.x, c.gamma, c.beta, LN_ROWS, LN_DIM, 1e-5f);
    /* dgamma/dbeta accumulate: start from 1 and subtract it afterwards */
    for (int j = 0; j < LN_DIM; j++) dgamma[j] = dbeta[j] = 1.0f;
    pc_layernorm_backward(dx, dgamma, dbeta, c.w, c.x, mean, rstd, c.gamma, LN_ROWS, LN_DIM);
    for (int j = 0; j < LN_DIM; j++) { dgamma[j] -= 1.0f; dbeta[j] -= 1.0f; }
    double ex = nn_gradcheck(c.x, LN_ROWS * LN_DIM, dx, ln_loss, &c, 1e-3f);
    double eg = nn_gradcheck(c.gamma, LN_DIM, dgamma, ln_loss, &c, 1e-3f);
    double eb = nn_gradcheck(c.beta, LN_DIM, dbeta, ln_loss, &c, 1e-3f);
    CHECK_MSG(ex < 5e-3, "dx rel err %g", ex);
    CHECK_MSG(eg < 5e-3, "dgamma rel err %g", eg);
    CHECK_MSG(eb < 5e-3, "dbeta rel err %g", eb);
}

/* Frozen gamma/beta (NULL) leave dx unchanged, and dx may overwrite dy in place. */
TEST(nn_layernorm_backward_null_params_and_alias)
{
    ln_case c;
    nn_fill(c.x, LN_ROWS * LN_DIM, "ln_x", -2, 2);
    nn_fill(c.gamma, LN_DIM, "ln_gamma", 0.5f, 1.5f);
    nn_fill(c.beta, LN_DIM, "ln_beta", -1, 1);
    nn_fill(c.w, LN_ROWS * LN_DIM, "ln_w", -1, 1);
    float y[LN_ROWS * LN_DIM], mean[LN_ROWS], rstd[LN_ROWS], dx[LN_ROWS * LN_DIM], dgamma[LN_DIM], dbeta[LN_DIM];
    float dgamma2[LN_DIM] = {0}, dbeta2[LN_DIM] = {0};
    pc_layernorm_forward(y, mean, rstd, c.x, c.gamma, c.beta, LN_ROWS, LN_DIM, 1e-5f);
    for (int j = 0; j < LN_DIM; j++) dgamma[j] = dbeta[j] = 0.0f;
    pc_layernorm_backward(dx, dgamma, dbeta, c.w, c.x, mean, rstd, c.gamma, LN_ROWS, LN_DIM);
    float dx_null[LN_ROWS * LN_DIM];
    pc_layernorm_backward(dx_null, NULL, NULL, c.w, c.x, mean, rstd, c.gamma, LN_ROWS, LN_DIM);
    CHECK(memcmp(dx, dx_null, sizeof dx) == 0);
    float inplace[LN_ROWS * LN_DIM];
    memcpy(inplace, c.w, sizeof inplace);
    pc_layernorm_backward(inplace, dgamma2, dbeta2, inplace, c.x, mean, rstd, c.gamma, LN_ROWS, LN_DIM);
    CHECK(memcmp(dx, inplace, sizeof dx) == 0);
    CHECK(memcmp(dgamma, dgamma2, sizeof dgamma) == 0);
    CHECK(memcmp(dbeta, dbeta2, sizeof dbeta) == 0);
}

TEST(nn_layernorm_same_bits_for_any_thread_count)
{
    enum { R = 301, D = 200 };
    float *buf = malloc(sizeof(float) * (6 * (size_t)R * D + 6 * D + 4 * R));
    CHECK(buf != NULL);
    if (!buf) return;
    float *x = buf, *dy = x + R * D, *y1 = dy + R * D, *y2 = y1 + R * D, *dx1 = y2 + R * D, *dx2 = dx1 + R * D;
    float *gamma = dx2 + R * D, *beta = gamma + D, *dg1 = beta + D, *dg2 = dg1 + D, *db1 = dg2 + D, *db2 = db1 + D;
    float *m1 = db2 + D, *m2 = m1 + R, *r1 = m2 + R, *r2 = r1 + R;
    nn_fill(x, R * D, "ln_tx", -3, 3);
    nn_fill(dy, R * D, "ln_tdy", -1, 1);
    nn_fill(gamma, D, "ln_tg", 0, 2);
    nn_fill(beta, D, "ln_tb", -1, 1);
    memset(dg1, 0, sizeof(float) * 4 * D);
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    pc_layernorm_forward(y1, m1, r1, x, gamma, beta, R, D, 1e-12f);
    pc_layernorm_backward(dx1, dg1, db1, dy, x, m1, r1, gamma, R, D);
    omp_set_num_threads(saved > 1 ? saved : 3);
    pc_layernorm_forward(y2, m2, r2, x, gamma, beta, R, D, 1e-12f);
    pc_layernorm_backward(dx2, dg2, db2, dy, x, m2, r2, gamma, R, D);
    omp_set_num_threads(saved);
    CHECK(memcmp(y1, y2, sizeof(float) * R * D) == 0);
    CHECK(memcmp(dx1, dx2, sizeof(float) * R * D) == 0);
    CHECK(memcmp(dg1, dg2, sizeof(float) * D) == 0);
    CHECK(memcmp(db1, db2, sizeof(float) * D) == 0);
    free(buf);
}
