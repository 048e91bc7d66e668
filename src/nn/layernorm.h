/* Layer normalisation over the last dimension, as torch.nn.LayerNorm:
 * y = (x - mean) * rstd * gamma + beta, rstd = 1 / sqrt(var + eps), var biased (divides by dim).
 * All buffers float32, row-major, caller-allocated. */
#ifndef PC_NN_LAYERNORM_H
#define PC_NN_LAYERNORM_H

/* x, y: [rows, dim]; gamma, beta: [dim]; mean, rstd: [rows], saved for the backward pass.
 * Statistics are accumulated in double (two passes), so eps as small as 1e-12 is meaningful. */
void pc_layernorm_forward(float *y, float *mean, float *rstd, const float *x, const float *gamma,
                          const float *beta, int rows, int dim, float eps);

/* dx [rows, dim] is overwritten (it may alias dy). dgamma, dbeta [dim] are accumulated (+=); either may be NULL
 * when that parameter is frozen. Results do not depend on the thread count. */
void pc_layernorm_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                           const float *mean, const float *rstd, const float *gamma, int rows, int dim);

#endif
