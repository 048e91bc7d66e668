#include "nn/activation.h"
#include "base/profile.h"
#include "base/threads.h"
#include "nn/exp.h"

#include <math.h>
#include <stdint.h>

#define INV_SQRT2 0.70710678118654752440f
#define INV_SQRT_2PI 0.39894228040143267794f
#define SQRT_2_OVER_PI 0.79788456080286535588f
#define GELU_TANH_C 0.044715f

/* Phi(x), the standard normal CDF, to ~1e-6 relative in both tails: with z = |x| / sqrt 2,
 * erfc(z) = t exp(-z^2 + P(t)), t = 1 / (1 + z/2) (Chebyshev fit of Numerical Recipes' erfcc, fractional
 * error < 1.2e-7), and Phi(x) = erfc(z) / 2 for x < 0, 1 - erfc(z) / 2 otherwise. */
static inline float normal_cdf(float x)
{
    float z = __builtin_fabsf(x) * INV_SQRT2;
    float t = 1.0f / (1.0f + 0.5f * z);
    float poly = -1.26551223f + t * (1.00002368f + t * (0.37409196f + t * (0.09678418f + t * (-0.18628806f +
                 t * (0.27886807f + t * (-1.13520398f + t * (1.48851587f + t * (-0.82215223f + t * 0.17087277f))))))));
    float half_erfc = 0.5f * t * pc_exp_nonpositive(poly - z * z), upper = 1.0f - half_erfc;
    return x < 0 ? half_erfc : upper;   /* both sides computed: a select the loops can vectorise */
}

/* d/dx [x Phi(x)] = Phi(x) + x phi(x), phi the standard normal density. */
void pc_gelu_forward(float *y, float *slope, const float *x, long n)
{
    pc_op_begin(PC_OP_ACTIVATION);
    #pragma omp parallel for simd schedule(static) if (n >= PC_PARALLEL_MIN)
    for (long i = 0; i < n; i++) {
        const float xi = x[i], cdf = normal_cdf(xi), pdf = INV_SQRT_2PI * pc_exp_nonpositive(-0.5f * xi * xi);
        y[i] = xi * cdf;
        slope[i] = cdf + xi * pdf;
    }
    pc_op_end();
}

void pc_gelu_backward(float *dx, const float *dy, const float *slope, long n)
{
    pc_op_begin(PC_OP_ACTIVATION);
    #pragma omp parallel for simd schedule(static) if (n >= PC_PARALLEL_MIN)
    for (long i = 0; i < n; i++) dx[i] = dy[i] * slope[i];
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

/* 1 / (1 + exp(-x)) from exp of -|x| only (no overflow, vectorises): E / (1 + E) below 0, 1 / (1 + E) above. */
static inline float sigmoid(float x)
{
    float e = pc_exp_nonpositive(-__builtin_fabsf(x)), below = e / (1.0f + e), above = 1.0f / (1.0f + e);
    return x < 0 ? below : above;
}

void pc_silu_forward(float *y, const float *x, long n)
{
    pc_op_begin(PC_OP_ACTIVATION);
    #pragma omp parallel for simd schedule(static) if (n >= PC_PARALLEL_MIN)
    for (long i = 0; i < n; i++) y[i] = x[i] * sigmoid(x[i]);
    pc_op_end();
}

/* d/dx [x s(x)] = s (1 + x (1 - s)), s = sigmoid(x). */
void pc_silu_backward(float *dx, const float *dy, const float *x, long n)
{
    pc_op_begin(PC_OP_ACTIVATION);
    #pragma omp parallel for simd schedule(static) if (n >= PC_PARALLEL_MIN)
    for (long i = 0; i < n; i++) {
        float s = sigmoid(x[i]);
        dx[i] = dy[i] * s * (1.0f + x[i] * (1.0f - s));
    }
    pc_op_end();
}
