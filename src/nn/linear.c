#include "nn/linear.h"

#include <string.h>

#include "kernels/gemm.h"

/* y = x W (+ b) with W stored [in, out]. */
static void forward_in_out(const pc_linear *lin, float *y, const float *x, int rows)
{
    for (int r = 0; lin->b && r < rows; r++) memcpy(y + (long)r * lin->out, lin->b, sizeof(float) * (size_t)lin->out);
    pc_sgemm(false, false, rows, lin->out, lin->in, 1.0f, x, lin->in, lin->W, lin->out, lin->b ? 1.0f : 0.0f, y, lin->out);
}

void pc_linear_forward(pc_linear *lin, float *y, const float *x, int rows, bool training, pc_rng *rng)
{
    if (lin->w_in_out) forward_in_out(lin, y, x, rows);
    else pc_linear_xwT(y, x, lin->W, lin->b, rows, lin->in, lin->out);
    if (lin->lora) pc_lora_forward(lin->lora, y, x, rows, training, rng);
}

void pc_linear_backward(pc_linear *lin, float *dx, bool accumulate, const float *dy, const float *x, int rows)
{
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
    float beta = accumulate ? 1.0f : 0.0f;
    if (dx && lin->w_in_out)  /* dx = dy W^T */
        pc_sgemm(false, true, rows, lin->in, lin->out, 1.0f, dy, lin->out, lin->W, lin->out, beta, dx, lin->in);
    else if (dx)  /* dx = dy W */
        pc_sgemm(false, false, rows, lin->in, lin->out, 1.0f, dy, lin->out, lin->W, lin->in, beta, dx, lin->in);
    if (lin->lora) pc_lora_backward(lin->lora, dx, dy, x, rows);
}
