#include "train/optim8.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/threads.h"
#include "kernels/dynamic_map.h"

/* ---------- nearest-code search ---------- */

void pc_code_search_init(pc_code_search *s, const float code[256])
{
    for (int k = 0; k < 255; k++) {
        int32_t mid = pc_float_key((code[k] + code[k + 1]) * 0.5f);
        s->bound[k] = k % 2 == 0 ? mid : mid - 1; /* odd k: key >= mid is key > mid - 1 */
    }
    s->bound[255] = INT32_MAX;
    s->steps = 0;
    int below = 0;                                /* bounds under the current bucket's first key */
    for (int64_t b = 0; b < 65536; b++) {
        int64_t first = b * 65536 - 2147483648LL, next = first + 65536;
        while (below < 255 && s->bound[below] < first) below++;
        int inside = below;
        while (inside < 255 && s->bound[inside] < next - 1) inside++;
        s->start[b] = (uint8_t)below;
        if (inside - below > s->steps) s->steps = inside - below;
    }
}

/* ---------- the update kernels ---------- */

typedef struct adam_consts {
    float b1, b2, eps, lr, wd, correction2, step_size;
} adam_consts;

static adam_consts consts_for(const pc_bnb_adamw *o, float lr, float wd)
{
    adam_consts k = { o->beta1, o->beta2, o->eps, lr, wd, 0, 0 };
    float correction1 = 1.0f - powf(o->beta1, (float)o->step);
    k.correction2 = sqrtf(1.0f - powf(o->beta2, (float)o->step));
    k.step_size = -lr * k.correction2 / correction1;
    return k;
}

/* kOptimizer32bit2State (ADAM, no update clipping, skip_zeros off). */
static void update_32bit(const adam_consts *k, float *p, const float *g, float *m, float *v, int64_t n)
{
    #pragma omp parallel for schedule(static) if (n > PC_PARAM_SPLIT_MIN)
    for (int64_t i = 0; i < n; i++) {
        m[i] = m[i] * k->b1 + ((1.0f - k->b1) * g[i]);
        v[i] = v[i] * k->b2 + ((1.0f - k->b2) * (g[i] * g[i]));
        p[i] = p[i] + k->step_size * (m[i] / (sqrtf(v[i]) + k->eps * k->correction2));
        if (k->wd > 0.0f) p[i] = p[i] * (1.0f - k->lr * k->wd);
    }
}

/* One block of kOptimizerStatic8bit2StateBlockwise (ADAM), in the kernel's order of float32
 * operations: valid elements starting at p, g, c1, c2. */
static void update_block(const pc_bnb_adamw *o, const adam_consts *k, float *p, const float *g, uint8_t *c1,
                         uint8_t *c2, float *absmax1, float *absmax2, int valid)
{
    float m[PC_BNB_BLOCK], v[PC_BNB_BLOCK];
    float max1 = -FLT_MAX, max2 = -FLT_MAX;
    for (int j = 0; j < valid; j++) {
        if (isfinite(g[j])) {
            v[j] = o->qmap2[c2[j]] * *absmax2;
            v[j] = v[j] * k->b2 + (1.0f - k->b2) * g[j] * g[j];
            m[j] = o->qmap1[c1[j]] * *absmax1;
            m[j] = m[j] * k->b1 + (1.0f - k->b1) * g[j];
        } else {
            m[j] = v[j] = 0.0f;
        }
        max1 = fmaxf(max1, fabsf(m[j]));
        max2 = fmaxf(max2, fabsf(v[j]));
    }
    /* the kernel loads a partial block's padding as m code 128, v code 0 (= 0.0), gradient 0 */
    if (valid < PC_BNB_BLOCK) max1 = fmaxf(max1, fabsf(o->qmap1[128] * *absmax1 * k->b1));
    *absmax1 = max1;
    *absmax2 = max2;
    for (int j = 0; j < valid; j++) {
        if (isfinite(g[j])) {
            p[j] = p[j] + k->step_size * (m[j] / (sqrtf(v[j]) + k->correction2 * k->eps));
            if (k->wd > 0.0f) p[j] = p[j] * (1.0f - k->lr * k->wd);
        }
        uint8_t q1 = pc_code_search_find(o->search1, m[j] / max1);
        /* keep m's sign: a code of the other sign moves one index toward it (uint8 wrap as in CUDA) */
        if ((signbit(o->qmap1[q1]) != 0) != (signbit(m[j]) != 0)) q1 = (uint8_t)(m[j] > 0.0f ? q1 + 1 : q1 - 1);
        c1[j] = q1;
        c2[j] = pc_code_search_find(o->search2, v[j] / max2);
    }
}

static void update_8bit(const pc_bnb_adamw *o, const adam_consts *k, pc_bnb_state *st, float *p, const float *g)
{
    int64_t n = st->numel, blocks = (n + PC_BNB_BLOCK - 1) / PC_BNB_BLOCK;
    uint8_t *c1 = st->state1, *c2 = st->state2;
    #pragma omp parallel for schedule(static) if (blocks > 256)
    for (int64_t b = 0; b < blocks; b++) {
        int64_t at = b * PC_BNB_BLOCK;
        int valid = n - at < PC_BNB_BLOCK ? (int)(n - at) : PC_BNB_BLOCK;
        update_block(o, k, p + at, g + at, c1 + at, c2 + at, st->absmax1 + b, st->absmax2 + b, valid);
    }
}

/* ---------- state memory ---------- */

static size_t page_size(void)
{
    long pg = sysconf(_SC_PAGESIZE);
    return pg > 0 ? (size_t)pg : 4096;
}

static size_t page_round(size_t n)
{
    size_t pg = page_size();
    return (n + pg - 1) / pg * pg;
}

static size_t elem_bytes(const pc_bnb_state *st)
{
    return st->quantized ? 1 : sizeof(float);
}

static pc_status map_anonymous(pc_bnb_adamw *o, pc_error *err)
{
    void *p = mmap(NULL, o->region_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return pc_fail(err, PEFTC_ERR_NOMEM, "cannot map %zu bytes of paged optimizer state: %s", o->region_bytes,
                       strerror(errno));
    o->region = p;
    return PEFTC_OK;
}

/* A file in dir, unlinked at once (nothing is left behind), its blocks reserved, mapped shared. */
static pc_status map_file(pc_bnb_adamw *o, const char *dir, pc_error *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/.paged_optimizer_state-XXXXXX", dir);
    int fd = mkstemp(path);
    if (fd < 0)
        return pc_fail(err, PEFTC_ERR_IO, "cannot create paged optimizer state file %s: %s", path, strerror(errno));
    unlink(path);
    int rc = posix_fallocate(fd, 0, (off_t)o->region_bytes);
    if (rc != 0) {
        close(fd);
        return pc_fail(err, PEFTC_ERR_IO, "cannot reserve %zu bytes of paged optimizer state in %s: %s",
                       o->region_bytes, dir, strerror(rc));
    }
    void *p = mmap(NULL, o->region_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int map_errno = errno;
    close(fd);
    if (p == MAP_FAILED)
        return pc_fail(err, PEFTC_ERR_NOMEM, "cannot map paged optimizer state file in %s: %s", dir,
                       strerror(map_errno));
    o->region = p;
    o->region_file = true;
    return PEFTC_OK;
}

/* Places state1/state2 of every paged parameter in one region, page-aligned. */
static pc_status map_paged_states(pc_bnb_adamw *o, const char *dir, pc_error *err)
{
    for (int i = 0; i < o->n; i++) {
        const pc_bnb_state *st = &o->states[i];
        if (st->paged) o->region_bytes += 2 * page_round((size_t)st->numel * elem_bytes(st));
    }
    if (o->region_bytes == 0) return PEFTC_OK;
    PC_TRY(dir ? map_file(o, dir, err) : map_anonymous(o, err));
    size_t at = 0;
    for (int i = 0; i < o->n; i++) {
        pc_bnb_state *st = &o->states[i];
        if (!st->paged) continue;
        size_t bytes = page_round((size_t)st->numel * elem_bytes(st));
        st->state1 = o->region + at;
        st->state2 = o->region + at + bytes;
        at += 2 * bytes;
    }
    return PEFTC_OK;
}

static pc_status alloc_heap_state(pc_bnb_state *st, const char *name, pc_error *err)
{
    if (!st->paged) {
        st->state1 = calloc((size_t)st->numel, elem_bytes(st));
        st->state2 = calloc((size_t)st->numel, elem_bytes(st));
    }
    if (st->quantized) {
        size_t blocks = (size_t)((st->numel + PC_BNB_BLOCK - 1) / PC_BNB_BLOCK);
        st->absmax1 = calloc(blocks, sizeof(float));
        st->absmax2 = calloc(blocks, sizeof(float));
        if (!st->absmax1 || !st->absmax2)
            return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for 8-bit AdamW state of %s", name);
    }
    if (!st->paged && (!st->state1 || !st->state2))
        return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for AdamW state of %s", name);
    return PEFTC_OK;
}

pc_status pc_bnb_adamw_init(pc_bnb_adamw *o, const pc_param_list *params, bool eight_bit, bool paged,
                            const char *paging_dir, double beta1, double beta2, double eps, double weight_decay,
                            pc_error *err)
{
    memset(o, 0, sizeof *o);
    o->beta1 = (float)beta1; o->beta2 = (float)beta2; o->eps = (float)eps; o->weight_decay = (float)weight_decay;
    o->eight_bit = eight_bit;
    o->paged = paged;
    o->qmap1 = pc_dynamic_map_signed;
    o->qmap2 = pc_dynamic_map_unsigned;
    if (eight_bit) {
        o->search1 = malloc(sizeof *o->search1);
        o->search2 = malloc(sizeof *o->search2);
        if (!o->search1 || !o->search2) {
            pc_bnb_adamw_free(o);
            return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for 8-bit AdamW code tables");
        }
        pc_code_search_init(o->search1, o->qmap1);
        pc_code_search_init(o->search2, o->qmap2);
    }
    o->states = calloc((size_t)(params->n ? params->n : 1), sizeof *o->states);
    if (!o->states) {
        pc_bnb_adamw_free(o);
        return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for AdamW state");
    }
    o->n = params->n;
    for (int i = 0; i < o->n; i++) {
        pc_bnb_state *st = &o->states[i];
        st->numel = params->items[i].numel;
        st->quantized = eight_bit && st->numel >= PC_BNB_MIN_8BIT_SIZE;
        st->paged = paged && st->numel >= PC_BNB_MIN_PAGED_SIZE;
    }
    pc_status s = map_paged_states(o, paging_dir, err);
    for (int i = 0; i < o->n && !s; i++) s = alloc_heap_state(&o->states[i], params->items[i].name, err);
    if (s) pc_bnb_adamw_free(o);
    return s;
}

void pc_bnb_adamw_free(pc_bnb_adamw *o)
{
    for (int i = 0; o->states && i < o->n; i++) {
        pc_bnb_state *st = &o->states[i];
        if (!st->paged) { free(st->state1); free(st->state2); }
        free(st->absmax1);
        free(st->absmax2);
    }
    free(o->states);
    free(o->search1);
    free(o->search2);
    if (o->region) munmap(o->region, o->region_bytes);
    memset(o, 0, sizeof *o);
}

/* Read-ahead of both state buffers of a paged parameter (from the file, or from swap). */
static void prefetch_state(const pc_bnb_state *st)
{
    size_t bytes = (size_t)st->numel * elem_bytes(st);
    madvise(st->state1, bytes, MADV_WILLNEED);
    madvise(st->state2, bytes, MADV_WILLNEED);
}

static void update_param(pc_bnb_adamw *o, pc_param_list *params, int i, float lr)
{
    pc_bnb_state *st = &o->states[i];
    pc_param *p = &params->items[i];
    adam_consts k = consts_for(o, lr, p->decay ? o->weight_decay : 0.0f);
    if (st->paged) prefetch_state(st);
    if (st->quantized) update_8bit(o, &k, st, p->data, p->grad);
    else update_32bit(&k, p->data, p->grad, st->state1, st->state2, st->numel);
}

/* As pc_adamw_step: small tensors shared out whole among the threads, larger ones split across all. */
void pc_bnb_adamw_step(pc_bnb_adamw *o, pc_param_list *params, double lr)
{
    o->step++;
    const long small = pc_param_list_small_numel(params, PC_PARAM_SPLIT_MIN);
    #pragma omp parallel for schedule(dynamic) if (small >= PC_PARALLEL_MIN)
    for (int i = 0; i < o->n; i++)
        if (params->items[i].numel <= PC_PARAM_SPLIT_MIN) update_param(o, params, i, (float)lr);
    for (int i = 0; i < o->n; i++)
        if (params->items[i].numel > PC_PARAM_SPLIT_MIN) update_param(o, params, i, (float)lr);
}

size_t pc_bnb_adamw_state_bytes(const pc_bnb_adamw *o)
{
    size_t total = 0;
    for (int i = 0; i < o->n; i++) {
        const pc_bnb_state *st = &o->states[i];
        total += 2 * (size_t)st->numel * elem_bytes(st);
        if (st->quantized) total += 2 * sizeof(float) * (size_t)((st->numel + PC_BNB_BLOCK - 1) / PC_BNB_BLOCK);
    }
    return total;
}

static size_t region_resident_bytes(const pc_bnb_adamw *o)
{
    size_t pg = page_size(), pages = o->region_bytes / pg, resident = 0;
    unsigned char *vec = malloc(pages ? pages : 1);
    if (!vec || mincore(o->region, o->region_bytes, vec) != 0) { free(vec); return o->region_bytes; }
    for (size_t i = 0; i < pages; i++) resident += vec[i] & 1;
    free(vec);
    return resident * pg;
}

size_t pc_bnb_adamw_resident_bytes(const pc_bnb_adamw *o)
{
    size_t total = pc_bnb_adamw_state_bytes(o);
    for (int i = 0; i < o->n; i++)
        if (o->states[i].paged) total -= 2 * (size_t)o->states[i].numel * elem_bytes(&o->states[i]);
    return total + (o->region ? region_resident_bytes(o) : 0);
}

void pc_bnb_adamw_page_out(pc_bnb_adamw *o)
{
    if (!o->region) return;
    if (o->region_file) msync(o->region, o->region_bytes, MS_SYNC); /* dirty file pages are not reclaimed directly */
#ifdef MADV_PAGEOUT
    madvise(o->region, o->region_bytes, MADV_PAGEOUT);
#endif
}
