/* Optimizer, gradient clipping and learning-rate schedules with the semantics of
 * torch.optim.AdamW, torch.nn.utils.clip_grad_norm_ and transformers' schedulers. */
#ifndef PC_TRAIN_OPTIM_H
#define PC_TRAIN_OPTIM_H

#include <stddef.h>

#include "base/error.h"
#include "base/param.h"

typedef struct pc_adamw {
    double lr, beta1, beta2, eps, weight_decay;
    long step;                 /* optimizer steps taken */
    float **m, **v;            /* first and second moments per parameter */
    int64_t *numel;            /* elements per parameter */
    int n;
} pc_adamw;

pc_status pc_adamw_init(pc_adamw *o, const pc_param_list *params, double beta1, double beta2, double eps,
                        double weight_decay, pc_error *err);
/* One AdamW step at learning rate lr over params (decoupled decay only where param.decay). */
void pc_adamw_step(pc_adamw *o, pc_param_list *params, double lr);
void pc_adamw_free(pc_adamw *o);

/* An optimizer chosen by TrainingArguments' `optim` name, as transformers'
 * Trainer.get_optimizer_cls_and_kwargs maps it:
 *   adamw_torch, adamw_torch_fused, adamw_hf  torch.optim.AdamW (pc_adamw; fused is the same math)
 *   adamw_8bit, adamw_bnb_8bit                bnb AdamW8bit       (train/optim8.h)
 *   paged_adamw_8bit                          bnb PagedAdamW8bit
 *   paged_adamw_32bit                         bnb PagedAdamW32bit
 * Betas, eps and weight decay come from TrainingArguments (adam_beta1, adam_beta2, adam_epsilon,
 * weight_decay), not from bnb's own defaults; decay applies only where param.decay. */
typedef struct pc_optimizer pc_optimizer;

typedef struct pc_optim_args {
    double beta1, beta2, eps, weight_decay;
    const char *paging_dir;    /* paged variants: directory for the state file; NULL = anonymous memory */
} pc_optim_args;

extern const char *const pc_optim_names[]; /* the accepted names, NULL-terminated */

/* Fails for an unknown name with a message that lists the valid ones. */
pc_status pc_optimizer_create(const char *name, const pc_param_list *params, const pc_optim_args *args,
                              pc_optimizer **out, pc_error *err);
void pc_optimizer_step(pc_optimizer *o, pc_param_list *params, double lr);
long pc_optimizer_step_count(const pc_optimizer *o);
/* Bytes of optimizer state, and how many of them are in RAM now (less when paged out). */
size_t pc_optimizer_state_bytes(const pc_optimizer *o);
size_t pc_optimizer_resident_bytes(const pc_optimizer *o);
/* Evicts paged state now (no effect for unpaged optimizers). */
void pc_optimizer_page_out(pc_optimizer *o);
/* The whole state as safetensors: per parameter "<name>.exp_avg"/".exp_avg_sq" (torch AdamW) or
 * "<name>.state1"/".state2" (+ ".absmax1"/".absmax2" and the maps "qmap1"/"qmap2" for 8-bit
 * state), in the parameter's shape; metadata "optimizer" (state layout) and "step". Loading
 * checks every name, dtype and size against params and this optimizer's layout. */
pc_status pc_optimizer_save(const pc_optimizer *o, const pc_param_list *params, const char *path, pc_error *err);
pc_status pc_optimizer_load(pc_optimizer *o, const pc_param_list *params, const char *path, pc_error *err);
void pc_optimizer_free(pc_optimizer *o);

/* Total L2 norm of all gradients (before clipping); scales them by
 * min(1, max_norm / (norm + 1e-6)) when max_norm > 0. */
double pc_clip_grad_norm(pc_param_list *params, double max_norm);

typedef enum { PC_SCHED_LINEAR, PC_SCHED_CONSTANT, PC_SCHED_CONSTANT_WARMUP, PC_SCHED_COSINE } pc_schedule_kind;

/* Parses lr_scheduler_type; -1 when unknown. */
int pc_schedule_parse(const char *name);
/* Learning-rate factor at optimizer step `step` (0-based) of `total`, after `warmup` warm-up steps. */
double pc_schedule_factor(pc_schedule_kind kind, long step, long warmup, long total);

#endif
