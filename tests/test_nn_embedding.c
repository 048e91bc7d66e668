#include "testlib.h"
#include "test_nn_gradcheck.h"
#include "nn/embedding.h"

#include <omp.h>

TEST(nn_embedding_forward_copies_rows)
{
    const float table[4 * 3] = {0, 1, 2, 10, 11, 12, 20, 21, 22, 30, 31, 32};
    const int32_t ids[5] = {3, 0, 3, 2, 1};
    float y[5 * 3];
    pc_embedding_forward(y, ids, table, 5, 3);
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 3; j++) CHECK(y[i * 3 + j] == 10.0f * ids[i] + j);
}

/* Repeated ids add up, untouched rows keep their previous values. */
TEST(nn_embedding_backward_accumulates_repeats)
{
    float dtable[4 * 2] = {1, 1, 1, 1, 1, 1, 1, 1};
    const float dy[3 * 2] = {0.5f, -1, 2, 3, 0.25f, 4};
    const int32_t ids[3] = {2, 0, 2};
    pc_embedding_backward_accumulate(dtable, dy, ids, 3, 2);
    const float expect[4 * 2] = {3, 4, 1, 1, 1.75f, 4, 1, 1};
    for (int i = 0; i < 8; i++) CHECK_NEAR(dtable[i], expect[i], 1e-7);
}

enum { EMB_V = 6, EMB_N = 9, EMB_D = 70 };
typedef struct { float table[EMB_V * EMB_D], w[EMB_N * EMB_D]; int32_t ids[EMB_N]; } emb_case;

static double emb_loss(void *ctx)
{
    emb_case *c = ctx;
    float y[EMB_N * EMB_D];
    pc_embedding_forward(y, c->ids, c->table, EMB_N, EMB_D);
    return nn_weighted_sum(y, c->w, EMB_N * EMB_D);
}

TEST(nn_embedding_gradient_matches_finite_differences)
{
    static emb_case c;
    nn_fill(c.table, EMB_V * EMB_D, "emb_t", -1, 1);
    nn_fill(c.w, EMB_N * EMB_D, "emb_w", -1, 1);
    const int32_t ids[EMB_N] = {5, 1, 1, 0, 5, 3, 1, 2, 0};  /* id 4 unused: zero gradient */
    memcpy(c.ids, ids, sizeof ids);
    static float dtable[EMB_V * EMB_D];
    memset(dtable, 0, sizeof dtable);
    pc_embedding_backward_accumulate(dtable, c.w, c.ids, EMB_N, EMB_D);
    double err = nn_gradcheck(c.table, EMB_V * EMB_D, dtable, emb_loss, &c, 1e-3f);
    CHECK_MSG(err < 1e-3, "dtable rel err %g", err);
    for (int j = 0; j < EMB_D; j++) CHECK(dtable[4 * EMB_D + j] == 0.0f);
}

TEST(nn_embedding_backward_same_bits_for_any_thread_count)
{
    enum { V = 50, N = 1000, D = 300 };
    float *dy = malloc(sizeof(float) * N * D), *t1 = calloc((size_t)V * D, sizeof(float)),
          *t2 = calloc((size_t)V * D, sizeof(float));
    int32_t *ids = malloc(sizeof(int32_t) * N);
    CHECK(dy && t1 && t2 && ids);
    if (dy && t1 && t2 && ids) {
        nn_fill(dy, (long)N * D, "emb_tdy", -1, 1);
        for (int i = 0; i < N; i++) ids[i] = (i * 7) % V;
        const int saved = omp_get_max_threads();
        omp_set_num_threads(1);
        pc_embedding_backward_accumulate(t1, dy, ids, N, D);
        omp_set_num_threads(saved > 1 ? saved : 3);
        pc_embedding_backward_accumulate(t2, dy, ids, N, D);
        omp_set_num_threads(saved);
        CHECK(memcmp(t1, t2, sizeof(float) * V * D) == 0);
    }
    free(dy); free(t1); free(t2); free(ids);
}

/* angle(pos, j) = pos / 10000^(2 (j/2) / dim): sin in even columns, cos in odd ones. */
TEST(nn_sinusoidal_positions_known_values)
{
    float t4[3 * 4], t6[6 * 6];
    pc_sinusoidal_positions(t4, 3, 4);
    for (int j = 0; j < 4; j++) CHECK(t4[j] == (j % 2 ? 1.0f : 0.0f));  /* pos 0 */
    CHECK_NEAR(t4[4 + 0], 0.8414709848078965, 1e-7);   /* sin(1) */
    CHECK_NEAR(t4[4 + 1], 0.5403023058681398, 1e-7);   /* cos(1) */
    CHECK_NEAR(t4[8 + 2], 0.01999866669333308, 1e-7);  /* pos 2, j 2: sin(2 / 10000^(2/4)) */
    CHECK_NEAR(t4[8 + 3], 0.9998000066665778, 1e-7);   /* cos(0.02) */
    pc_sinusoidal_positions(t6, 6, 6);
    CHECK_NEAR(t6[5 * 6 + 2], 0.23000171166476746, 1e-7);  /* sin(5 / 10000^(2/6)) */
    CHECK_NEAR(t6[5 * 6 + 5], 0.9999419807006283, 1e-7);   /* cos(5 / 10000^(4/6)) */
}
