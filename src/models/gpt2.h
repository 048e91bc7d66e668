/* GPT-2 (transformers' GPT2LMHeadModel). */
#ifndef PC_MODELS_GPT2_H
#define PC_MODELS_GPT2_H

#include "formats/safetensors.h"
#include "models/model.h"

typedef struct pc_gpt2_config {
    int n_embd, n_layer, n_head, vocab_size, n_positions, n_inner;
    float eps;                                   /* layer_norm_epsilon */
    float resid_pdrop, embd_pdrop, attn_pdrop;
    int bos_token_id, eos_token_id;
} pc_gpt2_config;

/* Reads config.json with GPT2Config's defaults. */
pc_status pc_gpt2_config_load(const char *path, pc_gpt2_config *c, pc_error *err);

/* Builds the model over an opened checkpoint (takes ownership of st, also on failure). */
pc_status pc_gpt2_load(const char *dir, const pc_gpt2_config *cfg, pc_safetensors *st, const pc_model_options *opts,
                       pc_model **out, pc_error *err);

#endif
