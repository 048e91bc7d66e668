/* A small sentiment "world" on disk for end-to-end tests: DIR/model (a DistilBERT with seeded random
 * weights, labels NEGATIVE/POSITIVE, a 19-word vocab.txt) and DIR/train.jsonl (`rows` two-word-plus
 * reviews whose first word carries the label). */
#ifndef PC_TEST_WORLD_H
#define PC_TEST_WORLD_H

#include <stdint.h>

#include "models/distilbert.h"

/* Writes `text` to `path` (a test failure when it cannot). */
void pc_test_write_text(const char *path, const char *text);

/* The world with model sizes from `sizes` (dim, n_layers, n_heads, hidden_dim, max_position_embeddings;
 * the rest is filled in: vocabulary, dropouts 0.1 / 0.1 / 0.2, two labels). */
void pc_test_make_world(const char *dir, const pc_distilbert_config *sizes, uint64_t seed, int rows);

#endif
