/* Small file-system helpers. */
#ifndef PC_BASE_FS_H
#define PC_BASE_FS_H

#include <stdbool.h>

#include "base/error.h"

/* mkdir -p */
pc_status pc_mkdirs(const char *path, pc_error *err);
/* rm -r of a directory tree this program wrote (no symlinks followed). */
pc_status pc_remove_tree(const char *path, pc_error *err);
bool pc_path_exists(const char *path);
/* Copies a small file (e.g. tokenizer files into an output directory), atomically. */
pc_status pc_copy_file(const char *from, const char *to, pc_error *err);

#endif
