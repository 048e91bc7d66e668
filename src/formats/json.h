/* JSON helpers over cJSON: parsing with "file:line:col" error messages, typed
 * getters that name the key at fault, duplicate-key detection, and atomic
 * file writes (temp file + fsync + rename) shared by every writer in formats/. */
#ifndef PC_FORMATS_JSON_H
#define PC_FORMATS_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include <cJSON.h>

#include "base/error.h"

/* Largest file pc_json_parse_file accepts. */
#define PC_JSON_MAX_FILE_BYTES ((size_t)512 << 20)

/* Reads and parses a whole JSON file. On a syntax error the message is
 * "PATH:LINE:COL: invalid JSON near '...'". The caller frees *out with cJSON_Delete. */
pc_status pc_json_parse_file(const char *path, cJSON **out, pc_error *err);

/* Parses len bytes of text (need not be NUL-terminated). `what` names the
 * source in messages (a path, or e.g. "model.safetensors header"). Trailing
 * non-whitespace and embedded NUL bytes are errors. */
pc_status pc_json_parse_text(const char *text, size_t len, const char *what, cJSON **out, pc_error *err);

/* Typed getters on an object. An absent key, or a key whose value is null
 * (Python's None), yields dflt; a present key of the wrong type fails with
 * "WHAT: key 'k' must be an integer, got a string". The string returned by
 * pc_json_get_string is owned by obj. */
pc_status pc_json_get_int(const cJSON *obj, const char *key, long long dflt, long long *out,
                          const char *what, pc_error *err);
pc_status pc_json_get_double(const cJSON *obj, const char *key, double dflt, double *out,
                             const char *what, pc_error *err);
pc_status pc_json_get_bool(const cJSON *obj, const char *key, bool dflt, bool *out,
                           const char *what, pc_error *err);
pc_status pc_json_get_string(const cJSON *obj, const char *key, const char *dflt, const char **out,
                             const char *what, pc_error *err);

/* Whether item is a number with an integral value in int32_t's range (such a value converts
 * to int without undefined behaviour). */
bool pc_json_is_int32(const cJSON *item);

/* Short name of a value's JSON type ("a string", "an object", ...) for messages. */
const char *pc_json_type_name(const cJSON *item);

/* cJSON keeps duplicate keys (and getters return the first). This fails with
 * "WHAT: duplicate key 'k' in object 'a.b'" if any object in the tree repeats a key. */
pc_status pc_json_check_no_duplicates(const cJSON *root, const char *what, pc_error *err);

/* Writes obj to path atomically; pretty = two-space indentation, else compact.
 * A trailing newline is added. */
pc_status pc_json_write_file_atomic(const char *path, const cJSON *obj, bool pretty, pc_error *err);

/* One piece of a file written by pc_write_file_atomic_parts. */
typedef struct pc_write_part {
    const void *data;
    size_t n;
} pc_write_part;

/* Writes the concatenation of parts to "path.tmp.<pid>", fsyncs it and renames
 * it over path. On any failure the temp file is removed and path is untouched. */
pc_status pc_write_file_atomic_parts(const char *path, const pc_write_part *parts, int nparts, pc_error *err);

/* Same for one buffer. */
pc_status pc_write_file_atomic(const char *path, const void *data, size_t n, pc_error *err);

#endif
