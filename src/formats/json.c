#include "formats/json.h"

#include "base/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <utf8proc.h>

/* Largest integer magnitude a JSON number (a double in cJSON) holds exactly. */
#define PC_JSON_MAX_EXACT_INT 9007199254740992.0 /* 2^53 */

/* ---- reading and parsing ---------------------------------------------- */

/* 1-based line and byte column of offset pos in text. */
static void line_col(const char *text, size_t pos, int *line, int *col)
{
    size_t line_start = 0;
    *line = 1;
    for (size_t i = 0; i < pos; i++)
        if (text[i] == '\n') { (*line)++; line_start = i + 1; }
    *col = (int)(pos - line_start) + 1;
}

/* Copies up to 20 bytes of text at pos into snip for a message: stops at a
 * newline, never cuts a UTF-8 sequence, and shows control bytes as '?'. */
static void error_snippet(const char *text, size_t len, size_t pos, char *snip, size_t cap)
{
    size_t n = 0;
    while (pos + n < len && n < 20 && n + 1 < cap && text[pos + n] != '\n') n++;
    while (n > 0 && pos + n < len && ((unsigned char)text[pos + n] & 0xC0) == 0x80) n--;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)text[pos + i];
        snip[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    snip[n] = '\0';
}

static pc_status syntax_error(const char *what, const char *text, size_t len, size_t pos, pc_error *err)
{
    int line, col;
    if (pos > len) pos = len;
    line_col(text, pos, &line, &col);
    char snip[32];
    error_snippet(text, len, pos, snip, sizeof snip);
    if (!snip[0])
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s:%d:%d: invalid JSON: unexpected end of input", what, line, col);
    return pc_fail(err, PEFTC_ERR_FORMAT, "%s:%d:%d: invalid JSON near '%s'", what, line, col, snip);
}

/* Offset of the first invalid UTF-8 sequence in text[0..len), or len. */
static size_t invalid_utf8_at(const char *text, size_t len)
{
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)text;
    size_t i = 0;
    while (i < len) {
        if (p[i] < 0x80) { i++; continue; }
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(p + i, (utf8proc_ssize_t)(len - i), &cp);
        if (k <= 0) return i;
        i += (size_t)k;
    }
    return len;
}

pc_status pc_json_parse_text(const char *text, size_t len, const char *what, cJSON **out, pc_error *err)
{
    *out = NULL;
    const char *nul = memchr(text, '\0', len);
    if (nul) {
        int line, col;
        line_col(text, (size_t)(nul - text), &line, &col);
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s:%d:%d: invalid JSON: NUL byte in text", what, line, col);
    }
    size_t bad = invalid_utf8_at(text, len);
    if (bad < len) {   /* JSON text is UTF-8 (RFC 8259); Python's json.load refuses anything else */
        int line, col;
        line_col(text, bad, &line, &col);
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s:%d:%d: invalid UTF-8", what, line, col);
    }
    /* cJSON wants the terminating NUL inside buffer_length to reject trailing garbage. */
    char *buf = malloc(len + 1);
    if (!buf) return pc_fail(err, PEFTC_ERR_NOMEM, "%s: cannot allocate %zu bytes for JSON text", what, len + 1);
    memcpy(buf, text, len);
    buf[len] = '\0';
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, len + 1, &end, 1);
    pc_status s = PEFTC_OK;
    if (!root) s = syntax_error(what, buf, len, end ? (size_t)(end - buf) : 0, err);
    free(buf);
    *out = root;
    return s;
}

pc_status pc_json_parse_file(const char *path, cJSON **out, pc_error *err)
{
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    PC_TRY(pc_read_file(path, PC_JSON_MAX_FILE_BYTES, &text, &len, err));
    if (len == 0) {
        free(text);
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: file is empty, expected JSON", path);
    }
    pc_status s = pc_json_parse_text(text, len, path, out, err);
    free(text);
    return s;
}

/* ---- typed getters ------------------------------------------------------ */

const char *pc_json_type_name(const cJSON *item)
{
    if (!item) return "nothing";
    if (cJSON_IsBool(item)) return "a boolean";
    if (cJSON_IsNull(item)) return "null";
    if (cJSON_IsNumber(item)) return "a number";
    if (cJSON_IsString(item)) return "a string";
    if (cJSON_IsArray(item)) return "an array";
    if (cJSON_IsObject(item)) return "an object";
    return "an invalid value";
}

/* *item = the value of key, or NULL when absent or null. */
static pc_status lookup(const cJSON *obj, const char *key, const char *what, const cJSON **item, pc_error *err)
{
    *item = NULL;
    if (!cJSON_IsObject(obj))
        return pc_fail(err, PEFTC_ERR_INVALID, "%s: expected an object holding key '%s', got %s",
                       what, key, pc_json_type_name(obj));
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (it && !cJSON_IsNull(it)) *item = it;
    return PEFTC_OK;
}

static pc_status wrong_type(const char *what, const char *key, const char *expected, const cJSON *it, pc_error *err)
{
    return pc_fail(err, PEFTC_ERR_INVALID, "%s: key '%s' must be %s, got %s", what, key, expected, pc_json_type_name(it));
}

pc_status pc_json_get_int(const cJSON *obj, const char *key, long long dflt, long long *out,
                          const char *what, pc_error *err)
{
    const cJSON *it;
    PC_TRY(lookup(obj, key, what, &it, err));
    if (!it) { *out = dflt; return PEFTC_OK; }
    if (!cJSON_IsNumber(it)) return wrong_type(what, key, "an integer", it, err);
    double v = it->valuedouble;
    if (v != floor(v))
        return pc_fail(err, PEFTC_ERR_INVALID, "%s: key '%s' must be an integer, got %.17g", what, key, v);
    if (fabs(v) > PC_JSON_MAX_EXACT_INT)
        return pc_fail(err, PEFTC_ERR_INVALID, "%s: key '%s' = %.17g is out of range (|value| > 2^53)", what, key, v);
    *out = (long long)v;
    return PEFTC_OK;
}

bool pc_json_is_int32(const cJSON *item)
{
    if (!cJSON_IsNumber(item)) return false;
    double v = item->valuedouble;
    return v == floor(v) && v >= (double)INT32_MIN && v <= (double)INT32_MAX;
}

pc_status pc_json_get_double(const cJSON *obj, const char *key, double dflt, double *out,
                             const char *what, pc_error *err)
{
    const cJSON *it;
    PC_TRY(lookup(obj, key, what, &it, err));
    if (!it) { *out = dflt; return PEFTC_OK; }
    if (!cJSON_IsNumber(it)) return wrong_type(what, key, "a number", it, err);
    if (!isfinite(it->valuedouble))
        return pc_fail(err, PEFTC_ERR_INVALID, "%s: key '%s' must be a finite number", what, key);
    *out = it->valuedouble;
    return PEFTC_OK;
}

pc_status pc_json_get_bool(const cJSON *obj, const char *key, bool dflt, bool *out,
                           const char *what, pc_error *err)
{
    const cJSON *it;
    PC_TRY(lookup(obj, key, what, &it, err));
    if (!it) { *out = dflt; return PEFTC_OK; }
    if (!cJSON_IsBool(it)) return wrong_type(what, key, "true or false", it, err);
    *out = cJSON_IsTrue(it);
    return PEFTC_OK;
}

pc_status pc_json_get_string(const cJSON *obj, const char *key, const char *dflt, const char **out,
                             const char *what, pc_error *err)
{
    const cJSON *it;
    PC_TRY(lookup(obj, key, what, &it, err));
    if (!it) { *out = dflt; return PEFTC_OK; }
    if (!cJSON_IsString(it)) return wrong_type(what, key, "a string", it, err);
    *out = it->valuestring;
    return PEFTC_OK;
}

/* ---- duplicate keys ----------------------------------------------------- */

static int cmp_key(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorts the keys of one object and looks for equal neighbours. */
static pc_status check_object_keys(const cJSON *obj, const char *path, const char *what, pc_error *err)
{
    int n = cJSON_GetArraySize(obj);
    if (n < 2) return PEFTC_OK;
    const char **keys = malloc((size_t)n * sizeof *keys);
    if (!keys) return pc_fail(err, PEFTC_ERR_NOMEM, "%s: cannot allocate a key list of %d entries", what, n);
    int k = 0;
    for (const cJSON *c = obj->child; c; c = c->next)
        if (c->string) keys[k++] = c->string;
    qsort(keys, (size_t)k, sizeof *keys, cmp_key);
    pc_status s = PEFTC_OK;
    for (int i = 1; i < k && s == PEFTC_OK; i++)
        if (strcmp(keys[i - 1], keys[i]) == 0) {
            if (path[0]) s = pc_fail(err, PEFTC_ERR_FORMAT, "%s: duplicate key '%s' in object '%s'", what, keys[i], path);
            else s = pc_fail(err, PEFTC_ERR_FORMAT, "%s: duplicate key '%s' in the top-level object", what, keys[i]);
        }
    free(keys);
    return s;
}

/* Depth-first walk; path holds the dotted location of node ("a.b[3]"),
 * truncated when it does not fit. cJSON limits nesting to 1000 levels. */
static pc_status check_dups(const cJSON *node, char *path, size_t len, size_t cap, const char *what, pc_error *err)
{
    if (cJSON_IsObject(node)) PC_TRY(check_object_keys(node, path, what, err));
    if (!cJSON_IsObject(node) && !cJSON_IsArray(node)) return PEFTC_OK;
    int index = 0;
    for (const cJSON *c = node->child; c; c = c->next, index++) {
        int w;
        if (cJSON_IsArray(node)) w = snprintf(path + len, cap - len, "[%d]", index);
        else w = snprintf(path + len, cap - len, "%s%s", len ? "." : "", c->string ? c->string : "");
        size_t child_len = (w < 0 || (size_t)w >= cap - len) ? cap - 1 : len + (size_t)w;
        pc_status s = check_dups(c, path, child_len, cap, what, err);
        path[len] = '\0';
        if (s != PEFTC_OK) return s;
    }
    return PEFTC_OK;
}

pc_status pc_json_check_no_duplicates(const cJSON *root, const char *what, pc_error *err)
{
    char path[256] = "";
    return check_dups(root, path, 0, sizeof path, what, err);
}

/* ---- atomic writes ------------------------------------------------------ */

static pc_status write_all(int fd, const pc_write_part *parts, int nparts, const char *path, pc_error *err)
{
    for (int i = 0; i < nparts; i++) {
        const char *p = parts[i].data;
        size_t left = parts[i].n;
        if (left > 0 && !p)
            return pc_fail(err, PEFTC_ERR_INVALID, "%s: part %d has %zu bytes but no data", path, i, left);
        while (left > 0) {
            size_t chunk = left < ((size_t)1 << 30) ? left : ((size_t)1 << 30);
            ssize_t w = pc_fs_write(fd, p, chunk);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) return pc_fail(err, PEFTC_ERR_IO, "%s: write failed: %s", path, w < 0 ? strerror(errno) : "no progress");
            p += w;
            left -= (size_t)w;
        }
    }
    return PEFTC_OK;
}

/* Makes the rename durable. Best effort: the new file is already in place,
 * and some file systems refuse to fsync a directory. */
static void sync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    (void)fsync(fd);
    close(fd);
}

pc_status pc_write_file_atomic_parts(const char *path, const pc_write_part *parts, int nparts, pc_error *err)
{
    size_t cap = strlen(path) + 32;
    char *tmp = malloc(cap);
    if (!tmp) return pc_fail(err, PEFTC_ERR_NOMEM, "%s: cannot allocate a temporary file name", path);
    snprintf(tmp, cap, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        pc_status s = pc_fail(err, PEFTC_ERR_IO, "%s: cannot create temporary file '%s': %s", path, tmp, strerror(errno));
        free(tmp);
        return s;
    }
    pc_status s = write_all(fd, parts, nparts, path, err);
    if (s == PEFTC_OK && fsync(fd) != 0)
        s = pc_fail(err, PEFTC_ERR_IO, "%s: fsync failed: %s", path, strerror(errno));
    if (close(fd) != 0 && s == PEFTC_OK)
        s = pc_fail(err, PEFTC_ERR_IO, "%s: close failed: %s", path, strerror(errno));
    if (s == PEFTC_OK && rename(tmp, path) != 0)
        s = pc_fail(err, PEFTC_ERR_IO, "%s: cannot rename '%s' into place: %s", path, tmp, strerror(errno));
    if (s == PEFTC_OK) sync_parent_dir(path);
    else unlink(tmp);
    free(tmp);
    return s;
}

pc_status pc_write_file_atomic(const char *path, const void *data, size_t n, pc_error *err)
{
    pc_write_part part = { data, n };
    return pc_write_file_atomic_parts(path, &part, 1, err);
}

/* cJSON_Print indents with tabs and writes "key":<tab>value; raw tabs never
 * occur inside its strings (they are escaped), so every tab is formatting.
 * Rewrites them as two-space indentation and "key": value, adding a final newline. */
static char *reindent(const char *text)
{
    size_t tabs = 0, len = strlen(text);
    for (size_t i = 0; i < len; i++) tabs += text[i] == '\t';
    char *out = malloc(len + tabs + 2);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] != '\t') out[o++] = text[i];
        else if (o > 0 && out[o - 1] == ':') out[o++] = ' ';
        else { out[o++] = ' '; out[o++] = ' '; }
    }
    out[o++] = '\n';
    out[o] = '\0';
    return out;
}

pc_status pc_json_write_file_atomic(const char *path, const cJSON *obj, bool pretty, pc_error *err)
{
    char *raw = pretty ? cJSON_Print(obj) : cJSON_PrintUnformatted(obj);
    if (!raw) return pc_fail(err, PEFTC_ERR_NOMEM, "%s: cannot serialize JSON (out of memory or invalid item)", path);
    char *text = pretty ? reindent(raw) : raw;
    if (!text) {
        cJSON_free(raw);
        return pc_fail(err, PEFTC_ERR_NOMEM, "%s: cannot allocate the JSON text", path);
    }
    size_t n = strlen(text);
    pc_write_part parts[2] = { { text, n }, { "\n", 1 } };
    pc_status s = pc_write_file_atomic_parts(path, parts, pretty ? 1 : 2, err);
    if (text != raw) free(text);
    cJSON_free(raw);
    return s;
}
