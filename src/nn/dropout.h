/* Inverted dropout, as torch.nn.Dropout in training mode: an element is zeroed with
 * probability p and the kept ones are scaled by 1/(1-p). The mask is drawn once per step from a
 * named pc_rng stream and kept for the backward pass (which multiplies by the same mask). */
#ifndef PC_NN_DROPOUT_H
#define PC_NN_DROPOUT_H

#include <stdbool.h>

#include "base/rng.h"

/* mask[i] = 0 when the uniform draw at counter rng->counter + i is < p, else 1/(1-p);
 * advances rng by n. 0 <= p <= 1 (p = 1 zeroes every element). */
void pc_dropout_mask(float *mask, long n, float p, pc_rng *rng);

/* y = x * mask element-wise (forward and backward alike); y may alias x. */
void pc_apply_mask(float *y, const float *x, const float *mask, long n);

/* A dropout layer's forward: in training with p > 0 draws the mask and applies it, else copies x to y
 * (nothing when y is x). y may alias x. */
void pc_dropout_forward(float *y, float *mask, const float *x, long n, float p, bool training, pc_rng *rng);

#endif
