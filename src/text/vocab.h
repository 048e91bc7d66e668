/* A token vocabulary: token string <-> id, with an open-addressing hash table for the
 * string -> id direction (the WordPiece inner loop looks up every candidate piece). */
#ifndef PC_TEXT_VOCAB_H
#define PC_TEXT_VOCAB_H

#include "base/error.h"

#include <cJSON.h>

#include <stddef.h>
#include <stdint.h>

/* Ids must lie in [0, PC_VOCAB_MAX_ID]; tokenizer vocabularies are far smaller. */
#define PC_VOCAB_MAX_ID ((int32_t)(1 << 24))

typedef struct pc_vocab {
    char *pool;           /* all token strings, each NUL-terminated */
    size_t pool_len, pool_cap;
    uint32_t *id_off;     /* id -> offset in pool, UINT32_MAX for an unused id */
    uint32_t *id_len;     /* id -> byte length */
    int32_t n_ids;        /* 1 + largest id */
    size_t id_cap;        /* allocated entries of id_off and id_len */
    int32_t *slots;       /* hash slot -> id, or -1 */
    size_t n_slots;       /* a power of two, at most half full */
    size_t n_tokens;      /* distinct strings in the table */
    size_t max_len;       /* longest token, in bytes */
} pc_vocab;

void pc_vocab_init(pc_vocab *v);
void pc_vocab_free(pc_vocab *v);

/* Maps tok[0..len) to id. A string seen before is re-pointed to the new id (the last
 * mapping wins, as in Hugging Face's loaders); an id seen before gets the new string. */
pc_status pc_vocab_add(pc_vocab *v, const char *tok, size_t len, int32_t id, pc_error *err);

/* Adds every "token": id of a tokenizer.json "vocab" object (what names it in messages). */
pc_status pc_vocab_parse_json(pc_vocab *v, const cJSON *vocab, const char *what, pc_error *err);

/* Id of the string prefix[0..plen) + s[0..len), or -1 when absent. */
int32_t pc_vocab_find2(const pc_vocab *v, const char *prefix, size_t plen, const char *s, size_t len);

/* Id of s[0..len), or -1. */
int32_t pc_vocab_find(const pc_vocab *v, const char *s, size_t len);

/* The string of id (NUL-terminated, len in *len when not NULL), or NULL for an unused id. */
const char *pc_vocab_token(const pc_vocab *v, int32_t id, size_t *len);

#endif
