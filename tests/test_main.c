/* Test runner: runs every registered test (or those whose name contains argv[1])
 * and prints "N passed, N failed, N skipped". Exit status 1 on any failure. */
#include "testlib.h"

#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_TESTS 4096
static struct { const char *name, *file; pc_test_fn fn; } tests[MAX_TESTS];
static int n_tests, failed_now, skipped_now;

void pc_test_register(const char *name, const char *file, pc_test_fn fn)
{
    if (n_tests < MAX_TESTS) { tests[n_tests].name = name; tests[n_tests].file = file; tests[n_tests].fn = fn; n_tests++; }
}

void pc_test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "  FAIL %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    failed_now = 1;
}

void pc_test_skip(const char *why) { skipped_now = 1; fprintf(stderr, "  SKIP: %s\n", why); }
int pc_test_failed_now(void) { return failed_now; }

double pc_test_max_rel_err(const float *a, const float *b, long n)
{
    double maxdiff = 0, maxref = 1e-30;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= maxdiff)) maxdiff = d;  /* NaN propagates as failure */
        if (fabs(b[i]) > maxref) maxref = fabs(b[i]);
    }
    return maxdiff / maxref;
}

static const char *source_root(void)
{
    const char *r = getenv("PEFTC_SOURCE_DIR");
    return r ? r : ".";
}

const char *pc_test_fixture(const char *name)
{
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/tests/fixtures/%s", source_root(), name);
    return buf;
}

const char *pc_test_shared(const char *rel)
{
    static char buf[4096];
    const char *s = getenv("PEFTC_SHARED_DIR");
    if (s) snprintf(buf, sizeof buf, "%s/%s", s, rel);
    else snprintf(buf, sizeof buf, "%s/../shared/%s", source_root(), rel);
    struct stat st;
    return stat(buf, &st) == 0 ? buf : NULL;
}

const char *pc_test_tmpdir(void)
{
    static char dir[256];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/peftc-test-XXXXXX");
        if (!mkdtemp(dir)) { perror("mkdtemp"); exit(2); }
    }
    return dir;
}

int main(int argc, char **argv)
{
    const char *filter = argc > 1 ? argv[1] : NULL;
    int passed = 0, failed = 0, skipped = 0;
    for (int i = 0; i < n_tests; i++) {
        if (filter && !strstr(tests[i].name, filter) && !strstr(tests[i].file, filter)) continue;
        failed_now = skipped_now = 0;
        tests[i].fn();
        if (failed_now) { failed++; fprintf(stderr, "FAILED %s (%s)\n", tests[i].name, tests[i].file); }
        else if (skipped_now) { skipped++; fprintf(stderr, "skipped %s (%s)\n", tests[i].name, tests[i].file); }
        else passed++;
    }
    if (!getenv("PEFTC_KEEP_TMP") && pc_test_tmpdir()[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", pc_test_tmpdir());
        if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", pc_test_tmpdir());
    }
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}
