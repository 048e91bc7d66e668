#include "nn/activation.h"
#include "base/profile.h"
#include "base/threads.h"

#include <math.h>

#define INV_SQRT2 0.70710678118654752440f
#define INV_SQRT_2PI 0.39894228040143267794f
#define SQRT_2_OVER_PI 0.79788456080286535588f
#define GELU_TANH_C 0.044715f

void pc_gelu_forward(float *y, const float *x, long n)
{
    pc_op_begin(PC_OP_ACTIVATION);
    #pragma omp parallel for schedule(static) if (n >= PC_PARALLEL_MIN)
    for (long i = 0; i < n; i++) y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * INV_SQRT2));
    pc_op_end();
}

/* d/dx [x Phi(x)] = Phi(x) + x phi(x), phi the standard normal density. */
void pc_gelu_backward(float *dx, const float *dy, const float *x, long n)
{
    pc_op_begin(PC_OP_ACTIVATION);
    #pragma omp parallel for schedule(static) if (n >= PC_PARALLEL_MIN)
    for (long i = 0; i < n; i++) {
        float cdf = 0.5f * (1.0f + erff(x[i] * INV_SQRT2));
        float pdf = INV_SQRT_2PI * expf(-0.5f * x[i] * x[i]);
        dx[i] = dy[i] * (cdf + x[i] * pdf);
    }
    pc_op_end();
}

void pc_gelu_tanh_forward(float *y, const float *x, long n)
{
    pc_op_begin(PC_OP_ACTIVATION);
    #pragma omp parallel for schedule(static) if (n >= PC_PARALLEL_MIN)
    for (long i = 0; i < n; i++) {
        float u = SQRT_2_OVER_PI * (x[i] + GELU_TANH_C * x[i] * x[i] * x[i]);
        y[i] = 0.5f * x[i] * (1.0f + tanhf(u));
    }
    pc_op_end();
}

/* With t = tanh(u): d/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) du/dx, du/dx = sqrt(2/pi) (1 + 3c x^2). */
void pc_gelu_tanh_backward(float *dx, const float *dy, const float *x, long n)
{
    pc_op_begin(PC_OP_ACTIVATION);
    #pragma omp parallel for schedule(static) if (n >= PC_PARALLEL_MIN)
    for (long i = 0; i < n; i++) {
        float x2 = x[i] * x[i];
        float t = tanhf(SQRT_2_OVER_PI * (x[i] + GELU_TANH_C * x2 * x[i]));
        float du = SQRT_2_OVER_PI * (1.0f + 3.0f * GELU_TANH_C * x2);
        dx[i] = dy[i] * (0.5f * (1.0f + t) + 0.5f * x[i] * (1.0f - t * t) * du);
    }
    pc_op_end();
}

void pc_relu_forward(float *y, const float *x, long n)
{
    pc_op_begin(PC_OP_ACTIVATION);
    #pragma omp parallel for schedule(static) if (n >= PC_PARALLEL_MIN)
    for (long i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
    pc_op_end();
}

void pc_relu_backward(float *dx, const float *dy, const float *y, long n)
{
    pc_op_begin(PC_OP_ACTIVATION);
    #pragma omp parallel for schedule(static) if (n >= PC_PARALLEL_MIN)
    for (long i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
    pc_op_end();
}

void pc_silu_forward(float *y, const float *x, long n)
{
    pc_op_begin(PC_OP_ACTIVATION);
    #pragma omp parallel for schedule(static) if (n >= PC_PARALLEL_MIN)
    for (long i = 0; i < n; i++) y[i] = x[i] / (1.0f + expf(-x[i]));
    pc_op_end();
}

/* d/dx [x s(x)] = s (1 + x (1 - s)), s = sigmoid(x). */
void pc_silu_backward(float *dx, const float *dy, const float *x, long n)
{
    pc_op_begin(PC_OP_ACTIVATION);
    #pragma omp parallel for schedule(static) if (n >= PC_PARALLEL_MIN)
    for (long i = 0; i < n; i++) {
        float s = 1.0f / (1.0f + expf(-x[i]));
        dx[i] = dy[i] * s * (1.0f + x[i] * (1.0f - s));
    }
    pc_op_end();
}
