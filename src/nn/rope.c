#include "nn/rope.h"
#include "base/profile.h"
#include "base/threads.h"

#include <math.h>
#include <stddef.h>

/* transformers' _compute_llama3_parameters on one float32 inverse frequency. torch evaluates
 * `2*pi / inv` as reciprocal(inv) * (float)(2*pi), and the thresholds are cast to float. */
static float llama3_adjust(float inv, const pc_rope_scaling *s)
{
    const float old_len = (float)s->original_max_position_embeddings;
    const float low_wavelen = (float)((double)old_len / s->low_freq_factor);
    const float high_wavelen = (float)((double)old_len / s->high_freq_factor);
    const float wavelen = (1.0f / inv) * (float)(2.0 * M_PI);
    if (wavelen < high_wavelen) return inv;                 /* high frequency: kept */
    if (wavelen > low_wavelen) return inv / s->factor;      /* low frequency: scaled down */
    /* medium: (1 - smooth) * inv / factor + smooth * inv */
    const float smooth = ((1.0f / wavelen) * old_len - s->low_freq_factor) /
                         (float)((double)s->high_freq_factor - s->low_freq_factor);
    return (1.0f - smooth) * inv / s->factor + smooth * inv;
}

void pc_rope_table(float *cos_t, float *sin_t, int max_pos, int head_dim, double theta, const pc_rope_scaling *scaling)
{
    const int half = head_dim / 2;
    float inv_freq[half];
    for (int i = 0; i < half; i++) {
        const float exponent = (float)(2 * i) / (float)head_dim;
        inv_freq[i] = 1.0f / (float)pow((double)(float)theta, (double)exponent);
        if (scaling) inv_freq[i] = llama3_adjust(inv_freq[i], scaling);
    }
    #pragma omp parallel for schedule(static)
    for (int p = 0; p < max_pos; p++) {
        float *c = cos_t + (size_t)p * head_dim, *s = sin_t + (size_t)p * head_dim;
        for (int i = 0; i < half; i++) {
            const double angle = (float)p * inv_freq[i];
            c[i] = c[i + half] = (float)cos(angle);
            s[i] = s[i + half] = (float)sin(angle);
        }
    }
}

/* Position of row r of a [B, T] batch, and that position's table rows. */
static void row_tables(const float **c, const float **s, const float *cos_t, const float *sin_t, long r, int T,
                       int head_dim, int pos0)
{
    const size_t pos = (size_t)pos0 + (size_t)(r % T);
    *c = cos_t + pos * head_dim;
    *s = sin_t + pos * head_dim;
}

void pc_rope_apply(float *x, const float *cos_t, const float *sin_t, int B, int T, int n_heads, int head_dim, int pos0)
{
    pc_op_begin(PC_OP_ROPE);
    const int half = head_dim / 2;
    const long rows = (long)B * T;
    #pragma omp parallel for schedule(static) if (rows * n_heads * head_dim >= PC_PARALLEL_MIN)
    for (long r = 0; r < rows; r++) {
        const float *c, *s;
        row_tables(&c, &s, cos_t, sin_t, r, T, head_dim, pos0);
        for (int h = 0; h < n_heads; h++) {
            float *v = x + ((size_t)r * n_heads + h) * head_dim;
            for (int j = 0; j < half; j++) {
                const float a = v[j], b = v[j + half];
                v[j] = a * c[j] - b * s[j];
                v[j + half] = b * c[j + half] + a * s[j + half];
            }
        }
    }
    pc_op_end();
}

/* Per pair (j, j+half) the forward map is [[c_j, -s_j], [s_{j+half}, c_{j+half}]]; apply its transpose. */
void pc_rope_apply_backward(float *dx, const float *cos_t, const float *sin_t, int B, int T, int n_heads, int head_dim,
                            int pos0)
{
    pc_op_begin(PC_OP_ROPE);
    const int half = head_dim / 2;
    const long rows = (long)B * T;
    #pragma omp parallel for schedule(static) if (rows * n_heads * head_dim >= PC_PARALLEL_MIN)
    for (long r = 0; r < rows; r++) {
        const float *c, *s;
        row_tables(&c, &s, cos_t, sin_t, r, T, head_dim, pos0);
        for (int h = 0; h < n_heads; h++) {
            float *v = dx + ((size_t)r * n_heads + h) * head_dim;
            for (int j = 0; j < half; j++) {
                const float a = v[j], b = v[j + half];
                v[j] = a * c[j] + b * s[j + half];
                v[j + half] = b * c[j + half] - a * s[j];
            }
        }
    }
    pc_op_end();
}
