#include "nn/rmsnorm.h"
#include "base/profile.h"
#include "base/threads.h"
#include "nn/row_sums.h"

#include <math.h>
#include <stddef.h>

void pc_rmsnorm_forward(float *y, float *rstd, const float *x, const float *w, int rows, int dim, float eps)
{
    pc_op_begin(PC_OP_NORM);
    #pragma omp parallel for schedule(static) if ((long)rows * dim >= PC_PARALLEL_MIN)
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * dim;
        float *yr = y + (size_t)r * dim;
        double sq = pc_row_sum_sq_dev(xr, dim, 0.0);
        const float rs = (float)(1.0 / sqrt(sq / dim + (double)eps));
        for (int j = 0; j < dim; j++) yr[j] = w[j] * (xr[j] * rs);
        rstd[r] = rs;
    }
    pc_op_end();
}

/* With y_j = w_j x_j r and r = (mean(x^2) + eps)^(-1/2), dr/dx_k = -r^3 x_k / dim, so per row
 * dx_k = r w_k dy_k - x_k (r^3 / dim) sum_j dy_j w_j x_j. */
static void rmsnorm_backward_input(float *dx, const float *dy, const float *x, const float *rstd, const float *w,
                                   int rows, int dim)
{
    #pragma omp parallel for schedule(static) if ((long)rows * dim >= PC_PARALLEL_MIN)
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * dim, *dyr = dy + (size_t)r * dim;
        float *dxr = dx + (size_t)r * dim;
        const double rs = rstd[r];
        double dot = pc_row_dot3(dyr, w, xr, dim);
        const float c = (float)(dot * rs * rs * rs / dim);
        const float rf = (float)rs;
        for (int j = 0; j < dim; j++) dxr[j] = rf * w[j] * dyr[j] - xr[j] * c;
    }
}

/* dw_j += sum over rows of dy_j x_j r. Parallel over column blocks with rows summed in order,
 * so the sums are the same for any thread count. */
static void rmsnorm_backward_weight(float *dw, const float *dy, const float *x, const float *rstd, int rows, int dim)
{
    enum { BLOCK = 64 };
    const int blocks = (dim + BLOCK - 1) / BLOCK;
    #pragma omp parallel for schedule(static) if ((long)rows * dim >= PC_PARALLEL_MIN)
    for (int b = 0; b < blocks; b++) {
        const int j0 = b * BLOCK, j1 = j0 + BLOCK < dim ? j0 + BLOCK : dim;
        double acc[BLOCK] = {0};
        for (int r = 0; r < rows; r++) {
            const float *xr = x + (size_t)r * dim, *dyr = dy + (size_t)r * dim;
            const float rs = rstd[r];
            for (int j = j0; j < j1; j++) acc[j - j0] += (double)dyr[j] * (xr[j] * rs);
        }
        for (int j = j0; j < j1; j++) dw[j] += (float)acc[j - j0];
    }
}

void pc_rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *rstd, const float *w,
                         int rows, int dim)
{
    pc_op_begin(PC_OP_NORM);
    if (dw) rmsnorm_backward_weight(dw, dy, x, rstd, rows, dim);
    rmsnorm_backward_input(dx, dy, x, rstd, w, rows, dim);  /* last: dx may alias dy */
    pc_op_end();
}
