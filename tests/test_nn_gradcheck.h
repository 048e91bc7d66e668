/* Helpers shared by the tests/test_nn_*.c files: random inputs and a central-difference
 * gradient check. Each test defines a scalar loss L = sum(y * w) over the primitive's output y
 * with fixed random weights w, so the analytic gradient is the backward pass applied to dy = w. */
#ifndef PC_TEST_NN_GRADCHECK_H
#define PC_TEST_NN_GRADCHECK_H

#include "testlib.h"
#include "base/rng.h"

#include <stdlib.h>

/* n floats uniform in [lo, hi) from stream `name` (seed 1234). */
static inline void nn_fill(float *x, long n, const char *name, float lo, float hi)
{
    pc_rng r;
    pc_rng_init(&r, 1234, name);
    pc_rng_fill_uniform(&r, x, n, lo, hi);
}

static inline double nn_weighted_sum(const float *y, const float *w, long n)
{
    double s = 0.0;
    for (long i = 0; i < n; i++) s += (double)y[i] * w[i];
    return s;
}

typedef double (*nn_loss_fn)(void *ctx);

/* Central differences of loss() with respect to each x[i], step eps in float (the step actually
 * taken, after rounding, is used as the divisor). Returns max |numeric - analytic| divided by
 * max |analytic| (see pc_test_max_rel_err); x is restored. Returns 1e30 on allocation failure. */
static inline double nn_gradcheck(float *x, long n, const float *analytic, nn_loss_fn loss, void *ctx,
                                  float eps)
{
    float *numeric = malloc(sizeof(float) * (size_t)n);
    if (!numeric) return 1e30;
    for (long i = 0; i < n; i++) {
        const float saved = x[i];
        const float plus = saved + eps, minus = saved - eps;
        x[i] = plus;
        double lp = loss(ctx);
        x[i] = minus;
        double lm = loss(ctx);
        x[i] = saved;
        numeric[i] = (float)((lp - lm) / ((double)plus - (double)minus));
    }
    double err = pc_test_max_rel_err(numeric, analytic, n);
    free(numeric);
    return err;
}

#endif
