#include "text/wordpiece.h"

/* Longest piece of w[start..len) in the vocabulary (with the prefix unless start == 0):
 * sets *end and returns its id, or -1 when even its first character is unknown. */
static int32_t longest_piece(const pc_wordpiece *wp, const char *w, size_t start, size_t len, size_t *end)
{
    size_t plen = start > 0 ? wp->prefix_len : 0;
    size_t stop = len;
    if (wp->vocab.max_len < plen) return -1;
    if (stop - start > wp->vocab.max_len - plen) {       /* no piece is longer than that */
        stop = start + wp->vocab.max_len - plen;
        while (stop > start && ((unsigned char)w[stop] & 0xC0) == 0x80) stop--;
    }
    while (stop > start) {
        int32_t id = pc_vocab_find2(&wp->vocab, wp->prefix, plen, w + start, stop - start);
        if (id >= 0) { *end = stop; return id; }
        do stop--; while (stop > start && ((unsigned char)w[stop] & 0xC0) == 0x80);
    }
    return -1;
}

pc_status pc_wordpiece_word(const pc_wordpiece *wp, const char *w, size_t len, size_t n_chars, pc_idbuf *out,
                            pc_error *err)
{
    if (n_chars > wp->max_input_chars) return pc_idbuf_push(out, wp->unk_id, err);
    size_t first = out->n;
    for (size_t start = 0; start < len;) {
        size_t end;
        int32_t id = longest_piece(wp, w, start, len, &end);
        if (id < 0) {
            out->n = first;                            /* the whole word becomes one unk */
            return pc_idbuf_push(out, wp->unk_id, err);
        }
        PC_TRY(pc_idbuf_push(out, id, err));
        start = end;
    }
    return PEFTC_OK;
}
