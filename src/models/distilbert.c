/* DistilBertForSequenceClassification (Sanh et al. 2019), forward and backward,
 * as transformers' modeling_distilbert.py (eager attention):
 *   embeddings: LN(word[ids] + pos[t]) -> dropout
 *   block (post-LN): sa = LN_sa(out_lin(attn(x)) + x);  out = LN_out(dropout(lin2(gelu(lin1(sa)))) + sa)
 *   head: hidden[:, 0] -> pre_classifier -> ReLU -> dropout(seq_classif_dropout) -> classifier
 * All LayerNorm eps are 1e-12. Loss: cross-entropy, mean over the batch.
 * The top block runs only the rows the head reads (output_rows): the loss and gradients of the full block for
 * ~14 % less work. Its dropout draws fewer values, so a seeded run's masks there differ from a full block's. */
#include "models/distilbert.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/json.h"
#include "formats/safetensors.h"
#include "kernels/gemm.h"
#include "kernels/vec.h"
#include "models/model_util.h"
#include "models/quantized.h"
#include "nn/activation.h"
#include "nn/attention.h"
#include "nn/dropout.h"
#include "nn/embedding.h"
#include "nn/layernorm.h"
#include "nn/loss.h"
#include "peft/neftune.h"

#define LN_EPS 1e-12f

typedef struct layer_acts {
    float *q, *k, *v, *ctx;          /* [rows, D] (k, v: [N, D]); rows = output_rows(), N = B*T */
    float *attn_saved;               /* what attention backward needs (probabilities [rows, H, T] at most) */
    float *attn_drop;                /* [rows, H, T] when attention dropout is on */
    float *s1, *sa, *sa_mean, *sa_rstd;
    float *f1, *g;                   /* [N, F] lin1 output (with GELU: its slope, written over it), activation output */
    float *ffn_drop;                 /* [N, D] dropout mask after lin2 */
    float *s2, *out, *out_mean, *out_rstd;
} layer_acts;

typedef struct dbert_layer {
    pc_linear q, k, v, o, ff1, ff2;
    pc_norm ln_sa, ln_out;
    layer_acts a;
} dbert_layer;

typedef struct dbert {
    pc_distilbert_config cfg;
    pc_safetensors *st;
    pc_owned owned;                  /* every buffer this model allocated */
    bool bare_checkpoint;            /* a DistilBertModel checkpoint: keys without "distilbert." */
    float *word_emb, *pos_emb;
    pc_norm emb_ln;
    dbert_layer *layers;
    pc_linear pre_classifier, classifier;
    /* activations, sized by reserve() */
    int cap_B, cap_T;
    bool training;                   /* mode of the last forward */
    pc_rng *layer_rng;               /* dropout stream state at each block's start (for recomputation) */
    uint8_t *key_mask;
    float *x0, *emb_mean, *emb_rstd, *emb_ln_out, *emb_drop, *emb_out;
    float *first_in;                 /* [B, dim]: the top block's input at each sequence's first position */
    float *p1, *p1_relu, *head_drop, *h2, *probs;
    float *d_cur, *d_tmp, *d_q, *d_k, *d_v, *d_ff, *d_h2, *d_logits, *attn_scratch;
    pc_linear *linear_list[6 * 64 + 2];
    pc_norm *norm_list[2 * 64 + 1];
} dbert;

/* ---------- config.json ---------- */

/* Sizes within range (and heads dividing dim), dropout probabilities in [0, 1). */
static pc_status check_config(const char *path, const pc_distilbert_config *c, pc_error *err)
{
    if (c->dim < 1 || c->n_layers < 1 || c->n_layers > 64 || c->n_heads < 1 || c->dim % c->n_heads != 0 ||
        c->hidden_dim < 1 || c->vocab_size < 1 || c->max_position_embeddings < 1 ||
        c->dim > 65536 || c->hidden_dim > 262144 || c->vocab_size > 10000000 || c->max_position_embeddings > 1 << 20)
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: inconsistent sizes (dim %d, n_layers %d, n_heads %d, hidden_dim %d, "
                       "vocab_size %d, max_position_embeddings %d)", path, c->dim, c->n_layers, c->n_heads,
                       c->hidden_dim, c->vocab_size, c->max_position_embeddings);
    if (c->dropout < 0 || c->dropout >= 1 || c->attention_dropout < 0 || c->attention_dropout >= 1 ||
        c->seq_classif_dropout < 0 || c->seq_classif_dropout >= 1)
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: dropout probabilities must be in [0, 1)", path);
    return PEFTC_OK;
}

pc_status pc_distilbert_config_load(const char *path, pc_distilbert_config *c, pc_error *err)
{
    cJSON *j = NULL;
    PC_TRY(pc_json_parse_file(path, &j, err));
    memset(c, 0, sizeof *c);
    long long dim, n_layers, n_heads, hidden, vocab, max_pos, pad;
    double dropout, attn_dropout, cls_dropout;
    bool sinusoidal;
    const char *act = NULL;
    pc_status s = PEFTC_OK;
    if (!s) s = pc_json_get_int(j, "dim", 768, &dim, path, err);
    if (!s) s = pc_json_get_int(j, "n_layers", 6, &n_layers, path, err);
    if (!s) s = pc_json_get_int(j, "n_heads", 12, &n_heads, path, err);
    if (!s) s = pc_json_get_int(j, "hidden_dim", 3072, &hidden, path, err);
    if (!s) s = pc_json_get_int(j, "vocab_size", 30522, &vocab, path, err);
    if (!s) s = pc_json_get_int(j, "max_position_embeddings", 512, &max_pos, path, err);
    if (!s) s = pc_json_get_int(j, "pad_token_id", 0, &pad, path, err);
    if (!s) s = pc_json_get_double(j, "dropout", 0.1, &dropout, path, err);
    if (!s) s = pc_json_get_double(j, "attention_dropout", 0.1, &attn_dropout, path, err);
    if (!s) s = pc_json_get_double(j, "seq_classif_dropout", 0.2, &cls_dropout, path, err);
    if (!s) s = pc_json_get_bool(j, "sinusoidal_pos_embds", false, &sinusoidal, path, err);
    if (!s) s = pc_json_get_string(j, "activation", "gelu", &act, path, err);
    if (!s) s = pc_model_config_labels(j, path, &c->num_labels, &c->id2label, err);
    if (!s && strcmp(act, "gelu") != 0 && strcmp(act, "relu") != 0)
        s = pc_fail(err, PEFTC_ERR_UNSUPPORTED, "%s: activation '%s' is not supported (gelu, relu)", path, act);
    /* checked before narrowing to int: 2^32 + 64 must not pass as 64 */
    if (!s && (dim < 1 || n_layers < 1 || n_layers > 64 || n_heads < 1 || dim % n_heads != 0 || hidden < 1 ||
               vocab < 1 || max_pos < 1 || dim > 65536 || hidden > 262144 || vocab > 10000000 || max_pos > 1 << 20))
        s = pc_fail(err, PEFTC_ERR_FORMAT, "%s: inconsistent sizes (dim %lld, n_layers %lld, n_heads %lld, hidden_dim "
                    "%lld, vocab_size %lld, max_position_embeddings %lld)", path, dim, n_layers, n_heads, hidden, vocab,
                    max_pos);
    if (!s) {
        c->dim = (int)dim; c->n_layers = (int)n_layers; c->n_heads = (int)n_heads;
        c->hidden_dim = (int)hidden; c->vocab_size = (int)vocab; c->max_position_embeddings = (int)max_pos;
        c->pad_token_id = (int)pad; c->dropout = (float)dropout; c->attention_dropout = (float)attn_dropout;
        c->seq_classif_dropout = (float)cls_dropout; c->sinusoidal_pos_embds = sinusoidal;
        c->relu = strcmp(act, "relu") == 0;
    }
    cJSON_Delete(j);
    if (!s) s = check_config(path, c, err);
    if (s) pc_distilbert_config_free(c);   /* the labels read before the check failed */
    return s;
}

/* ---------- weights ---------- */

/* Module names are DistilBertForSequenceClassification's ("distilbert.transformer..."),
 * PEFT's key names are built from them. Checkpoints of DistilBertForMaskedLM /
 * ...ForSequenceClassification store the encoder under the same "distilbert." prefix,
 * a bare DistilBertModel without it: *key gets the checkpoint's spelling. */
static void checkpoint_key(const dbert *d, const char *module, const char *suffix, char *key, size_t n)
{
    const char *canon = "distilbert.";
    size_t len = strlen(canon);
    if (!d->bare_checkpoint || strncmp(module, canon, len) != 0) snprintf(key, n, "%s%s", module, suffix);
    else snprintf(key, n, "%s%s", module + len, suffix);
}

static pc_status load_param(dbert *d, const char *module, const char *suffix, int ndim, int64_t d0, int64_t d1,
                            float **dst, pc_error *err)
{
    char key[200];
    checkpoint_key(d, module, suffix, key, sizeof key);
    int64_t shape[2] = {d0, d1};
    return pc_model_tensor(d->st, &d->owned, key, ndim, shape, dst, err);
}

static pc_status load_linear(dbert *d, pc_linear *lin, const char *module, int in, int out, pc_error *err)
{
    snprintf(lin->name, sizeof lin->name, "%s", module);
    lin->in = in;
    lin->out = out;
    char key[200];
    checkpoint_key(d, module, "", key, sizeof key);
    if (pc_checkpoint_has_4bit(d->st, key)) PC_TRY(pc_linear_load_4bit(d->st, key, lin, PC_Q4_COMPUTE_F32, err));
    else PC_TRY(load_param(d, module, ".weight", 2, out, in, &lin->W, err));
    return load_param(d, module, ".bias", 1, out, 0, &lin->b, err);
}

static pc_status load_norm(dbert *d, pc_norm *n, const char *module, int dim, pc_error *err)
{
    snprintf(n->name, sizeof n->name, "%s", module);
    n->dim = dim;
    PC_TRY(load_param(d, module, ".weight", 1, dim, 0, &n->w, err));
    return load_param(d, module, ".bias", 1, dim, 0, &n->b, err);
}

/* A classification-head Linear: from the checkpoint when present, else freshly
 * initialised as transformers' _init_weights does (weight N(0, 0.02), bias 0). */
static pc_status load_or_init_head(dbert *d, pc_linear *lin, const char *name, int in, int out,
                                   pc_rng *rng, pc_error *err)
{
    char key[200];
    snprintf(key, sizeof key, "%s.weight", name);
    if (pc_st_find(d->st, key)) return load_linear(d, lin, name, in, out, err);
    snprintf(lin->name, sizeof lin->name, "%s", name);
    lin->in = in;
    lin->out = out;
    lin->W = pc_owned_alloc(&d->owned, (long)in * out);
    lin->b = pc_owned_alloc(&d->owned, out);
    if (!lin->W || !lin->b) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for %s", name);
    pc_rng_fill_normal(rng, lin->W, (long)in * out, 0.0f, 0.02f);
    return PEFTC_OK;
}

static pc_status load_embeddings(dbert *d, pc_error *err)
{
    const pc_distilbert_config *c = &d->cfg;
    char key[200];
    PC_TRY(load_param(d, "distilbert.embeddings.word_embeddings", ".weight", 2, c->vocab_size, c->dim,
                      &d->word_emb, err));
    checkpoint_key(d, "distilbert.embeddings.position_embeddings", ".weight", key, sizeof key);
    if (c->sinusoidal_pos_embds && !pc_st_find(d->st, key)) {
        d->pos_emb = pc_owned_alloc(&d->owned, (long)c->max_position_embeddings * c->dim);
        if (!d->pos_emb) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for position embeddings");
        pc_sinusoidal_positions(d->pos_emb, c->max_position_embeddings, c->dim);
    } else {
        PC_TRY(load_param(d, "distilbert.embeddings.position_embeddings", ".weight", 2, c->max_position_embeddings,
                          c->dim, &d->pos_emb, err));
    }
    return load_norm(d, &d->emb_ln, "distilbert.embeddings.LayerNorm", c->dim, err);
}

static pc_status load_layer(dbert *d, int i, pc_error *err)
{
    const pc_distilbert_config *c = &d->cfg;
    dbert_layer *L = &d->layers[i];
    char p[200];
#define NAME(suffix) (snprintf(p, sizeof p, "distilbert.transformer.layer.%d.%s", i, suffix), p)
    PC_TRY(load_linear(d, &L->q, NAME("attention.q_lin"), c->dim, c->dim, err));
    PC_TRY(load_linear(d, &L->k, NAME("attention.k_lin"), c->dim, c->dim, err));
    PC_TRY(load_linear(d, &L->v, NAME("attention.v_lin"), c->dim, c->dim, err));
    PC_TRY(load_linear(d, &L->o, NAME("attention.out_lin"), c->dim, c->dim, err));
    PC_TRY(load_norm(d, &L->ln_sa, NAME("sa_layer_norm"), c->dim, err));
    PC_TRY(load_linear(d, &L->ff1, NAME("ffn.lin1"), c->dim, c->hidden_dim, err));
    PC_TRY(load_linear(d, &L->ff2, NAME("ffn.lin2"), c->hidden_dim, c->dim, err));
    PC_TRY(load_norm(d, &L->ln_out, NAME("output_layer_norm"), c->dim, err));
#undef NAME
    return PEFTC_OK;
}

/* ---------- activations ---------- */

static pc_status reserve(pc_model *m, int B, int T, pc_error *err)
{
    dbert *d = m->impl;
    if (B <= d->cap_B && T <= d->cap_T) return PEFTC_OK;
    B = B > d->cap_B ? B : d->cap_B;
    T = T > d->cap_T ? T : d->cap_T;
    const pc_distilbert_config *c = &d->cfg;
    long N = (long)B * T, D = c->dim, F = c->hidden_dim, H = c->n_heads, C = m->num_labels;
    bool attn_dropout = c->attention_dropout > 0;
    long att_saved = (long)pc_attention_saved_floats(B, T, (int)H, attn_dropout);
    long att_drop = attn_dropout ? (long)B * H * T * T : 1;
    /* the top block's one-query attention saves [B, H, T] (within att_saved) and needs its own scratch */
    size_t att_scratch = pc_attention_scratch_floats(B, T, (int)H, (int)H, (int)(D / H), attn_dropout);
    size_t one_query_scratch = pc_attention_one_query_scratch_floats(B, T);
    if (att_scratch < one_query_scratch) att_scratch = one_query_scratch;
    pc_owned *o = &d->owned;
    pc_owned_free_group(o, 1);  /* drop smaller activation buffers */
    o->group = 1;
    bool ok = (d->key_mask = pc_owned_alloc_bytes(o, (size_t)N)) &&
        (d->x0 = pc_owned_alloc(o, N * D)) && (d->emb_mean = pc_owned_alloc(o, N)) &&
        (d->emb_rstd = pc_owned_alloc(o, N)) && (d->emb_ln_out = pc_owned_alloc(o, N * D)) &&
        (d->emb_drop = pc_owned_alloc(o, N * D)) && (d->emb_out = pc_owned_alloc(o, N * D)) &&
        (d->first_in = pc_owned_alloc(o, B * D)) && (d->p1 = pc_owned_alloc(o, B * D)) &&
        (d->p1_relu = pc_owned_alloc(o, B * D)) && (d->head_drop = pc_owned_alloc(o, B * D)) &&
        (d->h2 = pc_owned_alloc(o, B * D)) && (d->probs = pc_owned_alloc(o, B * C)) &&
        (m->logits = pc_owned_alloc(o, B * C)) &&
        (d->d_cur = pc_owned_alloc(o, N * D)) && (d->d_tmp = pc_owned_alloc(o, N * D)) &&
        (d->d_q = pc_owned_alloc(o, N * D)) && (d->d_k = pc_owned_alloc(o, N * D)) &&
        (d->d_v = pc_owned_alloc(o, N * D)) && (d->d_ff = pc_owned_alloc(o, N * F)) &&
        (d->d_h2 = pc_owned_alloc(o, B * D)) &&
        (d->d_logits = pc_owned_alloc(o, B * C)) &&
        (d->attn_scratch = pc_owned_alloc(o, att_scratch));
    for (int i = 0; ok && i < c->n_layers; i++) {
        layer_acts *a = &d->layers[i].a;
        if (m->gradient_checkpointing && i > 0) {  /* one shared set of activations, own block output */
            *a = d->layers[0].a;
            ok = (a->out = pc_owned_alloc(o, N * D)) != NULL;
            continue;
        }
        ok = (a->q = pc_owned_alloc(o, N * D)) && (a->k = pc_owned_alloc(o, N * D)) &&
             (a->v = pc_owned_alloc(o, N * D)) && (a->ctx = pc_owned_alloc(o, N * D)) &&
             (a->attn_saved = pc_owned_alloc(o, att_saved)) && (a->attn_drop = pc_owned_alloc(o, att_drop)) &&
             (a->s1 = pc_owned_alloc(o, N * D)) && (a->sa = pc_owned_alloc(o, N * D)) &&
             (a->sa_mean = pc_owned_alloc(o, N)) && (a->sa_rstd = pc_owned_alloc(o, N)) &&
             (a->f1 = pc_owned_alloc(o, N * F)) && (a->g = pc_owned_alloc(o, N * F)) &&
             (a->ffn_drop = pc_owned_alloc(o, N * D)) && (a->s2 = pc_owned_alloc(o, N * D)) &&
             (a->out = pc_owned_alloc(o, N * D)) && (a->out_mean = pc_owned_alloc(o, N)) &&
             (a->out_rstd = pc_owned_alloc(o, N));
    }
    for (int i = 0; ok && i < m->n_linears; i++)
        if (pc_linear_reserve(m->linears[i], (int)N, &m->scratch, err) != PEFTC_OK) ok = false;
    o->group = 0;
    if (!ok) {
        d->cap_B = d->cap_T = 0;
        return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for activations of a %d x %d batch", B, T);
    }
    d->cap_B = B;
    d->cap_T = T;
    m->activation_bytes = pc_owned_bytes(o, 1);
    return PEFTC_OK;
}

/* ---------- forward ---------- */

static void embed(pc_model *m, dbert *d, const pc_batch *b, bool training, pc_rng *rng)
{
    const pc_distilbert_config *c = &d->cfg;
    int D = c->dim;
    long N = (long)b->B * b->T;
    pc_embedding_forward(d->x0, b->input_ids, d->word_emb, (int)N, D);
    if (training) pc_neftune_apply(d->x0, b->B, b->T, D, m->neftune_noise_alpha, &m->neftune_rng);
    for (long r = 0; r < N; r++) pc_vec_add(d->x0 + r * D, d->pos_emb + (r % b->T) * D, D);
    pc_layernorm_forward(d->emb_ln_out, d->emb_mean, d->emb_rstd, d->x0, d->emb_ln.w, d->emb_ln.b, (int)N, D, LN_EPS);
    pc_dropout_forward(d->emb_out, d->emb_drop, d->emb_ln_out, N * D, c->dropout, training, rng);
}

/* The rows a block's output is needed at: every position, except in the top block, which the head reads only at
 * each sequence's first position. There the block computes keys and values for every position and all else for
 * those B rows alone (HF computes all N rows and drops N - B of them: the loss and every gradient are the same,
 * only the block's dropout draws are fewer). */
static int output_rows(const dbert *d, const dbert_layer *L, const pc_batch *b)
{
    return L == &d->layers[d->cfg.n_layers - 1] ? b->B : b->B * b->T;
}

/* Whether a block computes only each sequence's first row (the top block, unless T is 1). */
static bool first_rows_only(const pc_batch *b, int rows)
{
    return rows < b->B * b->T;
}

/* first_in[b] = x[b, 0]: the top block's input at the rows it computes */
static const float *query_input(dbert *d, const float *x, const pc_batch *b, int rows)
{
    int D = d->cfg.dim;
    if (!first_rows_only(b, rows)) return x;
    for (int i = 0; i < b->B; i++) memcpy(d->first_in + (long)i * D, x + (long)i * b->T * D, sizeof(float) * (size_t)D);
    return d->first_in;
}

static void attention_forward(dbert *d, dbert_layer *L, const float *xq, const float *x, const pc_batch *b, int rows,
                              bool training, pc_rng *rng)
{
    const pc_distilbert_config *c = &d->cfg;
    layer_acts *a = &L->a;
    int N = b->B * b->T, H = c->n_heads, hd = c->dim / H;
    bool attn_dropout = training && c->attention_dropout > 0;
    pc_linear_forward(&L->q, a->q, xq, rows, training, rng);
    pc_linear_forward(&L->k, a->k, x, N, training, rng);
    pc_linear_forward(&L->v, a->v, x, N, training, rng);
    if (attn_dropout) pc_dropout_mask(a->attn_drop, (long)rows * H * b->T, c->attention_dropout, rng);
    const float *drop = attn_dropout ? a->attn_drop : NULL;
    const float scale = 1.0f / sqrtf((float)hd);
    if (first_rows_only(b, rows))
        pc_attention_one_query_forward(a->ctx, a->attn_saved, a->q, a->k, a->v, d->key_mask, drop, b->B, b->T, H, H, hd,
                                       scale);
    else
        pc_attention_forward(a->ctx, a->attn_saved, a->q, a->k, a->v, d->key_mask, drop, b->B, b->T, H, H, hd, scale,
                             false, d->attn_scratch);
}

static void layer_forward(dbert *d, dbert_layer *L, const float *x, const pc_batch *b, bool training, pc_rng *rng)
{
    const pc_distilbert_config *c = &d->cfg;
    layer_acts *a = &L->a;
    int rows = output_rows(d, L, b), D = c->dim;
    const float *xq = query_input(d, x, b, rows);
    attention_forward(d, L, xq, x, b, rows, training, rng);
    pc_linear_forward(&L->o, a->s1, a->ctx, rows, training, rng);
    pc_vec_add(a->s1, xq, (long)rows * D);
    pc_layernorm_forward(a->sa, a->sa_mean, a->sa_rstd, a->s1, L->ln_sa.w, L->ln_sa.b, rows, D, LN_EPS);
    pc_linear_forward(&L->ff1, a->f1, a->sa, rows, training, rng);
    if (c->relu) pc_relu_forward(a->g, a->f1, (long)rows * c->hidden_dim);
    else pc_gelu_forward(a->g, a->f1, a->f1, (long)rows * c->hidden_dim);
    pc_linear_forward(&L->ff2, a->s2, a->g, rows, training, rng);
    pc_dropout_forward(a->s2, a->ffn_drop, a->s2, (long)rows * D, c->dropout, training, rng);
    pc_vec_add(a->s2, a->sa, (long)rows * D);
    pc_layernorm_forward(a->out, a->out_mean, a->out_rstd, a->s2, L->ln_out.w, L->ln_out.b, rows, D, LN_EPS);
}

/* [B, dim]: the top block's output at each sequence's first position, hidden_state[:, 0] in HF */
static const float *first_hidden(dbert *d)
{
    return d->layers[d->cfg.n_layers - 1].a.out;
}

static void head_forward(pc_model *m, dbert *d, const pc_batch *b, bool training, pc_rng *rng)
{
    int D = d->cfg.dim;
    pc_linear_forward(&d->pre_classifier, d->p1, first_hidden(d), b->B, training, rng);
    pc_relu_forward(d->p1_relu, d->p1, (long)b->B * D);
    pc_dropout_forward(d->h2, d->head_drop, d->p1_relu, (long)b->B * D, d->cfg.seq_classif_dropout, training, rng);
    pc_linear_forward(&d->classifier, m->logits, d->h2, b->B, training, rng);
}

static pc_status check_batch(const pc_model *m, const dbert *d, const pc_batch *b, pc_error *err)
{
    if (b->B > d->cap_B || b->T > d->cap_T)
        return pc_fail(err, PEFTC_ERR_INVALID, "batch %d x %d exceeds the reserved %d x %d", b->B, b->T, d->cap_B, d->cap_T);
    if (b->T > d->cfg.max_position_embeddings)
        return pc_fail(err, PEFTC_ERR_INVALID, "sequence length %d exceeds max_position_embeddings %d",
                       b->T, d->cfg.max_position_embeddings);
    long N = (long)b->B * b->T;
    for (long i = 0; i < N; i++)
        if (b->input_ids[i] < 0 || b->input_ids[i] >= d->cfg.vocab_size)
            return pc_fail(err, PEFTC_ERR_INVALID, "token id %d at position %ld is outside the vocabulary (size %d)",
                           b->input_ids[i], i, d->cfg.vocab_size);
    for (int i = 0; b->labels && i < b->B; i++)
        if (b->labels[i] < 0 || b->labels[i] >= m->num_labels)
            return pc_fail(err, PEFTC_ERR_INVALID, "label %d of example %d is outside [0, %d)", b->labels[i], i,
                           m->num_labels);
    return PEFTC_OK;
}

static pc_status forward(pc_model *m, const pc_batch *b, bool training, float *loss, pc_error *err)
{
    dbert *d = m->impl;
    PC_TRY(check_batch(m, d, b, err));
    d->training = training;
    pc_rng *rng = &m->dropout_rng;
    memcpy(d->key_mask, b->attention_mask, (size_t)b->B * b->T);
    embed(m, d, b, training, rng);
    const float *x = d->emb_out;
    for (int i = 0; i < d->cfg.n_layers; i++) {
        d->layer_rng[i] = *rng;  /* to replay the block's dropout draws when recomputing it */
        layer_forward(d, &d->layers[i], x, b, training, rng);
        x = d->layers[i].a.out;
    }
    head_forward(m, d, b, training, rng);
    *loss = 0.0f;
    if (b->labels) {
        int counted = 0;
        *loss = pc_cross_entropy_forward(d->probs, m->logits, b->labels, b->B, m->num_labels, &counted);
        m->n_loss_tokens = counted;
        if (!isfinite(*loss)) return pc_fail(err, PEFTC_ERR_NUMERIC, "the loss is %f", (double)*loss);
    }
    return PEFTC_OK;
}

/* ---------- backward ---------- */

static bool norm_trainable(const pc_norm *n) { return n->dw || n->db; }

static bool linear_trainable(const pc_linear *l) { return l->dW || l->db || l->lora; }

static bool layer_trainable(const dbert_layer *L)
{
    return linear_trainable(&L->q) || linear_trainable(&L->k) || linear_trainable(&L->v) ||
           linear_trainable(&L->o) || linear_trainable(&L->ff1) || linear_trainable(&L->ff2) ||
           norm_trainable(&L->ln_sa) || norm_trainable(&L->ln_out);
}

/* Index of the lowest layer whose input gradient is still needed (-1: the embeddings). */
static int lowest_trainable(const dbert *d)
{
    if (norm_trainable(&d->emb_ln)) return -1;
    for (int i = 0; i < d->cfg.n_layers; i++)
        if (layer_trainable(&d->layers[i])) return i;
    return d->cfg.n_layers;
}

static void attention_backward(dbert *d, dbert_layer *L, const pc_batch *b, int rows)
{
    const pc_distilbert_config *c = &d->cfg;
    layer_acts *a = &L->a;
    int H = c->n_heads, hd = c->dim / H;
    const float *drop = d->training && c->attention_dropout > 0 ? a->attn_drop : NULL;
    const float scale = 1.0f / sqrtf((float)hd);
    if (first_rows_only(b, rows))
        pc_attention_one_query_backward(d->d_q, d->d_k, d->d_v, d->d_tmp, a->attn_saved, a->q, a->k, a->v, d->key_mask,
                                        drop, b->B, b->T, H, H, hd, scale, d->attn_scratch);
    else
        pc_attention_backward(d->d_q, d->d_k, d->d_v, d->d_tmp, a->ctx, a->attn_saved, a->q, a->k, a->v, d->key_mask,
                              drop, b->B, b->T, H, H, hd, scale, false, d->attn_scratch);
}

/* On entry d_cur holds dL/ds1 at the block's output rows; on exit dL/dx at every row (when need_dx).
 * In the top block q saw only the first rows: their dx (residual + q's part, parked in d_tmp) joins
 * k's and v's, which reach every row. */
static void qkv_backward(dbert *d, dbert_layer *L, const float *x, const pc_batch *b, int rows, bool need_dx)
{
    int N = b->B * b->T, D = d->cfg.dim;
    bool top = first_rows_only(b, rows);
    float *dx = need_dx ? d->d_cur : NULL;
    pc_linear_backward(&L->q, dx, true, d->d_q, top ? d->first_in : x, rows);
    if (top && dx) memcpy(d->d_tmp, dx, sizeof(float) * (size_t)rows * D);
    pc_linear_backward(&L->k, dx, !top, d->d_k, x, N);
    pc_linear_backward(&L->v, dx, true, d->d_v, x, N);
    if (top && dx)
        for (int i = 0; i < b->B; i++) pc_vec_add(dx + (long)i * b->T * D, d->d_tmp + (long)i * D, D);
}

/* d_cur holds dL/d(layer output) at its output rows on entry and dL/d(layer input) on exit (when need_dx). */
static void layer_backward(dbert *d, dbert_layer *L, const float *x, const pc_batch *b, bool need_dx)
{
    const pc_distilbert_config *c = &d->cfg;
    layer_acts *a = &L->a;
    int rows = output_rows(d, L, b), D = c->dim;
    long RD = (long)rows * D, RF = (long)rows * c->hidden_dim;
    bool drop = c->dropout > 0 && d->training;
    /* out = LN_out(s2): d_tmp = dL/ds2, which is also dL/dsa through the residual */
    pc_layernorm_backward(d->d_tmp, L->ln_out.dw, L->ln_out.db, d->d_cur, a->s2, a->out_mean, a->out_rstd,
                          L->ln_out.w, rows, D);
    /* s2 = dropout(lin2(g)) + sa */
    if (drop) pc_apply_mask(d->d_q, d->d_tmp, a->ffn_drop, RD);
    else memcpy(d->d_q, d->d_tmp, sizeof(float) * (size_t)RD);
    pc_linear_backward(&L->ff2, d->d_ff, false, d->d_q, a->g, rows);
    if (c->relu) pc_relu_backward(d->d_ff, d->d_ff, a->g, RF);
    else pc_gelu_backward(d->d_ff, d->d_ff, a->f1, RF);
    pc_linear_backward(&L->ff1, d->d_tmp, true, d->d_ff, a->sa, rows);
    /* sa = LN_sa(s1): d_cur = dL/ds1, also dL/dx through the residual */
    pc_layernorm_backward(d->d_cur, L->ln_sa.dw, L->ln_sa.db, d->d_tmp, a->s1, a->sa_mean, a->sa_rstd,
                          L->ln_sa.w, rows, D);
    pc_linear_backward(&L->o, d->d_tmp, false, d->d_cur, a->ctx, rows);
    attention_backward(d, L, b, rows);
    qkv_backward(d, L, x, b, rows, need_dx);
}

static void head_backward(pc_model *m, dbert *d, const pc_batch *b, float dloss)
{
    int D = d->cfg.dim, B = b->B, C = m->num_labels;
    pc_cross_entropy_backward(d->d_logits, d->probs, b->labels, B, C, dloss / (float)B);
    pc_linear_backward(&d->classifier, d->d_h2, false, d->d_logits, d->h2, B);
    if (d->training && d->cfg.seq_classif_dropout > 0) pc_apply_mask(d->d_h2, d->d_h2, d->head_drop, (long)B * D);
    pc_relu_backward(d->d_h2, d->d_h2, d->p1_relu, (long)B * D);
    pc_linear_backward(&d->pre_classifier, d->d_cur, false, d->d_h2, first_hidden(d), B);
}

static void backward(pc_model *m, const pc_batch *b, float dloss)
{
    dbert *d = m->impl;
    int N = b->B * b->T, D = d->cfg.dim;
    head_backward(m, d, b, dloss);
    int lowest = lowest_trainable(d);
    for (int i = d->cfg.n_layers - 1; i >= 0 && i >= lowest; i--) {
        const float *x = i > 0 ? d->layers[i - 1].a.out : d->emb_out;
        if (m->gradient_checkpointing && i < d->cfg.n_layers - 1) {  /* the top block's activations are current */
            pc_rng replay = d->layer_rng[i];
            layer_forward(d, &d->layers[i], x, b, d->training, &replay);
        }
        layer_backward(d, &d->layers[i], x, b, i > lowest);
    }
    if (lowest >= 0) return;
    /* embeddings: only the LayerNorm can be trainable (bias="all") */
    if (d->training && d->cfg.dropout > 0) pc_apply_mask(d->d_cur, d->d_cur, d->emb_drop, (long)N * D);
    pc_layernorm_backward(d->d_tmp, d->emb_ln.dw, d->emb_ln.db, d->d_cur, d->x0, d->emb_mean, d->emb_rstd,
                          d->emb_ln.w, N, D);
}

/* ---------- lifetime ---------- */

static void destroy(pc_model *m)
{
    dbert *d = m->impl;
    if (d) {
        pc_owned_free_group(&d->owned, -1);
        free(d->layers);
        free(d->layer_rng);
        pc_distilbert_config_free(&d->cfg);
        pc_st_close(d->st);
        free(d);
    }
    free(m);
}

static const pc_model_ops distilbert_ops = { reserve, forward, backward, destroy, NULL, NULL };

void pc_distilbert_config_free(pc_distilbert_config *c)
{
    pc_labels_free(c->id2label, c->num_labels);
    c->id2label = NULL;
}

static void list_modules(pc_model *m, dbert *d)
{
    int nl = 0, nn = 0;
    d->norm_list[nn++] = &d->emb_ln;
    for (int i = 0; i < d->cfg.n_layers; i++) {
        dbert_layer *L = &d->layers[i];
        pc_linear *lins[6] = {&L->q, &L->k, &L->v, &L->o, &L->ff1, &L->ff2};
        for (int j = 0; j < 6; j++) d->linear_list[nl++] = lins[j];
        d->norm_list[nn++] = &L->ln_sa;
        d->norm_list[nn++] = &L->ln_out;
    }
    d->linear_list[nl++] = &d->pre_classifier;
    d->linear_list[nl++] = &d->classifier;
    m->linears = d->linear_list;
    m->n_linears = nl;
    m->norms = d->norm_list;
    m->n_norms = nn;
}

static int64_t count_params(const dbert *d, int num_labels)
{
    const pc_distilbert_config *c = &d->cfg;
    int64_t D = c->dim, F = c->hidden_dim;
    int64_t emb = (int64_t)c->vocab_size * D + (int64_t)c->max_position_embeddings * D + 2 * D;
    int64_t layer = 4 * (D * D + D) + (D * F + F) + (F * D + D) + 4 * D;
    int64_t head = D * D + D + D * num_labels + num_labels;
    return emb + c->n_layers * layer + head;
}

pc_status pc_distilbert_load(const char *dir, const pc_distilbert_config *cfg, pc_safetensors *st,
                             const pc_model_options *opts, pc_model **out, pc_error *err)
{
    pc_model *m = calloc(1, sizeof *m);
    dbert *d = calloc(1, sizeof *d);
    if (!m || !d) { free(m); free(d); pc_st_close(st); return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory"); }
    m->impl = d;
    m->ops = &distilbert_ops;
    m->task = PC_TASK_SEQ_CLS;
    m->output_linear = "classifier";
    m->bos_token_id = m->eos_token_id = -1;
    d->cfg = *cfg;
    d->st = st;
    snprintf(m->architecture, sizeof m->architecture, "DistilBertForSequenceClassification");
    snprintf(m->model_type, sizeof m->model_type, "distilbert");
    m->num_labels = cfg->num_labels;
    m->id2label = cfg->id2label;
    m->vocab_size = cfg->vocab_size;
    m->max_positions = cfg->max_position_embeddings;
    pc_rng_init(&m->dropout_rng, opts ? opts->seed : 42, "dropout");
    pc_rng_init(&m->neftune_rng, opts ? opts->seed : 42, "neftune");
    pc_rng head_rng;
    pc_rng_init(&head_rng, opts ? opts->seed : 42, "head_init");
    d->layers = calloc((size_t)cfg->n_layers, sizeof *d->layers);
    d->layer_rng = calloc((size_t)cfg->n_layers, sizeof *d->layer_rng);
    pc_status s = d->layers && d->layer_rng ? PEFTC_OK : pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
    d->bare_checkpoint = !pc_st_find(st, "distilbert.embeddings.word_embeddings.weight") &&
                         pc_st_find(st, "embeddings.word_embeddings.weight");
    if (!s) s = load_embeddings(d, err);
    for (int i = 0; !s && i < cfg->n_layers; i++) s = load_layer(d, i, err);
    if (!s) s = load_or_init_head(d, &d->pre_classifier, "pre_classifier", cfg->dim, cfg->dim, &head_rng, err);
    if (!s) s = load_or_init_head(d, &d->classifier, "classifier", cfg->dim, cfg->num_labels, &head_rng, err);
    if (s) {
        pc_error_prefix(err, "%s", dir);
        destroy(m);
        return s;
    }
    list_modules(m, d);
    m->token_embedding = m->n_extra_tensors;
    pc_model_add_extra_tensor(m, "distilbert.embeddings.word_embeddings.weight", d->word_emb, cfg->vocab_size, cfg->dim,
                              d->st);
    pc_model_add_extra_tensor(m, "distilbert.embeddings.position_embeddings.weight", d->pos_emb,
                              cfg->max_position_embeddings, cfg->dim, d->st);
    m->n_base_params = count_params(d, cfg->num_labels);
    *out = m;
    return PEFTC_OK;
}

/* ---------- a fresh model directory ---------- */

typedef struct tensor_list {
    pc_st_item items[16 * 64 + 16];
    float *bufs[16 * 64 + 16];
    int n;
} tensor_list;

static float *add_tensor(tensor_list *t, const char *name, int64_t d0, int64_t d1, char names[][200])
{
    float *buf = calloc((size_t)(d0 * (d1 ? d1 : 1)), sizeof(float));
    snprintf(names[t->n], 200, "%s", name);
    pc_st_item *it = &t->items[t->n];
    memset(it, 0, sizeof *it);
    it->name = names[t->n];
    it->dtype = PC_DT_F32;
    it->ndim = d1 ? 2 : 1;
    it->shape[0] = d0;
    it->shape[1] = d1;
    it->data = buf;
    t->bufs[t->n++] = buf;
    return buf;
}

static cJSON *config_json(const pc_distilbert_config *c)
{
    cJSON *j = cJSON_CreateObject();
    cJSON *arch = cJSON_AddArrayToObject(j, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString("DistilBertForSequenceClassification"));
    cJSON_AddStringToObject(j, "activation", c->relu ? "relu" : "gelu");
    cJSON_AddNumberToObject(j, "attention_dropout", c->attention_dropout);
    cJSON_AddNumberToObject(j, "dim", c->dim);
    cJSON_AddNumberToObject(j, "dropout", c->dropout);
    cJSON_AddNumberToObject(j, "hidden_dim", c->hidden_dim);
    cJSON *id2label = cJSON_AddObjectToObject(j, "id2label");
    cJSON *label2id = cJSON_AddObjectToObject(j, "label2id");
    for (int i = 0; i < c->num_labels; i++) {
        char key[16];
        snprintf(key, sizeof key, "%d", i);
        cJSON_AddStringToObject(id2label, key, c->id2label[i]);
        cJSON_AddNumberToObject(label2id, c->id2label[i], i);
    }
    cJSON_AddNumberToObject(j, "initializer_range", 0.02);
    cJSON_AddNumberToObject(j, "max_position_embeddings", c->max_position_embeddings);
    cJSON_AddStringToObject(j, "model_type", "distilbert");
    cJSON_AddNumberToObject(j, "n_heads", c->n_heads);
    cJSON_AddNumberToObject(j, "n_layers", c->n_layers);
    cJSON_AddNumberToObject(j, "pad_token_id", c->pad_token_id);
    cJSON_AddNumberToObject(j, "qa_dropout", 0.1);
    cJSON_AddNumberToObject(j, "seq_classif_dropout", c->seq_classif_dropout);
    cJSON_AddBoolToObject(j, "sinusoidal_pos_embds", c->sinusoidal_pos_embds);
    cJSON_AddBoolToObject(j, "tie_weights_", true);
    cJSON_AddStringToObject(j, "torch_dtype", "float32");
    cJSON_AddNumberToObject(j, "vocab_size", c->vocab_size);
    return j;
}

static void random_linear(tensor_list *t, char names[][200], const char *name, int in, int out, pc_rng *rng)
{
    char key[200];
    snprintf(key, sizeof key, "%s.weight", name);
    float *w = add_tensor(t, key, out, in, names);
    if (w) pc_rng_fill_normal(rng, w, (long)in * out, 0.0f, 0.02f);
    snprintf(key, sizeof key, "%s.bias", name);
    add_tensor(t, key, out, 0, names);
}

static void layer_norm_tensors(tensor_list *t, char names[][200], const char *name, int dim)
{
    char key[200];
    snprintf(key, sizeof key, "%s.weight", name);
    float *w = add_tensor(t, key, dim, 0, names);
    for (int i = 0; w && i < dim; i++) w[i] = 1.0f;
    snprintf(key, sizeof key, "%s.bias", name);
    add_tensor(t, key, dim, 0, names);
}

static void random_tensors(tensor_list *t, char names[][200], const pc_distilbert_config *c, pc_rng *rng)
{
    float *word = add_tensor(t, "distilbert.embeddings.word_embeddings.weight", c->vocab_size, c->dim, names);
    if (word) {
        pc_rng_fill_normal(rng, word, (long)c->vocab_size * c->dim, 0.0f, 0.02f);
        memset(word + (long)c->pad_token_id * c->dim, 0, sizeof(float) * (size_t)c->dim);  /* padding_idx row */
    }
    float *pos = add_tensor(t, "distilbert.embeddings.position_embeddings.weight", c->max_position_embeddings, c->dim, names);
    if (pos && c->sinusoidal_pos_embds) pc_sinusoidal_positions(pos, c->max_position_embeddings, c->dim);
    else if (pos) pc_rng_fill_normal(rng, pos, (long)c->max_position_embeddings * c->dim, 0.0f, 0.02f);
    layer_norm_tensors(t, names, "distilbert.embeddings.LayerNorm", c->dim);
    static const char *const attn[4] = {"q_lin", "k_lin", "v_lin", "out_lin"};
    for (int i = 0; i < c->n_layers; i++) {
        char name[200];
        for (int j = 0; j < 4; j++) {
            snprintf(name, sizeof name, "distilbert.transformer.layer.%d.attention.%s", i, attn[j]);
            random_linear(t, names, name, c->dim, c->dim, rng);
        }
        snprintf(name, sizeof name, "distilbert.transformer.layer.%d.sa_layer_norm", i);
        layer_norm_tensors(t, names, name, c->dim);
        snprintf(name, sizeof name, "distilbert.transformer.layer.%d.ffn.lin1", i);
        random_linear(t, names, name, c->dim, c->hidden_dim, rng);
        snprintf(name, sizeof name, "distilbert.transformer.layer.%d.ffn.lin2", i);
        random_linear(t, names, name, c->hidden_dim, c->dim, rng);
        snprintf(name, sizeof name, "distilbert.transformer.layer.%d.output_layer_norm", i);
        layer_norm_tensors(t, names, name, c->dim);
    }
}

pc_status pc_distilbert_write_random(const char *dir, const pc_distilbert_config *cfg, uint64_t seed, pc_error *err)
{
    if (cfg->n_layers < 1 || cfg->n_layers > 64)
        return pc_fail(err, PEFTC_ERR_INVALID, "n_layers must be in 1..64");
    tensor_list *t = calloc(1, sizeof *t);
    char (*names)[200] = calloc(16 * 64 + 16, 200);
    if (!t || !names) { free(t); free(names); return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory"); }
    pc_rng rng;
    pc_rng_init(&rng, seed, "model_init");
    random_tensors(t, names, cfg, &rng);
    pc_status s = PEFTC_OK;
    for (int i = 0; i < t->n; i++)
        if (!t->bufs[i]) s = pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for %s", t->items[i].name);
    char path[4096];
    cJSON *config = config_json(cfg);
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (!s) s = pc_json_write_file_atomic(path, config, true, err);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (!s) s = pc_st_write(path, t->items, t->n, NULL, err);
    cJSON_Delete(config);
    for (int i = 0; i < t->n; i++) free(t->bufs[i]);
    free(t);
    free(names);
    return s;
}
