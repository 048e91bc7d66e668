/* LoRA (Hu et al. 2021) on one linear map, as PEFT implements it:
 *   y = base(x) + s * (dropout(x) A^T) B^T,   A: [r, in], B: [out, r],
 *   s = alpha / r, or alpha / sqrt(r) with rsLoRA (Kalajdzievski 2023).
 * This file knows nothing of models: it holds the adapter state and the math
 * on plain row-major buffers. nn/linear calls it. DoRA (peft/dora.h) is this
 * state plus a magnitude vector. */
#ifndef PC_PEFT_LORA_H
#define PC_PEFT_LORA_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "base/rng.h"
#include "kernels/gemm4.h"

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
    uint8_t *keep;      /* [rows, in]  dropout mask: 1 kept (scaled by 1/(1-p)), 0 dropped; only when dropout > 0 */
    /* [rows, in] scratch for the dropped-out input x_d, which only DoRA forms (pc_lora_dropped_input); not
     * owned: the caller points it at a buffer its adapters share (nn/linear: the model's pc_scratch). LoRA's
     * own products apply the mask as they read x, so only a byte per input stays per adapter between passes. */
    float *xd;
    bool last_dropout;  /* whether the last forward applied dropout */
    /* DoRA only (pc_dora_init; all NULL for plain LoRA). */
    float *m, *dm;      /* [out] magnitude vector and its gradient */
    double *wnorm2;     /* [out] squared row norms of the frozen base weight */
    float *norm;        /* [out] ||W + s B A|| per output row, from the last forward */
    float *c;           /* [out] m / norm, from the last forward */
    float *Bt, *dBt;    /* [r, out] scratch: B^T for kernels/thin (and DoRA's norms), the step's dB^T */
    float *z;           /* [rows, out] the rescaled part x_d W^T + s x_d A^T B^T of the last forward */
} pc_lora;

/* The frozen base weight an adapter sits on, as DoRA reads it: f32 W ([out, in] as nn.Linear stores it, or
 * [in, out] when w_in_out, PEFT's fan_in_fan_out), or a 4-bit q4 ([out, in]; W NULL) with its compute type
 * and the scratch its fused products run in. */
typedef struct pc_base_weight {
    const float *W;
    bool w_in_out;
    const pc_q4_weight *q4;
    pc_q4_compute q4_compute;
    const struct pc_packed_weight *packed;  /* W packed for kernels/pgemm, or NULL */
    void *scratch;
    size_t scratch_bytes;
} pc_base_weight;

/* Scaling factor s of a LoRA adapter. */
float pc_lora_scaling(double alpha, int r, bool use_rslora);

/* Allocates A, B and their gradients, initialised as PEFT's init_lora_weights:
 * DEFAULT (true): A ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform a=sqrt(5)), B = 0;
 * GAUSSIAN: A ~ N(0, 1/r), B = 0;  NONE (false): A as DEFAULT, B ~ U(-1/sqrt(r), 1/sqrt(r)). */
pc_status pc_lora_create(pc_lora *l, int in, int out, int r, float scaling, float dropout,
                         pc_lora_init init, pc_rng *rng, pc_error *err);
/* Makes sure the per-step buffers hold `rows` rows (xd excepted: it is the caller's, rows * in floats). */
pc_status pc_lora_reserve(pc_lora *l, int rows, pc_error *err);
void pc_lora_free(pc_lora *l);

/* The down projection h = x_d A^T of a forward, saved for backward; x_d = x, or dropout(x) when
 * training with p > 0 (fresh mask from rng, kept in l->keep). */
void pc_lora_down(pc_lora *l, const float *x, int rows, bool training, pc_rng *rng);
/* x_d of the last forward: x itself without dropout, else x * mask formed into l->xd. */
const float *pc_lora_dropped_input(pc_lora *l, const float *x, int rows);
/* y[rows, out] += s * (x_d A^T) B^T. training: dropout on (p > 0 draws a fresh mask from rng). */
void pc_lora_forward(pc_lora *l, float *y, const float *x, int rows, bool training, pc_rng *rng);
/* dx[rows, in] += g * mask of the last forward (which applied dropout). */
void pc_lora_apply_mask(const pc_lora *l, float *dx, const float *g, int rows);
/* Given dy, accumulates dA, dB and adds the LoRA branch's input gradient to dx (dx may be NULL).
 * Uses the state saved by the last forward on the same x. */
void pc_lora_backward(pc_lora *l, float *dx, const float *dy, const float *x, int rows);

/* n[o] = ||W_o + s (B A)_o||_2 for every output row o of the base weight (a 4-bit one dequantized), the sum
 * of squares in double. Bt: [r, out] scratch for an f32 W stored [in, out], unused otherwise. wnorm2 (may be
 * NULL): the squared row norms of W from pc_lora_row_norms2; rows whose B row is zero take its root without
 * reading W (the same value, bit for bit). */
void pc_lora_weight_norm(float *n, const pc_base_weight *w, int in, int out, const float *A, const float *B, int r,
                         float s, float *Bt, const double *wnorm2);
/* wnorm2[o] = ||W_o||^2, summed as pc_lora_weight_norm sums. */
void pc_lora_row_norms2(double *wnorm2, const pc_base_weight *w, int in, int out);

/* merge_and_unload for one Linear, in place on its f32 base weight W ([out, in] as nn.Linear, or
 * [in, out] when w_in_out, PEFT's fan_in_fan_out), as PEFT merges:
 *   LoRA (m NULL): W + s (B A)  (transposed for w_in_out);
 *   DoRA (m [out]): (m / ||W + s B A||) (W + s B A), the norm and the factor per output row.
 * Fails only when out of memory (w_in_out needs an [r, out] scratch). */
pc_status pc_lora_merge(float *W, bool w_in_out, int in, int out, const float *A, const float *B, int r, float s,
                        const float *m, pc_error *err);
/* Undoes a LoRA merge: W - s (B A) (transposed for w_in_out). */
pc_status pc_lora_unmerge(float *W, bool w_in_out, int in, int out, const float *A, const float *B, int r, float s,
                          pc_error *err);

#endif
