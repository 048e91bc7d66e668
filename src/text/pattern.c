#include "text/pattern.h"

#include "text/unicode.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdlib.h>
#include <string.h>

pc_status pc_spanbuf_push(pc_spanbuf *b, size_t start, size_t end, pc_error *err)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        pc_span *v = realloc(b->v, cap * sizeof *v);
        if (!v) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for %zu text spans", cap);
        b->v = v;
        b->cap = cap;
    }
    b->v[b->n++] = (pc_span){start, end};
    return PEFTC_OK;
}

pc_status pc_pattern_regex(pc_pattern *p, const char *regex, const char *what, pc_error *err)
{
    int code;
    PCRE2_SIZE offset;
    memset(p, 0, sizeof *p);
    p->re = pcre2_compile((PCRE2_SPTR)regex, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &code, &offset, NULL);
    if (!p->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: bad regex '%s' at offset %zu: %s", what, regex, (size_t)offset,
                       (const char *)msg);
    }
    pcre2_jit_compile(p->re, PCRE2_JIT_COMPLETE);     /* without JIT, matching just runs slower */
    return PEFTC_OK;
}

pc_status pc_pattern_literal(pc_pattern *p, const char *s, size_t len, pc_error *err)
{
    memset(p, 0, sizeof *p);
    p->literal = malloc(len + 1);
    if (!p->literal) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for a pattern");
    memcpy(p->literal, s, len);
    p->literal[len] = '\0';
    p->literal_len = len;
    return PEFTC_OK;
}

pc_status pc_pattern_parse(pc_pattern *p, const cJSON *obj, const char *key, const char *what, pc_error *err)
{
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(obj, key);
    const cJSON *str = cJSON_GetObjectItemCaseSensitive(pat, "String");
    const cJSON *re = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
    if (cJSON_IsString(str)) return pc_pattern_literal(p, str->valuestring, strlen(str->valuestring), err);
    if (cJSON_IsString(re)) return pc_pattern_regex(p, re->valuestring, what, err);
    return pc_fail(err, PEFTC_ERR_FORMAT, "%s: '%s' must be {\"String\": ...} or {\"Regex\": ...}", what, key);
}

void pc_pattern_free(pc_pattern *p)
{
    pcre2_code_free(p->re);
    free(p->literal);
    memset(p, 0, sizeof *p);
}

void pc_match_work_free(pc_match_work *w)
{
    pcre2_match_data_free(w->md);
    free(w->copy);
    memset(w, 0, sizeof *w);
}

static pc_status find_literal(const pc_pattern *p, const char *s, size_t len, pc_spanbuf *out, pc_error *err)
{
    if (p->literal_len == 0) return PEFTC_OK;
    for (size_t i = 0; i + p->literal_len <= len;) {
        const char *hit = memmem(s + i, len - i, p->literal, p->literal_len);
        if (!hit) break;
        size_t start = (size_t)(hit - s);
        PC_TRY(pc_spanbuf_push(out, start, start + p->literal_len, err));
        i = start + p->literal_len;
    }
    return PEFTC_OK;
}

/* s itself, or a copy in w->copy with the characters PCRE2 would class differently from
 * Oniguruma replaced by stand-ins of the same byte length (so that offsets stay valid). */
static pc_status with_stand_ins(const char *s, size_t len, pc_match_work *w, const char **out, pc_error *err)
{
    *out = s;
    for (size_t i = 0; i < len;) {
        int n = pc_utf8_char_len(s + i);
        uint32_t cp, alt = 0;
        if (n >= 3 && (pc_utf8_decode(s + i, &cp), alt = pc_uni_regex_stand_in(cp)) != cp) {
            if (*out == s) {
                if (w->copy_cap < len) {
                    char *grown = realloc(w->copy, len);
                    if (!grown) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for %zu bytes of text", len);
                    w->copy = grown;
                    w->copy_cap = len;
                }
                memcpy(w->copy, s, len);
                *out = w->copy;
            }
            pc_utf8_encode(alt, w->copy + i);
        }
        i += (size_t)n;
    }
    return PEFTC_OK;
}

pc_status pc_pattern_find_all(const pc_pattern *p, const char *s, size_t len, pc_match_work *w, pc_spanbuf *out,
                              pc_error *err)
{
    if (!p->re) return find_literal(p, s, len, out, err);
    PC_TRY(with_stand_ins(s, len, w, &s, err));
    if (!w->md) {
        w->md = pcre2_match_data_create(1, NULL);     /* only the whole match is needed */
        if (!w->md) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for regex match data");
    }
    size_t from = 0, last_end = (size_t)-1;
    while (from <= len) {
        int rc = pcre2_match(p->re, (PCRE2_SPTR)s, len, from, PCRE2_NO_UTF_CHECK, w->md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return pc_fail(err, PEFTC_ERR_INVALID, "regex match failed: %s", (const char *)msg);
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(w->md);
        size_t start = ov[0], end = ov[1];
        if (start == end && end == last_end) {        /* no empty match right after a match */
            if (from >= len) break;
            from += (size_t)pc_utf8_char_len(s + from);
            continue;
        }
        PC_TRY(pc_spanbuf_push(out, start, end, err));
        last_end = end;
        if (start == end) {
            if (end >= len) break;
            from = end + (size_t)pc_utf8_char_len(s + end);
        } else {
            from = end;
        }
    }
    return PEFTC_OK;
}
