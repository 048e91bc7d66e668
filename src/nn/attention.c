#include "nn/attention.h"
#include "nn/attention_internal.h"

#include "base/profile.h"
#include "base/threads.h"
#include "kernels/gemm.h"
#include "nn/exp.h"
#include "nn/row_sums.h"

#include <float.h>
#include <math.h>
#include <omp.h>
#include <string.h>

/* Tiled from this length on: with its tiles on kernels/tile_gemm, forward + backward (hd 64, 2 cores) runs
 * causal attention faster than the plain pass from T 80 on (B 2 x 12 heads: T 96 1.1x, 128 1.5x, 255 1.6x;
 * B 1 x 32 heads, 4 KV heads: T 96 1.2x, 255 1.6x) and non-causal on par from T 96 (plain 1.1x faster at 64-80,
 * tiled at T 96 and up 0.99-1.09x). And the plain pass keeps T x T probabilities per head for backward. */
enum { TILED_MIN_T = 96 };

bool pc_attention_tiled(int T, bool dropout)
{
    return !dropout && T >= TILED_MIN_T;
}

bool pc_attention_parallel(int B, int T, int H, int hd)
{
    return (double)B * H * T * T * hd >= PC_PARALLEL_MIN;
}

int pc_attention_slots(int B, int H)
{
    int procs = omp_get_num_procs();
    long pairs = (long)B * H;
    return pairs < procs ? (int)pairs : procs;
}

size_t pc_attention_share_floats(int B, int T, int H, int Hkv, int hd)
{
    return Hkv < H ? 2 * (size_t)B * T * H * hd : 0;
}

/* The longest T' <= T that runs plain (its T' x T' tiles are the largest plain buffers). */
static size_t longest_plain(int T, bool dropout)
{
    return (size_t)(dropout || T < TILED_MIN_T ? T : TILED_MIN_T - 1);
}

size_t pc_attention_saved_floats(int B, int T, int H, bool dropout)
{
    size_t plain = longest_plain(T, dropout), per_head = plain * plain > (size_t)T ? plain * plain : (size_t)T;
    return (size_t)B * H * per_head;
}

/* The plain pass gives each slot 2*T*T floats (dP and the dropped probabilities); the GQA shares follow the slots. */
size_t pc_attention_scratch_floats(int B, int T, int H, int Hkv, int hd, bool dropout)
{
    size_t plain = longest_plain(T, dropout), slot = 2 * plain * plain, tiled = pc_attention_tiled_slot_floats(T, hd);
    if (tiled > slot) slot = tiled;
    return (size_t)pc_attention_slots(B, H) * slot + pc_attention_share_floats(B, T, H, Hkv, hd);
}

/* Softmax of row[n] in place (max-subtracted, sum in double). */
static void softmax_row(float *row, int n)
{
    float max = -FLT_MAX;
    for (int j = 0; j < n; j++)
        if (row[j] > max) max = row[j];
    for (int j = 0; j < n; j++) row[j] = pc_exp_nonpositive(row[j] - max);   /* masked keys (-FLT_MAX) give 0 */
    const float inv = (float)(1.0 / pc_row_sum(row, n));
    for (int j = 0; j < n; j++) row[j] *= inv;
}

/* Row-wise softmax of scores[T, T] in place, with padding keys and (if causal) future keys
 * set to -FLT_MAX first. key_mask is this batch row's [T] mask or NULL. */
static void masked_softmax(float *scores, const uint8_t *key_mask, bool causal, int T)
{
    for (int i = 0; i < T; i++) {
        float *row = scores + (size_t)i * T;
        for (int j = 0; j < T; j++)
            if (pc_attention_key_masked(key_mask, causal, i, j)) row[j] = -FLT_MAX;
        softmax_row(row, T);
    }
}

static void multiply(float *dst, const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = a[i] * b[i];
}

pc_head_cols pc_attention_pair_cols(int pair, int T, int H, int Hkv, int hd)
{
    const int b = pair / H, h = pair % H, g = h / (H / Hkv);
    return (pc_head_cols){ (size_t)b * T * H * hd + (size_t)h * hd, (size_t)b * T * Hkv * hd + (size_t)g * hd };
}

void pc_attention_forward_plain(float *out, float *probs, const float *q, const float *k, const float *v,
                                const uint8_t *key_mask, const float *drop_mask, int B, int T, int H, int Hkv,
                                int hd, float scale, bool causal, float *scratch)
{
    const int D = H * hd, Dkv = Hkv * hd, slots = pc_attention_slots(B, H), pairs = B * H;
    const size_t TT = (size_t)T * T;
    #pragma omp parallel for schedule(static) if (pc_attention_parallel(B, T, H, hd))
    for (int slot = 0; slot < slots; slot++) {
        float *dropped = scratch + (size_t)slot * 2 * TT;
        for (int pair = slot; pair < pairs; pair += slots) {
            const int b = pair / H;
            const pc_head_cols col = pc_attention_pair_cols(pair, T, H, Hkv, hd);
            float *p = probs + (size_t)pair * TT;
            pc_sgemm(false, true, T, T, hd, scale, q + col.q, D, k + col.kv, Dkv, 0.0f, p, T);
            masked_softmax(p, key_mask ? key_mask + (size_t)b * T : NULL, causal, T);
            const float *weights = p;
            if (drop_mask) {
                multiply(dropped, p, drop_mask + (size_t)pair * TT, TT);
                weights = dropped;
            }
            pc_sgemm(false, false, T, hd, T, 1.0f, weights, T, v + col.kv, Dkv, 0.0f, out + col.q, D);
        }
    }
}

/* Softmax backward in place: dS_ij = P_ij (dP_ij - sum_k P_ik dP_ik). Masked keys have P_ij = 0
 * and so get dS_ij = 0, except in a row with every key masked, whose scores are constants:
 * that row gets dS = 0 explicitly. */
static void softmax_backward_row(float *drow, const float *prow, bool any_key, int n)
{
    double dot = 0.0;
    for (int j = 0; j < n; j++) dot += (double)prow[j] * drow[j];
    const float d = (float)dot;
    for (int j = 0; j < n; j++) drow[j] = any_key ? prow[j] * (drow[j] - d) : 0.0f;
}

static bool row_has_key(const uint8_t *key_mask, bool causal, int i, int T)
{
    for (int j = 0; j < T; j++)
        if (!pc_attention_key_masked(key_mask, causal, i, j)) return true;
    return false;
}

static void softmax_backward(float *dp, const float *p, const uint8_t *key_mask, bool causal, int T)
{
    for (int i = 0; i < T; i++)
        softmax_backward_row(dp + (size_t)i * T, p + (size_t)i * T, row_has_key(key_mask, causal, i, T), T);
}

void pc_attention_sum_group_shares(float *dst, const float *share, int B, int T, int H, int Hkv, int hd)
{
    const int rep = H / Hkv;
    const long rows = (long)B * T;
    #pragma omp parallel for schedule(static) if (rows * H * hd >= PC_PARALLEL_MIN)
    for (long r = 0; r < rows; r++) {
        const long b = r / T, t = r % T;
        for (int g = 0; g < Hkv; g++) {
            float *d = dst + (size_t)r * Hkv * hd + (size_t)g * hd;
            for (int m = 0; m < rep; m++) {
                const float *s = share + (((size_t)b * H + (size_t)g * rep + m) * T + t) * hd;
                for (int x = 0; x < hd; x++) d[x] = m == 0 ? s[x] : d[x] + s[x];
            }
        }
    }
}

void pc_attention_backward_plain(float *dq, float *dk, float *dv, const float *dout, const float *probs,
                                 const float *q, const float *k, const float *v, const uint8_t *key_mask,
                                 const float *drop_mask, int B, int T, int H, int Hkv, int hd, float scale,
                                 bool causal, float *scratch)
{
    const int D = H * hd, Dkv = Hkv * hd, slots = pc_attention_slots(B, H), pairs = B * H;
    const size_t TT = (size_t)T * T, share = (size_t)T * hd;
    const bool grouped = Hkv < H;
    float *dk_share = scratch + (size_t)slots * 2 * TT, *dv_share = dk_share + (size_t)pairs * share;
    #pragma omp parallel for schedule(static) if (pc_attention_parallel(B, T, H, hd))
    for (int slot = 0; slot < slots; slot++) {
        float *dp = scratch + (size_t)slot * 2 * TT;
        float *dropped = dp + TT;
        for (int pair = slot; pair < pairs; pair += slots) {
            const int b = pair / H;
            const pc_head_cols col = pc_attention_pair_cols(pair, T, H, Hkv, hd);
            const float *p = probs + (size_t)pair * TT;
            const float *dm = drop_mask ? drop_mask + (size_t)pair * TT : NULL;
            /* this head's dk, dv: straight into place, or into its share when heads share k and v */
            float *dk_h = grouped ? dk_share + pair * share : dk + col.kv;
            float *dv_h = grouped ? dv_share + pair * share : dv + col.kv;
            const int ld_kv = grouped ? hd : Dkv;
            const float *weights = p;
            if (dm) {
                multiply(dropped, p, dm, TT);
                weights = dropped;
            }
            /* out = W V with W = P * mask: dV = W^T dout, dW = dout V^T, dP = dW * mask */
            pc_sgemm(true, false, T, hd, T, 1.0f, weights, T, dout + col.q, D, 0.0f, dv_h, ld_kv);
            pc_sgemm(false, true, T, T, hd, 1.0f, dout + col.q, D, v + col.kv, Dkv, 0.0f, dp, T);
            if (dm) multiply(dp, dp, dm, TT);
            softmax_backward(dp, p, key_mask ? key_mask + (size_t)b * T : NULL, causal, T);
            /* S = scale Q K^T: dQ = scale dS K, dK = scale dS^T Q */
            pc_sgemm(false, false, T, hd, T, scale, dp, T, k + col.kv, Dkv, 0.0f, dq + col.q, D);
            pc_sgemm(true, false, T, hd, T, scale, dp, T, q + col.q, D, 0.0f, dk_h, ld_kv);
        }
    }
    if (grouped) {
        pc_attention_sum_group_shares(dk, dk_share, B, T, H, Hkv, hd);
        pc_attention_sum_group_shares(dv, dv_share, B, T, H, Hkv, hd);
    }
}

void pc_attention_forward(float *out, float *saved, const float *q, const float *k, const float *v,
                          const uint8_t *key_mask, const float *drop_mask, int B, int T, int H, int Hkv, int hd,
                          float scale, bool causal, float *scratch)
{
    pc_op_begin(PC_OP_ATTENTION);
    if (pc_attention_tiled(T, drop_mask != NULL))
        pc_attention_forward_tiled(out, saved, q, k, v, key_mask, B, T, H, Hkv, hd, scale, causal, scratch);
    else
        pc_attention_forward_plain(out, saved, q, k, v, key_mask, drop_mask, B, T, H, Hkv, hd, scale, causal, scratch);
    pc_op_end();
}

void pc_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *saved,
                           const float *q, const float *k, const float *v, const uint8_t *key_mask,
                           const float *drop_mask, int B, int T, int H, int Hkv, int hd, float scale, bool causal,
                           float *scratch)
{
    pc_op_begin(PC_OP_ATTENTION);
    if (pc_attention_tiled(T, drop_mask != NULL))
        pc_attention_backward_tiled(dq, dk, dv, dout, out, saved, q, k, v, key_mask, B, T, H, Hkv, hd, scale, causal,
                                    scratch);
    else
        pc_attention_backward_plain(dq, dk, dv, dout, saved, q, k, v, key_mask, drop_mask, B, T, H, Hkv, hd, scale,
                                    causal, scratch);
    pc_op_end();
}

/* ---------- one query per sequence ---------- */

static float dot(const float *a, const float *b, int n)
{
    float s = 0.0f;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static void axpy(float *y, float a, const float *x, int n)
{
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

/* p[j] = softmax_j(scale * q . k_j) over the T keys (row stride ldk), masked keys at -FLT_MAX first. */
static void one_query_probs(float *p, const float *q, const float *k, int ldk, const uint8_t *key_mask, int T, int hd,
                            float scale)
{
    for (int j = 0; j < T; j++)
        p[j] = key_mask && !key_mask[j] ? -FLT_MAX : scale * dot(q, k + (size_t)j * ldk, hd);
    softmax_row(p, T);
}

static bool one_query_parallel(int B, int T, int H, int hd)
{
    return (double)B * H * T * hd >= PC_PARALLEL_MIN;
}

void pc_attention_one_query_forward(float *out, float *probs, const float *q, const float *k, const float *v,
                                    const uint8_t *key_mask, const float *drop_mask, int B, int T, int H, int Hkv,
                                    int hd, float scale)
{
    pc_op_begin(PC_OP_ATTENTION);
    const int D = H * hd, Dkv = Hkv * hd, rep = H / Hkv;
    #pragma omp parallel for schedule(static) if (one_query_parallel(B, T, H, hd))
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const size_t pair = (size_t)b * H + h, kv = (size_t)b * T * Dkv + (size_t)(h / rep) * hd;
            float *p = probs + pair * T, *o = out + (size_t)b * D + (size_t)h * hd;
            const uint8_t *mask = key_mask ? key_mask + (size_t)b * T : NULL;
            one_query_probs(p, q + (size_t)b * D + (size_t)h * hd, k + kv, Dkv, mask, T, hd, scale);
            for (int x = 0; x < hd; x++) o[x] = 0.0f;
            for (int j = 0; j < T; j++)
                axpy(o, drop_mask ? p[j] * drop_mask[pair * T + j] : p[j], v + kv + (size_t)j * Dkv, hd);
        }
    pc_op_end();
}

size_t pc_attention_one_query_scratch_floats(int B, int T)
{
    return (size_t)B * T;
}

/* Per pair: out = sum_j w_j v_j with w = p * mask gives dv_j += w_j dout and dp_j = mask_j (dout . v_j);
 * softmax_backward_row gives ds; s_j = scale q . k_j gives dq = scale sum_j ds_j k_j and
 * dk_j += scale ds_j q. Heads that share k and v add into them in head order (same bits for any thread count). */
void pc_attention_one_query_backward(float *dq, float *dk, float *dv, const float *dout, const float *probs,
                                     const float *q, const float *k, const float *v, const uint8_t *key_mask,
                                     const float *drop_mask, int B, int T, int H, int Hkv, int hd, float scale,
                                     float *scratch)
{
    pc_op_begin(PC_OP_ATTENTION);
    const int D = H * hd, Dkv = Hkv * hd, rep = H / Hkv;
    #pragma omp parallel for schedule(static) if (one_query_parallel(B, T, H, hd))
    for (int b = 0; b < B; b++) {
        float *ds = scratch + (size_t)b * T;
        const bool any_key = row_has_key(key_mask ? key_mask + (size_t)b * T : NULL, false, 0, T);
        memset(dk + (size_t)b * T * Dkv, 0, sizeof(float) * (size_t)T * Dkv);
        memset(dv + (size_t)b * T * Dkv, 0, sizeof(float) * (size_t)T * Dkv);
        for (int h = 0; h < H; h++) {
            const size_t pair = (size_t)b * H + h, kv = (size_t)b * T * Dkv + (size_t)(h / rep) * hd;
            const size_t qo = (size_t)b * D + (size_t)h * hd;
            const float *p = probs + pair * T, *dm = drop_mask ? drop_mask + pair * T : NULL;
            for (int j = 0; j < T; j++) {
                const float keep = dm ? dm[j] : 1.0f;
                axpy(dv + kv + (size_t)j * Dkv, p[j] * keep, dout + qo, hd);
                ds[j] = keep * dot(dout + qo, v + kv + (size_t)j * Dkv, hd);
            }
            softmax_backward_row(ds, p, any_key, T);
            for (int x = 0; x < hd; x++) dq[qo + x] = 0.0f;
            for (int j = 0; j < T; j++) {
                axpy(dq + qo, scale * ds[j], k + kv + (size_t)j * Dkv, hd);
                axpy(dk + kv + (size_t)j * Dkv, scale * ds[j], q + qo, hd);
            }
        }
    }
    pc_op_end();
}

size_t pc_attention_decode_scratch_floats(int n_ctx, int H)
{
    return (size_t)n_ctx * H;
}

/* The H/Hkv query heads of a group are adjacent in q and out, so each group is two small products:
 * S[rep, n_ctx] = scale * Q_g K_g^T and out_g = softmax(S) V_g. */
void pc_attention_decode(float *out, const float *q, const float *k_cache, const float *v_cache, int n_ctx, int H,
                         int Hkv, int hd, float scale, float *scratch)
{
    const int rep = H / Hkv, Dkv = Hkv * hd;
    const long work = (long)H * n_ctx * hd;
    #pragma omp parallel for schedule(static) if (work > 65536)
    for (int g = 0; g < Hkv; g++) {
        float *s = scratch + (size_t)g * rep * n_ctx;
        const size_t head = (size_t)g * rep * hd;
        pc_sgemm(false, true, rep, n_ctx, hd, scale, q + head, hd, k_cache + (size_t)g * hd, Dkv, 0.0f, s, n_ctx);
        for (int m = 0; m < rep; m++) softmax_row(s + (size_t)m * n_ctx, n_ctx);
        pc_sgemm(false, false, rep, hd, n_ctx, 1.0f, s, n_ctx, v_cache + (size_t)g * hd, Dkv, 0.0f, out + head, hd);
    }
}
