/* Packed GEMM: every kernel (fp32, bf16 x AVX-512, AVX2, portable; those this CPU has) against a naive
 * double-accumulated product on odd shapes, both directions of a Linear ([out, in] and [in, out] weights),
 * with and without accumulation. bf16 is checked against the product of the bf16-rounded inputs, so the
 * tolerance is fp32 summation error only. */
#include <stdint.h>
#include <stdlib.h>

#include "kernels/pgemm.h"
#include "nn/linear.h"
#include "testlib.h"

/* bf16 rounding written out independently of the kernels: round to nearest even on the top 16 bits;
 * the test data has no NaN and no subnormals. */
static double bf16_value(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    float g;
    memcpy(&g, &r, sizeof g);
    return g;
}

/* C[M,N] (+)= A[M,K] · B with B[k][n] = get(W, k, n); returns the count of elements off by more than
 * 1e-5 of the sum of |terms| (+1e-30). */
static long compare(const float *A, int M, int K, int N, const float *W, bool b_transposed, int ldw, bool bf16,
                    const float *C0, const float *C, bool accumulate)
{
    long bad = 0;
    for (int m = 0; m < M; m++) {
        for (int n = 0; n < N; n++) {
            double sum = 0, mag = 0;
            for (int k = 0; k < K; k++) {
                double a = A[(long)m * K + k], b = b_transposed ? W[(long)n * ldw + k] : W[(long)k * ldw + n];
                if (bf16) { a = bf16_value((float)a); b = bf16_value((float)b); }
                sum += a * b;
                mag += fabs(a * b);
            }
            double base = accumulate ? C0[(long)m * N + n] : 0;
            double got = C[(long)m * N + n];
            if (!(fabs(got - (base + sum)) <= 1e-5 * (mag + fabs(base)) + 1e-30)) bad++;
        }
    }
    return bad;
}

typedef struct { int rows, in, out; } lin_shape;

/* Forward and input gradient of one Linear shape, for one weight orientation and dtype. */
static void check_linear(lin_shape s, bool w_in_out, pc_pack_dtype dtype, const char *kernel)
{
    unsigned seed = 7u + (unsigned)(s.rows * 31 + s.in * 7 + s.out);
    long nw = (long)s.in * s.out;
    float *W = malloc(sizeof(float) * (size_t)nw), *x = malloc(sizeof(float) * (size_t)s.rows * s.in),
          *dy = malloc(sizeof(float) * (size_t)s.rows * s.out), *y = malloc(sizeof(float) * (size_t)s.rows * s.out),
          *y0 = malloc(sizeof(float) * (size_t)s.rows * s.out), *dx = malloc(sizeof(float) * (size_t)s.rows * s.in),
          *dx0 = malloc(sizeof(float) * (size_t)s.rows * s.in);
    pc_test_fill_uniform(W, nw, &seed);
    pc_test_fill_uniform(x, (long)s.rows * s.in, &seed);
    pc_test_fill_uniform(dy, (long)s.rows * s.out, &seed);
    pc_test_fill_uniform(y0, (long)s.rows * s.out, &seed);
    pc_test_fill_uniform(dx0, (long)s.rows * s.in, &seed);
    pc_packed_weight p;
    pc_error err = { 0 };
    CHECK(pc_pack_weight(&p, W, w_in_out, s.in, s.out, dtype, &err) == PEFTC_OK);
    bool bf16 = dtype == PC_PACK_BF16;
    int ldw = w_in_out ? s.out : s.in;
    for (int acc = 0; acc < 2; acc++) {
        memcpy(y, y0, sizeof(float) * (size_t)s.rows * s.out);
        memcpy(dx, dx0, sizeof(float) * (size_t)s.rows * s.in);
        pc_packed_xwT(&p, x, s.rows, y, NULL, acc);
        pc_packed_dyW(&p, dy, s.rows, dx, acc);
        /* forward B[k=i][n=o] = W[o][i] ([out, in]) or W[i][o]; backward B[k=o][n=i] the other way */
        long bad_y = compare(x, s.rows, s.in, s.out, W, !w_in_out, ldw, bf16, y0, y, acc);
        long bad_dx = compare(dy, s.rows, s.out, s.in, W, w_in_out, ldw, bf16, dx0, dx, acc);
        CHECK_MSG(bad_y == 0 && bad_dx == 0, "%s rows %d in %d out %d w_in_out %d accumulate %d: %ld y and %ld dx wrong",
                  kernel, s.rows, s.in, s.out, w_in_out, acc, bad_y, bad_dx);
    }
    /* with a bias: y = x W^T + b on every row, checked as an accumulation onto rows of b */
    for (long i = 0; i < (long)s.rows * s.out; i++) y0[i] = dy[i % s.out];
    pc_packed_xwT(&p, x, s.rows, y, dy, false);
    long bad_b = compare(x, s.rows, s.in, s.out, W, !w_in_out, ldw, bf16, y0, y, true);
    CHECK_MSG(bad_b == 0, "%s rows %d in %d out %d w_in_out %d with bias: %ld y wrong", kernel, s.rows, s.in, s.out,
              w_in_out, bad_b);
    pc_packed_weight_free(&p);
    free(W); free(x); free(dy); free(y); free(y0); free(dx); free(dx0);
}

TEST(pgemm_every_kernel_matches_naive_product)
{
    /* odd sizes around the blocking: MR 12, NR 32, KC 1024 steps (2048 bf16 values), MC 96 rows; { 150, 33,
     * 310 } has N >= 2M forward (the threads split the columns), N < 2M for dx (they split the rows); the
     * last two run 2-3 reduction blocks (fp32 and bf16) forward or backward, so later blocks add onto C */
    static const lin_shape shapes[] = {
        { 1, 1, 1 }, { 3, 17, 5 }, { 17, 3, 33 }, { 1, 255, 257 }, { 257, 17, 255 }, { 13, 257, 65 },
        { 255, 400, 31 }, { 97, 3, 1 }, { 150, 33, 310 }, { 29, 2081, 45 }, { 110, 70, 2049 },
    };
    pc_isa before = pc_isa_active(), best = pc_isa_detected();
    for (int isa = PC_ISA_AVX512; isa >= PC_ISA_PORTABLE; isa--) {
        if (isa > (int)best) {
            printf("  (pgemm: %s not on this CPU, not tested)\n", pc_isa_name((pc_isa)isa));
            continue;
        }
        pc_isa_force((pc_isa)isa);
        CHECK_INT_EQ(pc_isa_active(), isa);
        for (int d = 0; d < 2; d++) {
            const char *kernel = pc_pgemm_kernel_name((pc_pack_dtype)d);
            for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
                for (int t = 0; t < 2; t++) check_linear(shapes[i], t, (pc_pack_dtype)d, kernel);
        }
    }
    pc_isa_force(before);
}

TEST(pgemm_bf16_rounds_the_inputs)
{
    /* 1 + 2^-9 is not a bf16: the bf16 product of (1 + 2^-9) and 1 is 1, the fp32 one is not */
    float x = 1.0f + 1.0f / 512, w = 1.0f, y = 0;
    pc_packed_weight p;
    pc_error err = { 0 };
    CHECK(pc_pack_weight(&p, &w, false, 1, 1, PC_PACK_BF16, &err) == PEFTC_OK);
    pc_packed_xwT(&p, &x, 1, &y, NULL, false);
    CHECK(y == 1.0f);
    pc_packed_weight_free(&p);
    CHECK(pc_pack_weight(&p, &w, false, 1, 1, PC_PACK_F32, &err) == PEFTC_OK);
    pc_packed_xwT(&p, &x, 1, &y, NULL, false);
    CHECK(y == x);
    pc_packed_weight_free(&p);
}

TEST(pgemm_isa_force_never_exceeds_the_cpu)
{
    pc_isa before = pc_isa_active();
    pc_isa_force(PC_ISA_PORTABLE);
    CHECK_STR_EQ(pc_pgemm_kernel_name(PC_PACK_F32), "portable-f32");
    pc_isa_force(PC_ISA_AVX512);
    CHECK_INT_EQ(pc_isa_active(), pc_isa_detected());
    pc_isa_force(before);
}

/* A frozen Linear with pack_dtype BF16 (training's bf16: true) packs W at reserve and runs forward and dx
 * in bf16: y = x·Wᵀ + b and dx = dy·W on bf16-rounded operands, the bias in fp32. */
TEST(pgemm_linear_bf16_packs_frozen_weight)
{
    enum { ROWS = 19, IN = 37, OUT = 21 };
    static float W[OUT * IN], b[OUT], x[ROWS * IN], dy[ROWS * OUT], y[ROWS * OUT], dx[ROWS * IN], zero[ROWS * IN];
    unsigned seed = 99u;
    pc_test_fill_uniform(W, OUT * IN, &seed);
    pc_test_fill_uniform(b, OUT, &seed);
    pc_test_fill_uniform(x, ROWS * IN, &seed);
    pc_test_fill_uniform(dy, ROWS * OUT, &seed);
    pc_linear lin = { .in = IN, .out = OUT, .W = W, .b = b, .pack_dtype = PC_PACK_BF16 };
    pc_scratch scratch = { 0 };
    pc_error err = { 0 };
    CHECK_MSG(pc_linear_reserve(&lin, ROWS, &scratch, &err) == PEFTC_OK, "%s", err.msg);
    CHECK(lin.packed != NULL && lin.packed->fwd.dtype == PC_PACK_BF16);
    pc_linear_forward(&lin, y, x, ROWS, false, NULL);
    pc_linear_backward(&lin, dx, false, dy, x, ROWS);
    float bias_rows[ROWS * OUT];
    for (int r = 0; r < ROWS; r++) memcpy(bias_rows + r * OUT, b, sizeof b);
    CHECK_INT_EQ(compare(x, ROWS, IN, OUT, W, true, IN, true, bias_rows, y, true), 0);
    CHECK_INT_EQ(compare(dy, ROWS, OUT, IN, W, false, IN, true, zero, dx, false), 0);
    pc_linear_release(&lin);
    CHECK(lin.packed == NULL);
}
