/* The peak memory of a training run, estimated before its first step, and the memory there is.
 *
 * The estimate adds what the run will keep resident while it steps:
 *   weights      every base parameter as the Linears hold it: 4 bytes (float32, mapped in place or
 *                converted) or the packed 4-bit blocks and their absmax; the mapped checkpoint pages
 *                count because training reads every one of them each step
 *   adapters     the trainable tensors and their gradients (2 x 4 bytes per parameter)
 *   optimizer    the optimizer's state (8 bytes per parameter for AdamW, ~2 for 8-bit); a paged
 *                optimizer's state is file-backed and evictable, so it is shown but not required
 *   activations  the buffers reserve() sized for the largest batch x sequence (one layer's set plus
 *                block outputs with gradient checkpointing), LoRA branch buffers, 4-bit scratch
 *   data         the tokenized training and evaluation sets
 *   runtime      the program, its libraries and the BLAS / OpenMP threads' buffers (constants
 *                measured on x86-64 Linux, per thread for the latter)
 * The available memory is MemAvailable (/proc/meminfo), lowered to the cgroup's memory.max less
 * its usage when the process runs under a limit. Swap is not counted: weights and activations are
 * touched on every step, so a run that only fits with swap pages continuously and crawls. */
#ifndef PC_TRAIN_MEMORY_H
#define PC_TRAIN_MEMORY_H

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"
#include "base/param.h"
#include "models/model.h"
#include "train/batches.h"

typedef struct pc_memory_estimate {
    double weights, adapters, optimizer, activations, data, runtime;   /* bytes */
    bool optimizer_paged;
    double total;              /* the estimated peak */
    double required;           /* total less the evictable (paged) optimizer state */
    double available;          /* bytes; 0 when unknown */
    char available_from[48];   /* "MemAvailable", "cgroup memory.max" or "max_memory_mb" */
} pc_memory_estimate;

/* The estimate for a model after reserve() and PEFT, its trainable tensors and optimizer state. */
void pc_memory_estimate_run(const pc_model *m, const pc_param_list *trainable, size_t optimizer_bytes,
                            bool optimizer_paged, const pc_encoded *train, const pc_encoded *eval,
                            pc_memory_estimate *e);
/* Fills e->available: max_memory_mb when > 0, else what the system reports. */
void pc_memory_available(long max_memory_mb, pc_memory_estimate *e);
/* Fails with the breakdown and what to change when the required memory exceeds the available. */
pc_status pc_memory_check(const pc_memory_estimate *e, pc_error *err);
/* How many blocks may keep their MLP activations through a checkpointed step (block_bytes each, as
 * pc_model.kept_block_bytes) with the required memory staying within budget bytes: 0 to max_blocks. */
int pc_memory_blocks_to_keep(const pc_memory_estimate *e, double budget, double block_bytes, int max_blocks);
/* "estimated peak memory 812 MiB (weights 640, adapters 2, ...); 3150 MiB available (MemAvailable)" */
void pc_memory_line(const pc_memory_estimate *e, char *buf, size_t n);

#endif
