/* safetensors: read via mmap (one file or a sharded model directory), write
 * atomically with the exact header layout of the Rust safetensors library.
 * File = u64 LE header length N || N bytes of JSON header || raw C-order,
 * little-endian tensor data. Every header is validated before it is trusted. */
#ifndef PC_FORMATS_SAFETENSORS_H
#define PC_FORMATS_SAFETENSORS_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include <cJSON.h>

#include "base/error.h"

/* In safetensors' own sort order (the writer orders tensors by it, descending). */
typedef enum {
    PC_DT_BOOL, PC_DT_U8, PC_DT_I8, PC_DT_I16, PC_DT_U16, PC_DT_F16, PC_DT_BF16,
    PC_DT_I32, PC_DT_U32, PC_DT_F32, PC_DT_F64, PC_DT_I64, PC_DT_U64
} pc_dtype;
#define PC_DT_COUNT 13

const char *pc_dtype_name(pc_dtype dt); /* "F32"; "?" when out of range */
size_t pc_dtype_size(pc_dtype dt);      /* bytes per element; 0 when out of range */

#define PC_MAX_DIMS 8
#define PC_ST_MAX_HEADER 100000000u /* the Rust library's limit on N */

/* A tensor inside an open file. data points into the read-only mapping and may
 * be unaligned for its dtype; name and file live as long as the container. */
typedef struct {
    const char *name;
    pc_dtype dtype;
    int ndim;
    int64_t shape[PC_MAX_DIMS];
    const void *data;
    size_t nbytes;
    const char *file;
} pc_st_tensor;

typedef struct pc_safetensors pc_safetensors; /* one or more mmap'ed files */

pc_status pc_st_open(const char *path, pc_safetensors **out, pc_error *err);

/* dir/model.safetensors if present, else dir/model.safetensors.index.json: its
 * "weight_map" maps tensor names to shard files in dir; each shard is opened
 * once. A tensor listed in the index but absent from its shard, or present in
 * two shards, is an error. */
pc_status pc_st_open_model_dir(const char *dir, pc_safetensors **out, pc_error *err);

/* Tensors in file order, then data-offset order. */
int pc_st_count(const pc_safetensors *st);
const pc_st_tensor *pc_st_at(const pc_safetensors *st, int i); /* NULL when out of range */
const pc_st_tensor *pc_st_find(const pc_safetensors *st, const char *name); /* NULL when absent */

/* __metadata__ of the (first) file — an object of strings — or NULL. */
const cJSON *pc_st_metadata(const pc_safetensors *st);

int64_t pc_st_numel(const pc_st_tensor *t);

/* Whether p points into one of st's mapped files (a tensor used in place). */
bool pc_st_maps(const pc_safetensors *st, const void *p);

/* Copies F32 data or converts F16/BF16 data to float32 into dst[n]. Fails
 * naming the tensor when its dtype is not one of these or numel != n. */
pc_status pc_st_read_f32(const pc_st_tensor *t, float *dst, int64_t n, pc_error *err);

/* pc_st_read_f32 after checking the shape: "FILE: tensor 'X' has shape [a, b],
 * expected [c, d]". dst holds the product of shape[0..ndim). */
pc_status pc_st_read_f32_shaped(const pc_st_tensor *t, int ndim, const int64_t *shape, float *dst, pc_error *err);

/* PEFTC_ERR_NUMERIC "FILE: tensor 'X' holds NaN at element i" at the first non-finite value of
 * data[n] (t's values as float32): NaN/Inf weights are refused when loaded. */
pc_status pc_st_check_finite(const pc_st_tensor *t, const float *data, int64_t n, pc_error *err);

void pc_st_close(pc_safetensors *st);

/* One tensor to write; data holds numel * pc_dtype_size(dtype) bytes, C order, little-endian. */
typedef struct {
    const char *name;
    pc_dtype dtype;
    int ndim;
    int64_t shape[PC_MAX_DIMS];
    const void *data;
} pc_st_item;

/* Writes items atomically (temp file + fsync + rename), ordered like the Rust
 * library: dtype descending, then name ascending (bytewise). metadata must be
 * an object of string values; NULL means {"format":"pt"}. */
pc_status pc_st_write(const char *path, const pc_st_item *items, int n, const cJSON *metadata, pc_error *err);

#endif
