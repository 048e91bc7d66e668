#include "nn/layernorm.h"
#include "base/profile.h"
#include "base/threads.h"
#include "nn/row_sums.h"

#include <math.h>
#include <stddef.h>

void pc_layernorm_forward(float *y, float *mean, float *rstd, const float *x, const float *gamma,
                          const float *beta, int rows, int dim, float eps)
{
    pc_op_begin(PC_OP_NORM);
    #pragma omp parallel for schedule(static) if ((long)rows * dim >= PC_PARALLEL_MIN)
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * dim;
        float *yr = y + (size_t)r * dim;
        double m = pc_row_sum(xr, dim) / dim;
        double sq = pc_row_sum_sq_dev(xr, dim, m);
        float rs = (float)(1.0 / sqrt(sq / dim + (double)eps));
        float mf = (float)m;
        for (int j = 0; j < dim; j++) yr[j] = (xr[j] - mf) * rs * gamma[j] + beta[j];
        mean[r] = mf;
        rstd[r] = rs;
    }
    pc_op_end();
}

/* sum_g += g, sum_gx += g * xhat for one element */
static inline void add_g(double *sum_g, double *sum_gx, float g, float x, float mean, float rstd)
{
    *sum_g += g;
    *sum_gx += (double)g * ((x - mean) * rstd);
}

/* With xhat = (x - mean) * rstd and g = dy * gamma (per row):
 * dx = rstd * (g - mean(g) - xhat * mean(g * xhat)). */
static void layernorm_backward_input(float *dx, const float *dy, const float *x, const float *mean,
                                     const float *rstd, const float *gamma, int rows, int dim)
{
    #pragma omp parallel for schedule(static) if ((long)rows * dim >= PC_PARALLEL_MIN)
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * dim, *dyr = dy + (size_t)r * dim;
        float *dxr = dx + (size_t)r * dim;
        const float m = mean[r], rs = rstd[r];
        double sum_g[PC_SUM_CHAINS] = { 0 }, sum_gx[PC_SUM_CHAINS] = { 0 };   /* chains as in row_sums.h */
        int j = 0;
        for (; j + PC_SUM_CHAINS <= dim; j += PC_SUM_CHAINS)
            for (int u = 0; u < PC_SUM_CHAINS; u++)
                add_g(&sum_g[u], &sum_gx[u], dyr[j + u] * gamma[j + u], xr[j + u], m, rs);
        for (int u = 0; j < dim; j++, u++) add_g(&sum_g[u], &sum_gx[u], dyr[j] * gamma[j], xr[j], m, rs);
        const float mean_g = (float)(pc_chains_total(sum_g) / dim), mean_gx = (float)(pc_chains_total(sum_gx) / dim);
        for (int j = 0; j < dim; j++) {
            float xhat = (xr[j] - m) * rs;
            dxr[j] = rs * (dyr[j] * gamma[j] - mean_g - xhat * mean_gx);
        }
    }
}

/* dgamma += sum over rows of dy * xhat, dbeta += sum over rows of dy. Parallel over column
 * blocks with rows summed in order, so the sums are the same for any thread count. */
static void layernorm_backward_params(float *dgamma, float *dbeta, const float *dy, const float *x,
                                      const float *mean, const float *rstd, int rows, int dim)
{
    enum { BLOCK = 64 };
    const int blocks = (dim + BLOCK - 1) / BLOCK;
    #pragma omp parallel for schedule(static) if ((long)rows * dim >= PC_PARALLEL_MIN)
    for (int b = 0; b < blocks; b++) {
        const int j0 = b * BLOCK, j1 = j0 + BLOCK < dim ? j0 + BLOCK : dim;
        double acc_g[BLOCK] = {0}, acc_b[BLOCK] = {0};
        for (int r = 0; r < rows; r++) {
            const float *xr = x + (size_t)r * dim, *dyr = dy + (size_t)r * dim;
            const float m = mean[r], rs = rstd[r];
            for (int j = j0; j < j1; j++) {
                acc_g[j - j0] += (double)dyr[j] * ((xr[j] - m) * rs);
                acc_b[j - j0] += dyr[j];
            }
        }
        for (int j = j0; j < j1; j++) {
            if (dgamma) dgamma[j] += (float)acc_g[j - j0];
            if (dbeta) dbeta[j] += (float)acc_b[j - j0];
        }
    }
}

void pc_layernorm_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                           const float *mean, const float *rstd, const float *gamma, int rows, int dim)
{
    pc_op_begin(PC_OP_NORM);
    if (dgamma || dbeta) layernorm_backward_params(dgamma, dbeta, dy, x, mean, rstd, rows, dim);
    layernorm_backward_input(dx, dy, x, mean, rstd, gamma, rows, dim);  /* last: dx may alias dy */
    pc_op_end();
}
