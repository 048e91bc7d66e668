/* Training throughput of the first recipe's shape: DistilBERT-base (random weights), LoRA r=8 on
 * q_lin,v_lin + the SEQ_CLS heads, batch 16 x 64 random tokens, training mode (dropout on).
 * One step = zero_grad + forward + backward + clip_grad_norm(1.0) + AdamW, as the Trainer does.
 *
 *   bench_train [--use_dora] [--bf16] [--lora_dropout P] [steps] [model_dir]     (defaults: LoRA, 0.05, 10,
 *                                                                        /tmp/peftc-bench-distilbert)
 *
 * The model directory is written once with seeded random weights and reused when its config matches.
 * The last line is machine-readable for bench/run.sh:
 *   result peftc tokens/s X ms/step Y peak_rss_MB Z fastest_step_tokens/s W
 * (W from the quickest single step: a figure that other work on the machine disturbs less). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "base/fs.h"
#include "base/rng.h"
#include "kernels/gemm.h"
#include "models/distilbert.h"
#include "models/model.h"
#include "models/peft_model.h"
#include "peft/lora_config.h"
#include "train/optim.h"

enum { BATCH = 16, SEQ = 64, WARMUP_STEPS = 2 };
static const char *const DEFAULT_DIR = "/tmp/peftc-bench-distilbert";
static bool use_dora = false;        /* --use_dora: DoRA instead of LoRA, same r, alpha and targets */
static double lora_dropout = 0.05;   /* --lora_dropout P */
static bool bf16 = false;            /* --bf16: frozen weights' products in bf16 (training's bf16: true) */

typedef struct phase_times {
    double forward, backward, optimizer;
    double fastest;                  /* the quickest whole step: less sensitive to other work on the machine */
} phase_times;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;   /* ru_maxrss is in KiB on Linux */
}

/* distilbert-base-uncased's config.json, with 2 labels. */
static pc_distilbert_config base_config(char **labels)
{
    pc_distilbert_config c = {
        .dim = 768, .n_layers = 6, .n_heads = 12, .hidden_dim = 3072, .vocab_size = 30522,
        .max_position_embeddings = 512, .pad_token_id = 0,
        .dropout = 0.1f, .attention_dropout = 0.1f, .seq_classif_dropout = 0.2f,
        .sinusoidal_pos_embds = false, .relu = false, .num_labels = 2, .id2label = labels,
    };
    return c;
}

static bool same_shape(const pc_distilbert_config *a, const pc_distilbert_config *b)
{
    return a->dim == b->dim && a->n_layers == b->n_layers && a->n_heads == b->n_heads &&
           a->hidden_dim == b->hidden_dim && a->vocab_size == b->vocab_size &&
           a->max_position_embeddings == b->max_position_embeddings && a->num_labels == b->num_labels &&
           a->dropout == b->dropout && a->attention_dropout == b->attention_dropout &&
           a->seq_classif_dropout == b->seq_classif_dropout;
}

/* Reuses dir when it already holds this model; writes it otherwise. */
static pc_status ensure_model_dir(const char *dir, pc_error *err)
{
    char *labels[] = { "NEGATIVE", "POSITIVE" };
    pc_distilbert_config want = base_config(labels);
    char path[4096], weights[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    snprintf(weights, sizeof weights, "%s/model.safetensors", dir);
    if (pc_path_exists(path) && pc_path_exists(weights)) {
        pc_distilbert_config have;
        pc_error ignored;
        if (pc_distilbert_config_load(path, &have, &ignored) == PEFTC_OK) {
            bool reuse = same_shape(&have, &want);
            pc_distilbert_config_free(&have);
            if (reuse) return PEFTC_OK;
        }
    }
    fprintf(stderr, "writing random DistilBERT-base weights to %s ...\n", dir);
    PC_TRY(pc_mkdirs(dir, err));
    return pc_distilbert_write_random(dir, &want, 42, err);
}

/* LoRA r=8, alpha 32, dropout 0.05 on q_lin,v_lin, task SEQ_CLS (heads trained): the recipe (or its DoRA form). */
static pc_status apply_lora(pc_model *m, pc_peft_model **out, pc_error *err)
{
    pc_lora_config lc;
    pc_lora_config_init(&lc);
    snprintf(lc.task_type, sizeof lc.task_type, "SEQ_CLS");
    lc.r = 8;
    lc.lora_alpha = 32;
    lc.lora_dropout = lora_dropout;
    lc.use_dora = use_dora;
    static const char *const targets[] = { "q_lin", "v_lin" };
    lc.target_modules = calloc(2, sizeof *lc.target_modules);
    if (!lc.target_modules) { pc_lora_config_free(&lc); return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory"); }
    lc.n_target_modules = 2;
    for (int i = 0; i < 2; i++) {
        lc.target_modules[i] = strdup(targets[i]);
        if (!lc.target_modules[i]) { pc_lora_config_free(&lc); return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory"); }
    }
    pc_status s = pc_lora_config_add_task_modules(&lc, err);
    if (s) { pc_lora_config_free(&lc); return s; }
    return pc_peft_model_create(m, &lc, 42, out, err);
}

static void random_batch(int32_t *ids, uint8_t *mask, int32_t *labels, int vocab, int num_labels)
{
    pc_rng rng;
    pc_rng_init(&rng, 42, "bench_batch");
    for (int i = 0; i < BATCH * SEQ; i++) {
        ids[i] = 1 + (int32_t)pc_rng_below(&rng, (uint64_t)vocab - 1);   /* no pad id */
        mask[i] = 1;
    }
    for (int b = 0; b < BATCH; b++) labels[b] = (int32_t)pc_rng_below(&rng, (uint64_t)num_labels);
}

/* One Trainer step, with the time of each phase added to t. */
static pc_status train_step(pc_model *m, pc_peft_model *p, pc_adamw *opt, const pc_batch *b, phase_times *t,
                            float *loss, pc_error *err)
{
    double t0 = now_seconds();
    pc_param_list_zero_grad(&p->trainable);
    PC_TRY(m->ops->forward(m, b, true, loss, err));
    double t1 = now_seconds();
    m->ops->backward(m, b, 1.0f);
    double t2 = now_seconds();
    pc_clip_grad_norm(&p->trainable, 1.0);
    pc_adamw_step(opt, &p->trainable, 1e-5);
    double t3 = now_seconds();
    t->forward += t1 - t0;
    t->backward += t2 - t1;
    t->optimizer += t3 - t2;
    if (t->fastest == 0 || t3 - t0 < t->fastest) t->fastest = t3 - t0;
    return PEFTC_OK;
}

static pc_status run(int steps, const char *dir, pc_error *err)
{
    PC_TRY(ensure_model_dir(dir, err));
    pc_model_options opts = { .num_labels = 0, .id2label = NULL, .seed = 42 };
    pc_model *m = NULL;
    pc_peft_model *p = NULL;
    pc_adamw opt = { 0 };
    static int32_t ids[BATCH * SEQ], labels[BATCH];
    static uint8_t mask[BATCH * SEQ];
    pc_status s = pc_model_load(dir, &opts, &m, err);
    if (!s) pc_model_choose_packing(m, bf16, PC_PACK_F32_BUDGET);   /* as the Trainer */
    if (!s) s = apply_lora(m, &p, err);
    if (!s) s = m->ops->reserve(m, BATCH, SEQ, err);
    if (!s) s = pc_adamw_init(&opt, &p->trainable, 0.9, 0.999, 1e-8, 0.0, err);
    if (!s) {
        char line[200];
        pc_peft_trainable_line(p, line, sizeof line);
        printf("model: DistilBERT-base (dim 768, 6 layers, 12 heads, hidden 3072, vocab 30522), random weights in %s\n",
               dir);
        printf("peft: %s r=8 alpha=32 dropout=%g on q_lin,v_lin + SEQ_CLS heads; %s\n", use_dora ? "DoRA" : "LoRA",
               lora_dropout, line);
        printf("batch: %d x %d tokens, training mode (dropout 0.1, attention 0.1, head 0.2)\n", BATCH, SEQ);
        printf("threads: %d   gemm: %s; frozen weights: %s\n", omp_get_max_threads(), pc_gemm_backend(),
               pc_pgemm_kernel_name(bf16 ? PC_PACK_BF16 : PC_PACK_F32));
        random_batch(ids, mask, labels, m->vocab_size, m->num_labels);
    }
    pc_batch b = { BATCH, SEQ, ids, mask, labels };
    phase_times warm = { 0 }, t = { 0 };
    float loss = 0;
    for (int i = 0; !s && i < WARMUP_STEPS; i++) s = train_step(m, p, &opt, &b, &warm, &loss, err);
    double start = now_seconds();
    for (int i = 0; !s && i < steps; i++) s = train_step(m, p, &opt, &b, &t, &loss, err);
    double elapsed = now_seconds() - start;
    if (!s) {
        double ms = 1e3 / steps;
        printf("steps: %d timed after %d warm-up; last loss %.4f\n", steps, WARMUP_STEPS, loss);
        printf("phases (ms/step): forward %.1f  backward %.1f  optimizer %.1f (zero_grad+clip+AdamW)\n",
               t.forward * ms, t.backward * ms, t.optimizer * ms);
        printf("fastest step: %.1f ms\n", t.fastest * 1e3);
        printf("result peftc tokens/s %.1f ms/step %.1f peak_rss_MB %.0f fastest_step_tokens/s %.1f\n",
               (double)BATCH * SEQ * steps / elapsed, elapsed * ms, peak_rss_mb(), BATCH * SEQ / t.fastest);
    }
    pc_adamw_free(&opt);
    pc_peft_model_free(p);
    pc_model_free(m);
    return s;
}

int main(int argc, char **argv)
{
    const char *pos[2] = { NULL, NULL };
    int n_pos = 0;
    bool bad = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--use_dora") == 0) use_dora = true;
        else if (strcmp(argv[i], "--bf16") == 0) bf16 = true;
        else if (strcmp(argv[i], "--lora_dropout") == 0 && i + 1 < argc) lora_dropout = atof(argv[++i]);
        else if (n_pos < 2) pos[n_pos++] = argv[i];
        else bad = true;
    }
    int steps = pos[0] ? atoi(pos[0]) : 10;
    const char *dir = pos[1] ? pos[1] : DEFAULT_DIR;
    if (steps < 1 || bad || lora_dropout < 0 || lora_dropout >= 1) {
        fprintf(stderr, "usage: bench_train [--use_dora] [--bf16] [--lora_dropout 0 <= P < 1] [steps >= 1] [model_dir]\n");
        return 2;
    }
    pc_error err = { 0 };
    if (run(steps, dir, &err) != PEFTC_OK) {
        fprintf(stderr, "bench_train: %s\n", err.msg);
        return 1;
    }
    return 0;
}
