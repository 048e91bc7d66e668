/* QLoRA at the model level: a 4-bit model equals the fp32 model whose weights are the
 * dequantized 4-bit ones (logits and LoRA gradients), a written bitsandbytes checkpoint loads
 * back bit for bit, and malformed quantized checkpoints are clear errors. */
#include "testlib.h"

#include <stdlib.h>

#include "base/fs.h"
#include "models/merge.h"
#include "models/quantized.h"

static pc_model *load_fixture_model(const char *fixture)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/model", pc_test_fixture(fixture));
    pc_model *m = NULL;
    pc_error err = {0};
    CHECK_MSG(pc_model_load(dir, NULL, &m, &err) == PEFTC_OK, "%s", err.msg);
    return m;
}

static void quantize(pc_model *m, pc_q4_type type, bool nested)
{
    pc_quant_options o = { type, nested, PC_Q4_COMPUTE_F32, NULL, 0 };
    pc_error err = {0};
    CHECK_MSG(pc_model_quantize_4bit(m, &o, &err) == PEFTC_OK, "%s", err.msg);
}

/* ref's Linears get the dequantized weights of q's 4-bit Linears (owned by the caller's list). */
static int use_dequantized(pc_model *ref, const pc_model *q, float **owned)
{
    int n = 0;
    for (int i = 0; i < q->n_linears; i++) {
        const pc_linear *ql = q->linears[i];
        if (!ql->q4) continue;
        float *w = malloc(sizeof(float) * (size_t)ql->in * ql->out);
        pc_q4_dequantize(ql->q4, w);
        ref->linears[i]->W = w;
        ref->linears[i]->w_in_out = false;
        owned[n++] = w;
    }
    return n;
}

/* logits_copy (NULL, or room for 12 rows of the vocabulary) gets the forward's logits: backward turns them into
 * their gradient. */
static void forward_backward(pc_model *m, pc_peft_model *p, float *loss, float *logits_copy)
{
    int32_t ids[12] = {5, 17, 33, 4, 9, 21, 3, 8, 11, 2, 0, 0}, labels[12] = {5, 17, 33, 4, 9, 21, 3, 8, 11, 2, -100, -100};
    uint8_t mask[12] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0};
    pc_batch b = {2, 6, ids, mask, labels};
    pc_error err = {0};
    CHECK(m->ops->reserve(m, 2, 6, &err) == PEFTC_OK);
    pc_param_list_zero_grad(&p->trainable);
    CHECK_MSG(m->ops->forward(m, &b, false, loss, &err) == PEFTC_OK, "%s", err.msg);
    if (logits_copy) memcpy(logits_copy, m->logits, sizeof(float) * (size_t)(m->n_loss_tokens * m->vocab_size));
    m->ops->backward(m, &b, 1.0f);
}

static void check_4bit_equals_dequantized(const char *fixture, pc_q4_type type, bool nested)
{
    pc_model *q = load_fixture_model(fixture), *ref = load_fixture_model(fixture);
    if (!q || !ref) { pc_model_free(q); pc_model_free(ref); return; }
    quantize(q, type, nested);
    float *owned[512];
    int n_owned = use_dequantized(ref, q, owned);
    CHECK(n_owned > 0);
    char adapter[512];
    snprintf(adapter, sizeof adapter, "%s/adapter_init", pc_test_fixture(fixture));
    pc_peft_model *pq = NULL, *pr = NULL;
    pc_error err = {0};
    CHECK_MSG(pc_peft_load(q, adapter, &pq, &err) == PEFTC_OK, "%s", err.msg);
    CHECK_MSG(pc_peft_load(ref, adapter, &pr, &err) == PEFTC_OK, "%s", err.msg);
    if (pq && pr) {
        float lq, lr;
        float *logits_q = malloc(sizeof(float) * 12 * (size_t)q->vocab_size);
        float *logits_r = malloc(sizeof(float) * 12 * (size_t)q->vocab_size);
        forward_backward(q, pq, &lq, logits_q);
        long nlog = (long)q->n_loss_tokens * q->vocab_size;   /* the rows with a target (models/causal_lm.h) */
        CHECK(q->n_loss_tokens == 8);
        forward_backward(ref, pr, &lr, logits_r);
        CHECK_MSG(pc_test_max_rel_err(logits_q, logits_r, nlog) <= 1e-5, "%s: 4-bit logits differ", fixture);
        CHECK_NEAR(lq, lr, 1e-5);
        for (int i = 0; i < pq->trainable.n; i++) {
            double rel = pc_test_max_rel_err(pq->trainable.items[i].grad, pr->trainable.items[i].grad,
                                             pq->trainable.items[i].numel);
            CHECK_MSG(rel <= 1e-4, "%s: gradient of %s differs by %.3g", fixture, pq->trainable.items[i].name, rel);
        }
        free(logits_q);
        free(logits_r);
    }
    pc_peft_model_free(pq);
    pc_peft_model_free(pr);
    for (int i = 0; i < n_owned; i++) free(owned[i]);
    pc_model_free(q);
    pc_model_free(ref);
}

TEST(qlora_nf4_double_quant_llama_equals_dequantized_fp32)
{
    check_4bit_equals_dequantized("causal_tiny/llama_gqa", PC_Q4_NF4, true);
}
TEST(qlora_fp4_gpt2_conv1d_equals_dequantized_fp32)
{
    check_4bit_equals_dequantized("causal_tiny/gpt2", PC_Q4_FP4, false);
}

/* Writes m (with its 4-bit Linears) and the fixture's config.json into dir. */
static void save_quantized(pc_model *m, const char *fixture, const char *dir)
{
    char path[600], src[600];
    pc_error err = {0};
    CHECK(pc_mkdirs(dir, &err) == PEFTC_OK);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    pc_quant_options o = { PC_Q4_NF4, true, PC_Q4_COMPUTE_F32, NULL, 0 };
    CHECK_MSG(pc_model_save_weights_4bit(m, path, PC_DT_F32, &o, &err) == PEFTC_OK, "%s", err.msg);
    snprintf(src, sizeof src, "%s/model/config.json", pc_test_fixture(fixture));
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK(pc_copy_file(src, path, &err) == PEFTC_OK);
}

TEST(qlora_prequantized_checkpoint_round_trip)
{
    pc_model *m = load_fixture_model("causal_tiny/llama_gqa");
    if (!m) return;
    quantize(m, PC_Q4_NF4, true);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/prequantized", pc_test_tmpdir());
    save_quantized(m, "causal_tiny/llama_gqa", dir);
    pc_model *back = NULL;
    pc_error err = {0};
    CHECK_MSG(pc_model_load(dir, NULL, &back, &err) == PEFTC_OK, "%s", err.msg);
    for (int i = 0; back && i < m->n_linears; i++) {
        const pc_q4_weight *a = m->linears[i]->q4, *b = back->linears[i]->q4;
        CHECK((a == NULL) == (b == NULL));
        if (!a || !b) continue;
        CHECK(a->type == b->type && a->nested == b->nested && a->offset == b->offset);
        CHECK(memcmp(a->packed, b->packed, (size_t)(pc_q4_numel(a) + 1) / 2) == 0);
        CHECK(memcmp(a->qabsmax, b->qabsmax, (size_t)pc_q4_blocks(a)) == 0);
        CHECK(memcmp(a->absmax2, b->absmax2, sizeof(float) * (size_t)pc_q4_nested_blocks(a)) == 0);
        /* Loaded weights are views of the mapped file, not copies (issue 4's memory budget): pc_st_write puts
         * the f32 tensors first, so every array is aligned and nothing needs copying. */
        CHECK_INT_EQ(b->owned, 0);
    }
    pc_model_free(back);
    pc_model_free(m);
}

/* Rewrites src into dst with one tensor replaced (by name) by `item` (or dropped when item.name is NULL). */
static void rewrite(const char *src, const char *dst, const char *name, pc_st_item item)
{
    pc_safetensors *st = NULL;
    pc_error err = {0};
    CHECK(pc_st_open(src, &st, &err) == PEFTC_OK);
    if (!st) return;
    int n = pc_st_count(st), k = 0;
    pc_st_item *items = calloc((size_t)n, sizeof *items);
    for (int i = 0; i < n; i++) {
        const pc_st_tensor *t = pc_st_at(st, i);
        if (strcmp(t->name, name) == 0) { if (item.name) items[k++] = item; continue; }
        items[k] = (pc_st_item){ .name = t->name, .dtype = t->dtype, .ndim = t->ndim, .data = t->data };
        memcpy(items[k].shape, t->shape, sizeof t->shape);
        k++;
    }
    CHECK_MSG(pc_st_write(dst, items, k, NULL, &err) == PEFTC_OK, "%s", err.msg);
    free(items);
    pc_st_close(st);
}

static void expect_load_error(const char *dir, const char *needle)
{
    pc_model *m = NULL;
    pc_error err = {0};
    CHECK(pc_model_load(dir, NULL, &m, &err) != PEFTC_OK);
    CHECK(m == NULL);
    CHECK_CONTAINS(err.msg, needle);
    pc_model_free(m);
}

TEST(qlora_malformed_quantized_checkpoints_are_clear_errors)
{
    pc_model *m = load_fixture_model("causal_tiny/llama_gqa");
    if (!m) return;
    quantize(m, PC_Q4_NF4, true);
    char good[512], bad[512], src[600], dst[600];
    snprintf(good, sizeof good, "%s/q_good", pc_test_tmpdir());
    snprintf(bad, sizeof bad, "%s/q_bad", pc_test_tmpdir());
    save_quantized(m, "causal_tiny/llama_gqa", good);
    save_quantized(m, "causal_tiny/llama_gqa", bad);   /* for its config.json */
    pc_model_free(m);
    snprintf(src, sizeof src, "%s/model.safetensors", good);
    snprintf(dst, sizeof dst, "%s/model.safetensors", bad);
    const char *module = "model.layers.0.self_attn.q_proj.weight";
    char key[200];
    uint8_t absmax[1] = {0};
    snprintf(key, sizeof key, "%s.absmax", module);
    rewrite(src, dst, key, (pc_st_item){ .name = key, .dtype = PC_DT_U8, .ndim = 1, .shape = {1}, .data = absmax });
    expect_load_error(bad, "absmax");
    const char *broken = "{\"quant_type\": \"nf4\", \"blocksize\": 64,";
    snprintf(key, sizeof key, "%s.quant_state.bitsandbytes__nf4", module);
    rewrite(src, dst, key, (pc_st_item){ .name = key, .dtype = PC_DT_U8, .ndim = 1,
                                         .shape = {(int64_t)strlen(broken)}, .data = broken });
    expect_load_error(bad, "quant_state");
    const char *unknown = "{\"quant_type\": \"int3\", \"blocksize\": 64, \"shape\": [32, 32], \"nested_offset\": 0.1}";
    rewrite(src, dst, key, (pc_st_item){ .name = key, .dtype = PC_DT_U8, .ndim = 1,
                                         .shape = {(int64_t)strlen(unknown)}, .data = unknown });
    expect_load_error(bad, "quant_type 'int3' is not supported");
}
