/* A tokenized dataset and the batches cut from it: DataCollatorWithPadding
 * semantics (pad to the longest sequence of the batch, on the right, with the
 * tokenizer's pad id; attention_mask 0 on padding). */
#ifndef PC_TRAIN_BATCHES_H
#define PC_TRAIN_BATCHES_H

#include <stdint.h>

#include "base/error.h"
#include "base/rng.h"
#include "models/model.h"
#include "text/tokenizer.h"
#include "train/dataset.h"

typedef struct pc_encoded {
    int n;                     /* examples */
    int64_t *offsets;          /* n + 1: example i is ids[offsets[i] .. offsets[i+1]) */
    int32_t *ids;
    int32_t *labels;           /* n class labels (SEQ_CLS), or NULL */
    int32_t *token_labels;     /* causal LM: one label per id (-100 = no loss there), or NULL */
    int max_len;               /* longest example */
} pc_encoded;

/* Tokenizes every text (with [CLS]/[SEP], truncated to max_length). Errors name the file and row. */
pc_status pc_encode_dataset(const pc_tokenizer *tok, const pc_dataset *ds, int max_length, pc_encoded *out,
                            pc_error *err);
/* Tokenizes a list of texts (no labels). */
pc_status pc_encode_texts(const pc_tokenizer *tok, char *const *texts, int n, int max_length, pc_encoded *out,
                          pc_error *err);
/* Causal-LM examples as TRL's SFTTrainer builds them: text rows are tokenized (with the tokenizer's
 * BOS) and get EOS appended, loss on every token; prompt/completion rows are the prompt's tokens then the
 * completion's plus EOS, with labels -100 on the prompt when completion_only_loss. Each example is cut to
 * max_length; with packing, all examples are concatenated and cut into max_length blocks instead. */
pc_status pc_encode_lm_dataset(const pc_tokenizer *tok, const pc_dataset *ds, int max_length, bool packing,
                               bool completion_only_loss, pc_encoded *out, pc_error *err);
/* Loss targets of these examples after the causal shift (labels[t+1] != -100). */
long pc_count_targets(const pc_encoded *e, const int *order, int count);
void pc_encoded_free(pc_encoded *e);

/* Batch buffers sized for B rows of up to T tokens (labels up to B x T). */
typedef struct pc_batch_buf {
    int cap_B, cap_T;
    int32_t *ids, *labels;
    uint8_t *mask;
    pc_batch batch;
} pc_batch_buf;

pc_status pc_batch_buf_init(pc_batch_buf *bb, int B, int T, pc_error *err);
void pc_batch_buf_free(pc_batch_buf *bb);
/* Fills bb->batch with examples order[0..count) of e, padded with pad_id. */
const pc_batch *pc_collate(pc_batch_buf *bb, const pc_encoded *e, const int *order, int count, int32_t pad_id);

/* order[i] = i, or a seeded Fisher–Yates permutation when shuffle. */
void pc_epoch_order(int *order, int n, bool shuffle, pc_rng *rng);

#endif
