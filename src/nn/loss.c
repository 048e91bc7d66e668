#include "nn/loss.h"
#include "base/profile.h"
#include "base/threads.h"
#include "nn/exp.h"
#include "nn/row_sums.h"

#include <math.h>
#include <stddef.h>

/* One row: its maximum and 1 / sum exp(x - max) into *max_out, *inv_out, the softmax into p when p is not NULL
 * (p may be x); returns -log softmax(x)[label] = log(sum exp(x - max)) - (x[label] - max), or 0 when the row is
 * ignored. */
static double row_loss(float *p, const float *x, int32_t label, int C, float *max_out, float *inv_out)
{
    float max = x[0];
    for (int c = 1; c < C; c++) if (x[c] > max) max = x[c];
    double sum = pc_row_sum_exp(x, C, max);
    double loss = label == PC_IGNORE_INDEX ? 0.0 : log(sum) - ((double)x[label] - max);
    const float inv = (float)(1.0 / sum);
    if (p) for (int c = 0; c < C; c++) p[c] = pc_exp_nonpositive(x[c] - max) * inv;
    *max_out = max;
    *inv_out = inv;
    return loss;
}

/* The mean loss over the counted rows, keeping per row the softmax (probs) or its two floats (row_max, row_inv),
 * whichever is not NULL. Rows are summed in fixed chunks (independent of the thread count), then chunks in order. */
static float mean_loss(float *probs, float *row_max, float *row_inv, const float *logits, const int32_t *labels,
                       int n, int C, int *n_counted)
{
    pc_op_begin(PC_OP_LOSS);
    enum { CHUNKS = 64 };
    double partial[CHUNKS] = {0};
    #pragma omp parallel for schedule(static) if ((long)n * C >= PC_PARALLEL_MIN)
    for (int chunk = 0; chunk < CHUNKS; chunk++) {
        const int r0 = (int)((long)n * chunk / CHUNKS), r1 = (int)((long)n * (chunk + 1) / CHUNKS);
        for (int r = r0; r < r1; r++) {
            float max, inv;
            partial[chunk] += row_loss(probs ? probs + (size_t)r * C : NULL, logits + (size_t)r * C, labels[r], C,
                                       row_max ? &row_max[r] : &max, row_inv ? &row_inv[r] : &inv);
        }
    }
    double total = 0.0;
    for (int chunk = 0; chunk < CHUNKS; chunk++) total += partial[chunk];
    int counted = 0;
    for (int r = 0; r < n; r++) counted += labels[r] != PC_IGNORE_INDEX;
    *n_counted = counted;
    pc_op_end();
    return counted ? (float)(total / counted) : 0.0f;
}

float pc_cross_entropy_forward(float *probs, const float *logits, const int32_t *labels, int n, int C,
                               int *n_counted)
{
    return mean_loss(probs, NULL, NULL, logits, labels, n, C, n_counted);
}

float pc_cross_entropy_forward_stats(float *row_max, float *row_inv, const float *logits, const int32_t *labels,
                                     int n, int C, int *n_counted)
{
    return mean_loss(NULL, row_max, row_inv, logits, labels, n, C, n_counted);
}

void pc_cross_entropy_backward_in_place(float *logits, const float *row_max, const float *row_inv,
                                        const int32_t *labels, int n, int C, float dloss_scale)
{
    pc_op_begin(PC_OP_LOSS);
    #pragma omp parallel for schedule(static) if ((long)n * C >= PC_PARALLEL_MIN)
    for (int r = 0; r < n; r++) {
        float *d = logits + (size_t)r * C;
        const int32_t label = labels[r];
        const float s = label == PC_IGNORE_INDEX ? 0.0f : dloss_scale, max = row_max[r], inv = row_inv[r];
        for (int c = 0; c < C; c++) d[c] = pc_exp_nonpositive(d[c] - max) * inv * s;
        if (label != PC_IGNORE_INDEX) d[label] -= dloss_scale;
    }
    pc_op_end();
}

void pc_cross_entropy_backward(float *dlogits, const float *probs, const int32_t *labels, int n, int C,
                               float dloss_scale)
{
    pc_op_begin(PC_OP_LOSS);
    #pragma omp parallel for schedule(static) if ((long)n * C >= PC_PARALLEL_MIN)
    for (int r = 0; r < n; r++) {
        const float *p = probs + (size_t)r * C;
        float *d = dlogits + (size_t)r * C;
        const int32_t label = labels[r];
        const float s = label == PC_IGNORE_INDEX ? 0.0f : dloss_scale;
        for (int c = 0; c < C; c++) d[c] = p[c] * s;
        if (label != PC_IGNORE_INDEX) d[label] -= dloss_scale;
    }
    pc_op_end();
}
