#include "peft/neftune.h"

#include <math.h>
#include <stdlib.h>

void pc_neftune_apply(float *x, int B, int L, int d, float alpha, pc_rng *rng)
{
    if (alpha <= 0) return;
    float mag = alpha / sqrtf((float)L * (float)d);   /* mag_norm = alpha / sqrt(L * d) */
    long n = (long)B * L * d;
    /* Draw in chunks into a small buffer so no batch-sized allocation is needed. */
    float noise[4096];
    for (long i = 0; i < n; i += 4096) {
        long len = n - i < 4096 ? n - i : 4096;
        pc_rng_fill_uniform(rng, noise, len, -mag, mag);
        for (long j = 0; j < len; j++) x[i + j] += noise[j];
    }
}
