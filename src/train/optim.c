#include "train/optim.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/threads.h"
#include "formats/safetensors.h"
#include "train/optim8.h"

pc_status pc_adamw_init(pc_adamw *o, const pc_param_list *params, double beta1, double beta2, double eps,
                        double weight_decay, pc_error *err)
{
    memset(o, 0, sizeof *o);
    o->beta1 = beta1; o->beta2 = beta2; o->eps = eps; o->weight_decay = weight_decay;
    o->n = params->n;
    o->m = calloc((size_t)(params->n ? params->n : 1), sizeof *o->m);
    o->v = calloc((size_t)(params->n ? params->n : 1), sizeof *o->v);
    o->numel = calloc((size_t)(params->n ? params->n : 1), sizeof *o->numel);
    if (!o->m || !o->v || !o->numel) {
        pc_adamw_free(o);
        return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for AdamW state");
    }
    for (int i = 0; i < params->n; i++) {
        o->numel[i] = params->items[i].numel;
        o->m[i] = calloc((size_t)params->items[i].numel, sizeof(float));
        o->v[i] = calloc((size_t)params->items[i].numel, sizeof(float));
        if (!o->m[i] || !o->v[i]) {
            pc_adamw_free(o);
            return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for AdamW state of %s", params->items[i].name);
        }
    }
    return PEFTC_OK;
}

void pc_adamw_free(pc_adamw *o)
{
    for (int i = 0; i < o->n; i++) {
        if (o->m) free(o->m[i]);
        if (o->v) free(o->v[i]);
    }
    free(o->m);
    free(o->v);
    free(o->numel);
    memset(o, 0, sizeof *o);
}

/* torch.optim.AdamW (single-tensor path), per element:
 *   p *= 1 - lr*wd;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
 *   p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)          (Loshchilov & Hutter 2019, Alg. 2) */
static void adamw_update(float *p, const float *g, float *m, float *v, long n, double lr, double wd,
                         double b1, double b2, double eps, long t)
{
    float decay = (float)(1.0 - lr * wd);
    float step_size = (float)(lr / (1.0 - pow(b1, (double)t)));
    float bc2_sqrt = (float)sqrt(1.0 - pow(b2, (double)t));
    float fb1 = (float)b1, fb2 = (float)b2, feps = (float)eps;
    #pragma omp parallel for schedule(static) if (n > PC_PARAM_SPLIT_MIN)
    for (long i = 0; i < n; i++) {
        if (wd != 0) p[i] *= decay;
        m[i] = m[i] * fb1 + (1.0f - fb1) * g[i];
        v[i] = v[i] * fb2 + (1.0f - fb2) * g[i] * g[i];
        float denom = sqrtf(v[i]) / bc2_sqrt + feps;
        p[i] -= step_size * (m[i] / denom);
    }
}

static void adamw_update_param(pc_adamw *o, pc_param_list *params, int i, double lr)
{
    pc_param *p = &params->items[i];
    adamw_update(p->data, p->grad, o->m[i], o->v[i], p->numel, lr, p->decay ? o->weight_decay : 0.0,
                 o->beta1, o->beta2, o->eps, o->step);
}

/* Tensors too small for a parallel loop of their own (LoRA's A and B) are shared out whole among the
 * threads; each larger one is split across all of them. Element-wise either way: same bits for any count. */
void pc_adamw_step(pc_adamw *o, pc_param_list *params, double lr)
{
    o->lr = lr;
    o->step++;
    const long small = pc_param_list_small_numel(params, PC_PARAM_SPLIT_MIN);
    #pragma omp parallel for schedule(dynamic) if (small >= PC_PARALLEL_MIN)
    for (int i = 0; i < params->n; i++)
        if (params->items[i].numel <= PC_PARAM_SPLIT_MIN) adamw_update_param(o, params, i, lr);
    for (int i = 0; i < params->n; i++)
        if (params->items[i].numel > PC_PARAM_SPLIT_MIN) adamw_update_param(o, params, i, lr);
}

/* ---------- optimizers by name ---------- */

typedef enum { OPT_TORCH, OPT_BNB } opt_family;

static const struct optim_kind {
    const char *name;
    opt_family family;
    bool eight_bit, paged;
} optim_kinds[] = {
    { "adamw_torch", OPT_TORCH, false, false },
    { "adamw_torch_fused", OPT_TORCH, false, false },
    { "adamw_hf", OPT_TORCH, false, false },
    { "adamw_8bit", OPT_BNB, true, false },
    { "adamw_bnb_8bit", OPT_BNB, true, false },
    { "paged_adamw_8bit", OPT_BNB, true, true },
    { "paged_adamw_32bit", OPT_BNB, false, true },
};
#define N_OPTIM_KINDS ((int)(sizeof optim_kinds / sizeof optim_kinds[0]))

const char *const pc_optim_names[] = {
    "adamw_torch", "adamw_torch_fused", "adamw_hf", "adamw_8bit", "adamw_bnb_8bit", "paged_adamw_8bit",
    "paged_adamw_32bit", NULL
};

struct pc_optimizer {
    opt_family family;
    pc_adamw torch;
    pc_bnb_adamw bnb;
};

pc_status pc_optimizer_create(const char *name, const pc_param_list *params, const pc_optim_args *a,
                              pc_optimizer **out, pc_error *err)
{
    *out = NULL;
    const struct optim_kind *kind = NULL;
    for (int i = 0; i < N_OPTIM_KINDS && !kind; i++)
        if (strcmp(name, optim_kinds[i].name) == 0) kind = &optim_kinds[i];
    if (!kind) {
        char list[256] = "";
        size_t len = 0;
        for (int i = 0; pc_optim_names[i] && len < sizeof list; i++)
            len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "", pc_optim_names[i]);
        return pc_fail(err, PEFTC_ERR_INVALID, "optim '%s' is not available, choose one of %s", name, list);
    }
    pc_optimizer *o = calloc(1, sizeof *o);
    if (!o) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for the optimizer");
    o->family = kind->family;
    pc_status s = kind->family == OPT_TORCH
        ? pc_adamw_init(&o->torch, params, a->beta1, a->beta2, a->eps, a->weight_decay, err)
        : pc_bnb_adamw_init(&o->bnb, params, kind->eight_bit, kind->paged, a->paging_dir, a->beta1, a->beta2, a->eps,
                            a->weight_decay, err);
    if (s) { free(o); return s; }
    *out = o;
    return PEFTC_OK;
}

void pc_optimizer_step(pc_optimizer *o, pc_param_list *params, double lr)
{
    if (o->family == OPT_TORCH) pc_adamw_step(&o->torch, params, lr);
    else pc_bnb_adamw_step(&o->bnb, params, lr);
}

long pc_optimizer_step_count(const pc_optimizer *o)
{
    return o->family == OPT_TORCH ? o->torch.step : o->bnb.step;
}

size_t pc_optimizer_state_bytes(const pc_optimizer *o)
{
    if (o->family == OPT_BNB) return pc_bnb_adamw_state_bytes(&o->bnb);
    size_t total = 0;
    for (int i = 0; i < o->torch.n; i++) total += 2 * sizeof(float) * (size_t)o->torch.numel[i];
    return total;
}

size_t pc_optimizer_resident_bytes(const pc_optimizer *o)
{
    return o->family == OPT_BNB ? pc_bnb_adamw_resident_bytes(&o->bnb) : pc_optimizer_state_bytes(o);
}

void pc_optimizer_page_out(pc_optimizer *o)
{
    if (o->family == OPT_BNB) pc_bnb_adamw_page_out(&o->bnb);
}

void pc_optimizer_free(pc_optimizer *o)
{
    if (!o) return;
    if (o->family == OPT_TORCH) pc_adamw_free(&o->torch);
    else pc_bnb_adamw_free(&o->bnb);
    free(o);
}

/* ---------- state files ---------- */

/* One tensor of a parameter's state: "<param name>.<suffix>". */
typedef struct state_tensor {
    const char *suffix;
    pc_dtype dtype;
    int64_t numel;
    bool param_shaped;         /* else 1-D [numel] */
    void *data;
} state_tensor;

static int state_tensors(const pc_optimizer *o, int i, state_tensor out[4])
{
    if (o->family == OPT_TORCH) {
        int64_t n = o->torch.numel[i];
        out[0] = (state_tensor){ "exp_avg", PC_DT_F32, n, true, o->torch.m[i] };
        out[1] = (state_tensor){ "exp_avg_sq", PC_DT_F32, n, true, o->torch.v[i] };
        return 2;
    }
    const pc_bnb_state *st = &o->bnb.states[i];
    pc_dtype dt = st->quantized ? PC_DT_U8 : PC_DT_F32;
    out[0] = (state_tensor){ "state1", dt, st->numel, true, st->state1 };
    out[1] = (state_tensor){ "state2", dt, st->numel, true, st->state2 };
    if (!st->quantized) return 2;
    int64_t blocks = (st->numel + PC_BNB_BLOCK - 1) / PC_BNB_BLOCK;
    out[2] = (state_tensor){ "absmax1", PC_DT_F32, blocks, false, st->absmax1 };
    out[3] = (state_tensor){ "absmax2", PC_DT_F32, blocks, false, st->absmax2 };
    return 4;
}

static bool has_quantized_state(const pc_optimizer *o)
{
    for (int i = 0; o->family == OPT_BNB && i < o->bnb.n; i++)
        if (o->bnb.states[i].quantized) return true;
    return false;
}

static const char *state_layout(const pc_optimizer *o)
{
    if (o->family == OPT_TORCH) return "torch_adamw";
    return o->bnb.eight_bit ? "bnb_adamw_8bit" : "bnb_adamw_32bit";
}

static int optimizer_params(const pc_optimizer *o)
{
    return o->family == OPT_TORCH ? o->torch.n : o->bnb.n;
}

static pc_status check_params(const pc_optimizer *o, const pc_param_list *params, pc_error *err)
{
    if (params->n != optimizer_params(o))
        return pc_fail(err, PEFTC_ERR_INVALID, "the optimizer holds state for %d parameters, got %d",
                       optimizer_params(o), params->n);
    return PEFTC_OK;
}

static char *tensor_name(const char *param, const char *suffix)
{
    size_t len = strlen(param) + strlen(suffix) + 2;
    char *s = malloc(len);
    if (s) snprintf(s, len, "%s.%s", param, suffix);
    return s;
}

static void item_shape(pc_st_item *it, const pc_param *p, const state_tensor *t)
{
    it->ndim = t->param_shaped ? p->ndim : 1;
    if (t->param_shaped) memcpy(it->shape, p->shape, sizeof p->shape);
    else it->shape[0] = t->numel;
}

static cJSON *state_metadata(const pc_optimizer *o)
{
    char step[32];
    snprintf(step, sizeof step, "%ld", pc_optimizer_step_count(o));
    cJSON *meta = cJSON_CreateObject();
    if (meta && (!cJSON_AddStringToObject(meta, "format", "pt") ||
                 !cJSON_AddStringToObject(meta, "optimizer", state_layout(o)) ||
                 !cJSON_AddStringToObject(meta, "step", step))) {
        cJSON_Delete(meta);
        return NULL;
    }
    return meta;
}

pc_status pc_optimizer_save(const pc_optimizer *o, const pc_param_list *params, const char *path, pc_error *err)
{
    PC_TRY(check_params(o, params, err));
    int cap = 4 * params->n + 2, n = 0;
    pc_st_item *items = calloc((size_t)cap, sizeof *items);
    cJSON *meta = state_metadata(o);
    pc_status s = items && meta ? PEFTC_OK : pc_fail(err, PEFTC_ERR_NOMEM, "out of memory saving %s", path);
    for (int i = 0; i < params->n && !s; i++) {
        state_tensor t[4];
        int k = state_tensors(o, i, t);
        for (int j = 0; j < k && !s; j++, n++) {
            pc_st_item *it = &items[n];
            it->name = tensor_name(params->items[i].name, t[j].suffix);
            it->dtype = t[j].dtype;
            it->data = t[j].data;
            item_shape(it, &params->items[i], &t[j]);
            if (!it->name) s = pc_fail(err, PEFTC_ERR_NOMEM, "out of memory saving %s", path);
        }
    }
    int named = n;
    if (!s && has_quantized_state(o)) {
        items[n++] = (pc_st_item){ "qmap1", PC_DT_F32, 1, { 256 }, o->bnb.qmap1 };
        items[n++] = (pc_st_item){ "qmap2", PC_DT_F32, 1, { 256 }, o->bnb.qmap2 };
    }
    if (!s) s = pc_st_write(path, items, n, meta, err);
    for (int i = 0; items && i < named; i++) free((char *)items[i].name);
    free(items);
    cJSON_Delete(meta);
    return s;
}

static pc_status check_tensor(const pc_st_tensor *t, const char *name, pc_dtype dtype, int64_t numel,
                              const char *path, pc_error *err)
{
    if (!t) return pc_fail(err, PEFTC_ERR_FORMAT, "%s: tensor '%s' is missing", path, name);
    if (t->dtype != dtype)
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: tensor '%s' has dtype %s, expected %s", path, name,
                       pc_dtype_name(t->dtype), pc_dtype_name(dtype));
    if (pc_st_numel(t) != numel)
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: tensor '%s' has %lld elements, expected %lld", path, name,
                       (long long)pc_st_numel(t), (long long)numel);
    return PEFTC_OK;
}

/* Checks (copy = false) or copies (copy = true) every state tensor; returns how many there are. */
static pc_status visit_state(pc_optimizer *o, const pc_param_list *params, const pc_safetensors *st, bool copy,
                             const char *path, int *count, pc_error *err)
{
    *count = 0;
    for (int i = 0; i < params->n; i++) {
        state_tensor t[4];
        int k = state_tensors(o, i, t);
        for (int j = 0; j < k; j++, (*count)++) {
            char *name = tensor_name(params->items[i].name, t[j].suffix);
            if (!name) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory loading %s", path);
            const pc_st_tensor *f = pc_st_find(st, name);
            pc_status s = check_tensor(f, name, t[j].dtype, t[j].numel, path, err);
            free(name);
            PC_TRY(s);
            if (copy) memcpy(t[j].data, f->data, f->nbytes);
        }
    }
    return PEFTC_OK;
}

static pc_status check_map(const pc_safetensors *st, const char *name, const float *expected, const char *path,
                           pc_error *err)
{
    const pc_st_tensor *t = pc_st_find(st, name);
    PC_TRY(check_tensor(t, name, PC_DT_F32, 256, path, err));
    if (memcmp(t->data, expected, 256 * sizeof(float)) != 0)
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: %s differs from this build's dynamic quantization map", path, name);
    return PEFTC_OK;
}

static pc_status read_step(const pc_optimizer *o, const pc_safetensors *st, const char *path, long *step, pc_error *err)
{
    const cJSON *meta = pc_st_metadata(st);
    const char *layout = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(meta, "optimizer"));
    const char *text = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(meta, "step"));
    if (!layout || strcmp(layout, state_layout(o)) != 0)
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: optimizer state layout '%s', expected '%s'", path,
                       layout ? layout : "(none)", state_layout(o));
    char *end = NULL;
    errno = 0;
    *step = text ? strtol(text, &end, 10) : -1;
    if (!text || !*text || *end || errno || *step < 0)
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: metadata 'step' must be a non-negative integer, got '%s'", path,
                       text ? text : "(none)");
    return PEFTC_OK;
}

static pc_status load_from(pc_optimizer *o, const pc_param_list *params, const pc_safetensors *st, const char *path,
                           pc_error *err)
{
    long step = 0;
    int count;
    PC_TRY(read_step(o, st, path, &step, err));
    PC_TRY(visit_state(o, params, st, false, path, &count, err));
    if (has_quantized_state(o)) {
        PC_TRY(check_map(st, "qmap1", o->bnb.qmap1, path, err));
        PC_TRY(check_map(st, "qmap2", o->bnb.qmap2, path, err));
        count += 2;
    }
    if (pc_st_count(st) != count)
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: holds %d tensors, expected %d for these parameters", path,
                       pc_st_count(st), count);
    PC_TRY(visit_state(o, params, st, true, path, &count, err));
    if (o->family == OPT_TORCH) o->torch.step = step;
    else o->bnb.step = step;
    return PEFTC_OK;
}

pc_status pc_optimizer_load(pc_optimizer *o, const pc_param_list *params, const char *path, pc_error *err)
{
    PC_TRY(check_params(o, params, err));
    pc_safetensors *st;
    PC_TRY(pc_st_open(path, &st, err));
    pc_status s = load_from(o, params, st, path, err);
    pc_st_close(st);
    return s;
}

/* The squares are summed per tensor in order, tensors in fixed chunks of the list and chunks in order, so the
 * norm has the same bits for any thread count. */
double pc_clip_grad_norm(pc_param_list *params, double max_norm)
{
    enum { CHUNKS = 64 };
    double partial[CHUNKS] = {0};
    const long numel = pc_param_list_small_numel(params, LONG_MAX);
    const int n = params->n;
    #pragma omp parallel for schedule(dynamic) if (numel >= PC_PARALLEL_MIN)
    for (int chunk = 0; chunk < CHUNKS; chunk++)
        for (int i = n * chunk / CHUNKS; i < n * (chunk + 1) / CHUNKS; i++) {
            const float *g = params->items[i].grad;
            for (long j = 0; j < params->items[i].numel; j++) partial[chunk] += (double)g[j] * g[j];
        }
    double total = 0;
    for (int chunk = 0; chunk < CHUNKS; chunk++) total += partial[chunk];
    double norm = sqrt(total);
    if (max_norm <= 0) return norm;
    double coef = max_norm / (norm + 1e-6);
    if (coef >= 1.0) return norm;
    float c = (float)coef;
    #pragma omp parallel for schedule(dynamic) if (numel >= PC_PARALLEL_MIN)
    for (int i = 0; i < n; i++) {
        float *g = params->items[i].grad;
        for (long j = 0; j < params->items[i].numel; j++) g[j] *= c;
    }
    return norm;
}

int pc_schedule_parse(const char *name)
{
    if (strcmp(name, "linear") == 0) return PC_SCHED_LINEAR;
    if (strcmp(name, "constant") == 0) return PC_SCHED_CONSTANT;
    if (strcmp(name, "constant_with_warmup") == 0) return PC_SCHED_CONSTANT_WARMUP;
    if (strcmp(name, "cosine") == 0) return PC_SCHED_COSINE;
    return -1;
}

/* transformers' get_*_schedule_with_warmup lambdas. */
double pc_schedule_factor(pc_schedule_kind kind, long step, long warmup, long total)
{
    if (kind == PC_SCHED_CONSTANT) return 1.0;
    if (step < warmup) return (double)step / (double)(warmup > 1 ? warmup : 1);
    if (kind == PC_SCHED_CONSTANT_WARMUP) return 1.0;
    long span = total - warmup > 1 ? total - warmup : 1;
    if (kind == PC_SCHED_LINEAR) {
        double f = (double)(total - step) / (double)span;
        return f > 0 ? f : 0;
    }
    double progress = (double)(step - warmup) / (double)span;  /* cosine, num_cycles 0.5 */
    double f = 0.5 * (1.0 + cos(M_PI * 0.5 * 2.0 * progress));
    return f > 0 ? f : 0;
}
