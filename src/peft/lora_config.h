/* LoraConfig as PEFT defines it, adapter_config.json reading and writing, and
 * the rule that decides which modules get an adapter (peft_facts.md §1.2, §3.2). */
#ifndef PC_PEFT_LORA_CONFIG_H
#define PC_PEFT_LORA_CONFIG_H

#include <stdbool.h>

#include <cJSON.h>

#include "base/error.h"
#include "peft/lora.h"

typedef enum { PC_BIAS_NONE, PC_BIAS_ALL, PC_BIAS_LORA_ONLY } pc_lora_bias;

typedef struct pc_lora_config {
    char task_type[32];                /* "SEQ_CLS", "CAUSAL_LM", ... or "" */
    int r;
    double lora_alpha;
    double lora_dropout;
    char **target_modules;             /* list form (names matched as equal or ".name" suffix) */
    int n_target_modules;
    char *target_regex;                /* str form: re.fullmatch against the module name */
    bool all_linear;                   /* "all-linear" */
    pc_lora_bias bias;
    bool use_rslora, use_dora, fan_in_fan_out;
    pc_lora_init init_lora_weights;
    char **modules_to_save;            /* as saved: for SEQ_CLS it includes "classifier", "score" */
    int n_modules_to_save;
    char *base_model_name_or_path;
    void *compiled_regex;              /* pcre2_code for target_regex, after prepare */
} pc_lora_config;

void pc_lora_config_init(pc_lora_config *c);   /* LoraConfig() defaults */
void pc_lora_config_free(pc_lora_config *c);

/* Sets modules_to_save as get_peft_model does for SEQ_CLS: append "classifier", "score". */
pc_status pc_lora_config_add_task_modules(pc_lora_config *c, pc_error *err);

/* Whether LoRA targets this module name. pc_lora_config_prepare compiles the regex first. */
pc_status pc_lora_config_prepare(pc_lora_config *c, pc_error *err);
bool pc_lora_config_targets(const pc_lora_config *c, const char *module_name);
/* modules_to_save rule: plain suffix test (so "pre_classifier" matches "classifier"), as PEFT's _set_trainable. */
bool pc_lora_config_saves(const pc_lora_config *c, const char *module_name);

/* adapter_config.json */
pc_status pc_lora_config_load(pc_lora_config *c, const char *path, pc_error *err);
pc_status pc_lora_config_save(const pc_lora_config *c, const char *path, pc_error *err);

#endif
