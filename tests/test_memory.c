/* The peak memory estimate against the kernel's measure (ru_maxrss of a `peftc train` child) on a
 * ~75 MB DistilBERT built here, whose weights dominate; the refusal when the estimate exceeds the
 * allowed memory (forced with --max_memory_mb); --dry_run reports and writes nothing. */
#include "testlib.h"
#include "test_world.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fs.h"
#include "models/distilbert.h"
#include "train/memory.h"

/* The estimate may be this far (relative) from the measured peak resident size. */
#define TOLERANCE 0.15

/* 6 layers of dim 512 / FFN 2048: 19M parameters, 76 MB of float32 weights; a 19-word vocabulary. */
static void make_world(const char *dir)
{
    const pc_distilbert_config sizes = { .dim = 512, .n_layers = 6, .n_heads = 8, .hidden_dim = 2048, .max_position_embeddings = 64 };
    pc_test_make_world(dir, &sizes, 3, 16);
}

/* Runs `peftc train` on the world with extra arguments (NULL-terminated, at most 6), output in log;
 * returns the exit status (-1 when killed) and the child's peak resident size in bytes. */
static int run_train(const char *dir, const char *out, const char *log, const char *const *extra, double *maxrss)
{
    char model[600], train[600], output[600];
    snprintf(model, sizeof model, "%s/model", dir);
    snprintf(train, sizeof train, "%s/train.jsonl", dir);
    snprintf(output, sizeof output, "%s/%s", dir, out);
    const char *bin = getenv("PEFTC_BIN") ? getenv("PEFTC_BIN") : "build/peftc";
    const char *argv[24] = {bin, "train", "--model_name_or_path", model, "--train_file", train, "--output_dir",
                            output, "--target_modules", "q_lin,v_lin", "--per_device_train_batch_size", "8",
                            "--max_steps", "2", "--save_strategy", "no"};
    int n = 16;
    for (int i = 0; extra && extra[i] && n < 23; i++) argv[n++] = extra[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) { dup2(fd, STDOUT_FILENO); dup2(fd, STDERR_FILENO); close(fd); }
        setenv("OMP_NUM_THREADS", "1", 1);   /* quick on a loaded machine; the estimate counts threads */
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    int status = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    if (pid < 0 || wait4(pid, &status, 0, &ru) < 0) return -2;
    *maxrss = 1024.0 * (double)ru.ru_maxrss;   /* kilobytes on Linux */
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static char *slurp(const char *path)
{
    char *text = NULL;
    size_t len;
    pc_error err = {0};
    if (pc_read_file(path, 1 << 20, &text, &len, &err) != PEFTC_OK) return NULL;
    return text;
}

/* The "estimated peak memory N MiB" figure of a log, in bytes (-1 when absent). */
static double logged_estimate(const char *log)
{
    char *text = slurp(log);
    const char *p = text ? strstr(text, "estimated peak memory ") : NULL;
    double v = p ? atof(p + 22) * 1024 * 1024 : -1;
    free(text);
    return v;
}

static char *make_dir(void)
{
    static char dir[512];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "%s/memory", pc_test_tmpdir());
        make_world(dir);
    }
    return dir;
}

TEST(memory_estimate_is_close_to_the_measured_peak)
{
#if defined(__SANITIZE_ADDRESS__)
    SKIP("AddressSanitizer's shadow memory and quarantine inflate the resident size");
#endif
    char log[700];
    const char *dir = make_dir();
    snprintf(log, sizeof log, "%s/train.log", dir);
    double rss = 0;
    CHECK_INT_EQ(run_train(dir, "out", log, NULL, &rss), 0);
    double est = logged_estimate(log);
    printf("  estimate %.1f MiB, measured peak RSS %.1f MiB (%+.1f%%)\n", est / 1048576, rss / 1048576,
           100 * (est - rss) / rss);
    CHECK_MSG(est > 0, "no estimate in %s", log);
    CHECK_MSG(rss > 70e6, "the run's peak %.0f bytes is below its weights: not the intended model", rss);
    CHECK_MSG(fabs(est - rss) <= TOLERANCE * rss, "estimate %.1f MiB vs measured %.1f MiB", est / 1048576, rss / 1048576);
}

TEST(memory_refusal_and_dry_run)
{
    char log[700], path[800];
    const char *dir = make_dir();
    snprintf(log, sizeof log, "%s/refuse.log", dir);
    double rss = 0;
    const char *const small[] = {"--max_memory_mb", "40", NULL};
    CHECK_INT_EQ(run_train(dir, "refused", log, small, &rss), 1);
    char *text = slurp(log);
    CHECK_CONTAINS(text, "not enough memory: estimated peak memory");
    CHECK_CONTAINS(text, "40 MiB available (max_memory_mb)");
    free(text);
    snprintf(path, sizeof path, "%s/refused/adapter_model.safetensors", dir);
    CHECK(!pc_path_exists(path));
#if !defined(__SANITIZE_ADDRESS__)
    /* Loading reads the weights once (the NaN/Inf scan), so they are resident; the refusal must come before
     * the adapters, optimizer state and activation arena that the estimate adds on top. */
    double est = logged_estimate(log);
    CHECK_MSG(est > 0 && rss < est, "refused only after %.0f bytes were resident (estimate %.0f)", rss, est);
#endif

    const char *const dry[] = {"--dry_run", NULL};
    snprintf(log, sizeof log, "%s/dry.log", dir);
    CHECK_INT_EQ(run_train(dir, "dry", log, dry, &rss), 0);
    text = slurp(log);
    CHECK_CONTAINS(text, "peak memory estimate (MiB):");
    CHECK_CONTAINS(text, "weights");
    CHECK_CONTAINS(text, "activations");
    CHECK_CONTAINS(text, "dry run: nothing trained or written");
    free(text);
    snprintf(path, sizeof path, "%s/dry", dir);
    CHECK_MSG(!pc_path_exists(path), "a dry run created %s", path);
}

/* A mapped token-embedding table counts the 64 KiB windows around the rows the data looks up, not its whole size;
 * tied to a Linear (which reads every row) or converted (not mapped), all of it. */
TEST(memory_estimate_counts_the_embedding_rows_the_data_reads)
{
    enum { ROWS = 1024, COLS = 1024 };   /* 4 KiB rows, 16 to a window; 4 MiB, a multiple of the alignment */
    float *table = aligned_alloc(65536, sizeof(float) * ROWS * COLS);
    CHECK(table != NULL);
    if (!table) return;
    pc_model m;
    memset(&m, 0, sizeof m);
    m.n_base_params = (long)ROWS * COLS;
    m.n_extra_tensors = 1;
    m.token_embedding = 0;
    m.extra_tensors[0] = (pc_named_tensor){.data = table, .ndim = 2, .shape = {ROWS, COLS}, .mapped = true};
    int32_t ids[] = {5, 6, 900, 2000};   /* 2000: outside the table, ignored */
    int64_t offsets[] = {0, 2, 4};
    pc_encoded train = {.n = 2, .offsets = offsets, .ids = ids}, none = {0};
    pc_param_list no_params = {0};
    pc_memory_estimate e;
    pc_memory_estimate_run(&m, &no_params, 0, false, &train, &none, &e);
    CHECK_MSG(e.weights == 2.0 * 65536, "weights %.0f: want windows 0 (rows 5, 6) and 56 (row 900)", e.weights);
    pc_memory_estimate_run(&m, &no_params, 0, false, &none, &train, &e);
    CHECK_MSG(e.weights == 2.0 * 65536, "eval ids: weights %.0f", e.weights);
    pc_linear tied;
    memset(&tied, 0, sizeof tied);
    tied.W = table;
    pc_linear *linears[1] = {&tied};
    m.linears = linears;
    m.n_linears = 1;
    pc_memory_estimate_run(&m, &no_params, 0, false, &train, &none, &e);
    CHECK(e.weights == 4.0 * ROWS * COLS);
    m.n_linears = 0;
    m.extra_tensors[0].mapped = false;
    pc_memory_estimate_run(&m, &no_params, 0, false, &train, &none, &e);
    CHECK(e.weights == 4.0 * ROWS * COLS);
    free(table);
}

TEST(memory_blocks_to_keep_fill_the_room_left)
{
    pc_memory_estimate e;
    memset(&e, 0, sizeof e);
    e.required = 100.0 * 1048576;
    CHECK_INT_EQ(pc_memory_blocks_to_keep(&e, 105.5 * 1048576, 2.0 * 1048576, 10), 2);
    CHECK_INT_EQ(pc_memory_blocks_to_keep(&e, 1000.0 * 1048576, 2.0 * 1048576, 10), 10);   /* every keepable one */
    CHECK_INT_EQ(pc_memory_blocks_to_keep(&e, 99.0 * 1048576, 2.0 * 1048576, 10), 0);      /* no room at all */
    CHECK_INT_EQ(pc_memory_blocks_to_keep(&e, 1000.0 * 1048576, 0, 10), 0);                /* nothing to keep */
}
