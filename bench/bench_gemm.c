/* GFLOP/s of pc_sgemm on the matrix products of a DistilBERT-base LoRA training step, beside the
 * machine's measured peak (a register-only FMA loop on every thread, AVX-512 when the CPU has it,
 * else AVX2; plus the AVX-512 BF16 dot-product peak when available).
 *
 *   bench_gemm [M]     (M = tokens per step, default 1024 = 16 x 64)
 *
 * Then the frozen-weight products (forward x·Wᵀ, input gradient dy·W) of DistilBERT-base and TinyLlama
 * Linears at 512 and 2048 rows: OpenBLAS (as its core type is set) against kernels/pgemm with the weight
 * packed once, in fp32 and in bf16. Last, LoRA's thin products (DistilBERT r = 8, TinyLlama r = 16) at 512 and
 * 2048 rows: OpenBLAS against kernels/thin, with LoRA dropout's mask where training applies it.
 *
 * Linear layers are nn.Linear: W is [out, in]. Forward y = x·Wᵀ; input gradient dx = dy·W;
 * LoRA (r = 8): h = x·Aᵀ, y += h·Bᵀ; backward dB = dyᵀ·h, dh = dy·B, dA = dhᵀ·x, dx += dh·A.
 * Frozen weights get no weight gradient, so dW = dyᵀ·x is not part of the step. */
#include <immintrin.h>
#include <omp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "kernels/gemm.h"
#include "kernels/pgemm.h"
#include "kernels/thin.h"

enum { LORA_R = 8, FMA_CHAINS = 16 };
static const double MIN_SECONDS = 0.25;   /* per shape */

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- peak: FMA_CHAINS independent accumulators hide the FMA latency; the loops are fully unrolled so
 * that the accumulators live in registers and nothing touches memory ---- */

__attribute__((target("avx512f"))) static float fma_loop_avx512(long iters)
{
    __m512 acc[FMA_CHAINS];
#pragma GCC unroll 16
    for (int i = 0; i < FMA_CHAINS; i++) acc[i] = _mm512_set1_ps((float)i * 1e-3f);
    const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 16
        for (int i = 0; i < FMA_CHAINS; i++) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
    }
    __m512 s = acc[0];
#pragma GCC unroll 16
    for (int i = 1; i < FMA_CHAINS; i++) s = _mm512_add_ps(s, acc[i]);
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static float fma_loop_avx2(long iters)
{
    __m256 acc[FMA_CHAINS];
#pragma GCC unroll 16
    for (int i = 0; i < FMA_CHAINS; i++) acc[i] = _mm256_set1_ps((float)i * 1e-3f);
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 16
        for (int i = 0; i < FMA_CHAINS; i++) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
    }
    float out[8];
    __m256 s = acc[0];
#pragma GCC unroll 16
    for (int i = 1; i < FMA_CHAINS; i++) s = _mm256_add_ps(s, acc[i]);
    _mm256_storeu_ps(out, s);
    return out[0] + out[1] + out[2] + out[3] + out[4] + out[5] + out[6] + out[7];
}

/* vdpbf16ps: 16 lanes x 2 bf16 products each = 64 flops per instruction. */
__attribute__((target("avx512f,avx512bf16"))) static float bf16_loop(long iters)
{
    __m512 acc[FMA_CHAINS];
#pragma GCC unroll 16
    for (int i = 0; i < FMA_CHAINS; i++) acc[i] = _mm512_set1_ps((float)i * 1e-3f);  /* distinct: else the compiler
                                                                                        merges equal chains */
    const __m512bh a = (__m512bh)_mm512_set1_epi16(0x3f80);   /* bf16 1.0 */
    const __m512bh b = (__m512bh)_mm512_set1_epi16(0x3380);   /* bf16 ~6e-8 */
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 16
        for (int i = 0; i < FMA_CHAINS; i++) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
    }
    __m512 s = acc[0];
#pragma GCC unroll 16
    for (int i = 1; i < FMA_CHAINS; i++) s = _mm512_add_ps(s, acc[i]);
    return _mm512_reduce_add_ps(s);
}

typedef enum { PEAK_AVX512, PEAK_AVX2, PEAK_BF16 } peak_kind;

static float run_loop(peak_kind k, long iters)
{
    switch (k) {
    case PEAK_AVX512: return fma_loop_avx512(iters);
    case PEAK_AVX2: return fma_loop_avx2(iters);
    case PEAK_BF16: return bf16_loop(iters);
    }
    return 0;
}

/* Flops per iteration of one thread's loop. */
static double loop_flops(peak_kind k)
{
    switch (k) {
    case PEAK_AVX512: return FMA_CHAINS * 16 * 2.0;
    case PEAK_AVX2: return FMA_CHAINS * 8 * 2.0;
    case PEAK_BF16: return FMA_CHAINS * 32 * 2.0;
    }
    return 0;
}

/* GFLOP/s with every OpenMP thread running the loop at once; the best of several short rounds, so that
 * other work on the machine does not lower it. */
static double measure_peak(peak_kind k)
{
    const long iters = 10 * 1000 * 1000;
    volatile float sink = 0;
    double best = 0;
    for (int rep = 0; rep < 12; rep++) {
        double t0 = now_seconds();
#pragma omp parallel
        {
            float r = run_loop(k, iters);
#pragma omp atomic
            sink += r;
        }
        double gf = loop_flops(k) * (double)iters * omp_get_max_threads() / (now_seconds() - t0) * 1e-9;
        if (gf > best) best = gf;
    }
    (void)sink;
    return best;
}

/* ---- GEMM shapes ---- */

typedef struct shape {
    const char *what;
    bool ta, tb;
    int M, N, K;
    int per_layer;      /* how often one transformer layer's training step runs this product */
} shape;

static float *random_matrix(size_t n, unsigned *seed)
{
    float *p = malloc(n * sizeof *p);
    if (!p) return NULL;
    for (size_t i = 0; i < n; i++) {
        *seed = *seed * 1664525u + 1013904223u;
        p[i] = (float)(*seed >> 8) / (float)(1u << 24) - 0.5f;
    }
    return p;
}

/* Best-of-rounds GFLOP/s of C = op(A)·op(B), repeated for at least MIN_SECONDS. */
static int time_shape(const shape *s, double *gflops)
{
    unsigned seed = 12345u;
    size_t a_n = (size_t)s->M * s->K, b_n = (size_t)s->K * s->N, c_n = (size_t)s->M * s->N;
    float *A = random_matrix(a_n, &seed), *B = random_matrix(b_n, &seed), *C = random_matrix(c_n, &seed);
    if (!A || !B || !C) { free(A); free(B); free(C); return -1; }
    int lda = s->ta ? s->M : s->K, ldb = s->tb ? s->K : s->N;
    double flops = 2.0 * s->M * s->N * s->K, best = 0, total = 0;
    pc_sgemm(s->ta, s->tb, s->M, s->N, s->K, 1.0f, A, lda, B, ldb, 0.0f, C, s->N);   /* warm-up */
    while (total < MIN_SECONDS) {
        int reps = 0;
        double t0 = now_seconds(), dt;
        do {
            pc_sgemm(s->ta, s->tb, s->M, s->N, s->K, 1.0f, A, lda, B, ldb, 0.0f, C, s->N);
            reps++;
            dt = now_seconds() - t0;
        } while (dt < 0.02);
        double gf = flops * reps / dt * 1e-9;
        if (gf > best) best = gf;
        total += dt;
    }
    free(A); free(B); free(C);
    *gflops = best;
    return 0;
}

/* ---- frozen-weight products: OpenBLAS vs the packed kernels ---- */

typedef enum { IMPL_OPENBLAS, IMPL_PACKED_F32, IMPL_PACKED_BF16 } impl;

static void run_frozen(impl which, bool dx, int M, int in, int out, const float *W, const pc_packed_weight *pw,
                       const float *a, float *c)
{
    if (which == IMPL_OPENBLAS && !dx) pc_sgemm(false, true, M, out, in, 1.0f, a, in, W, in, 0.0f, c, out);
    else if (which == IMPL_OPENBLAS) pc_sgemm(false, false, M, in, out, 1.0f, a, out, W, in, 0.0f, c, in);
    else if (!dx) pc_packed_xwT(pw, a, M, c, NULL, false);
    else pc_packed_dyW(pw, a, M, c, false);
}

/* Best-of-rounds GFLOP/s of one frozen-weight product, for at least MIN_SECONDS. */
static double time_frozen(impl which, bool dx, int M, int in, int out, const float *W, const pc_packed_weight *pw,
                          const float *a, float *c)
{
    double flops = 2.0 * M * in * out, best = 0, total = 0;
    run_frozen(which, dx, M, in, out, W, pw, a, c);
    while (total < MIN_SECONDS) {
        double t0 = now_seconds();
        run_frozen(which, dx, M, in, out, W, pw, a, c);
        double dt = now_seconds() - t0;
        if (flops / dt * 1e-9 > best) best = flops / dt * 1e-9;
        total += dt;
    }
    return best;
}

/* peak: fp32 FMA; bf16_peak: the dot-product peak (0 without AVX-512 BF16: the bf16 column then shows the
 * share of the fp32 peak, as the emulated kernel runs fp32 FMAs). */
static int bench_frozen(double peak, double bf16_peak)
{
    static const struct { const char *model; int in, out; } lins[] = {
        { "distilbert q/k/v/out", 768, 768 }, { "distilbert lin1", 768, 3072 }, { "distilbert lin2", 3072, 768 },
        { "tinyllama q/o", 2048, 2048 }, { "tinyllama gate/up", 2048, 5632 }, { "tinyllama down", 5632, 2048 },
    };
    static const int rows[] = { 512, 2048 };
    printf("\nfrozen-weight products; kernels: %s, %s (GFLOP/s, %% of the fp32 peak; bf16: of the bf16 peak)\n",
           pc_pgemm_kernel_name(PC_PACK_F32), pc_pgemm_kernel_name(PC_PACK_BF16));
    printf("%-22s %3s %5s %5s %5s %15s %15s %15s %9s\n", "linear", "dir", "M", "in", "out", "OpenBLAS", "packed f32",
           "packed bf16", "faster");
    unsigned seed = 4321u;
    for (size_t l = 0; l < sizeof lins / sizeof lins[0]; l++) {
        int in = lins[l].in, out = lins[l].out, big = in > out ? in : out;
        float *W = random_matrix((size_t)in * out, &seed), *a = random_matrix((size_t)2048 * big, &seed),
              *c = random_matrix((size_t)2048 * big, &seed);
        pc_packed_weight pw[2];
        pc_error err;
        if (!W || !a || !c || pc_pack_weight(&pw[0], W, false, in, out, PC_PACK_F32, &err) ||
            pc_pack_weight(&pw[1], W, false, in, out, PC_PACK_BF16, &err)) {
            fprintf(stderr, "bench_gemm: out of memory for %s\n", lins[l].model);
            return 1;
        }
        for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
            for (int dx = 0; dx < 2; dx++) {
                int M = rows[r];
                double g[3];
                for (int i = 0; i < 3; i++)
                    g[i] = time_frozen((impl)i, dx, M, in, out, W, i == IMPL_PACKED_BF16 ? &pw[1] : &pw[0], a, c);
                char cell[3][32];
                for (int i = 0; i < 3; i++) {
                    double of = i == IMPL_PACKED_BF16 && bf16_peak > 0 ? bf16_peak : peak;
                    snprintf(cell[i], sizeof cell[i], "%.1f (%.0f%%)", g[i], of > 0 ? 100 * g[i] / of : 0);
                }
                printf("%-22s %3s %5d %5d %5d %15s %15s %15s %9s\n", lins[l].model, dx ? "dx" : "fwd", M, in, out,
                       cell[0], cell[1], cell[2], g[1] >= g[0] ? "packed" : "OpenBLAS");
                printf("result frozen %s,%d,%d,%d GFLOP/s openblas %.1f packed_f32 %.1f packed_bf16 %.1f\n",
                       dx ? "dx" : "fwd", M, in, out, g[0], g[1], g[2]);
            }
        }
        pc_packed_weight_free(&pw[0]);
        pc_packed_weight_free(&pw[1]);
        free(W); free(a); free(c);
    }
    return 0;
}


/* ---- LoRA's thin products: OpenBLAS vs kernels/thin ---- */

typedef enum { THIN_DOWN, THIN_UP, THIN_DB, THIN_DH, THIN_DA, THIN_DX, THIN_KINDS } thin_kind;
static const char *const THIN_NAMES[THIN_KINDS] = {
    "h = x_d.A^T", "y += s h.B^T", "dB^T += s h^T.dy", "dh = s dy.B", "dA += dh^T.x_d", "dx += (dh.A)*mask",
};

typedef struct {
    int M, n, r;
    float *x, *y, *h, *A, *G;   /* x, y [M, n]; h [M, r]; A, G [r, n] */
    uint8_t *keep;              /* [M, n], the LoRA dropout mask (about 5 % dropped) */
} thin_case;

/* One product, as peftc ran it through OpenBLAS before kernels/thin (x_d made by a pass of its own, the masked dx
 * through a scratch product), or through kernels/thin. */
static void run_thin(const thin_case *c, thin_kind k, bool thin)
{
    const int M = c->M, n = c->n, r = c->r;
    const pc_thin_mask mask = { c->keep, 1.0f / 0.95f }, none = { NULL, 1.0f };
    if (thin) {
        if (k == THIN_DOWN) pc_thin_down(c->h, c->x, mask, c->A, M, n, r, 1.0f);
        if (k == THIN_UP) pc_thin_up(c->y, none, c->h, c->A, M, n, r, 2.0f);
        if (k == THIN_DB) pc_thin_grad(c->G, c->h, c->x, none, M, n, r, 2.0f);
        if (k == THIN_DH) pc_thin_down(c->h, c->x, none, c->A, M, n, r, 2.0f);
        if (k == THIN_DA) pc_thin_grad(c->G, c->h, c->x, mask, M, n, r, 1.0f);
        if (k == THIN_DX) pc_thin_up(c->y, mask, c->h, c->A, M, n, r, 1.0f);
        return;
    }
    const long all = (long)M * n;
    if (k == THIN_DOWN || k == THIN_DA) {   /* x_d = x * mask, then the product */
        #pragma omp parallel for simd schedule(static)
        for (long i = 0; i < all; i++) c->y[i] = c->x[i] * (c->keep[i] ? mask.scale : 0.0f);
    }
    if (k == THIN_DOWN) pc_sgemm(false, true, M, r, n, 1.0f, c->y, n, c->A, n, 0.0f, c->h, r);
    if (k == THIN_UP) pc_sgemm(false, false, M, n, r, 2.0f, c->h, r, c->A, n, 1.0f, c->y, n);
    if (k == THIN_DB) pc_sgemm(true, false, n, r, M, 2.0f, c->x, n, c->h, r, 1.0f, c->G, r);   /* dB [n, r] */
    if (k == THIN_DH) pc_sgemm(false, true, M, r, n, 2.0f, c->x, n, c->A, n, 0.0f, c->h, r);
    if (k == THIN_DA) pc_sgemm(true, false, r, n, M, 1.0f, c->h, r, c->y, n, 1.0f, c->G, n);
    if (k == THIN_DX) {
        pc_sgemm(false, false, M, n, r, 1.0f, c->h, r, c->A, n, 0.0f, c->x, n);   /* x as the scratch */
        #pragma omp parallel for simd schedule(static)
        for (long i = 0; i < all; i++) c->y[i] += c->x[i] * (c->keep[i] ? mask.scale : 0.0f);
    }
}

static double time_thin(const thin_case *c, thin_kind k, bool thin)
{
    double flops = 2.0 * c->M * c->n * c->r, best = 0, total = 0;
    run_thin(c, k, thin);
    while (total < MIN_SECONDS / 4) {
        double t0 = now_seconds();
        run_thin(c, k, thin);
        double dt = now_seconds() - t0;
        if (flops / dt * 1e-9 > best) best = flops / dt * 1e-9;
        total += dt;
    }
    return best;
}

static int bench_thin(double peak)
{
    static const struct { const char *model; int n, r; } cases[] = { { "distilbert", 768, 8 }, { "tinyllama", 2048, 16 } };
    static const int rows[] = { 512, 2048 };
    printf("\nLoRA thin products (GFLOP/s, %% of the fp32 peak): OpenBLAS (x_d and the masked dx by passes of their "
           "own) vs kernels/thin (%s)\n", pc_isa_name(pc_isa_active()));
    printf("%-10s %5s %5s %3s %-18s %14s %14s %7s\n", "model", "M", "n", "r", "product", "OpenBLAS", "thin", "speedup");
    unsigned seed = 777u;
    for (size_t m = 0; m < sizeof cases / sizeof cases[0]; m++) {
        for (size_t ri = 0; ri < sizeof rows / sizeof rows[0]; ri++) {
            thin_case c = { rows[ri], cases[m].n, cases[m].r, NULL, NULL, NULL, NULL, NULL, NULL };
            const size_t big = (size_t)c.M * c.n, fac = (size_t)c.r * c.n;
            c.x = random_matrix(big, &seed); c.y = random_matrix(big, &seed);
            c.h = random_matrix((size_t)c.M * c.r, &seed); c.A = random_matrix(fac, &seed);
            c.G = random_matrix(fac, &seed); c.keep = malloc(big);
            if (!c.x || !c.y || !c.h || !c.A || !c.G || !c.keep) {
                fprintf(stderr, "bench_gemm: out of memory for the thin products\n");
                return 1;
            }
            for (size_t i = 0; i < big; i++) c.keep[i] = (uint8_t)(i * 2654435761u % 100 >= 5);
            for (int k = 0; k < THIN_KINDS; k++) {
                double g[2] = { time_thin(&c, (thin_kind)k, false), time_thin(&c, (thin_kind)k, true) };
                char cell[2][32];
                for (int i = 0; i < 2; i++)
                    snprintf(cell[i], sizeof cell[i], "%.1f (%.0f%%)", g[i], peak > 0 ? 100 * g[i] / peak : 0);
                printf("%-10s %5d %5d %3d %-18s %14s %14s %6.1fx\n", cases[m].model, c.M, c.n, c.r, THIN_NAMES[k],
                       cell[0], cell[1], g[1] / g[0]);
                printf("result thin %s,%d,%d,%d GFLOP/s openblas %.1f thin %.1f\n", THIN_NAMES[k], c.M, c.n, c.r, g[0],
                       g[1]);
            }
            free(c.x); free(c.y); free(c.h); free(c.A); free(c.G); free(c.keep);
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    int M = argc > 1 ? atoi(argv[1]) : 1024;
    if (M < 1) {
        fprintf(stderr, "usage: bench_gemm [M >= 1]\n");
        return 2;
    }
    const int D = 768, H = 3072, r = LORA_R;
    const shape shapes[] = {
        { "fwd  x.W^T    q/k/v/out_lin 768->768", false, true, M, D, D, 4 },
        { "fwd  x.W^T    lin1 768->3072", false, true, M, H, D, 1 },
        { "fwd  x.W^T    lin2 3072->768", false, true, M, D, H, 1 },
        { "bwd  dy.W    q/k/v/out_lin 768->768", false, false, M, D, D, 4 },
        { "bwd  dy.W    lin1 768->3072", false, false, M, D, H, 1 },
        { "bwd  dy.W    lin2 3072->768", false, false, M, H, D, 1 },
        { "lora x.A^T    [M,768].[8,768]^T", false, true, M, r, D, 2 },
        { "lora h.B^T    [M,8].[768,8]^T", false, true, M, D, r, 2 },
        { "lora dy^T.h   dB [768,M].[M,8]", true, false, D, r, M, 2 },
        { "lora dy.B    dh [M,768].[768,8]", false, false, M, r, D, 2 },
        { "lora dh^T.x   dA [8,M].[M,768]", true, false, r, D, M, 2 },
        { "lora dh.A    dx [M,8].[8,768]", false, false, M, D, r, 2 },
    };
    int threads = omp_get_max_threads();
    printf("threads: %d   gemm: %s\n", threads, pc_gemm_backend());
    __builtin_cpu_init();
    bool avx512 = __builtin_cpu_supports("avx512f"), avx2 = __builtin_cpu_supports("avx2") &&
                                                            __builtin_cpu_supports("fma");
    bool bf16 = avx512 && __builtin_cpu_supports("avx512bf16");
    double peak = 0;
    if (avx512 || avx2) {
        peak_kind k = avx512 ? PEAK_AVX512 : PEAK_AVX2;
        peak = measure_peak(k);
        printf("peak fp32 FMA (%s, %d threads): %.1f GFLOP/s\n", avx512 ? "AVX-512" : "AVX2", threads, peak);
    } else {
        printf("peak fp32 FMA: no AVX2/AVX-512 on this CPU, not measured\n");
    }
    double bf16_peak = bf16 ? measure_peak(PEAK_BF16) : 0;
    if (bf16) printf("peak bf16 dot product (AVX-512 BF16, %d threads): %.1f GFLOP/s\n", threads, bf16_peak);
    printf("%-40s %5s %5s %5s %9s %7s\n", "product (per layer: count)", "M", "N", "K", "GFLOP/s", "%peak");
    double flops_all = 0, time_all = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const shape *s = &shapes[i];
        double gf;
        if (time_shape(s, &gf) != 0) {
            fprintf(stderr, "bench_gemm: out of memory for %s\n", s->what);
            return 1;
        }
        char what[64];
        snprintf(what, sizeof what, "%s: %d", s->what, s->per_layer);
        printf("%-40s %5d %5d %5d %9.1f %6.1f%%\n", what, s->M, s->N, s->K, gf, peak > 0 ? 100 * gf / peak : 0);
        printf("result gemm %c%c,%d,%d,%d GFLOP/s %.1f\n", s->ta ? 'T' : 'N', s->tb ? 'T' : 'N', s->M, s->N, s->K,
               gf);
        double f = 2.0 * s->M * s->N * s->K * s->per_layer;
        flops_all += f;
        time_all += f / (gf * 1e9);
    }
    printf("one layer's training products (%.1f GFLOP per step), overall: %.1f GFLOP/s\n", flops_all * 1e-9,
           flops_all / time_all * 1e-9);
    printf("result gemm_peak GFLOP/s %.1f\n", peak);
    printf("result gemm_bf16_peak GFLOP/s %.1f\n", bf16_peak);
    return bench_frozen(peak, bf16_peak) || bench_thin(peak);
}
