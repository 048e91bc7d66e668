#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/profile.h"
#include "base/threads.h"
#include "cli/cli.h"
#include "kernels/gemm.h"
#include "kernels/pgemm.h"
#include "formats/safetensors.h"
#include "train/batches.h"
#include "train/trainer.h"

void cli_print_error(const pc_error *err)
{
    fprintf(stderr, "peftc: error: %s\n", err->msg[0] ? err->msg : peftc_status_name(err->code));
}

int cli_parse_args(int argc, char **argv, pc_config *cfg, cli_flags *flags, char ***pos, int *n_pos)
{
    pc_error err = {0};
    *n_pos = 0;
    *pos = calloc((size_t)argc + 1, sizeof **pos);
    if (!*pos) { fprintf(stderr, "peftc: out of memory\n"); return 2; }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) { (*pos)[(*n_pos)++] = argv[i]; continue; }
        char key[128];
        const char *eq = strchr(a + 2, '=');
        size_t klen = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        snprintf(key, sizeof key, "%.*s", (int)klen, a + 2);
        if (!strcmp(key, "json")) { flags->json = 1; continue; }
        if (!strcmp(key, "decode")) { flags->decode = 1; continue; }
        if (!strcmp(key, "requantize")) { flags->requantize = 1; continue; }
        const char *value = eq ? eq + 1 : NULL;
        if (!value && i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) value = argv[++i];
        if (pc_config_set(cfg, key, value, "command line", &err) != PEFTC_OK) { cli_print_error(&err); return 2; }
    }
    pc_set_threads(cfg->threads);
    return 0;
}

int cli_command(const char *name, int argc, char **argv, bool takes_args, cli_runner run)
{
    pc_config cfg;
    pc_config_init(&cfg);
    cli_flags flags = {0};
    char **pos = NULL;
    int n_pos = 0;
    pc_error err = {0};
    int rc = cli_parse_args(argc, argv, &cfg, &flags, &pos, &n_pos);
    if (!rc && !takes_args && n_pos > 0) { fprintf(stderr, "peftc %s: unexpected argument '%s'\n", name, pos[0]); rc = 2; }
    if (!rc && pc_config_validate(&cfg, &err) != PEFTC_OK) { cli_print_error(&err); rc = 2; }
    if (!rc && !cfg.model_name_or_path) { fprintf(stderr, "peftc %s: --model_name_or_path is required\n", name); rc = 2; }
    if (!rc) rc = run(&cfg, &flags, pos, n_pos);
    free(pos);
    pc_config_free(&cfg);
    return rc;
}

/* ---------- train ---------- */

static void print_message(void *ud, const char *text) { (void)ud; printf("%s\n", text); fflush(stdout); }

static void print_log(void *ud, const cJSON *entry)
{
    (void)ud;
    char *s = cJSON_PrintUnformatted(entry);
    if (s && isatty(STDERR_FILENO)) fprintf(stderr, "\r\033[K");
    if (s) { printf("%s\n", s); fflush(stdout); }
    cJSON_free(s);
}

/* A live progress line on a terminal; nothing when stderr is a file (the log lines say it all). */
static void print_progress(void *ud, const pc_progress *p)
{
    (void)ud;
    if (!isatty(STDERR_FILENO)) return;
    int eta = (int)(p->eta_seconds + 0.5);
    fprintf(stderr, "\r\033[Kstep %ld/%ld  loss %.4f  lr %.3g  %.0f tok/s  ETA %d:%02d:%02d", p->step, p->max_steps,
            p->loss, p->learning_rate, p->tokens_per_second, eta / 3600, eta / 60 % 60, eta % 60);
    if (p->step == p->max_steps) fputc('\n', stderr);
    fflush(stderr);
}

static void print_eval(const char *when, const pc_eval_result *e)
{
    if (!e->n) return;
    if (isnan(e->accuracy)) printf("eval %s training: loss %.4f  perplexity %.3f  (%d examples)\n", when, e->loss, e->perplexity, e->n);
    else printf("eval %s training: accuracy %.4f  loss %.4f  (%d examples)\n", when, e->accuracy, e->loss, e->n);
}

/* --dry_run: the estimate's parts and whether the run fits. */
static void print_memory(const pc_memory_estimate *e)
{
    const double mib = 1024.0 * 1024.0;
    printf("peak memory estimate (MiB):\n");
    printf("  weights      %10.1f\n  adapters     %10.1f\n  optimizer    %10.1f%s\n  activations  %10.1f\n"
           "  data         %10.1f\n  runtime      %10.1f\n  total        %10.1f\n", e->weights / mib,
           e->adapters / mib, e->optimizer / mib, e->optimizer_paged ? "  (paged: evictable, not required)" : "",
           e->activations / mib, e->data / mib, e->runtime / mib, e->total / mib);
    if (e->available > 0)
        printf("  available    %10.1f  (%s): %s\n", e->available / mib, e->available_from,
               e->required <= e->available ? "fits" : "does NOT fit");
    printf("dry run: nothing trained or written\n");
}

/* --profile: per-step milliseconds and share of the step of each phase and op kind; "other" is time inside
 * the phases that no op timer covered (residual adds, copies, the model's glue). */
static void print_profile(void)
{
    pc_profile_report p;
    pc_profile_read(&p);
    if (p.steps == 0) return;
    const double per = 1e3 / (double)p.steps, step_ms = p.step_seconds * per;
    printf("profile: %ld steps, %.2f ms per step, %d threads\n", p.steps, step_ms, pc_threads());
    printf("  products: %s; packed kernels %s / %s\n", pc_gemm_backend(), pc_pgemm_kernel_name(PC_PACK_F32),
           pc_pgemm_kernel_name(PC_PACK_BF16));
    printf("  %-22s %10s %8s\n", "phase", "ms/step", "% step");
    double phases = 0, ops = 0;
    for (int i = 0; i < PC_PHASE_COUNT; i++) {
        printf("  %-22s %10.4f %7.1f%%\n", pc_phase_name(i), p.phase[i] * per, 100 * p.phase[i] / p.step_seconds);
        phases += p.phase[i];
    }
    printf("  %-22s %10.4f %7.1f%%\n", "sum of phases", phases * per, 100 * phases / p.step_seconds);
    printf("  %-22s %10s %8s\n", "op kind", "ms/step", "% step");
    for (int i = 0; i < PC_OP_COUNT; i++) {
        printf("  %-22s %10.4f %7.1f%%\n", pc_op_name(i), p.op[i] * per, 100 * p.op[i] / p.step_seconds);
        ops += p.op[i];
    }
    printf("  %-22s %10.4f %7.1f%%\n", "other", (phases - ops) * per, 100 * (phases - ops) / p.step_seconds);
}

/* First SIGINT/SIGTERM: finish the step and save a checkpoint; a second one: exit at once. */
static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    if (stop_requested) _exit(128 + sig);
    stop_requested = 1;
    static const char msg[] = "\npeftc: stopping after this step to save a checkpoint (again to quit now)\n";
    ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)w;
}

int cli_run_training(const pc_config *cfg)
{
    pc_error err = {0};
    if (pc_config_validate(cfg, &err) != PEFTC_OK) { cli_print_error(&err); return 2; }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    pc_trainer_hooks hooks = { print_message, print_log, print_progress, NULL, &stop_requested };
    pc_train_result res;
    if (pc_train(cfg, &hooks, &res, &err) != PEFTC_OK) {
        fputc('\n', stderr);
        cli_print_error(&err);
        return err.code == PEFTC_ERR_INTERRUPTED ? 130 : 1;
    }
    if (cfg->dry_run) { print_memory(&res.memory); return 0; }
    print_eval("before", &res.eval_before);
    print_eval("after", &res.eval_after);
    printf("trained %ld steps in %.1f s (%.0f tokens/s); train_loss %.4f\n", res.global_step, res.runtime_seconds,
           res.tokens_per_second, res.train_loss);
    printf("PEFT adapter written to %s/ (adapter_config.json, adapter_model.safetensors, trainer_state.json)\n",
           cfg->output_dir);
    if (cfg->profile) print_profile();
    return 0;
}

int cmd_train(int argc, char **argv)
{
    pc_config cfg;
    pc_config_init(&cfg);
    pc_error err = {0};
    int rc = 0;
    if (argc > 0 && strncmp(argv[0], "--", 2) != 0) {
        if (pc_config_load_json(&cfg, argv[0], &err) != PEFTC_OK) { cli_print_error(&err); rc = 2; }
        argc--; argv++;
    }
    cli_flags flags = {0};
    char **pos = NULL;
    int n_pos = 0;
    if (!rc) rc = cli_parse_args(argc, argv, &cfg, &flags, &pos, &n_pos);
    if (!rc && n_pos > 0) { fprintf(stderr, "peftc train: unexpected argument '%s'\n", pos[0]); rc = 2; }
    if (!rc) rc = cli_run_training(&cfg);
    free(pos);
    pc_config_free(&cfg);
    return rc;
}

/* ---------- eval / predict ---------- */

int load_inference(const pc_config *cfg, loaded *l)
{
    pc_error err = {0};
    if (!cfg->model_name_or_path) { fprintf(stderr, "peftc: --model_name_or_path is required\n"); return 2; }
    if (pc_load_for_inference(cfg, &l->model, &l->peft, &l->tok, &err) != PEFTC_OK) { cli_print_error(&err); return 1; }
    return 0;
}

void unload(loaded *l)
{
    pc_peft_model_free(l->peft);
    pc_model_free(l->model);
    pc_tokenizer_free(l->tok);
}

static int run_eval(pc_config *cfg, const cli_flags *flags, char **args, int n_args)
{
    (void)args; (void)n_args;
    if (!cfg->validation_file) { fprintf(stderr, "peftc eval: --validation_file is required\n"); return 2; }
    loaded l = {0};
    int rc = load_inference(cfg, &l);
    if (rc) return rc;
    pc_error err = {0};
    pc_dataset *ds = NULL;
    pc_encoded enc = {0};
    pc_eval_result ev;
    bool causal = l.model->task == PC_TASK_CAUSAL_LM;
    pc_status s = causal ? pc_lm_dataset_load(cfg->validation_file, cfg->text_column, &ds, &err)
                         : pc_dataset_load(cfg->validation_file, cfg->text_column, cfg->label_column, l.model->id2label,
                                           l.model->num_labels, true, &ds, &err);
    if (!s) s = causal ? pc_encode_lm_dataset(l.tok, ds, cfg->max_length, cfg->packing, cfg->completion_only_loss, &enc, &err)
                       : pc_encode_dataset(l.tok, ds, cfg->max_length, &enc, &err);
    if (!s) s = pc_evaluate(l.model, &enc, cfg->per_device_eval_batch_size, pc_padding_id(l.tok), &ev, &err);
    const char *metric = causal ? "eval_perplexity" : "eval_accuracy";
    double value = causal ? ev.perplexity : ev.accuracy;
    if (s) { cli_print_error(&err); rc = 1; }
    else if (flags->json) printf("{\"eval_loss\": %.6f, \"%s\": %.6f, \"eval_samples\": %d}\n", ev.loss, metric, value, ev.n);
    else printf("eval_loss %.4f\n%s %.4f\neval_samples %d\n", ev.loss, metric, value, ev.n);
    pc_encoded_free(&enc);
    pc_dataset_free(ds);
    unload(&l);
    return rc;
}

int cmd_eval(int argc, char **argv) { return cli_command("eval", argc, argv, false, run_eval); }

static void softmax(float *p, const float *logits, int n)
{
    float mx = logits[0];
    for (int i = 1; i < n; i++) if (logits[i] > mx) mx = logits[i];
    double sum = 0;
    for (int i = 0; i < n; i++) sum += exp((double)(logits[i] - mx));
    for (int i = 0; i < n; i++) p[i] = (float)(exp((double)(logits[i] - mx)) / sum);
}

static void print_prediction(const pc_model *m, const char *text, const float *logits, int json)
{
    float probs[1024];
    int n = m->num_labels < 1024 ? m->num_labels : 1024, best = 0;
    softmax(probs, logits, n);
    for (int i = 1; i < n; i++) if (probs[i] > probs[best]) best = i;
    if (json) {
        cJSON *o = cJSON_CreateObject(), *p = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "text", text);
        cJSON_AddStringToObject(o, "label", m->id2label[best]);
        for (int i = 0; i < n; i++) cJSON_AddNumberToObject(p, m->id2label[i], probs[i]);
        cJSON_AddItemToObject(o, "probabilities", p);
        char *s = cJSON_PrintUnformatted(o);
        if (s) printf("%s\n", s);
        cJSON_free(s);
        cJSON_Delete(o);
        return;
    }
    printf("%s", m->id2label[best]);
    for (int i = 0; i < n; i++) printf("\t%s=%.4f", m->id2label[i], probs[i]);
    printf("\t%s\n", text);
}

static int run_predict(pc_config *cfg, const cli_flags *flags, char **texts, int n)
{
    if (n == 0) { fprintf(stderr, "peftc predict: give one or more texts to classify\n"); return 2; }
    loaded l = {0};
    int rc = load_inference(cfg, &l);
    if (rc) return rc;
    if (l.model->task != PC_TASK_SEQ_CLS) {
        fprintf(stderr, "peftc predict: %s is not a classifier; use peftc generate\n", l.model->architecture);
        unload(&l);
        return 2;
    }
    pc_error err = {0};
    pc_encoded enc = {0};
    pc_batch_buf bb = {0};
    pc_status s = pc_encode_texts(l.tok, texts, n, cfg->max_length, &enc, &err);
    if (!s) s = pc_batch_buf_init(&bb, 1, enc.max_len, &err);
    if (!s) s = l.model->ops->reserve(l.model, 1, enc.max_len, &err);
    for (int i = 0; !s && i < n; i++) {
        float loss;
        const pc_batch *b = pc_collate(&bb, &enc, &i, 1, pc_padding_id(l.tok));
        s = l.model->ops->forward(l.model, b, false, &loss, &err);
        if (!s) print_prediction(l.model, texts[i], l.model->logits, flags->json);
    }
    if (s) { cli_print_error(&err); rc = 1; }
    pc_batch_buf_free(&bb);
    pc_encoded_free(&enc);
    unload(&l);
    return rc;
}

int cmd_predict(int argc, char **argv) { return cli_command("predict", argc, argv, true, run_predict); }

/* ---------- tokenize ---------- */

static void print_tokens(const pc_tokenizer *tok, const char *text, const int32_t *ids, int n, int json)
{
    if (!json) {
        for (int i = 0; i < n; i++) printf("%s%d", i ? " " : "", ids[i]);
        printf("\n");
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON *a = cJSON_AddArrayToObject(o, "ids"), *t = cJSON_AddArrayToObject(o, "tokens");
    cJSON_AddStringToObject(o, "text", text);
    for (int i = 0; i < n; i++) {
        cJSON_AddItemToArray(a, cJSON_CreateNumber(ids[i]));
        const char *s = pc_tokenizer_id_to_token(tok, ids[i]);
        cJSON_AddItemToArray(t, cJSON_CreateString(s ? s : ""));
    }
    char *s = cJSON_PrintUnformatted(o);
    if (s) printf("%s\n", s);
    cJSON_free(s);
    cJSON_Delete(o);
}

/* --decode: the arguments are token ids; prints their text. */
static int decode_ids(const pc_tokenizer *tok, char **args, int n)
{
    int32_t *ids = calloc((size_t)n + 1, sizeof *ids);
    if (!ids) { fprintf(stderr, "peftc: out of memory\n"); return 1; }
    for (int i = 0; i < n; i++) {
        char *end;
        long v = strtol(args[i], &end, 10);
        if (*args[i] == '\0' || *end || v < 0 || v > INT32_MAX) {
            fprintf(stderr, "peftc tokenize --decode: '%s' is not a token id\n", args[i]);
            free(ids);
            return 2;
        }
        ids[i] = (int32_t)v;
    }
    char *text = NULL;
    pc_error err = {0};
    int rc = 0;
    if (pc_tokenizer_decode(tok, ids, n, false, &text, &err) != PEFTC_OK) { cli_print_error(&err); rc = 1; }
    else printf("%s\n", text);
    free(text);
    free(ids);
    return rc;
}

static int run_tokenize(pc_config *cfg, const cli_flags *flags, char **texts, int n)
{
    pc_tokenizer *tok = NULL;
    pc_error err = {0};
    if (pc_tokenizer_load(cfg->model_name_or_path, &tok, &err) != PEFTC_OK) { cli_print_error(&err); return 1; }
    if (flags->decode) {
        int rc = decode_ids(tok, texts, n);
        pc_tokenizer_free(tok);
        return rc;
    }
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        int32_t *ids = NULL;
        int len = 0;
        if (pc_tokenizer_encode(tok, texts[i], strlen(texts[i]), true, cfg->max_length, &ids, &len, &err) != PEFTC_OK) {
            pc_error_prefix(&err, "text %d", i + 1);
            cli_print_error(&err);
            rc = 1;
        } else {
            print_tokens(tok, texts[i], ids, len, flags->json);
        }
        free(ids);
    }
    pc_tokenizer_free(tok);
    return rc;
}

int cmd_tokenize(int argc, char **argv) { return cli_command("tokenize", argc, argv, true, run_tokenize); }

/* ---------- inspect ---------- */

static void print_shape(const pc_st_tensor *t)
{
    printf("[");
    for (int d = 0; d < t->ndim; d++) printf("%s%lld", d ? ", " : "", (long long)t->shape[d]);
    printf("]");
}

int cmd_inspect(int argc, char **argv)
{
    if (argc != 1) { fprintf(stderr, "usage: peftc inspect FILE.safetensors\n"); return 2; }
    pc_safetensors *st = NULL;
    pc_error err = {0};
    if (pc_st_open(argv[0], &st, &err) != PEFTC_OK) { cli_print_error(&err); return 1; }
    const cJSON *meta = pc_st_metadata(st);
    if (meta) {
        char *s = cJSON_PrintUnformatted(meta);
        printf("metadata: %s\n", s ? s : "?");
        cJSON_free(s);
    }
    int64_t total = 0;
    for (int i = 0; i < pc_st_count(st); i++) {
        const pc_st_tensor *t = pc_st_at(st, i);
        printf("%-72s %-5s ", t->name, pc_dtype_name(t->dtype));
        print_shape(t);
        printf("\n");
        total += pc_st_numel(t);
    }
    printf("%d tensors, %lld elements\n", pc_st_count(st), (long long)total);
    pc_st_close(st);
    return 0;
}
