/* peftc generate: text from a causal LM (with an adapter applied un-merged),
 * with a KV cache; greedy, or sampled with temperature / top_k / top_p as
 * transformers' logits processors apply them (in that order). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "cli/cli.h"

typedef struct sampler {
    bool sample;
    float temperature, top_p;
    int top_k;
    pc_rng rng;
    int *order;                      /* vocabulary scratch */
    float *probs;
} sampler;

static int argmax(const float *v, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++) if (v[i] > v[best]) best = i;
    return best;
}

static const float *sort_logits;
static int by_logit_desc(const void *a, const void *b)
{
    float x = sort_logits[*(const int *)a], y = sort_logits[*(const int *)b];
    return x < y ? 1 : x > y ? -1 : (*(const int *)a - *(const int *)b);
}

/* temperature -> top_k -> top_p -> softmax -> one draw. */
static int sample_token(sampler *s, const float *logits, int V)
{
    if (!s->sample) return argmax(logits, V);
    for (int i = 0; i < V; i++) s->order[i] = i;
    sort_logits = logits;
    qsort(s->order, (size_t)V, sizeof *s->order, by_logit_desc);
    int keep = s->top_k > 0 && s->top_k < V ? s->top_k : V;
    double sum = 0;
    float mx = logits[s->order[0]] / s->temperature;
    for (int i = 0; i < keep; i++) sum += s->probs[i] = expf(logits[s->order[i]] / s->temperature - mx);
    double cum = 0;
    for (int i = 0; i < keep; i++) {          /* smallest prefix whose mass reaches top_p (at least one token) */
        cum += s->probs[i] / sum;
        if (cum >= s->top_p) { keep = i + 1; break; }
    }
    double total = 0;
    for (int i = 0; i < keep; i++) total += s->probs[i];
    double u = pc_rng_uniform(&s->rng) * total;
    for (int i = 0; i < keep; i++) {
        u -= s->probs[i];
        if (u < 0) return s->order[i];
    }
    return s->order[keep - 1];
}

/* Prints the part of the decoded continuation not printed yet (holding back an incomplete UTF-8 tail). */
static void stream_text(const pc_tokenizer *tok, const int32_t *ids, int n, size_t *printed)
{
    char *text = NULL;
    pc_error err = {0};
    if (pc_tokenizer_decode(tok, ids, n, true, &text, &err) != PEFTC_OK) { free(text); return; }
    size_t len = strlen(text);
    bool incomplete = len >= 3 && memcmp(text + len - 3, "\xEF\xBF\xBD", 3) == 0;
    if (!incomplete && len > *printed) {
        fputs(text + *printed, stdout);
        fflush(stdout);
        *printed = len;
    }
    free(text);
}

static pc_status prompt_ids(const loaded *l, const pc_config *cfg, int32_t **ids, int *n, pc_error *err)
{
    const char *prompt = cfg->prompt ? cfg->prompt : "";
    PC_TRY(pc_tokenizer_encode(l->tok, prompt, strlen(prompt), true, INT32_MAX, ids, n, err));
    if (*n > 0) return PEFTC_OK;
    int32_t bos = pc_tokenizer_bos_id(l->tok);
    if (bos < 0) bos = l->model->bos_token_id;
    if (bos < 0) return pc_fail(err, PEFTC_ERR_INVALID, "empty prompt and the tokenizer has no BOS token to start from");
    free(*ids);
    if (!(*ids = malloc(sizeof **ids))) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
    (*ids)[0] = bos;
    *n = 1;
    return PEFTC_OK;
}

static int generate(const loaded *l, const pc_config *cfg, sampler *s)
{
    pc_model *m = l->model;
    pc_error err = {0};
    int32_t *ids = NULL;
    int n = 0;
    int32_t eos = pc_tokenizer_eos_id(l->tok);
    if (eos < 0) eos = m->eos_token_id;
    pc_status st = prompt_ids(l, cfg, &ids, &n, &err);
    int32_t *out = st ? NULL : malloc(sizeof *out * (size_t)(cfg->max_new_tokens + 1));
    if (!st && !out) st = pc_fail(&err, PEFTC_ERR_NOMEM, "out of memory");
    if (!st) st = m->ops->cache_reset(m, n + cfg->max_new_tokens, &err);
    if (!st) st = m->ops->decode(m, ids, n, &err);
    int produced = 0;
    size_t printed = 0;
    while (!st && produced < cfg->max_new_tokens) {
        int32_t next = sample_token(s, m->logits, m->vocab_size);
        if (next == eos) break;
        out[produced++] = next;
        stream_text(l->tok, out, produced, &printed);
        if (produced < cfg->max_new_tokens) st = m->ops->decode(m, &next, 1, &err);
    }
    printf("\n");
    free(ids);
    free(out);
    if (st) { cli_print_error(&err); return 1; }
    return 0;
}

static int run_generate(pc_config *cfg, const cli_flags *flags, char **args, int n_args)
{
    (void)flags; (void)args; (void)n_args;
    loaded l = {0};
    int rc = load_inference(cfg, &l);
    if (rc) return rc;
    if (!l.model->ops->decode) {
        fprintf(stderr, "peftc generate: %s is not a causal language model\n", l.model->architecture);
        unload(&l);
        return 2;
    }
    sampler s = { .sample = cfg->do_sample || cfg->temperature > 0,
                  .temperature = cfg->temperature > 0 ? (float)cfg->temperature : 1.0f,
                  .top_p = (float)cfg->top_p, .top_k = cfg->top_k };
    pc_rng_init(&s.rng, (uint64_t)cfg->seed, "generate");
    s.order = malloc(sizeof *s.order * (size_t)l.model->vocab_size);
    s.probs = malloc(sizeof *s.probs * (size_t)l.model->vocab_size);
    if (!s.order || !s.probs) { fprintf(stderr, "peftc: out of memory\n"); rc = 1; }
    else rc = generate(&l, cfg, &s);
    free(s.order);
    free(s.probs);
    unload(&l);
    return rc;
}

int cmd_generate(int argc, char **argv) { return cli_command("generate", argc, argv, false, run_generate); }
