/* Element-wise activations with their derivatives. y, x, dy, dx: n floats.
 * Every backward writes dx = dy * f'(.) and allows dx to alias dy. */
#ifndef PC_NN_ACTIVATION_H
#define PC_NN_ACTIVATION_H

/* Exact GELU, torch's default ("gelu"): y = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)). The forward also writes
 * the slope Phi(x) + x phi(x) (the erf it needs is shared), which may overwrite x; backward is then one
 * product, dx = dy * slope. */
void pc_gelu_forward(float *y, float *slope, const float *x, long n);
void pc_gelu_backward(float *dx, const float *dy, const float *slope, long n);

/* Tanh approximation ("gelu_new", "gelu_pytorch_tanh"):
 * y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
void pc_gelu_tanh_forward(float *y, const float *x, long n);
void pc_gelu_tanh_backward(float *dx, const float *dy, const float *x, long n);

/* ReLU; the backward needs only the output y (dy passes where y > 0). */
void pc_relu_forward(float *y, const float *x, long n);
void pc_relu_backward(float *dx, const float *dy, const float *y, long n);

/* SiLU (swish): y = x * sigmoid(x). */
void pc_silu_forward(float *y, const float *x, long n);
void pc_silu_backward(float *dx, const float *dy, const float *x, long n);

#endif
