/* pc_sgemm (kernels/gemm): products large enough to be split into column chunks over the threads, against a
 * product written out here in double, for every pair of transpose flags, leading dimensions wider than the
 * matrices, beta 0 (C holding NaN, which must not be read) and beta 0.5, and a column count that is no multiple of
 * the chunk unit; on 2 and on 3 threads, so that chunk boundaries fall in different places. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>

#include "kernels/gemm.h"
#include "testlib.h"

enum { M = 64, N = 1000, K = 1100 };   /* 2 M N K = 141 Mflop: over pc_sgemm's split threshold (2^27) */

/* Elements of C off the double-precision product, on rows 0, 9, ..., 63 and every column (all chunks). */
static long check(bool ta, bool tb, float beta, int threads)
{
    const int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 7;
    const long a_size = (long)(ta ? K : M) * lda, b_size = (long)(tb ? N : K) * ldb, c_size = (long)M * ldc;
    float *A = malloc(sizeof(float) * a_size), *B = malloc(sizeof(float) * b_size);
    float *C = malloc(sizeof(float) * c_size), *C0 = malloc(sizeof(float) * c_size);
    unsigned seed = 11u + (unsigned)(ta * 2 + tb);
    pc_test_fill_uniform(A, a_size, &seed);
    pc_test_fill_uniform(B, b_size, &seed);
    pc_test_fill_uniform(C0, c_size, &seed);
    for (long i = 0; i < c_size; i++) C[i] = beta == 0.0f && i % ldc < N ? NAN : C0[i];
    const int before = omp_get_max_threads();
    omp_set_num_threads(threads);
    pc_sgemm(ta, tb, M, N, K, 0.75f, A, lda, B, ldb, beta, C, ldc);
    omp_set_num_threads(before);
    long bad = 0;
    for (int i = 0; i < M; i += 9)
        for (int j = 0; j < ldc; j++) {
            double want = C0[(long)i * ldc + j], mag = fabs(want);
            if (j < N) {
                double sum = 0;
                mag = 0;
                for (int p = 0; p < K; p++) {
                    double a = ta ? A[(long)p * lda + i] : A[(long)i * lda + p];
                    double b = tb ? B[(long)j * ldb + p] : B[(long)p * ldb + j];
                    sum += a * b;
                    mag += fabs(a * b);
                }
                want = 0.75 * sum + (beta == 0.0f ? 0.0 : beta * C0[(long)i * ldc + j]);
                mag = 0.75 * mag + fabs(C0[(long)i * ldc + j]);
            }
            if (!(fabs(C[(long)i * ldc + j] - want) <= 1e-6 * (mag + 1))) bad++;   /* NaN counts as off */
        }
    free(A); free(B); free(C); free(C0);
    return bad;
}

TEST(sgemm_split_over_threads_matches_naive_products)
{
    for (int threads = 2; threads <= 3; threads++)
        for (int t = 0; t < 4; t++)
            for (int b = 0; b < 2; b++) {
                const bool ta = t & 1, tb = t & 2;
                const float beta = b ? 0.5f : 0.0f;
                long bad = check(ta, tb, beta, threads);
                CHECK_MSG(bad == 0, "threads %d trans_a %d trans_b %d beta %g: %ld elements off", threads, ta, tb,
                          beta, bad);
            }
}
