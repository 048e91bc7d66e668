/* LoRA (Hu et al. 2021) on one linear map, as PEFT implements it:
 *   y = base(x) + s * (dropout(x) A^T) B^T,   A: [r, in], B: [out, r],
 *   s = alpha / r, or alpha / sqrt(r) with rsLoRA (Kalajdzievski 2023).
 * This file knows nothing of models: it holds the adapter state and the math
 * on plain row-major buffers. nn/linear calls it. */
#ifndef PC_PEFT_LORA_H
#define PC_PEFT_LORA_H

#include <stdbool.h>

#include "base/error.h"
#include "base/rng.h"

typedef enum { PC_LORA_INIT_DEFAULT, PC_LORA_INIT_GAUSSIAN, PC_LORA_INIT_NONE } pc_lora_init;

typedef struct pc_lora {
    int in, out, r;
    float scaling;
    float dropout;      /* probability p on the LoRA branch input */
    float *A, *dA;      /* [r, in] */
    float *B, *dB;      /* [out, r] */
    /* Per-step saved state, sized by pc_lora_reserve for `rows` rows. */
    int cap_rows;
    float *h;           /* [rows, r]   = x_d A^T */
    float *mask;        /* [rows, in]  dropout mask (0 or 1/(1-p)), only when dropout > 0 */
    float *xd;          /* [rows, in]  scratch: the dropped-out input */
    bool last_dropout;  /* whether the last forward applied dropout */
} pc_lora;

/* Scaling factor s of a LoRA adapter. */
float pc_lora_scaling(double alpha, int r, bool use_rslora);

/* Allocates A, B and their gradients, initialised as PEFT's init_lora_weights:
 * DEFAULT (true): A ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform a=sqrt(5)), B = 0;
 * GAUSSIAN: A ~ N(0, 1/r), B = 0;  NONE (false): A as DEFAULT, B ~ U(-1/sqrt(r), 1/sqrt(r)). */
pc_status pc_lora_create(pc_lora *l, int in, int out, int r, float scaling, float dropout,
                         pc_lora_init init, pc_rng *rng, pc_error *err);
/* Makes sure the per-step buffers hold `rows` rows. */
pc_status pc_lora_reserve(pc_lora *l, int rows, pc_error *err);
void pc_lora_free(pc_lora *l);

/* y[rows, out] += s * (x_d A^T) B^T. training: dropout on (p > 0 draws a fresh mask from rng). */
void pc_lora_forward(pc_lora *l, float *y, const float *x, int rows, bool training, pc_rng *rng);
/* Given dy, accumulates dA, dB and adds the LoRA branch's input gradient to dx (dx may be NULL).
 * Uses the state saved by the last forward on the same x. */
void pc_lora_backward(pc_lora *l, float *dx, const float *dy, const float *x, int rows);

#endif
