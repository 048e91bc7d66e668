#include "base/rng.h"
#include "base/isa.h"
#include "base/threads.h"

#include <math.h>
#include <stdbool.h>
#include <stddef.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u  /* key schedule increments (golden ratio, sqrt(3)-1) */
#define PHILOX_W1 0xBB67AE85u

/* Ten Philox rounds on (c0..c3) with key (k0, k1); inlined into the bulk loops. */
static inline void philox_block(uint32_t c[4], uint32_t k0, uint32_t k1)
{
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c[0];
        uint64_t p1 = (uint64_t)PHILOX_M1 * c[2];
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c[1] ^ k0;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c[3] ^ k1;
        c[1] = (uint32_t)p1;
        c[3] = (uint32_t)p0;
        c[0] = n0;
        c[2] = n2;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
}

void pc_philox4x32_10(uint32_t out[4], const uint32_t ctr[4], const uint32_t key[2])
{
    for (int i = 0; i < 4; i++) out[i] = ctr[i];
    philox_block(out, key[0], key[1]);
}

/* The four words of draw number `pos` of stream r. */
static inline void draw_at(uint32_t w[4], const pc_rng *r, uint64_t pos)
{
    w[0] = (uint32_t)pos;
    w[1] = (uint32_t)(pos >> 32);
    w[2] = (uint32_t)r->key[1];
    w[3] = (uint32_t)(r->key[1] >> 32);
    philox_block(w, (uint32_t)r->key[0], (uint32_t)(r->key[0] >> 32));
}

/* Uniform draws use all four words of a block: draw c is word c % 4 of block c / 4, in a counter space of
 * their own (this bit flipped in the counter's top word), so they never reuse the words of other draws. */
#define UNIFORM_SPACE 0x80000000u

static inline void uniform_block_at(uint32_t w[4], const pc_rng *r, uint64_t block)
{
    w[0] = (uint32_t)block;
    w[1] = (uint32_t)(block >> 32);
    w[2] = (uint32_t)r->key[1];
    w[3] = (uint32_t)(r->key[1] >> 32) ^ UNIFORM_SPACE;
    philox_block(w, (uint32_t)r->key[0], (uint32_t)(r->key[0] >> 32));
}

/* splitmix64's finaliser: a bijective 64-bit mixer. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void pc_rng_init(pc_rng *r, uint64_t seed, const char *stream_name)
{
    uint64_t h = mix64(seed ^ 0x9E3779B97F4A7C15ull);
    uint64_t len = 0;
    for (const unsigned char *p = (const unsigned char *)stream_name; *p; p++, len++)
        h = mix64(h ^ *p);
    h = mix64(h ^ len);
    r->key[0] = mix64(h ^ 0x243F6A8885A308D3ull);
    r->key[1] = mix64(h ^ 0x13198A2E03707344ull);
    r->counter = 0;
}

/* 24 high bits of a word as a float in [0, 1). */
static inline float word_to_unit(uint32_t w)
{
    return (float)(w >> 8) * 0x1.0p-24f;
}

/* Box-Muller, cosine branch, in double: u1 in (0, 1) from w0, angle from w1. */
static inline float words_to_normal(uint32_t w0, uint32_t w1)
{
    double u1 = ((double)w0 + 0.5) * 0x1.0p-32;
    double angle = (double)w1 * 0x1.0p-32 * 6.283185307179586476925;
    return (float)(sqrt(-2.0 * log(u1)) * cos(angle));
}

uint32_t pc_rng_u32(pc_rng *r)
{
    uint32_t w[4];
    draw_at(w, r, r->counter++);
    return w[0];
}

float pc_rng_uniform(pc_rng *r)
{
    uint32_t w[4];
    uniform_block_at(w, r, r->counter >> 2);
    return word_to_unit(w[r->counter++ & 3]);
}

float pc_rng_normal(pc_rng *r)
{
    uint32_t w[4];
    draw_at(w, r, r->counter++);
    return words_to_normal(w[0], w[1]);
}

/* Bulk draws go LANES blocks at a time through a lane-wise Philox the compiler vectorises. */
#define LANES 16

#if defined(__x86_64__)
#include <immintrin.h>
#define PC_RNG_X86 1
/* hi and lo 32 bits of m * a for 16 lanes: two 32x32->64 products on the even and odd lanes. */
__attribute__((target("avx512f"))) static inline void mulhilo16(__m512i a, uint32_t m, __m512i *hi, __m512i *lo)
{
    const __m512i M = _mm512_set1_epi32((int)m);
    const __m512i even = _mm512_mul_epu32(a, M), odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), M);
    *hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
    *lo = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
}

/* draw_lanes with AVX-512 products (the compiler widens the C version's to 64-bit multiplies: 1.6x slower). */
__attribute__((target("avx512f"))) static void draw_lanes_avx512(uint32_t w[4][16], const pc_rng *r, uint64_t first, bool uniform)
{
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i lo_first = _mm512_set1_epi32((int)(uint32_t)first);
    __m512i c0 = _mm512_add_epi32(lo_first, iota);
    __m512i c1 = _mm512_set1_epi32((int)(uint32_t)(first >> 32));
    c1 = _mm512_mask_add_epi32(c1, _mm512_cmplt_epu32_mask(c0, lo_first), c1, _mm512_set1_epi32(1));  /* carry */
    __m512i c2 = _mm512_set1_epi32((int)(uint32_t)r->key[1]);
    __m512i c3 = _mm512_set1_epi32((int)((uint32_t)(r->key[1] >> 32) ^ (uniform ? UNIFORM_SPACE : 0)));
    uint32_t k0 = (uint32_t)r->key[0], k1 = (uint32_t)(r->key[0] >> 32);
    for (int round = 0; round < 10; round++) {
        __m512i hi0, lo0, hi1, lo1;
        mulhilo16(c0, PHILOX_M0, &hi0, &lo0);
        mulhilo16(c2, PHILOX_M1, &hi1, &lo1);
        c0 = _mm512_ternarylogic_epi32(hi1, c1, _mm512_set1_epi32((int)k0), 0x96);   /* three-way xor */
        c2 = _mm512_ternarylogic_epi32(hi0, c3, _mm512_set1_epi32((int)k1), 0x96);
        c1 = lo1;
        c3 = lo0;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    _mm512_storeu_si512(w[0], c0);
    _mm512_storeu_si512(w[1], c1);
    _mm512_storeu_si512(w[2], c2);
    _mm512_storeu_si512(w[3], c3);
}
#else
#define PC_RNG_X86 0
#endif

/* Blocks first .. first+LANES-1 of stream r (in the uniform space when `uniform`): words 0..3 of lane l
 * in w[0..3][l]; with the AVX-512 products when `wide`. */
static inline void draw_lanes(uint32_t w[4][LANES], const pc_rng *r, uint64_t first, bool uniform, bool wide)
{
#if PC_RNG_X86
    if (wide) {
        draw_lanes_avx512(w, r, first, uniform);
        return;
    }
#endif
    (void)wide;
    uint32_t c0[LANES], c1[LANES], c2[LANES], c3[LANES];
    for (int l = 0; l < LANES; l++) {
        c0[l] = (uint32_t)(first + (uint64_t)l);
        c1[l] = (uint32_t)((first + (uint64_t)l) >> 32);
        c2[l] = (uint32_t)r->key[1];
        c3[l] = (uint32_t)(r->key[1] >> 32) ^ (uniform ? UNIFORM_SPACE : 0);
    }
    uint32_t k0 = (uint32_t)r->key[0], k1 = (uint32_t)(r->key[0] >> 32);
    for (int round = 0; round < 10; round++) {
        #pragma omp simd
        for (int l = 0; l < LANES; l++) {
            uint64_t p0 = (uint64_t)PHILOX_M0 * c0[l];
            uint64_t p1 = (uint64_t)PHILOX_M1 * c2[l];
            c0[l] = (uint32_t)(p1 >> 32) ^ c1[l] ^ k0;
            c2[l] = (uint32_t)(p0 >> 32) ^ c3[l] ^ k1;
            c1[l] = (uint32_t)p1;
            c3[l] = (uint32_t)p0;
        }
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    for (int l = 0; l < LANES; l++) {
        w[0][l] = c0[l];
        w[1][l] = c1[l];
        w[2][l] = c2[l];
        w[3][l] = c3[l];
    }
}

/* What a bulk uniform fill stores for draw u in [0, 1): lo + width * u, or for a dropout mask
 * (u < p ? 0 : keep). `mask` is a constant where fill_group is inlined: each loop keeps only its own map. */
typedef struct {
    float lo, width;
    bool mask;
    float p, keep;
} uniform_map;

static inline float map_unit(uniform_map m, float u)
{
    float affine = m.lo + m.width * u, bernoulli = u < m.p ? 0.0f : m.keep;
    return m.mask ? bernoulli : affine;
}

/* Group g of a bulk uniform fill of dst[0, n) starting at stream position s->counter: draws g*64 - skip ..
 * g*64 - skip + 63, skip = the words of draw 0's block before it. Inlined with `map` known, so each caller's
 * loop is specialised. */
static inline __attribute__((always_inline)) void fill_group(const pc_rng *s, long g, float *dst, uint8_t *bytes,
                                                             long n, uniform_map map, bool wide)
{
    const long per_group = 4 * LANES, skip = (long)(s->counter & 3);
    uint32_t w[4][LANES];
    draw_lanes(w, s, (s->counter >> 2) + (uint64_t)(g * LANES), true, wide);
    float u[4][LANES];
    for (int k = 0; k < 4; k++)
        for (int l = 0; l < LANES; l++) u[k][l] = map_unit(map, word_to_unit(w[k][l]));
    const long i0 = g * per_group - skip;   /* the draw word 0 of lane 0 is */
    if (i0 >= 0 && i0 + per_group <= n && !bytes) {   /* all inside: a plain interleaving the compiler vectorises */
        for (int l = 0; l < LANES; l++)
            for (int k = 0; k < 4; k++) dst[i0 + 4 * l + k] = u[k][l];
        return;
    }
    if (i0 >= 0 && i0 + per_group <= n) {   /* bytes: interleaved, then compared in one contiguous loop */
        float t[4 * LANES];
        for (int l = 0; l < LANES; l++)
            for (int k = 0; k < 4; k++) t[4 * l + k] = u[k][l];
        for (int i = 0; i < 4 * LANES; i++) bytes[i0 + i] = t[i] != 0.0f;
        return;
    }
    for (int l = 0; l < LANES; l++)
        for (int k = 0; k < 4; k++) {
            const long i = i0 + 4 * l + k;
            if (i < 0 || i >= n) continue;
            if (bytes) bytes[i] = u[k][l] != 0.0f;
            else dst[i] = u[k][l];
        }
}

/* Whether the bulk draws take the AVX-512 path (base/isa). */
static bool vector_draws(void) { return PC_RNG_X86 && pc_isa_active() == PC_ISA_AVX512; }

static long groups_of(const pc_rng *r, long n) { return ((long)(r->counter & 3) + n + 4 * LANES - 1) / (4 * LANES); }

void pc_rng_fill_uniform(pc_rng *r, float *dst, long n, float lo, float hi)
{
    const pc_rng s = *r;
    const bool wide = vector_draws();
    const float width = hi - lo;
    const long groups = groups_of(&s, n);
    #pragma omp parallel for schedule(static) if (n >= PC_PARALLEL_MIN)
    for (long g = 0; g < groups; g++)   /* the map written here, so the OpenMP body sees its constants */
        fill_group(&s, g, dst, NULL, n, (uniform_map){ .lo = lo, .width = width }, wide);
    r->counter += (uint64_t)n;
}

void pc_rng_fill_dropout_mask(pc_rng *r, float *dst, long n, float p, float keep)
{
    const pc_rng s = *r;
    const bool wide = vector_draws();
    const long groups = groups_of(&s, n);
    #pragma omp parallel for schedule(static) if (n >= PC_PARALLEL_MIN)
    for (long g = 0; g < groups; g++)
        fill_group(&s, g, dst, NULL, n, (uniform_map){ .mask = true, .p = p, .keep = keep }, wide);
    r->counter += (uint64_t)n;
}

void pc_rng_fill_keep_bytes(pc_rng *r, uint8_t *dst, long n, float p)
{
    const pc_rng s = *r;
    const bool wide = vector_draws();
    const long groups = groups_of(&s, n);
    #pragma omp parallel for schedule(static) if (n >= PC_PARALLEL_MIN)
    for (long g = 0; g < groups; g++)
        fill_group(&s, g, NULL, dst, n, (uniform_map){ .mask = true, .p = p, .keep = 1.0f }, wide);
    r->counter += (uint64_t)n;
}

void pc_rng_fill_normal(pc_rng *r, float *dst, long n, float mean, float std)
{
    const pc_rng s = *r;
    const bool wide = vector_draws();
    const long blocks = (n + LANES - 1) / LANES;
    #pragma omp parallel for schedule(static) if (n >= PC_PARALLEL_MIN)
    for (long b = 0; b < blocks; b++) {
        uint32_t w[4][LANES];
        draw_lanes(w, &s, s.counter + (uint64_t)(b * LANES), false, wide);
        long len = n - b * LANES < LANES ? n - b * LANES : LANES;
        for (long l = 0; l < len; l++) dst[b * LANES + l] = mean + std * words_to_normal(w[0][l], w[1][l]);
    }
    r->counter += (uint64_t)n;
}

/* Rejection sampling: accept x only from [2^64 mod n, 2^64), a whole number of n-sized bins. */
uint64_t pc_rng_below(pc_rng *r, uint64_t n)
{
    uint64_t threshold = (0 - n) % n;
    for (;;) {
        uint32_t w[4];
        draw_at(w, r, r->counter++);
        uint64_t x = (uint64_t)w[0] | (uint64_t)w[1] << 32;
        if (x >= threshold) return x % n;
    }
}
