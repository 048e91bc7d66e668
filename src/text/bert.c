#include "text/bert.h"

#include "text/unicode.h"

/* clean_text and handle_chinese_chars, code point by code point, into out. */
static pc_status clean_and_space(const pc_bert_normalizer *bn, const char *s, size_t len, pc_cpbuf *out,
                                 pc_error *err)
{
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        i += (size_t)pc_utf8_decode(s + i, &cp);
        if (bn->clean_text) {
            if (pc_uni_is_removed_control(cp)) continue;
            if (pc_uni_is_whitespace(cp)) cp = ' ';
        }
        if (bn->handle_chinese_chars && pc_uni_is_cjk(cp)) {
            PC_TRY(pc_cpbuf_reserve(out, 3, err));
            out->v[out->n++] = ' ';
            out->v[out->n++] = cp;
            out->v[out->n++] = ' ';
        } else {
            PC_TRY(pc_cpbuf_push(out, cp, err));
        }
    }
    return PEFTC_OK;
}

/* NFD of in, without the nonspacing marks, into out. */
static pc_status strip_accents(const pc_cpbuf *in, pc_cpbuf *out, pc_error *err)
{
    PC_TRY(pc_uni_nfd(in->v, in->n, out, err));
    size_t kept = 0;
    for (size_t i = 0; i < out->n; i++)
        if (!pc_uni_is_nonspacing_mark(out->v[i])) out->v[kept++] = out->v[i];
    out->n = kept;
    return PEFTC_OK;
}

static pc_status append_utf8(const pc_cpbuf *cps, bool lowercase, pc_strbuf *out, pc_error *err)
{
    for (size_t i = 0; i < cps->n; i++) {
        uint32_t lower[2];
        int n = 1;
        lower[0] = cps->v[i];
        if (lowercase) n = pc_uni_lower(cps->v[i], lower);
        for (int k = 0; k < n; k++) {
            char u[4];
            PC_TRY(pc_strbuf_append(out, u, (size_t)pc_utf8_encode(lower[k], u), err));
        }
    }
    return PEFTC_OK;
}

pc_status pc_bert_normalize(const pc_bert_normalizer *bn, const char *s, size_t len, pc_strbuf *out,
                            pc_cpbuf *scratch, pc_cpbuf *scratch2, pc_error *err)
{
    scratch->n = 0;
    PC_TRY(clean_and_space(bn, s, len, scratch, err));
    if (bn->strip_accents) {
        scratch2->n = 0;
        PC_TRY(strip_accents(scratch, scratch2, err));
        return append_utf8(scratch2, bn->lowercase, out, err);
    }
    return append_utf8(scratch, bn->lowercase, out, err);
}

bool pc_bert_next_word(const char *s, size_t len, size_t *pos, size_t *start, size_t *end, size_t *n_chars)
{
    size_t i = *pos;
    uint32_t cp = 0;
    int n = 0;
    while (i < len) {                                   /* skip whitespace */
        n = pc_utf8_decode(s + i, &cp);
        if (!pc_uni_is_whitespace(cp)) break;
        i += (size_t)n;
    }
    if (i >= len) { *pos = len; return false; }
    *start = i;
    *n_chars = 1;
    i += (size_t)n;
    if (!pc_uni_is_punct(cp)) {
        while (i < len) {
            n = pc_utf8_decode(s + i, &cp);
            if (pc_uni_is_whitespace(cp) || pc_uni_is_punct(cp)) break;
            i += (size_t)n;
            (*n_chars)++;
        }
    }
    *end = i;
    *pos = i;
    return true;
}
