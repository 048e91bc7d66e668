/* Gradient checkpointing recomputes each block in backward: gradients must be bit-identical to
 * the run that keeps every activation, with dropout on (the replayed stream gives the same masks), and so
 * when blocks keep their MLP's gate/up outputs (gradient_checkpointing_kept_blocks). */
#include "testlib.h"

#include <stdlib.h>

#include "models/peft_model.h"
#include "peft/lora_config.h"

/* How a run sets up checkpointing and its adapter. */
typedef struct run_setup {
    bool checkpointing;
    int kept_blocks;
    const char *target_regex;   /* NULL: the fixture's adapter_init; else a fresh LoRA on these modules */
    int keepable;               /* the blocks that can keep (pc_model.keepable_blocks) */
} run_setup;

typedef struct run_result {
    float loss;
    float *grads;
    long n;
} run_result;

/* A fresh LoRA (r 4, dropout 0.1, B zero as PEFT initializes it) on the modules target_regex matches. */
static pc_status fresh_lora(pc_model *m, const char *target_regex, pc_peft_model **p, pc_error *err)
{
    pc_lora_config lc;
    pc_lora_config_init(&lc);
    snprintf(lc.task_type, sizeof lc.task_type, "CAUSAL_LM");
    lc.r = 4;
    lc.lora_alpha = 8;
    lc.target_regex = strdup(target_regex);
    pc_status s = pc_peft_model_create(m, &lc, 7, p, err);
    pc_lora_config_free(&lc);
    return s;
}

static void train_step(const char *fixture, run_setup setup, run_result *out)
{
    char model_dir[512], adapter_dir[512];
    snprintf(model_dir, sizeof model_dir, "%s/model", pc_test_fixture(fixture));
    snprintf(adapter_dir, sizeof adapter_dir, "%s/adapter_init", pc_test_fixture(fixture));
    pc_error err = {0};
    pc_model *m = NULL;
    pc_peft_model *p = NULL;
    memset(out, 0, sizeof *out);
    CHECK_MSG(pc_model_load(model_dir, NULL, &m, &err) == PEFTC_OK, "%s", err.msg);
    if (m && setup.target_regex) CHECK_MSG(fresh_lora(m, setup.target_regex, &p, &err) == PEFTC_OK, "%s", err.msg);
    else CHECK_MSG(m && pc_peft_load(m, adapter_dir, &p, &err) == PEFTC_OK, "%s", err.msg);
    if (!p) { pc_model_free(m); return; }
    for (int i = 0; i < p->n_adapters; i++) p->adapters[i].dropout = 0.1f;   /* exercise LoRA dropout replay */
    m->gradient_checkpointing = setup.checkpointing;
    m->checkpoint_kept_blocks = setup.kept_blocks;
    int32_t ids[12] = {5, 17, 33, 4, 9, 21, 3, 8, 11, 2, 0, 0}, labels[12] = {5, 17, 33, 4, 9, 21, 3, 8, 11, 2, -100, -100};
    uint8_t mask[12] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0};
    int32_t class_labels[2] = {1, 0};
    bool causal = m->task == PC_TASK_CAUSAL_LM;
    pc_batch b = {2, 6, ids, mask, causal ? labels : class_labels};
    CHECK(m->ops->reserve(m, 2, 6, &err) == PEFTC_OK);
    CHECK_INT_EQ(m->keepable_blocks, setup.keepable);
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

/* keepable: how many blocks the checkpointed run can keep (the plain run, without checkpointing, none). */
static void check_equal_gradients_with(const char *fixture, int kept_blocks, const char *target_regex, int keepable)
{
    run_result plain, ckpt;
    train_step(fixture, (run_setup){false, kept_blocks, target_regex, 0}, &plain);
    train_step(fixture, (run_setup){true, kept_blocks, target_regex, keepable}, &ckpt);
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

static void check_equal_gradients(const char *fixture, int keepable)
{
    check_equal_gradients_with(fixture, 0, NULL, keepable);
}

TEST(checkpointing_distilbert_gradients_bitwise_equal) { check_equal_gradients("distilbert_tiny/all", 0); }
TEST(checkpointing_llama_gradients_bitwise_equal) { check_equal_gradients("causal_tiny/llama_gqa", 1); }
/* every Linear trained, down_proj included: the recomputed blocks run to their end; gate/up train: none can keep */
TEST(checkpointing_llama_all_linears_gradients_bitwise_equal) { check_equal_gradients("causal_tiny/llama_tied_bias", 0); }
TEST(checkpointing_gpt2_gradients_bitwise_equal) { check_equal_gradients("causal_tiny/gpt2", 0); }
/* block 0 keeps its g and u (q/k/v adapters: gate and up train nothing), so its backward skips them */
TEST(checkpointing_llama_kept_blocks_gradients_bitwise_equal) { check_equal_gradients_with("causal_tiny/llama_gqa", 1, NULL, 1); }
/* down_proj trains (with dropout) while block 0 keeps gate/up: its recomputed forward replays down's mask alike */
TEST(checkpointing_llama_kept_blocks_with_down_proj_lora_gradients_bitwise_equal)
{
    check_equal_gradients_with("causal_tiny/llama_gqa", 1, ".*\\.(q_proj|down_proj)", 1);
}
/* only the top block trains: backward stops there, so block 0 cannot keep (it would hold memory for nothing) */
TEST(checkpointing_llama_no_kept_block_below_the_lowest_trainable)
{
    check_equal_gradients_with("causal_tiny/llama_gqa", 1, ".*layers\\.1\\..*q_proj", 0);
}
