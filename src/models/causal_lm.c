#include "models/causal_lm.h"

#include <math.h>
#include <string.h>

#include "nn/loss.h"

pc_status pc_causal_check_batch(const pc_batch *b, int cap_B, int cap_T, int max_positions, int vocab_size,
                                pc_error *err)
{
    if (b->B > cap_B || b->T > cap_T)
        return pc_fail(err, PEFTC_ERR_INVALID, "batch %d x %d exceeds the reserved %d x %d", b->B, b->T, cap_B, cap_T);
    if (b->T > max_positions)
        return pc_fail(err, PEFTC_ERR_INVALID, "sequence length %d exceeds max_position_embeddings %d", b->T,
                       max_positions);
    long N = (long)b->B * b->T;
    for (long i = 0; i < N; i++) {
        if (b->input_ids[i] < 0 || b->input_ids[i] >= vocab_size)
            return pc_fail(err, PEFTC_ERR_INVALID, "token id %d at position %ld is outside the vocabulary (size %d)",
                           b->input_ids[i], i, vocab_size);
        if (b->labels && b->labels[i] != PC_IGNORE_INDEX && (b->labels[i] < 0 || b->labels[i] >= vocab_size))
            return pc_fail(err, PEFTC_ERR_INVALID, "label %d at position %ld is outside the vocabulary", b->labels[i], i);
    }
    return PEFTC_OK;
}

bool pc_causal_head_alloc(pc_owned *o, pc_causal_head *h, long N, long hidden)
{
    return (h->targets = pc_owned_alloc_bytes(o, sizeof(int32_t) * (size_t)N)) &&
           (h->rows = pc_owned_alloc_bytes(o, sizeof(int32_t) * (size_t)N)) &&
           (h->x_rows = pc_owned_alloc(o, N * hidden)) && (h->dx_rows = pc_owned_alloc(o, N * hidden)) &&
           (h->row_max = pc_owned_alloc(o, N)) && (h->row_inv = pc_owned_alloc(o, N));
}

/* Row bi*T + t predicts labels[bi*T + t + 1]; the last position of a row predicts nothing. */
static void collect_targets(pc_causal_head *h, const pc_batch *b)
{
    h->n_rows = 0;
    for (int bi = 0; bi < b->B; bi++)
        for (int t = 0; t + 1 < b->T; t++) {
            int32_t label = b->labels[bi * b->T + t + 1];
            if (label == PC_IGNORE_INDEX) continue;
            h->rows[h->n_rows] = bi * b->T + t;
            h->targets[h->n_rows++] = label;
        }
}

pc_status pc_causal_head_forward(pc_model *m, pc_linear *lm_head, pc_causal_head *h, const float *x, int hidden,
                                 const pc_batch *b, bool training, pc_rng *rng, float *loss, pc_error *err)
{
    int N = b->B * b->T;
    *loss = 0;
    m->n_loss_tokens = 0;
    if (!b->labels) {
        pc_linear_forward(lm_head, m->logits, x, N, training, rng);
        return PEFTC_OK;
    }
    collect_targets(h, b);   /* fewer than N: a row's last position never has one */
    for (int j = 0; j < h->n_rows; j++)
        memcpy(h->x_rows + (long)j * hidden, x + (long)h->rows[j] * hidden, sizeof(float) * (size_t)hidden);
    if (h->n_rows == 0) return PEFTC_OK;
    pc_linear_forward(lm_head, m->logits, h->x_rows, h->n_rows, training, rng);
    int counted = 0;
    *loss = pc_cross_entropy_forward_stats(h->row_max, h->row_inv, m->logits, h->targets, h->n_rows, m->vocab_size,
                                           &counted);
    m->n_loss_tokens = counted;
    if (!isfinite(*loss)) return pc_fail(err, PEFTC_ERR_NUMERIC, "the loss is %f", (double)*loss);
    return PEFTC_OK;
}

void pc_causal_head_backward(const pc_model *m, pc_linear *lm_head, pc_causal_head *h, float *dx, int hidden,
                             const pc_batch *b, float dloss)
{
    memset(dx, 0, sizeof(float) * (size_t)b->B * b->T * hidden);
    if (h->n_rows == 0) return;
    float scale = dloss / (float)h->n_rows;
    float *dlogits = m->logits;   /* the logits turn into their gradient in place */
    pc_cross_entropy_backward_in_place(dlogits, h->row_max, h->row_inv, h->targets, h->n_rows, m->vocab_size, scale);
    pc_linear_backward(lm_head, h->dx_rows, false, dlogits, h->x_rows, h->n_rows);
    for (int j = 0; j < h->n_rows; j++)
        memcpy(dx + (long)h->rows[j] * hidden, h->dx_rows + (long)j * hidden, sizeof(float) * (size_t)hidden);
}
