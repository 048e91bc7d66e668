/* Labelled text rows from a JSON Lines or CSV/TSV file, as Hugging Face
 * datasets' "json" and "csv" builders read them. Texts stay UTF-8 bytes
 * (validated); labels become ids. Errors name the file and the line where the
 * record starts. */
#ifndef PC_TRAIN_DATASET_H
#define PC_TRAIN_DATASET_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"

typedef struct pc_dataset {
    int n;
    char **texts;       /* n NUL-terminated UTF-8 texts; they point into storage */
    int32_t *labels;    /* n label ids; -1 where a row has no label (or the file no label column) */
    char **completions; /* NULL, or per row the completion of a prompt/completion row (NULL for text rows) */
    char *path;
    char *storage;      /* owns the bytes of all texts */
} pc_dataset;

/* Format from the extension: .jsonl or .json -> one JSON object per line (a .json
 * file holding one top-level array of objects is read too); .csv -> RFC 4180 with
 * a header row; .tsv -> the same with tabs. Empty lines are skipped, a UTF-8 BOM
 * at the start and CRLF line ends are accepted.
 * A label is an integer in [0, num_labels), a string naming one in id2label
 * (id2label may be NULL), or such an integer written as a string (CSV fields
 * always are). num_labels <= 0 leaves integer labels unchecked (but >= 0).
 * require_labels: a row without a label is an error. */
pc_status pc_dataset_load(const char *path, const char *text_column, const char *label_column,
                          char *const *id2label, int num_labels, bool require_labels,
                          pc_dataset **out, pc_error *err);

/* Causal-LM rows from JSON lines (or CSV/TSV text_column): each row is either {text_column: "..."}
 * (plain LM) or {"prompt": "...", "completion": "..."} (texts[i] = prompt, completions[i] = completion). */
pc_status pc_lm_dataset_load(const char *path, const char *text_column, pc_dataset **out, pc_error *err);

void pc_dataset_free(pc_dataset *ds);

#endif
