/* Sums along one row in double, as PC_SUM_CHAINS interleaved partial sums: a single running sum waits on
 * every add (~4 cycles each: ~3,000 cycles for a 768-wide row), eight keep the adder busy. The order is
 * fixed (element j goes to chain j % 8, the chains are added pairwise), so a result never depends on the
 * thread count. Used by the norms, the softmaxes and the loss. */
#ifndef PC_NN_ROW_SUMS_H
#define PC_NN_ROW_SUMS_H

#include "nn/exp.h"

enum { PC_SUM_CHAINS = 8 };

static inline double pc_chains_total(const double s[PC_SUM_CHAINS])
{
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

/* sum of x[j] */
static inline double pc_row_sum(const float *x, int n)
{
    double s[PC_SUM_CHAINS] = { 0 };
    int j = 0;
    for (; j + PC_SUM_CHAINS <= n; j += PC_SUM_CHAINS)
        for (int u = 0; u < PC_SUM_CHAINS; u++) s[u] += x[j + u];
    for (int u = 0; j < n; j++, u++) s[u] += x[j];
    return pc_chains_total(s);
}

/* sum of exp(x[j] - m) for m >= every x[j] */
static inline double pc_row_sum_exp(const float *x, int n, float m)
{
    double s[PC_SUM_CHAINS] = { 0 };
    int j = 0;
    for (; j + PC_SUM_CHAINS <= n; j += PC_SUM_CHAINS)
        for (int u = 0; u < PC_SUM_CHAINS; u++) s[u] += pc_exp_nonpositive(x[j + u] - m);
    for (int u = 0; j < n; j++, u++) s[u] += pc_exp_nonpositive(x[j] - m);
    return pc_chains_total(s);
}

/* sum of (x[j] - m)^2 */
static inline double pc_row_sum_sq_dev(const float *x, int n, double m)
{
    double s[PC_SUM_CHAINS] = { 0 };
    int j = 0;
    for (; j + PC_SUM_CHAINS <= n; j += PC_SUM_CHAINS)
        for (int u = 0; u < PC_SUM_CHAINS; u++) s[u] += (x[j + u] - m) * (x[j + u] - m);
    for (int u = 0; j < n; j++, u++) s[u] += (x[j] - m) * (x[j] - m);
    return pc_chains_total(s);
}

/* sum of a[j] b[j] c[j], the products in double */
static inline double pc_row_dot3(const float *a, const float *b, const float *c, int n)
{
    double s[PC_SUM_CHAINS] = { 0 };
    int j = 0;
    for (; j + PC_SUM_CHAINS <= n; j += PC_SUM_CHAINS)
        for (int u = 0; u < PC_SUM_CHAINS; u++) s[u] += (double)a[j + u] * b[j + u] * c[j + u];
    for (int u = 0; j < n; j++, u++) s[u] += (double)a[j] * b[j] * c[j];
    return pc_chains_total(s);
}

#endif
