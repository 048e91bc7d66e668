/* Speed of bitsandbytes-compatible 4-bit quantization and of the fused 4-bit products
 * (kernels/quant4, kernels/gemm4) against OpenBLAS on the dequantized fp32 matrix.
 *
 *   bench_quant4 [M]     (M = activation rows, default 256)
 *
 * Shapes are nn.Linear weights W [out, in] of TinyLlama-1.1B: q/o_proj 2048x2048, gate/up_proj
 * 5632x2048, down_proj 2048x5632. Forward y = x·Wᵀ, input gradient dx = dy·W; 2·M·out·in flops each. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "base/rng.h"
#include "kernels/gemm.h"
#include "kernels/gemm4.h"
#include "kernels/quant4.h"

static const double MIN_SECONDS = 0.5;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    const pc_q4_weight *w;
    const float *wd, *in;
    float *out, *deq;
    int M;
    pc_q4_compute ct;
    void *scratch;
    size_t scratch_bytes;
    int which; /* 0 fused x·Wᵀ, 1 fused dy·W, 2 sgemm x·Wᵀ, 3 sgemm dy·W, 4 dequantize, 5 quantize */
    const float *wsrc;
} job;

static void run_once(const job *j)
{
    int N = (int)j->w->rows, K = (int)j->w->cols;
    pc_error err;
    switch (j->which) {
    case 0: pc_q4_matmul_xwT(j->w, j->ct, j->in, j->M, j->out, false, j->scratch, j->scratch_bytes, &err); break;
    case 1: pc_q4_matmul_dyW(j->w, j->ct, j->in, j->M, j->out, false, j->scratch, j->scratch_bytes, &err); break;
    case 2: pc_sgemm(false, true, j->M, N, K, 1.0f, j->in, K, j->wd, K, 0.0f, j->out, N); break;
    case 3: pc_sgemm(false, false, j->M, K, N, 1.0f, j->in, N, j->wd, K, 0.0f, j->out, K); break;
    case 4: pc_q4_dequantize(j->w, j->deq); break;
    default: {
        pc_q4_weight q;
        pc_q4_quantize(j->wsrc, N, K, PC_Q4_NF4, true, &q, &err);
        pc_q4_free(&q);
    }
    }
}

/* The fastest of at least 5 runs and MIN_SECONDS: on a shared machine the minimum is the stable figure. */
static double seconds_per_run(const job *j)
{
    run_once(j);
    double best = 1e30, start = now_seconds();
    for (int reps = 0; reps < 5 || now_seconds() - start < MIN_SECONDS; reps++) {
        double t0 = now_seconds();
        run_once(j);
        double t = now_seconds() - t0;
        if (t < best) best = t;
    }
    return best;
}

static void bench_shape(int out, int in, int M)
{
    long n = (long)out * in;
    float *w = malloc(sizeof(float) * (size_t)n), *wd = malloc(sizeof(float) * (size_t)n);
    float *x = malloc(sizeof(float) * (size_t)M * in), *dy = malloc(sizeof(float) * (size_t)M * out);
    float *y = malloc(sizeof(float) * (size_t)M * (out > in ? out : in));
    pc_rng r;
    pc_rng_init(&r, 1, "bench_quant4");
    pc_rng_fill_normal(&r, w, n, 0.0f, 0.02f);
    pc_rng_fill_normal(&r, x, (long)M * in, 0.0f, 1.0f);
    pc_rng_fill_normal(&r, dy, (long)M * out, 0.0f, 1.0f);
    pc_q4_weight q;
    pc_error err;
    if (pc_q4_quantize(w, out, in, PC_Q4_NF4, true, &q, &err) != PEFTC_OK) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    pc_q4_dequantize(&q, wd);
    double flops = 2.0 * M * (double)n;
    float *deq = malloc(sizeof(float) * (size_t)n);
    job j = {.w = &q, .wd = wd, .out = y, .deq = deq, .M = M, .wsrc = w};
    j.which = 5;
    double tq = seconds_per_run(&j);
    j.which = 4;
    double td = seconds_per_run(&j);
    printf("W [%d, %d]: quantize nf4+dq %.1f ms (%.0f Melem/s), dequantize %.2f ms (%.0f Melem/s)\n", out, in,
           1e3 * tq, n / tq / 1e6, 1e3 * td, n / td / 1e6);
    printf("  M = %-24d %12s %12s\n", M, "x·Wᵀ GFLOP/s", "dy·W GFLOP/s");
    const char *names[3] = {"fused nf4, fp32 (OpenBLAS)", "fused nf4, bf16 (VDPBF16PS)", "fused nf4, bf16 emulated"};
    const pc_q4_compute cts[3] = {PC_Q4_COMPUTE_F32, PC_Q4_COMPUTE_BF16, PC_Q4_COMPUTE_BF16_EMULATED};
    for (int c = 0; c < 3; c++) {
        if (cts[c] == PC_Q4_COMPUTE_BF16 && !pc_q4_bf16_native()) continue;
        j.ct = cts[c];
        j.scratch_bytes = pc_q4_scratch_bytes(&q, M, cts[c], omp_get_max_threads());
        j.scratch = malloc(j.scratch_bytes);
        j.in = x;
        j.which = 0;
        double tf = seconds_per_run(&j);
        j.in = dy;
        j.which = 1;
        double tb = seconds_per_run(&j);
        printf("  %-28s %12.1f %12.1f   (scratch %.1f MB)\n", names[c], flops / tf / 1e9, flops / tb / 1e9,
               j.scratch_bytes / 1e6);
        free(j.scratch);
    }
    j.in = x;
    j.which = 2;
    double tf = seconds_per_run(&j);
    j.in = dy;
    j.which = 3;
    double tb = seconds_per_run(&j);
    printf("  %-28s %12.1f %12.1f\n", "sgemm on dequantized fp32", flops / tf / 1e9, flops / tb / 1e9);
    printf("  %-28s %12.1f %12.1f\n", "dequantize + sgemm", flops / (tf + td) / 1e9, flops / (tb + td) / 1e9);
    pc_q4_free(&q);
    free(w);
    free(wd);
    free(deq);
    free(x);
    free(dy);
    free(y);
}

int main(int argc, char **argv)
{
    int M = argc > 1 ? atoi(argv[1]) : 256;
    printf("threads %d, %s, AVX-512 BF16: %s\n", omp_get_max_threads(), pc_gemm_backend(),
           pc_q4_bf16_native() ? "yes" : "no");
    bench_shape(2048, 2048, M);
    bench_shape(5632, 2048, M);
    bench_shape(2048, 5632, M);
    return 0;
}
