#include "base/param.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "base/threads.h"

int pc_param_list_add(pc_param_list *l, const char *name, float *data, float *grad,
                      int ndim, const int64_t *shape, bool decay)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 32;
        pc_param *items = realloc(l->items, sizeof *items * (size_t)cap);
        if (!items) return -1;
        l->items = items;
        l->cap = cap;
    }
    pc_param *p = &l->items[l->n];
    memset(p, 0, sizeof *p);
    p->name = strdup(name);
    if (!p->name) return -1;
    p->data = data;
    p->grad = grad;
    p->ndim = ndim;
    p->numel = 1;
    for (int i = 0; i < ndim; i++) { p->shape[i] = shape[i]; p->numel *= shape[i]; }
    p->decay = decay;
    l->n++;
    return 0;
}

pc_param *pc_param_list_find(const pc_param_list *l, const char *name)
{
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->items[i].name, name) == 0) return &l->items[i];
    return NULL;
}

int64_t pc_param_list_numel(const pc_param_list *l)
{
    int64_t n = 0;
    for (int i = 0; i < l->n; i++) n += l->items[i].numel;
    return n;
}

void pc_param_list_zero_grad(pc_param_list *l)
{
    #pragma omp parallel for schedule(dynamic) if (pc_param_list_small_numel(l, LONG_MAX) >= PC_PARALLEL_MIN)
    for (int i = 0; i < l->n; i++)
        memset(l->items[i].grad, 0, sizeof(float) * (size_t)l->items[i].numel);
}

long pc_param_list_small_numel(const pc_param_list *l, long max_numel)
{
    long total = 0;
    for (int i = 0; i < l->n; i++)
        if (l->items[i].numel <= max_numel) total += (long)l->items[i].numel;
    return total;
}

void pc_param_list_free(pc_param_list *l)
{
    for (int i = 0; i < l->n; i++) free(l->items[i].name);
    free(l->items);
    l->items = NULL;
    l->n = l->cap = 0;
}
