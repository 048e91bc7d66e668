/* What every causal LM shares: batch validation, and the LM head with transformers' causal-LM loss
 * (labels shifted by one, -100 ignored, mean over the counted targets). */
#ifndef PC_MODELS_CAUSAL_LM_H
#define PC_MODELS_CAUSAL_LM_H

#include "models/model.h"
#include "models/model_util.h"
#include "nn/linear.h"

/* Shapes and ids of a batch against the reserved capacity and the model's limits. */
pc_status pc_causal_check_batch(const pc_batch *b, int cap_B, int cap_T, int max_positions, int vocab_size,
                                pc_error *err);

/* The head's buffers. transformers computes logits at every position and the loss drops those whose shifted
 * label is -100 (each row's last position, padding, a prompt under completion-only loss); here those rows never
 * reach lm_head: with labels, the head runs on the rows that have a target only, gathered in order. */
typedef struct pc_causal_head {
    int32_t *targets;        /* [N]: the shifted labels of the rows that have one, in row order */
    int32_t *rows;           /* [N]: which rows those are */
    int n_rows;
    float *x_rows, *dx_rows; /* [N, hidden]: the head's input at those rows, and its gradient */
    float *row_max, *row_inv;/* [N]: the softmax of each logits row, as pc_cross_entropy_forward_stats keeps it */
} pc_causal_head;

/* Allocates the buffers for N rows (false: out of memory). */
bool pc_causal_head_alloc(pc_owned *o, pc_causal_head *h, long N, long hidden);

/* m->logits = lm_head(x) for x [B*T, hidden]: every row without labels; with labels only the rows that have a
 * target ([h->n_rows, vocab], in order), and *loss their mean cross-entropy (sets m->n_loss_tokens). */
pc_status pc_causal_head_forward(pc_model *m, pc_linear *lm_head, pc_causal_head *h, const float *x, int hidden,
                                 const pc_batch *b, bool training, pc_rng *rng, float *loss, pc_error *err);

/* dx [B*T, hidden] = d(dloss * loss)/dx of the head's input (zero at rows without a target), lm_head's own
 * gradients accumulated. After a forward with labels; m->logits are overwritten with their gradient. */
void pc_causal_head_backward(const pc_model *m, pc_linear *lm_head, pc_causal_head *h, float *dx, int hidden,
                             const pc_batch *b, float dloss);

#endif
