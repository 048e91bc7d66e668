#include "peft/dora.h"

#include <stdlib.h>

#include "base/threads.h"
#include "kernels/gemm.h"
#include "kernels/pgemm.h"

enum { CHUNK = 64 };   /* output features handled together by one thread in the magnitude gradient */

pc_status pc_dora_init(pc_lora *l, const pc_base_weight *w, pc_error *err)
{
    int out = l->out;
    l->m = calloc((size_t)out, sizeof(float));
    l->dm = calloc((size_t)out, sizeof(float));
    l->norm = calloc((size_t)out, sizeof(float));
    l->c = calloc((size_t)out, sizeof(float));
    l->wnorm2 = calloc((size_t)out, sizeof(double));
    if (!l->m || !l->dm || !l->norm || !l->c || !l->wnorm2)
        return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for a DoRA magnitude [%d]", out);
    pc_lora_row_norms2(l->wnorm2, w, l->in, out);
    pc_lora_weight_norm(l->m, w, l->in, out, l->A, l->B, l->r, l->scaling, l->Bt, l->wnorm2);
    int rows = l->cap_rows;   /* per-step buffers now include z */
    l->cap_rows = 0;
    return pc_lora_reserve(l, rows, err);
}

/* C[rows, out] = X W^T. The fused 4-bit products cannot fail with the scratch pc_linear_reserve sized. */
static void times_wT(float *C, const float *X, const pc_base_weight *w, int rows, int in, int out)
{
    if (w->q4) pc_q4_matmul_xwT(w->q4, w->q4_compute, X, rows, C, false, w->scratch, w->scratch_bytes, NULL);
    else if (w->packed) pc_packed_xwT(w->packed, X, rows, C, NULL, false);
    else if (w->w_in_out) pc_sgemm(false, false, rows, out, in, 1.0f, X, in, w->W, out, 0.0f, C, out);
    else pc_sgemm(false, true, rows, out, in, 1.0f, X, in, w->W, in, 0.0f, C, out);
}

/* C[rows, in] = G W, or += when accumulate */
static void times_w(float *C, bool accumulate, const float *G, const pc_base_weight *w, int rows, int in, int out)
{
    float beta = accumulate ? 1.0f : 0.0f;
    if (w->q4) pc_q4_matmul_dyW(w->q4, w->q4_compute, G, rows, C, accumulate, w->scratch, w->scratch_bytes, NULL);
    else if (w->packed) pc_packed_dyW(w->packed, G, rows, C, accumulate);
    else if (w->w_in_out) pc_sgemm(false, true, rows, in, out, 1.0f, G, out, w->W, out, beta, C, in);
    else pc_sgemm(false, false, rows, in, out, 1.0f, G, out, w->W, in, beta, C, in);
}

void pc_dora_forward(pc_lora *l, float *y, const float *x, const pc_base_weight *w, const float *b, int rows,
                     bool training, pc_rng *rng)
{
    const int out = l->out;
    float *z = l->z;
    pc_lora_weight_norm(l->norm, w, l->in, out, l->A, l->B, l->r, l->scaling, l->Bt, l->wnorm2);
    for (int o = 0; o < out; o++) l->c[o] = l->m[o] / l->norm[o];
    pc_lora_down(l, x, rows, training, rng);
    const float *xd = pc_lora_dropped_input(l, x, rows);
    if (l->last_dropout) {
        /* z = x_d W^T, a product of its own, + s h B^T; y = x W^T + b - x_d W^T + c z */
        times_wT(z, xd, w, rows, l->in, out);
        #pragma omp parallel for simd schedule(static) if ((long)rows * out >= PC_PARALLEL_MIN)
        for (long i = 0; i < (long)rows * out; i++) y[i] -= z[i];
        pc_sgemm(false, true, rows, out, l->r, l->scaling, l->h, l->r, l->B, l->r, 1.0f, z, out);
        #pragma omp parallel for schedule(static) if ((long)rows * out >= PC_PARALLEL_MIN)
        for (int r = 0; r < rows; r++) {
            float *yr = y + (long)r * out;
            const float *zr = z + (long)r * out;
            #pragma omp simd
            for (int o = 0; o < out; o++) yr[o] += l->c[o] * zr[o];
        }
        return;
    }
    /* z = s h B^T + (base(x) - b), the base product reused; y = b + c z */
    pc_sgemm(false, true, rows, out, l->r, l->scaling, l->h, l->r, l->B, l->r, 0.0f, z, out);
    #pragma omp parallel for schedule(static) if ((long)rows * out >= PC_PARALLEL_MIN)
    for (int r = 0; r < rows; r++) {
        float *yr = y + (long)r * out, *zr = z + (long)r * out;
        #pragma omp simd
        for (int o = 0; o < out; o++) {
            float bo = b ? b[o] : 0.0f;
            zr[o] += yr[o] - bo;
            yr[o] = bo + l->c[o] * zr[o];
        }
    }
}

/* dm += sum over rows of dy z / norm (c = m / norm, norm constant); z becomes c dy, the gradient
 * reaching the rescaled part. */
static void magnitude_backward(pc_lora *l, const float *dy, int rows)
{
    const int out = l->out;
    #pragma omp parallel for schedule(static) if ((long)rows * out >= PC_PARALLEL_MIN)
    for (int o0 = 0; o0 < out; o0 += CHUNK) {
        int n = out - o0 < CHUNK ? out - o0 : CHUNK;
        double acc[CHUNK] = { 0 };
        for (long r = 0; r < rows; r++) {
            const float *dyr = dy + r * out + o0;
            float *zr = l->z + r * out + o0;
            #pragma omp simd
            for (int j = 0; j < n; j++) {
                acc[j] += (double)dyr[j] * zr[j];
                zr[j] = l->c[o0 + j] * dyr[j];
            }
        }
        for (int j = 0; j < n; j++) l->dm[o0 + j] += (float)(acc[j] / l->norm[o0 + j]);
    }
}

void pc_dora_backward(pc_lora *l, float *dx, bool accumulate, const float *dy, const float *x,
                      const pc_base_weight *w, int rows)
{
    const int in = l->in, out = l->out;
    magnitude_backward(l, dy, rows);
    if (!l->last_dropout) {
        /* y = b + c (x W^T + s x A^T B^T): dx = (c dy) W + s ((c dy) B) A */
        if (dx) times_w(dx, accumulate, l->z, w, rows, in, out);
        pc_lora_backward(l, dx, l->z, x, rows);
        return;
    }
    /* y = x W^T + b + (c - 1) x_d W^T + c s x_d A^T B^T with x_d = mask x:
     * dx = dy W + mask ((c - 1) dy W + s ((c dy) B) A) */
    if (dx) times_w(dx, accumulate, dy, w, rows, in, out);
    pc_lora_backward(l, dx, l->z, x, rows);
    if (!dx) return;
    #pragma omp parallel for schedule(static) if ((long)rows * out >= PC_PARALLEL_MIN)
    for (int r = 0; r < rows; r++) {
        const float *dyr = dy + (long)r * out;
        float *zr = l->z + (long)r * out;
        #pragma omp simd
        for (int o = 0; o < out; o++) zr[o] = (l->c[o] - 1.0f) * dyr[o];
    }
    times_w(l->xd, false, l->z, w, rows, in, out);
    pc_lora_apply_mask(l, dx, l->xd, rows);
}
