/* merge_and_unload: merged logits equal the un-merged adapter model's, unmerge restores the
 * base weights exactly, and a written merged model loads back with the same logits. */
#include "testlib.h"

#include <stdlib.h>

#include "base/fs.h"
#include "models/merge.h"

static void forward_logits(pc_model *m, float *out, long n)
{
    int32_t ids[8] = {2, 17, 33, 4, 9, 21, 3, 0};
    uint8_t mask[8] = {1, 1, 1, 1, 1, 1, 1, 0};
    pc_batch b = {1, 8, ids, mask, NULL};
    pc_error err = {0};
    float loss;
    CHECK(m->ops->reserve(m, 1, 8, &err) == PEFTC_OK);
    CHECK_MSG(m->ops->forward(m, &b, false, &loss, &err) == PEFTC_OK, "%s", err.msg);
    memcpy(out, m->logits, sizeof(float) * (size_t)n);
}

static void check_merge_with(const char *fixture, const char *adapter_fixture)
{
    char model_dir[512], adapter_dir[512], out_dir[512], path[600];
    snprintf(model_dir, sizeof model_dir, "%s/model", pc_test_fixture(fixture));
    snprintf(adapter_dir, sizeof adapter_dir, "%s/adapter_init", pc_test_fixture(adapter_fixture));
    static int n_merged;
    snprintf(out_dir, sizeof out_dir, "%s/merged-%d", pc_test_tmpdir(), n_merged++);
    pc_error err = {0};
    pc_model *m = NULL, *m2 = NULL;
    pc_peft_model *p = NULL;
    CHECK_MSG(pc_model_load(model_dir, NULL, &m, &err) == PEFTC_OK, "%s", err.msg);
    CHECK_MSG(m && pc_peft_load(m, adapter_dir, &p, &err) == PEFTC_OK, "%s", err.msg);
    if (!p) { pc_model_free(m); return; }
    long n = (long)(m->task == PC_TASK_CAUSAL_LM ? 8 * m->vocab_size : m->num_labels);
    float *unmerged = malloc(sizeof(float) * (size_t)n), *merged = malloc(sizeof(float) * (size_t)n);
    float *again = malloc(sizeof(float) * (size_t)n), *loaded = malloc(sizeof(float) * (size_t)n);
    forward_logits(m, unmerged, n);
    const float *W0[512];
    for (int i = 0; i < m->n_linears && i < 512; i++) W0[i] = m->linears[i]->W;
    pc_merge_state st;
    CHECK(pc_peft_merge(p, &st, &err) == PEFTC_OK);
    CHECK(st.n == p->n_adapters && st.n > 0);
    forward_logits(m, merged, n);
    double rel = pc_test_max_rel_err(merged, unmerged, n);
    CHECK_MSG(rel <= 1e-5, "%s: merged logits differ by %.3g", fixture, rel);
    CHECK(pc_mkdirs(out_dir, &err) == PEFTC_OK);
    snprintf(path, sizeof path, "%s/model.safetensors", out_dir);
    CHECK_MSG(pc_model_save_weights(m, path, PC_DT_F32, &err) == PEFTC_OK, "%s", err.msg);
    pc_peft_unmerge(&st);
    for (int i = 0; i < m->n_linears && i < 512; i++) CHECK(m->linears[i]->W == W0[i]);
    forward_logits(m, again, n);
    CHECK(memcmp(again, unmerged, sizeof(float) * (size_t)n) == 0);  /* exact restore */
    /* the written directory (weights + the base config) loads without the adapter */
    char src[600], dst[600];
    snprintf(src, sizeof src, "%s/config.json", model_dir);
    snprintf(dst, sizeof dst, "%s/config.json", out_dir);
    CHECK(pc_copy_file(src, dst, &err) == PEFTC_OK);
    CHECK_MSG(pc_model_load(out_dir, NULL, &m2, &err) == PEFTC_OK, "%s", err.msg);
    if (m2 && m2->task == PC_TASK_SEQ_CLS) {
        /* heads come from the adapter's modules_to_save copies, written in place */
        forward_logits(m2, loaded, n);
        CHECK_MSG(pc_test_max_rel_err(loaded, merged, n) <= 1e-6, "%s: reloaded merged model differs by %.3g", fixture, pc_test_max_rel_err(loaded, merged, n));
    } else if (m2) {
        forward_logits(m2, loaded, n);
        CHECK_MSG(pc_test_max_rel_err(loaded, merged, n) <= 1e-6, "%s: reloaded merged model differs by %.3g", fixture, pc_test_max_rel_err(loaded, merged, n));
    }
    pc_model_free(m2);
    free(unmerged); free(merged); free(again); free(loaded);
    pc_peft_model_free(p);
    pc_model_free(m);
}

static void check_merge(const char *fixture) { check_merge_with(fixture, fixture); }

TEST(merge_lora_distilbert) { check_merge("distilbert_tiny/qv"); }
TEST(merge_dora_distilbert) { check_merge_with("distilbert_tiny/qv", "dora/distilbert_qv"); }
TEST(merge_rslora_all_linears_distilbert) { check_merge("distilbert_tiny/all"); }
TEST(merge_lora_llama_gqa) { check_merge("causal_tiny/llama_gqa"); }
TEST(merge_lora_conv1d_gpt2) { check_merge("causal_tiny/gpt2"); }
