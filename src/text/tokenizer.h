/* Tokenizers of Hugging Face model directories. One opaque handle for every kind; the
 * files decide the normalizer, pre-tokenizer, model, post-processor and decoder behind
 * pc_tokenizer_encode and pc_tokenizer_decode, with the results of Hugging Face tokenizers.
 * Kinds: WordPiece (BERT, DistilBERT) from tokenizer.json or vocab.txt; byte-level BPE
 * (GPT-2, Llama 3, Qwen2) and SentencePiece-style BPE (Llama 2, TinyLlama, Mistral) from
 * tokenizer.json. */
#ifndef PC_TEXT_TOKENIZER_H
#define PC_TEXT_TOKENIZER_H

#include "base/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pc_tokenizer pc_tokenizer;

typedef enum pc_tokenizer_kind {
    PC_TOKENIZER_WORDPIECE = 1,
    PC_TOKENIZER_BYTE_LEVEL_BPE = 2,     /* BPE on bytes: a ByteLevel pre-tokenizer (last in a Sequence) */
    PC_TOKENIZER_SENTENCEPIECE_BPE = 3,  /* BPE on characters, usually with byte_fallback and "▁" for spaces */
} pc_tokenizer_kind;

/* Loads DIR/tokenizer.json when present, else DIR/vocab.txt (WordPiece) with
 * DIR/tokenizer_config.json (do_lower_case, strip_accents, tokenize_chinese_chars).
 * tokenizer.json: model WordPiece or BPE (vocab, merges as "a b" or ["a", "b"],
 * unk_token, fuse_unk, byte_fallback, ignore_merges, continuing_subword_prefix,
 * end_of_word_suffix); normalizers BertNormalizer, Prepend, Replace, NFC/NFD/NFKC/NFKD,
 * Lowercase, Strip, Sequence; pre-tokenizers BertPreTokenizer, ByteLevel, Split (regexes
 * compiled with PCRE2 as given), Metaspace, Sequence; post-processors TemplateProcessing,
 * BertProcessing, RobertaProcessing, ByteLevel, Sequence; decoders ByteLevel, WordPiece,
 * Metaspace, Replace, ByteFallback, Fuse, Strip, Sequence; added_tokens. Truncation and
 * padding settings are ignored. Another type is PEFTC_ERR_UNSUPPORTED naming it; a merge
 * whose tokens are not in the vocabulary, or a bad regex, is PEFTC_ERR_FORMAT naming the file.
 * tokenizer_config.json, when present, gives model_max_length (default 512), the special
 * token names (unk/cls/sep/pad/mask/bos/eos_token; a null one means none; absent ones
 * default per kind: [UNK] [CLS] [SEP] [PAD] [MASK] for WordPiece, <|endoftext|> as unk, bos
 * and eos for byte-level BPE, <unk> <s> </s> for SentencePiece BPE), and add_bos_token /
 * add_eos_token, which put [bos] before and [eos] after the ids (or take them away) as
 * transformers' LlamaTokenizerFast does with its post-processor. */
pc_status pc_tokenizer_load(const char *dir, pc_tokenizer **out, pc_error *err);
void pc_tokenizer_free(pc_tokenizer *t);

/* Encodes text[0..len) (UTF-8; invalid UTF-8 is PEFTC_ERR_FORMAT "invalid UTF-8 at byte
 * N"). add_special wraps the ids as the post-processor says ([CLS] ... [SEP], <s> ...):
 * what Hugging Face's encode(text) gives by default.
 * max_length > 0 truncates to at most max_length ids in all, the special ones included
 * (Hugging Face truncation=True: the first ids are kept, the closing [SEP] stays);
 * max_length 0 means model_max_length. *ids is malloc'ed (caller frees; NULL when
 * *n_ids is 0). Thread-safe: several threads may encode with one tokenizer. */
pc_status pc_tokenizer_encode(const pc_tokenizer *t, const char *text, size_t len, bool add_special, int max_length,
                              int32_t **ids, int *n_ids, pc_error *err);

/* Decodes ids[0..n) to text as Hugging Face tokenizers' decode does (the tokenizer's
 * decoder; without one the tokens joined by spaces); skip_special leaves out the special
 * added tokens. Invalid UTF-8 that byte tokens spell comes out as U+FFFD. *text is
 * malloc'ed and NUL-terminated (caller frees). An id without a token is PEFTC_ERR_INVALID
 * naming it (Hugging Face drops such ids silently). Thread-safe like encoding. */
pc_status pc_tokenizer_decode(const pc_tokenizer *t, const int32_t *ids, int n, bool skip_special, char **text,
                              pc_error *err);

pc_tokenizer_kind pc_tokenizer_get_kind(const pc_tokenizer *t);
/* The token of id (added tokens included; a normalized added token in its normalized form,
 * as Hugging Face gives it), or NULL when id is out of range or unused. */
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
int32_t pc_tokenizer_bos_id(const pc_tokenizer *t);
int32_t pc_tokenizer_eos_id(const pc_tokenizer *t);
/* Whether encoding with add_special puts the bos first / the eos last. */
bool pc_tokenizer_adds_bos(const pc_tokenizer *t);
bool pc_tokenizer_adds_eos(const pc_tokenizer *t);
int pc_tokenizer_model_max_length(const pc_tokenizer *t);

/* Writes DIR/vocab.txt and DIR/tokenizer_config.json so that pc_tokenizer_load(DIR)
 * gives back the same tokenizer (DIR must exist). PEFTC_ERR_UNSUPPORTED when vocab.txt
 * cannot express it (not WordPiece, a normalizer other than one BertNormalizer with
 * clean_text, another pre-tokenizer than BertPreTokenizer or decoder than WordPiece "##",
 * another continuation prefix or word limit, a post-processor other than [CLS] A [SEP],
 * added tokens beyond the special ones, ids with gaps). */
pc_status pc_tokenizer_save_wordpiece(const pc_tokenizer *t, const char *dir, pc_error *err);

#endif
