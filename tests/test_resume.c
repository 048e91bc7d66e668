/* Checkpoints and exact resume: a run stopped after step 3 (as by Ctrl-C) and resumed from its
 * checkpoint ends with the same adapter bytes and the same logged losses as an uninterrupted run
 * (dropout on, shuffled data, gradient accumulation). */
#include "testlib.h"
#include "test_world.h"

#include <stdlib.h>

#include "base/fs.h"
#include "models/distilbert.h"
#include "train/trainer.h"

static void make_world(const char *dir)
{
    const pc_distilbert_config sizes = { .dim = 16, .n_layers = 2, .n_heads = 2, .hidden_dim = 32, .max_position_embeddings = 32 };
    pc_test_make_world(dir, &sizes, 11, 30);
}

static void set(pc_config *c, const char *k, const char *v)
{
    pc_error err = {0};
    CHECK_MSG(pc_config_set(c, k, v, "test", &err) == PEFTC_OK, "%s", err.msg);
}

static void base_config(pc_config *c, const char *dir, const char *out)
{
    char path[600];
    pc_config_init(c);
    snprintf(path, sizeof path, "%s/model", dir); set(c, "model_name_or_path", path);
    snprintf(path, sizeof path, "%s/train.jsonl", dir); set(c, "train_file", path);
    snprintf(path, sizeof path, "%s/%s", dir, out); set(c, "output_dir", path);
    set(c, "target_modules", "q_lin,v_lin");
    set(c, "lora_dropout", "0.1");
    set(c, "learning_rate", "1e-2");
    set(c, "per_device_train_batch_size", "4");
    set(c, "gradient_accumulation_steps", "2");
    set(c, "max_steps", "8");
    set(c, "logging_steps", "1");
}

typedef struct stopper { volatile sig_atomic_t flag; long at; } stopper;

static void stop_at(void *ud, const pc_progress *p)
{
    stopper *s = ud;
    if (p->step == s->at) s->flag = 1;
}

static char *read_file(const char *path, long *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)*n + 1);
    if (buf && fread(buf, 1, (size_t)*n, f) != (size_t)*n) { free(buf); buf = NULL; }
    fclose(f);
    return buf;
}

TEST(resume_after_interrupt_is_bit_identical)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/resume", pc_test_tmpdir());
    make_world(dir);
    pc_config a, b;
    pc_train_result res;
    pc_error err = {0};
    base_config(&a, dir, "straight");
    set(&a, "save_strategy", "no");
    CHECK_MSG(pc_train(&a, NULL, &res, &err) == PEFTC_OK, "%s", err.msg);

    base_config(&b, dir, "stopped");
    set(&b, "save_strategy", "no");
    stopper s = {0, 3};
    pc_trainer_hooks hooks = { NULL, NULL, stop_at, &s, &s.flag };
    CHECK(pc_train(&b, &hooks, &res, &err) == PEFTC_ERR_INTERRUPTED);
    CHECK_CONTAINS(err.msg, "--resume_from_checkpoint");
    set(&b, "resume_from_checkpoint", "true");
    CHECK_MSG(pc_train(&b, NULL, &res, &err) == PEFTC_OK, "%s", err.msg);
    CHECK_INT_EQ(res.global_step, 8);

    char pa[700], pb[700];
    long na = 0, nb = 0;
    snprintf(pa, sizeof pa, "%s/straight/adapter_model.safetensors", dir);
    snprintf(pb, sizeof pb, "%s/stopped/adapter_model.safetensors", dir);
    char *fa = read_file(pa, &na), *fb = read_file(pb, &nb);
    CHECK(fa && fb && na == nb && memcmp(fa, fb, (size_t)na) == 0);
    free(fa); free(fb);
    /* the logged losses of every step agree (train_runtime etc. naturally differ) */
    snprintf(pa, sizeof pa, "%s/straight/trainer_state.json", dir);
    snprintf(pb, sizeof pb, "%s/stopped/trainer_state.json", dir);
    fa = read_file(pa, &na);
    fb = read_file(pb, &nb);
    CHECK(fa && fb);
    if (fa && fb) {
        char *ea = strstr(fa, "\"total_flos\""), *eb = strstr(fb, "\"total_flos\"");
        CHECK(ea && eb && ea - fa == eb - fb && memcmp(fa, fb, (size_t)(ea - fa)) == 0);
    }
    free(fa); free(fb);
    pc_config_free(&a);
    pc_config_free(&b);
}

TEST(save_total_limit_keeps_the_newest_checkpoints)
{
    char dir[512], path[700];
    snprintf(dir, sizeof dir, "%s/limit", pc_test_tmpdir());
    make_world(dir);
    pc_config c;
    pc_train_result res;
    pc_error err = {0};
    base_config(&c, dir, "out");
    set(&c, "save_steps", "2");
    set(&c, "save_total_limit", "2");
    CHECK_MSG(pc_train(&c, NULL, &res, &err) == PEFTC_OK, "%s", err.msg);
    const long want[] = {2, 4, 6, 8};
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/out/checkpoint-%ld/training_state.safetensors", dir, want[i]);
        CHECK_MSG(pc_path_exists(path) == (want[i] >= 6), "checkpoint-%ld", want[i]);
    }
    pc_config_free(&c);
}

TEST(nonfinite_steps_are_skipped_then_the_run_stops_with_a_checkpoint)
{
    char dir[512], path[700];
    snprintf(dir, sizeof dir, "%s/nan", pc_test_tmpdir());
    make_world(dir);
    pc_config c;
    pc_train_result res;
    pc_error err = {0};
    base_config(&c, dir, "out");
    set(&c, "learning_rate", "1e30");      /* the first update overflows the adapter */
    set(&c, "max_grad_norm", "0");
    set(&c, "max_steps", "20");
    set(&c, "save_strategy", "no");
    set(&c, "max_consecutive_nonfinite_steps", "3");
    CHECK(pc_train(&c, NULL, &res, &err) == PEFTC_ERR_NUMERIC);
    CHECK_CONTAINS(err.msg, "3 consecutive steps with a non-finite");
    snprintf(path, sizeof path, "%s/out/checkpoint-4/trainer_state.json", dir);
    CHECK_MSG(pc_path_exists(path), "no checkpoint of the last state: %s", err.msg);
    pc_config_free(&c);
}
