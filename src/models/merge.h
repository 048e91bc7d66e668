/* merge_and_unload: adapters folded into the base weights, and the model written
 * back as a Hugging Face directory. */
#ifndef PC_MODELS_MERGE_H
#define PC_MODELS_MERGE_H

#include "formats/safetensors.h"
#include "models/peft_model.h"
#include "models/quantized.h"

/* What pc_peft_merge changed, so pc_peft_unmerge can restore the base weights exactly. */
typedef struct pc_merge_state {
    int n;
    pc_linear **linears;
    float **original;              /* the base weights as they were (never modified) */
    float **merged;                /* owned merged weights */
    pc_lora **adapters;
    pc_q4_weight **q4;             /* a 4-bit base is dequantized for the merge (PEFT's recommended path) */
} pc_merge_state;

/* W <- W + s·(B A) (transposed for fan_in_fan_out) on every adapted Linear, as PEFT's merge;
 * the adapters are then bypassed until pc_peft_unmerge. */
pc_status pc_peft_merge(pc_peft_model *p, pc_merge_state *st, pc_error *err);
/* Restores the original base weights (bit-exact) and re-enables the adapters. */
void pc_peft_unmerge(pc_merge_state *st);

/* Writes every parameter of m (embeddings, Linears, norms; a tied head once) to path as
 * safetensors in dtype (PC_DT_F32 or PC_DT_BF16 / PC_DT_F16, rounded to nearest even);
 * 4-bit Linears are dequantized (a full-precision model). */
pc_status pc_model_save_weights(const pc_model *m, const char *path, pc_dtype dtype, pc_error *err);
/* A bitsandbytes 4-bit model: 4-bit Linears written as they are, every other Linear that o's rules
 * quantize quantized on the way out (peftc quantize, re-quantizing a merged QLoRA model). */
pc_status pc_model_save_weights_4bit(const pc_model *m, const char *path, pc_dtype dtype, const pc_quant_options *o,
                                     pc_error *err);

#endif
