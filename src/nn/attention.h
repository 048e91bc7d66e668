/* Scaled dot-product self-attention core, after the q/k/v projections and before the output
 * projection (BERT / DistilBERT eager attention, optionally causal):
 *   S = scale * Q K^T, masked entries set to -FLT_MAX, P = softmax(S) per row,
 *   out = (P * drop_mask) V,  per batch b and head h.
 * Layout: q, k, v, out are [B, T, H*hd] (the projection outputs); head h occupies columns
 * h*hd .. h*hd+hd-1. probs and drop_mask are [B, H, T, T]. All float32, caller-allocated. */
#ifndef PC_NN_ATTENTION_H
#define PC_NN_ATTENTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Floats of scratch that pc_attention_forward / _backward need (constant for a process). */
size_t pc_attention_scratch_floats(int B, int T, int H, int hd);

/* key_mask: NULL (attend everywhere) or [B, T], 1 = attend, 0 = padding; masked scores become
 * -FLT_MAX before the softmax, as transformers' masked_fill(finfo.min), so masked keys get exactly
 * zero probability, and a row with every key masked gets uniform probabilities as in torch.
 * causal: also mask keys j > i. probs: the saved softmax, before dropout.
 * drop_mask: NULL, or attention dropout values (0 or 1/(1-p)) multiplied into probs. */
void pc_attention_forward(float *out, float *probs, const float *q, const float *k, const float *v,
                          const uint8_t *key_mask, const float *drop_mask, int B, int T, int H, int hd,
                          float scale, bool causal, float *scratch);

/* Gradients of out with respect to q, k, v (all overwritten), given dout and the saved probs.
 * key_mask and causal must be those of the forward pass: a row with every key masked got uniform
 * probabilities from constant scores, so (as in torch) it passes gradient to v but none to q, k. */
void pc_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *probs,
                           const float *q, const float *k, const float *v, const uint8_t *key_mask,
                           const float *drop_mask, int B, int T, int H, int hd, float scale, bool causal,
                           float *scratch);

#endif
