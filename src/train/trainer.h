/* The Trainer: TrainingArguments semantics over a PEFT model (peft_facts.md §8).
 * The library reports through callbacks and never prints. */
#ifndef PC_TRAIN_TRAINER_H
#define PC_TRAIN_TRAINER_H

#include <cJSON.h>
#include <signal.h>

#include "base/error.h"
#include "models/peft_model.h"
#include "text/tokenizer.h"
#include "train/batches.h"
#include "train/config.h"
#include "train/memory.h"

typedef struct pc_progress {
    long step, max_steps;
    double loss;               /* mean loss since the last progress report */
    double learning_rate;
    double tokens_per_second;  /* padded tokens through forward+backward per wall second */
    double eta_seconds;
    double epoch;
} pc_progress;

typedef struct pc_trainer_hooks {
    void (*on_message)(void *ud, const char *text);          /* e.g. the trainable-parameters line */
    void (*on_log)(void *ud, const cJSON *entry);             /* one log_history entry */
    void (*on_progress)(void *ud, const pc_progress *p);      /* after each optimizer step */
    void *ud;
    /* Set (e.g. by a SIGINT handler) to stop after the current optimizer step with a checkpoint;
     * pc_train then returns PEFTC_ERR_INTERRUPTED with the resume command in the message. */
    volatile sig_atomic_t *stop_requested;
} pc_trainer_hooks;

typedef struct pc_eval_result {
    double loss;               /* mean cross-entropy per example (SEQ_CLS) or per target token (causal LM) */
    double accuracy;           /* SEQ_CLS; NaN for causal LMs */
    double perplexity;         /* exp(loss) */
    int n;
} pc_eval_result;

typedef struct pc_train_result {
    long global_step;
    double train_loss;         /* mean over all optimizer steps */
    double runtime_seconds;
    double tokens_per_second;
    pc_eval_result eval_before, eval_after;   /* when a validation_file is given (n = 0 otherwise) */
    pc_memory_estimate memory;                /* made before the first step (and all that dry_run does) */
} pc_train_result;

/* Runs a whole training job as configured: loads model, tokenizer, data and
 * adapter, trains, evaluates, and writes the adapter and trainer_state.json to
 * output_dir (and checkpoint-N/ per save_strategy). */
pc_status pc_train(const pc_config *cfg, const pc_trainer_hooks *hooks, pc_train_result *result, pc_error *err);

/* Evaluation over an encoded dataset with labels. */
pc_status pc_evaluate(pc_model *m, const pc_encoded *data, int batch_size, int32_t pad_id, pc_eval_result *out,
                      pc_error *err);

/* The id batches are padded with: pad token, else EOS, else 0. */
int32_t pc_padding_id(const pc_tokenizer *tok);

/* Loads model_name_or_path (with cfg's labels) and, when given, adapter_name_or_path. */
pc_status pc_load_for_inference(const pc_config *cfg, pc_model **model, pc_peft_model **peft, pc_tokenizer **tok,
                                pc_error *err);

#endif
