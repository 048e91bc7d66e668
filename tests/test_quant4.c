/* bitsandbytes-compatible 4-bit quantization (kernels/quant4, kernels/dynamic_map) against the
 * numpy reference of tools/make_quant4_fixtures.py, bit for bit; and the fused 4-bit products
 * (kernels/gemm4) against dequantize-then-sgemm and a double-precision product. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "formats/safetensors.h"
#include "kernels/dynamic_map.h"
#include "kernels/gemm.h"
#include "kernels/gemm4.h"
#include "kernels/quant4.h"
#include "testlib.h"

static const char *const cases[] = {"random", "odd", "zero_blocks", "outlier", "ties",
                                    "denormal", "negzero", "large", "one_block"};
enum { NCASES = sizeof cases / sizeof cases[0] };

static pc_safetensors *open_fixture(const char *name)
{
    char rel[128];
    snprintf(rel, sizeof rel, "quant4/%s.safetensors", name);
    pc_safetensors *st = NULL;
    pc_error err = {0};
    if (pc_st_open(pc_test_fixture(rel), &st, &err) != PEFTC_OK) {
        CHECK_MSG(0, "open fixture %s: %s", rel, err.msg);
        return NULL;
    }
    return st;
}

/* F32 tensor `key` as a malloc'd array (NULL and a failed check when absent); *n = numel. */
static float *read_f32(const pc_safetensors *st, const char *key, int64_t *n)
{
    const pc_st_tensor *t = pc_st_find(st, key);
    CHECK_MSG(t != NULL, "fixture tensor %s missing", key);
    if (!t) return NULL;
    int64_t numel = pc_st_numel(t);
    float *v = malloc(sizeof(float) * (size_t)(numel ? numel : 1));
    pc_error err = {0};
    CHECK_MSG(pc_st_read_f32(t, v, numel, &err) == PEFTC_OK, "%s", err.msg);
    if (n) *n = numel;
    return v;
}

static const uint8_t *u8_data(const pc_safetensors *st, const char *key, size_t *n)
{
    const pc_st_tensor *t = pc_st_find(st, key);
    CHECK_MSG(t != NULL && t->dtype == PC_DT_U8, "fixture tensor %s missing or not U8", key);
    if (!t) return NULL;
    *n = t->nbytes;
    return t->data;
}

/* Index of the first float whose bits differ (-0.0 != 0.0, NaN payloads compared), or -1. */
static long first_bit_diff(const float *a, const float *b, long n)
{
    for (long i = 0; i < n; i++) {
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0) return i;
    }
    return -1;
}

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* ---- dynamic maps ---- */

TEST(quant4_dynamic_maps_equal_reference)
{
    pc_safetensors *st = open_fixture("maps");
    if (!st) return;
    float *s = read_f32(st, "dynamic_signed", NULL), *u = read_f32(st, "dynamic_unsigned", NULL);
    if (s && u) {
        long i = first_bit_diff(pc_dynamic_map_signed, s, 256);
        CHECK_MSG(i < 0, "signed map entry %ld: %a, reference %a", i, pc_dynamic_map_signed[i < 0 ? 0 : i], s[i < 0 ? 0 : i]);
        i = first_bit_diff(pc_dynamic_map_unsigned, u, 256);
        CHECK_MSG(i < 0, "unsigned map entry %ld: %a, reference %a", i, pc_dynamic_map_unsigned[i < 0 ? 0 : i], u[i < 0 ? 0 : i]);
    }
    CHECK(pc_dynamic_map_signed[127] == 0.0f && pc_dynamic_map_signed[255] == 1.0f);
    CHECK(pc_dynamic_map_unsigned[0] == 0.0f && pc_dynamic_map_unsigned[255] == 1.0f);
    free(s);
    free(u);
    pc_st_close(st);
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* create_dynamic_map(signed, 7, 8) with the textbook float32 linspace (start + step * i for the first
 * half, end - step * (steps - 1 - i) for the second). */
static void dynamic_map_scalar(bool is_signed, float out[256])
{
    int n = 0;
    for (int i = 0; i < 7; i++) {
        int steps = is_signed ? (1 << i) + 1 : (1 << (i + 1)) + 1;
        float start = 0.1f, end = 1.0f, step = (end - start) / (float)(steps - 1), b[129];
        for (int k = 0; k < steps; k++) b[k] = k < steps / 2 ? start + step * (float)k : end - step * (float)(steps - 1 - k);
        float scale = i == 6 ? 1.0f : (float)pow(10.0, i - 6);
        for (int k = 0; k + 1 < steps; k++) {
            float mean = (b[k] + b[k + 1]) / 2.0f;
            out[n++] = scale * mean;
            if (is_signed) out[n++] = -scale * mean;
        }
    }
    out[n++] = 0.0f;
    out[n++] = 1.0f;
    qsort(out, (size_t)n, sizeof(float), cmp_float);
}

/* The embedded tables are PyTorch's values. The plain float32 recomputation differs from them in about
 * 45 of 256 entries: PyTorch's vectorized linspace puts points 1 ulp away, and a mean of two such
 * points moves by up to 2 ulp - never more. */
TEST(quant4_dynamic_map_recomputed_within_two_ulp)
{
    for (int sgn = 0; sgn < 2; sgn++) {
        float m[256];
        dynamic_map_scalar(sgn, m);
        const float *ref = sgn ? pc_dynamic_map_signed : pc_dynamic_map_unsigned;
        for (int i = 0; i < 256; i++) {
            int64_t d = (int64_t)bits(m[i]) - (int64_t)bits(ref[i]);
            CHECK_MSG((bits(m[i]) ^ bits(ref[i])) < 0x80000000u && d >= -2 && d <= 2,
                      "%s map entry %d: recomputed %a, table %a", sgn ? "signed" : "unsigned", i, m[i], ref[i]);
        }
    }
}

TEST(quant4_dynamic_quantize_matches_cuda_dquantize)
{
    pc_safetensors *st = open_fixture("maps");
    if (!st) return;
    const char *names[2] = {"signed", "unsigned"};
    const float *maps[2] = {pc_dynamic_map_signed, pc_dynamic_map_unsigned};
    for (int k = 0; k < 2; k++) {
        char key[64];
        snprintf(key, sizeof key, "dq.%s.input", names[k]);
        int64_t n = 0;
        float *x = read_f32(st, key, &n);
        snprintf(key, sizeof key, "dq.%s.code", names[k]);
        size_t nc = 0;
        const uint8_t *code = u8_data(st, key, &nc);
        if (!x || !code || (int64_t)nc != n) {
            CHECK_MSG(0, "%s probes malformed", names[k]);
            free(x);
            continue;
        }
        for (int64_t i = 0; i < n; i++) {
            uint8_t q = pc_dynamic_quantize(maps[k], x[i]);
            CHECK_MSG(q == code[i], "%s map: dQuantize(%a) = %d, reference %d", names[k], x[i], q, code[i]);
        }
        free(x);
    }
    pc_st_close(st);
}

TEST(quant4_code_tables_equal_bnb_quant_map)
{
    pc_safetensors *st = open_fixture("maps");
    if (!st) return;
    float *nf4 = read_f32(st, "nf4_table", NULL), *fp4 = read_f32(st, "fp4_table", NULL);
    if (nf4 && fp4) {
        CHECK(first_bit_diff(pc_q4_code_table(PC_Q4_NF4), nf4, 16) < 0);
        CHECK(first_bit_diff(pc_q4_code_table(PC_Q4_FP4), fp4, 16) < 0);
    }
    CHECK_STR_EQ(pc_q4_type_name(PC_Q4_NF4), "nf4");
    CHECK_STR_EQ(pc_q4_type_name(PC_Q4_FP4), "fp4");
    free(nf4);
    free(fp4);
    pc_st_close(st);
}

/* ---- 4-bit quantization against the fixtures ---- */

static void check_bytes(const char *what, const uint8_t *got, size_t n, const uint8_t *want, size_t nwant)
{
    CHECK_MSG(n == nwant, "%s: %zu bytes, reference %zu", what, n, nwant);
    for (size_t i = 0; i < n && i < nwant; i++) {
        if (got[i] != want[i]) {
            CHECK_MSG(0, "%s: byte %zu is 0x%02x, reference 0x%02x", what, i, got[i], want[i]);
            return;
        }
    }
}

static void check_floats(const char *what, const float *got, const float *want, long n)
{
    long i = first_bit_diff(got, want, n);
    CHECK_MSG(i < 0, "%s: element %ld is %a, reference %a", what, i, got[i < 0 ? 0 : i], want[i < 0 ? 0 : i]);
}

/* Quantizes the case's input and compares every byte and float with the reference. */
static void check_case_type(const pc_safetensors *st, const char *name, const float *w, int64_t rows, int64_t cols,
                            pc_q4_type type, bool nested)
{
    const char *tn = pc_q4_type_name(type);
    char key[96], what[160];
    snprintf(what, sizeof what, "%s %s%s", name, tn, nested ? " nested" : "");
    pc_q4_weight q;
    pc_error err = {0};
    if (pc_q4_quantize(w, rows, cols, type, nested, &q, &err) != PEFTC_OK) {
        CHECK_MSG(0, "%s: %s", what, err.msg);
        return;
    }
    int64_t n = rows * cols, nb = pc_q4_blocks(&q);
    size_t len = 0;
    snprintf(key, sizeof key, "%s.packed", tn);
    const uint8_t *packed = u8_data(st, key, &len);
    if (packed) check_bytes(what, q.packed, (size_t)((n + 1) / 2), packed, len);
    if (!nested) {
        snprintf(key, sizeof key, "%s.absmax", tn);
        float *absmax = read_f32(st, key, NULL);
        if (absmax) check_floats(what, q.absmax, absmax, (long)nb);
        free(absmax);
    } else {
        snprintf(key, sizeof key, "%s.nested.qabsmax", tn);
        const uint8_t *qa = u8_data(st, key, &len);
        if (qa) check_bytes(what, q.qabsmax, (size_t)nb, qa, len);
        snprintf(key, sizeof key, "%s.nested.absmax2", tn);
        float *a2 = read_f32(st, key, NULL);
        if (a2) check_floats(what, q.absmax2, a2, (long)pc_q4_nested_blocks(&q));
        snprintf(key, sizeof key, "%s.nested.offset", tn);
        float *off = read_f32(st, key, NULL);
        if (off) check_floats(what, &q.offset, off, 1);
        free(a2);
        free(off);
    }
    snprintf(key, sizeof key, nested ? "%s.nested.dequant" : "%s.dequant", tn);
    if (pc_st_find(st, key)) {
        float *ref = read_f32(st, key, NULL), *got = malloc(sizeof(float) * (size_t)n);
        pc_q4_dequantize(&q, got);
        if (ref) check_floats(what, got, ref, (long)n);
        free(ref);
        free(got);
    }
    pc_q4_free(&q);
}

TEST(quant4_quantize_matches_reference_bit_for_bit)
{
    for (int c = 0; c < NCASES; c++) {
        pc_safetensors *st = open_fixture(cases[c]);
        if (!st) continue;
        const pc_st_tensor *in = pc_st_find(st, "input");
        CHECK_MSG(in && in->ndim == 2, "%s: input missing", cases[c]);
        if (in && in->ndim == 2) {
            float *w = read_f32(st, "input", NULL);
            for (int t = 0; t < 4; t++)
                check_case_type(st, cases[c], w, in->shape[0], in->shape[1], t < 2 ? PC_Q4_NF4 : PC_Q4_FP4, t % 2);
            free(w);
        }
        pc_st_close(st);
    }
}

/* Full blocks and a partial last block take different code paths (vector / scalar). Quantizing the
 * first 63 elements of each full reference block alone sends them down the partial-block path; with
 * the block maximum among them, absmax and the first 63 codes must equal the reference's. */
TEST(quant4_partial_block_path_matches_reference)
{
    for (int c = 0; c < NCASES; c++) {
        pc_safetensors *st = open_fixture(cases[c]);
        if (!st) continue;
        int64_t n = 0;
        float *w = read_f32(st, "input", &n);
        for (int t = 0; w && t < 2; t++) {
            pc_q4_type type = t ? PC_Q4_FP4 : PC_Q4_NF4;
            char key[64];
            size_t len = 0;
            snprintf(key, sizeof key, "%s.packed", pc_q4_type_name(type));
            const uint8_t *ref = u8_data(st, key, &len);
            snprintf(key, sizeof key, "%s.absmax", pc_q4_type_name(type));
            float *absmax = read_f32(st, key, NULL);
            for (int64_t b = 0; ref && absmax && (b + 1) * PC_Q4_BLOCK <= n; b++) {
                const float *x = w + b * PC_Q4_BLOCK;
                float m63 = 0.0f;
                for (int i = 0; i < 63; i++) m63 = fmaxf(m63, fabsf(pc_ftz(x[i])));
                if (m63 != absmax[b]) continue;
                pc_q4_weight q;
                pc_error err = {0};
                CHECK(pc_q4_quantize(x, 1, 63, type, false, &q, &err) == PEFTC_OK);
                const uint8_t *want = ref + b * PC_Q4_BLOCK / 2;
                bool same = bits(q.absmax[0]) == bits(absmax[b]) && memcmp(q.packed, want, 31) == 0 &&
                            (q.packed[31] & 0xf0) == (want[31] & 0xf0);
                CHECK_MSG(same, "%s %s block %lld: partial-block path differs", cases[c], pc_q4_type_name(type),
                          (long long)b);
                pc_q4_free(&q);
            }
            free(absmax);
        }
        free(w);
        pc_st_close(st);
    }
}

/* Dequantization from the reference's own quantization state (not from pc_q4_quantize). */
TEST(quant4_dequantize_reference_state)
{
    for (int c = 0; c < NCASES; c++) {
        pc_safetensors *st = open_fixture(cases[c]);
        if (!st) continue;
        const pc_st_tensor *in = pc_st_find(st, "input");
        for (int t = 0; in && t < 4; t++) {
            pc_q4_type type = t < 2 ? PC_Q4_NF4 : PC_Q4_FP4;
            const char *tn = pc_q4_type_name(type);
            bool nested = t % 2;
            char key[96];
            snprintf(key, sizeof key, nested ? "%s.nested.dequant" : "%s.dequant", tn);
            if (!pc_st_find(st, key)) continue;
            pc_q4_weight w = {.type = type, .rows = in->shape[0], .cols = in->shape[1], .nested = nested};
            size_t len;
            snprintf(key, sizeof key, "%s.packed", tn);
            w.packed = (uint8_t *)u8_data(st, key, &len);
            float *a = NULL, *a2 = NULL, *off = NULL;
            if (nested) {
                snprintf(key, sizeof key, "%s.nested.qabsmax", tn);
                w.qabsmax = (uint8_t *)u8_data(st, key, &len);
                snprintf(key, sizeof key, "%s.nested.absmax2", tn);
                w.absmax2 = a2 = read_f32(st, key, NULL);
                snprintf(key, sizeof key, "%s.nested.offset", tn);
                off = read_f32(st, key, NULL);
                if (off) w.offset = off[0];
                memcpy(w.code2, pc_dynamic_map_signed, sizeof w.code2);
            } else {
                snprintf(key, sizeof key, "%s.absmax", tn);
                w.absmax = a = read_f32(st, key, NULL);
            }
            snprintf(key, sizeof key, nested ? "%s.nested.dequant" : "%s.dequant", tn);
            float *ref = read_f32(st, key, NULL);
            int64_t n = pc_q4_numel(&w);
            float *got = malloc(sizeof(float) * (size_t)n);
            if (w.packed && (nested ? (w.qabsmax && a2 && off) : a != NULL) && ref) {
                pc_q4_dequantize(&w, got);
                char what[96];
                snprintf(what, sizeof what, "%s %s%s", cases[c], tn, nested ? " nested" : "");
                check_floats(what, got, ref, (long)n);
            }
            free(got);
            free(ref);
            free(a);
            free(a2);
            free(off);
        }
        pc_st_close(st);
    }
}

static float *random_matrix(const char *stream, int64_t n, float std)
{
    pc_rng r;
    pc_rng_init(&r, 7, stream);
    float *v = malloc(sizeof(float) * (size_t)n);
    pc_rng_fill_normal(&r, v, (long)n, 0.0f, std);
    return v;
}

TEST(quant4_dequantize_range_any_offset)
{
    int64_t rows = 37, cols = 45, n = rows * cols;
    float *w = random_matrix("q4_range", n, 1.0f);
    for (int t = 0; t < 2; t++) {
        pc_q4_weight q;
        pc_error err = {0};
        CHECK(pc_q4_quantize(w, rows, cols, t ? PC_Q4_FP4 : PC_Q4_NF4, t == 1, &q, &err) == PEFTC_OK);
        float *all = malloc(sizeof(float) * (size_t)n), *part = malloc(sizeof(float) * (size_t)n);
        pc_q4_dequantize(&q, all);
        /* scalar reference: table[code] * scale, nibble by nibble */
        const float *table = pc_q4_code_table(q.type);
        for (int64_t i = 0; i < n; i++) {
            int code = (q.packed[i / 2] >> (i % 2 ? 0 : 4)) & 15;
            float want = table[code] * pc_q4_block_scale(&q, i / PC_Q4_BLOCK);
            if (bits(all[i]) != bits(want)) {
                CHECK_MSG(0, "element %lld: %a, expected %a", (long long)i, all[i], want);
                break;
            }
        }
        const int64_t starts[] = {0, 1, 15, 16, 17, 63, 64, 65, 100, 1000};
        for (size_t s = 0; s < sizeof starts / sizeof starts[0]; s++) {
            for (int64_t len = 0; starts[s] + len <= n; len = len * 2 + 7) {
                pc_q4_dequantize_range(&q, starts[s], len, part);
                CHECK_MSG(first_bit_diff(part, all + starts[s], (long)len) < 0, "range [%lld, +%lld)",
                          (long long)starts[s], (long long)len);
            }
        }
        free(all);
        free(part);
        pc_q4_free(&q);
    }
    free(w);
}

static float max_half_gap(const float *table)
{
    float t[16];
    memcpy(t, table, sizeof t);
    qsort(t, 16, sizeof(float), cmp_float);
    float g = 0.0f;
    for (int i = 0; i + 1 < 16; i++) g = fmaxf(g, (t[i + 1] - t[i]) / 2.0f);
    return g;
}

/* |w - deq(w)| <= absmax * (largest half-gap of the code table) + 2 ulp(absmax) for every element. */
TEST(quant4_round_trip_within_format_bound)
{
    int64_t rows = 96, cols = 200, n = rows * cols;
    float *w = random_matrix("q4_bound", n, 0.02f);
    w[123] = 3.0f; /* outliers */
    w[4567] = -0.5f;
    float *d = malloc(sizeof(float) * (size_t)n);
    for (int t = 0; t < 2; t++) {
        pc_q4_type type = t ? PC_Q4_FP4 : PC_Q4_NF4;
        pc_q4_weight q;
        pc_error err = {0};
        CHECK(pc_q4_quantize(w, rows, cols, type, false, &q, &err) == PEFTC_OK);
        pc_q4_dequantize(&q, d);
        float gap = max_half_gap(pc_q4_code_table(type));
        CHECK_NEAR(gap, t ? (1.0 - 2.0 / 3.0) / 2 : (1.0 - 0.6961928009986877) / 2, 1e-6);
        for (int64_t i = 0; i < n; i++) {
            float a = q.absmax[i / PC_Q4_BLOCK];
            double bound = (double)a * gap + 2.0 * (nextafterf(a, INFINITY) - a);
            if (!(fabs((double)w[i] - d[i]) <= bound)) {
                CHECK_MSG(0, "%s element %lld: |%g - %g| > %g", pc_q4_type_name(type), (long long)i, w[i], d[i], bound);
                break;
            }
        }
        pc_q4_free(&q);
    }
    free(d);
    free(w);
}

TEST(quant4_rejects_bad_input)
{
    float w[6] = {0, 1, 2, 3, NAN, 5};
    pc_q4_weight q;
    pc_error err = {0};
    CHECK_INT_EQ(pc_q4_quantize(w, 2, 3, PC_Q4_NF4, false, &q, &err), PEFTC_ERR_NUMERIC);
    CHECK_CONTAINS(err.msg, "[1, 1] is NaN");
    w[4] = -INFINITY;
    CHECK_INT_EQ(pc_q4_quantize(w, 3, 2, PC_Q4_NF4, false, &q, &err), PEFTC_ERR_NUMERIC);
    CHECK_CONTAINS(err.msg, "[2, 0] is infinite");
    w[4] = 4;
    CHECK_INT_EQ(pc_q4_quantize(w, 0, 3, PC_Q4_FP4, true, &q, &err), PEFTC_ERR_INVALID);
    CHECK_CONTAINS(err.msg, "bad shape [0, 3]");
    CHECK_INT_EQ(pc_q4_quantize(w, 2, 3, (pc_q4_type)7, true, &q, &err), PEFTC_ERR_INVALID);
    CHECK_CONTAINS(err.msg, "unknown quant type 7");
    CHECK(q.packed == NULL && q.absmax == NULL);
}

/* ---- fused products ---- */

typedef struct { int64_t rows, cols, M; pc_q4_type type; bool nested; } gemm_shape;

static const gemm_shape shapes[] = {
    {48, 80, 5, PC_Q4_NF4, true},    /* rows straddle blocks (80 % 64 != 0) */
    {7, 13, 3, PC_Q4_FP4, false},    /* odd numel, one partial tile */
    {131, 129, 33, PC_Q4_NF4, true}, /* tiles, panels and pairs all with tails; two nested blocks */
    {200, 64, 17, PC_Q4_FP4, true},
    {1, 64, 1, PC_Q4_NF4, false},
    {72, 257, 40, PC_Q4_NF4, false},
    {66, 192, 19, PC_Q4_NF4, true},  /* whole blocks per row: nibbles straight to bf16 (forward and dx) */
    {33, 128, 50, PC_Q4_FP4, false}, /* the same with an odd row count (dx's last pair half empty) */
    {40, 1100, 9, PC_Q4_NF4, true},  /* forward's reduction in two passes of KC = 512 pairs (550 pairs) */
    {1090, 1088, 4, PC_Q4_FP4, false}, /* whole blocks per row, two passes forward (544 pairs) and dx (545) */
};
enum { NSHAPES = sizeof shapes / sizeof shapes[0] };

typedef struct {
    pc_q4_weight q;
    float *wd;         /* deq(W) [rows, cols] */
    float *x, *dy;     /* [M, cols], [M, rows] */
    float *y0, *dx0;   /* initial outputs for the accumulate case */
} gemm_case;

static bool make_case(const gemm_shape *s, gemm_case *c)
{
    memset(c, 0, sizeof *c);
    float *w = random_matrix("q4_gemm_w", s->rows * s->cols, 0.05f);
    pc_error err = {0};
    bool ok = pc_q4_quantize(w, s->rows, s->cols, s->type, s->nested, &c->q, &err) == PEFTC_OK;
    CHECK_MSG(ok, "%s", err.msg);
    free(w);
    if (!ok) return false;
    c->wd = malloc(sizeof(float) * (size_t)(s->rows * s->cols));
    pc_q4_dequantize(&c->q, c->wd);
    c->x = random_matrix("q4_gemm_x", s->M * s->cols, 1.0f);
    c->dy = random_matrix("q4_gemm_dy", s->M * s->rows, 1.0f);
    c->y0 = random_matrix("q4_gemm_y0", s->M * s->rows, 1.0f);
    c->dx0 = random_matrix("q4_gemm_dx0", s->M * s->cols, 1.0f);
    return true;
}

static void free_case(gemm_case *c)
{
    pc_q4_free(&c->q);
    free(c->wd);
    free(c->x);
    free(c->dy);
    free(c->y0);
    free(c->dx0);
}

/* Runs one direction of the fused product (accumulating onto init when given). */
static float *run_fused(const gemm_case *c, const gemm_shape *s, pc_q4_compute ct, bool forward, const float *init)
{
    int64_t nout = s->M * (forward ? s->rows : s->cols);
    float *out = malloc(sizeof(float) * (size_t)nout);
    if (init) memcpy(out, init, sizeof(float) * (size_t)nout);
    pc_error err = {0};
    pc_status st = forward ? pc_q4_matmul_xwT(&c->q, ct, c->x, s->M, out, init != NULL, NULL, 0, &err)
                           : pc_q4_matmul_dyW(&c->q, ct, c->dy, s->M, out, init != NULL, NULL, 0, &err);
    CHECK_MSG(st == PEFTC_OK, "%s", err.msg);
    return out;
}

/* dequantize-then-sgemm */
static float *run_reference_f32(const gemm_case *c, const gemm_shape *s, bool forward, const float *init)
{
    int M = (int)s->M, N = (int)s->rows, K = (int)s->cols;
    int64_t nout = s->M * (forward ? N : K);
    float *out = malloc(sizeof(float) * (size_t)nout);
    if (init) memcpy(out, init, sizeof(float) * (size_t)nout);
    if (forward)
        pc_sgemm(false, true, M, N, K, 1.0f, c->x, K, c->wd, K, init ? 1.0f : 0.0f, out, N);
    else
        pc_sgemm(false, false, M, K, N, 1.0f, c->dy, N, c->wd, K, init ? 1.0f : 0.0f, out, K);
    return out;
}

TEST(quant4_fused_f32_equals_dequantize_then_sgemm)
{
    for (int k = 0; k < NSHAPES; k++) {
        const gemm_shape *s = &shapes[k];
        gemm_case c;
        if (!make_case(s, &c)) continue;
        for (int dir = 0; dir < 2; dir++) {
            for (int acc = 0; acc < 2; acc++) {
                const float *init = acc ? (dir ? c.dx0 : c.y0) : NULL;
                long n = (long)(s->M * (dir ? s->cols : s->rows));
                float *got = run_fused(&c, s, PC_Q4_COMPUTE_F32, !dir, init);
                float *want = run_reference_f32(&c, s, !dir, init);
                double e = pc_test_max_rel_err(got, want, n);
                CHECK_MSG(e <= 1e-5, "[%lld x %lld] M=%lld %s%s: rel err %g", (long long)s->rows, (long long)s->cols,
                          (long long)s->M, dir ? "dy·W" : "x·Wᵀ", acc ? " (accumulate)" : "", e);
                free(got);
                free(want);
            }
        }
        free_case(&c);
    }
}

/* bf16 rounding by a different route than the library's bit trick: 8 significant bits with rintf
 * (round half to even), subnormals to signed zero. */
static float bf16_ref(float x)
{
    if (!isfinite(x) || x == 0.0f) return x;
    if (fabsf(x) < FLT_MIN) return copysignf(0.0f, x);
    int e;
    float m = frexpf(x, &e);
    return ldexpf(rintf(m * 256.0f) / 256.0f, e);
}

/* The exact product of the bf16-rounded operands, in double. */
static float *run_reference_bf16(const gemm_case *c, const gemm_shape *s, bool forward, const float *init)
{
    int64_t M = s->M, N = s->rows, K = s->cols, cols = forward ? N : K, L = forward ? K : N;
    const float *a = forward ? c->x : c->dy;
    float *out = malloc(sizeof(float) * (size_t)(M * cols));
    for (int64_t m = 0; m < M; m++) {
        for (int64_t j = 0; j < cols; j++) {
            double sum = init ? init[m * cols + j] : 0.0;
            for (int64_t l = 0; l < L; l++) {
                float wv = forward ? c->wd[j * K + l] : c->wd[l * K + j];
                sum += (double)bf16_ref(a[m * L + l]) * (double)bf16_ref(wv);
            }
            out[m * cols + j] = (float)sum;
        }
    }
    return out;
}

TEST(quant4_fused_bf16_paths)
{
    for (int k = 0; k < NSHAPES; k++) {
        const gemm_shape *s = &shapes[k];
        gemm_case c;
        if (!make_case(s, &c)) continue;
        for (int dir = 0; dir < 2; dir++) {
            for (int acc = 0; acc < 2; acc++) {
                const float *init = acc ? (dir ? c.dx0 : c.y0) : NULL;
                long n = (long)(s->M * (dir ? s->cols : s->rows));
                float *exact = run_reference_bf16(&c, s, !dir, init);
                float *f32 = run_reference_f32(&c, s, !dir, init);
                const pc_q4_compute cts[2] = {PC_Q4_COMPUTE_BF16, PC_Q4_COMPUTE_BF16_EMULATED};
                for (int t = 0; t < 2; t++) {
                    float *got = run_fused(&c, s, cts[t], !dir, init);
                    double e = pc_test_max_rel_err(got, exact, n), e32 = pc_test_max_rel_err(got, f32, n);
                    /* fp32 accumulation of exact bf16 products; bf16 operands vs fp32 ones */
                    CHECK_MSG(e <= 1e-5 && e32 <= 1e-2, "[%lld x %lld] M=%lld %s%s %s: rel err %g vs bf16 product, %g vs fp32",
                              (long long)s->rows, (long long)s->cols, (long long)s->M, dir ? "dy·W" : "x·Wᵀ",
                              acc ? " (accumulate)" : "", t ? "emulated" : "native", e, e32);
                    free(got);
                }
                free(exact);
                free(f32);
            }
        }
        free_case(&c);
    }
}

TEST(quant4_fused_scratch)
{
    const gemm_shape *s = &shapes[2];
    gemm_case c;
    if (!make_case(s, &c)) return;
    const pc_q4_compute cts[3] = {PC_Q4_COMPUTE_F32, PC_Q4_COMPUTE_BF16, PC_Q4_COMPUTE_BF16_EMULATED};
    for (int t = 0; t < 3; t++) {
        float *want = run_fused(&c, s, cts[t], true, NULL);
        size_t one = pc_q4_scratch_bytes(&c.q, s->M, cts[t], 1), four = pc_q4_scratch_bytes(&c.q, s->M, cts[t], 4);
        CHECK(four > one);
        char *scratch = malloc(four + 3);
        float *y = malloc(sizeof(float) * (size_t)(s->M * s->rows));
        pc_error err = {0};
        /* an unaligned buffer for one thread gives the same result as the call's own */
        CHECK(pc_q4_matmul_xwT(&c.q, cts[t], c.x, s->M, y, false, scratch + 3, one, &err) == PEFTC_OK);
        CHECK(pc_test_max_rel_err(y, want, (long)(s->M * s->rows)) <= 1e-6);
        CHECK_INT_EQ(pc_q4_matmul_dyW(&c.q, cts[t], c.dy, s->M, y, false, scratch, one - 1, &err), PEFTC_ERR_INVALID);
        CHECK_CONTAINS(err.msg, "too small");
        CHECK_INT_EQ(pc_q4_matmul_xwT(&c.q, cts[t], c.x, 0, y, false, NULL, 0, &err), PEFTC_OK);
        free(scratch);
        free(y);
        free(want);
    }
    free_case(&c);
}
