#include "testlib.h"
#include "test_nn_gradcheck.h"
#include "nn/attention.h"

#include <float.h>
#include <omp.h>

enum { AB = 2, AT = 7, AH = 3, AHD = 5, AD = AH * AHD, AN = AB * AT * AD, AP = AB * AH * AT * AT };

typedef struct {
    float q[AN], k[AN], v[AN], w[AN], drop[AP];
    uint8_t mask[AB * AT];
    bool use_mask, use_drop, causal;
    float scale;
} att_case;

static void att_setup(att_case *c, bool use_mask, bool use_drop, bool causal)
{
    nn_fill(c->q, AN, "att_q", -1, 1);
    nn_fill(c->k, AN, "att_k", -1, 1);
    nn_fill(c->v, AN, "att_v", -1, 1);
    nn_fill(c->w, AN, "att_w", -1, 1);
    /* attention dropout p = 0.2: keep values 1.25 */
    nn_fill(c->drop, AP, "att_drop", 0, 1);
    for (int i = 0; i < AP; i++) c->drop[i] = c->drop[i] < 0.2f ? 0.0f : 1.25f;
    /* batch 0: last two keys are padding; batch 1: keys 0 and 3 are padding */
    for (int i = 0; i < AB * AT; i++) c->mask[i] = 1;
    c->mask[AT - 1] = c->mask[AT - 2] = 0;
    c->mask[AT + 0] = c->mask[AT + 3] = 0;
    c->use_mask = use_mask;
    c->use_drop = use_drop;
    c->causal = causal;
    c->scale = 1.0f / sqrtf((float)AHD);
}

static float *att_scratch(void)
{
    return malloc(sizeof(float) * (pc_attention_scratch_floats(AB, AT, AH, AHD) + 1));
}

static void att_forward(att_case *c, float *out, float *probs, float *scratch)
{
    pc_attention_forward(out, probs, c->q, c->k, c->v, c->use_mask ? c->mask : NULL,
                         c->use_drop ? c->drop : NULL, AB, AT, AH, AHD, c->scale, c->causal, scratch);
}

/* Independent reference: the textbook formula with explicit loops in double; masked scores are
 * -FLT_MAX as torch's masked_fill(finfo.min), so a fully masked row comes out uniform. */
static void att_reference(const att_case *c, double *out, double *probs)
{
    for (int b = 0; b < AB; b++)
        for (int h = 0; h < AH; h++)
            for (int i = 0; i < AT; i++) {
                double s[AT], max = -INFINITY, sum = 0;
                for (int j = 0; j < AT; j++) {
                    bool masked = (c->use_mask && !c->mask[b * AT + j]) || (c->causal && j > i);
                    double dot = 0;
                    for (int d = 0; d < AHD; d++)
                        dot += (double)c->q[(b * AT + i) * AD + h * AHD + d] * c->k[(b * AT + j) * AD + h * AHD + d];
                    s[j] = masked ? -FLT_MAX : dot * c->scale;
                    max = fmax(max, s[j]);
                }
                for (int j = 0; j < AT; j++) sum += s[j] = exp(s[j] - max);
                double *p = probs + ((size_t)(b * AH + h) * AT + i) * AT;
                for (int j = 0; j < AT; j++) p[j] = s[j] / sum;
                for (int d = 0; d < AHD; d++) {
                    double acc = 0;
                    for (int j = 0; j < AT; j++) {
                        double drop = c->use_drop ? c->drop[((size_t)(b * AH + h) * AT + i) * AT + j] : 1.0;
                        acc += p[j] * drop * c->v[(b * AT + j) * AD + h * AHD + d];
                    }
                    out[(b * AT + i) * AD + h * AHD + d] = acc;
                }
            }
}

TEST(nn_attention_forward_matches_reference)
{
    float *scratch = att_scratch();
    CHECK(scratch != NULL);
    if (!scratch) return;
    for (int variant = 0; variant < 8; variant++) {
        static att_case c;
        att_setup(&c, variant & 1, variant & 2, variant & 4);
        static float out[AN], probs[AP], out_ref[AN], probs_ref[AP];
        static double dout_ref[AN], dprobs_ref[AP];
        att_forward(&c, out, probs, scratch);
        att_reference(&c, dout_ref, dprobs_ref);
        for (int i = 0; i < AN; i++) out_ref[i] = (float)dout_ref[i];
        for (int i = 0; i < AP; i++) probs_ref[i] = (float)dprobs_ref[i];
        double eo = pc_test_max_rel_err(out, out_ref, AN), ep = pc_test_max_rel_err(probs, probs_ref, AP);
        CHECK_MSG(eo < 1e-5, "variant %d out rel err %g", variant, eo);
        CHECK_MSG(ep < 1e-5, "variant %d probs rel err %g", variant, ep);
        /* masked keys get exactly zero probability (unless the whole row is masked); rows sum to 1.
         * Variants with mask and causal include such a row: batch 1, query 0. */
        for (int b = 0; b < AB; b++)
            for (int h = 0; h < AH; h++)
                for (int i = 0; i < AT; i++) {
                    const float *p = probs + ((size_t)(b * AH + h) * AT + i) * AT;
                    bool masked[AT], any_key = false;
                    for (int j = 0; j < AT; j++) {
                        masked[j] = (c.use_mask && !c.mask[b * AT + j]) || (c.causal && j > i);
                        any_key |= !masked[j];
                    }
                    double sum = 0;
                    for (int j = 0; j < AT; j++) {
                        sum += p[j];
                        if (any_key && masked[j]) CHECK_MSG(p[j] == 0.0f, "variant %d: masked prob %g", variant, p[j]);
                    }
                    CHECK_NEAR(sum, 1.0, 1e-6);
                }
    }
    free(scratch);
}

/* A row whose keys are all masked gets uniform probabilities (finfo.min scores, as torch), passes
 * gradient to v through them, and none to q or k (its scores are constants). */
TEST(nn_attention_fully_masked_row_is_uniform)
{
    static att_case c;
    att_setup(&c, true, false, true);
    for (int j = 0; j < AT; j++) c.mask[j] = j >= 2;  /* batch 0, causal: rows 0 and 1 see no key */
    float *scratch = att_scratch();
    CHECK(scratch != NULL);
    if (!scratch) return;
    static float out[AN], probs[AP];
    att_forward(&c, out, probs, scratch);
    for (int h = 0; h < AH; h++)
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < AT; j++) CHECK_NEAR(probs[((size_t)h * AT + i) * AT + j], 1.0 / AT, 1e-7);
    static float dq[AN], dk[AN], dv[AN], dout[AN];
    memset(dout, 0, sizeof dout);
    for (int i = 0; i < AD; i++) dout[i] = 1.0f;  /* gradient only into query row 0 of batch 0 */
    pc_attention_backward(dq, dk, dv, dout, probs, c.q, c.k, c.v, c.mask, NULL, AB, AT, AH, AHD, c.scale,
                          true, scratch);
    for (int i = 0; i < AN; i++) CHECK(dq[i] == 0.0f && dk[i] == 0.0f);
    for (int j = 0; j < AT; j++) CHECK_NEAR(dv[j * AD], 1.0 / AT, 1e-7);  /* dv = P^T dout */
    free(scratch);
}

typedef struct { att_case *c; float *scratch; } att_ctx;

static double att_loss(void *ctx)
{
    att_ctx *a = ctx;
    static float out[AN], probs[AP];
    att_forward(a->c, out, probs, a->scratch);
    return nn_weighted_sum(out, a->c->w, AN);
}

TEST(nn_attention_gradients_match_finite_differences)
{
    float *scratch = att_scratch();
    CHECK(scratch != NULL);
    if (!scratch) return;
    for (int variant = 0; variant < 8; variant++) {
        static att_case c;
        att_setup(&c, variant & 1, variant & 2, variant & 4);
        static float out[AN], probs[AP], dq[AN], dk[AN], dv[AN];
        att_forward(&c, out, probs, scratch);
        pc_attention_backward(dq, dk, dv, c.w, probs, c.q, c.k, c.v, c.use_mask ? c.mask : NULL,
                              c.use_drop ? c.drop : NULL, AB, AT, AH, AHD, c.scale, c.causal, scratch);
        att_ctx ctx = {&c, scratch};
        double eq = nn_gradcheck(c.q, AN, dq, att_loss, &ctx, 1e-3f);
        double ek = nn_gradcheck(c.k, AN, dk, att_loss, &ctx, 1e-3f);
        double ev = nn_gradcheck(c.v, AN, dv, att_loss, &ctx, 1e-3f);
        CHECK_MSG(eq < 5e-3, "variant %d dq rel err %g", variant, eq);
        CHECK_MSG(ek < 5e-3, "variant %d dk rel err %g", variant, ek);
        CHECK_MSG(ev < 5e-3, "variant %d dv rel err %g", variant, ev);
    }
    free(scratch);
}

/* T = 1 (a single token attends to itself): out = v, dq = dk = 0, dv = dout. */
TEST(nn_attention_single_token)
{
    float q[6], k[6], v[6], out[6], probs[2], dq[6], dk[6], dv[6], dout[6];
    nn_fill(q, 6, "att1_q", -1, 1);
    nn_fill(k, 6, "att1_k", -1, 1);
    nn_fill(v, 6, "att1_v", -1, 1);
    nn_fill(dout, 6, "att1_w", -1, 1);
    float *scratch = malloc(sizeof(float) * (pc_attention_scratch_floats(1, 1, 2, 3) + 1));
    CHECK(scratch != NULL);
    if (!scratch) return;
    pc_attention_forward(out, probs, q, k, v, NULL, NULL, 1, 1, 2, 3, 0.5f, true, scratch);
    pc_attention_backward(dq, dk, dv, dout, probs, q, k, v, NULL, NULL, 1, 1, 2, 3, 0.5f, true, scratch);
    CHECK(probs[0] == 1.0f && probs[1] == 1.0f);
    for (int i = 0; i < 6; i++) {
        CHECK(out[i] == v[i]);
        CHECK(dv[i] == dout[i]);
        CHECK(dq[i] == 0.0f && dk[i] == 0.0f);
    }
    free(scratch);
}

TEST(nn_attention_same_bits_for_any_thread_count)
{
    enum { B = 3, T = 19, H = 4, HD = 8, N = B * T * H * HD, P = B * H * T * T };
    const size_t floats = 12 * (size_t)N + 3 * (size_t)P + pc_attention_scratch_floats(B, T, H, HD);
    float *buf = malloc(sizeof(float) * floats);
    uint8_t mask[B * T];
    CHECK(buf != NULL);
    if (!buf) return;
    float *q = buf, *k = q + N, *v = k + N, *dout = v + N, *drop = dout + N, *scratch = drop + P;
    float *res[2][5];
    float *next = scratch + pc_attention_scratch_floats(B, T, H, HD);
    for (int r = 0; r < 2; r++) {
        res[r][0] = next; next += N;        /* out */
        res[r][1] = next; next += P;        /* probs */
        for (int g = 2; g < 5; g++) { res[r][g] = next; next += N; }  /* dq dk dv */
    }
    nn_fill(q, 4 * N, "att_t", -2, 2);
    nn_fill(drop, P, "att_tdrop", 0, 1);
    for (int i = 0; i < P; i++) drop[i] = drop[i] < 0.1f ? 0.0f : 1.0f / 0.9f;
    for (int i = 0; i < B * T; i++) mask[i] = (i % 5) != 4;
    const int saved = omp_get_max_threads();
    for (int r = 0; r < 2; r++) {
        omp_set_num_threads(r == 0 ? 1 : (saved > 1 ? saved : 3));
        pc_attention_forward(res[r][0], res[r][1], q, k, v, mask, drop, B, T, H, HD, 0.35f, false, scratch);
        pc_attention_backward(res[r][2], res[r][3], res[r][4], dout, res[r][1], q, k, v, mask, drop,
                              B, T, H, HD, 0.35f, false, scratch);
    }
    omp_set_num_threads(saved);
    CHECK(memcmp(res[0][0], res[1][0], sizeof(float) * N) == 0);
    CHECK(memcmp(res[0][1], res[1][1], sizeof(float) * P) == 0);
    for (int g = 2; g < 5; g++) CHECK_MSG(memcmp(res[0][g], res[1][g], sizeof(float) * N) == 0, "gradient %d", g);
    free(buf);
}
