#include "nn/linear.h"

#include "kernels/gemm.h"

void pc_linear_forward(pc_linear *lin, float *y, const float *x, int rows, bool training, pc_rng *rng)
{
    pc_linear_xwT(y, x, lin->W, lin->b, rows, lin->in, lin->out);
    if (lin->lora) pc_lora_forward(lin->lora, y, x, rows, training, rng);
}

void pc_linear_backward(pc_linear *lin, float *dx, bool accumulate, const float *dy, const float *x, int rows)
{
    if (lin->dW)  /* dW += dy^T x */
        pc_sgemm(true, false, lin->out, lin->in, rows, 1.0f, dy, lin->out, x, lin->in, 1.0f, lin->dW, lin->in);
    if (lin->db) {
        for (int r = 0; r < rows; r++) {
            const float *row = dy + (long)r * lin->out;
            for (int o = 0; o < lin->out; o++) lin->db[o] += row[o];
        }
    }
    if (dx)  /* dx = dy W */
        pc_sgemm(false, false, rows, lin->in, lin->out, 1.0f, dy, lin->out, lin->W, lin->in,
                 accumulate ? 1.0f : 0.0f, dx, lin->in);
    if (lin->lora) pc_lora_backward(lin->lora, dx, dy, x, rows);
}
