#include "text/tokenizer_impl.h"

#include "text/unicode.h"

#include <stdlib.h>
#include <string.h>

/* Work buffers of one encode call (so that encoding needs no shared state). */
typedef struct encode_work {
    pc_strbuf norm;
    pc_cpbuf cp1, cp2;
    pc_idbuf ids;
} encode_work;

static void work_free(encode_work *w)
{
    free(w->norm.v);
    free(w->cp1.v);
    free(w->cp2.v);
    free(w->ids.v);
}

static pc_status unknown_kind(const pc_tokenizer *t, pc_error *err)
{
    return pc_fail(err, PEFTC_ERR_INVALID, "tokenizer of unknown kind %d", (int)t->kind);
}

pc_status pc_tokenizer_normalize(const pc_tokenizer *t, const char *text, size_t len, pc_strbuf *out,
                                 pc_cpbuf *scratch, pc_cpbuf *scratch2, pc_error *err)
{
    out->n = 0;
    switch (t->kind) {
    case PC_TOKENIZER_WORDPIECE:
        return pc_bert_normalize(&t->bert, text, len, out, scratch, scratch2, err);
    }
    return unknown_kind(t, err);
}

/* Pre-tokenizer and model on normalized text that holds no added token. */
static pc_status encode_model(const pc_tokenizer *t, const char *s, size_t len, encode_work *w, pc_error *err)
{
    switch (t->kind) {
    case PC_TOKENIZER_WORDPIECE: {
        size_t pos = 0, start, end, n_chars;
        while (pc_bert_next_word(s, len, &pos, &start, &end, &n_chars))
            PC_TRY(pc_wordpiece_word(&t->wordpiece, s + start, end - start, n_chars, &w->ids, err));
        return PEFTC_OK;
    }
    }
    return unknown_kind(t, err);
}

typedef pc_status (*piece_fn)(const pc_tokenizer *t, const char *s, size_t len, encode_work *w, pc_error *err);

/* Splits s around the added tokens of one kind (normalized or raw): each match becomes its
 * id, the text between goes to encode_piece. */
static pc_status split_on_added(const pc_tokenizer *t, bool normalized, const char *s, size_t len,
                                piece_fn encode_piece, encode_work *w, pc_error *err)
{
    size_t done = 0, search = 0, start, end;
    const pc_added_token *tok;
    while (pc_added_next(&t->added, normalized, s, len, &search, done, &tok, &start, &end)) {
        if (start > done) PC_TRY(encode_piece(t, s + done, start - done, w, err));
        PC_TRY(pc_idbuf_push(&w->ids, tok->id, err));
        done = end;
        if (search < done) search = done;
    }
    if (done < len) PC_TRY(encode_piece(t, s + done, len - done, w, err));
    return PEFTC_OK;
}

static pc_status encode_normalized(const pc_tokenizer *t, const char *s, size_t len, encode_work *w, pc_error *err)
{
    return split_on_added(t, true, s, len, encode_model, w, err);
}

/* Raw text between raw added tokens: normalize it, then split on the normalized ones. */
static pc_status encode_raw(const pc_tokenizer *t, const char *s, size_t len, encode_work *w, pc_error *err)
{
    PC_TRY(pc_tokenizer_normalize(t, s, len, &w->norm, &w->cp1, &w->cp2, err));
    if (w->norm.n == 0) return PEFTC_OK;
    return encode_normalized(t, w->norm.v, w->norm.n, w, err);
}

/* prefix + ids[0..keep) + suffix, as the caller's malloc'ed array. */
static pc_status assemble(const pc_tokenizer *t, const pc_idbuf *ids, size_t keep, bool add_special,
                          int32_t **out, int *n_out, pc_error *err)
{
    size_t n_pre = add_special ? t->n_prefix : 0, n_suf = add_special ? t->n_suffix : 0;
    size_t n = n_pre + keep + n_suf;
    *out = NULL;
    *n_out = 0;
    if (n == 0) return PEFTC_OK;
    int32_t *v = malloc(n * sizeof *v);
    if (!v) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for %zu token ids", n);
    if (n_pre) memcpy(v, t->prefix_ids, n_pre * sizeof *v);
    if (keep) memcpy(v + n_pre, ids->v, keep * sizeof *v);
    if (n_suf) memcpy(v + n_pre + keep, t->suffix_ids, n_suf * sizeof *v);
    *out = v;
    *n_out = (int)n;
    return PEFTC_OK;
}

pc_status pc_tokenizer_encode(const pc_tokenizer *t, const char *text, size_t len, bool add_special, int max_length,
                              int32_t **ids, int *n_ids, pc_error *err)
{
    if (!t || !ids || !n_ids || (!text && len > 0))
        return pc_fail(err, PEFTC_ERR_INVALID, "pc_tokenizer_encode: NULL argument");
    if (max_length < 0) return pc_fail(err, PEFTC_ERR_INVALID, "max_length %d is negative", max_length);
    size_t limit = (size_t)(max_length > 0 ? max_length : t->model_max_length);
    size_t n_special = add_special ? t->n_prefix + t->n_suffix : 0;
    if (limit < n_special)
        return pc_fail(err, PEFTC_ERR_INVALID, "max_length %zu leaves no room for the %zu special tokens", limit,
                       n_special);
    size_t bad = pc_utf8_invalid_at(text, len);
    if (bad < len) return pc_fail(err, PEFTC_ERR_FORMAT, "invalid UTF-8 at byte %zu", bad);

    encode_work w = {0};
    pc_status s = len ? split_on_added(t, false, text, len, encode_raw, &w, err) : PEFTC_OK;
    if (s == PEFTC_OK) {
        size_t keep = w.ids.n < limit - n_special ? w.ids.n : limit - n_special;
        s = assemble(t, &w.ids, keep, add_special, ids, n_ids, err);
    }
    work_free(&w);
    return s;
}

void pc_tokenizer_free(pc_tokenizer *t)
{
    if (!t) return;
    pc_vocab_free(&t->wordpiece.vocab);
    pc_added_free(&t->added);
    free(t->prefix_ids);
    free(t->suffix_ids);
    for (int i = 0; i < PC_N_SPECIAL; i++) free(t->special_names[i]);
    free(t);
}

pc_tokenizer_kind pc_tokenizer_get_kind(const pc_tokenizer *t) { return t->kind; }
int pc_tokenizer_vocab_size(const pc_tokenizer *t) { return (int)t->n_ids; }
int pc_tokenizer_model_max_length(const pc_tokenizer *t) { return t->model_max_length; }
int32_t pc_tokenizer_unk_id(const pc_tokenizer *t) { return t->special_ids[PC_SPECIAL_UNK]; }
int32_t pc_tokenizer_cls_id(const pc_tokenizer *t) { return t->special_ids[PC_SPECIAL_CLS]; }
int32_t pc_tokenizer_sep_id(const pc_tokenizer *t) { return t->special_ids[PC_SPECIAL_SEP]; }
int32_t pc_tokenizer_pad_id(const pc_tokenizer *t) { return t->special_ids[PC_SPECIAL_PAD]; }
int32_t pc_tokenizer_mask_id(const pc_tokenizer *t) { return t->special_ids[PC_SPECIAL_MASK]; }

const char *pc_tokenizer_id_to_token(const pc_tokenizer *t, int32_t id)
{
    const char *added = pc_added_content(&t->added, id);
    return added ? added : pc_vocab_token(&t->wordpiece.vocab, id, NULL);
}

int32_t pc_tokenizer_token_to_id(const pc_tokenizer *t, const char *token)
{
    size_t len = strlen(token);
    int32_t id = pc_added_find(&t->added, token, len);
    return id >= 0 ? id : pc_vocab_find(&t->wordpiece.vocab, token, len);
}
