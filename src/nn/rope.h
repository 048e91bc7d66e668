/* Rotary position embeddings in Hugging Face's rotate-half layout (transformers' LlamaRotaryEmbedding and
 * apply_rotary_pos_emb). For a head vector x of even size d, half = d / 2, at position p:
 *   y = x * cos[p] + rotate_half(x) * sin[p],   rotate_half(x) = cat(-x[half:], x[:half]),
 * i.e. y_j = x_j cos_j - x_{j+half} sin_j and y_{j+half} = x_{j+half} cos_{j+half} + x_j sin_{j+half}.
 * The tables are [max_pos, d] with emb = cat(freqs, freqs): cos[p][j] = cos(p * inv_freq[j mod half]). */
#ifndef PC_NN_ROPE_H
#define PC_NN_ROPE_H

/* rope_scaling of rope_type "llama3" (Llama 3.1+): frequencies whose wavelength exceeds
 * original_max_position_embeddings / low_freq_factor are divided by factor, those below
 * original_max_position_embeddings / high_freq_factor are kept, and those in between are interpolated. */
typedef struct {
    float factor, low_freq_factor, high_freq_factor;
    int original_max_position_embeddings;
} pc_rope_scaling;

/* Fills cos and sin [max_pos, head_dim] for positions 0 .. max_pos-1. head_dim must be even and positive,
 * theta > 0; scaling is NULL (plain RoPE) or llama3 parameters with high_freq_factor > low_freq_factor
 * (the caller validates the config). inv_freq is computed in float32 as transformers does:
 * inv_freq_i = 1 / theta^(2i / head_dim) with the exponent rounded to float and theta as a float
 * (torch's vectorised pow may differ from this correctly rounded pow by 1 ulp in a few entries),
 * then the llama3 adjustment in float32, angle = p * inv_freq_i in float, cos/sin of that angle. */
void pc_rope_table(float *cos, float *sin, int max_pos, int head_dim, double theta, const pc_rope_scaling *scaling);

/* Rotates x [B, T, n_heads * head_dim] in place; row t of each batch gets position pos0 + t, which must be
 * below the tables' max_pos. */
void pc_rope_apply(float *x, const float *cos, const float *sin, int B, int T, int n_heads, int head_dim, int pos0);

/* The backward pass: turns dL/dy into dL/dx in place (the transpose rotation, by -angle). */
void pc_rope_apply_backward(float *dx, const float *cos, const float *sin, int B, int T, int n_heads, int head_dim,
                            int pos0);

#endif
