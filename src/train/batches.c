#include "train/batches.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

static pc_status grow(pc_encoded *e, int64_t *cap, int64_t need, pc_error *err)
{
    if (need <= *cap) return PEFTC_OK;
    int64_t c = *cap ? *cap : 4096;
    while (c < need) c *= 2;
    int32_t *ids = realloc(e->ids, sizeof *ids * (size_t)c);
    if (!ids) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory while tokenizing");
    e->ids = ids;
    *cap = c;
    return PEFTC_OK;
}

static pc_status encode_all(const pc_tokenizer *tok, char *const *texts, int n, int max_length, const char *path,
                            pc_encoded *out, pc_error *err)
{
    memset(out, 0, sizeof *out);
    out->n = n;
    out->offsets = calloc((size_t)n + 1, sizeof *out->offsets);
    if (!out->offsets) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
    int64_t cap = 0;
    for (int i = 0; i < n; i++) {
        int32_t *ids = NULL;
        int len = 0;
        pc_status s = pc_tokenizer_encode(tok, texts[i], strlen(texts[i]), true, max_length, &ids, &len, err);
        if (!s) s = grow(out, &cap, out->offsets[i] + len, err);
        if (s) {
            free(ids);
            pc_encoded_free(out);
            return path ? pc_error_prefix(err, "%s: row %d", path, i + 1) : pc_error_prefix(err, "text %d", i + 1);
        }
        memcpy(out->ids + out->offsets[i], ids, sizeof *ids * (size_t)len);
        out->offsets[i + 1] = out->offsets[i] + len;
        if (len > out->max_len) out->max_len = len;
        free(ids);
    }
    return PEFTC_OK;
}

pc_status pc_encode_dataset(const pc_tokenizer *tok, const pc_dataset *ds, int max_length, pc_encoded *out,
                            pc_error *err)
{
    PC_TRY(encode_all(tok, ds->texts, ds->n, max_length, ds->path, out, err));
    if (!ds->labels) return PEFTC_OK;
    out->labels = malloc(sizeof *out->labels * (size_t)(ds->n ? ds->n : 1));
    if (!out->labels) { pc_encoded_free(out); return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory"); }
    memcpy(out->labels, ds->labels, sizeof *out->labels * (size_t)ds->n);
    return PEFTC_OK;
}

pc_status pc_encode_texts(const pc_tokenizer *tok, char *const *texts, int n, int max_length, pc_encoded *out,
                          pc_error *err)
{
    return encode_all(tok, texts, n, max_length, NULL, out, err);
}

/* ---------- causal LM ---------- */

typedef struct lm_builder {
    pc_encoded *e;
    int64_t cap_ids, cap_rows;
} lm_builder;

/* Room for `ids` more ids at the end of the open example (which starts at offsets[n] and ends at offsets[n+1]),
 * and for the offsets of it and of the next one (lm_close writes offsets[n+2]). */
static pc_status lm_reserve(lm_builder *b, int64_t ids, pc_error *err)
{
    pc_encoded *e = b->e;
    if (e->n + 3 > b->cap_rows) {
        int64_t cap = b->cap_rows ? 2 * b->cap_rows : 1024;
        int64_t *offsets = realloc(e->offsets, sizeof *offsets * (size_t)cap);
        if (!offsets) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory while tokenizing");
        if (b->cap_rows == 0) offsets[0] = offsets[1] = 0;
        e->offsets = offsets;
        b->cap_rows = cap;
    }
    const int64_t end = e->offsets[e->n + 1] + ids;
    if (end <= b->cap_ids) return PEFTC_OK;
    int64_t cap = b->cap_ids ? b->cap_ids : 4096;
    while (cap < end) cap *= 2;
    int32_t *new_ids = realloc(e->ids, sizeof *new_ids * (size_t)cap);
    if (new_ids) e->ids = new_ids;
    int32_t *labels = new_ids ? realloc(e->token_labels, sizeof *labels * (size_t)cap) : NULL;
    if (!labels) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory while tokenizing");
    e->token_labels = labels;
    b->cap_ids = cap;
    return PEFTC_OK;
}

/* Appends ids to the current (open) example; labels are the ids, or -100 when masked. */
static pc_status lm_append(lm_builder *b, const int32_t *ids, int n, bool masked, pc_error *err)
{
    PC_TRY(lm_reserve(b, n, err));
    pc_encoded *e = b->e;
    int64_t at = e->offsets[e->n + 1];
    for (int i = 0; i < n; i++) {
        e->ids[at + i] = ids[i];
        e->token_labels[at + i] = masked ? -100 : ids[i];
    }
    e->offsets[e->n + 1] = at + n;
    return PEFTC_OK;
}

/* Closes the open example, cut to max_length (max_length 0: no cut). */
static void lm_close(lm_builder *b, int max_length)
{
    pc_encoded *e = b->e;
    int64_t len = e->offsets[e->n + 1] - e->offsets[e->n];
    if (max_length > 0 && len > max_length) e->offsets[e->n + 1] = e->offsets[e->n] + max_length;
    len = e->offsets[e->n + 1] - e->offsets[e->n];
    if (len > e->max_len) e->max_len = (int)len;
    e->n++;
    e->offsets[e->n + 1] = e->offsets[e->n];
}

static pc_status lm_row(lm_builder *b, const pc_tokenizer *tok, const pc_dataset *ds, int i, bool completion_only,
                        int32_t eos, pc_error *err)
{
    const char *completion = ds->completions ? ds->completions[i] : NULL;
    int32_t *ids = NULL;
    int n = 0;
    pc_status s = pc_tokenizer_encode(tok, ds->texts[i], strlen(ds->texts[i]), true, INT_MAX, &ids, &n, err);
    if (!s) s = lm_append(b, ids, n, completion && completion_only, err);
    free(ids);
    ids = NULL;
    if (!s && completion) {
        s = pc_tokenizer_encode(tok, completion, strlen(completion), false, INT_MAX, &ids, &n, err);
        if (!s) s = lm_append(b, ids, n, false, err);
        free(ids);
    }
    bool ends_with_eos = b->e->offsets[b->e->n + 1] > b->e->offsets[b->e->n] &&
                         b->e->ids[b->e->offsets[b->e->n + 1] - 1] == eos;
    if (!s && eos >= 0 && !ends_with_eos) s = lm_append(b, &eos, 1, false, err);
    return s ? pc_error_prefix(err, "%s: row %d", ds->path, i + 1) : PEFTC_OK;
}

/* Concatenates every example and cuts the stream into max_length blocks (TRL's packing). */
static pc_status pack(pc_encoded *e, int max_length, pc_error *err)
{
    int64_t total = e->offsets[e->n];
    int blocks = (int)((total + max_length - 1) / max_length);
    int64_t *offsets = realloc(e->offsets, sizeof *offsets * (size_t)(blocks + 2));
    if (!offsets) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
    e->offsets = offsets;
    for (int i = 0; i <= blocks; i++) offsets[i] = (int64_t)i * max_length < total ? (int64_t)i * max_length : total;
    e->n = blocks;
    e->max_len = (int)(total < max_length ? total : max_length);
    return PEFTC_OK;
}

pc_status pc_encode_lm_dataset(const pc_tokenizer *tok, const pc_dataset *ds, int max_length, bool packing,
                               bool completion_only_loss, pc_encoded *out, pc_error *err)
{
    memset(out, 0, sizeof *out);
    lm_builder b = { out, 0, 0 };
    if (max_length <= 0) max_length = pc_tokenizer_model_max_length(tok);
    pc_status s = lm_reserve(&b, 0, err);
    int32_t eos = pc_tokenizer_eos_id(tok);
    for (int i = 0; !s && i < ds->n; i++) {
        s = lm_row(&b, tok, ds, i, completion_only_loss, eos, err);
        if (!s) lm_close(&b, packing ? 0 : max_length);
    }
    if (!s && packing) s = pack(out, max_length, err);
    if (s) pc_encoded_free(out);
    return s;
}

long pc_count_targets(const pc_encoded *e, const int *order, int count)
{
    long n = 0;
    for (int i = 0; i < count; i++)
        for (int64_t t = e->offsets[order[i]] + 1; t < e->offsets[order[i] + 1]; t++)
            n += e->token_labels[t] != -100;
    return n;
}

void pc_encoded_free(pc_encoded *e)
{
    free(e->token_labels);
    free(e->offsets);
    free(e->ids);
    free(e->labels);
    memset(e, 0, sizeof *e);
}

pc_status pc_batch_buf_init(pc_batch_buf *bb, int B, int T, pc_error *err)
{
    memset(bb, 0, sizeof *bb);
    bb->ids = calloc((size_t)B * T, sizeof *bb->ids);
    bb->mask = calloc((size_t)B * T, 1);
    bb->labels = calloc((size_t)B * T, sizeof *bb->labels);
    if (!bb->ids || !bb->mask || !bb->labels) {
        pc_batch_buf_free(bb);
        return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for a %d x %d batch", B, T);
    }
    bb->cap_B = B;
    bb->cap_T = T;
    return PEFTC_OK;
}

void pc_batch_buf_free(pc_batch_buf *bb)
{
    free(bb->ids);
    free(bb->mask);
    free(bb->labels);
    memset(bb, 0, sizeof *bb);
}

const pc_batch *pc_collate(pc_batch_buf *bb, const pc_encoded *e, const int *order, int count, int32_t pad_id)
{
    int T = 0;
    for (int i = 0; i < count; i++) {
        int len = (int)(e->offsets[order[i] + 1] - e->offsets[order[i]]);
        if (len > T) T = len;
    }
    for (int i = 0; i < count; i++) {
        int ex = order[i];
        int len = (int)(e->offsets[ex + 1] - e->offsets[ex]);
        int32_t *row = bb->ids + (long)i * T;
        uint8_t *mrow = bb->mask + (long)i * T;
        memcpy(row, e->ids + e->offsets[ex], sizeof *row * (size_t)len);
        for (int t = len; t < T; t++) row[t] = pad_id;
        memset(mrow, 1, (size_t)len);
        memset(mrow + len, 0, (size_t)(T - len));
        if (e->labels) bb->labels[i] = e->labels[ex];
        if (e->token_labels) {
            int32_t *lrow = bb->labels + (long)i * T;
            memcpy(lrow, e->token_labels + e->offsets[ex], sizeof *lrow * (size_t)len);
            for (int t = len; t < T; t++) lrow[t] = -100;
        }
    }
    bb->batch.B = count;
    bb->batch.T = T;
    bb->batch.input_ids = bb->ids;
    bb->batch.attention_mask = bb->mask;
    bb->batch.labels = e->labels || e->token_labels ? bb->labels : NULL;
    return &bb->batch;
}

void pc_epoch_order(int *order, int n, bool shuffle, pc_rng *rng)
{
    for (int i = 0; i < n; i++) order[i] = i;
    if (!shuffle) return;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)pc_rng_below(rng, (uint64_t)i + 1);
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}
