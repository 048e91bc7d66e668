#include "testlib.h"
#include "test_nn_gradcheck.h"
#include "nn/rmsnorm.h"

#include <omp.h>

/* x = [1 2 3 4]: mean(x^2) = 30/4 = 7.5, rstd = 1/sqrt(7.5) = 0.365148372 (eps 0). */
TEST(nn_rmsnorm_known_vector)
{
    const float x[4] = {1, 2, 3, 4}, w[4] = {1, 2, 0.5f, -1};
    float y[4], rstd;
    pc_rmsnorm_forward(y, &rstd, x, w, 1, 4, 0.0f);
    CHECK_NEAR(rstd, 0.365148372, 1e-7);
    for (int j = 0; j < 4; j++) CHECK_NEAR(y[j], w[j] * x[j] * 0.365148372, 1e-6);
}

/* eps enters under the root: x = [3e-3, 4e-3], mean(x^2) = 1.25e-5, eps 1e-6 -> rstd = 1/sqrt(1.35e-5). */
TEST(nn_rmsnorm_eps_under_the_root)
{
    const float x[2] = {3e-3f, 4e-3f}, w[2] = {1, 1};
    float y[2], rstd;
    pc_rmsnorm_forward(y, &rstd, x, w, 1, 2, 1e-6f);
    CHECK_NEAR(rstd, 272.165527, 1e-6);
    CHECK_NEAR(y[0], 3e-3 * 272.165527, 1e-6);
    /* a zero row gives rstd = 1/sqrt(eps) and y = 0 */
    const float zero[2] = {0, 0};
    pc_rmsnorm_forward(y, &rstd, zero, w, 1, 2, 1e-6f);
    CHECK_NEAR(rstd, 1000.0, 1e-6);
    CHECK(y[0] == 0.0f && y[1] == 0.0f);
}

enum { RN_ROWS = 5, RN_DIM = 13 };
typedef struct { float x[RN_ROWS * RN_DIM], w_norm[RN_DIM], w[RN_ROWS * RN_DIM]; } rn_case;

static double rn_loss(void *ctx)
{
    rn_case *c = ctx;
    float y[RN_ROWS * RN_DIM], rstd[RN_ROWS];
    pc_rmsnorm_forward(y, rstd, c->x, c->w_norm, RN_ROWS, RN_DIM, 1e-5f);
    return nn_weighted_sum(y, c->w, RN_ROWS * RN_DIM);
}

static void rn_setup(rn_case *c)
{
    nn_fill(c->x, RN_ROWS * RN_DIM, "rn_x", -2, 2);
    nn_fill(c->w_norm, RN_DIM, "rn_weight", 0.5f, 1.5f);
    nn_fill(c->w, RN_ROWS * RN_DIM, "rn_w", -1, 1);
}

TEST(nn_rmsnorm_gradients_match_finite_differences)
{
    rn_case c;
    rn_setup(&c);
    float y[RN_ROWS * RN_DIM], rstd[RN_ROWS], dx[RN_ROWS * RN_DIM], dw[RN_DIM];
    pc_rmsnorm_forward(y, rstd, c.x, c.w_norm, RN_ROWS, RN_DIM, 1e-5f);
    /* dw accumulates: start from 1 and subtract it afterwards */
    for (int j = 0; j < RN_DIM; j++) dw[j] = 1.0f;
    pc_rmsnorm_backward(dx, dw, c.w, c.x, rstd, c.w_norm, RN_ROWS, RN_DIM);
    for (int j = 0; j < RN_DIM; j++) dw[j] -= 1.0f;
    double ex = nn_gradcheck(c.x, RN_ROWS * RN_DIM, dx, rn_loss, &c, 1e-3f);
    double ew = nn_gradcheck(c.w_norm, RN_DIM, dw, rn_loss, &c, 1e-3f);
    /* measured 1.4e-4 and 1.2e-5; a 1 % error in the rstd^3 term of dx gives 3e-3 */
    CHECK_MSG(ex < 1e-3, "dx rel err %g", ex);
    CHECK_MSG(ew < 1e-3, "dw rel err %g", ew);
}

/* dx may alias dy; dw NULL (frozen weight) gives the same dx. */
TEST(nn_rmsnorm_backward_in_place_and_frozen_weight)
{
    rn_case c;
    rn_setup(&c);
    float y[RN_ROWS * RN_DIM], rstd[RN_ROWS], dx[RN_ROWS * RN_DIM], dw[RN_DIM] = {0}, inplace[RN_ROWS * RN_DIM];
    pc_rmsnorm_forward(y, rstd, c.x, c.w_norm, RN_ROWS, RN_DIM, 1e-5f);
    pc_rmsnorm_backward(dx, dw, c.w, c.x, rstd, c.w_norm, RN_ROWS, RN_DIM);
    memcpy(inplace, c.w, sizeof inplace);
    pc_rmsnorm_backward(inplace, NULL, inplace, c.x, rstd, c.w_norm, RN_ROWS, RN_DIM);
    CHECK(memcmp(inplace, dx, sizeof dx) == 0);
}

TEST(nn_rmsnorm_same_bits_for_any_thread_count)
{
    enum { ROWS = 67, DIM = 200, N = ROWS * DIM };
    float *buf = malloc(sizeof(float) * (size_t)(3 * N + DIM + 2 * (2 * N + ROWS + DIM)));
    CHECK(buf != NULL);
    if (!buf) return;
    float *x = buf, *w = x + N, *dy = w + DIM, *res[2];
    res[0] = dy + N;
    res[1] = res[0] + 2 * N + ROWS + DIM;
    nn_fill(x, N, "rn_tx", -3, 3);
    nn_fill(w, DIM, "rn_tw", 0, 2);
    nn_fill(dy, N, "rn_tdy", -1, 1);
    const int saved = omp_get_max_threads();
    for (int r = 0; r < 2; r++) {
        float *y = res[r], *dx = y + N, *rstd = dx + N, *dw = rstd + ROWS;
        omp_set_num_threads(r == 0 ? 1 : (saved > 1 ? saved : 3));
        memset(dw, 0, sizeof(float) * DIM);
        pc_rmsnorm_forward(y, rstd, x, w, ROWS, DIM, 1e-6f);
        pc_rmsnorm_backward(dx, dw, dy, x, rstd, w, ROWS, DIM);
    }
    omp_set_num_threads(saved);
    CHECK(memcmp(res[0], res[1], sizeof(float) * (size_t)(2 * N + ROWS + DIM)) == 0);
    free(buf);
}
