#include "models/peft_model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/safetensors.h"
#include "peft/dora.h"

#define KEY_PREFIX "base_model.model."

static pc_status add_param(pc_peft_model *p, const char *module, const char *suffix, float *data, float *grad,
                           int ndim, int64_t d0, int64_t d1, bool decay, pc_error *err)
{
    char name[320];
    snprintf(name, sizeof name, KEY_PREFIX "%s%s", module, suffix);
    int64_t shape[2] = {d0, d1};
    if (pc_param_list_add(&p->trainable, name, data, grad, ndim, shape, decay) != 0)
        return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
    return PEFTC_OK;
}

static pc_status attach_lora(pc_peft_model *p, pc_linear *lin, pc_lora *l, pc_rng *rng, pc_error *err)
{
    const pc_lora_config *c = &p->config;
    float s = pc_lora_scaling(c->lora_alpha, c->r, c->use_rslora);
    PC_TRY(pc_lora_create(l, lin->in, lin->out, c->r, s, (float)c->lora_dropout, c->init_lora_weights, rng, err));
    lin->lora = l;
    PC_TRY(add_param(p, lin->name, ".lora_A.weight", l->A, l->dA, 2, c->r, lin->in, true, err));
    PC_TRY(add_param(p, lin->name, ".lora_B.weight", l->B, l->dB, 2, lin->out, c->r, true, err));
    if (!c->use_dora) return PEFTC_OK;
    /* DoRA: PEFT saves the magnitude as "<module>.lora_magnitude_vector" (no ".weight"); it decays like a weight */
    pc_base_weight w = pc_linear_base(lin);
    if (pc_dora_init(l, &w, err) != PEFTC_OK) return pc_error_prefix(err, "%s", lin->name);
    return add_param(p, lin->name, ".lora_magnitude_vector", l->m, l->dm, 1, lin->out, 0, true, err);
}

/* modules_to_save: the whole Linear becomes trainable, from a copy of its weights. */
static pc_status make_linear_trainable(pc_peft_model *p, pc_linear *lin, pc_error *err)
{
    long nw = (long)lin->in * lin->out;
    lin->W = pc_owned_dup(&p->owned, lin->W, nw);
    lin->dW = pc_owned_alloc(&p->owned, nw);
    if (!lin->W || !lin->dW) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for %s", lin->name);
    int64_t d0 = lin->w_in_out ? lin->in : lin->out, d1 = lin->w_in_out ? lin->out : lin->in;
    PC_TRY(add_param(p, lin->name, ".weight", lin->W, lin->dW, 2, d0, d1, true, err));
    p->n_all += nw;
    if (!lin->b) return PEFTC_OK;
    lin->b = pc_owned_dup(&p->owned, lin->b, lin->out);
    lin->db = pc_owned_alloc(&p->owned, lin->out);
    if (!lin->b || !lin->db) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for %s", lin->name);
    p->n_all += lin->out;
    return add_param(p, lin->name, ".bias", lin->b, lin->db, 1, lin->out, 0, false, err);
}

/* bias="all" / "lora_only": a bias of the base model becomes trainable. Biases of
 * LoRA-wrapped Linears live under "<module>.base_layer.bias" in PEFT's state dict. */
static pc_status make_bias_trainable(pc_peft_model *p, const char *module, bool wrapped, float **b, float **db,
                                     int n, pc_error *err)
{
    *b = pc_owned_dup(&p->owned, *b, n);
    *db = pc_owned_alloc(&p->owned, n);
    if (!*b || !*db) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for %s.bias", module);
    return add_param(p, module, wrapped ? ".base_layer.bias" : ".bias", *b, *db, 1, n, 0, false, err);
}

static pc_status check_targets_matched(const pc_peft_model *p, pc_error *err)
{
    const pc_lora_config *c = &p->config;
    const pc_model *m = p->base;
    for (int t = 0; t < c->n_target_modules; t++) {
        bool found = false;
        for (int i = 0; i < m->n_linears && !found; i++) {
            pc_lora_config one = *c;
            one.target_modules = &c->target_modules[t];
            one.n_target_modules = 1;
            found = pc_lora_config_targets(&one, m->linears[i]->name);
        }
        if (!found)
            return pc_fail(err, PEFTC_ERR_INVALID, "target_modules: '%s' matches no Linear module of %s "
                           "(module names look like '%s')", c->target_modules[t], m->architecture,
                           m->n_linears ? m->linears[0]->name : "?");
    }
    if (p->n_adapters == 0)
        return pc_fail(err, PEFTC_ERR_INVALID, "target_modules matches no Linear module of %s", m->architecture);
    return PEFTC_OK;
}

/* PEFT's per-architecture default when target_modules is not given (written back into the config, as PEFT does). */
static pc_status resolve_default_targets(pc_lora_config *c, const pc_model *m, pc_error *err)
{
    if (c->n_target_modules > 0 || c->target_regex || c->all_linear) return PEFTC_OK;
    if (m->default_targets_n == 0)
        return pc_fail(err, PEFTC_ERR_INVALID, "target_modules must be given for %s (PEFT has no default for model "
                       "type '%s'), e.g. the names of its attention projections", m->architecture, m->model_type);
    c->target_modules = calloc((size_t)m->default_targets_n, sizeof *c->target_modules);
    if (!c->target_modules) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
    for (int i = 0; i < m->default_targets_n; i++) {
        if (!(c->target_modules[i] = strdup(m->default_targets[i]))) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
        c->n_target_modules++;
    }
    return PEFTC_OK;
}

/* "all-linear" means every Linear but the output head (PEFT's _maybe_include_all_linear_layers). */
static bool targeted(const pc_lora_config *c, const pc_model *m, const pc_linear *lin)
{
    if (c->all_linear && m->output_linear && strcmp(lin->name, m->output_linear) == 0) return false;
    return pc_lora_config_targets(c, lin->name);
}

static pc_status apply(pc_peft_model *p, uint64_t seed, pc_error *err)
{
    pc_model *m = p->base;
    pc_lora_config *c = &p->config;
    PC_TRY(resolve_default_targets(c, m, err));
    PC_TRY(pc_lora_config_prepare(c, err));
    p->adapters = calloc((size_t)m->n_linears, sizeof *p->adapters);
    if (!p->adapters) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
    pc_rng rng;
    pc_rng_init(&rng, seed, "lora_init");
    p->n_all = m->n_base_params;
    for (int i = 0; i < m->n_linears; i++) {
        pc_linear *lin = m->linears[i];
        if (pc_lora_config_saves(c, lin->name)) {
            PC_TRY(make_linear_trainable(p, lin, err));
        } else if (targeted(c, m, lin)) {
            c->fan_in_fan_out |= lin->w_in_out;  /* PEFT sets it for Conv1D targets (and saves it) */
            PC_TRY(attach_lora(p, lin, &p->adapters[p->n_adapters++], &rng, err));
            p->n_all += (int64_t)c->r * (lin->in + lin->out) + (c->use_dora ? lin->out : 0);
        }
        bool wrapped = lin->lora != NULL;
        bool bias_trainable = lin->b && !lin->db &&
            (c->bias == PC_BIAS_ALL || (c->bias == PC_BIAS_LORA_ONLY && wrapped));
        if (bias_trainable) PC_TRY(make_bias_trainable(p, lin->name, wrapped, &lin->b, &lin->db, lin->out, err));
    }
    for (int i = 0; c->bias == PC_BIAS_ALL && i < m->n_norms; i++) {
        pc_norm *n = m->norms[i];
        if (n->b) PC_TRY(make_bias_trainable(p, n->name, false, &n->b, &n->db, n->dim, err));
    }
    PC_TRY(check_targets_matched(p, err));
    p->n_trainable = pc_param_list_numel(&p->trainable);
    return PEFTC_OK;
}

pc_status pc_peft_model_create(pc_model *m, pc_lora_config *cfg, uint64_t seed, pc_peft_model **out, pc_error *err)
{
    pc_peft_model *p = calloc(1, sizeof *p);
    if (!p) { pc_lora_config_free(cfg); return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory"); }
    p->base = m;
    p->config = *cfg;
    memset(cfg, 0, sizeof *cfg);
    pc_status s = apply(p, seed, err);
    if (s) { pc_peft_model_free(p); return s; }
    *out = p;
    return PEFTC_OK;
}

void pc_peft_model_free(pc_peft_model *p)
{
    if (!p) return;
    for (int i = 0; i < p->base->n_linears; i++) p->base->linears[i]->lora = NULL;
    for (int i = 0; i < p->n_adapters; i++) pc_lora_free(&p->adapters[i]);
    free(p->adapters);
    pc_param_list_free(&p->trainable);
    pc_owned_free_group(&p->owned, -1);
    pc_lora_config_free(&p->config);
    free(p);
}

/* 1234567 -> "1,234,567" */
static void with_commas(int64_t v, char *buf, size_t n)
{
    char digits[32];
    int len = snprintf(digits, sizeof digits, "%lld", (long long)v);
    size_t o = 0;
    for (int i = 0; i < len && o + 1 < n; i++) {
        if (i > 0 && (len - i) % 3 == 0 && o + 1 < n) buf[o++] = ',';
        if (o + 1 < n) buf[o++] = digits[i];
    }
    buf[o] = '\0';
}

void pc_peft_trainable_line(const pc_peft_model *p, char *buf, size_t n)
{
    char t[32], a[32];
    with_commas(p->n_trainable, t, sizeof t);
    with_commas(p->n_all, a, sizeof a);
    snprintf(buf, n, "trainable params: %s || all params: %s || trainable%%: %.4f", t, a,
             100.0 * (double)p->n_trainable / (double)p->n_all);
}

/* ---------- adapter files ---------- */

pc_status pc_peft_save(const pc_peft_model *p, const char *dir, pc_error *err)
{
    const pc_param_list *l = &p->trainable;
    pc_st_item *items = calloc((size_t)l->n, sizeof *items);
    if (!items) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
    for (int i = 0; i < l->n; i++) {
        items[i].name = l->items[i].name;
        items[i].dtype = PC_DT_F32;
        items[i].ndim = l->items[i].ndim;
        items[i].shape[0] = l->items[i].shape[0];
        items[i].shape[1] = l->items[i].shape[1];
        items[i].data = l->items[i].data;
    }
    /* Both files are staged first and renamed together, so a failed write leaves the old pair whole. */
    char weights[4096], config[4096], new_weights[4200], new_config[4200];
    snprintf(weights, sizeof weights, "%s/adapter_model.safetensors", dir);
    snprintf(config, sizeof config, "%s/adapter_config.json", dir);
    snprintf(new_weights, sizeof new_weights, "%s.new", weights);
    snprintf(new_config, sizeof new_config, "%s.new", config);
    pc_status s = pc_st_write(new_weights, items, l->n, NULL, err);
    free(items);
    if (!s) s = pc_lora_config_save(&p->config, new_config, err);
    if (!s && rename(new_weights, weights) != 0)
        s = pc_fail(err, PEFTC_ERR_IO, "%s: cannot rename '%s' into place: %s", weights, new_weights, strerror(errno));
    if (!s && rename(new_config, config) != 0)
        s = pc_fail(err, PEFTC_ERR_IO, "%s: cannot rename '%s' into place: %s", config, new_config, strerror(errno));
    if (s) { unlink(new_weights); unlink(new_config); }
    return s;
}

pc_status pc_peft_load_weights(pc_peft_model *p, const char *dir, pc_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    pc_safetensors *st = NULL;
    PC_TRY(pc_st_open(path, &st, err));
    pc_status s = PEFTC_OK;
    for (int i = 0; !s && i < pc_st_count(st); i++) {
        const pc_st_tensor *t = pc_st_at(st, i);
        if (!pc_param_list_find(&p->trainable, t->name))
            s = pc_fail(err, PEFTC_ERR_FORMAT, "%s: tensor '%s' has no place in this model (adapter made for a "
                        "different base model or config?)", path, t->name);
    }
    for (int i = 0; !s && i < p->trainable.n; i++) {
        pc_param *prm = &p->trainable.items[i];
        const pc_st_tensor *t = pc_st_find(st, prm->name);
        if (!t) s = pc_fail(err, PEFTC_ERR_FORMAT, "%s: tensor '%s' is missing", path, prm->name);
        else if ((s = pc_st_read_f32_shaped(t, prm->ndim, prm->shape, prm->data, err)) == PEFTC_OK)
            s = pc_st_check_finite(t, prm->data, prm->numel, err);
    }
    pc_st_close(st);
    return s;
}

pc_status pc_peft_load(pc_model *m, const char *dir, pc_peft_model **out, pc_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    pc_lora_config cfg;
    PC_TRY(pc_lora_config_load(&cfg, path, err));
    pc_peft_model *p = NULL;
    PC_TRY(pc_peft_model_create(m, &cfg, 0, &p, err));
    pc_status s = pc_peft_load_weights(p, dir, err);
    if (s) { pc_peft_model_free(p); return s; }
    *out = p;
    return PEFTC_OK;
}
