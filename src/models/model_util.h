/* Helpers shared by the model implementations: buffer ownership, reading a
 * checkpoint tensor with its expected shape, and id2label from config.json. */
#ifndef PC_MODELS_MODEL_UTIL_H
#define PC_MODELS_MODEL_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "base/error.h"
#include "formats/safetensors.h"

/* Every allocation a model makes, tagged with a group so activation buffers
 * (group 1) can be dropped and re-made while weights (group 0) stay. */
typedef struct pc_owned {
    void **ptrs;
    int *groups;
    int n, cap;
    int group;                 /* group of the next allocation */
    size_t bytes[3];           /* bytes allocated now in groups 0, 1, 2 */
} pc_owned;

float *pc_owned_alloc(pc_owned *o, long n_floats);      /* zeroed */
void *pc_owned_alloc_bytes(pc_owned *o, size_t n);      /* zeroed */
/* Frees the allocations of one group, or all of them when group < 0. */
void pc_owned_free_group(pc_owned *o, int group);
/* Bytes allocated now in one group (1: the activations a reserve() made). */
size_t pc_owned_bytes(const pc_owned *o, int group);

/* *dst = the tensor `name` as float32 with exactly this shape. F32 tensors that are
 * suitably aligned are used in place (read-only mmap); others are converted into a
 * buffer owned by o. Errors name the tensor and both shapes. */
pc_status pc_model_tensor(const pc_safetensors *st, pc_owned *o, const char *name, int ndim,
                          const int64_t *shape, float **dst, pc_error *err);

/* A writable copy of n floats (to make a frozen, possibly mmap'ed weight trainable). */
float *pc_owned_dup(pc_owned *o, const float *src, long n);

/* id2label from config.json (id2label {"0": "NEG", ...} or label2id, else num_labels or 2 -> LABEL_i). */
pc_status pc_model_config_labels(const cJSON *config, const char *path, int *num_labels, char ***id2label,
                                  pc_error *err);
/* Default names "LABEL_0".. for n labels. NULL when out of memory. */
char **pc_labels_default(int n);
char **pc_labels_copy(char *const *labels, int n);
void pc_labels_free(char **labels, int n);

#endif
