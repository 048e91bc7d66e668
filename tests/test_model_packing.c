/* pc_model_choose_packing: which frozen Linears training packs for kernels/pgemm, checked on what reserve
 * then packs (not only on the flags it sets). */
#include "testlib.h"

#include <stdio.h>

#include "base/fs.h"
#include "kernels/gemm.h"
#include "models/distilbert.h"
#include "models/quantized.h"

static pc_model *load_tiny(void)
{
    char dir[600];
    pc_error err = {0};
    snprintf(dir, sizeof dir, "%s/packing_model", pc_test_tmpdir());
    CHECK(pc_mkdirs(dir, &err) == PEFTC_OK);
    char *names[2] = {"NEGATIVE", "POSITIVE"};
    pc_distilbert_config mc = {.dim = 64, .n_layers = 1, .n_heads = 2, .hidden_dim = 128, .vocab_size = 9,
                               .max_position_embeddings = 8, .num_labels = 2, .id2label = names};
    CHECK_MSG(pc_distilbert_write_random(dir, &mc, 3, &err) == PEFTC_OK, "%s", err.msg);
    pc_model *m = NULL;
    CHECK_MSG(pc_model_load(dir, NULL, &m, &err) == PEFTC_OK, "%s", err.msg);
    return m;
}

/* How many of the model's Linears reserve packs, each checked to be packed in `dtype`. */
static int packed_after_reserve(pc_model *m, pc_pack_dtype dtype)
{
    pc_error err = {0};
    CHECK_MSG(m->ops->reserve(m, 2, 4, &err) == PEFTC_OK, "%s", err.msg);
    int packed = 0;
    for (int i = 0; i < m->n_linears; i++) {
        const pc_packed_weight *p = m->linears[i]->packed;
        if (!p) continue;
        packed++;
        CHECK_MSG(p->fwd.dtype == dtype && p->bwd.dtype == dtype, "%s packed in the other type", m->linears[i]->name);
    }
    return packed;
}

TEST(model_packing_fp32_within_budget_bf16_always_past_budget_or_4bit_openblas)
{
    /* 1 layer of dim 64: 4 * 64^2 + 2 * 64 * 128 weights (+ the classifier's 64^2 + 2 * 64) in fp32 */
    const double weights_bytes = 4.0 * (4 * 64 * 64 + 2 * 64 * 128 + 64 * 64 + 2 * 64);
    const bool openblas_first = pc_gemm_openblas_avx512();   /* then fp32 past the budget stays unpacked */
    struct { bool bf16; double budget; bool packed; pc_pack_dtype dtype; } cases[] = {
        { false, weights_bytes, true, PC_PACK_F32 },
        { false, weights_bytes - 4, !openblas_first, PC_PACK_F32 },
        { true, 0, true, PC_PACK_BF16 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pc_model *m = load_tiny();
        if (!m) return;
        pc_model_choose_packing(m, cases[i].bf16, cases[i].budget);
        for (int l = 0; l < m->n_linears; l++)   /* the rule itself, whatever OpenBLAS this process has */
            CHECK_MSG(m->linears[l]->pack_f32 == (cases[i].budget >= weights_bytes), "case %zu: %s pack_f32 %d", i,
                      m->linears[l]->name, m->linears[l]->pack_f32);
        int packed = packed_after_reserve(m, cases[i].dtype), expected = cases[i].packed ? m->n_linears : 0;
        CHECK_MSG(packed == expected, "case %zu (bf16 %d, budget %.0f of %.0f bytes): %d of %d Linears packed, "
                  "expected %d", i, cases[i].bf16, cases[i].budget, weights_bytes, packed, m->n_linears, expected);
        pc_model_free(m);
    }
    /* a 4-bit model keeps its fp32 Linears (here the classifier) on OpenBLAS whatever the budget */
    pc_model *m = load_tiny();
    if (!m) return;
    char *skip[] = {"classifier", "pre_classifier"};
    pc_quant_options qo = {.type = PC_Q4_NF4, .double_quant = true, .compute = PC_Q4_COMPUTE_F32, .skip = skip,
                           .n_skip = 2};
    pc_error err = {0};
    CHECK_MSG(pc_model_quantize_4bit(m, &qo, &err) == PEFTC_OK, "%s", err.msg);
    pc_model_choose_packing(m, false, PC_PACK_F32_BUDGET);
    CHECK_MSG(m->ops->reserve(m, 2, 4, &err) == PEFTC_OK, "%s", err.msg);
    pc_linear *head = pc_model_find_linear(m, "classifier");
    CHECK(head && head->W && !head->q4);
    if (head) CHECK_MSG((head->packed != NULL) == !openblas_first, "classifier packed %d", head->packed != NULL);
    pc_model_free(m);
}
