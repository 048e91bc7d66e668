/* Token / position embedding lookup and its gradient; DistilBERT's sinusoidal position table. */
#ifndef PC_NN_EMBEDDING_H
#define PC_NN_EMBEDDING_H

#include <stdint.h>

/* y[i, :] = table[ids[i], :] for i < n; ids already validated against the table size. */
void pc_embedding_forward(float *y, const int32_t *ids, const float *table, int n, int dim);

/* dtable[ids[i], :] += dy[i, :] for i < n (repeated ids accumulate, in order of i, so the
 * result does not depend on the thread count). */
void pc_embedding_backward_accumulate(float *dtable, const float *dy, const int32_t *ids, int n, int dim);

/* table [n_pos, dim] as transformers' DistilBERT create_sinusoidal_embeddings: with
 * angle(pos, j) = pos / 10000^(2 (j/2) / dim) (integer j/2), even columns hold sin(angle),
 * odd columns cos(angle); computed in double, stored as float. */
void pc_sinusoidal_positions(float *table, int n_pos, int dim);

#endif
