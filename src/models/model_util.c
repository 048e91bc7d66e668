#include "models/model_util.h"

#include "base/fs.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int owned_push(pc_owned *o, void *p)
{
    if (o->n == o->cap) {
        int cap = o->cap ? 2 * o->cap : 64;
        void **ptrs = realloc(o->ptrs, sizeof *ptrs * (size_t)cap);
        if (!ptrs) return -1;
        o->ptrs = ptrs;
        int *groups = realloc(o->groups, sizeof *groups * (size_t)cap);
        if (!groups) return -1;
        o->groups = groups;
        o->cap = cap;
    }
    o->ptrs[o->n] = p;
    o->groups[o->n] = o->group;
    o->n++;
    return 0;
}

void *pc_owned_alloc_bytes(pc_owned *o, size_t n)
{
    void *p = calloc(n ? n : 1, 1);
    if (p && owned_push(o, p) != 0) { free(p); return NULL; }
    if (p && o->group >= 0 && o->group < 3) o->bytes[o->group] += n;
    return p;
}

float *pc_owned_alloc(pc_owned *o, long n_floats)
{
    if (n_floats < 0) return NULL;
    return pc_owned_alloc_bytes(o, sizeof(float) * (size_t)n_floats);
}

size_t pc_owned_bytes(const pc_owned *o, int group)
{
    return group >= 0 && group < 3 ? o->bytes[group] : 0;
}

float *pc_owned_dup(pc_owned *o, const float *src, long n)
{
    float *p = pc_owned_alloc(o, n);
    if (p) memcpy(p, src, sizeof(float) * (size_t)n);
    return p;
}

void pc_owned_free_group(pc_owned *o, int group)
{
    int kept = 0;
    for (int i = 0; i < o->n; i++) {
        if (group < 0 || o->groups[i] == group) {
            free(o->ptrs[i]);
        } else {
            o->ptrs[kept] = o->ptrs[i];
            o->groups[kept] = o->groups[i];
            kept++;
        }
    }
    o->n = kept;
    for (int g = 0; g < 3; g++) if (group < 0 || g == group) o->bytes[g] = 0;
    if (group < 0) {
        free(o->ptrs);
        free(o->groups);
        o->ptrs = NULL;
        o->groups = NULL;
        o->cap = 0;
    }
}

pc_status pc_model_tensor(const pc_safetensors *st, pc_owned *o, const char *name, int ndim,
                          const int64_t *shape, float **dst, pc_error *err)
{
    const pc_st_tensor *t = pc_st_find(st, name);
    if (!t) return pc_fail(err, PEFTC_ERR_FORMAT, "tensor '%s' is missing from the checkpoint", name);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    bool shape_ok = t->ndim == ndim;
    for (int i = 0; shape_ok && i < ndim; i++) shape_ok = t->shape[i] == shape[i];
    if (!shape_ok) return pc_st_read_f32_shaped(t, ndim, shape, NULL, err);  /* the shape error, before allocating */
    if (t->dtype == PC_DT_F32 && ((uintptr_t)t->data % sizeof(float)) == 0) {
        *dst = (float *)(uintptr_t)t->data;  /* frozen weight used in place, never written */
        PC_TRY(pc_st_check_finite(t, *dst, n, err));
        /* the scan read every page: hand them back, so only the pages in use stay resident (an embedding
         * table is read a few rows at a time) */
        pc_pages_offer(*dst, sizeof(float) * (size_t)n);
        return PEFTC_OK;
    }
    float *buf = pc_owned_alloc(o, (long)n);
    if (!buf) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for tensor '%s'", name);
    PC_TRY(pc_st_read_f32_shaped(t, ndim, shape, buf, err));
    *dst = buf;
    return pc_st_check_finite(t, buf, n, err);
}

char **pc_labels_default(int n)
{
    char **labels = calloc((size_t)n, sizeof *labels);
    for (int i = 0; labels && i < n; i++) {
        char buf[32];
        snprintf(buf, sizeof buf, "LABEL_%d", i);
        if (!(labels[i] = strdup(buf))) { pc_labels_free(labels, i); return NULL; }
    }
    return labels;
}

char **pc_labels_copy(char *const *src, int n)
{
    char **labels = calloc((size_t)n, sizeof *labels);
    for (int i = 0; labels && i < n; i++)
        if (!(labels[i] = strdup(src[i]))) { pc_labels_free(labels, i); return NULL; }
    return labels;
}

void pc_labels_free(char **labels, int n)
{
    for (int i = 0; labels && i < n; i++) free(labels[i]);
    free(labels);
}

/* id2label {"0": "NEG", "1": "POS"}: keys must be exactly 0..n-1. */
static pc_status labels_from_id2label(const cJSON *map, const char *path, int *n, char ***out, pc_error *err)
{
    int count = cJSON_GetArraySize(map);
    if (count < 1 || count > 100000) return pc_fail(err, PEFTC_ERR_FORMAT, "%s: id2label must have 1..100000 entries", path);
    char **labels = calloc((size_t)count, sizeof *labels);
    if (!labels) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
    for (const cJSON *e = map->child; e; e = e->next) {
        char *end;
        long id = strtol(e->string, &end, 10);
        if (*e->string == '\0' || *end || id < 0 || id >= count || labels[id] || !cJSON_IsString(e)) {
            pc_labels_free(labels, count);
            return pc_fail(err, PEFTC_ERR_FORMAT, "%s: id2label entry '%s' must map an id in 0..%d to a string name",
                           path, e->string, count - 1);
        }
        if (!(labels[id] = strdup(e->valuestring))) { pc_labels_free(labels, count); return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory"); }
    }
    *n = count;
    *out = labels;
    return PEFTC_OK;
}

pc_status pc_model_config_labels(const cJSON *config, const char *path, int *num_labels, char ***id2label,
                                  pc_error *err)
{
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(config, "id2label");
    if (cJSON_IsObject(map)) return labels_from_id2label(map, path, num_labels, id2label, err);
    const cJSON *nl = cJSON_GetObjectItemCaseSensitive(config, "num_labels");
    int n = 2;
    if (nl) {
        if (!cJSON_IsNumber(nl) || nl->valuedouble < 1 || nl->valuedouble > 100000 || nl->valuedouble != (int)nl->valuedouble)
            return pc_fail(err, PEFTC_ERR_FORMAT, "%s: num_labels must be a positive integer", path);
        n = (int)nl->valuedouble;
    }
    *id2label = pc_labels_default(n);
    if (!*id2label) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
    *num_labels = n;
    return PEFTC_OK;
}
