/* output_dir/checkpoint-N/ directories, safe against a kill -9 or a power cut at any moment:
 * a checkpoint is written under a temporary name (.checkpoint-N.tmp-PID), every file fsync'ed,
 * the directory fsync'ed, then renamed into place and output_dir fsync'ed. A checkpoint-N
 * that exists is therefore complete; old ones are pruned only after the new one is in place,
 * and are renamed away (.checkpoint-N.old-PID) before they are deleted, so a half-deleted
 * directory never carries a checkpoint name. Leftover dot-names are removed at the next run. */
#ifndef PC_TRAIN_CHECKPOINTS_H
#define PC_TRAIN_CHECKPOINTS_H

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"

/* Creates the (empty) temporary directory for checkpoint `step` and puts its path in tmp. */
pc_status pc_checkpoint_begin(const char *output_dir, long step, char *tmp, size_t n, pc_error *err);
/* Publishes a fully written temporary directory as output_dir/checkpoint-<step>; an existing one of
 * that step is swapped out atomically (renameat2 RENAME_EXCHANGE) and then deleted. */
pc_status pc_checkpoint_commit(const char *output_dir, const char *tmp, long step, pc_error *err);
/* Drops a temporary directory after a failed save. */
void pc_checkpoint_abandon(const char *tmp);
/* save_total_limit: deletes checkpoint-K for K < step beyond the `limit` newest (limit <= 0: none). */
void pc_checkpoint_prune(const char *output_dir, long step, int limit);
/* Removes temporary and half-deleted checkpoint directories a killed run left in output_dir. */
void pc_checkpoint_remove_leftovers(const char *output_dir);

/* True when dir holds every file a resumable checkpoint needs. */
bool pc_checkpoint_complete(const char *dir);
/* The newest complete output_dir/checkpoint-N (resume_from_checkpoint: true). */
pc_status pc_checkpoint_latest(const char *output_dir, char *out, size_t n, pc_error *err);

/* fsync of a directory, so that the names created or renamed in it survive a power cut.
 * File systems that cannot sync a directory (EINVAL) are accepted. */
pc_status pc_sync_dir(const char *dir, pc_error *err);

/* TEST ONLY: sleeps PEFTC_TEST_SAVE_DELAY_US microseconds when that environment variable is set, so
 * that the kill -9 test (tests/test_kill.c) lands its kills inside saves. Called between the files of
 * a checkpoint and before its rename; no effect when the variable is unset. */
void pc_checkpoint_test_pause(void);

#endif
