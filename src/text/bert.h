/* BERT text processing as Hugging Face tokenizers does it: the BertNormalizer and the
 * BertPreTokenizer (whitespace split, each punctuation character its own word). */
#ifndef PC_TEXT_BERT_H
#define PC_TEXT_BERT_H

#include "text/buf.h"

#include <stdbool.h>

typedef struct pc_bert_normalizer {
    bool clean_text;            /* drop control characters, map whitespace to ' ' */
    bool handle_chinese_chars;  /* put spaces around CJK ideographs */
    bool strip_accents;         /* NFD, then drop nonspacing marks (Mn) */
    bool lowercase;
} pc_bert_normalizer;

/* Appends the normalization of the valid UTF-8 text s[0..len) to out; scratch and
 * scratch2 are work buffers the caller keeps between calls. */
pc_status pc_bert_normalize(const pc_bert_normalizer *bn, const char *s, size_t len, pc_strbuf *out,
                            pc_cpbuf *scratch, pc_cpbuf *scratch2, pc_error *err);

/* The next word of the valid UTF-8 text s[0..len) at or after *pos: sets [*start, *end)
 * and its length in code points, advances *pos past it, and returns false when no word
 * is left. */
bool pc_bert_next_word(const char *s, size_t len, size_t *pos, size_t *start, size_t *end, size_t *n_chars);

#endif
