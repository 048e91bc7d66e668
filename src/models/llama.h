/* Llama-family causal LMs (transformers' LlamaForCausalLM). */
#ifndef PC_MODELS_LLAMA_H
#define PC_MODELS_LLAMA_H

#include <stdbool.h>

#include "formats/safetensors.h"
#include "models/model.h"
#include "nn/rope.h"

typedef struct pc_llama_config {
    int hidden, intermediate, n_layers, n_heads, n_kv_heads, head_dim, vocab_size, max_positions;
    float rms_norm_eps;
    double rope_theta;
    bool has_rope_scaling;
    pc_rope_scaling rope_scaling;    /* llama3 type */
    bool tie_word_embeddings;
    int bos_token_id, eos_token_id;  /* -1 when absent */
} pc_llama_config;

/* Reads config.json with LlamaConfig's defaults. */
pc_status pc_llama_config_load(const char *path, pc_llama_config *c, pc_error *err);

/* Builds the model over an opened checkpoint (takes ownership of st, also on failure). */
pc_status pc_llama_load(const char *dir, const pc_llama_config *cfg, pc_safetensors *st, const pc_model_options *opts,
                        pc_model **out, pc_error *err);

#endif
