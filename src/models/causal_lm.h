/* What every causal LM shares: batch validation and transformers' causal-LM loss
 * (labels shifted by one, -100 ignored, mean over the counted targets). */
#ifndef PC_MODELS_CAUSAL_LM_H
#define PC_MODELS_CAUSAL_LM_H

#include "models/model.h"

/* Shapes and ids of a batch against the reserved capacity and the model's limits. */
pc_status pc_causal_check_batch(const pc_batch *b, int cap_B, int cap_T, int max_positions, int vocab_size,
                                pc_error *err);

/* Loss of logits [B*T, V] against b->labels: shifted[t] = labels[t+1] (the last position of a row
 * predicts nothing). Saves shifted labels and the softmax for the backward; sets m->n_loss_tokens. */
pc_status pc_causal_loss(pc_model *m, const pc_batch *b, int32_t *shifted, float *probs, float *loss,
                         pc_error *err);

/* dlogits (may be probs itself) = d(dloss * mean loss)/dlogits. */
void pc_causal_loss_backward(const pc_model *m, const pc_batch *b, const int32_t *shifted, float *probs,
                             float *dlogits, float dloss);

#endif
