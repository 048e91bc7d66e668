#include "train/dataset.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"
#include "text/unicode.h"

#define NO_COMPLETION SIZE_MAX

/* What the rows are read against, and the rows read so far. */
typedef struct pc_loader {
    const char *path, *text_column, *label_column;
    char *const *id2label;
    int num_labels;
    bool require_labels;
    const char *begin;      /* the file's text, for line and column numbers */
    char *bytes;            /* texts, each followed by a NUL */
    size_t len, cap;
    size_t *offsets;        /* start of each text in bytes */
    size_t *completions;    /* start of each completion in bytes, or NO_COMPLETION */
    bool lm;                /* causal LM rows: text_column, or prompt + completion */
    int32_t *labels;
    int n;
    size_t cap_rows;
} pc_loader;

/* ---- reading ------------------------------------------------------------ */

/* ---- rows --------------------------------------------------------------- */

static pc_status grow(void **p, size_t *cap, size_t need, size_t elem, pc_error *err)
{
    if (need <= *cap) return PEFTC_OK;
    size_t c = *cap ? *cap : 64;
    while (c < need) {
        if (c > SIZE_MAX / 2 / elem) return pc_fail(err, PEFTC_ERR_NOMEM, "dataset too large");
        c *= 2;
    }
    void *q = realloc(*p, c * elem);
    if (!q) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
    *p = q;
    *cap = c;
    return PEFTC_OK;
}

/* Appends one NUL-terminated, UTF-8-checked string to the text storage. */
static pc_status append_text(pc_loader *ld, const char *text, size_t len, const char *column, int line,
                             size_t *offset, pc_error *err)
{
    if (memchr(text, '\0', len))
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s:%d: NUL byte in column '%s'", ld->path, line, column);
    size_t bad = pc_utf8_invalid_at(text, len);
    if (bad < len)
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s:%d: invalid UTF-8 in column '%s' at byte %zu", ld->path,
                       line, column, bad);
    PC_TRY(grow((void **)&ld->bytes, &ld->cap, ld->len + len + 1, 1, err));
    memcpy(ld->bytes + ld->len, text, len);
    ld->bytes[ld->len + len] = '\0';
    *offset = ld->len;
    ld->len += len + 1;
    return PEFTC_OK;
}

static pc_status grow_rows(pc_loader *ld, pc_error *err)
{
    if ((size_t)ld->n < ld->cap_rows) return PEFTC_OK;
    size_t cap = ld->cap_rows ? 2 * ld->cap_rows : 1024;
    size_t *offsets = realloc(ld->offsets, cap * sizeof *offsets);
    if (offsets) ld->offsets = offsets;
    size_t *completions = offsets ? realloc(ld->completions, cap * sizeof *completions) : NULL;
    if (completions) ld->completions = completions;
    int32_t *labels = completions ? realloc(ld->labels, cap * sizeof *labels) : NULL;
    if (!labels) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
    ld->labels = labels;
    ld->cap_rows = cap;
    return PEFTC_OK;
}

/* A row: its text (or prompt), an optional completion (NULL), and its label (-1 for none). */
static pc_status add_row(pc_loader *ld, const char *text, size_t len, const char *completion, int32_t label,
                         int line, pc_error *err)
{
    if (ld->n == INT_MAX) return pc_fail(err, PEFTC_ERR_FORMAT, "%s: more than %d rows", ld->path, INT_MAX);
    PC_TRY(grow_rows(ld, err));
    const char *column = completion ? "prompt" : ld->text_column;
    PC_TRY(append_text(ld, text, len, column, line, &ld->offsets[ld->n], err));
    ld->completions[ld->n] = NO_COMPLETION;
    if (completion)
        PC_TRY(append_text(ld, completion, strlen(completion), "completion", line, &ld->completions[ld->n], err));
    ld->labels[ld->n] = label;
    ld->n++;
    return PEFTC_OK;
}

/* ---- labels ------------------------------------------------------------- */

/* names joined by ", " into buf, "..." when they do not fit. */
static void join_names(char *const *names, int n, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < n; i++) {
        int w = snprintf(buf + len, cap - len, "%s%s", i ? ", " : "", names[i]);
        if (w < 0 || (size_t)w >= cap - len) {
            snprintf(buf + (cap > 4 ? cap - 4 : 0), cap > 4 ? 4 : cap, "...");
            return;
        }
        len += (size_t)w;
    }
}

static pc_status check_label_id(const pc_loader *ld, double id, int line, int32_t *out, pc_error *err)
{
    if (id < 0 || id > INT32_MAX || (ld->num_labels > 0 && id >= ld->num_labels)) {
        if (ld->num_labels > 0)
            return pc_fail(err, PEFTC_ERR_FORMAT, "%s:%d: label %.0f out of range [0, %d)", ld->path, line,
                           id, ld->num_labels);
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s:%d: label %.0f is not a valid label id", ld->path, line, id);
    }
    *out = (int32_t)id;
    return PEFTC_OK;
}

/* A label written as text: a name in id2label, else a decimal id. */
static pc_status label_from_text(const pc_loader *ld, const char *s, int line, int32_t *out, pc_error *err)
{
    for (int i = 0; ld->id2label && i < ld->num_labels; i++)
        if (strcmp(s, ld->id2label[i]) == 0) { *out = i; return PEFTC_OK; }
    char *end;
    errno = 0;
    long long id = strtoll(s, &end, 10);
    if (s[0] && *end == '\0' && errno == 0 && (s[0] == '-' || (s[0] >= '0' && s[0] <= '9')))
        return check_label_id(ld, (double)id, line, out, err);
    if (!ld->id2label)
        return pc_fail(err, PEFTC_ERR_FORMAT,
                       "%s:%d: label '%s' is not an integer and no id2label was given to map it", ld->path,
                       line, s);
    char known[256];
    join_names(ld->id2label, ld->num_labels, known, sizeof known);
    return pc_fail(err, PEFTC_ERR_FORMAT, "%s:%d: unknown label '%s' (known: %s)", ld->path, line, s, known);
}

/* ---- JSON records ------------------------------------------------------- */

static void json_columns(const cJSON *obj, char *buf, size_t cap)
{
    char *names[64];
    int n = 0;
    for (const cJSON *it = obj->child; it && n < 64; it = it->next) names[n++] = it->string;
    join_names(names, n, buf, cap);
}

static pc_status fail_missing(const pc_loader *ld, const char *column, const char *columns, int line,
                              pc_error *err)
{
    return pc_fail(err, PEFTC_ERR_FORMAT, "%s:%d: missing column '%s' (columns: %s)", ld->path, line, column,
                   columns);
}

static pc_status json_label(const pc_loader *ld, const cJSON *obj, int line, int32_t *out, pc_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, ld->label_column);
    *out = -1;
    if (!v || cJSON_IsNull(v)) {
        if (!ld->require_labels) return PEFTC_OK;
        if (v)
            return pc_fail(err, PEFTC_ERR_FORMAT, "%s:%d: column '%s' is null", ld->path, line, ld->label_column);
        char columns[256];
        json_columns(obj, columns, sizeof columns);
        return fail_missing(ld, ld->label_column, columns, line, err);
    }
    if (cJSON_IsString(v)) return label_from_text(ld, v->valuestring, line, out, err);
    if (!cJSON_IsNumber(v))
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s:%d: column '%s' is %s, expected an integer or a string",
                       ld->path, line, ld->label_column, cJSON_IsBool(v) ? "a boolean" : "an array or object");
    if (v->valuedouble != floor(v->valuedouble))
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s:%d: label %g is not an integer", ld->path, line, v->valuedouble);
    return check_label_id(ld, v->valuedouble, line, out, err);
}

/* A causal-LM row with "prompt" and "completion" strings (TRL's prompt-completion format); *done = false
 * when the record has neither, so that the text column is read instead. */
static pc_status json_prompt_completion(pc_loader *ld, const cJSON *obj, int line, bool *done, pc_error *err)
{
    const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(obj, "prompt");
    const cJSON *completion = cJSON_GetObjectItemCaseSensitive(obj, "completion");
    *done = prompt || completion;
    if (!*done) return PEFTC_OK;
    if (!cJSON_IsString(prompt) || !cJSON_IsString(completion))
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s:%d: 'prompt' and 'completion' must both be strings", ld->path, line);
    return add_row(ld, prompt->valuestring, strlen(prompt->valuestring), completion->valuestring, -1, line, err);
}

static pc_status json_record(pc_loader *ld, const cJSON *obj, int line, pc_error *err)
{
    if (!cJSON_IsObject(obj))
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s:%d: record is not a JSON object", ld->path, line);
    if (ld->lm) {
        bool done;
        PC_TRY(json_prompt_completion(ld, obj, line, &done, err));
        if (done) return PEFTC_OK;
    }
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(obj, ld->text_column);
    if (!text) {
        char columns[256];
        json_columns(obj, columns, sizeof columns);
        return fail_missing(ld, ld->text_column, columns, line, err);
    }
    if (!cJSON_IsString(text))
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s:%d: column '%s' is not a string", ld->path, line,
                       ld->text_column);
    int32_t label = -1;
    if (!ld->lm) PC_TRY(json_label(ld, obj, line, &label, err));
    return add_row(ld, text->valuestring, strlen(text->valuestring), NULL, label, line, err);
}

static const char *skip_space(const char *p, const char *end, int *line)
{
    for (; p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'); p++) *line += *p == '\n';
    return p;
}

/* Parses the one JSON value at p (a record); *after is where it ended. */
static pc_status parse_value(pc_loader *ld, const char *p, const char *end, int line, const char **after,
                             pc_error *err)
{
    cJSON *v = cJSON_ParseWithLengthOpts(p, (size_t)(end - p), after, false);
    if (!v) {
        const char *at = *after && *after < end ? *after : p, *line_start = at;
        int at_line = line;
        if (skip_space(at + 1, end, &at_line) == end)  /* cJSON points at the last byte at the end of input */
            return pc_fail(err, PEFTC_ERR_FORMAT, "%s:%d: invalid JSON: the record is incomplete", ld->path, line);
        for (const char *q = p; q < at; q++) at_line += *q == '\n';
        while (line_start > ld->begin && line_start[-1] != '\n') line_start--;
        int col = (int)(at - line_start) + 1;
        if (at_line == line)
            return pc_fail(err, PEFTC_ERR_FORMAT, "%s:%d: invalid JSON at column %d", ld->path, line, col);
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s:%d: invalid JSON in this record (at line %d, column %d)",
                       ld->path, line, at_line, col);
    }
    pc_status s = json_record(ld, v, line, err);
    cJSON_Delete(v);
    return s;
}

/* JSON Lines: one record per line, blank lines skipped. */
static pc_status load_jsonl(pc_loader *ld, const char *p, const char *end, pc_error *err)
{
    for (int line = 1; p < end; line++) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        int ignored_line = line;
        const char *q = skip_space(p, eol, &ignored_line);
        if (q < eol) {
            const char *after;
            PC_TRY(parse_value(ld, q, eol, line, &after, err));
            const char *rest = skip_space(after, eol, &ignored_line);
            if (rest != eol)
                return pc_fail(err, PEFTC_ERR_FORMAT, "%s:%d: unexpected text after the record at column %d",
                               ld->path, line, (int)(rest - p) + 1);
        }
        p = eol + 1;
    }
    return PEFTC_OK;
}

/* A .json file holding one array of records. */
static pc_status load_json_array(pc_loader *ld, const char *p, const char *end, int line, pc_error *err)
{
    p = skip_space(p + 1, end, &line);  /* past '[' */
    if (p < end && *p == ']') return PEFTC_OK;
    for (;;) {
        const char *after;
        PC_TRY(parse_value(ld, p, end, line, &after, err));
        for (const char *q = p; q < after; q++) line += *q == '\n';
        p = skip_space(after, end, &line);
        if (p < end && *p == ',') { p = skip_space(p + 1, end, &line); continue; }
        if (p < end && *p == ']') break;
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s:%d: expected ',' or ']' in the JSON array", ld->path, line);
    }
    if (skip_space(p + 1, end, &line) != end)
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s:%d: unexpected text after the JSON array", ld->path, line);
    return PEFTC_OK;
}

static pc_status load_json(pc_loader *ld, const char *p, const char *end, pc_error *err)
{
    int line = 1;
    const char *first = skip_space(p, end, &line);
    if (first < end && *first == '[') return load_json_array(ld, first, end, line, err);
    return load_jsonl(ld, p, end, err);
}

/* ---- CSV records -------------------------------------------------------- */

/* The fields of one CSV record, unescaped, each NUL-terminated. */
typedef struct pc_csv_fields {
    char *buf;
    size_t len, cap;
    size_t *starts, *lens;
    size_t n, cap_fields;
} pc_csv_fields;

static pc_status csv_append(pc_csv_fields *f, const char *s, size_t n, pc_error *err)
{
    PC_TRY(grow((void **)&f->buf, &f->cap, f->len + n + 1, 1, err));
    memcpy(f->buf + f->len, s, n);
    f->len += n;
    return PEFTC_OK;
}

static pc_status csv_begin_field(pc_csv_fields *f, pc_error *err)
{
    if (f->n == f->cap_fields) {
        size_t cap = f->cap_fields ? 2 * f->cap_fields : 16;
        size_t *starts = realloc(f->starts, cap * sizeof *starts);
        if (starts) f->starts = starts;
        size_t *lens = starts ? realloc(f->lens, cap * sizeof *lens) : NULL;
        if (!lens) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
        f->lens = lens;
        f->cap_fields = cap;
    }
    f->starts[f->n] = f->len;
    return PEFTC_OK;
}

static pc_status csv_end_field(pc_csv_fields *f, pc_error *err)
{
    f->lens[f->n] = f->len - f->starts[f->n];
    f->n++;
    return csv_append(f, "", 1, err);
}

/* A quoted field at *pp (just past the opening quote): "" is one quote, anything
 * else up to the closing quote is kept, newlines included (*line counts them). */
static pc_status csv_quoted(const pc_loader *ld, const char **pp, const char *end, char delim, int *line,
                            int record_line, pc_csv_fields *f, pc_error *err)
{
    const char *p = *pp;
    for (;;) {
        const char *q = memchr(p, '"', (size_t)(end - p));
        if (!q)
            return pc_fail(err, PEFTC_ERR_FORMAT, "%s:%d: unterminated quoted field", ld->path, record_line);
        for (const char *c = p; c < q; c++) *line += *c == '\n';
        PC_TRY(csv_append(f, p, (size_t)(q - p), err));
        p = q + 1;
        if (p < end && *p == '"') { PC_TRY(csv_append(f, "\"", 1, err)); p++; continue; }
        break;
    }
    bool at_end = p == end || *p == delim || *p == '\n' || (*p == '\r' && (p + 1 == end || p[1] == '\n'));
    if (!at_end)
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s:%d: unexpected character after a closing quote", ld->path,
                       record_line);
    *pp = p;
    return PEFTC_OK;
}

/* Parses the record at *pp (RFC 4180) into f and moves *pp past its line end. */
static pc_status csv_record(const pc_loader *ld, const char **pp, const char *end, char delim, int *line,
                            pc_csv_fields *f, pc_error *err)
{
    const char *p = *pp;
    int record_line = *line;
    f->n = f->len = 0;
    for (;;) {
        PC_TRY(csv_begin_field(f, err));
        if (p < end && *p == '"') {
            p++;
            PC_TRY(csv_quoted(ld, &p, end, delim, line, record_line, f, err));
        } else {
            const char *q = p;
            while (q < end && *q != delim && *q != '\n') q++;
            const char *e = q;
            if (e > p && e[-1] == '\r' && (q == end || *q == '\n')) e--;
            PC_TRY(csv_append(f, p, (size_t)(e - p), err));
            p = q;
        }
        PC_TRY(csv_end_field(f, err));
        if (p < end && *p == delim) { p++; continue; }
        if (p < end && *p == '\r') p++;
        if (p < end && *p == '\n') { p++; (*line)++; }
        break;
    }
    *pp = p;
    return PEFTC_OK;
}

static const char *skip_blank_lines(const char *p, const char *end, int *line)
{
    for (;;) {
        const char *q = p < end && *p == '\r' ? p + 1 : p;
        if (q >= end || *q != '\n') return p;
        p = q + 1;
        (*line)++;
    }
}

static int column_index(const pc_csv_fields *header, const char *name)
{
    for (size_t i = 0; i < header->n; i++)
        if (strcmp(header->buf + header->starts[i], name) == 0) return (int)i;
    return -1;
}

static void csv_columns(const pc_csv_fields *header, char *buf, size_t cap)
{
    char *names[64];
    int n = 0;
    for (size_t i = 0; i < header->n && n < 64; i++) names[n++] = header->buf + header->starts[i];
    join_names(names, n, buf, cap);
}

static pc_status csv_row(pc_loader *ld, const pc_csv_fields *row, const pc_csv_fields *header, int text_col,
                         int label_col, int line, pc_error *err)
{
    if (row->n != header->n) {
        char columns[256];
        csv_columns(header, columns, sizeof columns);
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s:%d: %zu field%s, expected %zu (columns: %s)", ld->path,
                       line, row->n, row->n == 1 ? "" : "s", header->n, columns);
    }
    int32_t label = -1;
    if (label_col >= 0) {
        const char *s = row->buf + row->starts[label_col];
        if (s[0]) PC_TRY(label_from_text(ld, s, line, &label, err));
        else if (ld->require_labels)
            return pc_fail(err, PEFTC_ERR_FORMAT, "%s:%d: empty value in column '%s'", ld->path, line,
                           ld->label_column);
    }
    return add_row(ld, row->buf + row->starts[text_col], row->lens[text_col], NULL, label, line, err);
}

static pc_status load_csv_rows(pc_loader *ld, const char *p, const char *end, char delim, pc_csv_fields *header,
                               pc_csv_fields *row, pc_error *err)
{
    int line = 1;
    p = skip_blank_lines(p, end, &line);
    if (p == end) return PEFTC_OK;
    int header_line = line;
    PC_TRY(csv_record(ld, &p, end, delim, &line, header, err));
    char columns[256];
    csv_columns(header, columns, sizeof columns);
    int text_col = column_index(header, ld->text_column);
    if (text_col < 0) return fail_missing(ld, ld->text_column, columns, header_line, err);
    int label_col = column_index(header, ld->label_column);
    if (label_col < 0 && ld->require_labels) return fail_missing(ld, ld->label_column, columns, header_line, err);
    for (;;) {
        p = skip_blank_lines(p, end, &line);
        if (p == end) return PEFTC_OK;
        int record_line = line;
        PC_TRY(csv_record(ld, &p, end, delim, &line, row, err));
        PC_TRY(csv_row(ld, row, header, text_col, label_col, record_line, err));
    }
}

static void csv_fields_free(pc_csv_fields *f)
{
    free(f->buf);
    free(f->starts);
    free(f->lens);
}

static pc_status load_csv(pc_loader *ld, const char *p, const char *end, char delim, pc_error *err)
{
    pc_csv_fields header = {0}, row = {0};
    pc_status s = load_csv_rows(ld, p, end, delim, &header, &row, err);
    csv_fields_free(&header);
    csv_fields_free(&row);
    return s;
}

/* ---- the dataset -------------------------------------------------------- */

typedef enum { FMT_JSON, FMT_CSV, FMT_TSV, FMT_UNKNOWN } pc_data_format;

static pc_data_format format_of(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (!dot || strchr(dot, '/')) return FMT_UNKNOWN;
    if (strcasecmp(dot, ".jsonl") == 0 || strcasecmp(dot, ".json") == 0) return FMT_JSON;
    if (strcasecmp(dot, ".csv") == 0) return FMT_CSV;
    if (strcasecmp(dot, ".tsv") == 0) return FMT_TSV;
    return FMT_UNKNOWN;
}

/* Moves the rows of ld into a new dataset. */
static pc_status finish(pc_loader *ld, pc_dataset **out, pc_error *err)
{
    if (ld->n == 0) return pc_fail(err, PEFTC_ERR_FORMAT, "%s: no records", ld->path);
    pc_dataset *ds = calloc(1, sizeof *ds);
    if (ds) ds->texts = malloc((size_t)ld->n * sizeof *ds->texts);
    if (ds) ds->path = strdup(ld->path);
    if (!ds || !ds->texts || !ds->path) {
        pc_dataset_free(ds);
        return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
    }
    bool any_completion = false;
    for (int i = 0; i < ld->n; i++) {
        ds->texts[i] = ld->bytes + ld->offsets[i];
        any_completion |= ld->completions[i] != NO_COMPLETION;
    }
    if (any_completion && !(ds->completions = calloc((size_t)ld->n, sizeof *ds->completions))) {
        pc_dataset_free(ds);
        return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; any_completion && i < ld->n; i++)
        if (ld->completions[i] != NO_COMPLETION) ds->completions[i] = ld->bytes + ld->completions[i];
    ds->n = ld->n;
    ds->labels = ld->labels;
    ds->storage = ld->bytes;
    ld->labels = NULL;
    ld->bytes = NULL;
    *out = ds;
    return PEFTC_OK;
}

static pc_status load_text(pc_loader *ld, pc_data_format fmt, const char *text, size_t len, pc_error *err)
{
    const char *p = text, *end = text + len;
    if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) p += 3;  /* UTF-8 byte order mark */
    ld->begin = p;
    if (fmt == FMT_JSON) return load_json(ld, p, end, err);
    return load_csv(ld, p, end, fmt == FMT_CSV ? ',' : '\t', err);
}

static pc_status load_file(pc_loader *ld, pc_dataset **out, pc_error *err)
{
    const char *path = ld->path;
    *out = NULL;
    pc_data_format fmt = format_of(path);
    if (fmt == FMT_UNKNOWN)
        return pc_fail(err, PEFTC_ERR_UNSUPPORTED,
                       "%s: unknown dataset format (the name must end in .jsonl, .json, .csv or .tsv)", path);
    char *text = NULL;
    size_t len = 0;
    PC_TRY(pc_read_file(path, (size_t)1 << 40, &text, &len, err));
    pc_status s = load_text(ld, fmt, text, len, err);
    if (s == PEFTC_OK) s = finish(ld, out, err);
    free(text);
    free(ld->bytes);
    free(ld->offsets);
    free(ld->completions);
    free(ld->labels);
    return s;
}

pc_status pc_dataset_load(const char *path, const char *text_column, const char *label_column,
                          char *const *id2label, int num_labels, bool require_labels,
                          pc_dataset **out, pc_error *err)
{
    pc_loader ld = {.path = path, .text_column = text_column, .label_column = label_column,
                    .id2label = id2label, .num_labels = num_labels, .require_labels = require_labels};
    return load_file(&ld, out, err);
}

pc_status pc_lm_dataset_load(const char *path, const char *text_column, pc_dataset **out, pc_error *err)
{
    pc_loader ld = {.path = path, .text_column = text_column, .label_column = "", .lm = true};
    return load_file(&ld, out, err);
}

void pc_dataset_free(pc_dataset *ds)
{
    if (!ds) return;
    free(ds->texts);
    free(ds->completions);
    free(ds->labels);
    free(ds->path);
    free(ds->storage);
    free(ds);
}
