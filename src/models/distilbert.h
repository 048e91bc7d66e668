/* DistilBERT (transformers' DistilBertForSequenceClassification). */
#ifndef PC_MODELS_DISTILBERT_H
#define PC_MODELS_DISTILBERT_H

#include <stdbool.h>

#include "formats/safetensors.h"
#include "models/model.h"

typedef struct pc_distilbert_config {
    int dim, n_layers, n_heads, hidden_dim, vocab_size, max_position_embeddings, pad_token_id;
    float dropout, attention_dropout, seq_classif_dropout;
    bool sinusoidal_pos_embds;
    bool relu;                        /* activation "relu" instead of "gelu" */
    int num_labels;
    char **id2label;
} pc_distilbert_config;

/* Reads every field DistilBERT uses from config.json, with transformers' defaults. */
pc_status pc_distilbert_config_load(const char *path, pc_distilbert_config *c, pc_error *err);
void pc_distilbert_config_free(pc_distilbert_config *c);

/* Builds the model over an opened checkpoint; takes ownership of cfg's labels and of st (also on failure). */
pc_status pc_distilbert_load(const char *dir, const pc_distilbert_config *cfg, pc_safetensors *st,
                             const pc_model_options *opts, pc_model **out, pc_error *err);

/* Writes a complete Hugging Face model directory (config.json + model.safetensors) with
 * seeded random weights initialised as transformers does (N(0, 0.02), LayerNorm 1/0). */
pc_status pc_distilbert_write_random(const char *dir, const pc_distilbert_config *cfg, uint64_t seed, pc_error *err);

#endif
