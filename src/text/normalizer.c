#include "text/normalizer.h"

#include "formats/json.h"
#include "text/unicode.h"

#include <utf8proc.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pc_normalizer_free(pc_normalizer *nm)
{
    for (size_t i = 0; i < nm->n; i++) {
        free(nm->steps[i].text);
        pc_pattern_free(&nm->steps[i].pattern);
    }
    free(nm->steps);
    memset(nm, 0, sizeof *nm);
}

void pc_norm_work_free(pc_norm_work *w)
{
    free(w->tmp.v);
    free(w->cp1.v);
    free(w->cp2.v);
    free(w->spans.v);
    pc_match_work_free(&w->match);
    memset(w, 0, sizeof *w);
}

static pc_status add_step(pc_normalizer *nm, pc_norm_step **step, pc_error *err)
{
    pc_norm_step *grown = realloc(nm->steps, (nm->n + 1) * sizeof *grown);
    if (!grown) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for normalizer steps");
    nm->steps = grown;
    *step = &nm->steps[nm->n++];
    memset(*step, 0, sizeof **step);
    return PEFTC_OK;
}

pc_status pc_normalizer_add_bert(pc_normalizer *nm, const pc_bert_normalizer *bert, pc_error *err)
{
    pc_norm_step *st = NULL;
    PC_TRY(add_step(nm, &st, err));
    st->kind = PC_NORM_BERT;
    st->bert = *bert;
    return PEFTC_OK;
}

static pc_status copy_string(const cJSON *obj, const char *key, char **out, size_t *len, const char *what,
                             pc_error *err)
{
    const char *s = NULL;
    PC_TRY(pc_json_get_string(obj, key, NULL, &s, what, err));
    if (!s) return pc_fail(err, PEFTC_ERR_FORMAT, "%s: '%s' is missing", what, key);
    *len = strlen(s);
    *out = malloc(*len + 1);
    if (!*out) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for '%s'", key);
    memcpy(*out, s, *len + 1);
    return PEFTC_OK;
}

static pc_status parse_bert(pc_norm_step *st, const cJSON *j, const char *what, pc_error *err)
{
    st->kind = PC_NORM_BERT;
    st->bert = (pc_bert_normalizer){true, true, true, true};
    PC_TRY(pc_json_get_bool(j, "clean_text", true, &st->bert.clean_text, what, err));
    PC_TRY(pc_json_get_bool(j, "handle_chinese_chars", true, &st->bert.handle_chinese_chars, what, err));
    PC_TRY(pc_json_get_bool(j, "lowercase", true, &st->bert.lowercase, what, err));
    /* strip_accents null follows lowercase */
    return pc_json_get_bool(j, "strip_accents", st->bert.lowercase, &st->bert.strip_accents, what, err);
}

static pc_status parse_one(pc_normalizer *nm, const cJSON *j, const char *what, pc_error *err);

static pc_status parse_sequence(pc_normalizer *nm, const cJSON *j, const char *what, pc_error *err)
{
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(j, "normalizers");
    if (!cJSON_IsArray(list)) return pc_fail(err, PEFTC_ERR_FORMAT, "%s: Sequence has no 'normalizers' list", what);
    size_t i = 0;
    for (const cJSON *item = list->child; item; item = item->next, i++) {
        char sub[512];
        snprintf(sub, sizeof sub, "%s.normalizers[%zu]", what, i);
        PC_TRY(parse_one(nm, item, sub, err));
    }
    return PEFTC_OK;
}

static pc_status parse_one(pc_normalizer *nm, const cJSON *j, const char *what, pc_error *err)
{
    const char *type = NULL;
    if (!cJSON_IsObject(j)) return pc_fail(err, PEFTC_ERR_FORMAT, "%s must be an object", what);
    PC_TRY(pc_json_get_string(j, "type", NULL, &type, what, err));
    if (!type) return pc_fail(err, PEFTC_ERR_FORMAT, "%s has no \"type\"", what);
    if (strcmp(type, "Sequence") == 0) return parse_sequence(nm, j, what, err);
    static const struct { const char *name; pc_norm_kind kind; } simple[] = {
        {"NFC", PC_NORM_NFC}, {"NFD", PC_NORM_NFD}, {"NFKC", PC_NORM_NFKC}, {"NFKD", PC_NORM_NFKD},
        {"Lowercase", PC_NORM_LOWERCASE}, {"BertNormalizer", PC_NORM_BERT}, {"Prepend", PC_NORM_PREPEND},
        {"Replace", PC_NORM_REPLACE}, {"Strip", PC_NORM_STRIP},
    };
    size_t k = 0;
    while (k < sizeof simple / sizeof simple[0] && strcmp(simple[k].name, type) != 0) k++;
    if (k == sizeof simple / sizeof simple[0])
        return pc_fail(err, PEFTC_ERR_UNSUPPORTED, "%s: normalizer type '%s' is not supported", what, type);
    pc_norm_step *st = NULL;
    PC_TRY(add_step(nm, &st, err));
    st->kind = simple[k].kind;
    switch (st->kind) {
    case PC_NORM_BERT:
        return parse_bert(st, j, what, err);
    case PC_NORM_PREPEND:
        return copy_string(j, "prepend", &st->text, &st->text_len, what, err);
    case PC_NORM_REPLACE:
        PC_TRY(copy_string(j, "content", &st->text, &st->text_len, what, err));
        return pc_pattern_parse(&st->pattern, j, "pattern", what, err);
    case PC_NORM_STRIP:
        PC_TRY(pc_json_get_bool(j, "strip_left", true, &st->strip_left, what, err));
        return pc_json_get_bool(j, "strip_right", true, &st->strip_right, what, err);
    default:
        return PEFTC_OK;
    }
}

pc_status pc_normalizer_parse(pc_normalizer *nm, const cJSON *json, const char *what, pc_error *err)
{
    if (!json || cJSON_IsNull(json)) return PEFTC_OK;
    return parse_one(nm, json, what, err);
}

/* ---- applying ------------------------------------------------------------------------ */

static pc_status replace(const pc_norm_step *st, const char *s, size_t len, pc_norm_work *w, pc_strbuf *out,
                         pc_error *err)
{
    w->spans.n = 0;
    PC_TRY(pc_pattern_find_all(&st->pattern, s, len, &w->match, &w->spans, err));
    size_t done = 0;
    for (size_t i = 0; i < w->spans.n; i++) {
        PC_TRY(pc_strbuf_append(out, s + done, w->spans.v[i].start - done, err));
        PC_TRY(pc_strbuf_append(out, st->text, st->text_len, err));
        done = w->spans.v[i].end;
    }
    return pc_strbuf_append(out, s + done, len - done, err);
}

static pc_status unicode_form(pc_norm_kind kind, const char *s, size_t len, pc_strbuf *out, pc_error *err)
{
    int options = UTF8PROC_STABLE;
    if (kind == PC_NORM_NFC || kind == PC_NORM_NFKC) options |= UTF8PROC_COMPOSE;
    else options |= UTF8PROC_DECOMPOSE;
    if (kind == PC_NORM_NFKC || kind == PC_NORM_NFKD) options |= UTF8PROC_COMPAT;
    utf8proc_uint8_t *mapped = NULL;
    utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len, &mapped,
                                      (utf8proc_option_t)options);
    if (n < 0) return pc_fail(err, PEFTC_ERR_NOMEM, "Unicode normalization failed: %s", utf8proc_errmsg(n));
    pc_status st = pc_strbuf_append(out, (const char *)mapped, (size_t)n, err);
    free(mapped);
    return st;
}

static pc_status lowercase(const char *s, size_t len, pc_strbuf *out, pc_error *err)
{
    for (size_t i = 0; i < len;) {
        uint32_t cp, lower[2];
        i += (size_t)pc_utf8_decode(s + i, &cp);
        int n = pc_uni_lower(cp, lower);
        for (int k = 0; k < n; k++) {
            char u[4];
            PC_TRY(pc_strbuf_append(out, u, (size_t)pc_utf8_encode(lower[k], u), err));
        }
    }
    return PEFTC_OK;
}

static pc_status strip(const pc_norm_step *st, const char *s, size_t len, pc_strbuf *out, pc_error *err)
{
    size_t a = 0, b = len;
    uint32_t cp;
    while (st->strip_left && a < b) {
        int n = pc_utf8_decode(s + a, &cp);
        if (!pc_uni_is_whitespace(cp)) break;
        a += (size_t)n;
    }
    while (st->strip_right && b > a) {
        size_t k = b - 1;
        while (k > a && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
        pc_utf8_decode(s + k, &cp);
        if (!pc_uni_is_whitespace(cp)) break;
        b = k;
    }
    return pc_strbuf_append(out, s + a, b - a, err);
}

static pc_status apply_step(const pc_norm_step *st, const char *s, size_t len, pc_norm_work *w, pc_strbuf *out,
                            pc_error *err)
{
    switch (st->kind) {
    case PC_NORM_BERT:
        return pc_bert_normalize(&st->bert, s, len, out, &w->cp1, &w->cp2, err);
    case PC_NORM_PREPEND:
        if (len > 0) PC_TRY(pc_strbuf_append(out, st->text, st->text_len, err));
        return pc_strbuf_append(out, s, len, err);
    case PC_NORM_REPLACE:
        return replace(st, s, len, w, out, err);
    case PC_NORM_NFC:
    case PC_NORM_NFD:
    case PC_NORM_NFKC:
    case PC_NORM_NFKD:
        return unicode_form(st->kind, s, len, out, err);
    case PC_NORM_LOWERCASE:
        return lowercase(s, len, out, err);
    case PC_NORM_STRIP:
        return strip(st, s, len, out, err);
    }
    return pc_fail(err, PEFTC_ERR_INVALID, "normalizer step of unknown kind %d", (int)st->kind);
}

pc_status pc_normalizer_apply(const pc_normalizer *nm, const char *s, size_t len, pc_norm_work *w, pc_strbuf *out,
                              pc_error *err)
{
    out->n = 0;
    if (nm->n == 0) return pc_strbuf_append(out, s, len, err);
    /* Steps alternate between out and w->tmp so that the last one writes into out. */
    pc_strbuf *bufs[2] = {out, &w->tmp};
    const char *in = s;
    size_t in_len = len;
    for (size_t i = 0; i < nm->n; i++) {
        pc_strbuf *dst = bufs[(nm->n - 1 - i) % 2];
        dst->n = 0;
        PC_TRY(apply_step(&nm->steps[i], in, in_len, w, dst, err));
        in = dst->v ? dst->v : "";
        in_len = dst->n;
    }
    return PEFTC_OK;
}
