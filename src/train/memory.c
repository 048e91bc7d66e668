#include "train/memory.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/pgemm.h"
#include "kernels/quant4.h"

#define MIB (1024.0 * 1024.0)
/* The program, its libraries and OpenBLAS / OpenMP buffers: 6 MiB resident for a tiny model and ~8 MiB
 * beside the parts above for a 19M-parameter one with 2 threads (getrusage, x86-64 Linux); the share
 * per thread is taken as 1 MiB. */
#define RUNTIME_BYTES (6.0 * MIB)
#define RUNTIME_BYTES_PER_THREAD (1.0 * MIB)
/* On a fault in a mapped file the kernel also maps the neighbouring pages it has cached: up to 16 pages, in a
 * 64 KiB-aligned window (fault_around_bytes). */
#define FAULT_WINDOW ((uintptr_t)65536)

static double q4_bytes(const pc_q4_weight *w)
{
    double b = (double)(pc_q4_numel(w) + 1) / 2;
    if (w->nested) b += (double)pc_q4_blocks(w) + 4.0 * (double)pc_q4_nested_blocks(w);
    else b += 4.0 * (double)pc_q4_blocks(w);
    return b;
}

static double packed_bytes(const pc_packed_b *b)
{
    return 4.0 * (double)b->steps * (double)b->npad;
}

/* Every base parameter at 4 bytes, less what 4-bit packing saves on the quantized Linears; a frozen weight
 * packed in the kernels' layout (pc_linear_reserve) counts as its packed copies, as its fp32 source's pages
 * are handed back to the kernel (MADV_PAGEOUT) right after packing. */
static double weight_bytes(const pc_model *m)
{
    double b = 4.0 * (double)m->n_base_params;
    for (int i = 0; i < m->n_linears; i++) {
        const pc_linear *l = m->linears[i];
        if (l->q4) b -= 4.0 * (double)pc_q4_numel(l->q4) - q4_bytes(l->q4);
        if (l->packed)
            b += packed_bytes(&l->packed->fwd) + packed_bytes(&l->packed->bwd) - 4.0 * (double)l->in * (double)l->out;
    }
    return b;
}

/* Marks the fault-around windows that the rows of ids in [0, rows) lie in. */
static void mark_windows(const pc_encoded *d, uintptr_t start, size_t row_bytes, int64_t rows, uint8_t *seen)
{
    for (int64_t i = 0; d && d->n > 0 && i < d->offsets[d->n]; i++) {
        int32_t id = d->ids[i];
        if (id < 0 || id >= rows) continue;
        uintptr_t lo = start + (uintptr_t)id * row_bytes, hi = lo + row_bytes - 1;
        for (uintptr_t w = lo / FAULT_WINDOW; w <= hi / FAULT_WINDOW; w++) seen[w - start / FAULT_WINDOW] = 1;
    }
}

/* The bytes of a mapped token-embedding table that the data never reads: the table is used in place and only
 * looked up (no Linear reads it whole, as a tied LM head would), so a page becomes resident when a row on it is
 * read, with the neighbours the kernel maps around a fault (FAULT_WINDOW). 0 when unknown. */
static double embedding_unread_bytes(const pc_model *m, const pc_encoded *train, const pc_encoded *eval)
{
    if (m->token_embedding < 0 || m->token_embedding >= m->n_extra_tensors) return 0;
    const pc_named_tensor *t = &m->extra_tensors[m->token_embedding];
    if (!t->mapped || t->ndim != 2) return 0;
    for (int i = 0; i < m->n_linears; i++)
        if (m->linears[i]->W == t->data) return 0;
    size_t row_bytes = sizeof(float) * (size_t)t->shape[1], bytes = row_bytes * (size_t)t->shape[0];
    uintptr_t start = (uintptr_t)t->data;
    size_t windows = (start + bytes - 1) / FAULT_WINDOW - start / FAULT_WINDOW + 1;
    uint8_t *seen = calloc(windows, 1);
    if (!seen) return 0;
    mark_windows(train, start, row_bytes, t->shape[0], seen);
    mark_windows(eval, start, row_bytes, t->shape[0], seen);
    double read = 0;
    for (size_t w = 0; w < windows; w++) read += seen[w] ? FAULT_WINDOW : 0;
    free(seen);
    return read < (double)bytes ? (double)bytes - read : 0;
}

/* LoRA branch buffers (pc_lora_reserve: h, a byte of dropout mask per input, DoRA's z) and the Linears'
 * shared scratch (4-bit products, DoRA's dropped-out input). */
static double branch_bytes(const pc_model *m)
{
    double b = (double)m->scratch.bytes + 4.0 * (double)m->scratch.xd_floats;
    for (int i = 0; i < m->n_linears; i++) {
        const pc_lora *l = m->linears[i]->lora;
        if (!l) continue;
        double per_row = 4.0 * l->r + (l->dropout > 0 ? l->in : 0) + (l->m ? 4.0 * l->out : 0);
        b += per_row * l->cap_rows;
    }
    return b;
}

static double encoded_bytes(const pc_encoded *d)
{
    if (d->n == 0) return 0;
    double ids = (double)d->offsets[d->n];
    return 4.0 * ids * (d->token_labels ? 2 : 1) + 8.0 * (d->n + 1) + (d->labels ? 4.0 * d->n : 0);
}

void pc_memory_estimate_run(const pc_model *m, const pc_param_list *trainable, size_t optimizer_bytes,
                            bool optimizer_paged, const pc_encoded *train, const pc_encoded *eval,
                            pc_memory_estimate *e)
{
    memset(e, 0, sizeof *e);
    e->weights = weight_bytes(m) - embedding_unread_bytes(m, train, eval);
    e->adapters = 8.0 * (double)pc_param_list_numel(trainable);
    e->optimizer = (double)optimizer_bytes;
    e->optimizer_paged = optimizer_paged;
    e->activations = (double)m->activation_bytes + branch_bytes(m);
    e->data = encoded_bytes(train) + encoded_bytes(eval);
    e->runtime = RUNTIME_BYTES + RUNTIME_BYTES_PER_THREAD * omp_get_max_threads();
    e->total = e->weights + e->adapters + e->optimizer + e->activations + e->data + e->runtime;
    e->required = e->total - (optimizer_paged ? e->optimizer : 0);
}

int pc_memory_blocks_to_keep(const pc_memory_estimate *e, double budget, double block_bytes, int max_blocks)
{
    if (block_bytes <= 0 || budget <= e->required) return 0;
    double fit = (budget - e->required) / block_bytes;
    return fit >= max_blocks ? max_blocks : (int)fit;
}

/* A "Key: N kB" line of /proc/meminfo, in bytes (-1 when absent). */
static double meminfo(const char *key)
{
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    double v = -1;
    size_t n = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, n) == 0 && line[n] == ':') { v = 1024.0 * strtod(line + n + 1, NULL); break; }
    if (f) fclose(f);
    return v;
}

static double read_number(const char *path)
{
    FILE *f = fopen(path, "r");
    char buf[64] = "";
    if (!f) return -1;
    bool ok = fgets(buf, sizeof buf, f) != NULL;
    fclose(f);
    return ok && buf[0] >= '0' && buf[0] <= '9' ? strtod(buf, NULL) : -1;   /* "max" (no limit) -> -1 */
}

/* The cgroup's memory limit less its usage (cgroup v2, then v1), or -1 when unlimited or unknown. */
static double cgroup_headroom(void)
{
    static const char *const files[][2] = {
        {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"},
        {"/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"}};
    for (int i = 0; i < 2; i++) {
        double limit = read_number(files[i][0]), used = read_number(files[i][1]);
        if (limit > 0 && limit < 1e18 && used >= 0) return limit > used ? limit - used : 0;
    }
    return -1;
}

void pc_memory_available(long max_memory_mb, pc_memory_estimate *e)
{
    if (max_memory_mb > 0) {
        e->available = (double)max_memory_mb * MIB;
        snprintf(e->available_from, sizeof e->available_from, "max_memory_mb");
        return;
    }
    double avail = meminfo("MemAvailable"), cg = cgroup_headroom();
    e->available = avail > 0 ? avail : 0;
    snprintf(e->available_from, sizeof e->available_from, "MemAvailable");
    if (cg >= 0 && (avail <= 0 || cg < avail)) {
        e->available = cg;
        snprintf(e->available_from, sizeof e->available_from, "cgroup memory limit");
    }
}

void pc_memory_line(const pc_memory_estimate *e, char *buf, size_t n)
{
    int len = snprintf(buf, n, "estimated peak memory %.0f MiB (weights %.0f, adapters %.0f, optimizer %.0f%s, "
                       "activations %.0f, data %.0f, runtime %.0f)", e->total / MIB, e->weights / MIB,
                       e->adapters / MIB, e->optimizer / MIB, e->optimizer_paged ? " paged" : "",
                       e->activations / MIB, e->data / MIB, e->runtime / MIB);
    if (len >= 0 && (size_t)len < n && e->available > 0)
        snprintf(buf + len, n - (size_t)len, "; %.0f MiB available (%s)", e->available / MIB, e->available_from);
}

pc_status pc_memory_check(const pc_memory_estimate *e, pc_error *err)
{
    if (e->available <= 0 || e->required <= e->available) return PEFTC_OK;
    char line[400];
    pc_memory_line(e, line, sizeof line);
    return pc_fail(err, PEFTC_ERR_NOMEM, "not enough memory: %s. Lower per_device_train_batch_size or max_length, "
                   "set gradient_checkpointing, load_in_4bit or a paged/8-bit optim, or set max_memory_mb (MiB) "
                   "if more memory can be used", line);
}
