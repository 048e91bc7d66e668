#include "testlib.h"
#include "test_nn_gradcheck.h"
#include "nn/dropout.h"

/* mask[i] is the threshold of the uniform draw at counter + i: compare with the stream itself. */
TEST(nn_dropout_mask_follows_stream)
{
    enum { N = 1000 };
    float mask[N], u[N];
    pc_rng a, b;
    pc_rng_init(&a, 42, "dropout");
    pc_rng_init(&b, 42, "dropout");
    pc_dropout_mask(mask, N, 0.3f, &a);
    pc_rng_fill_uniform(&b, u, N, 0.0f, 1.0f);
    CHECK(a.counter == b.counter);
    for (int i = 0; i < N; i++) CHECK(mask[i] == (u[i] < 0.3f ? 0.0f : 1.0f / 0.7f));
}

TEST(nn_dropout_mask_rate_and_scale)
{
    enum { N = 1000000 };
    float *mask = malloc(sizeof(float) * N);
    CHECK(mask != NULL);
    if (!mask) return;
    pc_rng r;
    pc_rng_init(&r, 7, "dropout");
    pc_dropout_mask(mask, N, 0.1f, &r);
    long zeros = 0, others = 0;
    double sum = 0;
    for (long i = 0; i < N; i++) {
        zeros += mask[i] == 0.0f;
        others += mask[i] != 0.0f && mask[i] != 1.0f / 0.9f;
        sum += mask[i];
    }
    CHECK_INT_EQ(others, 0);
    CHECK_NEAR((double)zeros / N, 0.1, 1.5e-3);  /* sd 3e-4 */
    CHECK_NEAR(sum / N, 1.0, 2e-3);              /* inverted dropout keeps the mean */
    pc_dropout_mask(mask, 100, 0.0f, &r);
    for (int i = 0; i < 100; i++) CHECK(mask[i] == 1.0f);
    pc_dropout_mask(mask, 100, 1.0f, &r);
    for (int i = 0; i < 100; i++) CHECK(mask[i] == 0.0f);
    free(mask);
}

enum { DR_N = 33 };
typedef struct { float x[DR_N], mask[DR_N], w[DR_N]; } dr_case;

static double dr_loss(void *ctx)
{
    dr_case *c = ctx;
    float y[DR_N];
    pc_apply_mask(y, c->x, c->mask, DR_N);
    return nn_weighted_sum(y, c->w, DR_N);
}

/* The backward of dropout is the same mask applied to dy; checked by differences, and in place. */
TEST(nn_dropout_gradient_matches_finite_differences)
{
    dr_case c;
    pc_rng r;
    pc_rng_init(&r, 3, "dropout");
    nn_fill(c.x, DR_N, "dr_x", -1, 1);
    nn_fill(c.w, DR_N, "dr_w", -1, 1);
    pc_dropout_mask(c.mask, DR_N, 0.25f, &r);
    float dx[DR_N];
    pc_apply_mask(dx, c.w, c.mask, DR_N);
    double err = nn_gradcheck(c.x, DR_N, dx, dr_loss, &c, 1e-3f);
    CHECK_MSG(err < 1e-3, "dx rel err %g", err);
    float inplace[DR_N];
    memcpy(inplace, c.w, sizeof inplace);
    pc_apply_mask(inplace, inplace, c.mask, DR_N);
    CHECK(memcmp(inplace, dx, sizeof dx) == 0);
}
