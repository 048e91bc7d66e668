#include "text/tokenizer_impl.h"

#include "text/bytelevel.h"
#include "text/unicode.h"

#include <stdlib.h>
#include <string.h>

/* Work buffers of one encode call (so that encoding needs no shared state). */
typedef struct encode_work {
    pc_strbuf norm;
    pc_norm_work nw;
    pc_pre_work pw;
    pc_bpe_work bw;
    pc_strbuf mapped;               /* a byte-level word in ByteLevel's alphabet */
    pc_idbuf ids;
    bool raw_at_origin;             /* the raw piece being encoded starts the text */
} encode_work;

static void work_free(encode_work *w)
{
    free(w->norm.v);
    pc_norm_work_free(&w->nw);
    pc_pre_work_free(&w->pw);
    pc_bpe_work_free(&w->bw);
    free(w->mapped.v);
    free(w->ids.v);
}

const pc_vocab *pc_tokenizer_vocab(const pc_tokenizer *t)
{
    return t->kind == PC_TOKENIZER_WORDPIECE ? &t->wordpiece.vocab : &t->bpe.vocab;
}

pc_status pc_tokenizer_normalize(const pc_tokenizer *t, const char *text, size_t len, pc_strbuf *out,
                                 pc_norm_work *w, pc_error *err)
{
    return pc_normalizer_apply(&t->normalizer, text, len, w, out, err);
}

static size_t count_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

/* The model on one word. */
static pc_status encode_word(const pc_tokenizer *t, const char *s, size_t len, encode_work *w, pc_error *err)
{
    switch (t->kind) {
    case PC_TOKENIZER_WORDPIECE:
        return pc_wordpiece_word(&t->wordpiece, s, len, count_chars(s, len), &w->ids, err);
    case PC_TOKENIZER_BYTE_LEVEL_BPE:
        w->mapped.n = 0;
        PC_TRY(pc_byte_level_encode(s, len, &w->mapped, err));
        return pc_bpe_encode_word(&t->bpe, w->mapped.v, w->mapped.n, &w->bw, &w->ids, err);
    case PC_TOKENIZER_SENTENCEPIECE_BPE:
        return pc_bpe_encode_word(&t->bpe, s, len, &w->bw, &w->ids, err);
    }
    return pc_fail(err, PEFTC_ERR_INVALID, "tokenizer of unknown kind %d", (int)t->kind);
}

/* Pre-tokenizer and model on normalized text that holds no added token; offset is where it
 * starts in the normalized piece. */
static pc_status encode_model(const pc_tokenizer *t, const char *s, size_t len, size_t offset, encode_work *w,
                              pc_error *err)
{
    PC_TRY(pc_pretokenize(&t->pretokenizer, s, len, w->raw_at_origin && offset == 0, &w->pw, err));
    for (size_t i = 0; i < w->pw.words.n; i++) {
        pc_span word = w->pw.words.v[i];
        PC_TRY(encode_word(t, w->pw.text.v + word.start, word.end - word.start, w, err));
    }
    return PEFTC_OK;
}

typedef pc_status (*piece_fn)(const pc_tokenizer *t, const char *s, size_t len, size_t offset, encode_work *w,
                              pc_error *err);

/* Splits s around the added tokens of one kind (normalized or raw): each match becomes its
 * id, the text between goes to encode_piece with its offset in s. */
static pc_status split_on_added(const pc_tokenizer *t, bool normalized, const char *s, size_t len,
                                piece_fn encode_piece, encode_work *w, pc_error *err)
{
    size_t done = 0, search = 0, start, end;
    const pc_added_token *tok;
    while (pc_added_next(&t->added, normalized, s, len, &search, done, &tok, &start, &end)) {
        if (start > done) PC_TRY(encode_piece(t, s + done, start - done, done, w, err));
        PC_TRY(pc_idbuf_push(&w->ids, tok->id, err));
        done = end;
        if (search < done) search = done;
    }
    if (done < len) PC_TRY(encode_piece(t, s + done, len - done, done, w, err));
    return PEFTC_OK;
}

/* Raw text between raw added tokens: normalize it, then split on the normalized ones. */
static pc_status encode_raw(const pc_tokenizer *t, const char *s, size_t len, size_t offset, encode_work *w,
                            pc_error *err)
{
    PC_TRY(pc_tokenizer_normalize(t, s, len, &w->norm, &w->nw, err));
    if (w->norm.n == 0) return PEFTC_OK;
    w->raw_at_origin = offset == 0;
    return split_on_added(t, true, w->norm.v, w->norm.n, encode_model, w, err);
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

/* The token strings of ids (special ones left out when asked) into w->a. */
static pc_status ids_to_tokens(const pc_tokenizer *t, const int32_t *ids, int n, bool skip_special, pc_dec_work *w,
                               pc_error *err)
{
    for (int i = 0; i < n; i++) {
        const pc_added_token *added = pc_added_by_id(&t->added, ids[i]);
        if (added && added->special && skip_special) continue;
        size_t len = 0;
        const char *tok = added ? added->pattern : pc_vocab_token(pc_tokenizer_vocab(t), ids[i], &len);
        if (!tok)
            return pc_fail(err, PEFTC_ERR_INVALID, "token id %d (position %d) is not in the vocabulary of %d ids",
                           (int)ids[i], i, (int)t->n_ids);
        PC_TRY(pc_toklist_push(&w->a, tok, added ? added->pattern_len : len, err));
    }
    return PEFTC_OK;
}

pc_status pc_tokenizer_decode(const pc_tokenizer *t, const int32_t *ids, int n, bool skip_special, char **text,
                              pc_error *err)
{
    if (!t || !text || (!ids && n > 0) || n < 0)
        return pc_fail(err, PEFTC_ERR_INVALID, "pc_tokenizer_decode: NULL argument or negative count");
    *text = NULL;
    pc_dec_work w = {0};
    pc_strbuf out = {0};
    pc_status s = ids_to_tokens(t, ids, n, skip_special, &w, err);
    if (s == PEFTC_OK) s = pc_decoder_run(&t->decoder, &w, &out, err);
    pc_dec_work_free(&w);
    if (s != PEFTC_OK) { free(out.v); return s; }
    *text = out.v;
    return PEFTC_OK;
}

void pc_tokenizer_free(pc_tokenizer *t)
{
    if (!t) return;
    pc_normalizer_free(&t->normalizer);
    pc_pretokenizer_free(&t->pretokenizer);
    pc_vocab_free(&t->wordpiece.vocab);
    pc_bpe_free(&t->bpe);
    pc_decoder_free(&t->decoder);
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
int32_t pc_tokenizer_bos_id(const pc_tokenizer *t) { return t->special_ids[PC_SPECIAL_BOS]; }
int32_t pc_tokenizer_eos_id(const pc_tokenizer *t) { return t->special_ids[PC_SPECIAL_EOS]; }

bool pc_tokenizer_adds_bos(const pc_tokenizer *t)
{
    int32_t bos = t->special_ids[PC_SPECIAL_BOS];
    return bos >= 0 && t->n_prefix > 0 && t->prefix_ids[0] == bos;
}

bool pc_tokenizer_adds_eos(const pc_tokenizer *t)
{
    int32_t eos = t->special_ids[PC_SPECIAL_EOS];
    return eos >= 0 && t->n_suffix > 0 && t->suffix_ids[t->n_suffix - 1] == eos;
}

/* An added token's string is its pattern: the content, normalized for a normalized token
 * (Hugging Face's id_to_token and decode give that form too). */
const char *pc_tokenizer_id_to_token(const pc_tokenizer *t, int32_t id)
{
    const pc_added_token *added = pc_added_by_id(&t->added, id);
    return added ? added->pattern : pc_vocab_token(pc_tokenizer_vocab(t), id, NULL);
}

int32_t pc_tokenizer_token_to_id(const pc_tokenizer *t, const char *token)
{
    if (!token) return -1;
    size_t len = strlen(token);
    int32_t id = pc_added_find(&t->added, token, len);
    return id >= 0 ? id : pc_vocab_find(pc_tokenizer_vocab(t), token, len);
}
