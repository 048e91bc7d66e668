/* Optimizer, gradient clipping and learning-rate schedules with the semantics of
 * torch.optim.AdamW, torch.nn.utils.clip_grad_norm_ and transformers' schedulers. */
#ifndef PC_TRAIN_OPTIM_H
#define PC_TRAIN_OPTIM_H

#include "base/error.h"
#include "base/param.h"

typedef struct pc_adamw {
    double lr, beta1, beta2, eps, weight_decay;
    long step;                 /* optimizer steps taken */
    float **m, **v;            /* first and second moments per parameter */
    int n;
} pc_adamw;

pc_status pc_adamw_init(pc_adamw *o, const pc_param_list *params, double beta1, double beta2, double eps,
                        double weight_decay, pc_error *err);
/* One AdamW step at learning rate lr over params (decoupled decay only where param.decay). */
void pc_adamw_step(pc_adamw *o, pc_param_list *params, double lr);
void pc_adamw_free(pc_adamw *o);

/* Total L2 norm of all gradients (before clipping); scales them by
 * min(1, max_norm / (norm + 1e-6)) when max_norm > 0. */
double pc_clip_grad_norm(pc_param_list *params, double max_norm);

typedef enum { PC_SCHED_LINEAR, PC_SCHED_CONSTANT, PC_SCHED_CONSTANT_WARMUP, PC_SCHED_COSINE } pc_schedule_kind;

/* Parses lr_scheduler_type; -1 when unknown. */
int pc_schedule_parse(const char *name);
/* Learning-rate factor at optimizer step `step` (0-based) of `total`, after `warmup` warm-up steps. */
double pc_schedule_factor(pc_schedule_kind kind, long step, long warmup, long total);

#endif
