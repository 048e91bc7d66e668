#include "nn/embedding.h"
#include "base/profile.h"
#include "base/threads.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

void pc_embedding_forward(float *y, const int32_t *ids, const float *table, int n, int dim)
{
    pc_op_begin(PC_OP_EMBEDDING);
    #pragma omp parallel for schedule(static) if ((long)n * dim >= PC_PARALLEL_MIN)
    for (int i = 0; i < n; i++)
        memcpy(y + (size_t)i * dim, table + (size_t)ids[i] * dim, sizeof(float) * (size_t)dim);
    pc_op_end();
}

/* Parallel over column blocks: each thread owns some columns of every row of dtable, so
 * repeated ids never race and each element sums its contributions in the order of i. */
void pc_embedding_backward_accumulate(float *dtable, const float *dy, const int32_t *ids, int n, int dim)
{
    pc_op_begin(PC_OP_EMBEDDING);
    enum { BLOCK = 64 };
    const int blocks = (dim + BLOCK - 1) / BLOCK;
    #pragma omp parallel for schedule(static) if ((long)n * dim >= PC_PARALLEL_MIN)
    for (int b = 0; b < blocks; b++) {
        const int j0 = b * BLOCK, j1 = j0 + BLOCK < dim ? j0 + BLOCK : dim;
        for (int i = 0; i < n; i++) {
            float *row = dtable + (size_t)ids[i] * dim;
            const float *src = dy + (size_t)i * dim;
            for (int j = j0; j < j1; j++) row[j] += src[j];
        }
    }
    pc_op_end();
}

void pc_sinusoidal_positions(float *table, int n_pos, int dim)
{
    #pragma omp parallel for schedule(static)
    for (int pos = 0; pos < n_pos; pos++) {
        for (int j = 0; j < dim; j++) {
            double angle = pos / pow(10000.0, 2.0 * (j / 2) / dim);
            table[(size_t)pos * dim + j] = (float)(j % 2 == 0 ? sin(angle) : cos(angle));
        }
    }
}
