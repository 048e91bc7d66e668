#include "text/added.h"

#include "text/unicode.h"

#include <stdlib.h>
#include <string.h>

void pc_added_free(pc_added_vocab *av)
{
    for (size_t i = 0; i < av->n; i++) {
        if (av->tokens[i].pattern != av->tokens[i].content) free(av->tokens[i].pattern);
        free(av->tokens[i].content);
    }
    free(av->tokens);
    memset(av, 0, sizeof *av);
}

static void index_first_byte(pc_added_vocab *av, const pc_added_token *t)
{
    if (t->pattern_len > 0) av->first_byte[t->normalized][(unsigned char)t->pattern[0]] = true;
}

pc_status pc_added_add(pc_added_vocab *av, const char *content, size_t len, int32_t id, bool single_word,
                       bool lstrip, bool rstrip, bool normalized, bool special, pc_error *err)
{
    char *copy = malloc(len + 1);
    if (!copy) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for added token '%.*s'", (int)len, content);
    memcpy(copy, content, len);
    copy[len] = '\0';
    pc_added_token t = {copy, len, copy, len, id, single_word, lstrip, rstrip, normalized, special};
    for (size_t i = 0; i < av->n; i++) {
        pc_added_token *old = &av->tokens[i];
        if (old->len == len && memcmp(old->content, content, len) == 0) {
            if (old->pattern != old->content) free(old->pattern);
            free(old->content);
            *old = t;
            index_first_byte(av, old);
            return PEFTC_OK;
        }
    }
    pc_added_token *grown = realloc(av->tokens, (av->n + 1) * sizeof *grown);
    if (!grown) { free(copy); return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for %zu added tokens", av->n + 1); }
    av->tokens = grown;
    av->tokens[av->n++] = t;
    index_first_byte(av, &t);
    return PEFTC_OK;
}

void pc_added_set_pattern(pc_added_vocab *av, size_t i, char *pattern, size_t len)
{
    pc_added_token *t = &av->tokens[i];
    if (t->pattern != t->content) free(t->pattern);
    t->pattern = pattern;
    t->pattern_len = len;
    index_first_byte(av, t);
}

int32_t pc_added_find(const pc_added_vocab *av, const char *s, size_t len)
{
    for (size_t i = 0; i < av->n; i++)
        if (av->tokens[i].len == len && memcmp(av->tokens[i].content, s, len) == 0) return av->tokens[i].id;
    return -1;
}

const pc_added_token *pc_added_by_id(const pc_added_vocab *av, int32_t id)
{
    for (size_t i = 0; i < av->n; i++)
        if (av->tokens[i].id == id) return &av->tokens[i];
    return NULL;
}


/* Start of the code point that ends just before byte i. */
static size_t prev_char(const char *s, size_t i)
{
    do i--; while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80);
    return i;
}

static bool whitespace_at(const char *s, size_t i, size_t *n)
{
    uint32_t cp;
    *n = (size_t)pc_utf8_decode(s + i, &cp);
    return pc_uni_is_whitespace(cp);
}

static bool word_before(const char *s, size_t i)
{
    if (i == 0) return false;
    uint32_t cp;
    pc_utf8_decode(s + prev_char(s, i), &cp);
    return pc_uni_is_word_char(cp);
}

static bool word_after(const char *s, size_t len, size_t i)
{
    if (i >= len) return false;
    uint32_t cp;
    pc_utf8_decode(s + i, &cp);
    return pc_uni_is_word_char(cp);
}

/* Longest pattern (of the given normalized flag) that starts at s[i], or NULL. */
static const pc_added_token *longest_at(const pc_added_vocab *av, bool normalized, const char *s, size_t len,
                                        size_t i)
{
    const pc_added_token *best = NULL;
    for (size_t k = 0; k < av->n; k++) {
        const pc_added_token *t = &av->tokens[k];
        if (t->normalized != normalized || t->pattern_len == 0 || t->pattern_len > len - i) continue;
        if (best && t->pattern_len <= best->pattern_len) continue;
        if (memcmp(s + i, t->pattern, t->pattern_len) == 0) best = t;
    }
    return best;
}

bool pc_added_next(const pc_added_vocab *av, bool normalized, const char *s, size_t len, size_t *search,
                   size_t floor, const pc_added_token **tok, size_t *start, size_t *end)
{
    for (size_t i = *search; i < len; i++) {
        if (!av->first_byte[normalized][(unsigned char)s[i]]) continue;
        const pc_added_token *t = longest_at(av, normalized, s, len, i);
        if (!t) continue;
        size_t a = i, b = i + t->pattern_len;
        if (t->single_word && (word_before(s, a) || word_after(s, len, b))) {
            i = b - 1;                      /* a discarded match still consumes its bytes */
            continue;
        }
        *search = b;
        size_t n;
        while (t->lstrip && a > floor && whitespace_at(s, prev_char(s, a), &n)) a = prev_char(s, a);
        while (t->rstrip && b < len && whitespace_at(s, b, &n)) b += n;
        *tok = t;
        *start = a;
        *end = b;
        return true;
    }
    *search = len;
    return false;
}
