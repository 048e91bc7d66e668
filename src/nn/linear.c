#include "nn/linear.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "base/fs.h"
#include "base/profile.h"
#include "kernels/gemm.h"
#include "peft/dora.h"

/* y = x W (+ b) with W stored [in, out]. */
static void forward_in_out(const pc_linear *lin, float *y, const float *x, int rows)
{
    for (int r = 0; lin->b && r < rows; r++) memcpy(y + (long)r * lin->out, lin->b, sizeof(float) * (size_t)lin->out);
    pc_sgemm(false, false, rows, lin->out, lin->in, 1.0f, x, lin->in, lin->W, lin->out, lin->b ? 1.0f : 0.0f, y, lin->out);
}

/* The packed copy, when it is still the packing of the current W (merging swaps W for another buffer). */
static const pc_packed_weight *packed_of(const pc_linear *lin)
{
    return lin->packed && lin->packed->src == lin->W ? lin->packed : NULL;
}

static pc_status pack_frozen(pc_linear *lin, pc_error *err)
{
    if (packed_of(lin) || !lin->W || lin->dW || lin->q4) return PEFTC_OK;
    /* fp32 stays on OpenBLAS, unpacked, where it has AVX-512 kernels and the caller saves the packed copies */
    if (lin->pack_dtype == PC_PACK_F32 && !lin->pack_f32 && pc_gemm_openblas_avx512()) return PEFTC_OK;
    pc_linear_release(lin);
    pc_packed_weight *p = malloc(sizeof *p);
    if (!p) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory packing %s", lin->name);
    pc_status s = pc_pack_weight(p, lin->W, lin->w_in_out, lin->in, lin->out, lin->pack_dtype, err);
    if (s) { free(p); return s; }
    lin->packed = p;
    pc_pages_offer(lin->W, sizeof(float) * (size_t)lin->in * (size_t)lin->out);
    return PEFTC_OK;
}

pc_status pc_linear_repack(pc_linear *lin, pc_error *err)
{
    if (!lin->packed || packed_of(lin)) return PEFTC_OK;
    pc_linear_release(lin);
    return pack_frozen(lin, err);
}

void pc_linear_release(pc_linear *lin)
{
    if (!lin->packed) return;
    pc_packed_weight_free(lin->packed);
    free(lin->packed);
    lin->packed = NULL;
}

void pc_scratch_free(pc_scratch *s)
{
    free(s->p);
    free(s->xd);
    memset(s, 0, sizeof *s);
}

static pc_status grow_scratch(pc_scratch *scratch, size_t bytes, size_t xd_floats, pc_error *err)
{
    if (bytes > scratch->bytes) {
        void *p = realloc(scratch->p, bytes);
        if (!p) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for 4-bit product scratch (%zu bytes)", bytes);
        scratch->p = p;
        scratch->bytes = bytes;
    }
    if (xd_floats > scratch->xd_floats) {
        float *xd = realloc(scratch->xd, sizeof(float) * xd_floats);
        if (!xd) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for the LoRA dropout input (%zu floats)", xd_floats);
        scratch->xd = xd;
        scratch->xd_floats = xd_floats;
    }
    return PEFTC_OK;
}

pc_status pc_linear_reserve(pc_linear *lin, int rows, pc_scratch *scratch, pc_error *err)
{
    if (lin->lora) PC_TRY(pc_lora_reserve(lin->lora, rows, err));
    PC_TRY(pack_frozen(lin, err));
    size_t bytes = lin->q4 ? pc_q4_scratch_bytes(lin->q4, rows, lin->q4_compute, omp_get_max_threads()) : 0;
    /* only DoRA forms x_d (LoRA's products mask x as they read it) */
    size_t xd = lin->lora && lin->lora->m && lin->lora->dropout > 0 ? (size_t)rows * (size_t)lin->in : 0;
    PC_TRY(grow_scratch(scratch, bytes, xd, err));
    lin->scratch = scratch;
    return PEFTC_OK;
}

/* The adapter, pointed at the shared x_d buffer (which pc_linear_reserve sized; a later reserve may move it). */
static pc_lora *adapter(const pc_linear *lin)
{
    if (lin->lora && lin->scratch) lin->lora->xd = lin->scratch->xd;
    return lin->lora;
}

pc_base_weight pc_linear_base(const pc_linear *lin)
{
    pc_base_weight w = { .W = lin->W, .w_in_out = lin->w_in_out, .q4 = lin->q4, .q4_compute = lin->q4_compute,
                         .packed = packed_of(lin) };
    if (lin->scratch) {
        w.scratch = lin->scratch->p;
        w.scratch_bytes = lin->scratch->bytes;
    }
    return w;
}

/* y = x deq(W)^T (+ b) for a 4-bit weight; the fused kernel cannot fail with reserved scratch. */
static void forward_4bit(const pc_linear *lin, float *y, const float *x, int rows)
{
    for (int r = 0; lin->b && r < rows; r++) memcpy(y + (long)r * lin->out, lin->b, sizeof(float) * (size_t)lin->out);
    pc_q4_matmul_xwT(lin->q4, lin->q4_compute, x, rows, y, lin->b != NULL, lin->scratch->p, lin->scratch->bytes, NULL);
}

static void forward_packed(const pc_linear *lin, const pc_packed_weight *p, float *y, const float *x, int rows)
{
    pc_packed_xwT(p, x, rows, y, lin->b, false);
}

void pc_linear_forward(pc_linear *lin, float *y, const float *x, int rows, bool training, pc_rng *rng)
{
    pc_op_begin(lin->q4 ? PC_OP_MATMUL_4BIT : PC_OP_MATMUL);
    const pc_packed_weight *p = packed_of(lin);
    if (lin->q4) forward_4bit(lin, y, x, rows);
    else if (p) forward_packed(lin, p, y, x, rows);
    else if (lin->w_in_out) forward_in_out(lin, y, x, rows);
    else pc_linear_xwT(y, x, lin->W, lin->b, rows, lin->in, lin->out);
    pc_op_begin(PC_OP_LORA);
    pc_lora *lora = adapter(lin);
    if (lora && lora->m) {
        pc_base_weight w = pc_linear_base(lin);
        pc_dora_forward(lora, y, x, &w, lin->b, rows, training, rng);
    } else if (lora) {
        pc_lora_forward(lora, y, x, rows, training, rng);
    }
    pc_op_end();
    pc_op_end();
}

void pc_linear_backward(pc_linear *lin, float *dx, bool accumulate, const float *dy, const float *x, int rows)
{
    pc_op_begin(lin->q4 ? PC_OP_MATMUL_4BIT : PC_OP_MATMUL);
    if (lin->dW && lin->w_in_out)  /* dW += x^T dy */
        pc_sgemm(true, false, lin->in, lin->out, rows, 1.0f, x, lin->in, dy, lin->out, 1.0f, lin->dW, lin->out);
    else if (lin->dW)  /* dW += dy^T x */
        pc_sgemm(true, false, lin->out, lin->in, rows, 1.0f, dy, lin->out, x, lin->in, 1.0f, lin->dW, lin->in);
    if (lin->db) {
        for (int r = 0; r < rows; r++) {
            const float *row = dy + (long)r * lin->out;
            for (int o = 0; o < lin->out; o++) lin->db[o] += row[o];
        }
    }
    pc_lora *lora = adapter(lin);
    if (lora && lora->m) {  /* DoRA rescales the base product: it owns the whole input gradient */
        pc_base_weight w = pc_linear_base(lin);
        pc_op_begin(PC_OP_LORA);
        pc_dora_backward(lora, dx, accumulate, dy, x, &w, rows);
        pc_op_end();
        pc_op_end();
        return;
    }
    float beta = accumulate ? 1.0f : 0.0f;
    if (dx && lin->q4)  /* dx = dy deq(W); a 4-bit weight gets no gradient */
        pc_q4_matmul_dyW(lin->q4, lin->q4_compute, dy, rows, dx, accumulate, lin->scratch->p, lin->scratch->bytes, NULL);
    else if (dx && packed_of(lin))
        pc_packed_dyW(packed_of(lin), dy, rows, dx, accumulate);
    else if (dx && lin->w_in_out)  /* dx = dy W^T */
        pc_sgemm(false, true, rows, lin->in, lin->out, 1.0f, dy, lin->out, lin->W, lin->out, beta, dx, lin->in);
    else if (dx)  /* dx = dy W */
        pc_sgemm(false, false, rows, lin->in, lin->out, 1.0f, dy, lin->out, lin->W, lin->in, beta, dx, lin->in);
    pc_op_begin(PC_OP_LORA);
    if (lora) pc_lora_backward(lora, dx, dy, x, rows);
    pc_op_end();
    pc_op_end();
}
