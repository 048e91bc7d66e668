#include "nn/attention.h"

#include "kernels/gemm.h"

#include <float.h>
#include <math.h>
#include <omp.h>

/* Work is split over (b, h) pairs. Pair i goes to slot i % slots, which owns 2*T*T floats of
 * scratch. The slot count depends only on the problem and the machine, never on the thread
 * count, and each pair is computed the same way in any slot, so results are bit-identical for
 * any number of threads. (OpenBLAS runs single-threaded inside the parallel region.) */
static int attention_slots(int B, int H)
{
    int procs = omp_get_num_procs();
    long pairs = (long)B * H;
    return pairs < procs ? (int)pairs : procs;
}

size_t pc_attention_scratch_floats(int B, int T, int H, int hd)
{
    (void)hd;  /* per-slot scratch holds [T, T] matrices only */
    return (size_t)attention_slots(B, H) * 2 * (size_t)T * (size_t)T;
}

static bool key_is_masked(const uint8_t *key_mask, bool causal, int i, int j)
{
    return (key_mask && !key_mask[j]) || (causal && j > i);
}

/* Row-wise softmax of scores[T, T] in place, with padding keys and (if causal) future keys
 * set to -FLT_MAX first. key_mask is this batch row's [T] mask or NULL. */
static void masked_softmax(float *scores, const uint8_t *key_mask, bool causal, int T)
{
    for (int i = 0; i < T; i++) {
        float *row = scores + (size_t)i * T;
        float max = -FLT_MAX;
        for (int j = 0; j < T; j++) {
            if (key_is_masked(key_mask, causal, i, j)) row[j] = -FLT_MAX;
            if (row[j] > max) max = row[j];
        }
        double sum = 0.0;
        for (int j = 0; j < T; j++) {
            row[j] = expf(row[j] - max);
            sum += row[j];
        }
        const float inv = (float)(1.0 / sum);
        for (int j = 0; j < T; j++) row[j] *= inv;
    }
}

static void multiply(float *dst, const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = a[i] * b[i];
}

void pc_attention_forward(float *out, float *probs, const float *q, const float *k, const float *v,
                          const uint8_t *key_mask, const float *drop_mask, int B, int T, int H, int hd,
                          float scale, bool causal, float *scratch)
{
    const int D = H * hd, slots = attention_slots(B, H), pairs = B * H;
    const size_t TT = (size_t)T * T;
    #pragma omp parallel for schedule(static)
    for (int slot = 0; slot < slots; slot++) {
        float *dropped = scratch + (size_t)slot * 2 * TT;
        for (int pair = slot; pair < pairs; pair += slots) {
            const int b = pair / H, h = pair % H;
            const size_t col = (size_t)b * T * D + (size_t)h * hd;
            float *p = probs + (size_t)pair * TT;
            pc_sgemm(false, true, T, T, hd, scale, q + col, D, k + col, D, 0.0f, p, T);
            masked_softmax(p, key_mask ? key_mask + (size_t)b * T : NULL, causal, T);
            const float *weights = p;
            if (drop_mask) {
                multiply(dropped, p, drop_mask + (size_t)pair * TT, TT);
                weights = dropped;
            }
            pc_sgemm(false, false, T, hd, T, 1.0f, weights, T, v + col, D, 0.0f, out + col, D);
        }
    }
}

/* Softmax backward in place: dS_ij = P_ij (dP_ij - sum_k P_ik dP_ik). Masked keys have P_ij = 0
 * and so get dS_ij = 0, except in a row with every key masked, whose scores are constants:
 * that row gets dS = 0 explicitly. */
static void softmax_backward(float *dp, const float *p, const uint8_t *key_mask, bool causal, int T)
{
    for (int i = 0; i < T; i++) {
        float *drow = dp + (size_t)i * T;
        const float *prow = p + (size_t)i * T;
        bool any_key = false;
        for (int j = 0; j < T && !any_key; j++) any_key = !key_is_masked(key_mask, causal, i, j);
        double dot = 0.0;
        for (int j = 0; j < T; j++) dot += (double)prow[j] * drow[j];
        const float d = (float)dot;
        for (int j = 0; j < T; j++) drow[j] = any_key ? prow[j] * (drow[j] - d) : 0.0f;
    }
}

void pc_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *probs,
                           const float *q, const float *k, const float *v, const uint8_t *key_mask,
                           const float *drop_mask, int B, int T, int H, int hd, float scale, bool causal,
                           float *scratch)
{
    const int D = H * hd, slots = attention_slots(B, H), pairs = B * H;
    const size_t TT = (size_t)T * T;
    #pragma omp parallel for schedule(static)
    for (int slot = 0; slot < slots; slot++) {
        float *dp = scratch + (size_t)slot * 2 * TT;
        float *dropped = dp + TT;
        for (int pair = slot; pair < pairs; pair += slots) {
            const int b = pair / H, h = pair % H;
            const size_t col = (size_t)b * T * D + (size_t)h * hd;
            const float *p = probs + (size_t)pair * TT;
            const float *dm = drop_mask ? drop_mask + (size_t)pair * TT : NULL;
            const float *weights = p;
            if (dm) {
                multiply(dropped, p, dm, TT);
                weights = dropped;
            }
            /* out = W V with W = P * mask: dV = W^T dout, dW = dout V^T, dP = dW * mask */
            pc_sgemm(true, false, T, hd, T, 1.0f, weights, T, dout + col, D, 0.0f, dv + col, D);
            pc_sgemm(false, true, T, T, hd, 1.0f, dout + col, D, v + col, D, 0.0f, dp, T);
            if (dm) multiply(dp, dp, dm, TT);
            softmax_backward(dp, p, key_mask ? key_mask + (size_t)b * T : NULL, causal, T);
            /* S = scale Q K^T: dQ = scale dS K, dK = scale dS^T Q */
            pc_sgemm(false, false, T, hd, T, scale, dp, T, k + col, D, 0.0f, dq + col, D);
            pc_sgemm(true, false, T, hd, T, scale, dp, T, q + col, D, 0.0f, dk + col, D);
        }
    }
}
