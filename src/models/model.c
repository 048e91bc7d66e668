#include "models/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/json.h"
#include "formats/safetensors.h"
#include "models/distilbert.h"
#include "models/gpt2.h"
#include "models/llama.h"
#include "models/model_util.h"
#include "models/quantized.h"

/* The floating dtype that holds most parameters of a checkpoint (what a merged model is written in). */
static int dominant_dtype(const pc_safetensors *st)
{
    int64_t count[3] = {0, 0, 0};
    const pc_dtype kinds[3] = {PC_DT_F32, PC_DT_BF16, PC_DT_F16};
    for (int i = 0; i < pc_st_count(st); i++)
        for (int k = 0; k < 3; k++)
            if (pc_st_at(st, i)->dtype == kinds[k]) count[k] += pc_st_numel(pc_st_at(st, i));
    int best = 0;
    for (int k = 1; k < 3; k++) if (count[k] > count[best]) best = k;
    return kinds[best];
}

/* The caller's id2label (from_pretrained(..., id2label=...)) replaces config.json's. */
static pc_status apply_label_options(const pc_model_options *opts, int *num_labels, char ***id2label, pc_error *err)
{
    if (!opts || (!opts->id2label && opts->num_labels <= 0)) return PEFTC_OK;
    int n = opts->num_labels > 0 ? opts->num_labels : *num_labels;
    char **labels = opts->id2label ? pc_labels_copy(opts->id2label, n) : pc_labels_default(n);
    if (!labels) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
    pc_labels_free(*id2label, *num_labels);
    *id2label = labels;
    *num_labels = n;
    return PEFTC_OK;
}

static pc_status load_distilbert(const char *dir, const char *config_path, const pc_model_options *opts,
                                 pc_model **out, pc_error *err)
{
    pc_distilbert_config cfg;
    PC_TRY(pc_distilbert_config_load(config_path, &cfg, err));
    pc_status s = apply_label_options(opts, &cfg.num_labels, &cfg.id2label, err);
    pc_safetensors *st = NULL;
    if (!s) s = pc_st_open_model_dir(dir, &st, err);
    if (s) { pc_distilbert_config_free(&cfg); return s; }
    int dtype = dominant_dtype(st);
    PC_TRY(pc_distilbert_load(dir, &cfg, st, opts, out, err));
    (*out)->checkpoint_dtype = dtype;
    return PEFTC_OK;
}

static pc_status load_llama(const char *dir, const char *config_path, const pc_model_options *opts,
                             pc_model **out, pc_error *err)
{
    pc_llama_config cfg;
    PC_TRY(pc_llama_config_load(config_path, &cfg, err));
    pc_safetensors *st = NULL;
    PC_TRY(pc_st_open_model_dir(dir, &st, err));
    int dtype = dominant_dtype(st);
    PC_TRY(pc_llama_load(dir, &cfg, st, opts, out, err));
    (*out)->checkpoint_dtype = dtype;
    return PEFTC_OK;
}

static pc_status load_gpt2(const char *dir, const char *config_path, const pc_model_options *opts,
                            pc_model **out, pc_error *err)
{
    pc_gpt2_config cfg;
    PC_TRY(pc_gpt2_config_load(config_path, &cfg, err));
    pc_safetensors *st = NULL;
    PC_TRY(pc_st_open_model_dir(dir, &st, err));
    int dtype = dominant_dtype(st);
    PC_TRY(pc_gpt2_load(dir, &cfg, st, opts, out, err));
    (*out)->checkpoint_dtype = dtype;
    return PEFTC_OK;
}

pc_status pc_model_load(const char *dir, const pc_model_options *opts, pc_model **out, pc_error *err)
{
    char config_path[4096];
    snprintf(config_path, sizeof config_path, "%s/config.json", dir);
    cJSON *config = NULL;
    PC_TRY(pc_json_parse_file(config_path, &config, err));
    const char *model_type = NULL;
    /* Python's json keeps the last of a repeated key, cJSON the first: refuse the ambiguity */
    pc_status s = pc_json_check_no_duplicates(config, config_path, err);
    if (!s) s = pc_json_get_string(config, "model_type", "", &model_type, config_path, err);
    char type[64];
    snprintf(type, sizeof type, "%s", s ? "" : model_type);
    cJSON_Delete(config);
    if (s) return s;
    if (strcmp(type, "distilbert") == 0) return load_distilbert(dir, config_path, opts, out, err);
    if (!strcmp(type, "llama") || !strcmp(type, "mistral") || !strcmp(type, "qwen2"))
        return load_llama(dir, config_path, opts, out, err);
    if (strcmp(type, "gpt2") == 0) return load_gpt2(dir, config_path, opts, out, err);
    if (!type[0]) return pc_fail(err, PEFTC_ERR_FORMAT, "%s: no model_type", config_path);
    return pc_fail(err, PEFTC_ERR_UNSUPPORTED, "%s: model_type '%s' is not supported (supported: distilbert, llama, mistral, qwen2, gpt2)",
                   config_path, type);
}

pc_linear *pc_model_find_linear(const pc_model *m, const char *name)
{
    for (int i = 0; i < m->n_linears; i++)
        if (strcmp(m->linears[i]->name, name) == 0) return m->linears[i];
    return NULL;
}

void pc_model_add_extra_tensor(pc_model *m, const char *name, const float *data, int64_t rows, int64_t cols,
                               const pc_safetensors *st)
{
    if (m->n_extra_tensors >= (int)(sizeof m->extra_tensors / sizeof m->extra_tensors[0])) return;
    pc_named_tensor *t = &m->extra_tensors[m->n_extra_tensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->data = data;
    t->ndim = cols ? 2 : 1;
    t->shape[0] = rows;
    t->shape[1] = cols;
    t->mapped = pc_st_maps(st, data);
}

void pc_model_free(pc_model *m)
{
    if (!m) return;
    pc_model_free_4bit(m);
    for (int i = 0; i < m->n_linears; i++) pc_linear_release(m->linears[i]);
    pc_scratch_free(&m->scratch);
    m->ops->destroy(m);
}

void pc_model_choose_packing(pc_model *m, bool bf16, double budget_bytes)
{
    double frozen_f32 = 0;
    bool any_4bit = false;
    for (int i = 0; i < m->n_linears; i++) {
        const pc_linear *l = m->linears[i];
        if (l->W) frozen_f32 += 4.0 * (double)l->in * (double)l->out;
        any_4bit |= l->q4 != NULL;
    }
    for (int i = 0; i < m->n_linears; i++) {
        m->linears[i]->pack_dtype = bf16 ? PC_PACK_BF16 : PC_PACK_F32;
        m->linears[i]->pack_f32 = frozen_f32 <= budget_bytes && !any_4bit;
    }
}
