/* Gradient checkpointing recomputes each block in backward: gradients must be bit-identical to
 * the run that keeps every activation, with dropout on (the replayed stream gives the same masks). */
#include "testlib.h"

#include <stdlib.h>

#include "models/peft_model.h"

typedef struct run_result {
    float loss;
    float *grads;
    long n;
} run_result;

static void train_step(const char *fixture, bool checkpointing, run_result *out)
{
    char model_dir[512], adapter_dir[512];
    snprintf(model_dir, sizeof model_dir, "%s/model", pc_test_fixture(fixture));
    snprintf(adapter_dir, sizeof adapter_dir, "%s/adapter_init", pc_test_fixture(fixture));
    pc_error err = {0};
    pc_model *m = NULL;
    pc_peft_model *p = NULL;
    memset(out, 0, sizeof *out);
    CHECK_MSG(pc_model_load(model_dir, NULL, &m, &err) == PEFTC_OK, "%s", err.msg);
    CHECK_MSG(m && pc_peft_load(m, adapter_dir, &p, &err) == PEFTC_OK, "%s", err.msg);
    if (!p) { pc_model_free(m); return; }
    for (int i = 0; i < p->n_adapters; i++) p->adapters[i].dropout = 0.1f;   /* exercise LoRA dropout replay */
    m->gradient_checkpointing = checkpointing;
    int32_t ids[12] = {5, 17, 33, 4, 9, 21, 3, 8, 11, 2, 0, 0}, labels[12] = {5, 17, 33, 4, 9, 21, 3, 8, 11, 2, -100, -100};
    uint8_t mask[12] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0};
    int32_t class_labels[2] = {1, 0};
    bool causal = m->task == PC_TASK_CAUSAL_LM;
    pc_batch b = {2, 6, ids, mask, causal ? labels : class_labels};
    CHECK(m->ops->reserve(m, 2, 6, &err) == PEFTC_OK);
    pc_param_list_zero_grad(&p->trainable);
    CHECK_MSG(m->ops->forward(m, &b, true, &out->loss, &err) == PEFTC_OK, "%s", err.msg);
    m->ops->backward(m, &b, 1.0f);
    out->n = pc_param_list_numel(&p->trainable);
    out->grads = malloc(sizeof(float) * (size_t)out->n);
    long at = 0;
    for (int i = 0; i < p->trainable.n; i++) {
        memcpy(out->grads + at, p->trainable.items[i].grad, sizeof(float) * (size_t)p->trainable.items[i].numel);
        at += p->trainable.items[i].numel;
    }
    pc_peft_model_free(p);
    pc_model_free(m);
}

static void check_equal_gradients(const char *fixture)
{
    run_result plain, ckpt;
    train_step(fixture, false, &plain);
    train_step(fixture, true, &ckpt);
    CHECK(plain.n > 0 && plain.n == ckpt.n);
    CHECK(plain.loss == ckpt.loss);
    if (plain.n == ckpt.n && plain.grads && ckpt.grads)
        CHECK_MSG(memcmp(plain.grads, ckpt.grads, sizeof(float) * (size_t)plain.n) == 0,
                  "%s: gradients differ with checkpointing (max rel %.3g)", fixture,
                  pc_test_max_rel_err(ckpt.grads, plain.grads, plain.n));
    double nonzero = 0;
    for (long i = 0; i < plain.n; i++) nonzero += plain.grads[i] != 0;
    CHECK(nonzero > 0);
    free(plain.grads);
    free(ckpt.grads);
}

TEST(checkpointing_distilbert_gradients_bitwise_equal) { check_equal_gradients("distilbert_tiny/all"); }
TEST(checkpointing_llama_gradients_bitwise_equal) { check_equal_gradients("causal_tiny/llama_gqa"); }
/* every Linear trained, down_proj included: the recomputed blocks run to their end */
TEST(checkpointing_llama_all_linears_gradients_bitwise_equal) { check_equal_gradients("causal_tiny/llama_tied_bias"); }
TEST(checkpointing_gpt2_gradients_bitwise_equal) { check_equal_gradients("causal_tiny/gpt2"); }
