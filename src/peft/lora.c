#include "peft/lora.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/gemm.h"

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
    if (!l->A || !l->dA || !l->B || !l->dB) {
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
    free(l->h); free(l->mask); free(l->xd);
    l->h = alloc_floats((long)rows * l->r);
    l->mask = l->dropout > 0 ? alloc_floats((long)rows * l->in) : NULL;
    l->xd = l->dropout > 0 ? alloc_floats((long)rows * l->in) : NULL;
    if (!l->h || (l->dropout > 0 && (!l->mask || !l->xd))) {
        l->cap_rows = 0;
        return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for LoRA activations (%d rows)", rows);
    }
    l->cap_rows = rows;
    return PEFTC_OK;
}

void pc_lora_free(pc_lora *l)
{
    free(l->A); free(l->dA); free(l->B); free(l->dB);
    free(l->h); free(l->mask); free(l->xd);
    memset(l, 0, sizeof *l);
}

/* The LoRA branch input: x itself, or x * mask when dropout is active in training. */
static const float *branch_input(pc_lora *l, const float *x, int rows, bool training, pc_rng *rng)
{
    if (!training || l->dropout <= 0) return x;
    long n = (long)rows * l->in;
    float keep = 1.0f / (1.0f - l->dropout);
    pc_rng_fill_uniform(rng, l->mask, n, 0.0f, 1.0f);
    for (long i = 0; i < n; i++) {
        l->mask[i] = l->mask[i] < l->dropout ? 0.0f : keep;
        l->xd[i] = x[i] * l->mask[i];
    }
    return l->xd;
}

void pc_lora_forward(pc_lora *l, float *y, const float *x, int rows, bool training, pc_rng *rng)
{
    const float *xd = branch_input(l, x, rows, training, rng);
    l->last_dropout = training && l->dropout > 0;
    /* h = x_d A^T  [rows, r];  y += s * h B^T */
    pc_sgemm(false, true, rows, l->r, l->in, 1.0f, xd, l->in, l->A, l->in, 0.0f, l->h, l->r);
    pc_sgemm(false, true, rows, l->out, l->r, l->scaling, l->h, l->r, l->B, l->r, 1.0f, y, l->out);
}

void pc_lora_backward(pc_lora *l, float *dx, const float *dy, const float *x, int rows)
{
    const float *xd = l->last_dropout ? l->xd : x;
    float s = l->scaling;
    /* dB += s * dy^T h   [out, r] */
    pc_sgemm(true, false, l->out, l->r, rows, s, dy, l->out, l->h, l->r, 1.0f, l->dB, l->r);
    /* g = s * dy B   [rows, r]  (reuses h, which is no longer needed) */
    pc_sgemm(false, false, rows, l->r, l->out, s, dy, l->out, l->B, l->r, 0.0f, l->h, l->r);
    /* dA += g^T x_d   [r, in] */
    pc_sgemm(true, false, l->r, l->in, rows, 1.0f, l->h, l->r, xd, l->in, 1.0f, l->dA, l->in);
    if (!dx) return;
    if (!l->last_dropout) {
        /* dx += g A */
        pc_sgemm(false, false, rows, l->in, l->r, 1.0f, l->h, l->r, l->A, l->in, 1.0f, dx, l->in);
        return;
    }
    /* dx += (g A) * mask, through the scratch buffer */
    pc_sgemm(false, false, rows, l->in, l->r, 1.0f, l->h, l->r, l->A, l->in, 0.0f, l->xd, l->in);
    long n = (long)rows * l->in;
    for (long i = 0; i < n; i++) dx[i] += l->xd[i] * l->mask[i];
}
