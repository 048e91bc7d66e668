/* The one place where PEFT touches a model (DESIGN principle 3): a Linear is a
 * base weight W [out, in] as nn.Linear stores it, an optional bias, and an
 * optional LoRA adapter. W and the bias are frozen unless made trainable
 * (modules_to_save heads, bias="all"); frozen weights get no weight gradient. */
#ifndef PC_NN_LINEAR_H
#define PC_NN_LINEAR_H

#include <stdbool.h>

#include "base/rng.h"
#include "peft/lora.h"

typedef struct pc_linear {
    char name[160];     /* Hugging Face module name, e.g. "distilbert.transformer.layer.0.attention.q_lin" */
    int in, out;
    bool w_in_out;      /* W stored [in, out] (GPT-2's Conv1D; PEFT's fan_in_fan_out) instead of [out, in] */
    float *W, *b;       /* W may point into a read-only mmap while frozen */
    float *dW, *db;     /* non-NULL when W / b are trainable */
    pc_lora *lora;      /* NULL when no adapter sits on this Linear */
} pc_linear;

/* y[rows, out] = x W^T + b (+ LoRA branch). */
void pc_linear_forward(pc_linear *lin, float *y, const float *x, int rows, bool training, pc_rng *rng);
/* dx[rows, in] (=, or += when accumulate) dy W + the LoRA branch's input gradient; skipped when dx is NULL.
 * Accumulates dW, db and the adapter's gradients. x is the forward input. */
void pc_linear_backward(pc_linear *lin, float *dx, bool accumulate, const float *dy, const float *x, int rows);

#endif
