/* Decoders of tokenizer.json: they turn the token strings of ids back into text.
 * ByteLevel, WordPiece, Metaspace, Replace, ByteFallback, Fuse, Strip, and Sequence of
 * them, each working on the list of token strings as Hugging Face tokenizers does; with no
 * decoder the tokens are joined with spaces. */
#ifndef PC_TEXT_DECODER_H
#define PC_TEXT_DECODER_H

#include "text/buf.h"
#include "text/pattern.h"

typedef enum pc_dec_kind {
    PC_DEC_BYTE_LEVEL,     /* characters back to bytes, invalid UTF-8 as U+FFFD */
    PC_DEC_WORDPIECE,      /* "##" continuations joined, others after a space, optional cleanup */
    PC_DEC_METASPACE,      /* replacement -> ' ', none at the start of the first token */
    PC_DEC_REPLACE,
    PC_DEC_BYTE_FALLBACK,  /* runs of <0xXX> tokens back to the characters they spell */
    PC_DEC_FUSE,           /* all tokens into one */
    PC_DEC_STRIP,          /* up to start / stop copies of a character off each token's ends */
} pc_dec_kind;

typedef struct pc_dec_step {
    pc_dec_kind kind;
    char *text;                /* WordPiece prefix, Replace content, Strip / Metaspace character */
    size_t text_len;
    pc_pattern pattern;        /* Replace */
    bool cleanup;              /* WordPiece */
    bool prepend;              /* Metaspace: prepend_scheme is not "never" */
    size_t start, stop;        /* Strip */
} pc_dec_step;

typedef struct pc_decoder {
    pc_dec_step *steps;
    size_t n;
} pc_decoder;

/* A list of token strings: token i is text.v[spans.v[i].start .. spans.v[i].end). */
typedef struct pc_toklist {
    pc_strbuf text;
    pc_spanbuf spans;
} pc_toklist;

/* Work buffers of one decode call. */
typedef struct pc_dec_work {
    pc_toklist a, b;
    pc_match_work match;
    pc_spanbuf matches;
} pc_dec_work;

pc_status pc_toklist_push(pc_toklist *l, const char *s, size_t len, pc_error *err);

/* Reads the "decoder" value (NULL or JSON null: no decoder). */
pc_status pc_decoder_parse(pc_decoder *d, const cJSON *json, const char *what, pc_error *err);

/* Adds a WordPiece decoder step (tokenizers loaded from vocab.txt). */
pc_status pc_decoder_add_wordpiece(pc_decoder *d, const char *prefix, bool cleanup, pc_error *err);

/* Decodes the tokens in w->a into out (reset first). */
pc_status pc_decoder_run(const pc_decoder *d, pc_dec_work *w, pc_strbuf *out, pc_error *err);

void pc_decoder_free(pc_decoder *d);
void pc_dec_work_free(pc_dec_work *w);

#endif
