/* The BPE model of Hugging Face tokenizers: a word starts as one symbol per character
 * (or per byte, through byte_fallback's <0xXX> tokens, or an unk), then the adjacent pair
 * with the lowest merge rank is merged until no pair of the merges list is left. */
#ifndef PC_TEXT_BPE_H
#define PC_TEXT_BPE_H

#include "text/buf.h"
#include "text/vocab.h"

#include <cJSON.h>

#include <stdbool.h>

/* A slot of the merge table: pair (left id << 32 | right id), or PC_BPE_NO_PAIR when empty. */
typedef struct pc_bpe_pair {
    uint64_t key;
    uint32_t rank;              /* the merge's line in the merges list */
    int32_t merged;             /* the merged token */
} pc_bpe_pair;

typedef struct pc_bpe {
    pc_vocab vocab;
    pc_bpe_pair *merges;        /* open addressing, one cache line per probe */
    size_t merge_slots;         /* a power of two, at most half full */
    char *unk_token;            /* NULL when none */
    int32_t unk_id;             /* -1 when unk_token is NULL or not in the vocabulary */
    char *prefix, *suffix;      /* continuing_subword_prefix, end_of_word_suffix ("" when none) */
    size_t prefix_len, suffix_len;
    bool fuse_unk, byte_fallback, ignore_merges;
    int32_t byte_ids[256];      /* byte_fallback's "<0xXX>" tokens, -1 when absent */
} pc_bpe;

#define PC_BPE_NO_PAIR UINT64_MAX

/* A symbol of the word being merged (a doubly linked list over an array, as in tokenizers). */
typedef struct pc_bpe_symbol {
    int32_t id;
    int32_t prev, next;         /* -1 at the ends */
    uint32_t len;               /* bytes of the word it covers; 0 once merged into its left neighbour */
} pc_bpe_symbol;

/* A queued merge: the pair (left, right) at symbol pos when it was queued. */
typedef struct pc_bpe_merge {
    uint32_t rank, pos;
    int32_t new_id, left, right;
} pc_bpe_merge;

/* Work buffers of one thread. */
typedef struct pc_bpe_work {
    pc_bpe_symbol *sym;
    size_t n_sym, cap_sym;
    pc_bpe_merge *heap;
    size_t n_heap, cap_heap;
    pc_strbuf piece;
} pc_bpe_work;

/* Reads a tokenizer.json "model" object of type BPE; what names it in messages. Merges are
 * "a b" strings or ["a", "b"] pairs; each token and each merged token must be in the vocabulary. */
pc_status pc_bpe_parse(pc_bpe *m, const cJSON *model, const char *what, pc_error *err);

/* Appends the ids of the word w[0..len) (valid UTF-8, not empty) to out. */
pc_status pc_bpe_encode_word(const pc_bpe *m, const char *w, size_t len, pc_bpe_work *work, pc_idbuf *out,
                             pc_error *err);

void pc_bpe_free(pc_bpe *m);
void pc_bpe_work_free(pc_bpe_work *w);

#endif
