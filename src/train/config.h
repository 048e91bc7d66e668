/* The run configuration in the user's vocabulary: one flat struct whose field
 * names are those of PEFT's LoraConfig, transformers' TrainingArguments and
 * BitsAndBytesConfig, plus the data keys. Defaults are the Python stack's.
 *
 * Use: pc_config_init -> pc_config_load_json (a flat JSON object) and/or
 * pc_config_set (one --key value from the command line) -> pc_config_validate.
 * After a failed load/set the struct holds a partial update; free it as usual.
 * pc_config_free releases everything; string defaults are static literals that
 * the free routine recognises, so fields must only be changed through these
 * functions. */
#ifndef PC_TRAIN_CONFIG_H
#define PC_TRAIN_CONFIG_H

#include <stdbool.h>
#include <cJSON.h>

#include "base/error.h"

typedef struct pc_config {
    /* data / model */
    char *model_name_or_path, *adapter_name_or_path, *train_file, *validation_file;
    char *text_column;             /* "text" */
    char *label_column;            /* "label" */
    char *output_dir;              /* "trainer_output" */
    char *task_type;               /* "SEQ_CLS" | "CAUSAL_LM" */
    int max_length;                /* 0 = the tokenizer's model max */
    char **id2label;               /* NULL, or num_labels names indexed by label id */
    int num_labels;                /* 2 unless num_labels, id2label or label2id say otherwise */

    /* LoRA (LoraConfig) */
    int r;                         /* 8 */
    double lora_alpha;             /* 8 */
    /* target_modules: n_target_modules == 0 and !target_modules_is_regex means the
     * architecture's default map; a list matches names equal to or ending in
     * ".<entry>"; the single entry "all-linear" is PEFT's shorthand for every
     * Linear but the output layer; target_modules_is_regex means
     * target_modules_regex must re.fullmatch the whole module name. */
    char **target_modules;
    int n_target_modules;
    bool target_modules_is_regex;
    char *target_modules_regex;
    double lora_dropout;           /* 0 */
    char *bias;                    /* "none" | "all" | "lora_only" */
    bool use_rslora, use_dora, fan_in_fan_out;
    char *init_lora_weights;       /* "true" | "false" | "gaussian" */
    char **modules_to_save;
    int n_modules_to_save;

    /* Trainer (TrainingArguments) */
    double learning_rate;          /* 5e-5 */
    double weight_decay;           /* 0 */
    double adam_beta1, adam_beta2, adam_epsilon;   /* 0.9, 0.999, 1e-8 */
    double max_grad_norm;          /* 1.0; 0 disables clipping */
    double warmup_ratio;           /* 0 */
    double num_train_epochs;       /* 3 */
    double neftune_noise_alpha;    /* 0 = off */
    char *lr_scheduler_type;       /* linear | constant | cosine | constant_with_warmup */
    char *optim;                   /* "adamw_torch" */
    char *eval_strategy;           /* "no" | "steps" | "epoch" */
    char *save_strategy;           /* "steps" | "no" | "epoch" */
    int warmup_steps;              /* 0 */
    int max_steps;                 /* -1: use num_train_epochs */
    int per_device_train_batch_size, per_device_eval_batch_size;   /* 8, 8 */
    int gradient_accumulation_steps;                               /* 1 */
    int logging_steps;             /* 500 */
    int eval_steps;                /* 0 = logging_steps */
    int save_steps;                /* 500 */
    int save_total_limit;          /* 0 = unlimited */
    char *resume_from_checkpoint;  /* NULL, a checkpoint directory, or "true" for output_dir's newest */
    int max_consecutive_nonfinite_steps;  /* peftc: stop after this many skipped (NaN/Inf) steps in a row (5) */
    int max_memory_mb;             /* peftc: memory the run may use (0: MemAvailable / the cgroup limit) */
    int gradient_checkpointing_kept_blocks; /* peftc: with checkpointing, blocks keeping their MLP's products
                                             * (-1: as many as max_memory_mb allows) */
    bool dry_run;                  /* peftc: estimate the peak memory (pc_train_result.memory) and stop before training */
    int seed;                      /* 42 */
    int threads;                   /* peftc: worker threads (0: OMP_NUM_THREADS, else every core) */
    bool profile;                  /* peftc: time each phase and op kind of the training steps */
    bool logging_first_step, shuffle, gradient_checkpointing, dataloader_drop_last;

    /* SFT data (TRL's SFTConfig) and generation (GenerationConfig) */
    bool packing;                  /* false: concatenate examples and cut max_length blocks when true */
    bool completion_only_loss;     /* true: loss only on the completion of prompt/completion rows */
    char *prompt;                  /* generate: the prompt text (NULL = BOS alone) */
    int max_new_tokens;            /* 64 */
    bool do_sample;                /* sampling; also implied by temperature > 0 */
    double temperature, top_p;     /* 0 (greedy; 1.0 when do_sample alone), 1.0 */
    int top_k;                     /* 50 */

    /* BitsAndBytesConfig and precision: stored; the run decides what it supports */
    bool load_in_4bit;
    char *bnb_4bit_quant_type;     /* "fp4" (BitsAndBytesConfig's default; QLoRA uses "nf4") */
    bool bnb_4bit_use_double_quant;
    char *bnb_4bit_compute_dtype;  /* "float32" | "bfloat16" | "float16" */
    char **llm_int8_skip_modules;  /* Linears kept in full precision besides the output head */
    int n_llm_int8_skip_modules;
    bool bf16;

    /* Python keys accepted without effect (report_to, run_name, ...): an object
     * of key -> value as given, or NULL; written back by pc_config_to_json. */
    cJSON *ignored;
    bool num_labels_given;         /* num_labels was set explicitly */
} pc_config;

void pc_config_init(pc_config *c);
void pc_config_free(pc_config *c);

/* Applies every key of the flat JSON object in path. Keys are the field names;
 * errors name the file and key (unknown keys get a "did you mean" suggestion). */
pc_status pc_config_load_json(pc_config *c, const char *path, pc_error *err);

/* Applies one key given as text (--key value). Numbers and booleans (true/false/1/0)
 * are parsed by the field's type; a NULL value means true for a boolean key.
 * Lists take a JSON array or a comma list. target_modules: a JSON string
 * ('"regex"') is a regex, "all-linear" the shorthand. id2label: a JSON object or
 * a comma list of names in id order; label2id: a JSON object. origin names the
 * source in messages, e.g. "command line". */
pc_status pc_config_set(pc_config *c, const char *key, const char *value, const char *origin,
                        pc_error *err);

/* Checks ranges and names; the message names the key at fault. */
pc_status pc_config_validate(const pc_config *c, pc_error *err);

/* Every key with its value (the form pc_config_load_json reads back). */
pc_status pc_config_to_json(const pc_config *c, cJSON **out, pc_error *err);

#endif
