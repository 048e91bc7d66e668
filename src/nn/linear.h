/* The one place where PEFT touches a model (DESIGN principle 3): a Linear is a
 * base weight W [out, in] as nn.Linear stores it, an optional bias, and an
 * optional LoRA or DoRA adapter. W and the bias are frozen unless made trainable
 * (modules_to_save heads, bias="all"); frozen weights get no weight gradient.
 * W under an adapter is always frozen. */
#ifndef PC_NN_LINEAR_H
#define PC_NN_LINEAR_H

#include <stdbool.h>

#include "base/error.h"
#include "base/rng.h"
#include "kernels/gemm4.h"
#include "kernels/pgemm.h"
#include "peft/lora.h"

/* Scratch shared by the Linears of one model (one Linear runs at a time): the fused 4-bit products' buffer,
 * and the dropped-out input x_d of a DoRA branch with dropout (rows * in floats, pc_lora.xd). */
typedef struct pc_scratch {
    void *p;
    size_t bytes;
    float *xd;
    size_t xd_floats;
} pc_scratch;

void pc_scratch_free(pc_scratch *s);

typedef struct pc_linear {
    char name[160];     /* Hugging Face module name, e.g. "distilbert.transformer.layer.0.attention.q_lin" */
    int in, out;
    bool w_in_out;      /* W stored [in, out] (GPT-2's Conv1D; PEFT's fan_in_fan_out) instead of [out, in] */
    float *W, *b;       /* W may point into a read-only mmap while frozen */
    float *dW, *db;     /* non-NULL when W / b are trainable */
    pc_lora *lora;      /* NULL when no adapter sits on this Linear; DoRA when lora->m is set */
    pc_q4_weight *q4;   /* QLoRA: the frozen weight in 4 bits (W is then NULL), owned by the model */
    pc_q4_compute q4_compute;
    pc_scratch *scratch;/* the model's shared scratch (set by pc_linear_reserve) */
    pc_pack_dtype pack_dtype;    /* the frozen W's product type: F32 (default) or BF16 (training's bf16: true) */
    bool pack_f32;               /* pack an fp32 W even where OpenBLAS has AVX-512 kernels (training, see
                                  * train/trainer.c: faster, at the packed copies' memory) */
    pc_packed_weight *packed;    /* frozen W packed for kernels/pgemm at reserve; NULL when trainable or 4-bit */
} pc_linear;

/* The frozen base weight as the adapter code sees it (f32 W or the 4-bit weight, with its scratch). */
pc_base_weight pc_linear_base(const pc_linear *lin);

/* Sizes the per-step buffers (adapter state, 4-bit scratch) for `rows` rows; no allocation happens in steps.
 * The first call also packs a frozen f32 W (lin->dW NULL) in lin->pack_dtype for kernels/pgemm (fp32 only
 * when lin->pack_f32 is set or OpenBLAS lacks its AVX-512 kernels: pc_gemm_openblas_avx512): the products
 * then read the packed copy only, and W's pages are offered back to the kernel (MADV_PAGEOUT; an mmap'd
 * checkpoint is re-read from the file if W is touched again, anonymous memory without swap stays). */
pc_status pc_linear_reserve(pc_linear *lin, int rows, pc_scratch *scratch, pc_error *err);

/* After W was swapped for another buffer (merging): packs the new W when the old one was packed. On failure the
 * Linear stays unpacked (products on OpenBLAS), which is correct too. */
pc_status pc_linear_repack(pc_linear *lin, pc_error *err);

/* Frees the packed weight (the model's destroy; W itself belongs to the model). */
void pc_linear_release(pc_linear *lin);

/* y[rows, out] = x W^T + b (+ LoRA branch, or the DoRA terms of peft/dora.h). */
void pc_linear_forward(pc_linear *lin, float *y, const float *x, int rows, bool training, pc_rng *rng);
/* dx[rows, in] (=, or += when accumulate) dy W + the LoRA branch's input gradient (with DoRA: the input gradient
 * of the whole rescaled output); skipped when dx is NULL.
 * Accumulates dW, db and the adapter's gradients. x is the forward input. */
void pc_linear_backward(pc_linear *lin, float *dx, bool accumulate, const float *dy, const float *x, int rows);

#endif
