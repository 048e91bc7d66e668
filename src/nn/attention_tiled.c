/* Tiled (flash-attention style) attention: never forms a head's T x T score matrix.
 * Forward, per query block: walk the key blocks keeping each row's running max m and sum l of
 * exp(s - m); when a block raises the max, the sum and the output row so far are rescaled by
 * exp(m_old - m_new). At the end out /= l and the row's log-sum-exp m + log(l) is saved.
 * Backward recomputes P = exp(S - lse) tile by tile and uses D_i = sum_j P_ij dP_ij = dout_i . out_i:
 *   dV += P^T dout,  dP = dout V^T,  dS = P (dP - D),  dQ += scale dS K,  dK += scale dS^T Q.
 * A row whose every key is masked got uniform probabilities over all T keys in the plain pass (torch's
 * masked_fill(finfo.min)); here it is flagged by lse = +inf, its output is the mean of v, and in backward
 * it passes dout / T to every row of dv and nothing to q, k. */
#include "nn/attention.h"
#include "nn/attention_internal.h"

#include "kernels/tile_gemm.h"
#include "nn/exp.h"

#include <math.h>
#include <string.h>

enum { BQ = 64, BK = 64 };  /* query and key block sizes */

/* Per slot: a score tile, a dP tile, the running max and sum of a query block, D for a head's rows, the sum
 * of dout over its fully masked rows, and the head's K and V transposed ([hd, T] each: the right operands of
 * Q K^T and dout V^T, row-major for kernels/tile_gemm). */
size_t pc_attention_tiled_slot_floats(int T, int hd)
{
    return 2 * (size_t)BQ * BK + 2 * BQ + (size_t)T + (size_t)hd + 2 * (size_t)T * hd;
}

static int min_int(int a, int b) { return a < b ? a : b; }

/* s[nq, nk] (row stride BK) = scale * Q[q0 .., :] K[k0 .., :]^T (kt: K^T, row stride T), masked entries -inf. */
static void score_tile(float *s, const float *q, int ldq, const float *kt, int T, int q0, int nq, int k0, int nk,
                       int hd, float scale, const uint8_t *key_mask, bool causal)
{
    pc_tile_gemm(false, nq, nk, hd, scale, q + (size_t)q0 * ldq, ldq, kt + k0, T, false, s, BK);
    for (int r = 0; r < nq; r++) {
        float *row = s + r * BK;
        if (key_mask)
            for (int c = 0; c < nk; c++) row[c] = key_mask[k0 + c] ? row[c] : -INFINITY;
        if (causal)   /* keys after the query's own position */
            for (int c = q0 + r + 1 - k0 > 0 ? q0 + r + 1 - k0 : 0; c < nk; c++) row[c] = -INFINITY;
    }
}

/* The keys a query block looks at: all T, or up to its last row when causal. */
static int key_end(int q0, int nq, int T, bool causal)
{
    return causal ? q0 + nq : T;
}

/* Folds one score tile into the running (m, l) of its rows and into out; s becomes exp(s - m_new). */
static void online_softmax_step(float *s, float *m, float *l, float *out, int ldo, int nq, int nk, int hd)
{
    for (int r = 0; r < nq; r++) {
        float *row = s + r * BK, tile_max = -INFINITY;
        for (int c = 0; c < nk; c++) tile_max = row[c] > tile_max ? row[c] : tile_max;
        const float m_new = fmaxf(m[r], tile_max);
        if (m_new == -INFINITY) {  /* no unmasked key yet */
            memset(row, 0, sizeof(float) * (size_t)nk);
            continue;
        }
        for (int c = 0; c < nk; c++) row[c] = pc_exp_nonpositive(row[c] - m_new);   /* masked (-inf): 0 */
        float sum = 0.0f;
        for (int c = 0; c < nk; c++) sum += row[c];
        const float rescale = pc_exp_nonpositive(m[r] - m_new);  /* 0 when m was -inf */
        if (rescale != 1.0f) {
            float *o = out + (size_t)r * ldo;
            for (int d = 0; d < hd; d++) o[d] *= rescale;
        }
        l[r] = l[r] * rescale + sum;
        m[r] = m_new;
    }
}

/* out[i] = mean over all T rows of v (the uniform probabilities of a fully masked row). */
static void mean_of_v(float *o, const float *v, int ldv, int T, int hd)
{
    for (int d = 0; d < hd; d++) o[d] = 0.0f;
    for (int j = 0; j < T; j++)
        for (int d = 0; d < hd; d++) o[d] += v[(size_t)j * ldv + d];
    for (int d = 0; d < hd; d++) o[d] /= (float)T;
}

static void forward_pair(float *out, int ldo, float *lse, const float *q, int ldq, const float *k, const float *v,
                         int ldkv, const uint8_t *key_mask, int T, int hd, float scale, bool causal, float *slot)
{
    float *s = slot, *m = s + 2 * BQ * BK, *l = m + BQ, *kt = l + BQ + T + hd;
    pc_tile_transpose(kt, T, k, ldkv, T, hd);
    for (int q0 = 0; q0 < T; q0 += BQ) {
        const int nq = min_int(BQ, T - q0), kend = key_end(q0, nq, T, causal);
        for (int r = 0; r < nq; r++) {
            m[r] = -INFINITY;
            l[r] = 0.0f;
            memset(out + (size_t)(q0 + r) * ldo, 0, sizeof(float) * (size_t)hd);
        }
        for (int k0 = 0; k0 < kend; k0 += BK) {
            const int nk = min_int(BK, kend - k0);
            score_tile(s, q, ldq, kt, T, q0, nq, k0, nk, hd, scale, key_mask, causal);
            online_softmax_step(s, m, l, out + (size_t)q0 * ldo, ldo, nq, nk, hd);
            pc_tile_gemm(false, nq, hd, nk, 1.0f, s, BK, v + (size_t)k0 * ldkv, ldkv, true, out + (size_t)q0 * ldo,
                         ldo);
        }
        for (int r = 0; r < nq; r++) {
            float *o = out + (size_t)(q0 + r) * ldo;
            if (l[r] == 0.0f) {
                mean_of_v(o, v, ldkv, T, hd);
                lse[q0 + r] = INFINITY;
                continue;
            }
            const float inv = 1.0f / l[r];
            for (int d = 0; d < hd; d++) o[d] *= inv;
            lse[q0 + r] = m[r] + logf(l[r]);
        }
    }
}

void pc_attention_forward_tiled(float *out, float *lse, const float *q, const float *k, const float *v,
                                const uint8_t *key_mask, int B, int T, int H, int Hkv, int hd, float scale,
                                bool causal, float *scratch)
{
    const int D = H * hd, Dkv = Hkv * hd, slots = pc_attention_slots(B, H), pairs = B * H;
    const size_t stride = pc_attention_tiled_slot_floats(T, hd);
    #pragma omp parallel for schedule(static) if (pc_attention_parallel(B, T, H, hd))
    for (int slot = 0; slot < slots; slot++)
        for (int pair = slot; pair < pairs; pair += slots) {
            const int b = pair / H;
            const pc_head_cols col = pc_attention_pair_cols(pair, T, H, Hkv, hd);
            forward_pair(out + col.q, D, lse + (size_t)pair * T, q + col.q, D, k + col.kv, v + col.kv, Dkv,
                         key_mask ? key_mask + (size_t)b * T : NULL, T, hd, scale, causal,
                         scratch + (size_t)slot * stride);
        }
}

/* One head's inputs and gradients for the backward pass (row strides ldq for q, dq, dout, out; ldkv for k, v;
 * ldg for dk, dv). */
typedef struct {
    const float *q, *k, *v, *dout, *out, *lse;
    float *dq, *dk, *dv;
    int ldq, ldkv, ldg;
} head_grads;

/* P tile from the saved log-sum-exp: exp(s - lse), 0 for masked keys and for fully masked rows. */
static void probs_from_lse(float *s, const float *lse, int q0, int nq, int nk)
{
    for (int r = 0; r < nq; r++) {
        float *row = s + r * BK;
        const float L = lse[q0 + r];
        if (isinf(L)) {
            memset(row, 0, sizeof(float) * (size_t)nk);
            continue;
        }
        for (int c = 0; c < nk; c++) row[c] = pc_exp_nonpositive(row[c] - L);   /* s <= max <= L */
    }
}

/* dP tile in place -> dS = P (dP - D). */
static void softmax_backward_tile(float *dp, const float *p, const float *Drow, int q0, int nq, int nk)
{
    for (int r = 0; r < nq; r++)
        for (int c = 0; c < nk; c++) dp[r * BK + c] = p[r * BK + c] * (dp[r * BK + c] - Drow[q0 + r]);
}

/* Rows of D and the sum of dout over fully masked rows (returns how many there are). */
static int row_terms(float *Drow, float *masked_dout, const head_grads *g, int T, int hd)
{
    int n_masked = 0;
    memset(masked_dout, 0, sizeof(float) * (size_t)hd);
    for (int i = 0; i < T; i++) {
        const float *o = g->out + (size_t)i * g->ldq, *dout = g->dout + (size_t)i * g->ldq;
        float dot = 0.0f;
        for (int d = 0; d < hd; d++) dot += dout[d] * o[d];
        Drow[i] = dot;
        if (isinf(g->lse[i])) {
            n_masked++;
            for (int d = 0; d < hd; d++) masked_dout[d] += dout[d];
        }
    }
    return n_masked;
}

static void backward_pair(const head_grads *g, const uint8_t *key_mask, int T, int hd, float scale, bool causal,
                          float *slot)
{
    float *s = slot, *dp = s + BQ * BK, *Drow = dp + BQ * BK + 2 * BQ, *masked_dout = Drow + T;
    float *kt = masked_dout + hd, *vt = kt + (size_t)T * hd;
    const int n_masked = row_terms(Drow, masked_dout, g, T, hd);
    pc_tile_transpose(kt, T, g->k, g->ldkv, T, hd);
    pc_tile_transpose(vt, T, g->v, g->ldkv, T, hd);
    for (int k0 = 0; k0 < T; k0 += BK) {
        const int nk = min_int(BK, T - k0);
        const float *kb = g->k + (size_t)k0 * g->ldkv;
        float *dkb = g->dk + (size_t)k0 * g->ldg, *dvb = g->dv + (size_t)k0 * g->ldg;
        const int q_first = causal ? k0 / BQ * BQ : 0;
        for (int q0 = q_first; q0 < T; q0 += BQ) {
            /* the first product into a block of dk, dv (q0 == q_first) or dq (k0 == 0) overwrites it */
            const int nq = min_int(BQ, T - q0);
            const bool kv_seen = q0 != q_first, q_seen = k0 != 0;
            const float *qb = g->q + (size_t)q0 * g->ldq, *doutb = g->dout + (size_t)q0 * g->ldq;
            score_tile(s, g->q, g->ldq, kt, T, q0, nq, k0, nk, hd, scale, key_mask, causal);
            probs_from_lse(s, g->lse, q0, nq, nk);
            pc_tile_gemm(true, nk, hd, nq, 1.0f, s, BK, doutb, g->ldq, kv_seen, dvb, g->ldg);
            pc_tile_gemm(false, nq, nk, hd, 1.0f, doutb, g->ldq, vt + k0, T, false, dp, BK);
            softmax_backward_tile(dp, s, Drow, q0, nq, nk);
            pc_tile_gemm(false, nq, hd, nk, scale, dp, BK, kb, g->ldkv, q_seen, g->dq + (size_t)q0 * g->ldq, g->ldq);
            pc_tile_gemm(true, nk, hd, nq, scale, dp, BK, qb, g->ldq, kv_seen, dkb, g->ldg);
        }
    }
    if (n_masked)
        for (int j = 0; j < T; j++)
            for (int d = 0; d < hd; d++) g->dv[(size_t)j * g->ldg + d] += masked_dout[d] / (float)T;
}

void pc_attention_backward_tiled(float *dq, float *dk, float *dv, const float *dout, const float *out,
                                 const float *lse, const float *q, const float *k, const float *v,
                                 const uint8_t *key_mask, int B, int T, int H, int Hkv, int hd, float scale,
                                 bool causal, float *scratch)
{
    const int D = H * hd, Dkv = Hkv * hd, slots = pc_attention_slots(B, H), pairs = B * H;
    const size_t stride = pc_attention_tiled_slot_floats(T, hd), share = (size_t)T * hd;
    const bool grouped = Hkv < H;
    float *dk_share = scratch + (size_t)slots * stride, *dv_share = dk_share + (size_t)pairs * share;
    #pragma omp parallel for schedule(static) if (pc_attention_parallel(B, T, H, hd))
    for (int slot = 0; slot < slots; slot++)
        for (int pair = slot; pair < pairs; pair += slots) {
            const int b = pair / H;
            const pc_head_cols col = pc_attention_pair_cols(pair, T, H, Hkv, hd);
            /* this head's dk, dv: straight into place, or into its share when heads share k and v */
            head_grads g = {
                .q = q + col.q, .k = k + col.kv, .v = v + col.kv, .dout = dout + col.q, .out = out + col.q,
                .lse = lse + (size_t)pair * T, .dq = dq + col.q,
                .dk = grouped ? dk_share + pair * share : dk + col.kv,
                .dv = grouped ? dv_share + pair * share : dv + col.kv,
                .ldq = D, .ldkv = Dkv, .ldg = grouped ? hd : Dkv,
            };
            backward_pair(&g, key_mask ? key_mask + (size_t)b * T : NULL, T, hd, scale, causal,
                          scratch + (size_t)slot * stride);
        }
    if (grouped) {
        pc_attention_sum_group_shares(dk, dk_share, B, T, H, Hkv, hd);
        pc_attention_sum_group_shares(dv, dv_share, B, T, H, Hkv, hd);
    }
}
