/* Root-mean-square layer normalisation, as transformers' LlamaRMSNorm (in float32):
 *   y = w * (x * rstd),  rstd = 1 / sqrt(mean(x^2) + eps)   (mean over the last dimension).
 * No centring and no bias. All buffers float32, row-major, caller-allocated. */
#ifndef PC_NN_RMSNORM_H
#define PC_NN_RMSNORM_H

/* x, y: [rows, dim] (y may alias x); w: [dim]; rstd: [rows], saved for the backward pass.
 * mean(x^2) is accumulated in double. */
void pc_rmsnorm_forward(float *y, float *rstd, const float *x, const float *w, int rows, int dim, float eps);

/* dx [rows, dim] is overwritten (it may alias dy). dw [dim] is accumulated (+=), or NULL when the weight is
 * frozen. x and rstd are those of the forward pass. Results do not depend on the thread count. */
void pc_rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *rstd, const float *w,
                         int rows, int dim);

#endif
