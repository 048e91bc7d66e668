#include "text/decoder.h"

#include "formats/json.h"
#include "text/bytelevel.h"
#include "text/unicode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pc_decoder_free(pc_decoder *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free(d->steps[i].text);
        pc_pattern_free(&d->steps[i].pattern);
    }
    free(d->steps);
    memset(d, 0, sizeof *d);
}

void pc_dec_work_free(pc_dec_work *w)
{
    free(w->a.text.v);
    free(w->a.spans.v);
    free(w->b.text.v);
    free(w->b.spans.v);
    free(w->matches.v);
    pc_match_work_free(&w->match);
    memset(w, 0, sizeof *w);
}

pc_status pc_toklist_push(pc_toklist *l, const char *s, size_t len, pc_error *err)
{
    size_t start = l->text.n;
    PC_TRY(pc_strbuf_append(&l->text, s, len, err));
    return pc_spanbuf_push(&l->spans, start, l->text.n, err);
}

/* ---- parsing ----------------------------------------------------------------------- */

static pc_status add_step(pc_decoder *d, pc_dec_kind kind, pc_dec_step **step, pc_error *err)
{
    pc_dec_step *grown = realloc(d->steps, (d->n + 1) * sizeof *grown);
    if (!grown) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for decoder steps");
    d->steps = grown;
    *step = &d->steps[d->n++];
    memset(*step, 0, sizeof **step);
    (*step)->kind = kind;
    return PEFTC_OK;
}

static pc_status set_text(pc_dec_step *st, const char *s, pc_error *err)
{
    st->text_len = strlen(s);
    st->text = strdup(s);
    return st->text ? PEFTC_OK : pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for a decoder");
}

pc_status pc_decoder_add_wordpiece(pc_decoder *d, const char *prefix, bool cleanup, pc_error *err)
{
    pc_dec_step *st = NULL;
    PC_TRY(add_step(d, PC_DEC_WORDPIECE, &st, err));
    st->cleanup = cleanup;
    return set_text(st, prefix, err);
}

static pc_status get_string(const cJSON *j, const char *key, const char *dflt, const char **out, const char *what,
                            pc_error *err)
{
    PC_TRY(pc_json_get_string(j, key, dflt, out, what, err));
    if (!*out) return pc_fail(err, PEFTC_ERR_FORMAT, "%s: '%s' is missing", what, key);
    return PEFTC_OK;
}

static pc_status parse_size(const cJSON *j, const char *key, size_t *out, const char *what, pc_error *err)
{
    long long v = 0;
    PC_TRY(pc_json_get_int(j, key, 0, &v, what, err));
    if (v < 0) return pc_fail(err, PEFTC_ERR_FORMAT, "%s: '%s' = %lld is negative", what, key, v);
    *out = (size_t)v;
    return PEFTC_OK;
}

static pc_status parse_metaspace(pc_dec_step *st, const cJSON *j, const char *what, pc_error *err)
{
    const char *rep, *scheme = NULL;
    bool add_prefix_space = true;
    PC_TRY(get_string(j, "replacement", "\xE2\x96\x81", &rep, what, err));
    if (strlen(rep) == 0 || strlen(rep) != (size_t)pc_utf8_char_len(rep))
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: Metaspace 'replacement' must be one character", what);
    PC_TRY(pc_json_get_bool(j, "add_prefix_space", true, &add_prefix_space, what, err));
    PC_TRY(pc_json_get_string(j, "prepend_scheme", NULL, &scheme, what, err));
    st->prepend = scheme ? strcmp(scheme, "never") != 0 : add_prefix_space;
    return set_text(st, rep, err);
}

static pc_status parse_strip(pc_dec_step *st, const cJSON *j, const char *what, pc_error *err)
{
    const char *content;
    PC_TRY(get_string(j, "content", " ", &content, what, err));
    if (strlen(content) == 0 || strlen(content) != (size_t)pc_utf8_char_len(content))
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: Strip 'content' must be one character", what);
    PC_TRY(parse_size(j, "start", &st->start, what, err));
    PC_TRY(parse_size(j, "stop", &st->stop, what, err));
    return set_text(st, content, err);
}

static pc_status parse_one(pc_decoder *d, const cJSON *j, const char *what, pc_error *err);

static pc_status parse_sequence(pc_decoder *d, const cJSON *j, const char *what, pc_error *err)
{
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(j, "decoders");
    if (!cJSON_IsArray(list)) return pc_fail(err, PEFTC_ERR_FORMAT, "%s: Sequence has no 'decoders' list", what);
    size_t i = 0;
    for (const cJSON *item = list->child; item; item = item->next, i++) {
        char sub[512];
        snprintf(sub, sizeof sub, "%s.decoders[%zu]", what, i);
        PC_TRY(parse_one(d, item, sub, err));
    }
    return PEFTC_OK;
}

static pc_status parse_one(pc_decoder *d, const cJSON *j, const char *what, pc_error *err)
{
    const char *type = NULL, *s;
    if (!cJSON_IsObject(j)) return pc_fail(err, PEFTC_ERR_FORMAT, "%s must be an object", what);
    PC_TRY(pc_json_get_string(j, "type", NULL, &type, what, err));
    if (!type) return pc_fail(err, PEFTC_ERR_FORMAT, "%s has no \"type\"", what);
    if (strcmp(type, "Sequence") == 0) return parse_sequence(d, j, what, err);
    pc_dec_step *st = NULL;
    if (strcmp(type, "ByteLevel") == 0) return add_step(d, PC_DEC_BYTE_LEVEL, &st, err);
    if (strcmp(type, "ByteFallback") == 0) return add_step(d, PC_DEC_BYTE_FALLBACK, &st, err);
    if (strcmp(type, "Fuse") == 0) return add_step(d, PC_DEC_FUSE, &st, err);
    if (strcmp(type, "WordPiece") == 0) {
        bool cleanup = true;
        PC_TRY(get_string(j, "prefix", "##", &s, what, err));
        PC_TRY(pc_json_get_bool(j, "cleanup", true, &cleanup, what, err));
        return pc_decoder_add_wordpiece(d, s, cleanup, err);
    }
    if (strcmp(type, "Replace") == 0) {
        PC_TRY(add_step(d, PC_DEC_REPLACE, &st, err));
        PC_TRY(get_string(j, "content", NULL, &s, what, err));
        PC_TRY(set_text(st, s, err));
        return pc_pattern_parse(&st->pattern, j, "pattern", what, err);
    }
    if (strcmp(type, "Strip") == 0) {
        PC_TRY(add_step(d, PC_DEC_STRIP, &st, err));
        return parse_strip(st, j, what, err);
    }
    if (strcmp(type, "Metaspace") == 0) {
        PC_TRY(add_step(d, PC_DEC_METASPACE, &st, err));
        return parse_metaspace(st, j, what, err);
    }
    return pc_fail(err, PEFTC_ERR_UNSUPPORTED, "%s: decoder type '%s' is not supported", what, type);
}

pc_status pc_decoder_parse(pc_decoder *d, const cJSON *json, const char *what, pc_error *err)
{
    if (!json || cJSON_IsNull(json)) return PEFTC_OK;
    return parse_one(d, json, what, err);
}

/* ---- decoding ---------------------------------------------------------------------- */

static const char *tok(const pc_toklist *l, size_t i, size_t *len)
{
    *len = l->spans.v[i].end - l->spans.v[i].start;
    return *len ? l->text.v + l->spans.v[i].start : "";  /* text.v is NULL while every token is empty */
}

/* The byte of a "<0xXX>" token (two hex digits, as Hugging Face's ByteFallback reads it), or -1. */
static int fallback_byte(const char *t, size_t len)
{
    if (len != 6 || memcmp(t, "<0x", 3) != 0 || t[5] != '>') return -1;
    int v = 0;
    for (int k = 3; k < 5; k++) {
        char c = t[k];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* ByteLevel: every token's characters back to bytes (a token with a character outside the
 * alphabet stays as it is), the whole as one token, invalid UTF-8 as U+FFFD. */
static pc_status byte_level(const pc_toklist *in, pc_toklist *out, pc_strbuf *bytes, pc_error *err)
{
    bytes->n = 0;
    for (size_t i = 0; i < in->spans.n; i++) {
        size_t len, start = bytes->n;
        const char *t = tok(in, i, &len);
        for (size_t k = 0; k < len;) {
            uint32_t cp;
            k += (size_t)pc_utf8_decode(t + k, &cp);
            int b = pc_byte_level_byte(cp);
            if (b < 0) {                                   /* not all mapped: the raw token */
                bytes->n = start;
                PC_TRY(pc_strbuf_append(bytes, t, len, err));
                break;
            }
            char c = (char)b;
            PC_TRY(pc_strbuf_append(bytes, &c, 1, err));
        }
    }
    size_t start = out->text.n;
    PC_TRY(pc_utf8_append_lossy(&out->text, bytes->v ? bytes->v : "", bytes->n, err));
    return pc_spanbuf_push(&out->spans, start, out->text.n, err);
}

/* ByteFallback: a run of <0xXX> tokens becomes the text its bytes spell when that is valid
 * UTF-8, else one U+FFFD per byte. */
static pc_status flush_bytes(pc_strbuf *bytes, pc_toklist *out, pc_error *err)
{
    if (bytes->n == 0) return PEFTC_OK;
    if (pc_utf8_invalid_at(bytes->v, bytes->n) == bytes->n) PC_TRY(pc_toklist_push(out, bytes->v, bytes->n, err));
    else
        for (size_t i = 0; i < bytes->n; i++) PC_TRY(pc_toklist_push(out, "\xEF\xBF\xBD", 3, err));
    bytes->n = 0;
    return PEFTC_OK;
}

static pc_status byte_fallback(const pc_toklist *in, pc_toklist *out, pc_strbuf *bytes, pc_error *err)
{
    bytes->n = 0;
    for (size_t i = 0; i < in->spans.n; i++) {
        size_t len;
        const char *t = tok(in, i, &len);
        int b = fallback_byte(t, len);
        if (b >= 0) {
            char c = (char)b;
            PC_TRY(pc_strbuf_append(bytes, &c, 1, err));
            continue;
        }
        PC_TRY(flush_bytes(bytes, out, err));
        PC_TRY(pc_toklist_push(out, t, len, err));
    }
    return flush_bytes(bytes, out, err);
}

/* The WordPiece decoder's cleanup: spaces before punctuation and contractions. */
static pc_status cleanup(pc_toklist *out, size_t first, pc_strbuf *tmp, pc_error *err)
{
    static const char *const rules[][2] = {
        {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"}, {" 'm", "'m"},
        {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"},
    };
    for (size_t r = 0; r < sizeof rules / sizeof rules[0]; r++) {
        const char *from = rules[r][0], *to = rules[r][1];
        size_t from_len = strlen(from), len = out->text.n - first;
        tmp->n = 0;
        PC_TRY(pc_strbuf_append(tmp, out->text.v + first, len, err));
        out->text.n = first;
        for (size_t i = 0; i < len;) {
            if (i + from_len <= len && memcmp(tmp->v + i, from, from_len) == 0) {
                PC_TRY(pc_strbuf_append(&out->text, to, strlen(to), err));
                i += from_len;
            } else {
                PC_TRY(pc_strbuf_append(&out->text, tmp->v + i, 1, err));
                i++;
            }
        }
    }
    return PEFTC_OK;
}

static pc_status wordpiece(const pc_dec_step *st, const pc_toklist *in, pc_toklist *out, pc_strbuf *tmp,
                           pc_error *err)
{
    for (size_t i = 0; i < in->spans.n; i++) {
        size_t len, start = out->text.n;
        const char *t = tok(in, i, &len);
        if (i > 0 && len >= st->text_len && memcmp(t, st->text, st->text_len) == 0) {
            t += st->text_len;
            len -= st->text_len;
        } else if (i > 0) {
            PC_TRY(pc_strbuf_append(&out->text, " ", 1, err));
        }
        PC_TRY(pc_strbuf_append(&out->text, t, len, err));
        if (st->cleanup) PC_TRY(cleanup(out, start, tmp, err));
        PC_TRY(pc_spanbuf_push(&out->spans, start, out->text.n, err));
    }
    return PEFTC_OK;
}

/* Metaspace: the replacement character becomes ' ', except in the first token where it is
 * dropped (unless prepend_scheme is "never"). */
static pc_status metaspace(const pc_dec_step *st, const pc_toklist *in, pc_toklist *out, pc_error *err)
{
    for (size_t i = 0; i < in->spans.n; i++) {
        size_t len, start = out->text.n;
        const char *t = tok(in, i, &len);
        for (size_t k = 0; k < len;) {
            size_t n = (size_t)pc_utf8_char_len(t + k);
            if (n == st->text_len && memcmp(t + k, st->text, n) == 0) {
                if (i > 0 || !st->prepend) PC_TRY(pc_strbuf_append(&out->text, " ", 1, err));
            } else {
                PC_TRY(pc_strbuf_append(&out->text, t + k, n, err));
            }
            k += n;
        }
        PC_TRY(pc_spanbuf_push(&out->spans, start, out->text.n, err));
    }
    return PEFTC_OK;
}

static pc_status replace(const pc_dec_step *st, const pc_toklist *in, pc_toklist *out, pc_dec_work *w,
                         pc_error *err)
{
    for (size_t i = 0; i < in->spans.n; i++) {
        size_t len, start = out->text.n, done = 0;
        const char *t = tok(in, i, &len);
        w->matches.n = 0;
        PC_TRY(pc_pattern_find_all(&st->pattern, t, len, &w->match, &w->matches, err));
        for (size_t k = 0; k < w->matches.n; k++) {
            PC_TRY(pc_strbuf_append(&out->text, t + done, w->matches.v[k].start - done, err));
            PC_TRY(pc_strbuf_append(&out->text, st->text, st->text_len, err));
            done = w->matches.v[k].end;
        }
        PC_TRY(pc_strbuf_append(&out->text, t + done, len - done, err));
        PC_TRY(pc_spanbuf_push(&out->spans, start, out->text.n, err));
    }
    return PEFTC_OK;
}

/* Strip: up to start copies of the character off each token's left end, up to stop off its right. */
static pc_status strip(const pc_dec_step *st, const pc_toklist *in, pc_toklist *out, pc_error *err)
{
    size_t c = st->text_len;
    for (size_t i = 0; i < in->spans.n; i++) {
        size_t len, a = 0, b;
        const char *t = tok(in, i, &len);
        for (size_t k = 0; k < st->start && a + c <= len && memcmp(t + a, st->text, c) == 0; k++) a += c;
        b = len;
        for (size_t k = 0; k < st->stop && b >= a + c && memcmp(t + b - c, st->text, c) == 0; k++) b -= c;
        PC_TRY(pc_toklist_push(out, t + a, b - a, err));
    }
    return PEFTC_OK;
}

static pc_status fuse(const pc_toklist *in, pc_toklist *out, pc_error *err)
{
    size_t start = out->text.n;
    for (size_t i = 0; i < in->spans.n; i++) {
        size_t len;
        const char *t = tok(in, i, &len);
        PC_TRY(pc_strbuf_append(&out->text, t, len, err));
    }
    return pc_spanbuf_push(&out->spans, start, out->text.n, err);
}

static pc_status run_step(const pc_dec_step *st, const pc_toklist *in, pc_toklist *out, pc_dec_work *w,
                          pc_strbuf *tmp, pc_error *err)
{
    switch (st->kind) {
    case PC_DEC_BYTE_LEVEL: return byte_level(in, out, tmp, err);
    case PC_DEC_WORDPIECE: return wordpiece(st, in, out, tmp, err);
    case PC_DEC_METASPACE: return metaspace(st, in, out, err);
    case PC_DEC_REPLACE: return replace(st, in, out, w, err);
    case PC_DEC_BYTE_FALLBACK: return byte_fallback(in, out, tmp, err);
    case PC_DEC_FUSE: return fuse(in, out, err);
    case PC_DEC_STRIP: return strip(st, in, out, err);
    }
    return pc_fail(err, PEFTC_ERR_INVALID, "decoder step of unknown kind %d", (int)st->kind);
}

pc_status pc_decoder_run(const pc_decoder *d, pc_dec_work *w, pc_strbuf *out, pc_error *err)
{
    pc_toklist *in = &w->a, *next = &w->b;
    for (size_t i = 0; i < d->n; i++) {
        next->text.n = 0;
        next->spans.n = 0;
        PC_TRY(run_step(&d->steps[i], in, next, w, out, err));
        pc_toklist *t = in;
        in = next;
        next = t;
    }
    out->n = 0;
    PC_TRY(pc_strbuf_append(out, "", 0, err));
    for (size_t i = 0; i < in->spans.n; i++) {       /* no decoder: tokens joined by spaces */
        size_t len;
        const char *t = tok(in, i, &len);
        if (i > 0 && d->n == 0) PC_TRY(pc_strbuf_append(out, " ", 1, err));
        PC_TRY(pc_strbuf_append(out, t, len, err));
    }
    return PEFTC_OK;
}
