/* QLoRA's 4-bit base weights at the model level: which Linears are quantized
 * (transformers' rules), quantizing a loaded model in place (load_in_4bit), and
 * reading / writing bitsandbytes' serialized form (peft_facts.md §6.2, §6.9). */
#include "models/quantized.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/json.h"

/* transformers keeps the output head in full precision, and PEFT trains modules_to_save in full
 * (matched, like modules_to_save, by plain name suffix). */
bool pc_quant_keeps_full_precision(const pc_model *m, const pc_linear *lin, const pc_quant_options *o)
{
    if (m->output_linear && strcmp(lin->name, m->output_linear) == 0) return true;
    for (int i = 0; i < o->n_skip; i++) {
        size_t n = strlen(lin->name), t = strlen(o->skip[i]);
        if (n >= t && strcmp(lin->name + n - t, o->skip[i]) == 0) return true;
    }
    return false;
}

/* W in nn.Linear's [out, in] layout (GPT-2's Conv1D weight is transposed first, as transformers does). */
static float *weight_out_in(const pc_linear *lin, bool *owned)
{
    *owned = lin->w_in_out;
    if (!lin->w_in_out) return lin->W;
    float *t = malloc(sizeof(float) * (size_t)lin->in * lin->out);
    for (int i = 0; t && i < lin->in; i++)
        for (int o = 0; o < lin->out; o++) t[(long)o * lin->in + i] = lin->W[(long)i * lin->out + o];
    return t;
}

pc_status pc_linear_quantize_copy(const pc_linear *lin, const pc_quant_options *o, pc_q4_weight **out, pc_error *err)
{
    bool owned;
    float *W = weight_out_in(lin, &owned);
    pc_q4_weight *q = calloc(1, sizeof *q);
    if (!W || !q) { if (owned) free(W); free(q); return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory quantizing %s", lin->name); }
    pc_status s = pc_q4_quantize(W, lin->out, lin->in, o->type, o->double_quant, q, err);
    if (owned) free(W);
    if (s) { free(q); return pc_error_prefix(err, "%s", lin->name); }
    *out = q;
    return PEFTC_OK;
}

pc_status pc_model_quantize_4bit(pc_model *m, const pc_quant_options *o, pc_error *err)
{
    for (int i = 0; i < m->n_linears; i++) {
        pc_linear *lin = m->linears[i];
        if (lin->q4 || lin->dW || pc_quant_keeps_full_precision(m, lin, o)) continue;
        pc_q4_weight *q = NULL;
        PC_TRY(pc_linear_quantize_copy(lin, o, &q, err));
        lin->q4 = q;
        lin->q4_compute = o->compute;
        lin->W = NULL;  /* the full-precision weight is no longer used (its mmap pages can be dropped) */
        lin->w_in_out = false;  /* stored [out, in] like bnb's Linear4bit, which replaces Conv1D too */
    }
    return PEFTC_OK;
}

void pc_model_free_4bit(pc_model *m)
{
    for (int i = 0; i < m->n_linears; i++) {
        if (!m->linears[i]->q4) continue;
        pc_q4_free(m->linears[i]->q4);
        free(m->linears[i]->q4);
        m->linears[i]->q4 = NULL;
    }
}

/* ---------- bitsandbytes' serialized form ---------- */

static const pc_st_tensor *find(const pc_safetensors *st, const char *module, const char *suffix)
{
    char key[300];
    snprintf(key, sizeof key, "%s%s", module, suffix);
    return pc_st_find(st, key);
}

bool pc_checkpoint_has_4bit(const pc_safetensors *st, const char *module)
{
    return find(st, module, ".weight.quant_state.bitsandbytes__nf4") || find(st, module, ".weight.quant_state.bitsandbytes__fp4");
}

/* Points *dst at a tensor's bytes in the mapped checkpoint (checking dtype and size), so the 4-bit weights are
 * resident once, as file pages, rather than twice. A tensor whose offset breaks its type's alignment is copied
 * into an owned buffer instead, and `own_bit` is set in q->owned. The checkpoint stays mapped while the model
 * lives (frozen float weights point into it too). */
static pc_status view_tensor(const pc_st_tensor *t, const char *what, pc_dtype dtype, size_t bytes, void **dst,
                             pc_q4_weight *q, unsigned own_bit, pc_error *err)
{
    if (!t) return pc_fail(err, PEFTC_ERR_FORMAT, "4-bit weight: tensor '%s' is missing", what);
    if (t->dtype != dtype || t->nbytes != bytes)
        return pc_fail(err, PEFTC_ERR_FORMAT, "4-bit weight: tensor '%s' is %s with %zu bytes, expected %s with %zu",
                       t->name, pc_dtype_name(t->dtype), t->nbytes, pc_dtype_name(dtype), bytes);
    size_t align = dtype == PC_DT_F32 ? sizeof(float) : 1;
    if ((uintptr_t)t->data % align == 0) {
        *dst = (void *)t->data;
    } else {
        if (!(*dst = malloc(bytes ? bytes : 1))) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
        memcpy(*dst, t->data, bytes);
        q->owned |= own_bit;
    }
    return dtype == PC_DT_F32 ? pc_st_check_finite(t, *dst, (int64_t)(bytes / sizeof(float)), err) : PEFTC_OK;
}

/* The quant_state JSON: quant_type, blocksize 64, shape [out, in], nested_offset when nested. */
static pc_status read_quant_state(const pc_st_tensor *t, int64_t rows, int64_t cols, pc_q4_weight *q, pc_error *err)
{
    cJSON *j = NULL;
    PC_TRY(pc_json_parse_text(t->data, t->nbytes, t->name, &j, err));
    const char *type = NULL;
    long long block;
    double offset;
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(j, "shape");
    pc_status s = pc_json_get_string(j, "quant_type", "", &type, t->name, err);
    if (!s) s = pc_json_get_int(j, "blocksize", 64, &block, t->name, err);
    if (!s) s = pc_json_get_double(j, "nested_offset", 0.0, &offset, t->name, err);
    if (!s && strcmp(type, "nf4") != 0 && strcmp(type, "fp4") != 0)
        s = pc_fail(err, PEFTC_ERR_UNSUPPORTED, "%s: quant_type '%s' is not supported (nf4, fp4)", t->name, type);
    if (!s && block != PC_Q4_BLOCK)
        s = pc_fail(err, PEFTC_ERR_UNSUPPORTED, "%s: blocksize %lld is not supported (64)", t->name, block);
    if (!s && (cJSON_GetArraySize(shape) != 2 || cJSON_GetArrayItem(shape, 0)->valuedouble != (double)rows ||
               cJSON_GetArrayItem(shape, 1)->valuedouble != (double)cols))
        s = pc_fail(err, PEFTC_ERR_FORMAT, "%s: shape does not match [%lld, %lld] from config.json", t->name,
                    (long long)rows, (long long)cols);
    if (!s) {
        q->type = strcmp(type, "nf4") == 0 ? PC_Q4_NF4 : PC_Q4_FP4;
        q->nested = cJSON_GetObjectItemCaseSensitive(j, "nested_offset") != NULL;
        q->offset = (float)offset;
    }
    cJSON_Delete(j);
    return s;
}

static pc_status check_quant_map(const pc_st_tensor *t, pc_q4_type type, pc_error *err)
{
    float map[16];
    if (!t) return PEFTC_OK;
    PC_TRY(pc_st_read_f32(t, map, 16, err));
    if (memcmp(map, pc_q4_code_table(type), sizeof map) != 0)
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: not the %s code table", t->name, pc_q4_type_name(type));
    return PEFTC_OK;
}

static pc_status read_4bit(const pc_safetensors *st, const char *module, pc_q4_weight *q, pc_error *err)
{
    const pc_st_tensor *state = find(st, module, ".weight.quant_state.bitsandbytes__nf4");
    if (!state) state = find(st, module, ".weight.quant_state.bitsandbytes__fp4");
    PC_TRY(read_quant_state(state, q->rows, q->cols, q, err));
    PC_TRY(check_quant_map(find(st, module, ".weight.quant_map"), q->type, err));
    int64_t blocks = pc_q4_blocks(q), nested_blocks = pc_q4_nested_blocks(q);
    char what[300];
    snprintf(what, sizeof what, "%s.weight", module);
    PC_TRY(view_tensor(find(st, module, ".weight"), what, PC_DT_U8, (size_t)(pc_q4_numel(q) + 1) / 2,
                       (void **)&q->packed, q, PC_Q4_OWN_PACKED, err));
    snprintf(what, sizeof what, "%s.weight.absmax", module);
    if (!q->nested)
        return view_tensor(find(st, module, ".weight.absmax"), what, PC_DT_F32, sizeof(float) * (size_t)blocks,
                           (void **)&q->absmax, q, PC_Q4_OWN_ABSMAX, err);
    PC_TRY(view_tensor(find(st, module, ".weight.absmax"), what, PC_DT_U8, (size_t)blocks, (void **)&q->qabsmax, q,
                       PC_Q4_OWN_QABSMAX, err));
    snprintf(what, sizeof what, "%s.weight.nested_absmax", module);
    PC_TRY(view_tensor(find(st, module, ".weight.nested_absmax"), what, PC_DT_F32,
                       sizeof(float) * (size_t)nested_blocks, (void **)&q->absmax2, q, PC_Q4_OWN_ABSMAX2, err));
    const pc_st_tensor *map2 = find(st, module, ".weight.nested_quant_map");
    if (!map2) return pc_fail(err, PEFTC_ERR_FORMAT, "4-bit weight: tensor '%s.weight.nested_quant_map' is missing", module);
    PC_TRY(pc_st_read_f32(map2, q->code2, 256, err));
    return pc_st_check_finite(map2, q->code2, 256, err);
}

pc_status pc_linear_load_4bit(const pc_safetensors *st, const char *module, pc_linear *lin, pc_q4_compute compute,
                              pc_error *err)
{
    pc_q4_weight *q = calloc(1, sizeof *q);
    if (!q) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
    q->rows = lin->out;
    q->cols = lin->in;
    pc_status s = read_4bit(st, module, q, err);
    if (s) { pc_q4_free(q); free(q); return s; }
    lin->q4 = q;
    lin->q4_compute = compute;
    lin->W = NULL;
    lin->w_in_out = false;
    return PEFTC_OK;
}

static pc_status push(pc_st_item *items, int *n, int cap, const char *name, pc_dtype dtype, int ndim, int64_t d0,
                      int64_t d1, const void *data, char **names, pc_error *err)
{
    if (*n >= cap) return pc_fail(err, PEFTC_ERR_INVALID, "too many tensors");
    if (!(names[*n] = strdup(name))) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
    items[*n] = (pc_st_item){ .name = names[*n], .dtype = dtype, .ndim = ndim, .shape = {d0, d1}, .data = data };
    (*n)++;
    return PEFTC_OK;
}

pc_status pc_q4_items(const pc_linear *lin, pc_st_item *items, int *n, int cap, char **names, char **state_json,
                      pc_error *err)
{
    const pc_q4_weight *q = lin->q4;
    char key[300], json[400];
    int64_t blocks = pc_q4_blocks(q), nested = pc_q4_nested_blocks(q);
    const char *type = pc_q4_type_name(q->type);
    snprintf(key, sizeof key, "%s.weight", lin->name);
    PC_TRY(push(items, n, cap, key, PC_DT_U8, 2, (pc_q4_numel(q) + 1) / 2, 1, q->packed, names, err));
    snprintf(key, sizeof key, "%s.weight.absmax", lin->name);
    PC_TRY(push(items, n, cap, key, q->nested ? PC_DT_U8 : PC_DT_F32, 1, blocks, 0,
                q->nested ? (const void *)q->qabsmax : (const void *)q->absmax, names, err));
    snprintf(key, sizeof key, "%s.weight.quant_map", lin->name);
    PC_TRY(push(items, n, cap, key, PC_DT_F32, 1, 16, 0, pc_q4_code_table(q->type), names, err));
    if (q->nested) {
        snprintf(key, sizeof key, "%s.weight.nested_absmax", lin->name);
        PC_TRY(push(items, n, cap, key, PC_DT_F32, 1, nested, 0, q->absmax2, names, err));
        snprintf(key, sizeof key, "%s.weight.nested_quant_map", lin->name);
        PC_TRY(push(items, n, cap, key, PC_DT_F32, 1, 256, 0, q->code2, names, err));
        snprintf(json, sizeof json, "{\"quant_type\": \"%s\", \"blocksize\": 64, \"dtype\": \"float32\", \"shape\": [%lld, %lld], "
                 "\"nested_blocksize\": 256, \"nested_dtype\": \"float32\", \"nested_offset\": %.9g}", type,
                 (long long)q->rows, (long long)q->cols, (double)q->offset);
    } else {
        snprintf(json, sizeof json, "{\"quant_type\": \"%s\", \"blocksize\": 64, \"dtype\": \"float32\", \"shape\": [%lld, %lld]}",
                 type, (long long)q->rows, (long long)q->cols);
    }
    if (!(*state_json = strdup(json))) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
    snprintf(key, sizeof key, "%s.weight.quant_state.bitsandbytes__%s", lin->name, type);
    return push(items, n, cap, key, PC_DT_U8, 1, (int64_t)strlen(json), 0, *state_json, names, err);
}
