/* Added tokens ([CLS], [SEP], <|endoftext|>, user tokens): strings matched in the text
 * before the model sees it, each becoming its own id. Matching follows Hugging Face
 * tokenizers: leftmost-longest, first on the raw text for tokens with normalized=false,
 * then on the normalized text for tokens with normalized=true. */
#ifndef PC_TEXT_ADDED_H
#define PC_TEXT_ADDED_H

#include "base/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pc_added_token {
    char *content;        /* as the file gives it */
    size_t len;
    char *pattern;        /* what is matched: content, or its normalization when normalized */
    size_t pattern_len;
    int32_t id;
    bool single_word;     /* match only where no word character touches it */
    bool lstrip, rstrip;  /* the match swallows whitespace on its left / right */
    bool normalized;
    bool special;
} pc_added_token;

typedef struct pc_added_vocab {
    pc_added_token *tokens;
    size_t n;
    bool first_byte[2][256];  /* [normalized][b]: some pattern starts with byte b */
} pc_added_vocab;

void pc_added_free(pc_added_vocab *av);

/* Adds a token (content copied; pattern set later with pc_added_set_pattern). A second
 * token with the same content replaces the first, as in Hugging Face. */
pc_status pc_added_add(pc_added_vocab *av, const char *content, size_t len, int32_t id, bool single_word,
                       bool lstrip, bool rstrip, bool normalized, bool special, pc_error *err);

/* Sets the matched pattern of token i (takes ownership of the malloc'ed pattern). */
void pc_added_set_pattern(pc_added_vocab *av, size_t i, char *pattern, size_t len);

/* Id of the token whose content is s[0..len), or -1. */
int32_t pc_added_find(const pc_added_vocab *av, const char *s, size_t len);
/* The token with this id, or NULL. */
const pc_added_token *pc_added_by_id(const pc_added_vocab *av, int32_t id);

/* The next match in s[0..len) among tokens with the given normalized flag, searching from
 * *search: sets *tok and the matched span [*start, *end) (widened by lstrip/rstrip, but
 * never before floor) and moves *search past it. Returns false when none is left. */
bool pc_added_next(const pc_added_vocab *av, bool normalized, const char *s, size_t len, size_t *search,
                   size_t floor, const pc_added_token **tok, size_t *start, size_t *end);

#endif
