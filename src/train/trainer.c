#include "train/trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/fs.h"
#include "base/profile.h"
#include "base/threads.h"
#include "formats/json.h"
#include "models/quantized.h"
#include "train/checkpoints.h"
#include "train/optim.h"

typedef struct run {
    const pc_config *cfg;
    const pc_trainer_hooks *hooks;
    pc_tokenizer *tok;
    pc_model *model;
    pc_peft_model *peft;
    pc_encoded train, eval;
    pc_batch_buf bb;
    int *order;
    pc_optimizer *opt;
    pc_rng data_rng;
    cJSON *log_history;
    int n_batches;             /* micro-batches per epoch */
    long steps_per_epoch, max_steps, warmup;
    long step;
    long saved_step;                 /* step of the last checkpoint this run wrote (-1: none) */
    int epoch, batch_in_epoch;
    double tr_loss, total_loss;      /* loss since the last log, and over the whole run */
    int bad_steps;                   /* consecutive steps skipped for a non-finite loss or gradient */
    long last_logged, tokens;
    double start_time;
} run;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void message(const run *r, const char *text)
{
    if (r->hooks && r->hooks->on_message) r->hooks->on_message(r->hooks->ud, text);
}

/* ---------- set-up ---------- */


static pc_status copy_list(char ***dst, int *n_dst, char **src, int n, pc_error *err)
{
    *dst = calloc((size_t)(n ? n : 1), sizeof **dst);
    if (!*dst) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        if (!((*dst)[i] = strdup(src[i]))) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
        (*n_dst)++;
    }
    return PEFTC_OK;
}

/* LoraConfig from the flat run configuration (get_peft_model's SEQ_CLS rule included). */
static pc_status lora_config_from(const pc_config *c, pc_lora_config *lc, pc_error *err)
{
    pc_lora_config_init(lc);
    snprintf(lc->task_type, sizeof lc->task_type, "%s", c->task_type);
    lc->r = c->r;
    lc->lora_alpha = c->lora_alpha;
    lc->lora_dropout = c->lora_dropout;
    lc->use_rslora = c->use_rslora;
    lc->use_dora = c->use_dora;
    lc->fan_in_fan_out = c->fan_in_fan_out;
    lc->bias = strcmp(c->bias, "all") == 0 ? PC_BIAS_ALL : strcmp(c->bias, "lora_only") == 0 ? PC_BIAS_LORA_ONLY : PC_BIAS_NONE;
    lc->init_lora_weights = strcmp(c->init_lora_weights, "gaussian") == 0 ? PC_LORA_INIT_GAUSSIAN
                          : strcmp(c->init_lora_weights, "false") == 0 ? PC_LORA_INIT_NONE : PC_LORA_INIT_DEFAULT;
    if (!(lc->base_model_name_or_path = strdup(c->model_name_or_path))) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
    if (c->target_modules_is_regex) {
        if (!(lc->target_regex = strdup(c->target_modules_regex))) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
    } else if (c->n_target_modules == 1 && strcmp(c->target_modules[0], "all-linear") == 0) {
        lc->all_linear = true;
    } else {
        PC_TRY(copy_list(&lc->target_modules, &lc->n_target_modules, c->target_modules, c->n_target_modules, err));
    }
    PC_TRY(copy_list(&lc->modules_to_save, &lc->n_modules_to_save, c->modules_to_save, c->n_modules_to_save, err));
    return pc_lora_config_add_task_modules(lc, err);
}

static bool has_4bit(const pc_model *m)
{
    for (int i = 0; i < m->n_linears; i++) if (m->linears[i]->q4) return true;
    return false;
}

/* BitsAndBytesConfig: load_in_4bit quantizes the Linears transformers would (not the output head, not
 * modules_to_save nor llm_int8_skip_modules); a pre-quantized checkpoint is 4-bit already. Either way the
 * products run in bnb_4bit_compute_dtype. */
static pc_status apply_4bit(const pc_config *c, pc_model *m, pc_error *err)
{
    pc_q4_compute compute = strcmp(c->bnb_4bit_compute_dtype, "float32") == 0 ? PC_Q4_COMPUTE_F32 : PC_Q4_COMPUTE_BF16;
    if (c->load_in_4bit && !has_4bit(m)) {
        char *skip[64];
        int n = 0;
        for (int i = 0; i < c->n_llm_int8_skip_modules && n < 60; i++) skip[n++] = c->llm_int8_skip_modules[i];
        for (int i = 0; i < c->n_modules_to_save && n < 62; i++) skip[n++] = c->modules_to_save[i];
        if (m->task == PC_TASK_SEQ_CLS) { skip[n++] = "classifier"; skip[n++] = "score"; }
        pc_quant_options o = { strcmp(c->bnb_4bit_quant_type, "nf4") == 0 ? PC_Q4_NF4 : PC_Q4_FP4,
                               c->bnb_4bit_use_double_quant, compute, skip, n };
        PC_TRY(pc_model_quantize_4bit(m, &o, err));
    }
    for (int i = 0; i < m->n_linears; i++) m->linears[i]->q4_compute = compute;
    return PEFTC_OK;
}

static pc_status load_model(const pc_config *c, pc_model **model, pc_error *err)
{
    pc_model_options opts = { .num_labels = c->num_labels, .id2label = c->id2label, .seed = (uint64_t)c->seed };
    if (!c->id2label && !c->num_labels_given) opts.num_labels = 0;  /* take config.json's labels */
    if (!c->model_name_or_path) return pc_fail(err, PEFTC_ERR_INVALID, "model_name_or_path is required");
    PC_TRY(pc_model_load(c->model_name_or_path, &opts, model, err));
    pc_status s = apply_4bit(c, *model, err);
    /* bf16: true runs the frozen f32 weights' products in bf16 (kernels/pgemm; fp32 accumulation); adapters,
     * gradients and the optimizer stay fp32 */
    if (!s) pc_model_choose_packing(*model, c->bf16, PC_PACK_F32_BUDGET);
    if (s) { pc_model_free(*model); *model = NULL; }
    return s;
}

pc_status pc_load_for_inference(const pc_config *cfg, pc_model **model, pc_peft_model **peft, pc_tokenizer **tok,
                                pc_error *err)
{
    *model = NULL; *peft = NULL; *tok = NULL;
    PC_TRY(load_model(cfg, model, err));
    pc_status s = pc_tokenizer_load(cfg->model_name_or_path, tok, err);
    if (!s && cfg->adapter_name_or_path) s = pc_peft_load(*model, cfg->adapter_name_or_path, peft, err);
    if (s) {
        pc_peft_model_free(*peft);
        pc_model_free(*model);
        pc_tokenizer_free(*tok);
        *model = NULL; *peft = NULL; *tok = NULL;
    }
    return s;
}

static pc_status build_peft(run *r, pc_error *err)
{
    const pc_config *c = r->cfg;
    if (c->adapter_name_or_path) return pc_peft_load(r->model, c->adapter_name_or_path, &r->peft, err);
    pc_lora_config lc;
    pc_status s = lora_config_from(c, &lc, err);
    if (s) { pc_lora_config_free(&lc); return s; }
    return pc_peft_model_create(r->model, &lc, (uint64_t)c->seed, &r->peft, err);
}

/* The model's task must be the one the config names (PEFT's task_type). */
static pc_status check_task(const pc_config *c, const pc_model *m, pc_error *err)
{
    bool causal = m->task == PC_TASK_CAUSAL_LM;
    if (causal == (strcmp(c->task_type, "CAUSAL_LM") == 0)) return PEFTC_OK;
    return pc_fail(err, PEFTC_ERR_INVALID, "task_type is %s but %s is %s: set task_type %s", c->task_type,
                   m->architecture, causal ? "a causal language model" : "a sequence classifier",
                   causal ? "CAUSAL_LM" : "SEQ_CLS");
}

static pc_status load_lm_file(run *r, const char *path, pc_encoded *out, pc_error *err)
{
    const pc_config *c = r->cfg;
    pc_dataset *ds = NULL;
    PC_TRY(pc_lm_dataset_load(path, c->text_column, &ds, err));
    pc_status s = pc_encode_lm_dataset(r->tok, ds, c->max_length, c->packing, c->completion_only_loss, out, err);
    pc_dataset_free(ds);
    return s;
}

static pc_status load_data(run *r, pc_error *err)
{
    const pc_config *c = r->cfg;
    if (!c->train_file) return pc_fail(err, PEFTC_ERR_INVALID, "train_file is required");
    if (r->model->task == PC_TASK_CAUSAL_LM) {
        PC_TRY(load_lm_file(r, c->train_file, &r->train, err));
        return c->validation_file ? load_lm_file(r, c->validation_file, &r->eval, err) : PEFTC_OK;
    }
    pc_dataset *ds = NULL;
    PC_TRY(pc_dataset_load(c->train_file, c->text_column, c->label_column, r->model->id2label, r->model->num_labels,
                           true, &ds, err));
    pc_status s = pc_encode_dataset(r->tok, ds, c->max_length, &r->train, err);
    pc_dataset_free(ds);
    if (s || !c->validation_file) return s;
    PC_TRY(pc_dataset_load(c->validation_file, c->text_column, c->label_column, r->model->id2label,
                           r->model->num_labels, true, &ds, err));
    s = pc_encode_dataset(r->tok, ds, c->max_length, &r->eval, err);
    pc_dataset_free(ds);
    return s;
}

/* Step counts as transformers' set_initial_training_values. */
static void plan_steps(run *r)
{
    const pc_config *c = r->cfg;
    int B = c->per_device_train_batch_size, GA = c->gradient_accumulation_steps;
    r->n_batches = c->dataloader_drop_last ? r->train.n / B : (r->train.n + B - 1) / B;
    if (r->n_batches < 1) r->n_batches = 1;
    r->steps_per_epoch = r->n_batches / GA + (r->n_batches % GA > 0);
    if (r->steps_per_epoch < 1) r->steps_per_epoch = 1;
    r->max_steps = c->max_steps > 0 ? c->max_steps : (long)ceil(c->num_train_epochs * (double)r->steps_per_epoch);
    r->warmup = c->warmup_steps > 0 ? c->warmup_steps : (long)ceil((double)r->max_steps * c->warmup_ratio);
}

static void estimate_run(const run *r, pc_memory_estimate *e)
{
    pc_memory_estimate_run(r->model, &r->peft->trainable, pc_optimizer_state_bytes(r->opt),
                           strncmp(r->cfg->optim, "paged", 5) == 0, &r->train, &r->eval, e);
}

/* The peak memory estimate, as a line of output; a run that cannot fit stops here (dry_run only reports). */
static pc_status estimate_memory(run *r, pc_memory_estimate *e, pc_error *err)
{
    const pc_config *c = r->cfg;
    estimate_run(r, e);
    pc_memory_available(c->max_memory_mb, e);
    char line[400];
    pc_memory_line(e, line, sizeof line);
    message(r, line);
    return c->dry_run ? PEFTC_OK : pc_memory_check(e, err);
}

/* gradient_checkpointing_kept_blocks -1: as many blocks keep their MLP's outputs as max_memory_mb has room for
 * above the estimate with none kept. */
static pc_status fit_kept_blocks(run *r, int B, int T, pc_error *err)
{
    pc_model *m = r->model;
    pc_memory_estimate e;
    estimate_run(r, &e);
    m->checkpoint_kept_blocks = pc_memory_blocks_to_keep(&e, (double)r->cfg->max_memory_mb * 1048576.0,
                                                         (double)m->kept_block_bytes, m->keepable_blocks);
    return m->ops->reserve(m, B, T, err);
}

/* What gradient_checkpointing_kept_blocks got: the blocks that keep their MLP's gate/up outputs, and why fewer. */
static void report_kept_blocks(const run *r)
{
    const pc_model *m = r->model;
    int want = m->checkpoint_kept_blocks, kept = want < m->keepable_blocks ? want : m->keepable_blocks;
    bool fitted = r->cfg->gradient_checkpointing_kept_blocks < 0;
    if (want == 0 && !fitted) return;
    char line[400];
    if (!m->gradient_checkpointing)
        snprintf(line, sizeof line, "gradient_checkpointing_kept_blocks %d: no effect without gradient checkpointing",
                 r->cfg->gradient_checkpointing_kept_blocks);
    else
        snprintf(line, sizeof line, "gradient checkpointing: %d block(s) keep their MLP's gate/up outputs (%.1f MiB "
                 "each) instead of recomputing them%s", kept, (double)m->kept_block_bytes / 1048576.0,
                 fitted ? " (as many as max_memory_mb has room for)"
                 : kept < want ? " (fewer than asked: only Llama-family blocks below the top one and not below the "
                                 "lowest one that trains, whose gate_proj and up_proj train nothing, can)" : "");
    message(r, line);
}

static pc_status prepare(run *r, pc_memory_estimate *memory, pc_error *err)
{
    const pc_config *c = r->cfg;
    PC_TRY(load_model(c, &r->model, err));
    PC_TRY(check_task(c, r->model, err));
    r->model->neftune_noise_alpha = (float)c->neftune_noise_alpha;
    /* prepare_model_for_kbit_training turns gradient checkpointing on for 4-bit training */
    r->model->gradient_checkpointing = c->gradient_checkpointing || has_4bit(r->model);
    r->model->checkpoint_kept_blocks = c->gradient_checkpointing_kept_blocks > 0 ? c->gradient_checkpointing_kept_blocks : 0;
    PC_TRY(pc_tokenizer_load(c->model_name_or_path, &r->tok, err));
    PC_TRY(build_peft(r, err));
    char line[200];
    pc_peft_trainable_line(r->peft, line, sizeof line);
    message(r, line);
    PC_TRY(load_data(r, err));
    if (r->train.n == 0) return pc_fail(err, PEFTC_ERR_INVALID, "%s: the training set is empty", c->train_file);
    /* activations for the larger of the train and eval batches (an eval batch only when there is an eval set) */
    int eval_B = r->eval.n > 0 ? c->per_device_eval_batch_size : 0;
    int B = c->per_device_train_batch_size > eval_B ? c->per_device_train_batch_size : eval_B;
    int T = r->train.max_len > r->eval.max_len ? r->train.max_len : r->eval.max_len;
    PC_TRY(r->model->ops->reserve(r->model, B, T, err));
    PC_TRY(pc_batch_buf_init(&r->bb, B, T, err));
    r->order = malloc(sizeof *r->order * (size_t)r->train.n);
    if (!r->order) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
    pc_rng_init(&r->data_rng, (uint64_t)c->seed, "data_order");
    r->log_history = cJSON_CreateArray();
    if (!r->log_history) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
    plan_steps(r);
    if (!c->dry_run) {   /* a dry run writes nothing */
        PC_TRY(pc_mkdirs(c->output_dir, err));
        pc_checkpoint_remove_leftovers(c->output_dir);
    }
    /* paged optimizer state lives in a file under output_dir, so the OS can evict it even without swap */
    pc_optim_args oa = { c->adam_beta1, c->adam_beta2, c->adam_epsilon, c->weight_decay,
                         c->dry_run ? NULL : c->output_dir };
    PC_TRY(pc_optimizer_create(c->optim, &r->peft->trainable, &oa, &r->opt, err));
    if (c->gradient_checkpointing_kept_blocks < 0) PC_TRY(fit_kept_blocks(r, B, T, err));
    report_kept_blocks(r);
    return estimate_memory(r, memory, err);
}

static void release(run *r)
{
    pc_optimizer_free(r->opt);
    free(r->order);
    pc_batch_buf_free(&r->bb);
    pc_encoded_free(&r->train);
    pc_encoded_free(&r->eval);
    pc_peft_model_free(r->peft);
    pc_model_free(r->model);
    pc_tokenizer_free(r->tok);
    cJSON_Delete(r->log_history);
}

/* Padding id: the tokenizer's pad token, else EOS (as SFT recipes set it), else 0. Padding is masked anyway. */
int32_t pc_padding_id(const pc_tokenizer *tok)
{
    int32_t pad = pc_tokenizer_pad_id(tok);
    if (pad >= 0) return pad;
    int32_t eos = pc_tokenizer_eos_id(tok);
    return eos >= 0 ? eos : 0;
}

/* ---------- evaluation ---------- */

static int argmax(const float *v, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++) if (v[i] > v[best]) best = i;
    return best;
}

pc_status pc_evaluate(pc_model *m, const pc_encoded *data, int batch_size, int32_t pad_id, pc_eval_result *out,
                      pc_error *err)
{
    memset(out, 0, sizeof *out);
    if (data->n == 0 || (!data->labels && !data->token_labels)) return PEFTC_OK;
    pc_batch_buf bb;
    PC_TRY(pc_batch_buf_init(&bb, batch_size, data->max_len, err));
    PC_TRY(m->ops->reserve(m, batch_size, data->max_len, err));
    int *order = malloc(sizeof *order * (size_t)data->n);
    if (!order) { pc_batch_buf_free(&bb); return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory"); }
    pc_epoch_order(order, data->n, false, NULL);
    double loss_sum = 0, weight = 0;
    int correct = 0;
    pc_status s = PEFTC_OK;
    for (int start = 0; !s && start < data->n; start += batch_size) {
        int count = data->n - start < batch_size ? data->n - start : batch_size;
        const pc_batch *b = pc_collate(&bb, data, order + start, count, pad_id);
        float loss;
        s = m->ops->forward(m, b, false, &loss, err);
        loss_sum += (double)loss * m->n_loss_tokens;  /* examples (SEQ_CLS) or target tokens (causal LM) */
        weight += (double)m->n_loss_tokens;
        for (int i = 0; !s && data->labels && i < count; i++)
            correct += argmax(m->logits + (long)i * m->num_labels, m->num_labels) == b->labels[i];
    }
    free(order);
    pc_batch_buf_free(&bb);
    out->n = data->n;
    out->loss = weight > 0 ? loss_sum / weight : 0;
    out->perplexity = exp(out->loss);
    out->accuracy = data->labels ? (double)correct / data->n : NAN;
    return s;
}

/* ---------- logging and saving ---------- */

static double round4(double v) { return round(v * 1e4) / 1e4; }

static double epoch_progress(const run *r)
{
    return r->epoch + (double)r->batch_in_epoch / (double)r->n_batches;
}

static void emit_log(run *r, cJSON *entry)
{
    cJSON_AddNumberToObject(entry, "epoch", round4(epoch_progress(r)));
    cJSON_AddNumberToObject(entry, "step", (double)r->step);
    if (r->hooks && r->hooks->on_log) r->hooks->on_log(r->hooks->ud, entry);
    cJSON_AddItemToArray(r->log_history, entry);
}

static cJSON *trainer_state(const run *r)
{
    const pc_config *c = r->cfg;
    cJSON *s = cJSON_CreateObject();
    cJSON_AddNullToObject(s, "best_metric");
    cJSON_AddNullToObject(s, "best_model_checkpoint");
    cJSON_AddNumberToObject(s, "epoch", round4(epoch_progress(r)));
    cJSON_AddNumberToObject(s, "eval_steps", c->eval_steps > 0 ? c->eval_steps : c->logging_steps);
    cJSON_AddNumberToObject(s, "global_step", (double)r->step);
    cJSON_AddBoolToObject(s, "is_hyper_param_search", false);
    cJSON_AddBoolToObject(s, "is_local_process_zero", true);
    cJSON_AddBoolToObject(s, "is_world_process_zero", true);
    cJSON_AddItemToObject(s, "log_history", cJSON_Duplicate(r->log_history, true));
    cJSON_AddNumberToObject(s, "logging_steps", c->logging_steps);
    cJSON_AddNumberToObject(s, "max_steps", (double)r->max_steps);
    cJSON_AddNumberToObject(s, "num_train_epochs", (double)((r->max_steps + r->steps_per_epoch - 1) / r->steps_per_epoch));
    cJSON_AddNumberToObject(s, "save_steps", c->save_steps);
    cJSON_AddNumberToObject(s, "train_batch_size", c->per_device_train_batch_size);
    cJSON_AddNullToObject(s, "trial_name");
    cJSON_AddNullToObject(s, "trial_params");
    return s;
}

static pc_status write_outputs(const run *r, const char *dir, pc_error *err)
{
    PC_TRY(pc_peft_save(r->peft, dir, err));
    char path[4400];
    snprintf(path, sizeof path, "%s/trainer_state.json", dir);
    cJSON *state = trainer_state(r);
    pc_status s = pc_json_write_file_atomic(path, state, true, err);
    cJSON_Delete(state);
    return s;
}

/* ---------- exact resume: everything the loop needs to continue bit for bit ---------- */

static void put_u64(cJSON *meta, const char *key, uint64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    cJSON_AddStringToObject(meta, key, buf);
}

static void put_rng(cJSON *meta, const char *name, const pc_rng *g)
{
    char key[64];
    snprintf(key, sizeof key, "%s.key0", name); put_u64(meta, key, g->key[0]);
    snprintf(key, sizeof key, "%s.key1", name); put_u64(meta, key, g->key[1]);
    snprintf(key, sizeof key, "%s.counter", name); put_u64(meta, key, g->counter);
}

static void put_double(cJSON *meta, const char *key, double v)
{
    char buf[40];
    snprintf(buf, sizeof buf, "%.17g", v);
    cJSON_AddStringToObject(meta, key, buf);
}

/* training_state.safetensors: the data order of the current epoch, and as metadata the step counters,
 * loss accumulators and the random streams (data order, dropout, NEFTune). */
static pc_status save_training_state(const run *r, const char *dir, pc_error *err)
{
    cJSON *meta = cJSON_CreateObject();
    cJSON_AddStringToObject(meta, "format", "peftc-training-state");
    put_u64(meta, "step", (uint64_t)r->step);
    put_u64(meta, "epoch", (uint64_t)r->epoch);
    put_u64(meta, "batch_in_epoch", (uint64_t)r->batch_in_epoch);
    put_u64(meta, "last_logged", (uint64_t)r->last_logged);
    put_u64(meta, "tokens", (uint64_t)r->tokens);
    put_double(meta, "tr_loss", r->tr_loss);
    put_double(meta, "total_loss", r->total_loss);
    put_rng(meta, "data_rng", &r->data_rng);
    put_rng(meta, "dropout_rng", &r->model->dropout_rng);
    put_rng(meta, "neftune_rng", &r->model->neftune_rng);
    pc_st_item order = { .name = "data_order", .dtype = PC_DT_I32, .ndim = 1, .shape = {r->train.n}, .data = r->order };
    char path[4400];
    snprintf(path, sizeof path, "%s/training_state.safetensors", dir);
    pc_status s = pc_st_write(path, &order, 1, meta, err);
    cJSON_Delete(meta);
    return s;
}

static pc_status get_u64(const cJSON *meta, const char *key, const char *path, uint64_t *out, pc_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, key);
    char *end;
    if (!cJSON_IsString(v) || !*v->valuestring) return pc_fail(err, PEFTC_ERR_FORMAT, "%s: '%s' is missing", path, key);
    *out = strtoull(v->valuestring, &end, 10);
    if (*end) return pc_fail(err, PEFTC_ERR_FORMAT, "%s: '%s' is not an integer", path, key);
    return PEFTC_OK;
}

static pc_status get_double(const cJSON *meta, const char *key, const char *path, double *out, pc_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, key);
    if (!cJSON_IsString(v)) return pc_fail(err, PEFTC_ERR_FORMAT, "%s: '%s' is missing", path, key);
    *out = strtod(v->valuestring, NULL);
    return PEFTC_OK;
}

static pc_status get_rng(const cJSON *meta, const char *name, const char *path, pc_rng *g, pc_error *err)
{
    char key[64];
    snprintf(key, sizeof key, "%s.key0", name); PC_TRY(get_u64(meta, key, path, &g->key[0], err));
    snprintf(key, sizeof key, "%s.key1", name); PC_TRY(get_u64(meta, key, path, &g->key[1], err));
    snprintf(key, sizeof key, "%s.counter", name);
    return get_u64(meta, key, path, &g->counter, err);
}

static pc_status read_training_state(run *r, const pc_safetensors *st, const char *path, pc_error *err)
{
    const cJSON *meta = pc_st_metadata(st);
    uint64_t step, epoch, batch, logged, tokens;
    PC_TRY(get_u64(meta, "step", path, &step, err));
    PC_TRY(get_u64(meta, "epoch", path, &epoch, err));
    PC_TRY(get_u64(meta, "batch_in_epoch", path, &batch, err));
    PC_TRY(get_u64(meta, "last_logged", path, &logged, err));
    PC_TRY(get_u64(meta, "tokens", path, &tokens, err));
    PC_TRY(get_double(meta, "tr_loss", path, &r->tr_loss, err));
    PC_TRY(get_double(meta, "total_loss", path, &r->total_loss, err));
    PC_TRY(get_rng(meta, "data_rng", path, &r->data_rng, err));
    PC_TRY(get_rng(meta, "dropout_rng", path, &r->model->dropout_rng, err));
    PC_TRY(get_rng(meta, "neftune_rng", path, &r->model->neftune_rng, err));
    if ((long)step > r->max_steps || (int)batch >= r->n_batches)
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: step %llu / batch %llu do not fit this run (max_steps %ld, %d batches "
                       "per epoch): resume with the same data and settings", path, (unsigned long long)step,
                       (unsigned long long)batch, r->max_steps, r->n_batches);
    const pc_st_tensor *order = pc_st_find(st, "data_order");
    if (!order || order->dtype != PC_DT_I32 || pc_st_numel(order) != r->train.n)
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: data_order does not match the %d training examples", path, r->train.n);
    memcpy(r->order, order->data, sizeof(int) * (size_t)r->train.n);
    for (int i = 0; i < r->train.n; i++)
        if (r->order[i] < 0 || r->order[i] >= r->train.n) return pc_fail(err, PEFTC_ERR_FORMAT, "%s: bad data_order", path);
    r->step = (long)step; r->epoch = (int)epoch; r->batch_in_epoch = (int)batch;
    r->last_logged = (long)logged; r->tokens = (long)tokens;
    return PEFTC_OK;
}

/* resume_from_checkpoint: the adapter, optimizer, counters, random streams and log of a checkpoint. */
static pc_status resume(run *r, pc_error *err)
{
    const char *arg = r->cfg->resume_from_checkpoint;
    char dir[4200], path[4400];
    if (!strcmp(arg, "true") || !strcmp(arg, "True")) PC_TRY(pc_checkpoint_latest(r->cfg->output_dir, dir, sizeof dir, err));
    else snprintf(dir, sizeof dir, "%s", arg);
    PC_TRY(pc_peft_load_weights(r->peft, dir, err));
    snprintf(path, sizeof path, "%s/optimizer.safetensors", dir);
    PC_TRY(pc_optimizer_load(r->opt, &r->peft->trainable, path, err));
    snprintf(path, sizeof path, "%s/training_state.safetensors", dir);
    pc_safetensors *st = NULL;
    PC_TRY(pc_st_open(path, &st, err));
    pc_status s = read_training_state(r, st, path, err);
    pc_st_close(st);
    if (s) return s;
    snprintf(path, sizeof path, "%s/trainer_state.json", dir);
    cJSON *state = NULL;
    PC_TRY(pc_json_parse_file(path, &state, err));
    cJSON *history = cJSON_DetachItemFromObjectCaseSensitive(state, "log_history");
    cJSON_Delete(state);
    if (!cJSON_IsArray(history)) { cJSON_Delete(history); return pc_fail(err, PEFTC_ERR_FORMAT, "%s: no log_history", path); }
    cJSON_Delete(r->log_history);
    r->log_history = history;
    return PEFTC_OK;
}

/* checkpoint-N/: the adapter, trainer_state.json, optimizer state and training state, written into a
 * temporary directory and renamed into place when complete (train/checkpoints.h); save_total_limit
 * prunes older ones afterwards. A second save at the same step (Ctrl-C right after a scheduled save)
 * writes nothing new. */
static pc_status save_checkpoint(run *r, pc_error *err)
{
    if (r->saved_step == r->step) return PEFTC_OK;
    char tmp[4200], path[4400];
    PC_TRY(pc_checkpoint_begin(r->cfg->output_dir, r->step, tmp, sizeof tmp, err));
    pc_status s = write_outputs(r, tmp, err);
    pc_checkpoint_test_pause();
    snprintf(path, sizeof path, "%s/optimizer.safetensors", tmp);
    if (!s) s = pc_optimizer_save(r->opt, &r->peft->trainable, path, err);
    pc_checkpoint_test_pause();
    if (!s) s = save_training_state(r, tmp, err);
    if (!s) s = pc_checkpoint_commit(r->cfg->output_dir, tmp, r->step, err);
    if (s) { pc_checkpoint_abandon(tmp); return s; }
    r->saved_step = r->step;
    pc_checkpoint_prune(r->cfg->output_dir, r->step, r->cfg->save_total_limit);
    return PEFTC_OK;
}

static pc_status evaluate_and_log(run *r, pc_error *err)
{
    pc_eval_result ev;
    PC_TRY(pc_evaluate(r->model, &r->eval, r->cfg->per_device_eval_batch_size, pc_padding_id(r->tok), &ev, err));
    cJSON *e = cJSON_CreateObject();
    if (r->model->task == PC_TASK_SEQ_CLS) cJSON_AddNumberToObject(e, "eval_accuracy", round4(ev.accuracy));
    else cJSON_AddNumberToObject(e, "eval_perplexity", ev.perplexity);
    cJSON_AddNumberToObject(e, "eval_loss", ev.loss);
    emit_log(r, e);
    return PEFTC_OK;
}

/* ---------- the loop ---------- */

/* The next micro-batch of the epoch, starting a new (reshuffled) epoch when needed. */
static const pc_batch *next_batch(run *r)
{
    int B = r->cfg->per_device_train_batch_size;
    int start = r->batch_in_epoch * B;
    int count = r->train.n - start < B ? r->train.n - start : B;
    return pc_collate(&r->bb, &r->train, r->order + start, count, pc_padding_id(r->tok));
}

static void end_batch(run *r, bool *epoch_ended)
{
    *epoch_ended = ++r->batch_in_epoch >= r->n_batches;
    if (*epoch_ended) { r->batch_in_epoch = 0; r->epoch++; }
}

/* Causal LM: loss targets in the next `micro` micro-batches (transformers' num_items_in_batch, after the
 * shift), so each micro-batch's mean loss is weighted by its share. 0 for sequence classification. */
static long window_targets(const run *r, int micro)
{
    if (r->model->task != PC_TASK_CAUSAL_LM) return 0;
    int B = r->cfg->per_device_train_batch_size;
    long total = 0;
    for (int i = 0; i < micro; i++) {
        int start = (r->batch_in_epoch + i) * B;
        int count = r->train.n - start < B ? r->train.n - start : B;
        total += pc_count_targets(&r->train, r->order + start, count);
    }
    return total;
}

/* A NaN/Inf loss or gradient: the update is skipped and logged; after max_consecutive_nonfinite_steps
 * such steps in a row the run stops with a checkpoint of the last good state. */
static pc_status skip_update(run *r, double loss, double grad_norm, pc_error *err)
{
    r->bad_steps++;
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "skipped_update", !isfinite(loss) ? "non-finite loss" : "non-finite gradient");
    emit_log(r, e);
    if (r->bad_steps < r->cfg->max_consecutive_nonfinite_steps) return PEFTC_OK;
    PC_TRY(save_checkpoint(r, err));
    return pc_fail(err, PEFTC_ERR_NUMERIC, "step %ld: %d consecutive steps with a non-finite %s (last loss %g, "
                   "gradient norm %g); stopped with the last good state in %s/checkpoint-%ld (lower learning_rate?)",
                   r->step, r->bad_steps, !isfinite(loss) ? "loss" : "gradient", loss, grad_norm, r->cfg->output_dir,
                   r->step);
}

/* One optimizer step: GA micro-batches (fewer at the end of an epoch), clip, AdamW. */
static pc_status train_step(run *r, double *loss, double *grad_norm, double *lr, long *tokens, bool *epoch_ended,
                            pc_error *err)
{
    const pc_config *c = r->cfg;
    int ga = c->gradient_accumulation_steps;
    int left = r->n_batches - r->batch_in_epoch;
    int micro = left < ga ? left : ga;
    if (r->batch_in_epoch == 0) pc_epoch_order(r->order, r->train.n, c->shuffle, &r->data_rng);
    long total = window_targets(r, micro);
    double t = pc_phase_begin();
    pc_param_list_zero_grad(&r->peft->trainable);
    pc_phase_end(PC_PHASE_OPTIMIZER, t);
    *loss = 0;
    *epoch_ended = false;
    bool finite = true;
    for (int i = 0; i < micro; i++) {
        t = pc_phase_begin();
        const pc_batch *b = next_batch(r);
        pc_phase_end(PC_PHASE_DATA, t);
        float l;
        t = pc_phase_begin();
        pc_status s = r->model->ops->forward(r->model, b, true, &l, err);
        pc_phase_end(PC_PHASE_FORWARD, t);
        if (s != PEFTC_OK && s != PEFTC_ERR_NUMERIC) return s;
        finite = finite && s == PEFTC_OK;
        /* share of this micro-batch in the step's loss: 1/micro (SEQ_CLS), targets/total (causal LM) */
        float w = total > 0 ? (float)r->model->n_loss_tokens / (float)total : 1.0f / (float)micro;
        if (total == 0 && r->model->task == PC_TASK_CAUSAL_LM) w = 0;
        t = pc_phase_begin();
        if (finite) r->model->ops->backward(r->model, b, w);
        pc_phase_end(PC_PHASE_BACKWARD, t);
        *loss += l * w;
        *tokens += (long)b->B * b->T;
        end_batch(r, epoch_ended);
    }
    t = pc_phase_begin();
    *grad_norm = finite ? pc_clip_grad_norm(&r->peft->trainable, c->max_grad_norm) : NAN;
    pc_phase_end(PC_PHASE_OPTIMIZER, t);
    *lr = c->learning_rate * pc_schedule_factor(pc_schedule_parse(c->lr_scheduler_type), r->step, r->warmup, r->max_steps);
    r->step++;
    if (!isfinite(*loss) || !isfinite(*grad_norm)) return skip_update(r, *loss, *grad_norm, err);
    r->bad_steps = 0;
    t = pc_phase_begin();
    pc_optimizer_step(r->opt, &r->peft->trainable, *lr);
    pc_phase_end(PC_PHASE_OPTIMIZER, t);
    return PEFTC_OK;
}

static void report_progress(run *r, double loss, double lr, long tokens)
{
    if (!r->hooks || !r->hooks->on_progress) return;
    double elapsed = now_seconds() - r->start_time;
    pc_progress p = { r->step, r->max_steps, loss, lr, elapsed > 0 ? tokens / elapsed : 0,
                      elapsed / r->step * (r->max_steps - r->step), epoch_progress(r) };
    r->hooks->on_progress(r->hooks->ud, &p);
}

static pc_status after_step(run *r, double *tr_loss, long *last_logged, double grad_norm, double lr,
                            bool epoch_ended, pc_error *err)
{
    const pc_config *c = r->cfg;
    bool log_now = (c->logging_steps > 0 && r->step % c->logging_steps == 0) || (c->logging_first_step && r->step == 1);
    if (log_now) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "grad_norm", grad_norm);
        cJSON_AddNumberToObject(e, "learning_rate", lr);
        cJSON_AddNumberToObject(e, "loss", round4(*tr_loss / (double)(r->step - *last_logged)));
        emit_log(r, e);
        *tr_loss = 0;
        *last_logged = r->step;
    }
    int eval_every = c->eval_steps > 0 ? c->eval_steps : c->logging_steps;
    bool eval_now = r->eval.n > 0 && ((strcmp(c->eval_strategy, "steps") == 0 && r->step % eval_every == 0) ||
                                      (strcmp(c->eval_strategy, "epoch") == 0 && epoch_ended));
    if (eval_now) PC_TRY(evaluate_and_log(r, err));
    bool save_now = (strcmp(c->save_strategy, "steps") == 0 && c->save_steps > 0 && r->step % c->save_steps == 0) ||
                    (strcmp(c->save_strategy, "epoch") == 0 && epoch_ended);
    if (save_now && r->step < r->max_steps) PC_TRY(save_checkpoint(r, err));
    return PEFTC_OK;
}

static void log_summary(run *r, double total_loss, double runtime)
{
    cJSON *e = cJSON_CreateObject();
    cJSON_AddNumberToObject(e, "total_flos", 0);
    cJSON_AddNumberToObject(e, "train_loss", total_loss / (double)r->step);
    cJSON_AddNumberToObject(e, "train_runtime", round4(runtime));
    long samples = r->step * r->cfg->per_device_train_batch_size * r->cfg->gradient_accumulation_steps;
    cJSON_AddNumberToObject(e, "train_samples_per_second", round(samples / runtime * 1000) / 1000);
    cJSON_AddNumberToObject(e, "train_steps_per_second", round(r->step / runtime * 1000) / 1000);
    emit_log(r, e);
}

/* The first SIGINT/SIGTERM (relayed by the caller through hooks->stop_requested) ends the run after the
 * current optimizer step with a complete checkpoint to resume from. */
static pc_status stop_if_requested(run *r, pc_error *err)
{
    if (!r->hooks || !r->hooks->stop_requested || !*r->hooks->stop_requested) return PEFTC_OK;
    PC_TRY(save_checkpoint(r, err));
    return pc_fail(err, PEFTC_ERR_INTERRUPTED, "interrupted after step %ld of %ld; checkpoint saved in "
                   "%s/checkpoint-%ld; continue with --resume_from_checkpoint %s/checkpoint-%ld", r->step, r->max_steps,
                   r->cfg->output_dir, r->step, r->cfg->output_dir, r->step);
}

static pc_status train_loop(run *r, pc_train_result *res, pc_error *err)
{
    long tokens_at_start = r->tokens;
    r->start_time = now_seconds();
    pc_profile_enable(r->cfg->profile);
    while (r->step < r->max_steps) {
        double loss = 0, grad_norm = 0, lr = 0;
        bool epoch_ended = false;
        double step_start = now_seconds();
        PC_TRY(train_step(r, &loss, &grad_norm, &lr, &r->tokens, &epoch_ended, err));
        pc_profile_step_done(now_seconds() - step_start);
        if (isfinite(loss)) { r->tr_loss += loss; r->total_loss += loss; }
        report_progress(r, loss, lr, r->tokens - tokens_at_start);
        PC_TRY(after_step(r, &r->tr_loss, &r->last_logged, grad_norm, lr, epoch_ended, err));
        PC_TRY(stop_if_requested(r, err));
    }
    double runtime = now_seconds() - r->start_time;
    log_summary(r, r->total_loss, runtime);
    res->global_step = r->step;
    res->train_loss = r->total_loss / (double)r->step;
    res->runtime_seconds = runtime;
    res->tokens_per_second = runtime > 0 ? (r->tokens - tokens_at_start) / runtime : 0;
    return PEFTC_OK;
}

pc_status pc_train(const pc_config *cfg, const pc_trainer_hooks *hooks, pc_train_result *result, pc_error *err)
{
    run r;
    memset(&r, 0, sizeof r);
    memset(result, 0, sizeof *result);
    r.cfg = cfg;
    r.hooks = hooks;
    r.saved_step = -1;
    pc_set_threads(cfg->threads);
    pc_status s = prepare(&r, &result->memory, err);
    if (!s && cfg->dry_run) { release(&r); return PEFTC_OK; }
    int32_t pad = s ? 0 : pc_padding_id(r.tok);
    if (!s && cfg->resume_from_checkpoint) s = resume(&r, err);
    else if (!s && r.eval.n > 0) s = pc_evaluate(r.model, &r.eval, cfg->per_device_eval_batch_size, pad, &result->eval_before, err);
    if (!s) s = train_loop(&r, result, err);
    if (!s && r.eval.n > 0) s = pc_evaluate(r.model, &r.eval, cfg->per_device_eval_batch_size, pad, &result->eval_after, err);
    if (!s && strcmp(cfg->save_strategy, "no") != 0) s = save_checkpoint(&r, err);
    if (!s) s = write_outputs(&r, cfg->output_dir, err);
    release(&r);
    return s;
}
