#include "train/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

pc_status pc_adamw_init(pc_adamw *o, const pc_param_list *params, double beta1, double beta2, double eps,
                        double weight_decay, pc_error *err)
{
    memset(o, 0, sizeof *o);
    o->beta1 = beta1; o->beta2 = beta2; o->eps = eps; o->weight_decay = weight_decay;
    o->n = params->n;
    o->m = calloc((size_t)params->n, sizeof *o->m);
    o->v = calloc((size_t)params->n, sizeof *o->v);
    if (!o->m || !o->v) { pc_adamw_free(o); return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for AdamW state"); }
    for (int i = 0; i < params->n; i++) {
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
    #pragma omp parallel for schedule(static) if (n > 65536)
    for (long i = 0; i < n; i++) {
        if (wd != 0) p[i] *= decay;
        m[i] = m[i] * fb1 + (1.0f - fb1) * g[i];
        v[i] = v[i] * fb2 + (1.0f - fb2) * g[i] * g[i];
        float denom = sqrtf(v[i]) / bc2_sqrt + feps;
        p[i] -= step_size * (m[i] / denom);
    }
}

void pc_adamw_step(pc_adamw *o, pc_param_list *params, double lr)
{
    o->lr = lr;
    o->step++;
    for (int i = 0; i < params->n; i++) {
        pc_param *p = &params->items[i];
        adamw_update(p->data, p->grad, o->m[i], o->v[i], p->numel, lr, p->decay ? o->weight_decay : 0.0,
                     o->beta1, o->beta2, o->eps, o->step);
    }
}

double pc_clip_grad_norm(pc_param_list *params, double max_norm)
{
    double total = 0;
    for (int i = 0; i < params->n; i++) {
        const float *g = params->items[i].grad;
        double sq = 0;
        for (long j = 0; j < params->items[i].numel; j++) sq += (double)g[j] * g[j];
        total += sq;
    }
    double norm = sqrt(total);
    if (max_norm <= 0) return norm;
    double coef = max_norm / (norm + 1e-6);
    if (coef >= 1.0) return norm;
    float c = (float)coef;
    for (int i = 0; i < params->n; i++) {
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
