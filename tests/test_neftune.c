/* NEFTune: the noise added equals a reference drawn from the same stream, has the right
 * range and moments, and never touches evaluation. */
#include "testlib.h"

#include <stdlib.h>

#include "models/model.h"
#include "peft/neftune.h"

TEST(neftune_adds_the_streams_uniform_noise_scaled_by_alpha_over_sqrt_Ld)
{
    int B = 2, L = 5, d = 8;
    long n = (long)B * L * d;
    float x[80], want[80];
    for (long i = 0; i < n; i++) x[i] = want[i] = (float)i * 0.01f;
    pc_rng rng, ref;
    pc_rng_init(&rng, 7, "neftune");
    ref = rng;
    float mag = 5.0f / sqrtf((float)(L * d));
    float noise[80];
    pc_rng_fill_uniform(&ref, noise, n, -mag, mag);
    for (long i = 0; i < n; i++) want[i] += noise[i];
    pc_neftune_apply(x, B, L, d, 5.0f, &rng);
    CHECK(memcmp(x, want, sizeof x) == 0);
}

TEST(neftune_noise_statistics)
{
    int B = 4, L = 128, d = 64;
    long n = (long)B * L * d;
    float *x = calloc((size_t)n, sizeof *x);
    pc_rng rng;
    pc_rng_init(&rng, 1, "neftune");
    float alpha = 5.0f;
    pc_neftune_apply(x, B, L, d, alpha, &rng);
    double mag = alpha / sqrt((double)L * d), sum = 0, sq = 0, mx = 0;
    for (long i = 0; i < n; i++) { sum += x[i]; sq += (double)x[i] * x[i]; mx = fmax(mx, fabs(x[i])); }
    double mean = sum / n, var = sq / n - mean * mean, want_var = alpha * alpha / (3.0 * L * d);
    CHECK(mx <= mag);
    CHECK(mx > 0.99 * mag);
    CHECK_MSG(fabs(mean) < 0.01 * mag, "mean %g", mean);
    CHECK_MSG(fabs(var / want_var - 1) < 0.02, "variance %g, expected %g", var, want_var);
    free(x);
}

TEST(neftune_off_in_eval_on_in_training)
{
    const char *dir = pc_test_shared("models/stories260K");
    if (!dir) SKIP("../shared/models/stories260K absent: NEFTune model-level check not run");
    char d[512];
    snprintf(d, sizeof d, "%s", dir);
    pc_model *m = NULL;
    pc_error err = {0};
    CHECK_MSG(pc_model_load(d, NULL, &m, &err) == PEFTC_OK, "%s", err.msg);
    if (!m) return;
    int32_t ids[6] = {1, 403, 407, 261, 378, 432};
    uint8_t mask[6] = {1, 1, 1, 1, 1, 1};
    pc_batch b = {1, 6, ids, mask, NULL};
    int V = m->vocab_size;
    float loss, *plain = malloc(sizeof(float) * 6 * V);
    CHECK(m->ops->reserve(m, 1, 6, &err) == PEFTC_OK);
    CHECK(m->ops->forward(m, &b, false, &loss, &err) == PEFTC_OK);
    memcpy(plain, m->logits, sizeof(float) * 6 * V);
    m->neftune_noise_alpha = 5.0f;
    CHECK(m->ops->forward(m, &b, false, &loss, &err) == PEFTC_OK);
    CHECK(memcmp(plain, m->logits, sizeof(float) * 6 * V) == 0);      /* eval: no noise */
    CHECK(m->ops->forward(m, &b, true, &loss, &err) == PEFTC_OK);
    CHECK(memcmp(plain, m->logits, sizeof(float) * 6 * V) != 0);      /* training: noise */
    m->neftune_noise_alpha = 0.0f;
    CHECK(m->ops->forward(m, &b, true, &loss, &err) == PEFTC_OK);     /* no dropout in this Llama */
    CHECK(memcmp(plain, m->logits, sizeof(float) * 6 * V) == 0);
    free(plain);
    pc_model_free(m);
}
