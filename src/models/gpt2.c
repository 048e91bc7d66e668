/* GPT2LMHeadModel, forward and backward, as transformers' modeling_gpt2.py:
 *   x = wte[ids] + wpe[pos] -> dropout
 *   block: x = x + dropout(c_proj(attn(split(c_attn(ln_1(x))))));  x = x + dropout(mlp(ln_2(x)))
 *   mlp = c_proj(gelu_new(c_fc(.)));  logits = ln_f(x) wte^T (tied head)
 * Conv1D weights are stored [in, out] (the Linears carry w_in_out), LayerNorm eps
 * layer_norm_epsilon, causal + padding attention. Loss: transformers' causal LM loss. */
#include "models/gpt2.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/json.h"
#include "kernels/vec.h"
#include "models/causal_lm.h"
#include "models/model_util.h"
#include "models/quantized.h"
#include "nn/activation.h"
#include "nn/attention.h"
#include "nn/dropout.h"
#include "nn/embedding.h"
#include "nn/layernorm.h"
#include "peft/neftune.h"

typedef struct layer_acts {
    float *n1, *mean1, *rstd1, *qkv, *q, *k, *v, *attn_saved, *attn_drop, *ctx, *proj_drop, *h;
    float *n2, *mean2, *rstd2, *fc, *act, *mlp_drop, *out;
} layer_acts;

typedef struct gpt2_layer {
    pc_linear c_attn, attn_proj, c_fc, mlp_proj;
    pc_norm ln_1, ln_2;
    layer_acts a;
    float *k_cache, *v_cache;
} gpt2_layer;

typedef struct gpt2 {
    pc_gpt2_config cfg;
    pc_safetensors *st;
    pc_owned owned;
    float *wte, *wpe;
    gpt2_layer *layers;
    pc_norm ln_f;
    pc_linear lm_head;
    bool training;
    pc_rng *layer_rng;               /* dropout stream state at each block's start (for recomputation) */
    int cap_B, cap_T, cache_cap, cache_len;
    float *x0, *emb_drop, *xf, *mean_f, *rstd_f;
    pc_causal_head head;             /* lm_head's rows with a target, the loss */
    float *d_cur, *d_tmp, *d_qkv, *d_q, *d_k, *d_v, *d_wide, *attn_scratch, *decode_scratch;
    pc_linear **linear_list;
    pc_norm **norm_list;
} gpt2;

/* ---------- config.json ---------- */

pc_status pc_gpt2_config_load(const char *path, pc_gpt2_config *c, pc_error *err)
{
    memset(c, 0, sizeof *c);
    cJSON *j = NULL;
    PC_TRY(pc_json_parse_file(path, &j, err));
    long long embd, layers, heads, vocab, pos, inner, bos, eos;
    double eps, resid, embd_p, attn_p;
    const char *act = NULL;
    pc_status s = pc_json_get_int(j, "n_embd", 768, &embd, path, err);
    if (!s) s = pc_json_get_int(j, "n_layer", 12, &layers, path, err);
    if (!s) s = pc_json_get_int(j, "n_head", 12, &heads, path, err);
    if (!s) s = pc_json_get_int(j, "vocab_size", 50257, &vocab, path, err);
    if (!s) s = pc_json_get_int(j, "n_positions", 1024, &pos, path, err);
    if (!s) s = pc_json_get_int(j, "n_inner", 4 * embd, &inner, path, err);
    if (!s) s = pc_json_get_int(j, "bos_token_id", 50256, &bos, path, err);
    if (!s) s = pc_json_get_int(j, "eos_token_id", 50256, &eos, path, err);
    if (!s) s = pc_json_get_double(j, "layer_norm_epsilon", 1e-5, &eps, path, err);
    if (!s) s = pc_json_get_double(j, "resid_pdrop", 0.1, &resid, path, err);
    if (!s) s = pc_json_get_double(j, "embd_pdrop", 0.1, &embd_p, path, err);
    if (!s) s = pc_json_get_double(j, "attn_pdrop", 0.1, &attn_p, path, err);
    if (!s) s = pc_json_get_string(j, "activation_function", "gelu_new", &act, path, err);
    if (!s && strcmp(act, "gelu_new") != 0)
        s = pc_fail(err, PEFTC_ERR_UNSUPPORTED, "%s: activation_function '%s' is not supported (gelu_new)", path, act);
    cJSON_Delete(j);
    if (s) return s;
    if (embd < 1 || embd > 65536 || layers < 1 || layers > 256 || heads < 1 || embd % heads != 0 || vocab < 1 ||
        vocab > 10000000 || pos < 1 || pos > 1 << 22 || inner < 1 || inner > 1 << 20)
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: inconsistent sizes (n_embd %lld, n_layer %lld, n_head %lld, "
                       "vocab_size %lld, n_positions %lld)", path, embd, layers, heads, vocab, pos);
    if (resid < 0 || resid >= 1 || embd_p < 0 || embd_p >= 1 || attn_p < 0 || attn_p >= 1)
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: dropout probabilities must be in [0, 1)", path);
    *c = (pc_gpt2_config){ (int)embd, (int)layers, (int)heads, (int)vocab, (int)pos, (int)inner, (float)eps,
                           (float)resid, (float)embd_p, (float)attn_p, (int)bos, (int)eos };
    return PEFTC_OK;
}

/* ---------- weights ---------- */

/* The official checkpoints store GPT2Model keys ("h.0...."), fine-tuned ones GPT2LMHeadModel keys
 * ("transformer.h.0...."); module names are always the latter (PEFT's key names). */
static const char *checkpoint_prefix(const pc_safetensors *st)
{
    return pc_st_find(st, "transformer.wte.weight") ? "" : "transformer.";
}

static pc_status load_tensor(gpt2 *g, const char *module, const char *suffix, int d0, int d1, float **dst,
                             pc_error *err)
{
    char key[256];
    const char *strip = checkpoint_prefix(g->st);
    const char *name = strip[0] && strncmp(module, strip, strlen(strip)) == 0 ? module + strlen(strip) : module;
    snprintf(key, sizeof key, "%s%s", name, suffix);
    int64_t shape[2] = {d0, d1};
    return pc_model_tensor(g->st, &g->owned, key, d1 ? 2 : 1, shape, dst, err);
}

static pc_status load_conv1d(gpt2 *g, pc_linear *lin, const char *name, int in, int out, pc_error *err)
{
    snprintf(lin->name, sizeof lin->name, "%s", name);
    lin->in = in;
    lin->out = out;
    lin->w_in_out = true;
    char key[256];
    const char *strip = checkpoint_prefix(g->st);
    snprintf(key, sizeof key, "%s", strip[0] && strncmp(name, strip, strlen(strip)) == 0 ? name + strlen(strip) : name);
    if (pc_checkpoint_has_4bit(g->st, key)) PC_TRY(pc_linear_load_4bit(g->st, key, lin, PC_Q4_COMPUTE_F32, err));
    else PC_TRY(load_tensor(g, name, ".weight", in, out, &lin->W, err));
    return load_tensor(g, name, ".bias", out, 0, &lin->b, err);
}

static pc_status load_norm(gpt2 *g, pc_norm *n, const char *name, int dim, pc_error *err)
{
    snprintf(n->name, sizeof n->name, "%s", name);
    n->dim = dim;
    PC_TRY(load_tensor(g, name, ".weight", dim, 0, &n->w, err));
    return load_tensor(g, name, ".bias", dim, 0, &n->b, err);
}

static pc_status load_layer(gpt2 *g, int i, pc_error *err)
{
    const pc_gpt2_config *c = &g->cfg;
    gpt2_layer *L = &g->layers[i];
    int E = c->n_embd;
    char p[200];
#define NAME(suffix) (snprintf(p, sizeof p, "transformer.h.%d.%s", i, suffix), p)
    PC_TRY(load_norm(g, &L->ln_1, NAME("ln_1"), E, err));
    PC_TRY(load_conv1d(g, &L->c_attn, NAME("attn.c_attn"), E, 3 * E, err));
    PC_TRY(load_conv1d(g, &L->attn_proj, NAME("attn.c_proj"), E, E, err));
    PC_TRY(load_norm(g, &L->ln_2, NAME("ln_2"), E, err));
    PC_TRY(load_conv1d(g, &L->c_fc, NAME("mlp.c_fc"), E, c->n_inner, err));
    PC_TRY(load_conv1d(g, &L->mlp_proj, NAME("mlp.c_proj"), c->n_inner, E, err));
#undef NAME
    return PEFTC_OK;
}

/* ---------- activations ---------- */

static bool alloc_layer_acts(pc_owned *o, layer_acts *a, long N, long E, long I, long att_saved, long att_drop)
{
    return (a->n1 = pc_owned_alloc(o, N * E)) && (a->mean1 = pc_owned_alloc(o, N)) &&
           (a->rstd1 = pc_owned_alloc(o, N)) && (a->qkv = pc_owned_alloc(o, N * 3 * E)) &&
           (a->q = pc_owned_alloc(o, N * E)) && (a->k = pc_owned_alloc(o, N * E)) && (a->v = pc_owned_alloc(o, N * E)) &&
           (a->attn_saved = pc_owned_alloc(o, att_saved)) && (a->attn_drop = pc_owned_alloc(o, att_drop)) &&
           (a->ctx = pc_owned_alloc(o, N * E)) && (a->proj_drop = pc_owned_alloc(o, N * E)) &&
           (a->h = pc_owned_alloc(o, N * E)) && (a->n2 = pc_owned_alloc(o, N * E)) &&
           (a->mean2 = pc_owned_alloc(o, N)) && (a->rstd2 = pc_owned_alloc(o, N)) &&
           (a->fc = pc_owned_alloc(o, N * I)) && (a->act = pc_owned_alloc(o, N * I)) &&
           (a->mlp_drop = pc_owned_alloc(o, N * E)) && (a->out = pc_owned_alloc(o, N * E));
}

static pc_status reserve(pc_model *m, int B, int T, pc_error *err)
{
    gpt2 *g = m->impl;
    if (B <= g->cap_B && T <= g->cap_T) return PEFTC_OK;
    B = B > g->cap_B ? B : g->cap_B;
    T = T > g->cap_T ? T : g->cap_T;
    const pc_gpt2_config *c = &g->cfg;
    long N = (long)B * T, E = c->n_embd, V = c->vocab_size, I = c->n_inner;
    bool attn_dropout = c->attn_pdrop > 0;
    long att_saved = (long)pc_attention_saved_floats(B, T, c->n_head, attn_dropout);
    long att_drop = attn_dropout ? (long)B * c->n_head * T * T : 1;
    pc_owned *o = &g->owned;
    pc_owned_free_group(o, 1);
    o->group = 1;
    bool ok = (g->x0 = pc_owned_alloc(o, N * E)) && (g->emb_drop = pc_owned_alloc(o, N * E)) &&
        (g->xf = pc_owned_alloc(o, N * E)) && (g->mean_f = pc_owned_alloc(o, N)) && (g->rstd_f = pc_owned_alloc(o, N)) &&
        (m->logits = pc_owned_alloc(o, N * V)) && pc_causal_head_alloc(o, &g->head, N, E) &&
        (g->d_cur = pc_owned_alloc(o, N * E)) && (g->d_tmp = pc_owned_alloc(o, N * E)) &&
        (g->d_qkv = pc_owned_alloc(o, N * 3 * E)) && (g->d_q = pc_owned_alloc(o, N * E)) &&
        (g->d_k = pc_owned_alloc(o, N * E)) && (g->d_v = pc_owned_alloc(o, N * E)) &&
        (g->d_wide = pc_owned_alloc(o, N * I)) &&
        (g->attn_scratch = pc_owned_alloc(o, (long)pc_attention_scratch_floats(B, T, c->n_head, c->n_head,
                                                                                 (int)E / c->n_head, attn_dropout)));
    for (int i = 0; ok && i < c->n_layer; i++) {
        if (m->gradient_checkpointing && i > 0) {  /* one shared set of activations, own block output */
            g->layers[i].a = g->layers[0].a;
            ok = (g->layers[i].a.out = pc_owned_alloc(o, N * E)) != NULL;
        } else {
            ok = alloc_layer_acts(o, &g->layers[i].a, N, E, I, att_saved, att_drop);
        }
    }
    for (int i = 0; ok && i < m->n_linears; i++)
        if (pc_linear_reserve(m->linears[i], (int)N, &m->scratch, err) != PEFTC_OK) ok = false;
    o->group = 0;
    if (!ok) {
        g->cap_B = g->cap_T = 0;
        return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for activations of a %d x %d batch", B, T);
    }
    g->cap_B = B;
    g->cap_T = T;
    m->activation_bytes = pc_owned_bytes(o, 1);
    return PEFTC_OK;
}

/* ---------- forward ---------- */

/* qkv [N, 3E] -> q, k, v [N, E] each (and back for the gradients). */
static void split_qkv(float *q, float *k, float *v, const float *qkv, int N, int E)
{
    for (int r = 0; r < N; r++) {
        const float *row = qkv + (long)r * 3 * E;
        memcpy(q + (long)r * E, row, sizeof(float) * (size_t)E);
        memcpy(k + (long)r * E, row + E, sizeof(float) * (size_t)E);
        memcpy(v + (long)r * E, row + 2 * E, sizeof(float) * (size_t)E);
    }
}

static void join_qkv(float *qkv, const float *q, const float *k, const float *v, int N, int E)
{
    for (int r = 0; r < N; r++) {
        float *row = qkv + (long)r * 3 * E;
        memcpy(row, q + (long)r * E, sizeof(float) * (size_t)E);
        memcpy(row + E, k + (long)r * E, sizeof(float) * (size_t)E);
        memcpy(row + 2 * E, v + (long)r * E, sizeof(float) * (size_t)E);
    }
}

static float attn_scale(const pc_gpt2_config *c) { return 1.0f / sqrtf((float)(c->n_embd / c->n_head)); }

static bool linear_trainable(const pc_linear *x) { return x->dW || x->db || x->lora; }

/* recompute: the block runs again for its backward (gradient checkpointing). It then stops after c_fc when
 * mlp.c_proj trains nothing (as llama.c does before down_proj), drawing only the MLP dropout mask that backward
 * needs, so the stream stays where the first forward left it. */
static void layer_forward(gpt2 *g, gpt2_layer *L, const float *x, const pc_batch *b, bool training, pc_rng *rng,
                          bool recompute)
{
    const pc_gpt2_config *c = &g->cfg;
    layer_acts *a = &L->a;
    int N = b->B * b->T, E = c->n_embd, H = c->n_head;
    long NE = (long)N * E, att = (long)b->B * H * b->T * b->T;
    pc_layernorm_forward(a->n1, a->mean1, a->rstd1, x, L->ln_1.w, L->ln_1.b, N, E, c->eps);
    pc_linear_forward(&L->c_attn, a->qkv, a->n1, N, training, rng);
    split_qkv(a->q, a->k, a->v, a->qkv, N, E);
    bool drop = training && c->attn_pdrop > 0;
    if (drop) pc_dropout_mask(a->attn_drop, att, c->attn_pdrop, rng);
    pc_attention_forward(a->ctx, a->attn_saved, a->q, a->k, a->v, b->attention_mask, drop ? a->attn_drop : NULL, b->B,
                         b->T, H, H, E / H, attn_scale(c), true, g->attn_scratch);
    pc_linear_forward(&L->attn_proj, a->h, a->ctx, N, training, rng);
    pc_dropout_forward(a->h, a->proj_drop, a->h, NE, c->resid_pdrop, training, rng);
    pc_vec_add(a->h, x, NE);
    pc_layernorm_forward(a->n2, a->mean2, a->rstd2, a->h, L->ln_2.w, L->ln_2.b, N, E, c->eps);
    pc_linear_forward(&L->c_fc, a->fc, a->n2, N, training, rng);
    if (recompute && !linear_trainable(&L->mlp_proj)) {
        if (training && c->resid_pdrop > 0) pc_dropout_mask(a->mlp_drop, NE, c->resid_pdrop, rng);
        return;
    }
    pc_gelu_tanh_forward(a->act, a->fc, (long)N * c->n_inner);
    pc_linear_forward(&L->mlp_proj, a->out, a->act, N, training, rng);
    pc_dropout_forward(a->out, a->mlp_drop, a->out, NE, c->resid_pdrop, training, rng);
    pc_vec_add(a->out, a->h, NE);
}

static void embed(pc_model *m, gpt2 *g, const int32_t *ids, int B, int T, int pos0, bool training, pc_rng *rng)
{
    int E = g->cfg.n_embd;
    long N = (long)B * T;
    pc_embedding_forward(g->x0, ids, g->wte, (int)N, E);
    if (training) pc_neftune_apply(g->x0, B, T, E, m->neftune_noise_alpha, &m->neftune_rng);
    for (long r = 0; r < N; r++) pc_vec_add(g->x0 + r * E, g->wpe + (pos0 + r % T) * (long)E, E);
    pc_dropout_forward(g->x0, g->emb_drop, g->x0, N * E, g->cfg.embd_pdrop, training, rng);
}

static pc_status forward(pc_model *m, const pc_batch *b, bool training, float *loss, pc_error *err)
{
    gpt2 *g = m->impl;
    const pc_gpt2_config *c = &g->cfg;
    PC_TRY(pc_causal_check_batch(b, g->cap_B, g->cap_T, c->n_positions, c->vocab_size, err));
    g->training = training;
    int N = b->B * b->T;
    pc_rng *rng = &m->dropout_rng;
    embed(m, g, b->input_ids, b->B, b->T, 0, training, rng);
    const float *x = g->x0;
    for (int i = 0; i < c->n_layer; i++) {
        g->layer_rng[i] = *rng;  /* to replay the block's dropout draws when recomputing it */
        layer_forward(g, &g->layers[i], x, b, training, rng, false);
        x = g->layers[i].a.out;
    }
    pc_layernorm_forward(g->xf, g->mean_f, g->rstd_f, x, g->ln_f.w, g->ln_f.b, N, c->n_embd, c->eps);
    return pc_causal_head_forward(m, &g->lm_head, &g->head, g->xf, c->n_embd, b, training, rng, loss, err);
}

/* ---------- backward ---------- */

static bool layer_trainable(const gpt2_layer *L)
{
    return linear_trainable(&L->c_attn) || linear_trainable(&L->attn_proj) || linear_trainable(&L->c_fc) ||
           linear_trainable(&L->mlp_proj) || L->ln_1.db || L->ln_2.db;
}

static int lowest_trainable(const gpt2 *g)
{
    for (int i = 0; i < g->cfg.n_layer; i++)
        if (layer_trainable(&g->layers[i])) return i;
    return g->cfg.n_layer;
}

/* Applies a residual-branch dropout mask to a gradient copy. */
static const float *through_dropout(float *dst, const float *dy, const float *mask, long n, float p, bool training)
{
    if (!training || p <= 0) return dy;
    pc_apply_mask(dst, dy, mask, n);
    return dst;
}

/* d_cur: dL/d(layer output) on entry, dL/d(layer input) on exit (when need_dx). */
static void layer_backward(gpt2 *g, gpt2_layer *L, const float *x, const pc_batch *b, bool need_dx)
{
    const pc_gpt2_config *c = &g->cfg;
    layer_acts *a = &L->a;
    int N = b->B * b->T, E = c->n_embd, H = c->n_head;
    long NE = (long)N * E, NI = (long)N * c->n_inner;
    const float *dmlp = through_dropout(g->d_tmp, g->d_cur, a->mlp_drop, NE, c->resid_pdrop, g->training);
    pc_linear_backward(&L->mlp_proj, g->d_wide, false, dmlp, a->act, N);
    pc_gelu_tanh_backward(g->d_wide, g->d_wide, a->fc, NI);
    pc_linear_backward(&L->c_fc, g->d_tmp, false, g->d_wide, a->n2, N);                    /* dL/dn2 */
    pc_layernorm_backward(g->d_q, L->ln_2.dw, L->ln_2.db, g->d_tmp, a->h, a->mean2, a->rstd2, L->ln_2.w, N, E);
    pc_vec_add(g->d_cur, g->d_q, NE);                                                     /* dL/dh */
    const float *dproj = through_dropout(g->d_tmp, g->d_cur, a->proj_drop, NE, c->resid_pdrop, g->training);
    pc_linear_backward(&L->attn_proj, g->d_v, false, dproj, a->ctx, N);                   /* dL/dctx */
    memcpy(g->d_tmp, g->d_v, sizeof(float) * (size_t)NE);
    bool drop = g->training && c->attn_pdrop > 0;
    pc_attention_backward(g->d_q, g->d_k, g->d_v, g->d_tmp, a->ctx, a->attn_saved, a->q, a->k, a->v, b->attention_mask,
                          drop ? a->attn_drop : NULL, b->B, b->T, H, H, E / H, attn_scale(c), true, g->attn_scratch);
    join_qkv(g->d_qkv, g->d_q, g->d_k, g->d_v, N, E);
    pc_linear_backward(&L->c_attn, need_dx ? g->d_tmp : NULL, false, g->d_qkv, a->n1, N);
    if (!need_dx) return;
    pc_layernorm_backward(g->d_q, L->ln_1.dw, L->ln_1.db, g->d_tmp, x, a->mean1, a->rstd1, L->ln_1.w, N, E);
    pc_vec_add(g->d_cur, g->d_q, NE);                                                     /* dL/dx */
}

static void backward(pc_model *m, const pc_batch *b, float dloss)
{
    gpt2 *g = m->impl;
    const pc_gpt2_config *c = &g->cfg;
    int N = b->B * b->T;
    pc_causal_head_backward(m, &g->lm_head, &g->head, g->d_tmp, c->n_embd, b, dloss);
    const float *x_last = g->layers[c->n_layer - 1].a.out;
    pc_layernorm_backward(g->d_cur, g->ln_f.dw, g->ln_f.db, g->d_tmp, x_last, g->mean_f, g->rstd_f, g->ln_f.w, N,
                          c->n_embd);
    int lowest = lowest_trainable(g);
    for (int i = c->n_layer - 1; i >= lowest; i--) {
        const float *x = i > 0 ? g->layers[i - 1].a.out : g->x0;
        if (m->gradient_checkpointing && i < c->n_layer - 1) {  /* the top block's activations are current */
            pc_rng replay = g->layer_rng[i];
            layer_forward(g, &g->layers[i], x, b, g->training, &replay, true);
        }
        layer_backward(g, &g->layers[i], x, b, i > lowest);
    }
}

/* ---------- generation with a KV cache (batch of one) ---------- */

static pc_status cache_reset(pc_model *m, int max_ctx, pc_error *err)
{
    gpt2 *g = m->impl;
    const pc_gpt2_config *c = &g->cfg;
    if (max_ctx > c->n_positions) max_ctx = c->n_positions;
    PC_TRY(reserve(m, 1, 1, err));
    g->cache_len = 0;
    if (max_ctx <= g->cache_cap) return PEFTC_OK;
    g->owned.group = 2;
    pc_owned_free_group(&g->owned, 2);
    g->decode_scratch = pc_owned_alloc(&g->owned, (long)pc_attention_decode_scratch_floats(max_ctx, c->n_head));
    bool ok = g->decode_scratch != NULL;
    for (int i = 0; ok && i < c->n_layer; i++)
        ok = (g->layers[i].k_cache = pc_owned_alloc(&g->owned, (long)max_ctx * c->n_embd)) &&
             (g->layers[i].v_cache = pc_owned_alloc(&g->owned, (long)max_ctx * c->n_embd));
    g->owned.group = 0;
    g->cache_cap = ok ? max_ctx : 0;
    return ok ? PEFTC_OK : pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for a KV cache of %d positions", max_ctx);
}

static void layer_decode(gpt2 *g, gpt2_layer *L, float *x, int pos, pc_rng *rng)
{
    const pc_gpt2_config *c = &g->cfg;
    layer_acts *a = &L->a;
    int E = c->n_embd, H = c->n_head;
    pc_layernorm_forward(a->n1, a->mean1, a->rstd1, x, L->ln_1.w, L->ln_1.b, 1, E, c->eps);
    pc_linear_forward(&L->c_attn, a->qkv, a->n1, 1, false, rng);
    memcpy(L->k_cache + (long)pos * E, a->qkv + E, sizeof(float) * (size_t)E);
    memcpy(L->v_cache + (long)pos * E, a->qkv + 2 * E, sizeof(float) * (size_t)E);
    pc_attention_decode(a->ctx, a->qkv, L->k_cache, L->v_cache, pos + 1, H, H, E / H, attn_scale(c), g->decode_scratch);
    pc_linear_forward(&L->attn_proj, a->h, a->ctx, 1, false, rng);
    pc_vec_add(x, a->h, E);
    pc_layernorm_forward(a->n2, a->mean2, a->rstd2, x, L->ln_2.w, L->ln_2.b, 1, E, c->eps);
    pc_linear_forward(&L->c_fc, a->fc, a->n2, 1, false, rng);
    pc_gelu_tanh_forward(a->act, a->fc, c->n_inner);
    pc_linear_forward(&L->mlp_proj, a->out, a->act, 1, false, rng);
    pc_vec_add(x, a->out, E);
}

static pc_status decode(pc_model *m, const int32_t *ids, int n, pc_error *err)
{
    gpt2 *g = m->impl;
    const pc_gpt2_config *c = &g->cfg;
    if (g->cache_len + n > g->cache_cap)
        return pc_fail(err, PEFTC_ERR_INVALID, "context of %d tokens exceeds the KV cache (%d)", g->cache_len + n, g->cache_cap);
    for (int t = 0; t < n; t++) {
        if (ids[t] < 0 || ids[t] >= c->vocab_size)
            return pc_fail(err, PEFTC_ERR_INVALID, "token id %d is outside the vocabulary (size %d)", ids[t], c->vocab_size);
        embed(m, g, &ids[t], 1, 1, g->cache_len, false, &m->dropout_rng);
        for (int i = 0; i < c->n_layer; i++) layer_decode(g, &g->layers[i], g->x0, g->cache_len, &m->dropout_rng);
        g->cache_len++;
    }
    pc_layernorm_forward(g->xf, g->mean_f, g->rstd_f, g->x0, g->ln_f.w, g->ln_f.b, 1, c->n_embd, c->eps);
    pc_linear_forward(&g->lm_head, m->logits, g->xf, 1, false, &m->dropout_rng);
    return PEFTC_OK;
}

/* ---------- lifetime ---------- */

static void destroy(pc_model *m)
{
    gpt2 *g = m->impl;
    if (g) {
        pc_owned_free_group(&g->owned, -1);
        free(g->layers);
        free(g->layer_rng);
        free(g->linear_list);
        free(g->norm_list);
        pc_st_close(g->st);
        free(g);
    }
    free(m);
}

static const pc_model_ops gpt2_ops = { reserve, forward, backward, destroy, cache_reset, decode };

static pc_status list_modules(pc_model *m, gpt2 *g, pc_error *err)
{
    int n = g->cfg.n_layer;
    g->linear_list = calloc((size_t)(4 * n + 1), sizeof *g->linear_list);
    g->norm_list = calloc((size_t)(2 * n + 1), sizeof *g->norm_list);
    if (!g->linear_list || !g->norm_list) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
    int nl = 0, nn = 0;
    for (int i = 0; i < n; i++) {
        gpt2_layer *L = &g->layers[i];
        g->linear_list[nl++] = &L->c_attn;
        g->linear_list[nl++] = &L->attn_proj;
        g->linear_list[nl++] = &L->c_fc;
        g->linear_list[nl++] = &L->mlp_proj;
        g->norm_list[nn++] = &L->ln_1;
        g->norm_list[nn++] = &L->ln_2;
    }
    g->norm_list[nn++] = &g->ln_f;
    g->linear_list[nl++] = &g->lm_head;
    m->linears = g->linear_list;
    m->n_linears = nl;
    m->norms = g->norm_list;
    m->n_norms = nn;
    return PEFTC_OK;
}

static int64_t count_params(const pc_model *m, const gpt2 *g)
{
    const pc_gpt2_config *c = &g->cfg;
    int64_t n = (int64_t)c->vocab_size * c->n_embd + (int64_t)c->n_positions * c->n_embd;
    for (int i = 0; i < m->n_linears; i++) {
        const pc_linear *x = m->linears[i];
        if (x != &g->lm_head) n += (int64_t)x->in * x->out + (x->b ? x->out : 0);
    }
    for (int i = 0; i < m->n_norms; i++) n += 2 * m->norms[i]->dim;
    return n;
}

static pc_status load_all(pc_model *m, gpt2 *g, pc_error *err)
{
    const pc_gpt2_config *c = &g->cfg;
    PC_TRY(load_tensor(g, "transformer.wte", ".weight", c->vocab_size, c->n_embd, &g->wte, err));
    PC_TRY(load_tensor(g, "transformer.wpe", ".weight", c->n_positions, c->n_embd, &g->wpe, err));
    g->layers = calloc((size_t)c->n_layer, sizeof *g->layers);
    g->layer_rng = calloc((size_t)c->n_layer, sizeof *g->layer_rng);
    if (!g->layers || !g->layer_rng) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
    for (int i = 0; i < c->n_layer; i++) PC_TRY(load_layer(g, i, err));
    PC_TRY(load_norm(g, &g->ln_f, "transformer.ln_f", c->n_embd, err));
    snprintf(g->lm_head.name, sizeof g->lm_head.name, "lm_head");   /* tied to wte */
    g->lm_head.in = c->n_embd;
    g->lm_head.out = c->vocab_size;
    g->lm_head.W = g->wte;
    PC_TRY(list_modules(m, g, err));
    m->token_embedding = m->n_extra_tensors;
    pc_model_add_extra_tensor(m, "transformer.wte.weight", g->wte, c->vocab_size, c->n_embd, g->st);
    pc_model_add_extra_tensor(m, "transformer.wpe.weight", g->wpe, c->n_positions, c->n_embd, g->st);
    m->n_base_params = count_params(m, g);
    return PEFTC_OK;
}

pc_status pc_gpt2_load(const char *dir, const pc_gpt2_config *cfg, pc_safetensors *st, const pc_model_options *opts,
                       pc_model **out, pc_error *err)
{
    pc_model *m = calloc(1, sizeof *m);
    gpt2 *g = calloc(1, sizeof *g);
    if (!m || !g) { free(m); free(g); pc_st_close(st); return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory"); }
    m->impl = g;
    m->ops = &gpt2_ops;
    m->task = PC_TASK_CAUSAL_LM;
    g->cfg = *cfg;
    g->st = st;
    snprintf(m->architecture, sizeof m->architecture, "GPT2LMHeadModel");
    snprintf(m->model_type, sizeof m->model_type, "gpt2");
    m->vocab_size = cfg->vocab_size;
    m->max_positions = cfg->n_positions;
    m->output_linear = "lm_head";
    m->default_targets_n = 1;
    m->default_targets[0] = "c_attn";
    m->bos_token_id = cfg->bos_token_id;
    m->eos_token_id = cfg->eos_token_id;
    pc_rng_init(&m->dropout_rng, opts ? opts->seed : 42, "dropout");
    pc_rng_init(&m->neftune_rng, opts ? opts->seed : 42, "neftune");
    pc_status s = load_all(m, g, err);
    if (s) {
        pc_error_prefix(err, "%s", dir);
        destroy(m);
        return s;
    }
    *out = m;
    return PEFTC_OK;
}
