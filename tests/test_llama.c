/* LlamaForCausalLM on the real pretrained stories260K (../shared/models/stories260K):
 * greedy generation from BOS and the logits of a prompt against reference_outputs.json
 * (a float64 numpy forward), and KV-cache decoding against the full forward. */
#include "testlib.h"

#include <stdlib.h>

#include "formats/json.h"
#include "models/model.h"

typedef struct stories {
    pc_model *m;
    cJSON *ref;
} stories;

static int open_stories(stories *s)
{
    memset(s, 0, sizeof *s);
    const char *dir = pc_test_shared("models/stories260K");
    if (!dir) return 1;
    char d[512], path[600];
    snprintf(d, sizeof d, "%s", dir);
    pc_error err = {0};
    CHECK_MSG(pc_model_load(d, NULL, &s->m, &err) == PEFTC_OK, "%s", err.msg);
    snprintf(path, sizeof path, "%s/reference_outputs.json", d);
    CHECK_MSG(pc_json_parse_file(path, &s->ref, &err) == PEFTC_OK, "%s", err.msg);
    return s->m && s->ref ? 0 : -1;
}

static void close_stories(stories *s)
{
    pc_model_free(s->m);
    cJSON_Delete(s->ref);
}

static int read_ids(const cJSON *arr, int32_t *ids, int cap)
{
    int n = 0;
    for (const cJSON *e = arr ? arr->child : NULL; e && n < cap; e = e->next) ids[n++] = (int32_t)e->valuedouble;
    return n;
}

static int argmax(const float *v, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++) if (v[i] > v[best]) best = i;
    return best;
}

TEST(llama_stories260k_greedy_from_bos_matches_reference)
{
    stories s;
    int rc = open_stories(&s);
    if (rc == 1) SKIP("../shared/models/stories260K absent: greedy generation reference not checked");
    if (rc == 0) {
        int32_t want[512];
        const cJSON *g = cJSON_GetObjectItem(s.ref, "greedy_from_bos_200_steps");
        int n = read_ids(cJSON_GetObjectItem(g, "ids"), want, 512);
        CHECK(n > 100);
        pc_error err = {0};
        CHECK(s.m->ops->cache_reset(s.m, n, &err) == PEFTC_OK);
        int32_t tok = want[0];
        int mismatches = 0;
        for (int i = 1; i < n && !mismatches; i++) {
            CHECK_MSG(s.m->ops->decode(s.m, &tok, 1, &err) == PEFTC_OK, "%s", err.msg);
            tok = argmax(s.m->logits, s.m->vocab_size);
            if (tok != want[i]) { mismatches++; CHECK_MSG(0, "step %d: got token %d, expected %d", i, tok, want[i]); }
        }
    }
    close_stories(&s);
}

static void check_logits_row(const cJSON *want, const float *got, int V, const char *what)
{
    float ref[512];
    int n = 0;
    for (const cJSON *e = want ? want->child : NULL; e && n < 512; e = e->next) ref[n++] = (float)e->valuedouble;
    CHECK_INT_EQ(n, V);
    double rel = pc_test_max_rel_err(got, ref, V);
    CHECK_MSG(rel <= 1e-5, "%s: max relative error %.3g", what, rel);
}

TEST(llama_stories260k_prompt_logits_match_reference_and_kv_cache)
{
    stories s;
    int rc = open_stories(&s);
    if (rc == 1) SKIP("../shared/models/stories260K absent: prompt logits reference not checked");
    if (rc == 0) {
        const cJSON *lp = cJSON_GetObjectItem(s.ref, "logits_prompt");
        int32_t ids[128], argmaxes[128];
        int T = read_ids(cJSON_GetObjectItem(lp, "ids_with_bos"), ids, 128);
        int na = read_ids(cJSON_GetObjectItem(lp, "argmax_per_position"), argmaxes, 128);
        CHECK(T > 1 && na == T);
        uint8_t mask[128];
        memset(mask, 1, sizeof mask);
        pc_batch b = {1, T, ids, mask, NULL};
        pc_error err = {0};
        float loss;
        int V = s.m->vocab_size;
        CHECK(s.m->ops->reserve(s.m, 1, T, &err) == PEFTC_OK);
        CHECK_MSG(s.m->ops->forward(s.m, &b, false, &loss, &err) == PEFTC_OK, "%s", err.msg);
        check_logits_row(cJSON_GetObjectItem(lp, "first_position_logits"), s.m->logits, V, "first position");
        check_logits_row(cJSON_GetObjectItem(lp, "last_position_logits"), s.m->logits + (long)(T - 1) * V, V, "last position");
        for (int t = 0; t < T; t++) CHECK_INT_EQ(argmax(s.m->logits + (long)t * V, V), argmaxes[t]);
        float *full_last = malloc(sizeof(float) * (size_t)V);
        memcpy(full_last, s.m->logits + (long)(T - 1) * V, sizeof(float) * (size_t)V);
        CHECK(s.m->ops->cache_reset(s.m, T, &err) == PEFTC_OK);
        CHECK(s.m->ops->decode(s.m, ids, T, &err) == PEFTC_OK);
        double rel = pc_test_max_rel_err(s.m->logits, full_last, V);
        CHECK_MSG(rel <= 1e-5, "KV-cache logits differ from the full forward: %.3g", rel);
        free(full_last);
    }
    close_stories(&s);
}
