/* Models + LoRA against PyTorch fixtures (tools/make_distilbert_fixtures.py,
 * tools/make_causal_fixtures.py): logits and loss, gradients of every trainable
 * tensor, and weights after three AdamW steps with the linear schedule and clipping. */
#include "testlib.h"

#include <stdlib.h>

#include "formats/safetensors.h"
#include "models/peft_model.h"
#include "nn/loss.h"
#include "train/optim.h"

typedef struct parity_case {
    pc_model *model;
    pc_peft_model *peft;
    pc_safetensors *ref;
    int32_t ids[256], labels[256];
    uint8_t mask[256];
    pc_batch batch;
} parity_case;

static void read_i64_as_i32(const pc_st_tensor *t, int32_t *dst, long n)
{
    for (long i = 0; i < n; i++) {
        int64_t v;
        memcpy(&v, (const char *)t->data + 8 * i, 8);
        dst[i] = (int32_t)v;
    }
}

static int open_case(parity_case *c, const char *name)
{
    memset(c, 0, sizeof *c);
    char dir[512], path[600];
    pc_error err = {0};
    snprintf(dir, sizeof dir, "%s", pc_test_fixture(name));
    snprintf(path, sizeof path, "%s/model", dir);
    CHECK_MSG(pc_model_load(path, NULL, &c->model, &err) == PEFTC_OK, "load model: %s", err.msg);
    if (!c->model) return -1;
    snprintf(path, sizeof path, "%s/adapter_init", dir);
    CHECK_MSG(pc_peft_load(c->model, path, &c->peft, &err) == PEFTC_OK, "load adapter: %s", err.msg);
    snprintf(path, sizeof path, "%s/case.safetensors", dir);
    CHECK_MSG(pc_st_open(path, &c->ref, &err) == PEFTC_OK, "open case: %s", err.msg);
    if (!c->peft || !c->ref) return -1;
    const pc_st_tensor *ids = pc_st_find(c->ref, "input_ids");
    int B = (int)ids->shape[0], T = (int)ids->shape[1];
    int32_t mask32[256];
    CHECK(B * T <= 256);
    read_i64_as_i32(ids, c->ids, (long)B * T);
    read_i64_as_i32(pc_st_find(c->ref, "attention_mask"), mask32, (long)B * T);
    for (int i = 0; i < B * T; i++) c->mask[i] = (uint8_t)mask32[i];
    const pc_st_tensor *labels = pc_st_find(c->ref, "labels");
    read_i64_as_i32(labels, c->labels, (long)pc_st_numel(labels));  /* [B] class ids or [B, T] token labels */
    c->batch = (pc_batch){ B, T, c->ids, c->mask, c->labels };
    CHECK(c->model->ops->reserve(c->model, B, T, &err) == PEFTC_OK);
    return 0;
}

static void close_case(parity_case *c)
{
    pc_peft_model_free(c->peft);
    pc_model_free(c->model);
    pc_st_close(c->ref);
}

static void check_tensor(const pc_safetensors *ref, const char *key, const float *got, double tol)
{
    const pc_st_tensor *t = pc_st_find(ref, key);
    CHECK_MSG(t != NULL, "fixture has no tensor %s", key);
    if (!t) return;
    long n = (long)pc_st_numel(t);
    float *want = malloc(sizeof(float) * (size_t)n);
    pc_error err = {0};
    CHECK(pc_st_read_f32(t, want, n, &err) == PEFTC_OK);
    double rel = pc_test_max_rel_err(got, want, n);
    CHECK_MSG(rel <= tol, "%s: max relative error %.3g > %.1g", key, rel, tol);
    free(want);
}

static void forward(parity_case *c, float *loss)
{
    pc_error err = {0};
    pc_param_list_zero_grad(&c->peft->trainable);
    CHECK_MSG(c->model->ops->forward(c->model, &c->batch, false, loss, &err) == PEFTC_OK, "%s", err.msg);
}

static void forward_backward(parity_case *c, float *loss)
{
    forward(c, loss);
    c->model->ops->backward(c->model, &c->batch, 1.0f);
}

/* A causal LM's forward with labels runs lm_head on the rows that have a target only (models/causal_lm.h):
 * its logits are the fixture's rows whose shifted label is not -100, in order (checked before the backward,
 * which turns them into their gradient). */
static void check_labeled_causal_logits(parity_case *c)
{
    const pc_st_tensor *t = pc_st_find(c->ref, "logits");
    CHECK(t != NULL);
    if (!t) return;
    int B = c->batch.B, T = c->batch.T, V = c->model->vocab_size;
    float *want = malloc(sizeof(float) * (size_t)B * T * V);
    pc_error err = {0};
    CHECK(pc_st_read_f32(t, want, (long)B * T * V, &err) == PEFTC_OK);
    long rows = 0;
    for (int r = 0; r < B * T; r++)
        if (r % T + 1 < T && c->labels[r + 1] != PC_IGNORE_INDEX)
            memmove(want + rows++ * V, want + (long)r * V, sizeof(float) * (size_t)V);
    CHECK_INT_EQ(rows, c->model->n_loss_tokens);
    CHECK(rows < B * T);
    double rel = pc_test_max_rel_err(c->model->logits, want, rows * V);
    CHECK_MSG(rel <= 1e-5, "logits of the rows with a target: max relative error %.3g", rel);
    free(want);
}

/* Without labels, every row. */
static void check_unlabeled_causal_logits(parity_case *c)
{
    pc_error err = {0};
    pc_batch unlabeled = c->batch;
    unlabeled.labels = NULL;
    float loss;
    CHECK_MSG(c->model->ops->forward(c->model, &unlabeled, false, &loss, &err) == PEFTC_OK, "%s", err.msg);
    check_tensor(c->ref, "logits", c->model->logits, 1e-5);
}

static void check_forward_and_gradients(const char *name)
{
    parity_case c;
    if (open_case(&c, name) != 0) { close_case(&c); return; }
    float loss;
    forward(&c, &loss);
    bool causal = c.model->task == PC_TASK_CAUSAL_LM;
    if (causal) check_labeled_causal_logits(&c);
    else check_tensor(c.ref, "logits", c.model->logits, 1e-5);
    c.model->ops->backward(c.model, &c.batch, 1.0f);
    check_tensor(c.ref, "loss", &loss, 1e-5);
    for (int i = 0; i < c.peft->trainable.n; i++) {
        char key[400];
        snprintf(key, sizeof key, "grad.%s", c.peft->trainable.items[i].name);
        check_tensor(c.ref, key, c.peft->trainable.items[i].grad, 1e-4);
    }
    if (causal) check_unlabeled_causal_logits(&c);
    close_case(&c);
}

static void check_three_adamw_steps(const char *name)
{
    parity_case c;
    if (open_case(&c, name) != 0) { close_case(&c); return; }
    pc_adamw opt;
    pc_error err = {0};
    CHECK(pc_adamw_init(&opt, &c.peft->trainable, 0.9, 0.999, 1e-8, 0.01, &err) == PEFTC_OK);
    float losses[3], norms[3], lrs[3];
    for (int step = 0; step < 3; step++) {
        forward_backward(&c, &losses[step]);
        norms[step] = (float)pc_clip_grad_norm(&c.peft->trainable, 0.5);
        lrs[step] = (float)(1e-2 * pc_schedule_factor(PC_SCHED_LINEAR, step, 0, 3));
        pc_adamw_step(&opt, &c.peft->trainable, lrs[step]);
    }
    check_tensor(c.ref, "train.loss", losses, 1e-5);
    check_tensor(c.ref, "train.grad_norm", norms, 1e-4);
    check_tensor(c.ref, "train.lr", lrs, 1e-6);
    for (int i = 0; i < c.peft->trainable.n; i++) {
        char key[400];
        snprintf(key, sizeof key, "step3.%s", c.peft->trainable.items[i].name);
        check_tensor(c.ref, key, c.peft->trainable.items[i].data, 1e-4);
    }
    pc_adamw_free(&opt);
    close_case(&c);
}

TEST(distilbert_qv_forward_and_gradients_match_pytorch) { check_forward_and_gradients("distilbert_tiny/qv"); }
TEST(distilbert_all_forward_and_gradients_match_pytorch) { check_forward_and_gradients("distilbert_tiny/all"); }
TEST(distilbert_qv_three_adamw_steps_match_pytorch) { check_three_adamw_steps("distilbert_tiny/qv"); }
TEST(distilbert_all_three_adamw_steps_match_pytorch) { check_three_adamw_steps("distilbert_tiny/all"); }

static void check_trainable_line(const char *name, const char *want)
{
    parity_case c;
    if (open_case(&c, name) == 0) {
        char line[200];
        pc_peft_trainable_line(c.peft, line, sizeof line);
        CHECK_STR_EQ(line, want);
    }
    close_case(&c);
}

/* Counts from the fixture generator's PEFT formula (peft_facts.md §1.10). */
TEST(distilbert_print_trainable_parameters_qv)
{
    check_trainable_line("distilbert_tiny/qv", "trainable params: 2,146 || all params: 24,900 || trainable%: 8.6185");
}
TEST(distilbert_print_trainable_parameters_all)
{
    check_trainable_line("distilbert_tiny/all", "trainable params: 4,739 || all params: 27,526 || trainable%: 17.2164");
}

TEST(llama_gqa_forward_and_gradients_match_pytorch) { check_forward_and_gradients("causal_tiny/llama_gqa"); }
TEST(llama_gqa_three_adamw_steps_match_pytorch) { check_three_adamw_steps("causal_tiny/llama_gqa"); }
TEST(llama_tied_bias_forward_and_gradients_match_pytorch) { check_forward_and_gradients("causal_tiny/llama_tied_bias"); }
TEST(llama_tied_bias_three_adamw_steps_match_pytorch) { check_three_adamw_steps("causal_tiny/llama_tied_bias"); }
TEST(qwen2_forward_and_gradients_match_pytorch) { check_forward_and_gradients("causal_tiny/qwen2"); }
TEST(qwen2_three_adamw_steps_match_pytorch) { check_three_adamw_steps("causal_tiny/qwen2"); }
TEST(gpt2_forward_and_gradients_match_pytorch) { check_forward_and_gradients("causal_tiny/gpt2"); }
TEST(gpt2_three_adamw_steps_match_pytorch) { check_three_adamw_steps("causal_tiny/gpt2"); }

TEST(causal_print_trainable_parameters)
{
    check_trainable_line("causal_tiny/llama_gqa", "trainable params: 1,280 || all params: 20,896 || trainable%: 6.1256");
    check_trainable_line("causal_tiny/llama_tied_bias", "trainable params: 4,992 || all params: 33,248 || trainable%: 15.0144");
    check_trainable_line("causal_tiny/qwen2", "trainable params: 896 || all params: 18,592 || trainable%: 4.8193");
    check_trainable_line("causal_tiny/gpt2", "trainable params: 1,024 || all params: 29,568 || trainable%: 3.4632");
}

/* Greedy generation with the KV cache and the adapter applied un-merged equals PyTorch's
 * argmax continuation (gen.ids: 4 prompt tokens, then 8 generated). */
static void check_generation(const char *name)
{
    parity_case c;
    if (open_case(&c, name) != 0) { close_case(&c); return; }
    const pc_st_tensor *g = pc_st_find(c.ref, "gen.ids");
    CHECK(g != NULL);
    if (g) {
        int32_t want[64];
        long n = (long)pc_st_numel(g);
        read_i64_as_i32(g, want, n);
        pc_error err = {0};
        CHECK(c.model->ops->cache_reset(c.model, (int)n, &err) == PEFTC_OK);
        CHECK(c.model->ops->decode(c.model, want, 4, &err) == PEFTC_OK);
        for (long i = 4; i < n; i++) {
            int best = 0, V = c.model->vocab_size;
            for (int v = 1; v < V; v++) if (c.model->logits[v] > c.model->logits[best]) best = v;
            CHECK_MSG(best == want[i], "%s: token %ld is %d, expected %d", name, i, best, want[i]);
            int32_t tok = best;
            CHECK(c.model->ops->decode(c.model, &tok, 1, &err) == PEFTC_OK);
        }
    }
    close_case(&c);
}

TEST(llama_gqa_kv_cache_generation_matches_pytorch) { check_generation("causal_tiny/llama_gqa"); }
TEST(gpt2_kv_cache_generation_matches_pytorch) { check_generation("causal_tiny/gpt2"); }
