#include "testlib.h"
#include "test_nn_gradcheck.h"
#include "nn/attention.h"

#include <float.h>
#include <omp.h>

enum { AB = 2, AT = 7, AH = 4, AHD = 5, AD = AH * AHD, AN = AB * AT * AD, AP = AB * AH * AT * AT };

typedef struct {
    float q[AN], k[AN], v[AN], w[AN], drop[AP];  /* k, v use the first AB*AT*hkv*AHD floats */
    uint8_t mask[AB * AT];
    bool use_mask, use_drop, causal;
    int hkv;  /* key/value heads: AH (multi-head), 2 or 1 (grouped-query) */
    float scale;
} att_case;

static long att_kv_floats(const att_case *c) { return (long)AB * AT * c->hkv * AHD; }

static void att_setup(att_case *c, bool use_mask, bool use_drop, bool causal, int hkv)
{
    c->hkv = hkv;
    nn_fill(c->q, AN, "att_q", -1, 1);
    nn_fill(c->k, att_kv_floats(c), "att_k", -1, 1);
    nn_fill(c->v, att_kv_floats(c), "att_v", -1, 1);
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
    return malloc(sizeof(float) * (pc_attention_scratch_floats(AB, AT, AH, 1, AHD, true) + 1));
}

static void att_forward(att_case *c, float *out, float *probs, float *scratch)
{
    pc_attention_forward_plain(out, probs, c->q, c->k, c->v, c->use_mask ? c->mask : NULL,
                         c->use_drop ? c->drop : NULL, AB, AT, AH, c->hkv, AHD, c->scale, c->causal, scratch);
}

/* Independent reference: the textbook formula with explicit loops in double; masked scores are
 * -FLT_MAX as torch's masked_fill(finfo.min), so a fully masked row comes out uniform. Query head h
 * reads key/value head g = h / (AH / hkv) (transformers' repeat_kv). */
static void att_reference(const att_case *c, double *out, double *probs)
{
    const int DKV = c->hkv * AHD;
    for (int b = 0; b < AB; b++)
        for (int h = 0; h < AH; h++)
            for (int i = 0; i < AT; i++) {
                const int g = h / (AH / c->hkv);
                double s[AT], max = -INFINITY, sum = 0;
                for (int j = 0; j < AT; j++) {
                    bool masked = (c->use_mask && !c->mask[b * AT + j]) || (c->causal && j > i);
                    double dot = 0;
                    for (int d = 0; d < AHD; d++)
                        dot += (double)c->q[(b * AT + i) * AD + h * AHD + d] * c->k[(b * AT + j) * DKV + g * AHD + d];
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
                        acc += p[j] * drop * c->v[(b * AT + j) * DKV + g * AHD + d];
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
    for (int variant = 0; variant < 24; variant++) {
        static att_case c;
        att_setup(&c, variant & 1, variant & 2, variant & 4, AH >> (variant / 8));
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
    att_setup(&c, true, false, true, AH);
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
    pc_attention_backward_plain(dq, dk, dv, dout, probs, c.q, c.k, c.v, c.mask, NULL, AB, AT, AH, AH, AHD, c.scale,
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
    /* variants 0-7: multi-head; 8-15: 2 key/value heads for 4 query heads; 16-23: 1 (multi-query) */
    for (int variant = 0; variant < 24; variant++) {
        static att_case c;
        att_setup(&c, variant & 1, variant & 2, variant & 4, AH >> (variant / 8));
        static float out[AN], probs[AP], dq[AN], dk[AN], dv[AN];
        att_forward(&c, out, probs, scratch);
        pc_attention_backward_plain(dq, dk, dv, c.w, probs, c.q, c.k, c.v, c.use_mask ? c.mask : NULL,
                              c.use_drop ? c.drop : NULL, AB, AT, AH, c.hkv, AHD, c.scale, c.causal, scratch);
        att_ctx ctx = {&c, scratch};
        double eq = nn_gradcheck(c.q, AN, dq, att_loss, &ctx, 1e-3f);
        double ek = nn_gradcheck(c.k, att_kv_floats(&c), dk, att_loss, &ctx, 1e-3f);
        double ev = nn_gradcheck(c.v, att_kv_floats(&c), dv, att_loss, &ctx, 1e-3f);
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
    float *scratch = malloc(sizeof(float) * (pc_attention_scratch_floats(1, 1, 2, 2, 3, true) + 1));
    CHECK(scratch != NULL);
    if (!scratch) return;
    pc_attention_forward_plain(out, probs, q, k, v, NULL, NULL, 1, 1, 2, 2, 3, 0.5f, true, scratch);
    pc_attention_backward_plain(dq, dk, dv, dout, probs, q, k, v, NULL, NULL, 1, 1, 2, 2, 3, 0.5f, true, scratch);
    CHECK(probs[0] == 1.0f && probs[1] == 1.0f);
    for (int i = 0; i < 6; i++) {
        CHECK(out[i] == v[i]);
        CHECK(dv[i] == dout[i]);
        CHECK(dq[i] == 0.0f && dk[i] == 0.0f);
    }
    free(scratch);
}

/* Grouped-query case (4 query heads on 2 key/value heads), so the in-order sum of the dk, dv shares is covered. */
TEST(nn_attention_same_bits_for_any_thread_count)
{
    enum { B = 3, T = 19, H = 4, HKV = 2, HD = 8, N = B * T * H * HD, NKV = B * T * HKV * HD, P = B * H * T * T };
    const size_t scratch_floats = pc_attention_scratch_floats(B, T, H, HKV, HD, true);
    const size_t floats = 12 * (size_t)N + 3 * (size_t)P + scratch_floats;
    float *buf = malloc(sizeof(float) * floats);
    uint8_t mask[B * T];
    CHECK(buf != NULL);
    if (!buf) return;
    float *q = buf, *k = q + N, *v = k + N, *dout = v + N, *drop = dout + N, *scratch = drop + P;
    float *res[2][5];
    float *next = scratch + scratch_floats;
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
        pc_attention_forward_plain(res[r][0], res[r][1], q, k, v, mask, drop, B, T, H, HKV, HD, 0.35f, true, scratch);
        pc_attention_backward_plain(res[r][2], res[r][3], res[r][4], dout, res[r][1], q, k, v, mask, drop,
                              B, T, H, HKV, HD, 0.35f, true, scratch);
    }
    omp_set_num_threads(saved);
    CHECK(memcmp(res[0][0], res[1][0], sizeof(float) * N) == 0);
    CHECK(memcmp(res[0][1], res[1][1], sizeof(float) * P) == 0);
    CHECK(memcmp(res[0][2], res[1][2], sizeof(float) * N) == 0);
    for (int g = 3; g < 5; g++) CHECK_MSG(memcmp(res[0][g], res[1][g], sizeof(float) * NKV) == 0, "gradient %d", g);
    free(buf);
}

/* Grouped-query backward against the same computation done as multi-head attention on k, v with each
 * key/value head repeated (repeat_kv): dk, dv must equal the repeated heads' gradients summed per group. */
TEST(nn_attention_grouped_equals_repeated_heads)
{
    enum { B = 2, T = 6, H = 6, HKV = 2, REP = H / HKV, HD = 4, N = B * T * H * HD, NKV = B * T * HKV * HD,
           P = B * H * T * T };
    static float q[N], k[NKV], v[NKV], kr[N], vr[N], dout[N], out[N], outr[N], probs[P], probsr[P];
    static float dq[N], dk[NKV], dv[NKV], dqr[N], dkr[N], dvr[N], dk_sum[NKV], dv_sum[NKV];
    nn_fill(q, N, "gqa_q", -1, 1);
    nn_fill(k, NKV, "gqa_k", -1, 1);
    nn_fill(v, NKV, "gqa_v", -1, 1);
    nn_fill(dout, N, "gqa_dout", -1, 1);
    for (int r = 0; r < B * T; r++)
        for (int h = 0; h < H; h++)
            for (int d = 0; d < HD; d++) {
                kr[(r * H + h) * HD + d] = k[(r * HKV + h / REP) * HD + d];
                vr[(r * H + h) * HD + d] = v[(r * HKV + h / REP) * HD + d];
            }
    float *scratch = malloc(sizeof(float) * pc_attention_scratch_floats(B, T, H, HKV, HD, true));
    CHECK(scratch != NULL);
    if (!scratch) return;
    pc_attention_forward_plain(out, probs, q, k, v, NULL, NULL, B, T, H, HKV, HD, 0.5f, true, scratch);
    pc_attention_backward_plain(dq, dk, dv, dout, probs, q, k, v, NULL, NULL, B, T, H, HKV, HD, 0.5f, true, scratch);
    pc_attention_forward_plain(outr, probsr, q, kr, vr, NULL, NULL, B, T, H, H, HD, 0.5f, true, scratch);
    pc_attention_backward_plain(dqr, dkr, dvr, dout, probsr, q, kr, vr, NULL, NULL, B, T, H, H, HD, 0.5f, true, scratch);
    memset(dk_sum, 0, sizeof dk_sum);
    memset(dv_sum, 0, sizeof dv_sum);
    for (int r = 0; r < B * T; r++)
        for (int h = 0; h < H; h++)
            for (int d = 0; d < HD; d++) {
                dk_sum[(r * HKV + h / REP) * HD + d] += dkr[(r * H + h) * HD + d];
                dv_sum[(r * HKV + h / REP) * HD + d] += dvr[(r * H + h) * HD + d];
            }
    CHECK(memcmp(out, outr, sizeof out) == 0);
    CHECK(memcmp(dq, dqr, sizeof dq) == 0);
    CHECK_MSG(pc_test_max_rel_err(dk, dk_sum, NKV) < 1e-6, "dk rel err %g", pc_test_max_rel_err(dk, dk_sum, NKV));
    CHECK_MSG(pc_test_max_rel_err(dv, dv_sum, NKV) < 1e-6, "dv rel err %g", pc_test_max_rel_err(dv, dv_sum, NKV));
    free(scratch);
}

/* KV-cache decoding: for every prefix length n, the decode of token n-1 over the cached keys and values of
 * positions 0..n-1 equals row n-1 of a full causal forward over those n tokens (grouped-query heads). */
TEST(nn_attention_decode_equals_last_row_of_causal_forward)
{
    enum { T = 9, H = 4, HKV = 2, HD = 6, D = H * HD, DKV = HKV * HD };
    static float q[T * D], k[T * DKV], v[T * DKV], out[T * D], probs[H * T * T], step[D];
    nn_fill(q, T * D, "dec_q", -2, 2);
    nn_fill(k, T * DKV, "dec_k", -2, 2);
    nn_fill(v, T * DKV, "dec_v", -2, 2);
    float *scratch = malloc(sizeof(float) * (pc_attention_scratch_floats(1, T, H, HKV, HD, true) +
                                             pc_attention_decode_scratch_floats(T, H)));
    CHECK(scratch != NULL);
    if (!scratch) return;
    const float scale = 1.0f / sqrtf((float)HD);
    for (int n = 1; n <= T; n++) {
        pc_attention_forward_plain(out, probs, q, k, v, NULL, NULL, 1, n, H, HKV, HD, scale, true, scratch);
        pc_attention_decode(step, q + (n - 1) * D, k, v, n, H, HKV, HD, scale, scratch);
        double e = pc_test_max_rel_err(step, out + (n - 1) * D, D);
        CHECK_MSG(e < 1e-6, "n_ctx %d: decode vs forward rel err %g", n, e);
    }
    /* the first position attends only to itself: out = its own value head */
    pc_attention_decode(step, q, k, v, 1, H, HKV, HD, scale, scratch);
    for (int h = 0; h < H; h++)
        for (int d = 0; d < HD; d++) CHECK(step[h * HD + d] == v[(h / (H / HKV)) * HD + d]);
    free(scratch);
}

/* One query per sequence (a classification head's first position) against row 0 of the plain pass, whose
 * backward gets a dout that is zero outside row 0: the same output, dq of that row, and dk, dv everywhere. */
static void check_one_query(int hkv, bool use_drop, bool empty_batch)
{
    static att_case c;
    static float out[AN], probs[AP], dq[AN], dk[AN], dv[AN], dout[AN];
    static float q1[AB * AD], out1[AB * AD], probs1[AB * AH * AT], drop1[AB * AH * AT], dout1[AB * AD], dq1[AB * AD];
    static float dk1[AN], dv1[AN], scratch1[AB * AT];
    att_setup(&c, true, use_drop, false, hkv);
    if (empty_batch) for (int j = 0; j < AT; j++) c.mask[AT + j] = 0;
    nn_fill(dout1, AB * AD, "att_dout1", -1, 1);
    for (int i = 0; i < AN; i++) dout[i] = 0.0f;
    for (int b = 0; b < AB; b++) {
        memcpy(q1 + b * AD, c.q + b * AT * AD, sizeof(float) * AD);
        memcpy(dout + b * AT * AD, dout1 + b * AD, sizeof(float) * AD);
        for (int h = 0; h < AH; h++)
            memcpy(drop1 + (b * AH + h) * AT, c.drop + (size_t)(b * AH + h) * AT * AT, sizeof(float) * AT);
    }
    float *scratch = att_scratch();
    CHECK(scratch != NULL);
    if (!scratch) return;
    att_forward(&c, out, probs, scratch);
    pc_attention_backward_plain(dq, dk, dv, dout, probs, c.q, c.k, c.v, c.mask, use_drop ? c.drop : NULL, AB, AT, AH,
                                hkv, AHD, c.scale, false, scratch);
    pc_attention_one_query_forward(out1, probs1, q1, c.k, c.v, c.mask, use_drop ? drop1 : NULL, AB, AT, AH, hkv, AHD,
                                   c.scale);
    pc_attention_one_query_backward(dq1, dk1, dv1, dout1, probs1, q1, c.k, c.v, c.mask, use_drop ? drop1 : NULL, AB,
                                    AT, AH, hkv, AHD, c.scale, scratch1);
    double e_out = 0, e_dq = 0;
    for (int b = 0; b < AB; b++) {
        e_out = fmax(e_out, pc_test_max_rel_err(out1 + b * AD, out + b * AT * AD, AD));
        e_dq = fmax(e_dq, pc_test_max_rel_err(dq1 + b * AD, dq + b * AT * AD, AD));
    }
    long nkv = att_kv_floats(&c);
    double e_dk = pc_test_max_rel_err(dk1, dk, nkv), e_dv = pc_test_max_rel_err(dv1, dv, nkv);
    CHECK_MSG(e_out < 1e-5 && e_dq < 1e-4 && e_dk < 1e-4 && e_dv < 1e-5,
              "hkv %d drop %d empty %d: out %g dq %g dk %g dv %g", hkv, use_drop, empty_batch, e_out, e_dq, e_dk, e_dv);
    free(scratch);
}

TEST(nn_attention_one_query_equals_first_row)
{
    for (int hkv = AH; hkv >= 1; hkv /= 2)
        for (int variant = 0; variant < 4; variant++) check_one_query(hkv, variant & 1, variant >= 2);
}
