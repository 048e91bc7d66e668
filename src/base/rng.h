/* Seeded, named, counter-based random streams (Philox-4x32-10, Salmon et al. 2011).
 *
 * A stream is a pure function of (seed, name, position): draw number c of a stream is
 * Philox(counter = c, stream key), so a draw does not depend on the order or thread that
 * computes it, bulk fills parallelise with bit-identical results for any thread count,
 * and saving r->counter is enough to resume a run exactly.
 *
 * Every draw (scalar or bulk element) consumes exactly one counter value. A normal or integer draw is a
 * whole Philox block; uniform draws share blocks four to one (draw c: word c % 4 of block c / 4, in a
 * counter space of their own), since dropout masks draw millions per step. */
#ifndef PC_BASE_RNG_H
#define PC_BASE_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t key[2];   /* key[0]: the Philox key; key[1]: upper half of the Philox counter */
    uint64_t counter;  /* position of the next draw */
} pc_rng;

/* The Philox-4x32-10 block function: 4 words of counter, 2 words of key -> 4 random words. */
void pc_philox4x32_10(uint32_t out[4], const uint32_t ctr[4], const uint32_t key[2]);

/* Stream `stream_name` (e.g. "dropout", "lora_init") of run `seed`, positioned at draw 0.
 * Different names give independent streams; the key is a 128-bit hash of (seed, name). */
void pc_rng_init(pc_rng *r, uint64_t seed, const char *stream_name);

uint32_t pc_rng_u32(pc_rng *r);
float pc_rng_uniform(pc_rng *r);   /* [0, 1) with 24 random bits */
float pc_rng_normal(pc_rng *r);    /* N(0, 1), Box-Muller */

/* Bulk draws: dst[i] is the draw at counter r->counter + i; afterwards r->counter += n.
 * dst[i] equals what the i-th sequential pc_rng_uniform / pc_rng_normal would return
 * (before the affine map). Uniform values lie in [lo, hi) up to float rounding of lo + (hi-lo)*u. */
void pc_rng_fill_uniform(pc_rng *r, float *dst, long n, float lo, float hi);
void pc_rng_fill_normal(pc_rng *r, float *dst, long n, float mean, float std);
/* A dropout mask from the same uniform draws u_i as pc_rng_fill_uniform(r, dst, n, 0, 1), in one pass:
 * dst[i] = u_i < p ? 0 : keep. */
void pc_rng_fill_dropout_mask(pc_rng *r, float *dst, long n, float p, float keep);
/* The same mask as bytes: dst[i] = !(u_i < p), 1 kept, 0 dropped. */
void pc_rng_fill_keep_bytes(pc_rng *r, uint8_t *dst, long n, float p);

/* Unbiased integer in [0, n) (n >= 1), for shuffling; may consume more than one draw. */
uint64_t pc_rng_below(pc_rng *r, uint64_t n);

#endif
