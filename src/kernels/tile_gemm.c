#include "kernels/tile_gemm.h"

#include <stddef.h>

#include "base/isa.h"
#include "kernels/gemm.h"
#include "kernels/x86.h"

enum {
    ROWS = 4,   /* rows of C per micro-kernel call */
    VECS = 4,   /* 16-float vectors of C per row: 64 columns */
};

#if PC_X86
/* C rows i0 .. i0 + rows, columns j0 .. j0 + 64 (the lanes of `mask` only), over the whole reduction. rows and
 * trans_a are constants in each inlined copy, so the ROWS x VECS sums stay in registers. */
__attribute__((target("avx512f"), always_inline)) static inline void micro_tile(
    int rows, bool trans_a, int k, float alpha, const float *A, int lda, const float *B, int ldb,
    const __mmask16 mask[VECS], bool accumulate, float *C, int ldc)
{
    __m512 acc[ROWS][VECS];
#pragma GCC unroll 4
    for (int i = 0; i < rows; i++)
#pragma GCC unroll 4
        for (int v = 0; v < VECS; v++) acc[i][v] = _mm512_setzero_ps();
    for (int p = 0; p < k; p++) {
        __m512 b[VECS];
#pragma GCC unroll 4
        for (int v = 0; v < VECS; v++) b[v] = _mm512_maskz_loadu_ps(mask[v], B + (size_t)p * ldb + 16 * v);
#pragma GCC unroll 4
        for (int i = 0; i < rows; i++) {
            const __m512 a = _mm512_set1_ps(trans_a ? A[(size_t)p * lda + i] : A[(size_t)i * lda + p]);
#pragma GCC unroll 4
            for (int v = 0; v < VECS; v++) acc[i][v] = _mm512_fmadd_ps(a, b[v], acc[i][v]);
        }
    }
    const __m512 scale = _mm512_set1_ps(alpha);
#pragma GCC unroll 4
    for (int i = 0; i < rows; i++)
#pragma GCC unroll 4
        for (int v = 0; v < VECS; v++) {
            float *c = C + (size_t)i * ldc + 16 * v;
            __m512 r = _mm512_mul_ps(acc[i][v], scale);
            if (accumulate) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(mask[v], c));
            _mm512_mask_storeu_ps(c, mask[v], r);
        }
}

/* One copy per (rows, trans_a): 8 in all. */
#define MICRO_TILE(R, T)                                                                                             \
    __attribute__((target("avx512f"))) static void micro_##R##_##T(int k, float alpha, const float *A, int lda,     \
                                                                   const float *B, int ldb, const __mmask16 *mask,  \
                                                                   bool accumulate, float *C, int ldc)              \
    {                                                                                                                \
        micro_tile(R, T, k, alpha, A, lda, B, ldb, mask, accumulate, C, ldc);                                        \
    }
MICRO_TILE(1, 0) MICRO_TILE(2, 0) MICRO_TILE(3, 0) MICRO_TILE(4, 0)
MICRO_TILE(1, 1) MICRO_TILE(2, 1) MICRO_TILE(3, 1) MICRO_TILE(4, 1)

typedef void micro_fn(int, float, const float *, int, const float *, int, const __mmask16 *, bool, float *, int);
static micro_fn *const micro_plain[ROWS + 1] = {NULL, micro_1_0, micro_2_0, micro_3_0, micro_4_0};
static micro_fn *const micro_trans[ROWS + 1] = {NULL, micro_1_1, micro_2_1, micro_3_1, micro_4_1};

static void tile_gemm_avx512(bool trans_a, int m, int n, int k, float alpha, const float *A, int lda, const float *B,
                             int ldb, bool accumulate, float *C, int ldc)
{
    for (int j0 = 0; j0 < n; j0 += 16 * VECS) {
        __mmask16 mask[VECS];
        for (int v = 0; v < VECS; v++) {
            const int left = n - j0 - 16 * v;
            mask[v] = left >= 16 ? (__mmask16)0xFFFF : left > 0 ? (__mmask16)((1u << left) - 1) : 0;
        }
        for (int i0 = 0; i0 < m; i0 += ROWS) {
            const int rows = m - i0 < ROWS ? m - i0 : ROWS;
            const float *a = trans_a ? A + i0 : A + (size_t)i0 * lda;
            (trans_a ? micro_trans : micro_plain)[rows](k, alpha, a, lda, B + j0, ldb, mask, accumulate,
                                                        C + (size_t)i0 * ldc + j0, ldc);
        }
    }
}
#endif

void pc_tile_gemm(bool trans_a, int m, int n, int k, float alpha, const float *A, int lda, const float *B, int ldb,
                  bool accumulate, float *C, int ldc)
{
    if (m <= 0 || n <= 0) return;
#if PC_X86
    if (pc_isa_active() == PC_ISA_AVX512) {
        tile_gemm_avx512(trans_a, m, n, k, alpha, A, lda, B, ldb, accumulate, C, ldc);
        return;
    }
#endif
    pc_sgemm(trans_a, false, m, n, k, alpha, A, lda, B, ldb, accumulate ? 1.0f : 0.0f, C, ldc);
}

/* In 16 x 16 blocks, so that both the rows read and the rows written stay in L1 (a row-by-row pass writes one
 * element per destination row, hd rows T floats apart, and was a quarter of an attention pass). */
void pc_tile_transpose(float *dst, int ldd, const float *src, int lds, int rows, int cols)
{
    enum { B = 16 };
    for (int i0 = 0; i0 < rows; i0 += B)
        for (int j0 = 0; j0 < cols; j0 += B) {
            const int i1 = i0 + B < rows ? i0 + B : rows, j1 = j0 + B < cols ? j0 + B : cols;
            for (int j = j0; j < j1; j++)
                for (int i = i0; i < i1; i++) dst[(size_t)j * ldd + i] = src[(size_t)i * lds + j];
        }
}
