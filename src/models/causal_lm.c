#include "models/causal_lm.h"

#include <math.h>

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

pc_status pc_causal_loss(pc_model *m, const pc_batch *b, int32_t *shifted, float *probs, float *loss,
                         pc_error *err)
{
    int B = b->B, T = b->T;
    for (int bi = 0; bi < B; bi++)
        for (int t = 0; t < T; t++)
            shifted[bi * T + t] = t + 1 < T ? b->labels[bi * T + t + 1] : PC_IGNORE_INDEX;
    int counted = 0;
    *loss = pc_cross_entropy_forward(probs, m->logits, shifted, B * T, m->vocab_size, &counted);
    m->n_loss_tokens = counted;
    if (!isfinite(*loss)) return pc_fail(err, PEFTC_ERR_NUMERIC, "the loss is %f", (double)*loss);
    return PEFTC_OK;
}

void pc_causal_loss_backward(const pc_model *m, const pc_batch *b, const int32_t *shifted, float *probs,
                             float *dlogits, float dloss)
{
    float scale = m->n_loss_tokens > 0 ? dloss / (float)m->n_loss_tokens : 0.0f;
    pc_cross_entropy_backward(dlogits, probs, shifted, b->B * b->T, m->vocab_size, scale);
}
