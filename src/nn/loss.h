/* Softmax cross-entropy over class logits, as torch.nn.functional.cross_entropy with
 * ignore_index = -100 and reduction "mean". */
#ifndef PC_NN_LOSS_H
#define PC_NN_LOSS_H

#include <stdint.h>

#define PC_IGNORE_INDEX (-100)

/* logits, probs: [n, C]; labels: [n], each in [0, C) or PC_IGNORE_INDEX (already validated).
 * Saves softmax(logits) in probs for every row (ignored rows too), sets *n_counted to the
 * number of rows not ignored and returns the mean of -log softmax(logits)[label] over them
 * (0 when none). Log-sum-exp is shifted by the row maximum; the mean does not depend on the
 * thread count. */
float pc_cross_entropy_forward(float *probs, const float *logits, const int32_t *labels, int n, int C,
                               int *n_counted);

/* dlogits = (probs - onehot(label)) * dloss_scale for counted rows, 0 for ignored rows.
 * For the mean loss pass dloss_scale = 1 / n_counted. dlogits may alias probs. */
void pc_cross_entropy_backward(float *dlogits, const float *probs, const int32_t *labels, int n, int C,
                               float dloss_scale);

/* The same loss without a probability matrix: per row, row_max = max(logits) and row_inv =
 * 1 / sum exp(logits - row_max), which pc_cross_entropy_backward_in_place turns back into the softmax
 * (a causal LM's head keeps 2 floats a row instead of vocab_size). */
float pc_cross_entropy_forward_stats(float *row_max, float *row_inv, const float *logits, const int32_t *labels,
                                     int n, int C, int *n_counted);

/* logits[r] = (softmax(logits[r]) - onehot(label)) * dloss_scale in place (0 for ignored rows), the softmax
 * from the forward's row_max and row_inv. */
void pc_cross_entropy_backward_in_place(float *logits, const float *row_max, const float *row_inv,
                                        const int32_t *labels, int n, int C, float dloss_scale);

#endif
