/* DoRA (Liu et al. 2024, weight-decomposed low-rank adaptation) on one linear map, as PEFT implements
 * it (peft_facts.md section 4): a LoRA adapter (peft/lora.h) plus a trainable magnitude m [out].
 * With c = m / ||W + s B A|| per output row, the norm detached (a constant in backward), and x_d the
 * LoRA-branch input (dropout(x) in training, else x):
 *   y = base(x) + (c - 1) (x_d W^T) + c s (x_d A^T B^T),   base(x) = x W^T + b.
 * Without dropout (or in eval) x_d W^T is base(x) - b, reused as PEFT reuses it, so y = b + c (x W^T +
 * s x A^T B^T); with dropout in training x_d W^T is a second product. The bias is never rescaled.
 * W is the frozen base weight (pc_base_weight: f32 in either layout, or 4 bits, dequantized for the norm). */
#ifndef PC_PEFT_DORA_H
#define PC_PEFT_DORA_H

#include <stdbool.h>

#include "base/error.h"
#include "base/rng.h"
#include "peft/lora.h"

/* Makes the LoRA adapter l (A and B set) a DoRA adapter on W: allocates the magnitude, its gradient
 * and per-forward state, and sets m = ||W + s B A|| per output row, as PEFT's DoRA init does (= ||W_o||
 * while B = 0). On failure l keeps what was allocated, for pc_lora_free. */
pc_status pc_dora_init(pc_lora *l, const pc_base_weight *w, pc_error *err);

/* y[rows, out] holds base(x) = x W^T + b (b may be NULL); adds the DoRA terms. Saves what backward needs. */
void pc_dora_forward(pc_lora *l, float *y, const float *x, const pc_base_weight *w, const float *b, int rows,
                     bool training, pc_rng *rng);
/* dx[rows, in] (=, or += when accumulate) the gradient of the whole Linear's output y with respect to x, base
 * path included (skipped when dx is NULL); accumulates dA, dB and dm. x is the forward input. */
void pc_dora_backward(pc_lora *l, float *dx, bool accumulate, const float *dy, const float *x,
                      const pc_base_weight *w, int rows);

#endif
