#include "train/batches.h"

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

void pc_encoded_free(pc_encoded *e)
{
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
    bb->labels = calloc((size_t)B, sizeof *bb->labels);
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
    }
    bb->batch.B = count;
    bb->batch.T = T;
    bb->batch.input_ids = bb->ids;
    bb->batch.attention_mask = bb->mask;
    bb->batch.labels = e->labels ? bb->labels : NULL;
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
