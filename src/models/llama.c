/* LlamaForCausalLM (Llama 2/3, TinyLlama, SmolLM, Mistral, Qwen2), forward and
 * backward, as transformers' modeling_llama.py:
 *   h = x + o_proj(attn(rope(q_proj(n1)), rope(k_proj(n1)), v_proj(n1))),  n1 = RMSNorm(x)
 *   out = h + down_proj(silu(gate_proj(n2)) * up_proj(n2)),              n2 = RMSNorm(h)
 *   logits = lm_head(RMSNorm(out_L))
 * Grouped-query attention (num_key_value_heads), causal + padding mask, rotary
 * embeddings in the rotate-half layout. Loss: transformers' causal LM loss. */
#include "models/llama.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/threads.h"
#include "formats/json.h"
#include "kernels/vec.h"
#include "models/causal_lm.h"
#include "models/model_util.h"
#include "models/quantized.h"
#include "nn/activation.h"
#include "nn/attention.h"
#include "nn/embedding.h"
#include "nn/loss.h"
#include "nn/rmsnorm.h"
#include "nn/rope.h"
#include "peft/neftune.h"

typedef struct layer_acts {
    float *n1, *rstd1, *q, *k, *v, *attn_saved, *ctx, *h, *n2, *rstd2, *g, *u, *a, *out;
} layer_acts;

typedef struct llama_layer {
    pc_linear q, k, v, o, gate, up, down;
    pc_norm in_norm, post_norm;
    layer_acts a;
    bool keeps_mlp;                  /* checkpointing keeps this block's own g and u (allocated by reserve) */
    bool wants_keep;                 /* choose_kept_blocks' choice for the next reserve */
    pc_rng mlp_rng;                  /* dropout stream state where the MLP started (to recompute it alike) */
    float *k_cache, *v_cache;        /* [max_ctx, kv_dim] for generation */
} llama_layer;

typedef struct llama {
    pc_llama_config cfg;
    pc_safetensors *st;
    pc_owned owned;
    float *embed;                    /* [vocab, hidden] */
    llama_layer *layers;
    pc_norm final_norm;
    pc_linear lm_head;
    float *rope_cos, *rope_sin;      /* [max_pos, head_dim] */
    int cap_B, cap_T, cache_cap, cache_len;
    bool training;                   /* mode of the last forward */
    float *x0, *xf, *rstd_f;
    pc_causal_head head;             /* lm_head's rows with a target, the loss */
    float *d_cur, *d_tmp, *d_q, *d_k, *d_v, *d_i1, *d_i2, *d_i3, *attn_scratch;
    float *decode_scratch;           /* for pc_attention_decode over up to cache_cap positions */
    pc_linear **linear_list;
    pc_norm **norm_list;
} llama;

/* ---------- config.json ---------- */

static pc_status read_rope_scaling(const cJSON *j, const char *path, pc_llama_config *c, pc_error *err)
{
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(j, "rope_scaling");
    if (!rs || cJSON_IsNull(rs)) return PEFTC_OK;
    const char *type = NULL;
    PC_TRY(pc_json_get_string(rs, "rope_type", "", &type, path, err));
    if (!type[0]) PC_TRY(pc_json_get_string(rs, "type", "", &type, path, err));
    if (strcmp(type, "default") == 0) return PEFTC_OK;
    if (strcmp(type, "llama3") != 0)
        return pc_fail(err, PEFTC_ERR_UNSUPPORTED, "%s: rope_scaling type '%s' is not supported (llama3)", path, type);
    double factor, low, high;
    long long orig;
    PC_TRY(pc_json_get_double(rs, "factor", 8, &factor, path, err));
    PC_TRY(pc_json_get_double(rs, "low_freq_factor", 1, &low, path, err));
    PC_TRY(pc_json_get_double(rs, "high_freq_factor", 4, &high, path, err));
    PC_TRY(pc_json_get_int(rs, "original_max_position_embeddings", 8192, &orig, path, err));
    c->has_rope_scaling = true;
    c->rope_scaling = (pc_rope_scaling){ (float)factor, (float)low, (float)high, (int)orig };
    return PEFTC_OK;
}

/* bos/eos may be an int or (Llama 3) a list of ints: take the first. */
static pc_status read_token_id(const cJSON *j, const char *key, int *out, const char *path, pc_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (cJSON_IsArray(v)) v = cJSON_GetArrayItem(v, 0);
    if (!v || cJSON_IsNull(v)) { *out = -1; return PEFTC_OK; }
    if (!pc_json_is_int32(v) || v->valuedouble < 0)
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: '%s' must be a token id (a non-negative integer)", path, key);
    *out = (int)v->valuedouble;
    return PEFTC_OK;
}

static pc_status read_sizes(const cJSON *j, const char *path, pc_llama_config *c, pc_error *err)
{
    long long hidden, inter, layers, heads, kv, hd, vocab, maxpos;
    PC_TRY(pc_json_get_int(j, "hidden_size", 4096, &hidden, path, err));
    PC_TRY(pc_json_get_int(j, "intermediate_size", 11008, &inter, path, err));
    PC_TRY(pc_json_get_int(j, "num_hidden_layers", 32, &layers, path, err));
    PC_TRY(pc_json_get_int(j, "num_attention_heads", 32, &heads, path, err));
    PC_TRY(pc_json_get_int(j, "num_key_value_heads", heads, &kv, path, err));
    PC_TRY(pc_json_get_int(j, "head_dim", heads > 0 ? hidden / heads : 0, &hd, path, err));
    PC_TRY(pc_json_get_int(j, "vocab_size", 32000, &vocab, path, err));
    PC_TRY(pc_json_get_int(j, "max_position_embeddings", 2048, &maxpos, path, err));
    if (hidden < 1 || hidden > 65536 || inter < 1 || inter > 1 << 20 || layers < 1 || layers > 256 || heads < 1 ||
        kv < 1 || heads % kv != 0 || hd < 2 || hd % 2 != 0 || hd > 1024 || vocab < 1 || vocab > 10000000 ||
        maxpos < 1 || maxpos > 1 << 22)
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: inconsistent sizes (hidden_size %lld, intermediate_size %lld, "
                       "num_hidden_layers %lld, num_attention_heads %lld, num_key_value_heads %lld, head_dim %lld, "
                       "vocab_size %lld)", path, hidden, inter, layers, heads, kv, hd, vocab);
    c->hidden = (int)hidden; c->intermediate = (int)inter; c->n_layers = (int)layers; c->n_heads = (int)heads;
    c->n_kv_heads = (int)kv; c->head_dim = (int)hd; c->vocab_size = (int)vocab; c->max_positions = (int)maxpos;
    return PEFTC_OK;
}

pc_status pc_llama_config_load(const char *path, pc_llama_config *c, pc_error *err)
{
    memset(c, 0, sizeof *c);
    cJSON *j = NULL;
    PC_TRY(pc_json_parse_file(path, &j, err));
    double eps, theta;
    const char *act = NULL;
    pc_status s = read_sizes(j, path, c, err);
    if (!s) s = pc_json_get_double(j, "rms_norm_eps", 1e-6, &eps, path, err);
    if (!s) s = pc_json_get_double(j, "rope_theta", 10000.0, &theta, path, err);
    if (!s) s = pc_json_get_bool(j, "tie_word_embeddings", false, &c->tie_word_embeddings, path, err);
    if (!s) s = pc_json_get_string(j, "hidden_act", "silu", &act, path, err);
    if (!s && !(eps >= 0))
        s = pc_fail(err, PEFTC_ERR_FORMAT, "%s: rms_norm_eps must be >= 0, got %g", path, eps);
    if (!s && !(theta > 0))
        s = pc_fail(err, PEFTC_ERR_FORMAT, "%s: rope_theta must be > 0, got %g", path, theta);
    if (!s && strcmp(act, "silu") != 0)
        s = pc_fail(err, PEFTC_ERR_UNSUPPORTED, "%s: hidden_act '%s' is not supported (silu)", path, act);
    if (!s) s = read_rope_scaling(j, path, c, err);
    if (!s) s = read_token_id(j, "bos_token_id", &c->bos_token_id, path, err);
    if (!s) s = read_token_id(j, "eos_token_id", &c->eos_token_id, path, err);
    if (!s) {
        c->rms_norm_eps = (float)eps;
        c->rope_theta = theta;
    }
    cJSON_Delete(j);
    return s;
}

/* ---------- weights ---------- */

static pc_status load_weight(llama *l, const char *name, int d0, int d1, float **dst, pc_error *err)
{
    int64_t shape[2] = {d0, d1};
    return pc_model_tensor(l->st, &l->owned, name, d1 ? 2 : 1, shape, dst, err);
}

/* A Linear from "<name>.weight" and, when the checkpoint has one, "<name>.bias"
 * (attention_bias, Qwen2's q/k/v biases, mlp_bias). */
static pc_status load_linear(llama *l, pc_linear *lin, const char *name, int in, int out, pc_error *err)
{
    snprintf(lin->name, sizeof lin->name, "%s", name);
    lin->in = in;
    lin->out = out;
    char key[200];
    snprintf(key, sizeof key, "%s.weight", name);
    if (pc_checkpoint_has_4bit(l->st, name)) PC_TRY(pc_linear_load_4bit(l->st, name, lin, PC_Q4_COMPUTE_F32, err));
    else PC_TRY(load_weight(l, key, out, in, &lin->W, err));
    snprintf(key, sizeof key, "%s.bias", name);
    if (!pc_st_find(l->st, key)) return PEFTC_OK;
    return load_weight(l, key, out, 0, &lin->b, err);
}

static pc_status load_norm(llama *l, pc_norm *n, const char *name, int dim, pc_error *err)
{
    snprintf(n->name, sizeof n->name, "%s", name);
    n->dim = dim;
    char key[200];
    snprintf(key, sizeof key, "%s.weight", name);
    return load_weight(l, key, dim, 0, &n->w, err);
}

static pc_status load_layer(llama *l, int i, pc_error *err)
{
    const pc_llama_config *c = &l->cfg;
    llama_layer *L = &l->layers[i];
    int H = c->hidden, dq = c->n_heads * c->head_dim, dkv = c->n_kv_heads * c->head_dim, I = c->intermediate;
    char p[200];
#define NAME(suffix) (snprintf(p, sizeof p, "model.layers.%d.%s", i, suffix), p)
    PC_TRY(load_norm(l, &L->in_norm, NAME("input_layernorm"), H, err));
    PC_TRY(load_linear(l, &L->q, NAME("self_attn.q_proj"), H, dq, err));
    PC_TRY(load_linear(l, &L->k, NAME("self_attn.k_proj"), H, dkv, err));
    PC_TRY(load_linear(l, &L->v, NAME("self_attn.v_proj"), H, dkv, err));
    PC_TRY(load_linear(l, &L->o, NAME("self_attn.o_proj"), dq, H, err));
    PC_TRY(load_norm(l, &L->post_norm, NAME("post_attention_layernorm"), H, err));
    PC_TRY(load_linear(l, &L->gate, NAME("mlp.gate_proj"), H, I, err));
    PC_TRY(load_linear(l, &L->up, NAME("mlp.up_proj"), H, I, err));
    PC_TRY(load_linear(l, &L->down, NAME("mlp.down_proj"), I, H, err));
#undef NAME
    return PEFTC_OK;
}

/* lm_head shares the embedding matrix when tie_word_embeddings (or when the checkpoint has no lm_head). */
static pc_status load_head(llama *l, pc_error *err)
{
    const pc_llama_config *c = &l->cfg;
    if (!c->tie_word_embeddings && pc_st_find(l->st, "lm_head.weight"))
        return load_linear(l, &l->lm_head, "lm_head", c->hidden, c->vocab_size, err);
    if (!c->tie_word_embeddings)
        return pc_fail(err, PEFTC_ERR_FORMAT, "tensor 'lm_head.weight' is missing (tie_word_embeddings is false)");
    snprintf(l->lm_head.name, sizeof l->lm_head.name, "lm_head");
    l->lm_head.in = c->hidden;
    l->lm_head.out = c->vocab_size;
    l->lm_head.W = l->embed;
    return PEFTC_OK;
}

/* ---------- activations ---------- */

/* What the attention half of a block leaves for its backward: q, k, v, the attention's saved state, ctx, and
 * h = x + o(ctx); and the block output. */
static bool alloc_attention_acts(pc_owned *o, layer_acts *a, const pc_llama_config *c, long N, long att)
{
    long H = c->hidden, dq = (long)c->n_heads * c->head_dim, dkv = (long)c->n_kv_heads * c->head_dim;
    return (a->q = pc_owned_alloc(o, N * dq)) && (a->k = pc_owned_alloc(o, N * dkv)) &&
           (a->v = pc_owned_alloc(o, N * dkv)) && (a->attn_saved = pc_owned_alloc(o, att)) &&
           (a->ctx = pc_owned_alloc(o, N * dq)) && (a->h = pc_owned_alloc(o, N * H)) &&
           (a->out = pc_owned_alloc(o, N * H));
}

/* The norms' outputs and the MLP's activations (which gradient checkpointing recomputes). */
static bool alloc_mlp_acts(pc_owned *o, layer_acts *a, const pc_llama_config *c, long N)
{
    long H = c->hidden, I = c->intermediate;
    return (a->n1 = pc_owned_alloc(o, N * H)) && (a->rstd1 = pc_owned_alloc(o, N)) &&
           (a->n2 = pc_owned_alloc(o, N * H)) && (a->rstd2 = pc_owned_alloc(o, N)) &&
           (a->g = pc_owned_alloc(o, N * I)) && (a->u = pc_owned_alloc(o, N * I)) &&
           (a->a = pc_owned_alloc(o, N * I));
}

static bool linear_trainable(const pc_linear *x) { return x->dW || x->db || x->lora; }

static bool layer_trainable(const llama_layer *L)
{
    const pc_linear *lins[7] = {&L->q, &L->k, &L->v, &L->o, &L->gate, &L->up, &L->down};
    for (int i = 0; i < 7; i++) if (linear_trainable(lins[i])) return true;
    return false;
}

static int lowest_trainable(const llama *l)
{
    for (int i = 0; i < l->cfg.n_layers; i++)
        if (layer_trainable(&l->layers[i])) return i;
    return l->cfg.n_layers;
}

/* A block whose gate and up have nothing to train can keep its MLP's g and u through a checkpointed step:
 * its backward then skips recomputing gate and up (two of the block's seven products), and as they draw no
 * dropout, the stream down_proj replays stays the forward's. */
static bool mlp_keepable(const llama_layer *L) { return !linear_trainable(&L->gate) && !linear_trainable(&L->up); }

/* The blocks that can keep: keepable ones below the top block (whose activations are current when backward
 * starts) and not below the lowest trainable one (backward stops there). */
static bool can_keep(const llama *l, int i, int lowest)
{
    return i < l->cfg.n_layers - 1 && i >= lowest && mlp_keepable(&l->layers[i]);
}

/* Marks the top m->checkpoint_kept_blocks blocks that can keep as wanting to; true when that is the set reserve
 * allocated last. */
static bool choose_kept_blocks(const pc_model *m, llama *l)
{
    int want = m->gradient_checkpointing ? m->checkpoint_kept_blocks : 0, kept = 0, lowest = lowest_trainable(l);
    bool same = true;
    for (int i = l->cfg.n_layers - 1; i >= 0; i--) {
        llama_layer *L = &l->layers[i];
        L->wants_keep = kept < want && can_keep(l, i, lowest);
        kept += L->wants_keep;
        same = same && L->wants_keep == L->keeps_mlp;
    }
    return same;
}

static pc_status reserve(pc_model *m, int B, int T, pc_error *err)
{
    llama *l = m->impl;
    bool same_kept = choose_kept_blocks(m, l);
    if (B <= l->cap_B && T <= l->cap_T && same_kept) return PEFTC_OK;
    B = B > l->cap_B ? B : l->cap_B;
    T = T > l->cap_T ? T : l->cap_T;
    const pc_llama_config *c = &l->cfg;
    long N = (long)B * T, H = c->hidden, V = c->vocab_size, I = c->intermediate;
    long dq = (long)c->n_heads * c->head_dim, wide = dq > H ? dq : H;
    long att = (long)pc_attention_saved_floats(B, T, c->n_heads, false);
    pc_owned *o = &l->owned;
    pc_owned_free_group(o, 1);
    o->group = 1;
    bool ok = (l->x0 = pc_owned_alloc(o, N * H)) && (l->xf = pc_owned_alloc(o, N * H)) &&
        (l->rstd_f = pc_owned_alloc(o, N)) && (m->logits = pc_owned_alloc(o, N * V)) &&
        pc_causal_head_alloc(o, &l->head, N, H) &&
        (l->d_cur = pc_owned_alloc(o, N * wide)) && (l->d_tmp = pc_owned_alloc(o, N * wide)) &&
        (l->d_q = pc_owned_alloc(o, N * wide)) && (l->d_k = pc_owned_alloc(o, N * wide)) &&
        (l->d_v = pc_owned_alloc(o, N * wide)) && (l->d_i1 = pc_owned_alloc(o, N * I)) &&
        (l->d_i2 = pc_owned_alloc(o, N * I)) && (l->d_i3 = pc_owned_alloc(o, N * I)) &&
        (l->attn_scratch = pc_owned_alloc(o, (long)pc_attention_scratch_floats(B, T, c->n_heads, c->n_kv_heads, c->head_dim, false)));
    /* with gradient checkpointing the blocks share one set of norm and MLP activations (recomputed in backward);
     * each keeps its own attention half (not recomputed: 26 KB a token a block for TinyLlama), and the kept
     * blocks their own g and u */
    for (int i = 0; ok && i < c->n_layers; i++) {
        layer_acts *a = &l->layers[i].a;
        if (m->gradient_checkpointing && i > 0) *a = l->layers[0].a;
        else ok = alloc_mlp_acts(o, a, c, N);
        ok = ok && alloc_attention_acts(o, a, c, N, att);
    }
    for (int i = 0; i < c->n_layers; i++) {
        llama_layer *L = &l->layers[i];
        L->keeps_mlp = ok && L->wants_keep;
        if (L->keeps_mlp) ok = (L->a.g = pc_owned_alloc(o, N * I)) && (L->a.u = pc_owned_alloc(o, N * I));
    }
    for (int i = 0; ok && i < m->n_linears; i++)
        if (pc_linear_reserve(m->linears[i], (int)N, &m->scratch, err) != PEFTC_OK) ok = false;
    o->group = 0;
    if (!ok) {
        l->cap_B = l->cap_T = 0;
        for (int i = 0; i < c->n_layers; i++) l->layers[i].keeps_mlp = false;
        return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for activations of a %d x %d batch", B, T);
    }
    l->cap_B = B;
    l->cap_T = T;
    m->activation_bytes = pc_owned_bytes(o, 1);
    m->keepable_blocks = 0;
    for (int i = 0, lowest = lowest_trainable(l); m->gradient_checkpointing && i < c->n_layers; i++)
        m->keepable_blocks += can_keep(l, i, lowest);
    m->kept_block_bytes = 2 * sizeof(float) * (size_t)(N * I);
    return PEFTC_OK;
}

/* ---------- forward ---------- */

/* a = silu(g) * u */
static void gated_silu(float *a, const float *g, const float *u, long n)
{
    pc_silu_forward(a, g, n);
    #pragma omp parallel for simd schedule(static) if (n >= PC_PARALLEL_MIN)
    for (long i = 0; i < n; i++) a[i] *= u[i];
}

static float attn_scale(const pc_llama_config *c) { return 1.0f / sqrtf((float)c->head_dim); }

/* h = x + o(attention(rope(q(n1)), rope(k(n1)), v(n1))) */
static void attention_half(llama *l, llama_layer *L, const float *x, const pc_batch *b, bool training, pc_rng *rng)
{
    const pc_llama_config *c = &l->cfg;
    layer_acts *a = &L->a;
    int N = b->B * b->T;
    pc_linear_forward(&L->q, a->q, a->n1, N, training, rng);
    pc_linear_forward(&L->k, a->k, a->n1, N, training, rng);
    pc_linear_forward(&L->v, a->v, a->n1, N, training, rng);
    pc_rope_apply(a->q, l->rope_cos, l->rope_sin, b->B, b->T, c->n_heads, c->head_dim, 0);
    pc_rope_apply(a->k, l->rope_cos, l->rope_sin, b->B, b->T, c->n_kv_heads, c->head_dim, 0);
    pc_attention_forward(a->ctx, a->attn_saved, a->q, a->k, a->v, b->attention_mask, NULL, b->B, b->T, c->n_heads,
                         c->n_kv_heads, c->head_dim, attn_scale(c), true, l->attn_scratch);
    pc_linear_forward(&L->o, a->h, a->ctx, N, training, rng);
    pc_vec_add(a->h, x, (long)N * c->hidden);
}

/* recompute: the block runs again for its backward (gradient checkpointing). Its attention half was kept, so
 * only the norms and the MLP run again, from the dropout stream state the MLP first started from; gate and up
 * only when the block did not keep their outputs; and they stop after gate/up when down_proj has nothing to
 * train: the block's output is stored already (the next block's input), and down's input gradient needs only
 * dL/dout, not down's input. */
static void layer_forward(llama *l, llama_layer *L, const float *x, const pc_batch *b, bool training, pc_rng *rng,
                          bool recompute)
{
    const pc_llama_config *c = &l->cfg;
    layer_acts *a = &L->a;
    int N = b->B * b->T, H = c->hidden;
    long NI = (long)N * c->intermediate;
    pc_rmsnorm_forward(a->n1, a->rstd1, x, L->in_norm.w, N, H, c->rms_norm_eps);   /* q/k/v's LoRA input */
    if (recompute) {
        *rng = L->mlp_rng;
    } else {
        attention_half(l, L, x, b, training, rng);
        L->mlp_rng = *rng;
    }
    pc_rmsnorm_forward(a->n2, a->rstd2, a->h, L->post_norm.w, N, H, c->rms_norm_eps);
    if (!(recompute && L->keeps_mlp && mlp_keepable(L))) {   /* (an adapter added since reserve: recompute) */
        pc_linear_forward(&L->gate, a->g, a->n2, N, training, rng);
        pc_linear_forward(&L->up, a->u, a->n2, N, training, rng);
    }
    if (recompute && !linear_trainable(&L->down)) return;
    gated_silu(a->a, a->g, a->u, NI);
    pc_linear_forward(&L->down, a->out, a->a, N, training, rng);
    pc_vec_add(a->out, a->h, (long)N * H);
}

static pc_status forward(pc_model *m, const pc_batch *b, bool training, float *loss, pc_error *err)
{
    llama *l = m->impl;
    PC_TRY(pc_causal_check_batch(b, l->cap_B, l->cap_T, l->cfg.max_positions, l->cfg.vocab_size, err));
    const pc_llama_config *c = &l->cfg;
    int N = b->B * b->T;
    pc_rng *rng = &m->dropout_rng;
    pc_embedding_forward(l->x0, b->input_ids, l->embed, N, c->hidden);
    if (training) pc_neftune_apply(l->x0, b->B, b->T, c->hidden, m->neftune_noise_alpha, &m->neftune_rng);
    const float *x = l->x0;
    l->training = training;
    for (int i = 0; i < c->n_layers; i++) {
        layer_forward(l, &l->layers[i], x, b, training, rng, false);
        x = l->layers[i].a.out;
    }
    pc_rmsnorm_forward(l->xf, l->rstd_f, x, l->final_norm.w, N, c->hidden, c->rms_norm_eps);
    return pc_causal_head_forward(m, &l->lm_head, &l->head, l->xf, c->hidden, b, training, rng, loss, err);
}

/* ---------- backward ---------- */

/* d_cur: dL/d(layer output) on entry, dL/d(layer input) on exit when need_dx. */
static void layer_backward(llama *l, llama_layer *L, const float *x, const pc_batch *b, bool need_dx)
{
    const pc_llama_config *c = &l->cfg;
    layer_acts *a = &L->a;
    int N = b->B * b->T, H = c->hidden;
    long NH = (long)N * H, NI = (long)N * c->intermediate;
    /* out = h + down(silu(g) * u): d_cur is dL/dout and, through the residual, part of dL/dh */
    pc_linear_backward(&L->down, l->d_i1, false, l->d_cur, a->a, N);          /* d_i1 = dL/da */
    pc_silu_forward(l->d_i3, a->g, NI);                                         /* silu(g) */
    #pragma omp parallel for simd schedule(static) if (NI >= PC_PARALLEL_MIN)
    for (long i = 0; i < NI; i++) {
        l->d_i2[i] = l->d_i1[i] * l->d_i3[i];                                   /* dL/du */
        l->d_i1[i] *= a->u[i];                                                  /* dL/dsilu(g) */
    }
    pc_silu_backward(l->d_i1, l->d_i1, a->g, NI);                               /* dL/dg */
    pc_linear_backward(&L->gate, l->d_tmp, false, l->d_i1, a->n2, N);
    pc_linear_backward(&L->up, l->d_tmp, true, l->d_i2, a->n2, N);              /* d_tmp = dL/dn2 */
    pc_rmsnorm_backward(l->d_q, L->post_norm.dw, l->d_tmp, a->h, a->rstd2, L->post_norm.w, N, H);
    pc_vec_add(l->d_cur, l->d_q, NH);                                          /* d_cur = dL/dh */
    /* h = x + o(attn(...)) */
    pc_linear_backward(&L->o, l->d_tmp, false, l->d_cur, a->ctx, N);            /* dL/dctx */
    pc_attention_backward(l->d_q, l->d_k, l->d_v, l->d_tmp, a->ctx, a->attn_saved, a->q, a->k, a->v, b->attention_mask, NULL,
                          b->B, b->T, c->n_heads, c->n_kv_heads, c->head_dim, attn_scale(c), true, l->attn_scratch);
    pc_rope_apply_backward(l->d_q, l->rope_cos, l->rope_sin, b->B, b->T, c->n_heads, c->head_dim, 0);
    pc_rope_apply_backward(l->d_k, l->rope_cos, l->rope_sin, b->B, b->T, c->n_kv_heads, c->head_dim, 0);
    float *dn1 = need_dx ? l->d_tmp : NULL;
    pc_linear_backward(&L->q, dn1, false, l->d_q, a->n1, N);
    pc_linear_backward(&L->k, dn1, true, l->d_k, a->n1, N);
    pc_linear_backward(&L->v, dn1, true, l->d_v, a->n1, N);
    if (!need_dx) return;
    pc_rmsnorm_backward(l->d_q, L->in_norm.dw, l->d_tmp, x, a->rstd1, L->in_norm.w, N, H);
    pc_vec_add(l->d_cur, l->d_q, NH);                                          /* d_cur = dL/dx */
}

static void backward(pc_model *m, const pc_batch *b, float dloss)
{
    llama *l = m->impl;
    const pc_llama_config *c = &l->cfg;
    int N = b->B * b->T;
    pc_causal_head_backward(m, &l->lm_head, &l->head, l->d_tmp, c->hidden, b, dloss);
    const float *x_last = l->layers[c->n_layers - 1].a.out;
    pc_rmsnorm_backward(l->d_cur, l->final_norm.dw, l->d_tmp, x_last, l->rstd_f, l->final_norm.w, N, c->hidden);
    int lowest = lowest_trainable(l);
    for (int i = c->n_layers - 1; i >= lowest; i--) {
        const float *x = i > 0 ? l->layers[i - 1].a.out : l->x0;
        if (m->gradient_checkpointing && i < c->n_layers - 1) {  /* the top block's activations are current */
            pc_rng replay;   /* set to the MLP's dropout stream state of the forward */
            layer_forward(l, &l->layers[i], x, b, l->training, &replay, true);
        }
        layer_backward(l, &l->layers[i], x, b, i > lowest);
    }
}

/* ---------- generation with a KV cache (batch of one) ---------- */

static pc_status cache_reset(pc_model *m, int max_ctx, pc_error *err)
{
    llama *l = m->impl;
    const pc_llama_config *c = &l->cfg;
    if (max_ctx > c->max_positions) max_ctx = c->max_positions;
    PC_TRY(reserve(m, 1, 1, err));
    l->cache_len = 0;
    if (max_ctx <= l->cache_cap) return PEFTC_OK;
    long dkv = (long)c->n_kv_heads * c->head_dim;
    l->owned.group = 2;
    pc_owned_free_group(&l->owned, 2);
    l->decode_scratch = pc_owned_alloc(&l->owned, (long)pc_attention_decode_scratch_floats(max_ctx, c->n_heads));
    bool ok = l->decode_scratch != NULL;
    for (int i = 0; ok && i < c->n_layers; i++)
        ok = (l->layers[i].k_cache = pc_owned_alloc(&l->owned, (long)max_ctx * dkv)) &&
             (l->layers[i].v_cache = pc_owned_alloc(&l->owned, (long)max_ctx * dkv));
    l->owned.group = 0;
    l->cache_cap = ok ? max_ctx : 0;
    return ok ? PEFTC_OK : pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for a KV cache of %d positions", max_ctx);
}

/* One token at position pos through one layer; x is [hidden], updated in place. */
static void layer_decode(llama *l, llama_layer *L, float *x, int pos, pc_rng *rng)
{
    const pc_llama_config *c = &l->cfg;
    layer_acts *a = &L->a;
    int H = c->hidden;
    long dkv = (long)c->n_kv_heads * c->head_dim;
    pc_rmsnorm_forward(a->n1, a->rstd1, x, L->in_norm.w, 1, H, c->rms_norm_eps);
    pc_linear_forward(&L->q, a->q, a->n1, 1, false, rng);
    float *k = L->k_cache + pos * dkv, *v = L->v_cache + pos * dkv;
    pc_linear_forward(&L->k, k, a->n1, 1, false, rng);
    pc_linear_forward(&L->v, v, a->n1, 1, false, rng);
    pc_rope_apply(a->q, l->rope_cos, l->rope_sin, 1, 1, c->n_heads, c->head_dim, pos);
    pc_rope_apply(k, l->rope_cos, l->rope_sin, 1, 1, c->n_kv_heads, c->head_dim, pos);
    pc_attention_decode(a->ctx, a->q, L->k_cache, L->v_cache, pos + 1, c->n_heads, c->n_kv_heads, c->head_dim,
                        attn_scale(c), l->decode_scratch);
    pc_linear_forward(&L->o, a->h, a->ctx, 1, false, rng);
    pc_vec_add(x, a->h, H);
    pc_rmsnorm_forward(a->n2, a->rstd2, x, L->post_norm.w, 1, H, c->rms_norm_eps);
    pc_linear_forward(&L->gate, a->g, a->n2, 1, false, rng);
    pc_linear_forward(&L->up, a->u, a->n2, 1, false, rng);
    gated_silu(a->a, a->g, a->u, c->intermediate);
    pc_linear_forward(&L->down, a->out, a->a, 1, false, rng);
    pc_vec_add(x, a->out, H);
}

static pc_status decode(pc_model *m, const int32_t *ids, int n, pc_error *err)
{
    llama *l = m->impl;
    const pc_llama_config *c = &l->cfg;
    if (l->cache_len + n > l->cache_cap)
        return pc_fail(err, PEFTC_ERR_INVALID, "context of %d tokens exceeds the KV cache (%d)", l->cache_len + n, l->cache_cap);
    for (int t = 0; t < n; t++) {
        if (ids[t] < 0 || ids[t] >= c->vocab_size)
            return pc_fail(err, PEFTC_ERR_INVALID, "token id %d is outside the vocabulary (size %d)", ids[t], c->vocab_size);
        pc_embedding_forward(l->x0, &ids[t], l->embed, 1, c->hidden);
        for (int i = 0; i < c->n_layers; i++) layer_decode(l, &l->layers[i], l->x0, l->cache_len, &m->dropout_rng);
        l->cache_len++;
    }
    pc_rmsnorm_forward(l->xf, l->rstd_f, l->x0, l->final_norm.w, 1, c->hidden, c->rms_norm_eps);
    pc_linear_forward(&l->lm_head, m->logits, l->xf, 1, false, &m->dropout_rng);
    return PEFTC_OK;
}

/* ---------- lifetime ---------- */

static void destroy(pc_model *m)
{
    llama *l = m->impl;
    if (l) {
        pc_owned_free_group(&l->owned, -1);
        free(l->layers);
        free(l->linear_list);
        free(l->norm_list);
        pc_st_close(l->st);
        free(l);
    }
    free(m);
}

static const pc_model_ops llama_ops = { reserve, forward, backward, destroy, cache_reset, decode };

static pc_status list_modules(pc_model *m, llama *l, pc_error *err)
{
    int n_layers = l->cfg.n_layers;
    l->linear_list = calloc((size_t)(7 * n_layers + 1), sizeof *l->linear_list);
    l->norm_list = calloc((size_t)(2 * n_layers + 1), sizeof *l->norm_list);
    if (!l->linear_list || !l->norm_list) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
    int nl = 0, nn = 0;
    for (int i = 0; i < n_layers; i++) {
        llama_layer *L = &l->layers[i];
        pc_linear *lins[7] = {&L->q, &L->k, &L->v, &L->o, &L->gate, &L->up, &L->down};
        for (int j = 0; j < 7; j++) l->linear_list[nl++] = lins[j];
        l->norm_list[nn++] = &L->in_norm;
        l->norm_list[nn++] = &L->post_norm;
    }
    l->norm_list[nn++] = &l->final_norm;
    l->linear_list[nl++] = &l->lm_head;
    m->linears = l->linear_list;
    m->n_linears = nl;
    m->norms = l->norm_list;
    m->n_norms = nn;
    return PEFTC_OK;
}

/* Parameters as PyTorch counts them (a tied lm_head is the embedding, counted once). */
static int64_t count_params(const pc_model *m, const llama *l)
{
    const pc_llama_config *c = &l->cfg;
    int64_t n = (int64_t)c->vocab_size * c->hidden;
    for (int i = 0; i < m->n_linears; i++) {
        const pc_linear *x = m->linears[i];
        if (x == &l->lm_head && c->tie_word_embeddings) continue;
        n += (int64_t)x->in * x->out + (x->b ? x->out : 0);
    }
    for (int i = 0; i < m->n_norms; i++) n += m->norms[i]->dim;
    return n;
}

static pc_status load_all(pc_model *m, llama *l, pc_error *err)
{
    const pc_llama_config *c = &l->cfg;
    PC_TRY(load_weight(l, "model.embed_tokens.weight", c->vocab_size, c->hidden, &l->embed, err));
    l->layers = calloc((size_t)c->n_layers, sizeof *l->layers);
    if (!l->layers) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
    for (int i = 0; i < c->n_layers; i++) PC_TRY(load_layer(l, i, err));
    PC_TRY(load_norm(l, &l->final_norm, "model.norm", c->hidden, err));
    PC_TRY(load_head(l, err));
    l->rope_cos = pc_owned_alloc(&l->owned, (long)c->max_positions * c->head_dim);
    l->rope_sin = pc_owned_alloc(&l->owned, (long)c->max_positions * c->head_dim);
    if (!l->rope_cos || !l->rope_sin) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for the rotary table");
    pc_rope_table(l->rope_cos, l->rope_sin, c->max_positions, c->head_dim, c->rope_theta,
                  c->has_rope_scaling ? &c->rope_scaling : NULL);
    PC_TRY(list_modules(m, l, err));
    m->token_embedding = m->n_extra_tensors;
    pc_model_add_extra_tensor(m, "model.embed_tokens.weight", l->embed, c->vocab_size, c->hidden, l->st);
    m->n_base_params = count_params(m, l);
    return PEFTC_OK;
}

pc_status pc_llama_load(const char *dir, const pc_llama_config *cfg, pc_safetensors *st, const pc_model_options *opts,
                        pc_model **out, pc_error *err)
{
    pc_model *m = calloc(1, sizeof *m);
    llama *l = calloc(1, sizeof *l);
    if (!m || !l) { free(m); free(l); pc_st_close(st); return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory"); }
    m->impl = l;
    m->ops = &llama_ops;
    m->task = PC_TASK_CAUSAL_LM;
    l->cfg = *cfg;
    l->st = st;
    snprintf(m->architecture, sizeof m->architecture, "LlamaForCausalLM");
    snprintf(m->model_type, sizeof m->model_type, "llama");
    m->vocab_size = cfg->vocab_size;
    m->max_positions = cfg->max_positions;
    m->output_linear = "lm_head";
    m->default_targets_n = 2;
    m->default_targets[0] = "q_proj";
    m->default_targets[1] = "v_proj";
    m->bos_token_id = cfg->bos_token_id;
    m->eos_token_id = cfg->eos_token_id;
    pc_rng_init(&m->dropout_rng, opts ? opts->seed : 42, "dropout");
    pc_rng_init(&m->neftune_rng, opts ? opts->seed : 42, "neftune");
    pc_status s = load_all(m, l, err);
    if (s) {
        pc_error_prefix(err, "%s", dir);
        destroy(m);
        return s;
    }
    *out = m;
    return PEFTC_OK;
}
