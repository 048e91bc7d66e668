/* DistilBERT's top block computes only the rows the classification head reads (models/distilbert.c). Its
 * gradients, with every dropout on (embeddings, attention, FFN, LoRA, head), a padded sequence, LoRA on every
 * Linear and bias="all" (so the LayerNorms train too), against central finite differences of the loss; the
 * masks are the same in every forward because the dropout stream is restored before each. Also one layer (the
 * top block is the only block) and sequences of one token (the top block computes every row). */
#include "testlib.h"

#include <stdlib.h>

#include "base/fs.h"
#include "models/distilbert.h"
#include "models/peft_model.h"

enum { B = 2, T_MAX = 5 };

typedef struct {
    pc_model *m;
    pc_peft_model *p;
    pc_rng start;        /* the dropout stream state every forward starts from */
    pc_batch batch;
    int32_t ids[B * T_MAX], labels[B];
    uint8_t mask[B * T_MAX];
} fd_case;

static bool load_case(fd_case *c, int n_layers, int T)
{
    char dir[600];
    pc_error err = {0};
    snprintf(dir, sizeof dir, "%s/dbert_top_%d_%d", pc_test_tmpdir(), n_layers, T);
    CHECK(pc_mkdirs(dir, &err) == PEFTC_OK);
    char *names[2] = {"NEGATIVE", "POSITIVE"};
    pc_distilbert_config mc = {.dim = 8, .n_layers = n_layers, .n_heads = 2, .hidden_dim = 12, .vocab_size = 9,
                               .max_position_embeddings = 8, .dropout = 0.1f, .attention_dropout = 0.2f,
                               .seq_classif_dropout = 0.2f, .num_labels = 2, .id2label = names};
    CHECK_MSG(pc_distilbert_write_random(dir, &mc, 11, &err) == PEFTC_OK, "%s", err.msg);
    CHECK_MSG(pc_model_load(dir, NULL, &c->m, &err) == PEFTC_OK, "%s", err.msg);
    if (!c->m) return false;
    pc_lora_config lc;
    pc_lora_config_init(&lc);
    snprintf(lc.task_type, sizeof lc.task_type, "SEQ_CLS");
    lc.r = 2;
    lc.lora_alpha = 4;
    lc.lora_dropout = 0.25;
    lc.all_linear = true;
    lc.bias = PC_BIAS_ALL;
    lc.init_lora_weights = PC_LORA_INIT_NONE;   /* B random too: every factor gets a gradient */
    CHECK(pc_lora_config_add_task_modules(&lc, &err) == PEFTC_OK);
    CHECK_MSG(pc_peft_model_create(c->m, &lc, 5, &c->p, &err) == PEFTC_OK, "%s", err.msg);
    if (!c->p) return false;
    for (int i = 0; i < B * T; i++) {
        c->ids[i] = (7 * i + 3) % 9;
        c->mask[i] = !(i >= T && i >= 2 * T - 2 && T > 1);   /* the second sequence's last two tokens are padding */
    }
    c->labels[0] = 1;
    c->labels[1] = 0;
    c->batch = (pc_batch){B, T, c->ids, c->mask, c->labels};
    c->start = c->m->dropout_rng;
    return c->m->ops->reserve(c->m, B, T, &err) == PEFTC_OK;
}

static float loss_at(fd_case *c)
{
    pc_error err = {0};
    float loss = 0;
    c->m->dropout_rng = c->start;
    CHECK_MSG(c->m->ops->forward(c->m, &c->batch, true, &loss, &err) == PEFTC_OK, "%s", err.msg);
    return loss;
}

static bool close_enough(double fd, double g)
{
    return fabs(fd - g) <= 1e-5 + 2e-2 * fabs(g);
}

/* Entries 0, numel/2 and numel-1 of every trainable tensor: analytic against (L(w+h) - L(w-h)) / 2h. The
 * weights are N(0, 0.02), so the gradients are small (1e-5 .. 1e-2) and the float loss limits the differences
 * to ~3e-6: hence the absolute 1e-5 beside the relative 2 %. An entry whose one-sided differences disagree as
 * much sits within h of a ReLU kink (the head's) or on strong curvature, where differences say little: such
 * entries (decided from forward passes alone, so a wrong backward cannot hide in them) are counted apart and
 * must stay few. */
static void check_finite_differences(int n_layers, int T)
{
    fd_case c = {0};
    if (load_case(&c, n_layers, T)) {
        pc_param_list_zero_grad(&c.p->trainable);
        double base = loss_at(&c);
        c.m->ops->backward(c.m, &c.batch, 1.0f);
        int checked = 0, nonzero = 0, kinks = 0;
        for (int i = 0; i < c.p->trainable.n; i++) {
            pc_param *prm = &c.p->trainable.items[i];
            const long at[3] = {0, prm->numel / 2, prm->numel - 1};
            for (int e = 0; e < 3; e++) {
                float *w = prm->data + at[e], saved = *w;
                const float h = 1e-2f;
                *w = saved + h;
                double up = loss_at(&c);
                *w = saved - h;
                double down = loss_at(&c);
                *w = saved;
                double fd = (up - down) / (2.0 * h), g = prm->grad[at[e]];
                if (!close_enough((up - base) / h, (base - down) / h)) {
                    kinks++;
                    continue;
                }
                CHECK_MSG(close_enough(fd, g), "layers %d T %d: %s[%ld] analytic %.6g, finite differences %.6g",
                          n_layers, T, prm->name, at[e], g, fd);
                checked++;
                nonzero += fabs(g) > 5e-5;   /* well above the differences' float noise (~3e-6) */
            }
        }
        /* with T 1 every softmax has one key, so q and k get no gradient: a fifth is the floor */
        CHECK_MSG(checked > 30 && nonzero > checked / 5 && kinks <= checked / 8,
                  "layers %d T %d: %d checked, %d nonzero, %d near a kink", n_layers, T, checked, nonzero, kinks);
    }
    pc_peft_model_free(c.p);
    pc_model_free(c.m);
}

TEST(distilbert_top_block_gradients_match_finite_differences_with_dropout)
{
    check_finite_differences(2, 5);
}

TEST(distilbert_single_layer_and_single_token_gradients_match_finite_differences)
{
    check_finite_differences(1, 5);
    check_finite_differences(2, 1);
}
