/* Minimal test harness. Each test file defines tests with TEST(name) { ... };
 * they register themselves at load time, tests/test_main.c runs them all and
 * prints "N passed, N failed". A test fails when any CHECK fails; a test that
 * cannot run (missing ../shared data) calls SKIP("why") and is counted as skipped,
 * never as passed. */
#ifndef PC_TESTLIB_H
#define PC_TESTLIB_H

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef void (*pc_test_fn)(void);
void pc_test_register(const char *name, const char *file, pc_test_fn fn);
void pc_test_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void pc_test_skip(const char *why);
int pc_test_failed_now(void);

#define TEST(name)                                                        \
    static void test_##name(void);                                        \
    __attribute__((constructor)) static void register_##name(void)        \
    { pc_test_register(#name, __FILE__, test_##name); }                   \
    static void test_##name(void)

#define CHECK(cond) do { if (!(cond)) pc_test_fail(__FILE__, __LINE__, "CHECK(%s)", #cond); } while (0)
#define CHECK_MSG(cond, ...) do { if (!(cond)) pc_test_fail(__FILE__, __LINE__, __VA_ARGS__); } while (0)
#define CHECK_INT_EQ(a, b) do { long long a_ = (long long)(a), b_ = (long long)(b); \
    if (a_ != b_) pc_test_fail(__FILE__, __LINE__, "%s == %lld, expected %s == %lld", #a, a_, #b, b_); } while (0)
#define CHECK_STR_EQ(a, b) do { const char *a_ = (a), *b_ = (b); \
    if (!a_ || !b_ || strcmp(a_, b_) != 0) pc_test_fail(__FILE__, __LINE__, "%s == \"%s\", expected \"%s\"", #a, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); } while (0)
/* |a-b| <= tol * max(1, |b|) */
#define CHECK_NEAR(a, b, tol) do { double a_ = (a), b_ = (b); \
    if (!(fabs(a_ - b_) <= (tol) * fmax(1.0, fabs(b_)))) pc_test_fail(__FILE__, __LINE__, "%s = %.9g, expected %.9g (tol %g)", #a, a_, b_, (double)(tol)); } while (0)
/* Substring check on an error message. */
#define CHECK_CONTAINS(hay, needle) do { const char *h_ = (hay), *n_ = (needle); \
    if (!h_ || !strstr(h_, n_)) pc_test_fail(__FILE__, __LINE__, "\"%s\" does not contain \"%s\"", h_ ? h_ : "(null)", n_); } while (0)
#define SKIP(why) do { pc_test_skip(why); return; } while (0)

/* v[0, n) = reproducible uniform values in [-1, 1) from a linear congruential sequence advanced in *seed. */
static inline void pc_test_fill_uniform(float *v, long n, unsigned *seed)
{
    for (long i = 0; i < n; i++) {
        *seed = *seed * 1664525u + 1013904223u;
        v[i] = (float)(*seed >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
    }
}

/* Max relative error between two float arrays: max|a-b| / max(max|b|, 1e-30). */
double pc_test_max_rel_err(const float *a, const float *b, long n);
/* Path helpers: the repository's tests/fixtures dir and ../shared (NULL when absent). */
const char *pc_test_fixture(const char *name);  /* static buffer, valid until next call */
const char *pc_test_shared(const char *rel);    /* NULL when ../shared/rel does not exist */
const char *pc_test_tmpdir(void);               /* a fresh per-run temp dir */

#endif
