/* bitsandbytes' AdamW on the CPU: bnb.optim.AdamW8bit (TrainingArguments optim "adamw_8bit" =
 * "adamw_bnb_8bit"), PagedAdamW8bit ("paged_adamw_8bit") and PagedAdamW32bit ("paged_adamw_32bit"),
 * following bnb's CUDA kernels (bnb >= 0.44), since those are what users of these names run.
 *
 * Update, per element, float32 arithmetic (t = step, 1-based; g = gradient):
 *   c1 = 1 - b1^t,  c2 = sqrt(1 - b2^t),  step_size = -lr * c2 / c1
 *   m = b1 m + (1-b1) g,  v = b2 v + (1-b2) g^2
 *   p = p + step_size * m / (sqrt(v) + eps * c2)
 *   p = p * (1 - lr * wd)                       decoupled decay AFTER the update, as the CUDA
 *                                               kernels do (torch.optim.AdamW and bnb's CPU backend
 *                                               decay before); we match CUDA because that is the
 *                                               backend QLoRA recipes run on.
 * The 32-bit kernel computes (1-b2)*(g*g), the 8-bit one ((1-b2)*g)*g; both are kept. Where CUDA
 * uses the approximate intrinsics __powf / __fdividef we use powf and IEEE division, so results
 * can differ from a GPU in the last bits (peft_facts §11.4), and float32 arithmetic is not
 * flushed to zero as under bnb's --use_fast_math (it matters only for |g| < 1e-19, where g*g is
 * subnormal); everything else is bit-for-bit the kernels' arithmetic.
 *
 * 8-bit state (params with >= 4096 elements; smaller ones keep float32 state and the 32-bit
 * kernel): m and v stored as uint8 codes into the signed (m) and unsigned (v) 256-entry dynamic
 * maps, one float32 absmax per block of 256 elements (row-major). Per block and step:
 * dequantize m = qmap1[code] * absmax1, v = qmap2[code] * absmax2; update; absmax = max|state|
 * over the block's UPDATED states (the padding of a partial last block counts as the kernel
 * loads it: m code 128, v code 0, gradient 0); requantize state/absmax to the nearest code with
 * the kernel's binary search (quantize_2D, which gives the same index as pc_dynamic_quantize for
 * these maps; computed with pc_code_search); for m, a code whose sign differs from m's moves
 * one index toward m's sign. A non-finite gradient sets that element's m = v = 0 and leaves the
 * parameter unchanged.
 *
 * "Paged" on a CPU. bnb puts the state of tensors with >= 1e5 elements in CUDA unified memory,
 * which the driver evicts to host RAM under GPU memory pressure and which is prefetched before
 * each parameter's update. Here the state1/state2 buffers of such tensors (smaller ones and the
 * absmax arrays stay in ordinary heap memory) live in one mmap'ed region of their own, each
 * buffer page-aligned:
 *   - with a paging_dir (the trainer passes output_dir): a MAP_SHARED mapping of a file created
 *     there and unlinked at once (disk space reserved with posix_fallocate, so a full disk is
 *     an error at set-up and not a SIGBUS later). The kernel may write these pages back to the
 *     file and drop them whenever RAM is short, swap or no swap, so optimizer state never
 *     limits model size; dirty pages are also flushed by the normal periodic writeback;
 *   - without one: MAP_PRIVATE|MAP_ANONYMOUS memory, which the kernel can only evict to swap.
 * Just before a parameter's update its state pages get madvise(MADV_WILLNEED): read-ahead from
 * the file or from swap, as bnb prefetches before each update. Nothing is advised after the
 * update: MADV_COLD there (kernel >= 5.4) made a paged 32-bit step over 10M parameters ~7x
 * slower (40 -> 370 ms) by clearing the accessed bits of every state page and moving the pages
 * between LRU lists each step, and MADV_PAGEOUT would write and re-read the whole state every
 * step. The kernel's own LRU finds these pages when RAM runs short (each is touched once per
 * step); pc_bnb_adamw_page_out evicts them on request (bnb's prefetch_all(to_cpu=True)).
 * madvise is advice: its failures change no result and are ignored. Paged and unpaged runs give
 * bit-identical results. */
#ifndef PC_TRAIN_OPTIM8_H
#define PC_TRAIN_OPTIM8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/error.h"
#include "base/param.h"

#define PC_BNB_BLOCK 256             /* BLOCKSIZE_2STATE since bnb 0.44 */
#define PC_BNB_MIN_8BIT_SIZE 4096    /* min_8bit_size */
#define PC_BNB_MIN_PAGED_SIZE 100000 /* get_state_buffer pages tensors with numel >= 1e5 */

/* Nearest-code search without unpredictable branches; the same index as pc_dynamic_quantize
 * (which follows the kernels' binary search) for every float x. That search ends on an even
 * pivot p with code[p-1] < x <= code[p+1] and takes p+1 when x > mid_p, p-1 when x < mid_(p-1),
 * mid_k = (code[k] + code[k+1]) * 0.5f. Hence index = #{even k: x > mid_k} + #{odd k: x >= mid_k},
 * NaN -> 0. With x's bits read as an ordered integer key this is #{k: key > bound[k]}; a table
 * over the top 16 key bits gives the count at the start of x's bucket and `steps` compares
 * (at most the bounds inside one bucket) finish it. */
typedef struct pc_code_search {
    int32_t bound[256];        /* ascending; bound[255] = INT32_MAX stops the count */
    uint8_t start[65536];
    int steps;
} pc_code_search;

void pc_code_search_init(pc_code_search *s, const float code[256]);

/* Float bits as an integer that orders like the float (-0 and +0 both 0). */
static inline int32_t pc_float_key(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    int32_t mag = (int32_t)(u & 0x7fffffffu), sign = -(int32_t)(u >> 31);
    return (mag ^ sign) - sign;
}

static inline uint8_t pc_code_search_find(const pc_code_search *s, float x)
{
    int32_t key = pc_float_key(x);
    int r = s->start[((uint32_t)key + 0x80000000u) >> 16];
    for (int i = 0; i < s->steps; i++) r += key > s->bound[r];
    return x == x ? (uint8_t)r : 0;
}

typedef struct pc_bnb_state {
    int64_t numel;
    bool quantized;            /* uint8 codes + absmax; else float32 state */
    bool paged;                /* state1/state2 inside the paged region */
    void *state1, *state2;     /* m, v: uint8[numel] or float[numel] */
    float *absmax1, *absmax2;  /* [ceil(numel / 256)] when quantized, else NULL */
} pc_bnb_state;

typedef struct pc_bnb_adamw {
    float beta1, beta2, eps, weight_decay;
    bool eight_bit, paged;
    long step;                 /* optimizer steps taken */
    int n;
    pc_bnb_state *states;      /* one per parameter, in list order */
    const float *qmap1, *qmap2; /* kernels/dynamic_map.h: signed for m, unsigned for v */
    pc_code_search *search1, *search2; /* for qmap1, qmap2 (8-bit only) */
    unsigned char *region;     /* the paged mapping (NULL when nothing is paged) */
    size_t region_bytes;
    bool region_file;          /* file-backed (MAP_SHARED) rather than anonymous */
} pc_bnb_adamw;

/* eight_bit: 8-bit state for params with >= 4096 elements; paged: page state of params with
 * >= 1e5 elements, file-backed under paging_dir when it is not NULL. */
pc_status pc_bnb_adamw_init(pc_bnb_adamw *o, const pc_param_list *params, bool eight_bit, bool paged,
                            const char *paging_dir, double beta1, double beta2, double eps, double weight_decay,
                            pc_error *err);
/* One step at learning rate lr; weight decay only where param.decay. */
void pc_bnb_adamw_step(pc_bnb_adamw *o, pc_param_list *params, double lr);
void pc_bnb_adamw_free(pc_bnb_adamw *o);

/* Bytes of optimizer state (codes, absmax, float states; not the two 1 KiB maps). */
size_t pc_bnb_adamw_state_bytes(const pc_bnb_adamw *o);
/* Bytes of state now in RAM: unpaged state plus the resident pages of the paged region. */
size_t pc_bnb_adamw_resident_bytes(const pc_bnb_adamw *o);
/* Asks the kernel to evict the paged region now (written back first when file-backed). */
void pc_bnb_adamw_page_out(pc_bnb_adamw *o);

#endif
