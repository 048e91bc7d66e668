/* Pre-tokenizers of tokenizer.json: BertPreTokenizer, ByteLevel, Split, Metaspace, and
 * Sequence of them. They cut normalized text into words that the model encodes one by one. */
#ifndef PC_TEXT_PRETOKENIZER_H
#define PC_TEXT_PRETOKENIZER_H

#include "text/buf.h"
#include "text/pattern.h"

typedef enum pc_pre_kind {
    PC_PRE_BERT,        /* whitespace split, each punctuation character alone */
    PC_PRE_BYTE_LEVEL,  /* optional prefix space and GPT-2 regex split; words are then bytes */
    PC_PRE_SPLIT,       /* split on a pattern with a delimiter behavior */
    PC_PRE_METASPACE,   /* ' ' -> replacement, optional prefix, optional split before each replacement */
} pc_pre_kind;

/* What Split does with the matches (Hugging Face's SplitDelimiterBehavior). */
typedef enum pc_split_behavior {
    PC_SPLIT_REMOVED,
    PC_SPLIT_ISOLATED,
    PC_SPLIT_MERGED_WITH_PREVIOUS,
    PC_SPLIT_MERGED_WITH_NEXT,
    PC_SPLIT_CONTIGUOUS,
} pc_split_behavior;

typedef enum pc_prepend_scheme { PC_PREPEND_ALWAYS, PC_PREPEND_FIRST, PC_PREPEND_NEVER } pc_prepend_scheme;

typedef struct pc_pre_step {
    pc_pre_kind kind;
    bool add_prefix_space;          /* ByteLevel */
    pc_pattern pattern;             /* Split; ByteLevel with use_regex (empty pattern otherwise) */
    bool use_pattern;
    pc_split_behavior behavior;
    bool invert;
    char replacement[5];            /* Metaspace: one UTF-8 character */
    pc_prepend_scheme prepend_scheme;
    bool split;
} pc_pre_step;

typedef struct pc_pretokenizer {
    pc_pre_step *steps;
    size_t n;
    bool byte_level;                /* the last step is ByteLevel: words go through its byte alphabet */
} pc_pretokenizer;

/* A piece of a word being split: a match of the pattern or a gap between matches. */
typedef struct pc_pre_seg {
    size_t start, end;
    bool is_match;
} pc_pre_seg;

/* Words are the bytes [start, end) of text. */
typedef struct pc_pre_work {
    pc_strbuf text;                 /* the input, then text the steps made (prefixes, replacements) */
    pc_spanbuf words, next;         /* words before and after a step */
    pc_spanbuf matches;
    pc_pre_seg *segs;
    size_t n_segs, segs_cap;
    pc_match_work match;
    size_t first_start;             /* start of the word at the input's first byte (Metaspace "first") */
    bool at_origin;                 /* the input starts the original text */
} pc_pre_work;

/* Reads the "pre_tokenizer" value (NULL or JSON null: the whole text is one word). */
pc_status pc_pretokenizer_parse(pc_pretokenizer *pt, const cJSON *json, const char *what, pc_error *err);

/* Adds one BertPreTokenizer step (tokenizers loaded from vocab.txt). */
pc_status pc_pretokenizer_add_bert(pc_pretokenizer *pt, pc_error *err);

/* Splits the valid UTF-8 s[0..len) into w->words (spans of w->text). at_origin: s starts the
 * text given to encode (Metaspace's prepend_scheme "first" prepends only there). */
pc_status pc_pretokenize(const pc_pretokenizer *pt, const char *s, size_t len, bool at_origin, pc_pre_work *w,
                         pc_error *err);

void pc_pretokenizer_free(pc_pretokenizer *pt);
void pc_pre_work_free(pc_pre_work *w);

#endif
