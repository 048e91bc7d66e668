#include "text/buf.h"

#include <stdlib.h>
#include <string.h>

/* Capacity (in elements) to grow to so that n elements fit; doubling keeps appends O(1). */
static size_t new_capacity(size_t cap, size_t n)
{
    size_t c = cap ? cap : 64;
    while (c < n) c *= 2;
    return c;
}

static pc_status out_of_memory(pc_error *err, size_t n)
{
    return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for a %zu-element text buffer", n);
}

pc_status pc_strbuf_reserve(pc_strbuf *b, size_t more, pc_error *err)
{
    if (b->n + more + 1 <= b->cap) return PEFTC_OK;
    size_t cap = new_capacity(b->cap, b->n + more + 1);
    char *v = realloc(b->v, cap);
    if (!v) return out_of_memory(err, cap);
    b->v = v;
    b->cap = cap;
    return PEFTC_OK;
}

pc_status pc_strbuf_append(pc_strbuf *b, const char *s, size_t len, pc_error *err)
{
    PC_TRY(pc_strbuf_reserve(b, len, err));
    if (len > 0) memcpy(b->v + b->n, s, len);
    b->n += len;
    b->v[b->n] = '\0';
    return PEFTC_OK;
}

pc_status pc_cpbuf_reserve(pc_cpbuf *b, size_t more, pc_error *err)
{
    if (b->n + more <= b->cap) return PEFTC_OK;
    size_t cap = new_capacity(b->cap, b->n + more);
    uint32_t *v = realloc(b->v, cap * sizeof *v);
    if (!v) return out_of_memory(err, cap);
    b->v = v;
    b->cap = cap;
    return PEFTC_OK;
}

pc_status pc_cpbuf_push(pc_cpbuf *b, uint32_t cp, pc_error *err)
{
    PC_TRY(pc_cpbuf_reserve(b, 1, err));
    b->v[b->n++] = cp;
    return PEFTC_OK;
}

pc_status pc_idbuf_push(pc_idbuf *b, int32_t id, pc_error *err)
{
    if (b->n == b->cap) {
        size_t cap = new_capacity(b->cap, b->n + 1);
        int32_t *v = realloc(b->v, cap * sizeof *v);
        if (!v) return out_of_memory(err, cap);
        b->v = v;
        b->cap = cap;
    }
    b->v[b->n++] = id;
    return PEFTC_OK;
}
