/* exp(x) for x <= 0 in float, without libm calls, so that the loops calling it vectorise. Shared by the
 * activations and the attention softmax. */
#ifndef PC_NN_EXP_H
#define PC_NN_EXP_H

#include <stdint.h>

/* x = n ln2 + r, |r| <= ln2/2, exp(r) by its degree-6 Taylor polynomial (truncation < 3e-8 relative), 2^n put
 * in the exponent bits; n is rounded by adding and subtracting 1.5 * 2^23. Below -80 (exp(-80) = 1.8e-35) it
 * returns 0 (also for -inf), so results and the products made with them stay clear of subnormals, which cost
 * ~100x on x86. NaN stays NaN. Within 2.4e-7 relative of exp for -80 <= x <= 0 (every float checked). */
static inline float pc_exp_nonpositive(float x)
{
    const float round_magic = 12582912.0f;
    float xc = x < -80.0f ? -80.0f : x;
    float n = (xc * 1.44269504088896341f + round_magic) - round_magic;
    float r = xc - n * 0.693145751953125f - n * 1.42860682030941723e-6f;   /* ln2 in two parts */
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720))))));
    union { uint32_t u; float f; } scale = { .u = (uint32_t)((int32_t)n + 127) << 23 };
    float e = p * scale.f;
    return x < -80.0f ? 0.0f : e;
}

#endif
