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
    return pc_distilbert_load(dir, &cfg, st, opts, out, err);
}

static pc_status load_llama(const char *dir, const char *config_path, const pc_model_options *opts,
                             pc_model **out, pc_error *err)
{
    pc_llama_config cfg;
    PC_TRY(pc_llama_config_load(config_path, &cfg, err));
    pc_safetensors *st = NULL;
    PC_TRY(pc_st_open_model_dir(dir, &st, err));
    return pc_llama_load(dir, &cfg, st, opts, out, err);
}

static pc_status load_gpt2(const char *dir, const char *config_path, const pc_model_options *opts,
                            pc_model **out, pc_error *err)
{
    pc_gpt2_config cfg;
    PC_TRY(pc_gpt2_config_load(config_path, &cfg, err));
    pc_safetensors *st = NULL;
    PC_TRY(pc_st_open_model_dir(dir, &st, err));
    return pc_gpt2_load(dir, &cfg, st, opts, out, err);
}

pc_status pc_model_load(const char *dir, const pc_model_options *opts, pc_model **out, pc_error *err)
{
    char config_path[4096];
    snprintf(config_path, sizeof config_path, "%s/config.json", dir);
    cJSON *config = NULL;
    PC_TRY(pc_json_parse_file(config_path, &config, err));
    const char *model_type = NULL;
    pc_status s = pc_json_get_string(config, "model_type", "", &model_type, config_path, err);
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

void pc_model_free(pc_model *m)
{
    if (m) m->ops->destroy(m);
}
