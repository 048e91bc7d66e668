/* Small-tile products (kernels/tile_gemm): each path (AVX-512 where the CPU has it, OpenBLAS) against a naive
 * product written out here in double, A plain and transposed, with and without accumulation, on shapes around
 * the micro-kernel's 4 rows and 64 columns (rows left over, masked column vectors, a second column chunk) and
 * leading dimensions wider than the tiles; and the blocked transpose against its definition. */
#include <math.h>
#include <stdlib.h>

#include "base/isa.h"
#include "kernels/tile_gemm.h"
#include "testlib.h"

typedef struct { int m, n, k; } tile_shape;

static const tile_shape SHAPES[] = {
    { 1, 1, 1 }, { 3, 17, 5 }, { 4, 64, 64 }, { 5, 63, 7 }, { 7, 65, 33 }, { 64, 64, 64 }, { 17, 130, 3 },
    { 2, 8, 0 }, { 33, 16, 257 },
};

/* Elements of C off the double-precision product by more than a float-rounding bound; C's padding columns (past n)
 * must stay as they were. */
static long check_shape(tile_shape s, bool trans_a, bool accumulate)
{
    const int lda = (trans_a ? s.m : s.k) + 3, ldb = s.n + 5, ldc = s.n + 2;
    const int a_rows = trans_a ? s.k : s.m;
    unsigned seed = 7u + (unsigned)(s.m * 31 + s.n * 7 + s.k);
    float *A = malloc(sizeof(float) * (size_t)(a_rows * lda + 1)), *B = malloc(sizeof(float) * (size_t)(s.k * ldb + 1));
    float *C = malloc(sizeof(float) * (size_t)(s.m * ldc)), *C0 = malloc(sizeof(float) * (size_t)(s.m * ldc));
    pc_test_fill_uniform(A, (long)a_rows * lda, &seed);
    pc_test_fill_uniform(B, (long)s.k * ldb, &seed);
    pc_test_fill_uniform(C0, (long)s.m * ldc, &seed);
    for (long i = 0; i < (long)s.m * ldc; i++)   /* without accumulate, C's own values must not be read: NaN */
        C[i] = !accumulate && i % ldc < s.n ? NAN : C0[i];
    const float alpha = 0.625f;
    pc_tile_gemm(trans_a, s.m, s.n, s.k, alpha, A, lda, B, ldb, accumulate, C, ldc);
    long bad = 0;
    for (int i = 0; i < s.m; i++)
        for (int j = 0; j < ldc; j++) {
            double want = C0[i * ldc + j], mag = 0;
            if (j < s.n) {
                double sum = 0;
                for (int p = 0; p < s.k; p++) {
                    double a = trans_a ? A[p * lda + i] : A[i * lda + p], t = a * B[p * ldb + j];
                    sum += t;
                    mag += fabs(t);
                }
                want = alpha * sum + (accumulate ? C0[i * ldc + j] : 0.0);
                mag = alpha * mag + fabs(C0[i * ldc + j]);
            }
            if (!(fabs(C[i * ldc + j] - want) <= 1e-6 * (mag + 1))) bad++;   /* NaN counts as off */
        }
    free(A); free(B); free(C); free(C0);
    return bad;
}

TEST(tile_gemm_every_path_matches_naive_products)
{
    pc_isa before = pc_isa_active(), best = pc_isa_detected();
    const pc_isa paths[] = { PC_ISA_AVX512, PC_ISA_PORTABLE };   /* below AVX-512: OpenBLAS */
    for (size_t p = 0; p < 2; p++) {
        if (paths[p] > best) {
            printf("  (tile_gemm: %s not on this CPU, not tested)\n", pc_isa_name(paths[p]));
            continue;
        }
        pc_isa_force(paths[p]);
        for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; i++)
            for (int t = 0; t < 4; t++) {
                long bad = check_shape(SHAPES[i], t & 1, t & 2);
                CHECK_MSG(bad == 0, "%s: m %d n %d k %d trans_a %d accumulate %d: %ld elements off",
                          pc_isa_name(paths[p]), SHAPES[i].m, SHAPES[i].n, SHAPES[i].k, t & 1, (t & 2) != 0, bad);
            }
    }
    pc_isa_force(before);
}

TEST(tile_transpose_matches_its_definition)
{
    const int rows = 37, cols = 70, lds = 75, ldd = 41;
    float *src = malloc(sizeof(float) * rows * lds), *dst = malloc(sizeof(float) * cols * ldd);
    for (int i = 0; i < rows * lds; i++) src[i] = (float)i;
    for (int i = 0; i < cols * ldd; i++) dst[i] = -1.0f;
    pc_tile_transpose(dst, ldd, src, lds, rows, cols);
    long bad = 0;
    for (int j = 0; j < cols; j++)
        for (int i = 0; i < ldd; i++) bad += dst[j * ldd + i] != (i < rows ? src[i * lds + j] : -1.0f);
    CHECK_MSG(bad == 0, "%ld elements off", bad);
    free(src); free(dst);
}
