/* Elementwise vector helpers used across models. */
#ifndef PC_KERNELS_VEC_H
#define PC_KERNELS_VEC_H

/* y[i] += x[i] */
void pc_vec_add(float *y, const float *x, long n);

#endif
