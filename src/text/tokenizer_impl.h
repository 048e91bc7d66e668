/* The tokenizer handle, shared by tokenizer.c (encoding, decoding, accessors) and
 * tokenizer_load.c (reading and writing the Hugging Face files). A tokenizer is Hugging
 * Face's pipeline: added tokens, normalizer, pre-tokenizer, model (WordPiece or BPE),
 * post-processor (as fixed prefix and suffix ids) and decoder. */
#ifndef PC_TEXT_TOKENIZER_IMPL_H
#define PC_TEXT_TOKENIZER_IMPL_H

#include "text/added.h"
#include "text/bpe.h"
#include "text/decoder.h"
#include "text/normalizer.h"
#include "text/pretokenizer.h"
#include "text/tokenizer.h"
#include "text/wordpiece.h"

/* The special tokens every kind may name, in tokenizer_config.json's key order below. */
enum { PC_SPECIAL_UNK, PC_SPECIAL_CLS, PC_SPECIAL_SEP, PC_SPECIAL_PAD, PC_SPECIAL_MASK, PC_SPECIAL_BOS,
       PC_SPECIAL_EOS, PC_N_SPECIAL };

struct pc_tokenizer {
    pc_tokenizer_kind kind;
    pc_normalizer normalizer;
    pc_pretokenizer pretokenizer;
    pc_wordpiece wordpiece;          /* WordPiece: the model and its vocabulary */
    pc_bpe bpe;                      /* BPE kinds: the model and its vocabulary */
    pc_decoder decoder;
    pc_added_vocab added;
    int32_t *prefix_ids, *suffix_ids; /* post-processor for one sequence: prefix + ids + suffix */
    size_t n_prefix, n_suffix;
    char *special_names[PC_N_SPECIAL]; /* NULL when the tokenizer has none */
    int32_t special_ids[PC_N_SPECIAL];
    int model_max_length;
    int32_t n_ids;                   /* 1 + largest id, added tokens included */
};

/* The model's vocabulary. */
const pc_vocab *pc_tokenizer_vocab(const pc_tokenizer *t);

/* Normalizes text[0..len) the way this tokenizer's normalizer does, into out (reset first). */
pc_status pc_tokenizer_normalize(const pc_tokenizer *t, const char *text, size_t len, pc_strbuf *out,
                                 pc_norm_work *w, pc_error *err);

#endif
