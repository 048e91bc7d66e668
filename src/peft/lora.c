#include "peft/lora.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/threads.h"
#include "kernels/thin.h"
#include "kernels/tile_gemm.h"

enum { CHUNK = 64 };   /* elements of a Delta W row (or column) formed at a time, on the stack */

float pc_lora_scaling(double alpha, int r, bool use_rslora)
{
    return (float)(use_rslora ? alpha / sqrt((double)r) : alpha / (double)r);
}

static float *alloc_floats(long n)
{
    return calloc((size_t)n, sizeof(float));
}

pc_status pc_lora_create(pc_lora *l, int in, int out, int r, float scaling, float dropout,
                         pc_lora_init init, pc_rng *rng, pc_error *err)
{
    memset(l, 0, sizeof *l);
    if (r < 1) return pc_fail(err, PEFTC_ERR_INVALID, "LoRA rank r must be >= 1, got %d", r);
    l->in = in; l->out = out; l->r = r; l->scaling = scaling; l->dropout = dropout;
    l->A = alloc_floats((long)r * in);
    l->dA = alloc_floats((long)r * in);
    l->B = alloc_floats((long)out * r);
    l->dB = alloc_floats((long)out * r);
    l->Bt = alloc_floats((long)r * out);
    l->dBt = alloc_floats((long)r * out);
    if (!l->A || !l->dA || !l->B || !l->dB || !l->Bt || !l->dBt) {
        pc_lora_free(l);
        return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for a LoRA adapter [%d x %d, r=%d]", out, in, r);
    }
    /* kaiming_uniform_(a=sqrt(5)) on [r, in]: bound = gain*sqrt(3/fan_in) = 1/sqrt(in). */
    float bound_a = 1.0f / sqrtf((float)in);
    if (init == PC_LORA_INIT_GAUSSIAN) pc_rng_fill_normal(rng, l->A, (long)r * in, 0.0f, 1.0f / (float)r);
    else pc_rng_fill_uniform(rng, l->A, (long)r * in, -bound_a, bound_a);
    if (init == PC_LORA_INIT_NONE) {
        float bound_b = 1.0f / sqrtf((float)r);
        pc_rng_fill_uniform(rng, l->B, (long)out * r, -bound_b, bound_b);
    }
    return PEFTC_OK;
}

pc_status pc_lora_reserve(pc_lora *l, int rows, pc_error *err)
{
    if (rows <= l->cap_rows) return PEFTC_OK;
    free(l->h); free(l->keep); free(l->z);
    l->h = alloc_floats((long)rows * l->r);
    l->keep = l->dropout > 0 ? calloc((size_t)rows * (size_t)l->in, 1) : NULL;
    l->z = l->m ? alloc_floats((long)rows * l->out) : NULL;
    if (!l->h || (l->dropout > 0 && !l->keep) || (l->m && !l->z)) {
        l->cap_rows = 0;
        return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for LoRA activations (%d rows)", rows);
    }
    l->cap_rows = rows;
    return PEFTC_OK;
}

void pc_lora_free(pc_lora *l)
{
    free(l->A); free(l->dA); free(l->B); free(l->dB); free(l->dBt);
    free(l->h); free(l->keep);
    free(l->m); free(l->dm); free(l->wnorm2); free(l->norm); free(l->c); free(l->Bt); free(l->z);
    memset(l, 0, sizeof *l);
}

/* What a kept input is multiplied by, as nn.Dropout scales: 1/(1-p) (a dropped one by 0). */
static inline float keep_scale(const pc_lora *l)
{
    return 1.0f / (1.0f - l->dropout);
}

/* The dropout factors of the branch input in the last forward: 1/(1-p) where kept, 0 where dropped; none
 * without dropout. */
static pc_thin_mask branch_mask(const pc_lora *l)
{
    return l->last_dropout ? (pc_thin_mask){ l->keep, keep_scale(l) } : (pc_thin_mask){ NULL, 1.0f };
}

const float *pc_lora_dropped_input(pc_lora *l, const float *x, int rows)
{
    if (!l->last_dropout) return x;
    long n = (long)rows * l->in;
    const float scale = keep_scale(l);
    const uint8_t *keep = l->keep;
    float *xd = l->xd;
    #pragma omp parallel for simd schedule(static) if (n >= PC_PARALLEL_MIN)
    for (long i = 0; i < n; i++) xd[i] = x[i] * (keep[i] ? scale : 0.0f);
    return l->xd;
}

/* Bt = B^T [r, out], the layout kernels/thin reads B in. */
static void transpose_B(float *Bt, const float *B, int out, int r)
{
    pc_tile_transpose(Bt, out, B, r, out, r);
}

void pc_lora_down(pc_lora *l, const float *x, int rows, bool training, pc_rng *rng)
{
    l->last_dropout = training && l->dropout > 0;
    if (l->last_dropout) pc_rng_fill_keep_bytes(rng, l->keep, (long)rows * l->in, l->dropout);
    pc_thin_down(l->h, x, branch_mask(l), l->A, rows, l->in, l->r, 1.0f);
}

void pc_lora_forward(pc_lora *l, float *y, const float *x, int rows, bool training, pc_rng *rng)
{
    pc_lora_down(l, x, rows, training, rng);
    /* y += s * h B^T */
    transpose_B(l->Bt, l->B, l->out, l->r);
    pc_thin_up(y, (pc_thin_mask){ NULL, 1.0f }, l->h, l->Bt, rows, l->out, l->r, l->scaling);
}

void pc_lora_apply_mask(const pc_lora *l, float *dx, const float *g, int rows)
{
    long n = (long)rows * l->in;
    const float scale = keep_scale(l);
    const uint8_t *keep = l->keep;
    #pragma omp parallel for simd schedule(static) if (n >= PC_PARALLEL_MIN)
    for (long i = 0; i < n; i++) dx[i] += g[i] * (keep[i] ? scale : 0.0f);
}

void pc_lora_backward(pc_lora *l, float *dx, const float *dy, const float *x, int rows)
{
    const int in = l->in, out = l->out, r = l->r;
    const float s = l->scaling;
    const pc_thin_mask none = { NULL, 1.0f };
    /* dB += s dy^T h, summed as dB^T = s h^T dy [r, out] and added transposed */
    memset(l->dBt, 0, sizeof(float) * (size_t)r * (size_t)out);
    pc_thin_grad(l->dBt, l->h, dy, none, rows, out, r, s);
    for (int o = 0; o < out; o++)
        for (int k = 0; k < r; k++) l->dB[(long)o * r + k] += l->dBt[(long)k * out + o];
    /* g = s dy B [rows, r], into h (no longer needed) */
    transpose_B(l->Bt, l->B, out, r);
    pc_thin_down(l->h, dy, none, l->Bt, rows, out, r, s);
    /* dA += g^T x_d, and dx += (g A) * mask: x_d and the masked product formed as they are read */
    pc_thin_grad(l->dA, l->h, x, branch_mask(l), rows, in, r, 1.0f);
    if (dx) pc_thin_up(dx, branch_mask(l), l->h, l->A, rows, in, r, 1.0f);
}

/* ---------- Delta W = B A, formed a chunk at a time ---------- */

/* d[j] = (B A)[o, i0 + j] for j < n, with Brow = B[o, :] (NULL: B = 0). */
static void delta_of_row(float *d, const float *A, const float *Brow, int r, int in, int i0, int n)
{
    for (int j = 0; j < n; j++) d[j] = 0.0f;
    for (int k = 0; Brow && k < r; k++) {
        const float bk = Brow[k], *a = A + (long)k * in + i0;
        #pragma omp simd
        for (int j = 0; j < n; j++) d[j] += bk * a[j];
    }
}

/* d[j] = (B A)[o0 + j, i] for j < n, with Bt = B^T [r, out] (NULL: B = 0); the same sums in the same order
 * as delta_of_row. */
static void delta_of_col(float *d, const float *A, const float *Bt, int r, int in, int out, int i, int o0, int n)
{
    for (int j = 0; j < n; j++) d[j] = 0.0f;
    for (int k = 0; Bt && k < r; k++) {
        const float ak = A[(long)k * in + i], *b = Bt + (long)k * out + o0;
        #pragma omp simd
        for (int j = 0; j < n; j++) d[j] += b[j] * ak;
    }
}

static int min_int(int a, int b) { return a < b ? a : b; }

static bool all_zero(const float *v, long n)
{
    for (long i = 0; i < n; i++)
        if (v[i] != 0.0f) return false;
    return true;
}

/* Columns [i0, i0 + n) of row o of a base weight stored [out, in], in f32: W's own memory, or q4 dequantized
 * into buf. */
static const float *row_chunk(const pc_base_weight *w, int in, int o, int i0, int n, float *buf)
{
    if (!w->q4) return w->W + (long)o * in + i0;
    pc_q4_dequantize_range(w->q4, (int64_t)o * in + i0, n, buf);
    return buf;
}

/* sum_i (W[o, i] + s (B A)[o, i])^2 for W stored [out, in]; Brow = B[o, :] or NULL.
 * One double accumulator per chunk position, so the additions do not wait on each other. */
static double row_sumsq(const pc_base_weight *w, int o, const float *A, const float *Brow, int r, int in, float s)
{
    float d[CHUNK], buf[CHUNK];
    double acc[CHUNK] = { 0 }, sum = 0.0;
    for (int i0 = 0; i0 < in; i0 += CHUNK) {
        int n = min_int(CHUNK, in - i0);
        const float *wr = row_chunk(w, in, o, i0, n, buf);
        delta_of_row(d, A, Brow, r, in, i0, n);
        #pragma omp simd
        for (int j = 0; j < n; j++) {
            float t = wr[j] + s * d[j];
            acc[j] += (double)t * t;
        }
    }
    for (int j = 0; j < CHUNK; j++) sum += acc[j];
    return sum;
}

/* acc[j] = sum_i (W[i, o0 + j] + s (B A)[o0 + j, i])^2 for W stored [in, out], j < n; Bt = B^T or NULL. */
static void cols_sumsq(double *acc, const float *W, const float *A, const float *Bt, int r, int in, int out,
                       float s, int o0, int n)
{
    float d[CHUNK];
    for (int j = 0; j < n; j++) acc[j] = 0.0;
    for (int i = 0; i < in; i++) {
        delta_of_col(d, A, Bt, r, in, out, i, o0, n);
        const float *w = W + (long)i * out + o0;
        #pragma omp simd
        for (int j = 0; j < n; j++) {
            float t = w[j] + s * d[j];
            acc[j] += (double)t * t;
        }
    }
}

/* sq[j] = ||W_o + s (B A)_o||^2 for the output rows o = o0 + j, j < cnt (B NULL: B = 0; Bt holds B^T when
 * W is stored [in, out]). wnorm2 (may be NULL) stands in for rows whose B is zero. */
static void block_sumsq(double *sq, const pc_base_weight *w, int in, int out, const float *A, const float *B,
                        const float *Bt, int r, float s, const double *wnorm2, int o0, int cnt)
{
    if (!w->w_in_out) {
        for (int j = 0; j < cnt; j++) {
            int o = o0 + j;
            const float *Brow = B ? B + (long)o * r : NULL;
            sq[j] = wnorm2 && Brow && all_zero(Brow, r) ? wnorm2[o] : row_sumsq(w, o, A, Brow, r, in, s);
        }
    } else if (wnorm2 && B && all_zero(B + (long)o0 * r, (long)cnt * r)) {
        memcpy(sq, wnorm2 + o0, sizeof(double) * (size_t)cnt);
    } else {
        cols_sumsq(sq, w->W, A, B ? Bt : NULL, r, in, out, s, o0, cnt);
    }
}

void pc_lora_weight_norm(float *n, const pc_base_weight *w, int in, int out, const float *A, const float *B, int r,
                         float s, float *Bt, const double *wnorm2)
{
    if (w->w_in_out) transpose_B(Bt, B, out, r);
    const int step = w->w_in_out ? CHUNK : 1;   /* a thread takes a row of [out, in], or CHUNK columns of [in, out] */
    #pragma omp parallel for schedule(static)
    for (int o0 = 0; o0 < out; o0 += step) {
        double sq[CHUNK];
        int cnt = min_int(step, out - o0);
        block_sumsq(sq, w, in, out, A, B, Bt, r, s, wnorm2, o0, cnt);
        for (int j = 0; j < cnt; j++) n[o0 + j] = (float)sqrt(sq[j]);
    }
}

void pc_lora_row_norms2(double *wnorm2, const pc_base_weight *w, int in, int out)
{
    const int step = w->w_in_out ? CHUNK : 1;
    #pragma omp parallel for schedule(static)
    for (int o0 = 0; o0 < out; o0 += step)
        block_sumsq(wnorm2 + o0, w, in, out, NULL, NULL, NULL, 0, 0.0f, NULL, o0, min_int(step, out - o0));
}

/* W <- f[o] (W + s (B A)) per output row o (f NULL: 1), W laid out as w_in_out says; Bt: [r, out] scratch. */
static void add_delta(float *W, bool w_in_out, int in, int out, const float *A, const float *B, int r, float s,
                      const float *f, float *Bt)
{
    if (!w_in_out) {
        #pragma omp parallel for schedule(static)
        for (int o = 0; o < out; o++) {
            float d[CHUNK], fo = f ? f[o] : 1.0f;
            float *w = W + (long)o * in;
            for (int i0 = 0; i0 < in; i0 += CHUNK) {
                int n = min_int(CHUNK, in - i0);
                delta_of_row(d, A, B + (long)o * r, r, in, i0, n);
                for (int j = 0; j < n; j++) w[i0 + j] = f ? fo * (w[i0 + j] + s * d[j]) : w[i0 + j] + s * d[j];
            }
        }
        return;
    }
    transpose_B(Bt, B, out, r);
    #pragma omp parallel for schedule(static)
    for (int o0 = 0; o0 < out; o0 += CHUNK) {
        int n = min_int(CHUNK, out - o0);
        float d[CHUNK];
        for (int i = 0; i < in; i++) {
            delta_of_col(d, A, Bt, r, in, out, i, o0, n);
            float *w = W + (long)i * out + o0;
            for (int j = 0; j < n; j++) w[j] = f ? f[o0 + j] * (w[j] + s * d[j]) : w[j] + s * d[j];
        }
    }
}

pc_status pc_lora_merge(float *W, bool w_in_out, int in, int out, const float *A, const float *B, int r, float s,
                        const float *m, pc_error *err)
{
    float *Bt = w_in_out ? alloc_floats((long)r * out) : NULL;
    float *f = m ? alloc_floats(out) : NULL;
    if ((w_in_out && !Bt) || (m && !f)) {
        free(Bt); free(f);
        return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory merging an adapter into a [%d x %d] weight", out, in);
    }
    if (m) {
        /* DoRA: f = m / ||W + s B A|| per output row, from the weights before the merge */
        pc_base_weight base = { .W = W, .w_in_out = w_in_out };
        pc_lora_weight_norm(f, &base, in, out, A, B, r, s, Bt, NULL);
        for (int o = 0; o < out; o++) f[o] = m[o] / f[o];
    }
    add_delta(W, w_in_out, in, out, A, B, r, s, f, Bt);
    free(Bt); free(f);
    return PEFTC_OK;
}

pc_status pc_lora_unmerge(float *W, bool w_in_out, int in, int out, const float *A, const float *B, int r, float s,
                          pc_error *err)
{
    float *Bt = w_in_out ? alloc_floats((long)r * out) : NULL;
    if (w_in_out && !Bt)
        return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory unmerging an adapter from a [%d x %d] weight", out, in);
    add_delta(W, w_in_out, in, out, A, B, r, -s, NULL, Bt);
    free(Bt);
    return PEFTC_OK;
}
