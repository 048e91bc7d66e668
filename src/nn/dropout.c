#include "nn/dropout.h"
#include "base/profile.h"
#include "base/threads.h"

#include <string.h>

void pc_dropout_mask(float *mask, long n, float p, pc_rng *rng)
{
    pc_op_begin(PC_OP_DROPOUT);
    pc_rng_fill_dropout_mask(rng, mask, n, p, 1.0f / (1.0f - p));
    pc_op_end();
}

void pc_apply_mask(float *y, const float *x, const float *mask, long n)
{
    pc_op_begin(PC_OP_DROPOUT);
    #pragma omp parallel for schedule(static) if (n >= PC_PARALLEL_MIN)
    for (long i = 0; i < n; i++) y[i] = x[i] * mask[i];
    pc_op_end();
}

void pc_dropout_forward(float *y, float *mask, const float *x, long n, float p, bool training, pc_rng *rng)
{
    pc_op_begin(PC_OP_DROPOUT);
    if (training && p > 0) {
        pc_dropout_mask(mask, n, p, rng);
        pc_apply_mask(y, x, mask, n);
    } else if (y != x) {
        memcpy(y, x, sizeof(float) * (size_t)n);
    }
    pc_op_end();
}
