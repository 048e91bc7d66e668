/* NEFTune (Jain et al. 2023, "NEFTune: Noisy Embeddings Improve Instruction Finetuning"), as
 * transformers' neftune_post_forward_hook: in training only, the input-embedding output of a
 * batch padded to length L with hidden size d gets noise drawn uniformly from ±alpha/sqrt(L·d)
 * at every position (padding included). */
#ifndef PC_PEFT_NEFTUNE_H
#define PC_PEFT_NEFTUNE_H

#include "base/rng.h"

/* x: [B, L, d] embedding output, modified in place; alpha <= 0 does nothing. */
void pc_neftune_apply(float *x, int B, int L, int d, float alpha, pc_rng *rng);

#endif
