/* kill -9 during checkpoint saves: `peftc train` (a checkpoint every step, save_total_limit 2, saves
 * slowed by the test-only PEFTC_TEST_SAVE_DELAY_US) is SIGKILLed after seeded random delays, again and
 * again, each run resuming from the newest checkpoint. After every kill, each checkpoint-N that exists
 * must load through the library (adapter, optimizer state, training state, trainer_state.json) and
 * belong to step N, and the next run must continue from the newest one at step N + 1. */
#include "testlib.h"
#include "test_world.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include "base/fs.h"
#include "base/rng.h"
#include "formats/json.h"
#include "formats/safetensors.h"
#include "models/distilbert.h"
#include "models/peft_model.h"
#include "train/checkpoints.h"
#include "train/optim.h"

#define KILLS 16

static void make_world(const char *dir)
{
    const pc_distilbert_config sizes = { .dim = 16, .n_layers = 2, .n_heads = 2, .hidden_dim = 32, .max_position_embeddings = 32 };
    pc_test_make_world(dir, &sizes, 5, 24);
}

/* Starts `peftc train` with its output in log; returns the child's pid. */
static pid_t start_training(const char *dir, bool resume, const char *log)
{
    char model[600], train[600], out[600];
    snprintf(model, sizeof model, "%s/model", dir);
    snprintf(train, sizeof train, "%s/train.jsonl", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    const char *bin = getenv("PEFTC_BIN") ? getenv("PEFTC_BIN") : "build/peftc";
    char *argv[] = {(char *)bin, "train", "--model_name_or_path", model, "--train_file", train, "--output_dir", out,
                    "--target_modules", "q_lin,v_lin", "--per_device_train_batch_size", "4", "--max_steps", "100000",
                    "--logging_steps", "1", "--save_steps", "1", "--save_total_limit", "2", "--lora_dropout", "0.1",
                    resume ? "--resume_from_checkpoint" : NULL, "true", NULL};
    unlink(log);   /* the parent must not read the previous run's log */
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) { dup2(fd, STDOUT_FILENO); dup2(fd, STDERR_FILENO); close(fd); }
        setenv("PEFTC_TEST_SAVE_DELAY_US", "2000", 1);
        execv(bin, argv);
        _exit(127);
    }
    return pid;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, ms % 1000 * 1000000 };
    nanosleep(&ts, NULL);
}

/* Everything resume reads, through the library; the checkpoint's own numbers must say step n. */
static void check_loadable(const char *model_dir, const char *ckpt, long n)
{
    pc_error err = {0};
    char path[1400];
    pc_model *m = NULL;
    pc_peft_model *p = NULL;
    pc_optimizer *opt = NULL;
    CHECK_MSG(pc_checkpoint_complete(ckpt), "%s is incomplete", ckpt);
    CHECK_MSG(pc_model_load(model_dir, NULL, &m, &err) == PEFTC_OK, "%s", err.msg);
    CHECK_MSG(m && pc_peft_load(m, ckpt, &p, &err) == PEFTC_OK, "%s: %s", ckpt, err.msg);
    pc_optim_args oa = { 0.9, 0.999, 1e-8, 0.0, NULL };
    snprintf(path, sizeof path, "%s/optimizer.safetensors", ckpt);
    if (p) {
        CHECK(pc_optimizer_create("adamw_torch", &p->trainable, &oa, &opt, &err) == PEFTC_OK);
        CHECK_MSG(opt && pc_optimizer_load(opt, &p->trainable, path, &err) == PEFTC_OK, "%s", err.msg);
        if (opt) CHECK_INT_EQ(pc_optimizer_step_count(opt), n);
    }
    pc_optimizer_free(opt);
    pc_peft_model_free(p);
    pc_model_free(m);
    snprintf(path, sizeof path, "%s/training_state.safetensors", ckpt);
    pc_safetensors *st = NULL;
    CHECK_MSG(pc_st_open(path, &st, &err) == PEFTC_OK, "%s", err.msg);
    const cJSON *step = st ? cJSON_GetObjectItemCaseSensitive(pc_st_metadata(st), "step") : NULL;
    CHECK_MSG(cJSON_IsString(step) && atol(step->valuestring) == n, "%s: step", path);
    pc_st_close(st);
    snprintf(path, sizeof path, "%s/trainer_state.json", ckpt);
    cJSON *state = NULL;
    CHECK_MSG(pc_json_parse_file(path, &state, &err) == PEFTC_OK, "%s", err.msg);
    const cJSON *gs = cJSON_GetObjectItemCaseSensitive(state, "global_step");
    CHECK_MSG(cJSON_IsNumber(gs) && (long)gs->valuedouble == n, "%s: global_step", path);
    cJSON_Delete(state);
}

/* Checks every checkpoint-N in out; returns the newest N (-1: none) and counts the save leftovers
 * (temporary or half-deleted directories) that show a kill landed inside a save. */
static long check_all(const char *dir, int *leftovers)
{
    char out[600], model[600];
    snprintf(out, sizeof out, "%s/out", dir);
    snprintf(model, sizeof model, "%s/model", dir);
    long newest = -1;
    DIR *d = opendir(out);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char *end, path[1200];
        if (strncmp(e->d_name, ".checkpoint-", 12) == 0) { (*leftovers)++; continue; }
        if (strncmp(e->d_name, "checkpoint-", 11) != 0) continue;
        long n = strtol(e->d_name + 11, &end, 10);
        CHECK_MSG(!*end, "odd name %s", e->d_name);
        snprintf(path, sizeof path, "%s/%s", out, e->d_name);
        check_loadable(model, path, n);
        if (n > newest) newest = n;
    }
    if (d) closedir(d);
    return newest;
}

/* The step of the first training log line ({"loss": ..., "step": K}) in log, or -1. */
static long first_logged_step(const char *log)
{
    FILE *f = fopen(log, "r");
    char line[4096];
    long step = -1;
    while (f && step < 0 && fgets(line, sizeof line, f)) {
        const char *s = strstr(line, "\"step\":");
        if (strncmp(line, "{\"grad_norm\"", 12) == 0 && s) step = atol(s + 7);
    }
    if (f) fclose(f);
    return step;
}

TEST(kill_9_during_saves_leaves_loadable_checkpoints_and_resume_continues)
{
    char dir[512], log[700];
    snprintf(dir, sizeof dir, "%s/kill", pc_test_tmpdir());
    make_world(dir);
    snprintf(log, sizeof log, "%s/train.log", dir);
    pc_rng rng;
    pc_rng_init(&rng, 2024, "kill_test");
    long newest = -1;
    int in_save = 0, resumed_checked = 0;
    for (int i = 0; i < KILLS && !pc_test_failed_now(); i++) {
        pid_t pid = start_training(dir, newest >= 0, log);
        CHECK(pid > 0);
        if (pid <= 0) return;
        /* once the run is training (its start-up time varies with the machine's load), a random moment */
        for (int waited = 0; first_logged_step(log) < 0 && waited < 10000; waited += 5) sleep_ms(5);
        sleep_ms((long)pc_rng_below(&rng, 200));
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        CHECK_MSG(WIFSIGNALED(status), "peftc exited by itself (status %d): see %s", status, log);
        long first = first_logged_step(log);
        CHECK_MSG(first == (newest > 0 ? newest : 0) + 1, "run %d started at step %ld, the newest checkpoint was %ld", i, first, newest);
        resumed_checked += newest >= 0;
        int leftovers = 0;
        long now = check_all(dir, &leftovers);
        CHECK_MSG(now >= newest, "checkpoint-%ld vanished, newest now %ld", newest, now);
        in_save += leftovers > 0;
        newest = now;
    }
    printf("  %d kills: %d inside a save, %d resumes, newest checkpoint-%ld\n", KILLS, in_save, resumed_checked, newest);
    CHECK_MSG(in_save >= 3, "only %d kills landed inside a save: the test does not test", in_save);
}

TEST(resume_picks_the_newest_complete_checkpoint)
{
    char dir[512], path[700];
    snprintf(dir, sizeof dir, "%s/latest", pc_test_tmpdir());
    const char *const files[] = {"adapter_model.safetensors", "adapter_config.json", "optimizer.safetensors",
                                 "training_state.safetensors", "trainer_state.json"};
    pc_error err = {0};
    for (int k = 2; k <= 4; k += 2) {
        snprintf(path, sizeof path, "%s/checkpoint-%d", dir, k);
        CHECK(pc_mkdirs(path, &err) == PEFTC_OK);
        for (int f = 0; f < 5; f++) {
            snprintf(path, sizeof path, "%s/checkpoint-%d/%s", dir, k, files[f]);
            if (k == 2 || f < 4) pc_test_write_text(path, "x");   /* checkpoint-4 lacks trainer_state.json */
        }
    }
    snprintf(path, sizeof path, "%s/.checkpoint-6.tmp-1", dir);   /* a killed save */
    CHECK(pc_mkdirs(path, &err) == PEFTC_OK);
    snprintf(path, sizeof path, "%s/checkpoint-10x", dir);
    CHECK(pc_mkdirs(path, &err) == PEFTC_OK);
    char latest[700];
    CHECK_MSG(pc_checkpoint_latest(dir, latest, sizeof latest, &err) == PEFTC_OK, "%s", err.msg);
    snprintf(path, sizeof path, "%s/checkpoint-2", dir);
    CHECK_STR_EQ(latest, path);
    pc_checkpoint_remove_leftovers(dir);
    snprintf(path, sizeof path, "%s/.checkpoint-6.tmp-1", dir);
    CHECK(!pc_path_exists(path));
    snprintf(path, sizeof path, "%s/checkpoint-2", dir);
    CHECK(pc_path_exists(path));
}
