/* A model as the trainer sees it: a forward that returns the loss, a backward
 * that fills gradients, and the list of its Linears and norms by their Hugging
 * Face module names so that PEFT can put adapters on them. Each architecture
 * (models/distilbert.c, ...) fills in the operations. */
#ifndef PC_MODELS_MODEL_H
#define PC_MODELS_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "base/rng.h"
#include "nn/linear.h"

typedef enum { PC_TASK_SEQ_CLS, PC_TASK_CAUSAL_LM } pc_task;

/* One padded batch (right padding). labels may be NULL (inference). */
typedef struct pc_batch {
    int B, T;
    const int32_t *input_ids;        /* [B, T] */
    const uint8_t *attention_mask;   /* [B, T], 1 = real token */
    const int32_t *labels;           /* SEQ_CLS: [B] class ids; CAUSAL_LM: [B, T] token ids or -100 (unshifted) */
} pc_batch;

/* A normalisation layer's affine parameters (LayerNorm weight/bias). */
typedef struct pc_norm {
    char name[160];                  /* module name, e.g. "distilbert.embeddings.LayerNorm" */
    int dim;
    float *w, *b;
    float *dw, *db;                  /* non-NULL when trainable */
} pc_norm;

/* A parameter outside the Linears and norms (embeddings), listed so the model can be written back. */
typedef struct pc_named_tensor {
    char name[160];
    const float *data;
    int ndim;
    int64_t shape[2];
    bool mapped;                     /* used in place from the mapped checkpoint: resident only where read */
} pc_named_tensor;

typedef struct pc_model pc_model;
struct pc_safetensors;

typedef struct pc_model_ops {
    /* Sizes the activation buffers for batches up to B x T (no allocation during steps). */
    pc_status (*reserve)(pc_model *m, int B, int T, pc_error *err);
    /* Runs the model; fills m->logits ([B, num_labels], or [B, T, vocab] for a causal LM; with labels, a causal
     * LM's logits are only the n_loss_tokens rows that have a target, in order: models/causal_lm.h);
     * *loss = mean cross-entropy over the counted labels (m->n_loss_tokens of them) when labels are given. */
    pc_status (*forward)(pc_model *m, const pc_batch *batch, bool training, float *loss, pc_error *err);
    /* Back-propagates d(objective)/d(loss) = dloss through the last forward, accumulating gradients
     * (dloss = 1/gradient_accumulation_steps when micro-batches are accumulated). A causal LM's logits become
     * their gradient (its head keeps no separate probability matrix). */
    void (*backward)(pc_model *m, const pc_batch *batch, float dloss);
    void (*destroy)(pc_model *m);
    /* Causal LMs only (NULL otherwise): incremental decoding with a KV cache of up to max_ctx positions.
     * decode() feeds n new tokens after the cached ones and leaves the last token's logits in m->logits. */
    pc_status (*cache_reset)(pc_model *m, int max_ctx, pc_error *err);
    pc_status (*decode)(pc_model *m, const int32_t *ids, int n, pc_error *err);
} pc_model_ops;

struct pc_model {
    const pc_model_ops *ops;
    pc_task task;
    char architecture[64];           /* e.g. "DistilBertForSequenceClassification" */
    char model_type[32];             /* config.json model_type, e.g. "distilbert" */
    int num_labels;
    char **id2label;                 /* num_labels names */
    int vocab_size, max_positions;
    int64_t n_base_params;           /* every parameter of the base model (PEFT's all-params count starts here) */
    pc_linear **linears;             /* every Linear, in module order */
    pc_scratch scratch;              /* shared by the Linears: 4-bit products, LoRA dropout input */
    int n_linears;
    pc_norm **norms;                 /* every LayerNorm / RMSNorm */
    int n_norms;
    const char *output_linear;       /* module name of the output head ("lm_head", "classifier"): never in "all-linear" */
    int default_targets_n;           /* PEFT's default target_modules for this model type */
    const char *default_targets[4];
    int bos_token_id, eos_token_id;  /* from config.json, -1 when absent */
    int checkpoint_dtype;            /* pc_dtype holding most of the checkpoint's parameters (F32, BF16, F16) */
    pc_named_tensor extra_tensors[4];/* embeddings etc., by their module names */
    int token_embedding;             /* index in extra_tensors of the table rows are looked up from by token id */
    int n_extra_tensors;
    float *logits;                   /* after forward: [B, num_labels] or [B, T, vocab_size] (see forward; a causal
                                      * LM's backward overwrites them with their gradient) */
    long n_loss_tokens;              /* labels counted by the last forward's loss */
    pc_rng dropout_rng;              /* the "dropout" stream */
    float neftune_noise_alpha;       /* > 0: NEFTune noise on the input embeddings in training */
    bool gradient_checkpointing;     /* keep only block outputs; recompute each block in backward (set before reserve) */
    int checkpoint_kept_blocks;      /* with checkpointing: blocks that keep their MLP's products instead (Llama; before reserve) */
    size_t activation_bytes;         /* what the last reserve() allocated for activations (allocated, not yet touched) */
    size_t kept_block_bytes;         /* after reserve: what each kept block adds to activation_bytes, */
    int keepable_blocks;             /* and how many blocks can keep (0 without checkpointing) */
    pc_rng neftune_rng;              /* the "neftune" stream */
    void *impl;
};

/* Options a caller may impose over config.json (as from_pretrained(..., id2label=...)). */
typedef struct pc_model_options {
    int num_labels;                  /* 0: from config.json (id2label), else 2 */
    char *const *id2label;           /* NULL: from config.json, else "LABEL_i" */
    uint64_t seed;                   /* for weights missing from the checkpoint (new heads) */
} pc_model_options;

/* Loads DIR/config.json + safetensors and dispatches on model_type. */
pc_status pc_model_load(const char *dir, const pc_model_options *opts, pc_model **out, pc_error *err);
pc_linear *pc_model_find_linear(const pc_model *m, const char *name);
/* Lists a non-module parameter (called by the model implementations at load). */
/* Lists an extra tensor; st: the checkpoint it may be mapped from (or NULL). */
void pc_model_add_extra_tensor(pc_model *m, const char *name, const float *data, int64_t rows, int64_t cols,
                               const struct pc_safetensors *st);
void pc_model_free(pc_model *m);

/* How the frozen Linears' products run in training (read at pc_linear_reserve). bf16: every frozen fp32 weight
 * packed in bf16 (training's bf16: true). Otherwise fp32 on our packed kernels (kernels/pgemm: faster than
 * OpenBLAS's AVX-512 sgemm on all but one of bench_gemm's training shapes, 15-20 % over a DistilBERT step)
 * while the frozen fp32 weights come to at most budget_bytes (the packed copies, one per direction, take
 * twice a weight's memory in its place) and no Linear is 4-bit (QLoRA is chosen to save memory); past that
 * the products stay on OpenBLAS where it has AVX-512 kernels. The Trainer's budget is PC_PACK_F32_BUDGET:
 * DistilBERT-base (170 MB of Linear weights) is packed, a 1B model in fp32 (4 GB) is not. */
#define PC_PACK_F32_BUDGET (1024.0 * 1024 * 1024)
void pc_model_choose_packing(pc_model *m, bool bf16, double budget_bytes);

#endif
