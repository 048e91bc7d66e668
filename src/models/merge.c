#include "models/merge.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/quantized.h"

/* ---------- merge / unmerge ---------- */

static void merge_free(pc_merge_state *st)
{
    for (int i = 0; st->merged && i < st->n; i++) free(st->merged[i]);
    free(st->linears);
    free(st->original);
    free(st->merged);
    free(st->adapters);
    free(st->q4);
    memset(st, 0, sizeof *st);
}

/* merged = W + s·(B A) (LoRA) or (m / ‖W + s·BA‖)·(W + s·BA) (DoRA), in W's layout (a 4-bit W dequantized first). */
static pc_status lora_merged_weight(const pc_linear *lin, const pc_lora *l, float *merged, pc_error *err)
{
    if (lin->q4) pc_q4_dequantize(lin->q4, merged);
    else memcpy(merged, lin->W, sizeof(float) * (size_t)lin->in * lin->out);
    PC_TRY(pc_lora_merge(merged, lin->w_in_out, lin->in, lin->out, l->A, l->B, l->r, l->scaling, l->m, err));
    return PEFTC_OK;
}

pc_status pc_peft_merge(pc_peft_model *p, pc_merge_state *st, pc_error *err)
{
    memset(st, 0, sizeof *st);
    pc_model *m = p->base;
    int n = p->n_adapters;
    st->linears = calloc((size_t)n + 1, sizeof *st->linears);
    st->original = calloc((size_t)n + 1, sizeof *st->original);
    st->merged = calloc((size_t)n + 1, sizeof *st->merged);
    st->adapters = calloc((size_t)n + 1, sizeof *st->adapters);
    st->q4 = calloc((size_t)n + 1, sizeof *st->q4);
    if (!st->linears || !st->original || !st->merged || !st->adapters || !st->q4) {
        merge_free(st);
        return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < m->n_linears; i++) {
        pc_linear *lin = m->linears[i];
        if (!lin->lora) continue;
        float *merged = malloc(sizeof(float) * (size_t)lin->in * lin->out);
        if (!merged) { pc_peft_unmerge(st); return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory merging %s", lin->name); }
        if (lora_merged_weight(lin, lin->lora, merged, err) != PEFTC_OK) {
            free(merged);
            pc_peft_unmerge(st);
            return pc_error_prefix(err, "%s", lin->name);
        }
        st->linears[st->n] = lin;
        st->original[st->n] = lin->W;
        st->merged[st->n] = merged;
        st->adapters[st->n] = lin->lora;
        st->q4[st->n] = lin->q4;
        st->n++;
        lin->W = merged;
        lin->lora = NULL;
        lin->q4 = NULL;
        pc_error ignored;
        pc_linear_repack(lin, &ignored);  /* unpacked on failure: still correct */
    }
    return PEFTC_OK;
}

void pc_peft_unmerge(pc_merge_state *st)
{
    for (int i = 0; i < st->n; i++) {
        st->linears[i]->W = st->original[i];
        st->linears[i]->lora = st->adapters[i];
        st->linears[i]->q4 = st->q4[i];
        pc_error ignored;
        pc_linear_repack(st->linears[i], &ignored);  /* unpacked on failure: still correct */
    }
    merge_free(st);
}

/* ---------- writing ---------- */

/* float32 -> bfloat16 / float16 bits, round to nearest even (NaN kept quiet). */
static uint16_t to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static uint16_t to_f16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000u, absu = u & 0x7fffffffu;
    if (absu > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);
    if (absu >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);   /* rounds to >= 65520: inf */
    if (absu < 0x38800000u) {                                        /* subnormal half */
        float a;
        memcpy(&a, &absu, 4);
        return (uint16_t)(sign | (uint16_t)lrintf(a * 16777216.0f)); /* a / 2^-24, ties to even */
    }
    uint32_t r = absu + 0xfffu + ((absu >> 13) & 1u);
    return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
}

typedef struct tensor_set {
    pc_st_item *items;
    void **owned;
    int n, cap;
    char *q4_names[64 * 1024];       /* names and quant_state JSON of 4-bit weights */
    char *q4_json[8 * 1024];
    pc_q4_weight *temp_q4[8 * 1024];
    float *temp_f32[8 * 1024];
    int n_q4_names, n_q4_json, n_temp_q4, n_temp_f32;
} tensor_set;

static pc_status add_item(tensor_set *t, const char *name, const float *data, int ndim, int64_t d0, int64_t d1,
                          pc_dtype dtype, pc_error *err)
{
    if (t->n == t->cap) {
        int cap = t->cap ? 2 * t->cap : 64;
        pc_st_item *items = realloc(t->items, sizeof *items * (size_t)cap);
        if (items) t->items = items;
        void **owned = items ? realloc(t->owned, sizeof *owned * (size_t)cap) : NULL;
        if (!owned) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
        t->owned = owned;
        t->cap = cap;
    }
    pc_st_item *it = &t->items[t->n];
    memset(it, 0, sizeof *it);
    char *copy = strdup(name);
    int64_t numel = d0 * (ndim == 2 ? d1 : 1);
    void *buf = dtype == PC_DT_F32 ? NULL : malloc(2 * (size_t)numel);
    t->owned[t->n] = buf;
    if (!copy || (dtype != PC_DT_F32 && !buf)) { free(copy); free(buf); return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory"); }
    for (int64_t i = 0; buf && i < numel; i++)
        ((uint16_t *)buf)[i] = dtype == PC_DT_BF16 ? to_bf16(data[i]) : to_f16(data[i]);
    it->name = copy;
    it->dtype = dtype;
    it->ndim = ndim;
    it->shape[0] = d0;
    it->shape[1] = d1;
    it->data = buf ? buf : data;
    t->n++;
    return PEFTC_OK;
}

static void set_free(tensor_set *t)
{
    for (int i = 0; i < t->n_q4_names; i++) free(t->q4_names[i]);
    for (int i = 0; i < t->n_q4_json; i++) free(t->q4_json[i]);
    for (int i = 0; i < t->n_temp_q4; i++) { pc_q4_free(t->temp_q4[i]); free(t->temp_q4[i]); }
    for (int i = 0; i < t->n_temp_f32; i++) free(t->temp_f32[i]);
    for (int i = 0; i < t->n; i++) { free((char *)t->items[i].name); free(t->owned[i]); }
    free(t->items);
    free(t->owned);
}

/* A 4-bit Linear as bitsandbytes serializes it (items point into the weight; names are owned here). */
static pc_status add_q4(tensor_set *t, const pc_linear *lin, pc_error *err)
{
    pc_st_item items[8];
    char *names[8];
    int n = 0;
    if (t->n_q4_json >= 8 * 1024 || t->n_q4_names + 8 > 64 * 1024) return pc_fail(err, PEFTC_ERR_INVALID, "too many 4-bit weights");
    pc_status s = pc_q4_items(lin, items, &n, 8, names, &t->q4_json[t->n_q4_json], err);
    if (t->q4_json[t->n_q4_json]) t->n_q4_json++;
    for (int i = 0; i < n; i++) t->q4_names[t->n_q4_names++] = names[i];
    for (int i = 0; !s && i < n; i++) {
        if (t->n == t->cap) {
            int cap = t->cap ? 2 * t->cap : 64;
            pc_st_item *grown = realloc(t->items, sizeof *grown * (size_t)cap);
            if (grown) t->items = grown;
            void **owned = grown ? realloc(t->owned, sizeof *owned * (size_t)cap) : NULL;
            if (!owned) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
            t->owned = owned;
            t->cap = cap;
        }
        char *copy = strdup(items[i].name);
        if (!copy) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
        t->items[t->n] = items[i];
        t->items[t->n].name = copy;
        t->owned[t->n] = NULL;
        t->n++;
    }
    return s;
}

static bool is_extra_data(const pc_model *m, const float *data)
{
    for (int i = 0; i < m->n_extra_tensors; i++) if (m->extra_tensors[i].data == data) return true;
    return false;
}

/* Writes lin through a temporary 4-bit copy (kept in t->temp_q4 until the file is written). */
static pc_status add_requantized(tensor_set *t, const pc_linear *lin, const pc_quant_options *o, pc_error *err)
{
    if (t->n_temp_q4 >= 8 * 1024) return pc_fail(err, PEFTC_ERR_INVALID, "too many Linears");
    pc_q4_weight *q = NULL;
    PC_TRY(pc_linear_quantize_copy(lin, o, &q, err));
    t->temp_q4[t->n_temp_q4++] = q;
    pc_linear view = *lin;
    view.q4 = q;
    return add_q4(t, &view, err);
}

/* A 4-bit weight written in full precision (PEFT's path for merged QLoRA models). */
static pc_status add_dequantized(tensor_set *t, const char *key, const pc_linear *lin, pc_dtype dtype, pc_error *err)
{
    if (t->n_temp_f32 >= 8 * 1024) return pc_fail(err, PEFTC_ERR_INVALID, "too many Linears");
    float *w = malloc(sizeof(float) * (size_t)lin->in * lin->out);
    if (!w) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory dequantizing %s", lin->name);
    pc_q4_dequantize(lin->q4, w);
    t->temp_f32[t->n_temp_f32++] = w;
    return add_item(t, key, w, 2, lin->out, lin->in, dtype, err);
}

static pc_status collect(const pc_model *m, tensor_set *t, pc_dtype dtype, const pc_quant_options *o, pc_error *err)
{
    char key[200];
    for (int i = 0; i < m->n_extra_tensors; i++) {
        const pc_named_tensor *x = &m->extra_tensors[i];
        PC_TRY(add_item(t, x->name, x->data, x->ndim, x->shape[0], x->shape[1], dtype, err));
    }
    for (int i = 0; i < m->n_linears; i++) {
        const pc_linear *lin = m->linears[i];
        if (lin->W && is_extra_data(m, lin->W)) continue;  /* a head tied to the embeddings */
        snprintf(key, sizeof key, "%s.weight", lin->name);
        if (lin->q4 && o) PC_TRY(add_q4(t, lin, err));
        else if (lin->q4) PC_TRY(add_dequantized(t, key, lin, dtype, err));
        else if (o && !pc_quant_keeps_full_precision(m, lin, o)) PC_TRY(add_requantized(t, lin, o, err));
        else PC_TRY(add_item(t, key, lin->W, 2, lin->w_in_out ? lin->in : lin->out, lin->w_in_out ? lin->out : lin->in,
                             dtype, err));
        snprintf(key, sizeof key, "%s.bias", lin->name);
        if (lin->b) PC_TRY(add_item(t, key, lin->b, 1, lin->out, 0, dtype, err));
    }
    for (int i = 0; i < m->n_norms; i++) {
        const pc_norm *nm = m->norms[i];
        snprintf(key, sizeof key, "%s.weight", nm->name);
        PC_TRY(add_item(t, key, nm->w, 1, nm->dim, 0, dtype, err));
        snprintf(key, sizeof key, "%s.bias", nm->name);
        if (nm->b) PC_TRY(add_item(t, key, nm->b, 1, nm->dim, 0, dtype, err));
    }
    return PEFTC_OK;
}

static pc_status save_weights(const pc_model *m, const char *path, pc_dtype dtype, const pc_quant_options *o,
                              pc_error *err)
{
    if (dtype != PC_DT_F32 && dtype != PC_DT_BF16 && dtype != PC_DT_F16)
        return pc_fail(err, PEFTC_ERR_INVALID, "models are written as F32, BF16 or F16");
    tensor_set *t = calloc(1, sizeof *t);
    if (!t) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
    pc_status s = collect(m, t, dtype, o, err);
    if (!s) s = pc_st_write(path, t->items, t->n, NULL, err);
    set_free(t);
    free(t);
    return s;
}

pc_status pc_model_save_weights(const pc_model *m, const char *path, pc_dtype dtype, pc_error *err)
{
    return save_weights(m, path, dtype, NULL, err);
}

pc_status pc_model_save_weights_4bit(const pc_model *m, const char *path, pc_dtype dtype, const pc_quant_options *o,
                                     pc_error *err)
{
    return save_weights(m, path, dtype, o, err);
}
