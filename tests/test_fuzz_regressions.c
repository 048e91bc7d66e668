/* Every input the fuzzers found a bug with (tests/fuzz/regressions/<target>/), and every seed
 * (tests/fuzz/corpus/<target>/), through the fuzz targets' own entry points (tests/fuzz/
 * fuzz_entry.c): each must return cleanly. Under `make check` that means no leak, no
 * out-of-bounds access and no undefined behaviour either. */
#include "testlib.h"

#include "fuzz/fuzz_entry.h"

#include <dirent.h>
#include <stdlib.h>

/* Feeds each file of tests/fuzz/<kind>/<target>/ to the target; returns how many. */
static int replay_dir(const char *kind, const char *target)
{
    const char *root = getenv("PEFTC_SOURCE_DIR") ? getenv("PEFTC_SOURCE_DIR") : ".";
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/fuzz/%s/%s", root, kind, target);
    pc_fuzz_set_source_dir(root);
    pc_fuzz_fn fn = pc_fuzz_by_name(target);
    CHECK_MSG(fn != NULL, "no fuzz target '%s'", target);
    DIR *d = opendir(dir);
    if (!d || !fn) { if (d) closedir(d); return 0; }
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        CHECK_MSG(f != NULL, "cannot open %s", path);
        if (!f) continue;
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        rewind(f);
        unsigned char *data = malloc(size ? (size_t)size : 1);
        CHECK(data && fread(data, 1, (size_t)size, f) == (size_t)size);
        fclose(f);
        CHECK_INT_EQ(fn(data, (size_t)size), 0);
        free(data);
        n++;
    }
    closedir(d);
    return n;
}

static const char *const targets[] = { "safetensors", "st_index", "configs", "tokenizer_json",
                                       "tokenizer_encode", "tokenizer_files", "dataset", "quant_state" };

TEST(fuzz_regressions_run_clean)
{
    int n = 0;
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) n += replay_dir("regressions", targets[i]);
    CHECK_MSG(n >= 4, "only %d regression inputs found under tests/fuzz/regressions", n);
}

TEST(fuzz_seed_corpora_run_clean)
{
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++)
        CHECK_MSG(replay_dir("corpus", targets[i]) > 0, "no seeds in tests/fuzz/corpus/%s", targets[i]);
}
