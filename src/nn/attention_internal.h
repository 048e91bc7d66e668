/* What the plain and the tiled attention passes share: how (batch, head) pairs are dealt out to threads,
 * where a pair finds its columns, and the grouped-query sum of dk, dv shares. Internal to src/nn/attention*.c. */
#ifndef PC_NN_ATTENTION_INTERNAL_H
#define PC_NN_ATTENTION_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Work is split over (b, h) pairs. Pair i goes to slot i % slots, which owns its own scratch. The slot
 * count depends only on the problem and the machine, never on the thread count, and each pair is computed
 * the same way in any slot, so results are bit-identical for any number of threads. OpenBLAS (the OpenMP
 * build) runs single-threaded when called inside the parallel region. */
int pc_attention_slots(int B, int H);
/* Whether the pairs are worth a parallel region (tiny problems run serial, in the same slots). */
bool pc_attention_parallel(int B, int T, int H, int hd);

/* Offsets of pair (b, h)'s query columns in [B, T, H*hd] and of its key/value columns in [B, T, Hkv*hd]. */
typedef struct { size_t q, kv; } pc_head_cols;
pc_head_cols pc_attention_pair_cols(int pair, int T, int H, int Hkv, int hd);

/* dst[b, t, g*hd + d] = sum over m < H/Hkv of share[b, g*(H/Hkv) + m, t, d], the shares added in head order. */
void pc_attention_sum_group_shares(float *dst, const float *share, int B, int T, int H, int Hkv, int hd);

/* Floats of per-slot scratch of the tiled passes, and of the grouped-query dk, dv shares ([B, H, T, hd] each). */
size_t pc_attention_tiled_slot_floats(int T, int hd);
size_t pc_attention_share_floats(int B, int T, int H, int Hkv, int hd);

static inline int pc_attention_key_masked(const uint8_t *key_mask, int causal, int i, int j)
{
    return (key_mask && !key_mask[j]) || (causal && j > i);
}

#endif
