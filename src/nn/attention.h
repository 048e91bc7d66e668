/* Scaled dot-product self-attention core, after the q/k/v projections and before the output
 * projection (BERT / DistilBERT eager attention; Llama / GPT-2 causal attention with grouped-query heads):
 *   S = scale * Q K^T, masked entries set to -FLT_MAX, P = softmax(S) per row,
 *   out = (P * drop_mask) V,  per batch b and query head h.
 * Layout: q and out are [B, T, H*hd], k and v are [B, T, Hkv*hd] (the projection outputs); query head h
 * occupies columns h*hd .. h*hd+hd-1 and uses key/value head h / (H/Hkv) (transformers' repeat_kv).
 * H % Hkv == 0; Hkv == H is ordinary multi-head attention. drop_mask is [B, H, T, T].
 * All float32, caller-allocated. */
#ifndef PC_NN_ATTENTION_H
#define PC_NN_ATTENTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Two ways to the same result. The plain pass forms each head's T x T probabilities (and saves them for
 * backward); the tiled pass (flash-attention style) walks key blocks with a running max and sum, saves
 * only each row's log-sum-exp and recomputes the scores tile by tile in backward, so memory stays O(T).
 * Attention dropout multiplies the full probability matrix by a mask drawn ahead, so it always runs
 * plain. pc_attention_forward / _backward pick the path by this function; both calls of one step agree. */
bool pc_attention_tiled(int T, bool dropout);

/* Floats that forward saves for backward (probabilities [B, H, T, T] on the plain path, log-sum-exp
 * [B, H, T] on the tiled one), enough for any T' <= T; dropout: whether a drop mask may be passed. */
size_t pc_attention_saved_floats(int B, int T, int H, bool dropout);

/* Floats of scratch that forward / backward need, enough for any B' <= B, T' <= T. */
size_t pc_attention_scratch_floats(int B, int T, int H, int Hkv, int hd, bool dropout);

/* key_mask: NULL (attend everywhere) or [B, T], 1 = attend, 0 = padding; masked scores become
 * -FLT_MAX before the softmax, as transformers' masked_fill(finfo.min), so masked keys get exactly
 * zero probability, and a row with every key masked gets uniform probabilities as in torch.
 * causal: also mask keys j > i. saved: what backward needs (pc_attention_saved_floats).
 * drop_mask: NULL, or attention dropout values (0 or 1/(1-p)) multiplied into the probabilities. */
void pc_attention_forward(float *out, float *saved, const float *q, const float *k, const float *v,
                          const uint8_t *key_mask, const float *drop_mask, int B, int T, int H, int Hkv, int hd,
                          float scale, bool causal, float *scratch);

/* Gradients of out with respect to q, k, v (all overwritten), given dout, the forward's out and saved.
 * dk and dv sum the contributions of the H/Hkv query heads that share a key/value head, in head order,
 * so results are the same for any thread count.
 * key_mask, drop_mask and causal must be those of the forward pass: a row with every key masked got
 * uniform probabilities from constant scores, so (as in torch) it passes gradient to v but none to q, k. */
void pc_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *saved,
                           const float *q, const float *k, const float *v, const uint8_t *key_mask,
                           const float *drop_mask, int B, int T, int H, int Hkv, int hd, float scale, bool causal,
                           float *scratch);

/* The two paths themselves (for tests and benchmarks). probs: [B, H, T, T], the softmax before dropout;
 * lse: [B, H, T], each row's log-sum-exp of its scaled scores. */
void pc_attention_forward_plain(float *out, float *probs, const float *q, const float *k, const float *v,
                                const uint8_t *key_mask, const float *drop_mask, int B, int T, int H, int Hkv,
                                int hd, float scale, bool causal, float *scratch);
void pc_attention_backward_plain(float *dq, float *dk, float *dv, const float *dout, const float *probs,
                                 const float *q, const float *k, const float *v, const uint8_t *key_mask,
                                 const float *drop_mask, int B, int T, int H, int Hkv, int hd, float scale,
                                 bool causal, float *scratch);
void pc_attention_forward_tiled(float *out, float *lse, const float *q, const float *k, const float *v,
                                const uint8_t *key_mask, int B, int T, int H, int Hkv, int hd, float scale,
                                bool causal, float *scratch);
void pc_attention_backward_tiled(float *dq, float *dk, float *dv, const float *dout, const float *out,
                                 const float *lse, const float *q, const float *k, const float *v,
                                 const uint8_t *key_mask, int B, int T, int H, int Hkv, int hd, float scale,
                                 bool causal, float *scratch);

/* Attention for one query per sequence over all of its T keys (not causal): what a block computes for the rows
 * a classification head reads (DistilBERT's first position) when nothing else reads its other rows.
 * q and out are [B, H*hd] (that query's row of each sequence), k and v [B, T, Hkv*hd] as above; probs [B, H, T]
 * is saved for backward; key_mask and drop_mask ([B, H, T]) as in pc_attention_forward. Equals, up to float
 * rounding, that row of pc_attention_forward; backward overwrites dq, dk and dv. */
void pc_attention_one_query_forward(float *out, float *probs, const float *q, const float *k, const float *v,
                                    const uint8_t *key_mask, const float *drop_mask, int B, int T, int H, int Hkv,
                                    int hd, float scale);
size_t pc_attention_one_query_scratch_floats(int B, int T);
void pc_attention_one_query_backward(float *dq, float *dk, float *dv, const float *dout, const float *probs,
                                     const float *q, const float *k, const float *v, const uint8_t *key_mask,
                                     const float *drop_mask, int B, int T, int H, int Hkv, int hd, float scale,
                                     float *scratch);

/* Floats of scratch that pc_attention_decode needs for a context of n_ctx positions. */
size_t pc_attention_decode_scratch_floats(int n_ctx, int H);

/* One step of generation with a KV cache: the attention output out [H*hd] of one new token whose query is
 * q [H*hd], over the cached keys and values k_cache, v_cache [n_ctx, Hkv*hd] of positions 0 .. n_ctx-1
 * (the new token's own key and value included, as the last row). Every cached position is attended
 * (causal by construction). Equals, up to float rounding, the last row of a causal pc_attention_forward
 * over the n_ctx tokens. scratch: pc_attention_decode_scratch_floats(n_ctx, H) floats. */
void pc_attention_decode(float *out, const float *q, const float *k_cache, const float *v_cache, int n_ctx, int H,
                         int Hkv, int hd, float scale, float *scratch);

#endif
