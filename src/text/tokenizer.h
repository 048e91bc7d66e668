/* Tokenizers of Hugging Face model directories. One opaque handle for every kind; the
 * kind decides the normalizer, pre-tokenizer and model behind pc_tokenizer_encode.
 * Kinds so far: WordPiece (BERT, DistilBERT) from tokenizer.json or vocab.txt. */
#ifndef PC_TEXT_TOKENIZER_H
#define PC_TEXT_TOKENIZER_H

#include "base/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pc_tokenizer pc_tokenizer;

typedef enum pc_tokenizer_kind {
    PC_TOKENIZER_WORDPIECE = 1,
} pc_tokenizer_kind;

/* Loads DIR/tokenizer.json when present (model "WordPiece" with a BertNormalizer, the
 * BertPreTokenizer, a TemplateProcessing or BertProcessing post-processor and its
 * added_tokens; truncation and padding settings are ignored), else DIR/vocab.txt with
 * DIR/tokenizer_config.json (do_lower_case, strip_accents, tokenize_chinese_chars,
 * model_max_length, unk/cls/sep/pad/mask tokens). tokenizer_config.json, when present,
 * also gives model_max_length (default 512) and the special-token names to a
 * tokenizer.json. Another model, normalizer, pre-tokenizer or post-processor type is
 * PEFTC_ERR_UNSUPPORTED naming it. */
pc_status pc_tokenizer_load(const char *dir, pc_tokenizer **out, pc_error *err);
void pc_tokenizer_free(pc_tokenizer *t);

/* Encodes text[0..len) (UTF-8; invalid UTF-8 is PEFTC_ERR_FORMAT "invalid UTF-8 at byte
 * N"). add_special wraps the ids as the post-processor says ([CLS] ... [SEP]).
 * max_length > 0 truncates to at most max_length ids in all, the special ones included
 * (Hugging Face truncation=True: the first ids are kept, the closing [SEP] stays);
 * max_length 0 means model_max_length. *ids is malloc'ed (caller frees; NULL when
 * *n_ids is 0). Thread-safe: several threads may encode with one tokenizer. */
pc_status pc_tokenizer_encode(const pc_tokenizer *t, const char *text, size_t len, bool add_special, int max_length,
                              int32_t **ids, int *n_ids, pc_error *err);

pc_tokenizer_kind pc_tokenizer_get_kind(const pc_tokenizer *t);
/* The token of id (added tokens included), or NULL when id is out of range or unused. */
const char *pc_tokenizer_id_to_token(const pc_tokenizer *t, int32_t id);
/* Id of a token string (added tokens first, then the model's vocabulary), or -1. */
int32_t pc_tokenizer_token_to_id(const pc_tokenizer *t, const char *token);
/* 1 + the largest id, added tokens included (the embedding rows the model needs). */
int pc_tokenizer_vocab_size(const pc_tokenizer *t);
/* Ids of the special tokens, -1 when the tokenizer has none. */
int32_t pc_tokenizer_pad_id(const pc_tokenizer *t);
int32_t pc_tokenizer_cls_id(const pc_tokenizer *t);
int32_t pc_tokenizer_sep_id(const pc_tokenizer *t);
int32_t pc_tokenizer_unk_id(const pc_tokenizer *t);
int32_t pc_tokenizer_mask_id(const pc_tokenizer *t);
int pc_tokenizer_model_max_length(const pc_tokenizer *t);

/* Writes DIR/vocab.txt and DIR/tokenizer_config.json so that pc_tokenizer_load(DIR)
 * gives back the same tokenizer (DIR must exist). PEFTC_ERR_UNSUPPORTED when vocab.txt
 * cannot express it (not WordPiece, clean_text off, another continuation prefix or
 * word limit, a post-processor other than [CLS] A [SEP], added tokens beyond the five
 * special ones, ids with gaps). */
pc_status pc_tokenizer_save_wordpiece(const pc_tokenizer *t, const char *dir, pc_error *err);

/* BOS / EOS ids (-1 when the tokenizer has none) and decoding (ids -> text, malloc'ed). */
int32_t pc_tokenizer_bos_id(const pc_tokenizer *t);
int32_t pc_tokenizer_eos_id(const pc_tokenizer *t);
pc_status pc_tokenizer_decode(const pc_tokenizer *t, const int32_t *ids, int n, bool skip_special, char **text,
                              pc_error *err);

#endif
