/* A trainable tensor as the trainer, the optimizer and adapter files see it:
 * a name (PEFT's saved key), fp32 master data, its gradient, shape, and whether
 * weight decay applies (transformers: no decay for biases and LayerNorm weights). */
#ifndef PC_BASE_PARAM_H
#define PC_BASE_PARAM_H

#include <stdbool.h>
#include <stdint.h>

typedef struct pc_param {
    char *name;          /* e.g. "base_model.model.pre_classifier.weight" */
    float *data;         /* owned by the module the parameter belongs to */
    float *grad;         /* same shape, accumulated by backward */
    int ndim;
    int64_t shape[2];
    int64_t numel;
    bool decay;
} pc_param;

typedef struct pc_param_list {
    pc_param *items;
    int n, cap;
} pc_param_list;

/* Appends a parameter (name is copied). Returns 0, or -1 when out of memory. */
int pc_param_list_add(pc_param_list *l, const char *name, float *data, float *grad,
                      int ndim, const int64_t *shape, bool decay);
pc_param *pc_param_list_find(const pc_param_list *l, const char *name);
int64_t pc_param_list_numel(const pc_param_list *l);
void pc_param_list_zero_grad(pc_param_list *l);
/* Elements in the tensors of at most max_numel elements each (LONG_MAX: all). */
long pc_param_list_small_numel(const pc_param_list *l, long max_numel);
void pc_param_list_free(pc_param_list *l);

#endif
