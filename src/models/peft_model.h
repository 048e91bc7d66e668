/* A base model with PEFT applied: LoRA adapters on the targeted Linears,
 * trainable copies of modules_to_save, trainable biases per `bias`, and the
 * list of trainable tensors under the names PEFT saves them with. */
#ifndef PC_MODELS_PEFT_MODEL_H
#define PC_MODELS_PEFT_MODEL_H

#include "base/param.h"
#include "models/model.h"
#include "models/model_util.h"
#include "peft/lora_config.h"

typedef struct pc_peft_model {
    pc_model *base;                  /* not owned */
    pc_lora_config config;           /* owned */
    pc_lora *adapters;               /* one per targeted Linear */
    int n_adapters;
    pc_param_list trainable;
    pc_owned owned;                  /* trainable copies and gradients */
    int64_t n_trainable, n_all;      /* as PEFT's print_trainable_parameters counts them */
} pc_peft_model;

/* Applies cfg (moved into the result, also on failure) to m. A target_modules entry
 * that matches no Linear is an error naming it. */
pc_status pc_peft_model_create(pc_model *m, pc_lora_config *cfg, uint64_t seed, pc_peft_model **out, pc_error *err);
void pc_peft_model_free(pc_peft_model *p);

/* "trainable params: 739,586 || all params: 67,694,596 || trainable%: 1.0925" */
void pc_peft_trainable_line(const pc_peft_model *p, char *buf, size_t n);

/* Writes DIR/adapter_config.json and DIR/adapter_model.safetensors (PEFT's format), atomically:
 * both are staged as *.new and renamed together, so a failed write leaves the old pair whole. */
pc_status pc_peft_save(const pc_peft_model *p, const char *dir, pc_error *err);
/* Loads an adapter directory: its config applied to m, then its tensors (every key must match). */
pc_status pc_peft_load(pc_model *m, const char *dir, pc_peft_model **out, pc_error *err);
/* Loads only the tensors of DIR/adapter_model.safetensors into an existing peft model. */
pc_status pc_peft_load_weights(pc_peft_model *p, const char *dir, pc_error *err);

#endif
