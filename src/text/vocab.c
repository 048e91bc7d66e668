#include "text/vocab.h"

#include "formats/json.h"
#include "text/unicode.h"

#include <stdlib.h>
#include <string.h>

#define NO_OFFSET UINT32_MAX

void pc_vocab_init(pc_vocab *v)
{
    memset(v, 0, sizeof *v);
}

void pc_vocab_free(pc_vocab *v)
{
    free(v->pool);
    free(v->id_off);
    free(v->id_len);
    free(v->slots);
    pc_vocab_init(v);
}

/* FNV-1a over the concatenation a + b. */
static uint64_t hash2(const char *a, size_t alen, const char *b, size_t blen)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < alen; i++) h = (h ^ (unsigned char)a[i]) * 1099511628211ull;
    for (size_t i = 0; i < blen; i++) h = (h ^ (unsigned char)b[i]) * 1099511628211ull;
    return h;
}

static int same2(const pc_vocab *v, int32_t id, const char *a, size_t alen, const char *b, size_t blen)
{
    if (v->id_len[id] != alen + blen) return 0;
    const char *t = v->pool + v->id_off[id];
    return memcmp(t, a, alen) == 0 && memcmp(t + alen, b, blen) == 0;
}

/* Slot holding prefix+s, or the empty slot where it would go. */
static size_t probe(const pc_vocab *v, const char *a, size_t alen, const char *b, size_t blen)
{
    size_t mask = v->n_slots - 1, i = (size_t)hash2(a, alen, b, blen) & mask;
    while (v->slots[i] >= 0 && !same2(v, v->slots[i], a, alen, b, blen)) i = (i + 1) & mask;
    return i;
}

int32_t pc_vocab_find2(const pc_vocab *v, const char *prefix, size_t plen, const char *s, size_t len)
{
    if (v->n_slots == 0 || plen + len > v->max_len) return -1;
    return v->slots[probe(v, prefix, plen, s, len)];
}

int32_t pc_vocab_find(const pc_vocab *v, const char *s, size_t len)
{
    return pc_vocab_find2(v, "", 0, s, len);
}

const char *pc_vocab_token(const pc_vocab *v, int32_t id, size_t *len)
{
    if (id < 0 || id >= v->n_ids || v->id_off[id] == NO_OFFSET) return NULL;
    if (len) *len = v->id_len[id];
    return v->pool + v->id_off[id];
}

static pc_status grow_ids(pc_vocab *v, int32_t id, pc_error *err)
{
    if (id < v->n_ids) return PEFTC_OK;
    size_t n = (size_t)id + 1;
    if (n > v->id_cap) {
        size_t cap = v->id_cap * 2 > n ? v->id_cap * 2 : n;
        uint32_t *off = realloc(v->id_off, cap * sizeof *off);
        if (!off) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for %zu vocabulary ids", cap);
        v->id_off = off;
        uint32_t *len = realloc(v->id_len, cap * sizeof *len);
        if (!len) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for %zu vocabulary ids", cap);
        v->id_len = len;
        v->id_cap = cap;
    }
    for (size_t i = (size_t)v->n_ids; i < n; i++) { v->id_off[i] = NO_OFFSET; v->id_len[i] = 0; }
    v->n_ids = (int32_t)n;
    return PEFTC_OK;
}

/* Doubles the hash table when it would become more than half full. */
static pc_status grow_slots(pc_vocab *v, pc_error *err)
{
    if ((v->n_tokens + 1) * 2 <= v->n_slots) return PEFTC_OK;
    size_t n = v->n_slots ? v->n_slots * 2 : 1024;
    int32_t *slots = malloc(n * sizeof *slots);
    if (!slots) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for a %zu-slot vocabulary table", n);
    for (size_t i = 0; i < n; i++) slots[i] = -1;
    int32_t *old = v->slots;
    size_t n_old = v->n_slots;
    v->slots = slots;
    v->n_slots = n;
    for (size_t i = 0; i < n_old; i++) {
        int32_t id = old[i];
        if (id >= 0) v->slots[probe(v, v->pool + v->id_off[id], v->id_len[id], "", 0)] = id;
    }
    free(old);
    return PEFTC_OK;
}

static pc_status store_string(pc_vocab *v, const char *tok, size_t len, uint32_t *off, pc_error *err)
{
    if (v->pool_len + len + 1 > UINT32_MAX - 1)
        return pc_fail(err, PEFTC_ERR_FORMAT, "vocabulary strings exceed 4 GiB");
    if (v->pool_len + len + 1 > v->pool_cap) {
        size_t cap = v->pool_cap ? v->pool_cap * 2 : 1 << 16;
        while (cap < v->pool_len + len + 1) cap *= 2;
        char *pool = realloc(v->pool, cap);
        if (!pool) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for %zu bytes of vocabulary", cap);
        v->pool = pool;
        v->pool_cap = cap;
    }
    memcpy(v->pool + v->pool_len, tok, len);
    v->pool[v->pool_len + len] = '\0';
    *off = (uint32_t)v->pool_len;
    v->pool_len += len + 1;
    return PEFTC_OK;
}

pc_status pc_vocab_add(pc_vocab *v, const char *tok, size_t len, int32_t id, pc_error *err)
{
    int shown = (int)(len > 64 ? 64 : len);
    if (id < 0 || id > PC_VOCAB_MAX_ID)
        return pc_fail(err, PEFTC_ERR_FORMAT, "token '%.*s' has id %d outside [0, %d]",
                       shown, tok, (int)id, (int)PC_VOCAB_MAX_ID);
    size_t have_len;
    const char *have = pc_vocab_token(v, id, &have_len);
    if (have) {
        if (have_len == len && memcmp(have, tok, len) == 0) return PEFTC_OK;
        return pc_fail(err, PEFTC_ERR_FORMAT, "id %d is given to both '%s' and '%.*s'", (int)id, have, shown, tok);
    }
    PC_TRY(grow_ids(v, id, err));
    PC_TRY(grow_slots(v, err));
    size_t slot = probe(v, tok, len, "", 0);
    int32_t old = v->slots[slot];
    if (old >= 0) {             /* a repeated string: the last id wins and the old id is unused */
        v->id_off[id] = v->id_off[old];
        v->id_len[id] = v->id_len[old];
        v->id_off[old] = NO_OFFSET;
        v->slots[slot] = id;
        return PEFTC_OK;
    }
    uint32_t off = 0;
    PC_TRY(store_string(v, tok, len, &off, err));
    v->id_off[id] = off;
    v->id_len[id] = (uint32_t)len;
    v->slots[slot] = id;
    v->n_tokens++;
    if (len > v->max_len) v->max_len = len;
    return PEFTC_OK;
}

pc_status pc_vocab_parse_json(pc_vocab *v, const cJSON *vocab, const char *what, pc_error *err)
{
    if (!cJSON_IsObject(vocab)) return pc_fail(err, PEFTC_ERR_FORMAT, "%s: model has no 'vocab' object", what);
    for (const cJSON *e = vocab->child; e; e = e->next) {
        size_t len = strlen(e->string);
        if (pc_utf8_invalid_at(e->string, len) < len)
            return pc_fail(err, PEFTC_ERR_FORMAT, "%s: vocab token '%s' is not valid UTF-8", what, e->string);
        if (!pc_json_is_int32(e))
            return pc_fail(err, PEFTC_ERR_FORMAT, "%s: vocab token '%s' has no integer id", what, e->string);
        pc_status s = pc_vocab_add(v, e->string, len, (int32_t)e->valuedouble, err);
        if (s != PEFTC_OK) return pc_error_prefix(err, "%s", what);
    }
    return PEFTC_OK;
}
