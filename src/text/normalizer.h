/* Normalizers of tokenizer.json: BertNormalizer, Prepend, Replace, NFC/NFD/NFKC/NFKD,
 * Lowercase, Strip, and Sequence of them, applied in order as Hugging Face tokenizers does. */
#ifndef PC_TEXT_NORMALIZER_H
#define PC_TEXT_NORMALIZER_H

#include "text/bert.h"
#include "text/pattern.h"

typedef enum pc_norm_kind {
    PC_NORM_BERT,
    PC_NORM_PREPEND,    /* text before a non-empty string */
    PC_NORM_REPLACE,    /* every match of pattern becomes text */
    PC_NORM_NFC,
    PC_NORM_NFD,
    PC_NORM_NFKC,
    PC_NORM_NFKD,
    PC_NORM_LOWERCASE,
    PC_NORM_STRIP,      /* whitespace at the left and/or right end */
} pc_norm_kind;

typedef struct pc_norm_step {
    pc_norm_kind kind;
    pc_bert_normalizer bert;
    char *text;
    size_t text_len;
    pc_pattern pattern;
    bool strip_left, strip_right;
} pc_norm_step;

typedef struct pc_normalizer {
    pc_norm_step *steps;
    size_t n;
} pc_normalizer;

/* Work buffers of one thread. */
typedef struct pc_norm_work {
    pc_strbuf tmp;
    pc_cpbuf cp1, cp2;
    pc_spanbuf spans;
    pc_match_work match;
} pc_norm_work;

/* Reads the "normalizer" value (NULL or JSON null: no normalizer); what names it in messages. */
pc_status pc_normalizer_parse(pc_normalizer *nm, const cJSON *json, const char *what, pc_error *err);

/* Adds one BertNormalizer step (tokenizers loaded from vocab.txt). */
pc_status pc_normalizer_add_bert(pc_normalizer *nm, const pc_bert_normalizer *bert, pc_error *err);

/* The normalization of the valid UTF-8 s[0..len), into out (reset first). */
pc_status pc_normalizer_apply(const pc_normalizer *nm, const char *s, size_t len, pc_norm_work *w, pc_strbuf *out,
                              pc_error *err);

void pc_normalizer_free(pc_normalizer *nm);
void pc_norm_work_free(pc_norm_work *w);

#endif
