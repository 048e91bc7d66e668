/* Small file-system helpers. */
#ifndef PC_BASE_FS_H
#define PC_BASE_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "base/error.h"

/* mkdir -p */
pc_status pc_mkdirs(const char *path, pc_error *err);
/* rm -r of a directory tree this program wrote (no symlinks followed). */
pc_status pc_remove_tree(const char *path, pc_error *err);
bool pc_path_exists(const char *path);
/* Reads a whole regular file of at most `limit` bytes into a malloc'ed, NUL-terminated buffer;
 * errors name the path. */
pc_status pc_read_file(const char *path, size_t limit, char **out, size_t *len, pc_error *err);

/* Copies a small file (e.g. tokenizer files into an output directory), atomically. */
pc_status pc_copy_file(const char *from, const char *to, pc_error *err);

/* Lets the kernel reclaim the whole pages inside [p, p + bytes): MADV_PAGEOUT, non-destructive (unlike
 * MADV_DONTNEED): a page of a mapped file is read again when touched, an anonymous one without swap stays. */
void pc_pages_offer(const void *p, size_t bytes);

/* write(2) as every file writer of the library calls it (a short count or -1 with errno, as write). */
ssize_t pc_fs_write(int fd, const void *buf, size_t n);
/* Test hook (disk-full simulation): after `bytes` more bytes, pc_fs_write fails with ENOSPC;
 * a negative value turns the hook off (the default). Not thread-safe; tests only. */
void pc_fs_fail_writes_after(long long bytes);

#endif
