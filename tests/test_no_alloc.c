/* No heap allocation in a training step after the first: forward, backward, clipping and the optimizer on
 * the tiny fixture models with LoRA (and dropout), DoRA, a 4-bit base, gradient checkpointing and the
 * 8-bit / paged optimizers. Counted by the test binary's own malloc (tests/malloc_count.c). */
#include "testlib.h"
#include "malloc_count.h"

#include <stdlib.h>

#include "models/peft_model.h"
#include "models/quantized.h"
#include "train/optim.h"

typedef struct {
    const char *model, *adapter;   /* fixture directories */
    bool four_bit, checkpointing;
    const char *optim;
} alloc_case;

static void step(pc_model *m, pc_peft_model *p, pc_optimizer *opt, const pc_batch *b)
{
    pc_error err = {0};
    float loss;
    pc_param_list_zero_grad(&p->trainable);
    CHECK_MSG(m->ops->forward(m, b, true, &loss, &err) == PEFTC_OK, "%s", err.msg);
    m->ops->backward(m, b, 1.0f);
    pc_clip_grad_norm(&p->trainable, 1.0);
    pc_optimizer_step(opt, &p->trainable, 1e-3);
}

static void check_steps_allocate_nothing(const alloc_case *c)
{
    char dir[600];
    pc_error err = {0};
    pc_model *m = NULL;
    pc_peft_model *p = NULL;
    pc_optimizer *opt = NULL;
    snprintf(dir, sizeof dir, "%s", pc_test_fixture(c->model));
    CHECK_MSG(pc_model_load(dir, NULL, &m, &err) == PEFTC_OK, "%s", err.msg);
    if (m && c->four_bit) {
        char *skip[] = {"pre_classifier", "classifier"};
        pc_quant_options o = {PC_Q4_NF4, true, PC_Q4_COMPUTE_F32, skip, 2};
        CHECK_MSG(pc_model_quantize_4bit(m, &o, &err) == PEFTC_OK, "%s", err.msg);
    }
    snprintf(dir, sizeof dir, "%s", pc_test_fixture(c->adapter));
    if (m) CHECK_MSG(pc_peft_load(m, dir, &p, &err) == PEFTC_OK, "%s", err.msg);
    pc_optim_args oa = {0.9, 0.999, 1e-8, 0.01, NULL};
    if (p) CHECK_MSG(pc_optimizer_create(c->optim, &p->trainable, &oa, &opt, &err) == PEFTC_OK, "%s", err.msg);
    if (opt) {
        for (int i = 0; i < p->n_adapters; i++) p->adapters[i].dropout = 0.1f;
        m->gradient_checkpointing = c->checkpointing;
        int32_t ids[12] = {5, 17, 33, 4, 9, 21, 3, 8, 11, 2, 0, 0};
        int32_t labels[12] = {5, 17, 33, 4, 9, 21, 3, 8, 11, 2, -100, -100}, class_labels[2] = {1, 0};
        uint8_t mask[12] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0};
        pc_batch b = {2, 6, ids, mask, m->task == PC_TASK_CAUSAL_LM ? labels : class_labels};
        pc_batch shorter = {2, 4, ids, mask, b.labels};   /* a smaller batch within the reserved size */
        CHECK(m->ops->reserve(m, 2, 6, &err) == PEFTC_OK);
        step(m, p, opt, &b);
        pc_malloc_count_start();
        for (int i = 0; i < 3; i++) step(m, p, opt, i == 1 ? &shorter : &b);
        long n = pc_malloc_count_stop();
        CHECK_MSG(n == 0, "%s (%s%s%s): %ld allocations in 3 steps after the first", c->model, c->optim,
                  c->four_bit ? ", 4-bit" : "", c->checkpointing ? ", checkpointing" : "", n);
    }
    pc_optimizer_free(opt);
    pc_peft_model_free(p);
    pc_model_free(m);
}

/* The counter itself sees an allocation (through a volatile pointer the compiler cannot elide). */
TEST(no_alloc_counter_counts)
{
    if (!pc_malloc_count_available()) SKIP("malloc counting needs glibc's allocator; AddressSanitizer replaces it");
    void *(*volatile alloc)(size_t) = malloc;
    pc_malloc_count_start();
    void *x = alloc(24);
    long n = pc_malloc_count_stop();
    free(x);
    CHECK_INT_EQ(n, 1);
}

TEST(no_alloc_in_training_steps)
{
    if (!pc_malloc_count_available()) SKIP("malloc counting needs glibc's allocator; AddressSanitizer replaces it");
    const alloc_case cases[] = {
        {"distilbert_tiny/all/model", "distilbert_tiny/all/adapter_init", false, false, "adamw_torch"},
        {"distilbert_tiny/qv/model", "dora/distilbert_qv/adapter_init", true, true, "adamw_8bit"},
        {"causal_tiny/llama_gqa/model", "causal_tiny/llama_gqa/adapter_init", false, true, "paged_adamw_8bit"},
        {"causal_tiny/llama_gqa/model", "causal_tiny/llama_gqa/adapter_init", true, false, "paged_adamw_32bit"},
        {"causal_tiny/gpt2/model", "causal_tiny/gpt2/adapter_init", false, false, "adamw_torch"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_steps_allocate_nothing(&cases[i]);
}
