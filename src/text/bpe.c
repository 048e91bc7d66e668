#include "text/bpe.h"

#include "formats/json.h"
#include "text/unicode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pc_bpe_free(pc_bpe *m)
{
    pc_vocab_free(&m->vocab);
    free(m->merges);
    free(m->unk_token);
    free(m->prefix);
    free(m->suffix);
    memset(m, 0, sizeof *m);
}

void pc_bpe_work_free(pc_bpe_work *w)
{
    free(w->sym);
    free(w->heap);
    free(w->piece.v);
    memset(w, 0, sizeof *w);
}

/* ---- the merge table: (left, right) -> (rank, merged id) ----------------------------- */

static uint64_t pair_key(int32_t a, int32_t b)
{
    return (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
}

/* Slot of key, or of the empty slot where it would go (MurmurHash3's 64-bit finalizer, so
 * that both ids reach the low bits; linear probing). */
static size_t merge_slot(const pc_bpe *m, uint64_t key)
{
    uint64_t h = key;
    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDull;
    h ^= h >> 33;
    h *= 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 33;
    size_t mask = m->merge_slots - 1, i = (size_t)h & mask;
    while (m->merges[i].key != PC_BPE_NO_PAIR && m->merges[i].key != key) i = (i + 1) & mask;
    return i;
}

/* The merge of pair (a, b), or NULL when there is none. */
static const pc_bpe_pair *find_merge(const pc_bpe *m, int32_t a, int32_t b)
{
    if (m->merge_slots == 0) return NULL;
    const pc_bpe_pair *p = &m->merges[merge_slot(m, pair_key(a, b))];
    return p->key == PC_BPE_NO_PAIR ? NULL : p;
}

static pc_status alloc_merges(pc_bpe *m, size_t n_merges, pc_error *err)
{
    size_t slots = 16;
    while (slots < 2 * n_merges) slots *= 2;
    m->merges = malloc(slots * sizeof *m->merges);
    if (!m->merges) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for %zu merges", n_merges);
    for (size_t i = 0; i < slots; i++) m->merges[i].key = PC_BPE_NO_PAIR;
    m->merge_slots = slots;
    return PEFTC_OK;
}

/* ---- parsing ----------------------------------------------------------------------- */

static int32_t token_id(const pc_bpe *m, const char *tok, size_t len)
{
    return pc_vocab_find(&m->vocab, tok, len);
}

/* Adds merge number rank: a + b (b without the continuing prefix) must be in the vocabulary.
 * A pair listed twice keeps its last rank, as Hugging Face's map does. */
static pc_status add_merge(pc_bpe *m, const char *a, size_t a_len, const char *b, size_t b_len, size_t rank,
                           const char *what, pc_strbuf *tmp, pc_error *err)
{
    int32_t ia = token_id(m, a, a_len), ib = token_id(m, b, b_len);
    if (ia < 0 || ib < 0)
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: merges[%zu]: token '%.*s' is not in the vocabulary", what, rank,
                       (int)(ia < 0 ? a_len : b_len), ia < 0 ? a : b);
    size_t skip = b_len >= m->prefix_len && memcmp(b, m->prefix, m->prefix_len) == 0 ? m->prefix_len : 0;
    tmp->n = 0;
    PC_TRY(pc_strbuf_append(tmp, a, a_len, err));
    PC_TRY(pc_strbuf_append(tmp, b + skip, b_len - skip, err));
    int32_t merged = token_id(m, tmp->v, tmp->n);
    if (merged < 0)
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: merges[%zu]: merged token '%s' is not in the vocabulary", what,
                       rank, tmp->v);
    m->merges[merge_slot(m, pair_key(ia, ib))] = (pc_bpe_pair){pair_key(ia, ib), (uint32_t)rank, merged};
    return PEFTC_OK;
}

/* One entry of "merges": "a b" (exactly one space) or ["a", "b"]. */
static pc_status parse_merge(pc_bpe *m, const cJSON *e, size_t rank, const char *what, pc_strbuf *tmp,
                             pc_error *err)
{
    if (cJSON_IsString(e)) {
        const char *s = e->valuestring, *sp = strchr(s, ' ');
        if (!sp || strchr(sp + 1, ' '))
            return pc_fail(err, PEFTC_ERR_FORMAT, "%s: merges[%zu] '%s' is not two tokens separated by one space",
                           what, rank, s);
        return add_merge(m, s, (size_t)(sp - s), sp + 1, strlen(sp + 1), rank, what, tmp, err);
    }
    const cJSON *a = cJSON_GetArrayItem(e, 0), *b = cJSON_GetArrayItem(e, 1);
    if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) != 2 || !cJSON_IsString(a) || !cJSON_IsString(b))
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: merges[%zu] is neither \"a b\" nor [\"a\", \"b\"]", what, rank);
    return add_merge(m, a->valuestring, strlen(a->valuestring), b->valuestring, strlen(b->valuestring), rank, what,
                     tmp, err);
}

static pc_status parse_merges(pc_bpe *m, const cJSON *merges, const char *what, pc_error *err)
{
    if (!cJSON_IsArray(merges)) return pc_fail(err, PEFTC_ERR_FORMAT, "%s: BPE model has no 'merges' list", what);
    PC_TRY(alloc_merges(m, (size_t)cJSON_GetArraySize(merges), err));
    pc_strbuf tmp = {0};
    pc_status s = PEFTC_OK;
    size_t rank = 0;
    for (const cJSON *e = merges->child; e && s == PEFTC_OK; e = e->next, rank++)
        s = parse_merge(m, e, rank, what, &tmp, err);
    free(tmp.v);
    return s;
}

/* obj[key] as a malloc'ed string, "" when absent or null. */
static pc_status optional_string(const cJSON *obj, const char *key, char **out, size_t *len, const char *what,
                                 pc_error *err)
{
    const char *s = NULL;
    PC_TRY(pc_json_get_string(obj, key, "", &s, what, err));
    *out = strdup(s);
    if (!*out) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for '%s'", key);
    if (len) *len = strlen(s);
    return PEFTC_OK;
}

static pc_status parse_options(pc_bpe *m, const cJSON *model, const char *what, pc_error *err)
{
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (dropout && !cJSON_IsNull(dropout) && !(cJSON_IsNumber(dropout) && dropout->valuedouble == 0))
        return pc_fail(err, PEFTC_ERR_UNSUPPORTED, "%s: BPE dropout is not supported (it makes encoding random)",
                       what);
    PC_TRY(pc_json_get_bool(model, "fuse_unk", false, &m->fuse_unk, what, err));
    PC_TRY(pc_json_get_bool(model, "byte_fallback", false, &m->byte_fallback, what, err));
    PC_TRY(pc_json_get_bool(model, "ignore_merges", false, &m->ignore_merges, what, err));
    PC_TRY(optional_string(model, "continuing_subword_prefix", &m->prefix, &m->prefix_len, what, err));
    PC_TRY(optional_string(model, "end_of_word_suffix", &m->suffix, &m->suffix_len, what, err));
    const char *unk = NULL;
    PC_TRY(pc_json_get_string(model, "unk_token", NULL, &unk, what, err));
    if (unk && !(m->unk_token = strdup(unk))) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for unk_token");
    return PEFTC_OK;
}

pc_status pc_bpe_parse(pc_bpe *m, const cJSON *model, const char *what, pc_error *err)
{
    memset(m, 0, sizeof *m);
    PC_TRY(parse_options(m, model, what, err));
    PC_TRY(pc_vocab_parse_json(&m->vocab, cJSON_GetObjectItemCaseSensitive(model, "vocab"), what, err));
    PC_TRY(parse_merges(m, cJSON_GetObjectItemCaseSensitive(model, "merges"), what, err));
    m->unk_id = m->unk_token ? token_id(m, m->unk_token, strlen(m->unk_token)) : -1;
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        m->byte_ids[b] = token_id(m, name, 6);
    }
    return PEFTC_OK;
}

/* ---- encoding ---------------------------------------------------------------------- */

static pc_status add_symbol(pc_bpe_work *w, int32_t id, size_t len, pc_error *err)
{
    if (w->n_sym == w->cap_sym) {
        size_t cap = w->cap_sym ? w->cap_sym * 2 : 64;
        pc_bpe_symbol *v = realloc(w->sym, cap * sizeof *v);
        if (!v) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for %zu BPE symbols", cap);
        w->sym = v;
        w->cap_sym = cap;
    }
    int32_t i = (int32_t)w->n_sym++;
    w->sym[i] = (pc_bpe_symbol){id, i - 1, -1, (uint32_t)len};
    if (i > 0) w->sym[i - 1].next = i;
    return PEFTC_OK;
}

/* The unk id, or an error when the model names an unk_token its vocabulary lacks. */
static pc_status unk_id(const pc_bpe *m, int32_t *id, pc_error *err)
{
    if (m->unk_id < 0) return pc_fail(err, PEFTC_ERR_FORMAT, "unk_token '%s' is not in the vocabulary", m->unk_token);
    *id = m->unk_id;
    return PEFTC_OK;
}

/* Id of a character piece (with the continuing prefix unless first, the suffix if last), or -1. */
static int32_t piece_id(const pc_bpe *m, const char *c, size_t n, bool first, bool last, pc_bpe_work *w,
                        const char **piece, size_t *piece_len, pc_status *s, pc_error *err)
{
    bool prefix = !first && m->prefix_len > 0, suffix = last && m->suffix_len > 0;
    *piece = c;
    *piece_len = n;
    if (!prefix && !suffix) return token_id(m, c, n);
    w->piece.n = 0;
    if ((prefix && (*s = pc_strbuf_append(&w->piece, m->prefix, m->prefix_len, err)) != PEFTC_OK) ||
        (*s = pc_strbuf_append(&w->piece, c, n, err)) != PEFTC_OK ||
        (suffix && (*s = pc_strbuf_append(&w->piece, m->suffix, m->suffix_len, err)) != PEFTC_OK))
        return -1;
    *piece = w->piece.v;
    *piece_len = w->piece.n;
    return token_id(m, w->piece.v, w->piece.n);
}

/* byte_fallback: one <0xXX> symbol per byte of the piece, if all of them exist. */
static bool byte_symbols(const pc_bpe *m, const char *piece, size_t n, pc_bpe_work *w, pc_status *s, pc_error *err)
{
    for (size_t i = 0; i < n; i++)
        if (m->byte_ids[(unsigned char)piece[i]] < 0) return false;
    for (size_t i = 0; i < n && *s == PEFTC_OK; i++) *s = add_symbol(w, m->byte_ids[(unsigned char)piece[i]], 1, err);
    return true;
}

/* The word's first symbols, character by character (Hugging Face's BPE::merge_word): a
 * character outside the vocabulary becomes its bytes' <0xXX> tokens with byte_fallback,
 * else an unk (consecutive ones fused into one with fuse_unk), else nothing. */
static pc_status initial_symbols(const pc_bpe *m, const char *w, size_t len, pc_bpe_work *work, pc_error *err)
{
    int32_t unk = -1;            /* a pending unk symbol and its byte length */
    size_t unk_len = 0;
    pc_status s = PEFTC_OK;
    work->n_sym = 0;
    for (size_t i = 0; i < len;) {
        size_t n = (size_t)pc_utf8_char_len(w + i);
        const char *piece;
        size_t piece_len;
        int32_t id = piece_id(m, w + i, n, i == 0, i + n == len, work, &piece, &piece_len, &s, err);
        PC_TRY(s);
        if (id >= 0) {
            if (unk >= 0) PC_TRY(add_symbol(work, unk, unk_len, err));
            unk = -1;
            PC_TRY(add_symbol(work, id, n, err));
        } else if (m->byte_fallback && byte_symbols(m, piece, piece_len, work, &s, err)) {
            PC_TRY(s);
        } else if (m->unk_token) {
            if (unk >= 0 && m->fuse_unk) {
                unk_len += n;
            } else {
                if (unk >= 0) PC_TRY(add_symbol(work, unk, unk_len, err));
                PC_TRY(unk_id(m, &unk, err));
                unk_len = n;
            }
        }
        i += n;
    }
    return unk >= 0 ? add_symbol(work, unk, unk_len, err) : PEFTC_OK;
}

/* Min-heap on (rank, pos): the lowest rank first, the leftmost among equals. */
static bool before(const pc_bpe_merge *a, const pc_bpe_merge *b)
{
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static pc_status heap_push(pc_bpe_work *w, pc_bpe_merge e, pc_error *err)
{
    if (w->n_heap == w->cap_heap) {
        size_t cap = w->cap_heap ? w->cap_heap * 2 : 64;
        pc_bpe_merge *v = realloc(w->heap, cap * sizeof *v);
        if (!v) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for %zu BPE merges", cap);
        w->heap = v;
        w->cap_heap = cap;
    }
    size_t i = w->n_heap++;
    while (i > 0 && before(&e, &w->heap[(i - 1) / 2])) {
        w->heap[i] = w->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    w->heap[i] = e;
    return PEFTC_OK;
}

static pc_bpe_merge heap_pop(pc_bpe_work *w)
{
    pc_bpe_merge top = w->heap[0], last = w->heap[--w->n_heap];
    size_t i = 0, n = w->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && before(&w->heap[c + 1], &w->heap[c])) c++;
        if (!before(&w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n > 0) w->heap[i] = last;
    return top;
}

/* Queues the merge of the symbol at pos with its right neighbour, if the pair has one. */
static pc_status queue_pair(const pc_bpe *m, pc_bpe_work *w, int32_t pos, pc_error *err)
{
    if (pos < 0 || w->sym[pos].next < 0) return PEFTC_OK;
    int32_t left = w->sym[pos].id, right = w->sym[w->sym[pos].next].id;
    const pc_bpe_pair *p = find_merge(m, left, right);
    return p ? heap_push(w, (pc_bpe_merge){p->rank, (uint32_t)pos, p->merged, left, right}, err) : PEFTC_OK;
}

/* Word::merge_all of tokenizers: pop the best pair; skip it when stale (its left symbol was
 * merged away, has no right neighbour, or the pair there now merges into another token:
 * looked up only when the pair changed since it was queued); else merge and queue the new
 * pairs on both sides. */
static pc_status merge_all(const pc_bpe *m, pc_bpe_work *w, pc_error *err)
{
    w->n_heap = 0;
    for (size_t i = 0; i + 1 < w->n_sym; i++) PC_TRY(queue_pair(m, w, (int32_t)i, err));
    while (w->n_heap > 0) {
        pc_bpe_merge top = heap_pop(w);
        pc_bpe_symbol *left = &w->sym[top.pos];
        if (left->len == 0 || left->next < 0) continue;
        pc_bpe_symbol *right = &w->sym[left->next];
        if (left->id != top.left || right->id != top.right) {
            const pc_bpe_pair *p = find_merge(m, left->id, right->id);
            if (!p || p->merged != top.new_id) continue;
        }
        left->id = top.new_id;
        left->len += right->len;
        left->next = right->next;
        right->len = 0;
        if (left->next >= 0) w->sym[left->next].prev = (int32_t)top.pos;
        PC_TRY(queue_pair(m, w, left->prev, err));
        PC_TRY(queue_pair(m, w, (int32_t)top.pos, err));
    }
    return PEFTC_OK;
}

pc_status pc_bpe_encode_word(const pc_bpe *m, const char *w, size_t len, pc_bpe_work *work, pc_idbuf *out,
                             pc_error *err)
{
    if (m->ignore_merges) {
        int32_t id = token_id(m, w, len);
        if (id >= 0) return pc_idbuf_push(out, id, err);
    }
    PC_TRY(initial_symbols(m, w, len, work, err));
    PC_TRY(merge_all(m, work, err));
    for (size_t i = 0; i < work->n_sym; i++)
        if (work->sym[i].len > 0) PC_TRY(pc_idbuf_push(out, work->sym[i].id, err));
    return PEFTC_OK;
}
