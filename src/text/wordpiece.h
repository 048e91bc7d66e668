/* The WordPiece model: greedy longest-match-first split of one word into vocabulary
 * pieces, continuation pieces carrying a prefix ("##"). */
#ifndef PC_TEXT_WORDPIECE_H
#define PC_TEXT_WORDPIECE_H

#include "text/buf.h"
#include "text/vocab.h"

typedef struct pc_wordpiece {
    pc_vocab vocab;
    char prefix[32];              /* continuing_subword_prefix, NUL-terminated */
    size_t prefix_len;
    size_t max_input_chars;       /* a longer word becomes a single unk */
    int32_t unk_id;
} pc_wordpiece;

/* Appends the ids of the word w[0..len) (valid UTF-8, n_chars code points) to out: its
 * pieces, or one unk_id when it is too long or some part matches no piece. */
pc_status pc_wordpiece_word(const pc_wordpiece *wp, const char *w, size_t len, size_t n_chars, pc_idbuf *out,
                            pc_error *err);

#endif
