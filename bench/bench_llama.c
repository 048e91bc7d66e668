/* TinyLlama-1.1B-shaped benchmarks (issues 3, 4, 6): LoRA and QLoRA training tokens/s with peak RSS, and
 * greedy generation tokens/s with the KV cache, on seeded random weights.
 *
 *   bench_llama prepare            writes the fp32 model (once) and its nf4 + double-quant copy (once)
 *   bench_llama lora [steps]       fp32 base, LoRA r=16 alpha 32 dropout 0.05 on q/k/v_proj, adamw_torch
 *   bench_llama qlora [steps]      the nf4 copy, bf16 compute, paged_adamw_8bit, gradient checkpointing
 *   option --bf16                  (training) the other frozen Linears (lm_head) in bf16 too, as the Trainer's
 *                                  bf16: true (TrainingArguments(bf16=True)) runs them
 *   option --kept-blocks N         (qlora) N blocks keep their MLP's gate/up outputs through the checkpointed
 *                                  step, as the Trainer's gradient_checkpointing_kept_blocks (default 0)
 *   bench_llama generate fp32|nf4  greedy decode of 128 tokens after a 16-token prompt
 *   option --dir DIR               the fp32 model directory (default /tmp/peftc-bench-tinyllama); the 4-bit
 *                                  copy lives in DIR-nf4
 *
 * Training: batch 1 x 256 random tokens, labels = input_ids, training mode; one step = forward + backward
 * + zero_grad + clip_grad_norm(1.0) + optimizer step, as the Trainer does; 1 warm-up step, then `steps`
 * (default 3) timed. The timed modes never write the model (that would inflate their peak RSS): run
 * `prepare` first. The last line is machine-readable for bench/run_llama.sh:
 *   result NAME tokens/s X s/step Y peak_rss_MB Z fastest_step_tokens/s W
 * (for generation a "step" is one generated token). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "base/fs.h"
#include "base/profile.h"
#include "base/rng.h"
#include "formats/json.h"
#include "formats/safetensors.h"
#include "kernels/gemm.h"
#include "kernels/gemm4.h"
#include "kernels/pgemm.h"
#include "models/llama.h"
#include "models/merge.h"
#include "models/model.h"
#include "models/peft_model.h"
#include "models/quantized.h"
#include "peft/lora_config.h"
#include "train/memory.h"
#include "train/optim.h"

enum { SEQ = 256, WARMUP_STEPS = 1, PROMPT = 16, NEW_TOKENS = 128, MAX_TENSORS = 9 * 32 + 3 };
static const char *const DEFAULT_DIR = "/tmp/peftc-bench-tinyllama";

/* TinyLlama-1.1B's config.json. */
static const pc_llama_config SHAPE = {
    .hidden = 2048, .intermediate = 5632, .n_layers = 22, .n_heads = 32, .n_kv_heads = 4, .head_dim = 64,
    .vocab_size = 32000, .max_positions = 2048, .rms_norm_eps = 1e-5f, .rope_theta = 10000.0,
    .tie_word_embeddings = false, .bos_token_id = 1, .eos_token_id = 2,
};

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

static void print_result(const char *name, double tokens_per_s, double s_per_step, double fastest_tokens_per_s)
{
    printf("result %s tokens/s %.2f s/step %.3f peak_rss_MB %.0f fastest_step_tokens/s %.2f\n", name, tokens_per_s,
           s_per_step, peak_rss_mb(), fastest_tokens_per_s);
}

/* ---------- the model directories ---------- */

static bool same_shape(const pc_llama_config *a, const pc_llama_config *b)
{
    return a->hidden == b->hidden && a->intermediate == b->intermediate && a->n_layers == b->n_layers &&
           a->n_heads == b->n_heads && a->n_kv_heads == b->n_kv_heads && a->head_dim == b->head_dim &&
           a->vocab_size == b->vocab_size && a->max_positions == b->max_positions &&
           a->rms_norm_eps == b->rms_norm_eps && a->rope_theta == b->rope_theta &&
           a->tie_word_embeddings == b->tie_word_embeddings && !a->has_rope_scaling && !b->has_rope_scaling;
}

/* Whether dir holds a complete model of SHAPE with 4-bit or fp32 Linears (config.json is written last, so its
 * presence means the weights are complete). */
static bool model_dir_ready(const char *dir, bool want_4bit)
{
    char config[4200], weights[4200];
    snprintf(config, sizeof config, "%s/config.json", dir);
    snprintf(weights, sizeof weights, "%s/model.safetensors", dir);
    if (!pc_path_exists(config) || !pc_path_exists(weights)) return false;
    pc_llama_config have;
    pc_error ignored;
    if (pc_llama_config_load(config, &have, &ignored) != PEFTC_OK || !same_shape(&have, &SHAPE)) return false;
    pc_safetensors *st = NULL;
    if (pc_st_open(weights, &st, &ignored) != PEFTC_OK) return false;
    bool is_4bit = pc_checkpoint_has_4bit(st, "model.layers.0.self_attn.q_proj");
    pc_st_close(st);
    return is_4bit == want_4bit;
}

/* LlamaConfig as TinyLlama-1.1B's config.json writes it; quant (may be NULL) becomes quantization_config. */
static cJSON *config_json(cJSON *quant)
{
    const pc_llama_config *c = &SHAPE;
    cJSON *j = cJSON_CreateObject();
    cJSON *arch = cJSON_AddArrayToObject(j, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString("LlamaForCausalLM"));
    cJSON_AddNumberToObject(j, "bos_token_id", c->bos_token_id);
    cJSON_AddNumberToObject(j, "eos_token_id", c->eos_token_id);
    cJSON_AddStringToObject(j, "hidden_act", "silu");
    cJSON_AddNumberToObject(j, "hidden_size", c->hidden);
    cJSON_AddNumberToObject(j, "initializer_range", 0.02);
    cJSON_AddNumberToObject(j, "intermediate_size", c->intermediate);
    cJSON_AddNumberToObject(j, "max_position_embeddings", c->max_positions);
    cJSON_AddStringToObject(j, "model_type", "llama");
    cJSON_AddNumberToObject(j, "num_attention_heads", c->n_heads);
    cJSON_AddNumberToObject(j, "num_hidden_layers", c->n_layers);
    cJSON_AddNumberToObject(j, "num_key_value_heads", c->n_kv_heads);
    if (quant) cJSON_AddItemToObject(j, "quantization_config", quant);
    cJSON_AddNumberToObject(j, "rms_norm_eps", c->rms_norm_eps);
    cJSON_AddNumberToObject(j, "rope_theta", c->rope_theta);
    cJSON_AddBoolToObject(j, "tie_word_embeddings", c->tie_word_embeddings);
    cJSON_AddStringToObject(j, "torch_dtype", "float32");
    cJSON_AddNumberToObject(j, "vocab_size", c->vocab_size);
    return j;
}

static pc_status write_config(const char *dir, cJSON *quant, pc_error *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    cJSON *j = config_json(quant);
    if (!j) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
    pc_status s = pc_json_write_file_atomic(path, j, true, err);
    cJSON_Delete(j);
    return s;
}

typedef struct tensor_list {
    pc_st_item items[MAX_TENSORS];
    char names[MAX_TENSORS][160];
    int n;
} tensor_list;

/* Appends an fp32 tensor: N(0, 0.02) as transformers' _init_weights, or ones for an RMSNorm weight. */
static pc_status add_tensor(tensor_list *t, const char *name, int64_t rows, int64_t cols, pc_rng *rng,
                            pc_error *err)
{
    long n = (long)(rows * cols);
    float *buf = malloc(sizeof(float) * (size_t)n);
    if (!buf) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for %s (%ld floats)", name, n);
    if (cols > 1) pc_rng_fill_normal(rng, buf, n, 0.0f, 0.02f);
    else for (long i = 0; i < n; i++) buf[i] = 1.0f;
    pc_st_item *it = &t->items[t->n];
    snprintf(t->names[t->n], sizeof t->names[0], "%s", name);
    *it = (pc_st_item){ .name = t->names[t->n], .dtype = PC_DT_F32, .ndim = cols > 1 ? 2 : 1,
                        .shape = { rows, cols > 1 ? cols : 0 }, .data = buf };
    t->n++;
    return PEFTC_OK;
}

static pc_status random_tensors(tensor_list *t, pc_rng *rng, pc_error *err)
{
    const pc_llama_config *c = &SHAPE;
    int64_t H = c->hidden, I = c->intermediate, V = c->vocab_size;
    int64_t q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
    struct { const char *name; int64_t out, in; } linears[7] = {
        { "self_attn.q_proj", q, H }, { "self_attn.k_proj", kv, H }, { "self_attn.v_proj", kv, H },
        { "self_attn.o_proj", H, q }, { "mlp.gate_proj", I, H }, { "mlp.up_proj", I, H }, { "mlp.down_proj", H, I },
    };
    char name[160];
    PC_TRY(add_tensor(t, "model.embed_tokens.weight", V, H, rng, err));
    for (int l = 0; l < c->n_layers; l++) {
        for (int i = 0; i < 7; i++) {
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, linears[i].name);
            PC_TRY(add_tensor(t, name, linears[i].out, linears[i].in, rng, err));
        }
        snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", l);
        PC_TRY(add_tensor(t, name, H, 1, rng, err));
        snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", l);
        PC_TRY(add_tensor(t, name, H, 1, rng, err));
    }
    PC_TRY(add_tensor(t, "model.norm.weight", H, 1, rng, err));
    return add_tensor(t, "lm_head.weight", V, H, rng, err);
}

/* The fp32 model with seeded N(0, 0.02) weights: ~4.4 GB, held in memory once while written. */
static pc_status write_random_model(const char *dir, pc_error *err)
{
    fprintf(stderr, "writing random TinyLlama-1.1B-shaped fp32 weights to %s ...\n", dir);
    PC_TRY(pc_mkdirs(dir, err));
    tensor_list *t = calloc(1, sizeof *t);
    if (!t) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
    pc_rng rng;
    pc_rng_init(&rng, 42, "model_init");
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    pc_status s = random_tensors(t, &rng, err);
    if (!s) s = pc_st_write(path, t->items, t->n, NULL, err);
    if (!s) s = write_config(dir, NULL, err);
    for (int i = 0; i < t->n; i++) free((void *)t->items[i].data);
    free(t);
    return s;
}

/* BitsAndBytesConfig(load_in_4bit, nf4, double quant, bfloat16 compute) as transformers writes it. */
static cJSON *quantization_config(void)
{
    cJSON *q = cJSON_CreateObject();
    cJSON_AddStringToObject(q, "bnb_4bit_compute_dtype", "bfloat16");
    cJSON_AddStringToObject(q, "bnb_4bit_quant_storage", "uint8");
    cJSON_AddStringToObject(q, "bnb_4bit_quant_type", "nf4");
    cJSON_AddBoolToObject(q, "bnb_4bit_use_double_quant", true);
    cJSON_AddBoolToObject(q, "load_in_4bit", true);
    cJSON_AddBoolToObject(q, "load_in_8bit", false);
    cJSON_AddStringToObject(q, "quant_method", "bitsandbytes");
    return q;
}

/* The pre-quantized copy: every Linear but lm_head in nf4 with double quantization (as `peftc quantize`). */
static pc_status write_nf4_model(const char *dir, const char *nf4_dir, pc_error *err)
{
    fprintf(stderr, "quantizing %s to nf4 + double quant into %s ...\n", dir, nf4_dir);
    PC_TRY(pc_mkdirs(nf4_dir, err));
    pc_model_options opts = { .num_labels = 0, .id2label = NULL, .seed = 42 };
    pc_model *m = NULL;
    PC_TRY(pc_model_load(dir, &opts, &m, err));
    pc_quant_options q = { PC_Q4_NF4, true, PC_Q4_COMPUTE_BF16, NULL, 0 };
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", nf4_dir);
    pc_status s = pc_model_save_weights_4bit(m, path, PC_DT_F32, &q, err);   /* quantizes on the way out */
    if (!s) s = write_config(nf4_dir, quantization_config(), err);
    pc_model_free(m);
    return s;
}

static pc_status prepare(const char *dir, const char *nf4_dir, pc_error *err)
{
    if (model_dir_ready(dir, false)) printf("reusing %s\n", dir);
    else PC_TRY(write_random_model(dir, err));
    if (model_dir_ready(nf4_dir, true)) printf("reusing %s\n", nf4_dir);
    else PC_TRY(write_nf4_model(dir, nf4_dir, err));
    return PEFTC_OK;
}

/* ---------- loading ---------- */

static int count_4bit(const pc_model *m)
{
    int n = 0;
    for (int i = 0; i < m->n_linears; i++) n += m->linears[i]->q4 != NULL;
    return n;
}

/* Loads dir; a 4-bit model computes in bf16 (bnb_4bit_compute_dtype bfloat16). */
static pc_status load(const char *dir, bool want_4bit, pc_model **out, pc_error *err)
{
    if (!model_dir_ready(dir, want_4bit))
        return pc_fail(err, PEFTC_ERR_INVALID, "%s does not hold the benchmark's %s model: run `bench_llama prepare` first",
                       dir, want_4bit ? "4-bit" : "fp32");
    pc_model_options opts = { .num_labels = 0, .id2label = NULL, .seed = 42 };
    PC_TRY(pc_model_load(dir, &opts, out, err));
    pc_model *m = *out;
    for (int i = 0; i < m->n_linears; i++)
        if (m->linears[i]->q4) m->linears[i]->q4_compute = PC_Q4_COMPUTE_BF16;
    return PEFTC_OK;
}

static void random_ids(int32_t *ids, int n, int vocab, const char *stream)
{
    pc_rng rng;
    pc_rng_init(&rng, 42, stream);
    for (int i = 0; i < n; i++) ids[i] = (int32_t)pc_rng_below(&rng, (uint64_t)vocab);
}

/* ---------- training ---------- */

/* LoRA r=16, alpha 32, dropout 0.05 on q_proj, k_proj, v_proj, task CAUSAL_LM. */
static pc_status apply_lora(pc_model *m, pc_peft_model **out, pc_error *err)
{
    static const char *const targets[] = { "q_proj", "k_proj", "v_proj" };
    pc_lora_config lc;
    pc_lora_config_init(&lc);
    snprintf(lc.task_type, sizeof lc.task_type, "CAUSAL_LM");
    lc.r = 16;
    lc.lora_alpha = 32;
    lc.lora_dropout = 0.05;
    lc.target_modules = calloc(3, sizeof *lc.target_modules);
    if (!lc.target_modules) { pc_lora_config_free(&lc); return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory"); }
    lc.n_target_modules = 3;
    for (int i = 0; i < 3; i++) {
        lc.target_modules[i] = strdup(targets[i]);
        if (!lc.target_modules[i]) { pc_lora_config_free(&lc); return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory"); }
    }
    return pc_peft_model_create(m, &lc, 42, out, err);
}

/* One Trainer step, with the time of each phase added to t. */
static pc_status train_step(pc_model *m, pc_peft_model *p, pc_optimizer *opt, const pc_batch *b, phase_times *t,
                            float *loss, pc_error *err)
{
    /* the bench's own clock for its figures; the profile's phase handles (0 while it is off) beside it */
    double t0 = now_seconds(), ph = pc_phase_begin();
    PC_TRY(m->ops->forward(m, b, true, loss, err));
    pc_phase_end(PC_PHASE_FORWARD, ph);
    double t1 = now_seconds();
    ph = pc_phase_begin();
    m->ops->backward(m, b, 1.0f);
    pc_phase_end(PC_PHASE_BACKWARD, ph);
    double t2 = now_seconds();
    ph = pc_phase_begin();
    pc_clip_grad_norm(&p->trainable, 1.0);
    pc_optimizer_step(opt, &p->trainable, 2e-4);
    pc_param_list_zero_grad(&p->trainable);
    pc_phase_end(PC_PHASE_OPTIMIZER, ph);
    double t3 = now_seconds();
    pc_profile_step_done(t3 - t0);
    t->forward += t1 - t0;
    t->backward += t2 - t1;
    t->optimizer += t3 - t2;
    if (t->fastest == 0 || t3 - t0 < t->fastest) t->fastest = t3 - t0;
    return PEFTC_OK;
}

static void print_setup(const pc_model *m, const pc_peft_model *p, const char *dir, bool qlora, const char *optim)
{
    char line[200];
    pc_peft_trainable_line(p, line, sizeof line);
    printf("model: TinyLlama-1.1B shape (hidden 2048, intermediate 5632, 22 layers, 32 heads, 4 kv heads, "
           "vocab 32000), random weights in %s\n", dir);
    if (qlora)
        printf("base: %d Linears nf4 + double quant, bf16 compute (%s), lm_head and embeddings fp32; "
               "gradient checkpointing on\n", count_4bit(m), pc_q4_bf16_native() ? "AVX-512 BF16" : "emulated");
    else
        printf("base: fp32 (mmap'ed); gradient checkpointing off\n");
    printf("peft: LoRA r=16 alpha=32 dropout=0.05 on q_proj,k_proj,v_proj; %s\n", line);
    printf("optimizer: %s (lr 2e-4, clip_grad_norm 1.0)\n", optim);
    printf("batch: 1 x %d random tokens, labels = input_ids, training mode\n", SEQ);
    printf("threads: %d   gemm: %s\n", omp_get_max_threads(), pc_gemm_backend());
}

/* The timed steps' time by op kind (base/profile.h), as `peftc train --profile` shows it. */
static void print_ops(void)
{
    pc_profile_report r;
    pc_profile_read(&r);
    if (r.steps == 0) return;
    printf("ops (ms/step):");
    for (int i = 0; i < PC_OP_COUNT; i++)
        if (r.op[i] > 0) printf(" %s %.0f", pc_op_name(i), 1e3 * r.op[i] / (double)r.steps);
    printf("\n");
}

static void print_training(const char *name, int steps, const phase_times *t, double elapsed, float loss)
{
    printf("steps: %d timed after %d warm-up; last loss %.4f\n", steps, WARMUP_STEPS, loss);
    printf("phases (s/step): forward %.3f  backward %.3f  optimizer %.3f (clip+step+zero_grad)\n",
           t->forward / steps, t->backward / steps, t->optimizer / steps);
    printf("fastest step: %.3f s\n", t->fastest);
    print_ops();
    print_result(name, (double)SEQ * steps / elapsed, elapsed / steps, SEQ / t->fastest);
}

/* The Trainer's peak-memory estimate for this run (its data: the one batch), to hold against the measured peak. */
static void print_estimate(const pc_model *m, const pc_peft_model *p, const pc_optimizer *opt, int32_t *ids)
{
    int64_t offsets[2] = { 0, SEQ };
    pc_encoded data = { .n = 1, .offsets = offsets, .ids = ids, .max_len = SEQ }, none = { 0 };
    pc_memory_estimate e;
    pc_memory_estimate_run(m, &p->trainable, pc_optimizer_state_bytes(opt), false, &data, &none, &e);
    char line[400];
    pc_memory_line(&e, line, sizeof line);
    printf("%s\n", line);
}

static pc_status train(bool qlora, bool bf16, int kept_blocks, int steps, const char *dir, pc_error *err)
{
    const char *optim = qlora ? "paged_adamw_8bit" : "adamw_torch";
    pc_model *m = NULL;
    pc_peft_model *p = NULL;
    pc_optimizer *opt = NULL;
    static int32_t ids[SEQ];
    static uint8_t mask[SEQ];
    pc_status s = load(dir, qlora, &m, err);
    if (!s) pc_model_choose_packing(m, bf16, PC_PACK_F32_BUDGET);   /* as the Trainer */
    if (!s) {
        m->gradient_checkpointing = qlora;   /* prepare_model_for_kbit_training turns it on */
        m->checkpoint_kept_blocks = kept_blocks;
        s = apply_lora(m, &p, err);
    }
    if (!s) s = m->ops->reserve(m, 1, SEQ, err);
    pc_optim_args oa = { 0.9, 0.999, 1e-8, 0.0, NULL };
    if (!s) s = pc_optimizer_create(optim, &p->trainable, &oa, &opt, err);
    if (!s) {
        print_setup(m, p, dir, qlora, optim);
        if (bf16) printf("bf16: true: the frozen fp32 Linears (lm_head) packed in bf16, %s\n",
                         pc_pgemm_kernel_name(PC_PACK_BF16));
        if (m->gradient_checkpointing && kept_blocks > 0)
            printf("gradient_checkpointing_kept_blocks %d: %d blocks keep their MLP's gate/up outputs (%.1f MiB each)\n",
                   kept_blocks, kept_blocks < m->keepable_blocks ? kept_blocks : m->keepable_blocks,
                   (double)m->kept_block_bytes / 1048576.0);
        printf("peak RSS after load + reserve: %.0f MB\n", peak_rss_mb());
        random_ids(ids, SEQ, m->vocab_size, "bench_batch");
        memset(mask, 1, sizeof mask);
        print_estimate(m, p, opt, ids);
    }
    pc_batch b = { 1, SEQ, ids, mask, ids };   /* labels = input_ids (the model shifts them) */
    phase_times warm = { 0 }, t = { 0 };
    float loss = 0;
    for (int i = 0; !s && i < WARMUP_STEPS; i++) s = train_step(m, p, opt, &b, &warm, &loss, err);
    if (!s) printf("warm-up step: %.3f s, loss %.4f\n", warm.fastest, loss);
    pc_profile_enable(true);   /* the timed steps only */
    double start = now_seconds();
    for (int i = 0; !s && i < steps; i++) s = train_step(m, p, opt, &b, &t, &loss, err);
    const char *name = !qlora ? (bf16 ? "peftc-lora-bf16" : "peftc-lora")
                       : kept_blocks ? (bf16 ? "peftc-qlora-bf16-kept" : "peftc-qlora-kept")
                                     : (bf16 ? "peftc-qlora-bf16" : "peftc-qlora");
    if (!s) print_training(name, steps, &t, now_seconds() - start, loss);
    pc_optimizer_free(opt);
    pc_peft_model_free(p);
    pc_model_free(m);
    return s;
}

/* ---------- generation ---------- */

static int32_t argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++) if (x[i] > x[best]) best = i;
    return best;
}

/* Greedy decoding: the prompt fed through the KV cache, then NEW_TOKENS tokens, each fed back. */
static pc_status generate(bool nf4, const char *dir, pc_error *err)
{
    pc_model *m = NULL;
    PC_TRY(load(dir, nf4, &m, err));
    int32_t prompt[PROMPT], next = 0;
    random_ids(prompt, PROMPT, m->vocab_size, "bench_prompt");
    printf("model: TinyLlama-1.1B shape, %s, random weights in %s\n",
           nf4 ? "nf4 + double quant Linears, bf16 compute" : "fp32 (mmap'ed)", dir);
    printf("greedy decoding: %d-token prompt, %d new tokens, KV cache; threads: %d   gemm: %s\n", PROMPT, NEW_TOKENS,
           omp_get_max_threads(), pc_gemm_backend());
    pc_status s = m->ops->cache_reset(m, PROMPT + NEW_TOKENS, err);
    double t0 = now_seconds();
    if (!s) s = m->ops->decode(m, prompt, PROMPT, err);
    double prefill = now_seconds() - t0, fastest = 0, start = now_seconds();
    for (int i = 0; !s && i < NEW_TOKENS; i++) {
        double ts = now_seconds();
        next = argmax(m->logits, m->vocab_size);
        s = m->ops->decode(m, &next, 1, err);
        double dt = now_seconds() - ts;
        if (fastest == 0 || dt < fastest) fastest = dt;
    }
    double elapsed = now_seconds() - start;
    if (!s) {
        printf("prefill: %.3f s for %d tokens (one at a time); last token id %d\n", prefill, PROMPT, (int)next);
        print_result(nf4 ? "peftc-generate-nf4" : "peftc-generate-fp32", NEW_TOKENS / elapsed, elapsed / NEW_TOKENS,
                     1.0 / fastest);
    }
    pc_model_free(m);
    return s;
}

/* ---------- main ---------- */

static int usage(void)
{
    fprintf(stderr, "usage: bench_llama [--dir DIR] prepare | [--bf16] lora [steps >= 1] | "
                    "[--bf16] [--kept-blocks N] qlora [steps >= 1] | generate fp32|nf4\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *dir = DEFAULT_DIR, *pos[2] = { NULL, NULL };
    int n_pos = 0;
    bool bf16 = false;
    int kept_blocks = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) dir = argv[++i];
        else if (strcmp(argv[i], "--kept-blocks") == 0 && i + 1 < argc) kept_blocks = atoi(argv[++i]);
        else if (strcmp(argv[i], "--bf16") == 0) bf16 = true;
        else if (n_pos < 2) pos[n_pos++] = argv[i];
        else return usage();
    }
    if (!pos[0]) return usage();
    char nf4_dir[4096];
    if (snprintf(nf4_dir, sizeof nf4_dir, "%s-nf4", dir) >= (int)sizeof nf4_dir) return usage();
    const char *mode = pos[0];
    int steps = pos[1] ? atoi(pos[1]) : 3;
    pc_error err = { 0 };
    pc_status s;
    if (strcmp(mode, "prepare") == 0 && !pos[1]) s = prepare(dir, nf4_dir, &err);
    else if ((strcmp(mode, "lora") == 0 || strcmp(mode, "qlora") == 0) && steps >= 1)
        s = train(mode[0] == 'q', bf16, kept_blocks, steps, mode[0] == 'q' ? nf4_dir : dir, &err);
    else if (strcmp(mode, "generate") == 0 && pos[1] && (!strcmp(pos[1], "fp32") || !strcmp(pos[1], "nf4")))
        s = generate(pos[1][0] == 'n', pos[1][0] == 'n' ? nf4_dir : dir, &err);
    else return usage();
    if (s != PEFTC_OK) {
        fprintf(stderr, "bench_llama: %s\n", err.msg);
        return 1;
    }
    return 0;
}
