/* QLoRA's frozen 4-bit base weights at the model level (peft_facts.md §6): quantizing a
 * loaded model (load_in_4bit), loading and writing bitsandbytes' serialized 4-bit Linears. */
#ifndef PC_MODELS_QUANTIZED_H
#define PC_MODELS_QUANTIZED_H

#include "formats/safetensors.h"
#include "kernels/gemm4.h"
#include "models/model.h"

typedef struct pc_quant_options {
    pc_q4_type type;               /* bnb_4bit_quant_type */
    bool double_quant;             /* bnb_4bit_use_double_quant */
    pc_q4_compute compute;         /* bnb_4bit_compute_dtype: float32 or bfloat16 */
    char **skip;                   /* llm_int8_skip_modules (and modules_to_save), by name suffix */
    int n_skip;
} pc_quant_options;

/* Quantizes every Linear except the output head, trainable ones and o->skip, as transformers'
 * replace_with_bnb_linear; their full-precision weights are dropped. */
pc_status pc_model_quantize_4bit(pc_model *m, const pc_quant_options *o, pc_error *err);
void pc_model_free_4bit(pc_model *m);
/* Whether transformers' rules keep this Linear in full precision under o. */
bool pc_quant_keeps_full_precision(const pc_model *m, const pc_linear *lin, const pc_quant_options *o);
/* A 4-bit copy of lin's full-precision weight (lin unchanged); *out is allocated. */
pc_status pc_linear_quantize_copy(const pc_linear *lin, const pc_quant_options *o, pc_q4_weight **out, pc_error *err);

/* Whether a checkpoint stores `module` as a bitsandbytes 4-bit weight. */
bool pc_checkpoint_has_4bit(const pc_safetensors *st, const char *module);
/* Loads module's 4-bit weight (lin->in/out set) from a pre-quantized checkpoint into lin->q4. */
pc_status pc_linear_load_4bit(const pc_safetensors *st, const char *module, pc_linear *lin, pc_q4_compute compute,
                              pc_error *err);
/* Appends lin's bitsandbytes tensors (weight, absmax, quant_map, nested_*, quant_state) to items;
 * names and *state_json are allocated (caller frees). */
pc_status pc_q4_items(const pc_linear *lin, pc_st_item *items, int *n, int cap, char **names, char **state_json,
                      pc_error *err);

#endif
