#include "train/checkpoints.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/fs.h"

/* What resume needs: the adapter, the optimizer state, counters + random streams + data order,
 * and the log (trainer.c writes them; a checkpoint missing one cannot be resumed from). */
static const char *const required_files[] = {"adapter_model.safetensors", "adapter_config.json",
                                             "optimizer.safetensors", "training_state.safetensors",
                                             "trainer_state.json"};

pc_status pc_sync_dir(const char *dir, pc_error *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return pc_fail(err, PEFTC_ERR_IO, "cannot open directory %s to sync it: %s", dir, strerror(errno));
    int rc = fsync(fd), e = errno;
    close(fd);
    if (rc != 0 && e != EINVAL) return pc_fail(err, PEFTC_ERR_IO, "cannot sync directory %s: %s", dir, strerror(e));
    return PEFTC_OK;
}

void pc_checkpoint_test_pause(void)
{
    const char *v = getenv("PEFTC_TEST_SAVE_DELAY_US");
    long us = v ? strtol(v, NULL, 10) : 0;
    if (us <= 0) return;
    struct timespec ts = { us / 1000000, us % 1000000 * 1000 };
    nanosleep(&ts, NULL);
}

/* N when name is exactly "checkpoint-N", else -1. */
static long checkpoint_number(const char *name)
{
    if (strncmp(name, "checkpoint-", 11) != 0 || name[11] < '0' || name[11] > '9') return -1;
    char *end;
    long k = strtol(name + 11, &end, 10);
    return *end ? -1 : k;
}

pc_status pc_checkpoint_begin(const char *output_dir, long step, char *tmp, size_t n, pc_error *err)
{
    snprintf(tmp, n, "%s/.checkpoint-%ld.tmp-%d", output_dir, step, (int)getpid());
    PC_TRY(pc_remove_tree(tmp, err));
    return pc_mkdirs(tmp, err);
}

/* Moves an existing checkpoint-N aside under a name that is never read as a checkpoint, then deletes it. */
static void discard(const char *output_dir, const char *path, long step)
{
    char old[4300];
    snprintf(old, sizeof old, "%s/.checkpoint-%ld.old-%d", output_dir, step, (int)getpid());
    pc_remove_tree(old, NULL);
    if (rename(path, old) != 0) return;
    pc_sync_dir(output_dir, NULL);
    pc_remove_tree(old, NULL);
}

pc_status pc_checkpoint_commit(const char *output_dir, const char *tmp, long step, pc_error *err)
{
    char final[4200];
    snprintf(final, sizeof final, "%s/checkpoint-%ld", output_dir, step);
    PC_TRY(pc_sync_dir(tmp, err));   /* the files' names (each file was fsync'ed when written) */
    pc_checkpoint_test_pause();
    bool replaced = false;
    if (pc_path_exists(final)) {
        /* atomic swap: there is a complete checkpoint-N at every instant */
        replaced = renameat2(AT_FDCWD, tmp, AT_FDCWD, final, RENAME_EXCHANGE) == 0;
        if (!replaced) discard(output_dir, final, step);   /* file system without RENAME_EXCHANGE */
    }
    if (!replaced && rename(tmp, final) != 0)
        return pc_fail(err, PEFTC_ERR_IO, "cannot rename %s to %s: %s", tmp, final, strerror(errno));
    PC_TRY(pc_sync_dir(output_dir, err));
    if (replaced) pc_remove_tree(tmp, NULL);   /* now the previous checkpoint-N */
    return PEFTC_OK;
}

void pc_checkpoint_abandon(const char *tmp)
{
    pc_remove_tree(tmp, NULL);
}

static int by_number_descending(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x < y) - (x > y);
}

/* The numbers N of output_dir's checkpoint-N entries, newest first (malloc'ed; NULL when none). */
static long *list_checkpoints(const char *output_dir, int *count)
{
    *count = 0;
    DIR *d = opendir(output_dir);
    if (!d) return NULL;
    long *ks = NULL;
    int cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        long k = checkpoint_number(e->d_name);
        if (k < 0) continue;
        if (*count == cap) {
            long *grown = realloc(ks, sizeof *ks * (size_t)(cap = cap ? 2 * cap : 16));
            if (!grown) break;
            ks = grown;
        }
        ks[(*count)++] = k;
    }
    closedir(d);
    if (ks) qsort(ks, (size_t)*count, sizeof *ks, by_number_descending);
    return ks;
}

void pc_checkpoint_prune(const char *output_dir, long step, int limit)
{
    if (limit <= 0) return;
    int count;
    long *ks = list_checkpoints(output_dir, &count);
    for (int i = limit; i < count; i++) {
        if (ks[i] >= step) continue;
        char path[4200];
        snprintf(path, sizeof path, "%s/checkpoint-%ld", output_dir, ks[i]);
        discard(output_dir, path, ks[i]);
    }
    free(ks);
}

void pc_checkpoint_remove_leftovers(const char *output_dir)
{
    DIR *d = opendir(output_dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, ".checkpoint-", 12) != 0) continue;
        if (!strstr(e->d_name, ".tmp-") && !strstr(e->d_name, ".old-")) continue;
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", output_dir, e->d_name);
        pc_remove_tree(path, NULL);
    }
    closedir(d);
}

bool pc_checkpoint_complete(const char *dir)
{
    for (size_t i = 0; i < sizeof required_files / sizeof *required_files; i++) {
        char path[4300];
        snprintf(path, sizeof path, "%s/%s", dir, required_files[i]);
        if (!pc_path_exists(path)) return false;
    }
    return true;
}

pc_status pc_checkpoint_latest(const char *output_dir, char *out, size_t n, pc_error *err)
{
    if (!pc_path_exists(output_dir)) return pc_fail(err, PEFTC_ERR_IO, "resume_from_checkpoint: %s does not exist", output_dir);
    int count;
    long *ks = list_checkpoints(output_dir, &count);
    bool found = false;
    for (int i = 0; i < count && !found; i++) {
        snprintf(out, n, "%s/checkpoint-%ld", output_dir, ks[i]);
        found = pc_checkpoint_complete(out);
    }
    free(ks);
    if (!found) return pc_fail(err, PEFTC_ERR_INVALID, "resume_from_checkpoint: no complete checkpoint-N in %s", output_dir);
    return PEFTC_OK;
}
