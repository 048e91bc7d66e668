#include "formats/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <utf8proc.h>

#include "formats/json.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; this reader assumes a little-endian host"
#endif

/* Largest integer a JSON number holds exactly; offsets and dims must fit. */
#define PC_ST_MAX_JSON_INT 9007199254740992.0 /* 2^53 */

static const struct { const char *name; size_t size; } dtype_info[PC_DT_COUNT] = {
    [PC_DT_BOOL] = { "BOOL", 1 }, [PC_DT_U8] = { "U8", 1 },    [PC_DT_I8] = { "I8", 1 },
    [PC_DT_I16] = { "I16", 2 },   [PC_DT_U16] = { "U16", 2 },  [PC_DT_F16] = { "F16", 2 },
    [PC_DT_BF16] = { "BF16", 2 }, [PC_DT_I32] = { "I32", 4 },  [PC_DT_U32] = { "U32", 4 },
    [PC_DT_F32] = { "F32", 4 },   [PC_DT_F64] = { "F64", 8 },  [PC_DT_I64] = { "I64", 8 },
    [PC_DT_U64] = { "U64", 8 },
};

/* Valid safetensors dtypes that peftc does not handle. */
static const char *const unsupported_dtypes[] = {
    "F4", "F6_E2M3", "F6_E3M2", "F8_E5M2", "F8_E4M3", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "C64",
};

const char *pc_dtype_name(pc_dtype dt)
{
    return (unsigned)dt < PC_DT_COUNT ? dtype_info[dt].name : "?";
}

size_t pc_dtype_size(pc_dtype dt)
{
    return (unsigned)dt < PC_DT_COUNT ? dtype_info[dt].size : 0;
}

typedef struct {
    char *path;
    void *map;
    size_t size;
} st_file;

struct pc_safetensors {
    st_file *files;
    int nfiles;
    pc_st_tensor *tensors; /* names are owned (malloc'ed) */
    int ntensors, cap_tensors;
    const pc_st_tensor **by_name; /* sorted by name, for pc_st_find */
    cJSON *metadata;
};

/* ---- small helpers ------------------------------------------------------ */

static bool valid_utf8(const char *s, size_t n, size_t *bad)
{
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
    size_t i = 0;
    while (i < n) {
        if (p[i] < 0x80) { i++; continue; }
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(p + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0) { *bad = i; return false; }
        i += (size_t)k;
    }
    return true;
}

/* A JSON number that is an integer in [0, 2^53]. */
static bool json_uint(const cJSON *it, uint64_t *out)
{
    if (!cJSON_IsNumber(it)) return false;
    double v = it->valuedouble;
    if (!(v >= 0 && v <= PC_ST_MAX_JSON_INT) || v != (double)(uint64_t)v) return false;
    *out = (uint64_t)v;
    return true;
}

/* a *= b; false on overflow. */
static bool mul_ok(uint64_t *a, uint64_t b)
{
    if (b != 0 && *a > UINT64_MAX / b) return false;
    *a *= b;
    return true;
}

static void format_shape(int ndim, const int64_t *shape, char *buf, size_t cap)
{
    size_t len = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (len < cap) snprintf(buf + len, cap - len, "]");
}

static char *join_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* ---- header validation -------------------------------------------------- */

static pc_status check_metadata(const cJSON *meta, const char *where, pc_status code, pc_error *err)
{
    if (!cJSON_IsObject(meta))
        return pc_fail(err, code, "%s: __metadata__ must be an object of strings, got %s", where, pc_json_type_name(meta));
    for (const cJSON *c = meta->child; c; c = c->next)
        if (!cJSON_IsString(c))
            return pc_fail(err, code, "%s: __metadata__ key '%s' must hold a string, got %s",
                           where, c->string, pc_json_type_name(c));
    return PEFTC_OK;
}

static pc_status parse_dtype(const char *path, const char *tname, const cJSON *it, pc_dtype *out, pc_error *err)
{
    if (!cJSON_IsString(it))
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: tensor '%s': 'dtype' must be a string, got %s",
                       path, tname, pc_json_type_name(it));
    for (int d = 0; d < PC_DT_COUNT; d++)
        if (strcmp(it->valuestring, dtype_info[d].name) == 0) { *out = (pc_dtype)d; return PEFTC_OK; }
    for (size_t i = 0; i < sizeof unsupported_dtypes / sizeof *unsupported_dtypes; i++)
        if (strcmp(it->valuestring, unsupported_dtypes[i]) == 0)
            return pc_fail(err, PEFTC_ERR_UNSUPPORTED, "%s: tensor '%s': dtype %s is not supported",
                           path, tname, it->valuestring);
    return pc_fail(err, PEFTC_ERR_FORMAT, "%s: tensor '%s': unknown dtype '%s'", path, tname, it->valuestring);
}

static pc_status parse_shape(const char *path, const char *tname, const cJSON *it, pc_st_tensor *t, pc_error *err)
{
    if (!cJSON_IsArray(it))
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: tensor '%s': 'shape' must be an array, got %s",
                       path, tname, pc_json_type_name(it));
    int ndim = cJSON_GetArraySize(it);
    if (ndim > PC_MAX_DIMS)
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: tensor '%s' has %d dimensions, at most %d are supported",
                       path, tname, ndim, PC_MAX_DIMS);
    int i = 0;
    for (const cJSON *d = it->child; d; d = d->next, i++) {
        uint64_t v;
        if (!json_uint(d, &v))
            return pc_fail(err, PEFTC_ERR_FORMAT, "%s: tensor '%s': shape[%d] must be a non-negative integer",
                           path, tname, i);
        t->shape[i] = (int64_t)v;
    }
    t->ndim = ndim;
    return PEFTC_OK;
}

static pc_status parse_offsets(const char *path, const char *tname, const cJSON *it, uint64_t *begin, uint64_t *end,
                               pc_error *err)
{
    if (!cJSON_IsArray(it) || cJSON_GetArraySize(it) != 2 || !json_uint(it->child, begin)
        || !json_uint(it->child->next, end))
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: tensor '%s': 'data_offsets' must be two non-negative integers",
                       path, tname);
    if (*begin > *end)
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] begin after end",
                       path, tname, (unsigned long long)*begin, (unsigned long long)*end);
    return PEFTC_OK;
}

/* Fills t from one header entry; data = start of the data section of data_size bytes. */
static pc_status parse_entry(const char *path, const cJSON *e, const unsigned char *data, uint64_t data_size,
                             pc_st_tensor *t, pc_error *err)
{
    const char *tname = e->string;
    if (!cJSON_IsObject(e))
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: tensor '%s': entry must be an object, got %s",
                       path, tname, pc_json_type_name(e));
    PC_TRY(parse_dtype(path, tname, cJSON_GetObjectItemCaseSensitive(e, "dtype"), &t->dtype, err));
    PC_TRY(parse_shape(path, tname, cJSON_GetObjectItemCaseSensitive(e, "shape"), t, err));
    uint64_t begin = 0, end = 0;
    PC_TRY(parse_offsets(path, tname, cJSON_GetObjectItemCaseSensitive(e, "data_offsets"), &begin, &end, err));
    if (end > data_size)
        return pc_fail(err, PEFTC_ERR_FORMAT,
                       "%s: tensor '%s': data_offsets [%llu, %llu] end beyond the data section of %llu bytes",
                       path, tname, (unsigned long long)begin, (unsigned long long)end, (unsigned long long)data_size);
    uint64_t nbytes = pc_dtype_size(t->dtype);
    for (int i = 0; i < t->ndim; i++)
        if (!mul_ok(&nbytes, (uint64_t)t->shape[i]))
            return pc_fail(err, PEFTC_ERR_FORMAT, "%s: tensor '%s': shape overflows a 64-bit byte count", path, tname);
    if (nbytes != end - begin) {
        char shape[160];
        format_shape(t->ndim, t->shape, shape, sizeof shape);
        return pc_fail(err, PEFTC_ERR_FORMAT,
                       "%s: tensor '%s': data_offsets [%llu, %llu] hold %llu bytes but %s shape %s needs %llu",
                       path, tname, (unsigned long long)begin, (unsigned long long)end,
                       (unsigned long long)(end - begin), pc_dtype_name(t->dtype), shape, (unsigned long long)nbytes);
    }
    t->data = data + begin;
    t->nbytes = (size_t)nbytes;
    return PEFTC_OK;
}

static int cmp_by_offset(const void *a, const void *b)
{
    const pc_st_tensor *x = a, *y = b;
    const char *px = x->data, *py = y->data;
    if (px != py) return px < py ? -1 : 1;
    return (x->nbytes > y->nbytes) - (x->nbytes < y->nbytes);
}

/* safetensors' rule: sorted by offset, the tensors tile [0, data_size) exactly. */
static pc_status check_tiling(const char *path, pc_st_tensor *t, int n, const unsigned char *data, uint64_t data_size,
                              pc_error *err)
{
    if (n > 1) qsort(t, (size_t)n, sizeof *t, cmp_by_offset);
    uint64_t covered = 0;
    for (int i = 0; i < n; i++) {
        uint64_t begin = (uint64_t)((const unsigned char *)t[i].data - data);
        if (begin < covered)
            return pc_fail(err, PEFTC_ERR_FORMAT, "%s: tensor '%s' (bytes [%llu, %llu)) overlaps tensor '%s'",
                           path, t[i].name, (unsigned long long)begin, (unsigned long long)(begin + t[i].nbytes),
                           t[i - 1].name);
        if (begin > covered)
            return pc_fail(err, PEFTC_ERR_FORMAT,
                           "%s: bytes [%llu, %llu) of the data section belong to no tensor (gap before tensor '%s')",
                           path, (unsigned long long)covered, (unsigned long long)begin, t[i].name);
        covered = begin + t[i].nbytes;
    }
    if (covered != data_size)
        return pc_fail(err, PEFTC_ERR_FORMAT,
                       "%s: the data section has %llu bytes but the tensors cover only the first %llu",
                       path, (unsigned long long)data_size, (unsigned long long)covered);
    return PEFTC_OK;
}

static pc_status reserve_tensors(pc_safetensors *st, int extra, const char *path, pc_error *err)
{
    if (st->ntensors + extra <= st->cap_tensors) return PEFTC_OK;
    int cap = st->cap_tensors ? st->cap_tensors : 64;
    while (cap < st->ntensors + extra) cap *= 2;
    pc_st_tensor *t = realloc(st->tensors, (size_t)cap * sizeof *t);
    if (!t) return pc_fail(err, PEFTC_ERR_NOMEM, "%s: cannot allocate %d tensor records", path, cap);
    st->tensors = t;
    st->cap_tensors = cap;
    return PEFTC_OK;
}

/* Appends the tensors of a parsed header; keeps the first file's __metadata__. */
static pc_status add_header_entries(pc_safetensors *st, const st_file *f, cJSON *root, uint64_t header_len,
                                    pc_error *err)
{
    const unsigned char *data = (const unsigned char *)f->map + 8 + header_len;
    uint64_t data_size = f->size - 8 - header_len;
    PC_TRY(reserve_tensors(st, cJSON_GetArraySize(root), f->path, err));
    int first = st->ntensors;
    cJSON *meta = NULL;
    for (cJSON *e = root->child; e; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) {
            PC_TRY(check_metadata(e, f->path, PEFTC_ERR_FORMAT, err));
            meta = e;
            continue;
        }
        pc_st_tensor *t = &st->tensors[st->ntensors];
        memset(t, 0, sizeof *t);
        PC_TRY(parse_entry(f->path, e, data, data_size, t, err));
        t->file = f->path;
        t->name = strdup(e->string);
        if (!t->name) return pc_fail(err, PEFTC_ERR_NOMEM, "%s: cannot allocate a tensor name", f->path);
        st->ntensors++;
    }
    /* a header with no tensors ("{}") may leave st->tensors NULL: no pointer arithmetic on it */
    pc_st_tensor *added = st->ntensors > first ? st->tensors + first : NULL;
    PC_TRY(check_tiling(f->path, added, st->ntensors - first, data, data_size, err));
    if (meta && !st->metadata) st->metadata = cJSON_DetachItemViaPointer(root, meta);
    return PEFTC_OK;
}

static pc_status parse_header(pc_safetensors *st, const st_file *f, pc_error *err)
{
    if (f->size < 8)
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: file is %zu bytes, too short for a safetensors header (8 bytes)",
                       f->path, f->size);
    const unsigned char *p = f->map;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | p[i];
    if (n > PC_ST_MAX_HEADER)
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: header length %llu exceeds the limit of %u bytes",
                       f->path, (unsigned long long)n, PC_ST_MAX_HEADER);
    if (n > f->size - 8)
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: header length %llu exceeds the %zu bytes after the length field",
                       f->path, (unsigned long long)n, f->size - 8);
    const char *text = (const char *)p + 8;
    size_t bad;
    if (!valid_utf8(text, (size_t)n, &bad))
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: header is not valid UTF-8 (byte %zu)", f->path, bad);
    char what[4200];
    snprintf(what, sizeof what, "%s (header)", f->path);
    cJSON *root;
    PC_TRY(pc_json_parse_text(text, (size_t)n, what, &root, err));
    pc_status s = PEFTC_OK;
    if (!cJSON_IsObject(root))
        s = pc_fail(err, PEFTC_ERR_FORMAT, "%s: header must be a JSON object, got %s", f->path, pc_json_type_name(root));
    if (s == PEFTC_OK) s = pc_json_check_no_duplicates(root, f->path, err);
    if (s == PEFTC_OK) s = add_header_entries(st, f, root, n, err);
    cJSON_Delete(root);
    return s;
}

bool pc_st_maps(const pc_safetensors *st, const void *p)
{
    for (int i = 0; st && i < st->nfiles; i++) {
        const char *map = st->files[i].map;
        if (map && (const char *)p >= map && (const char *)p < map + st->files[i].size) return true;
    }
    return false;
}

static pc_status map_file(const char *path, st_file *f, pc_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return pc_fail(err, PEFTC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    pc_status s = PEFTC_OK;
    if (fstat(fd, &sb) != 0) s = pc_fail(err, PEFTC_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    else if (!S_ISREG(sb.st_mode)) s = pc_fail(err, PEFTC_ERR_IO, "%s: not a regular file", path);
    if (s == PEFTC_OK && sb.st_size > 0) {
        void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) s = pc_fail(err, PEFTC_ERR_IO, "%s: cannot mmap: %s", path, strerror(errno));
        else { f->map = m; f->size = (size_t)sb.st_size; }
    }
    close(fd);
    return s;
}

/* Maps one file, validates its header and appends its tensors to st. */
static pc_status load_file(pc_safetensors *st, const char *path, pc_error *err)
{
    st_file *files = realloc(st->files, (size_t)(st->nfiles + 1) * sizeof *files);
    if (!files) return pc_fail(err, PEFTC_ERR_NOMEM, "%s: cannot allocate a file record", path);
    st->files = files;
    st_file *f = &files[st->nfiles];
    memset(f, 0, sizeof *f);
    f->path = strdup(path);
    if (!f->path) return pc_fail(err, PEFTC_ERR_NOMEM, "%s: cannot allocate the path", path);
    st->nfiles++;
    PC_TRY(map_file(path, f, err));
    return parse_header(st, f, err);
}

/* ---- container ---------------------------------------------------------- */

static int cmp_tensor_ptr_name(const void *a, const void *b)
{
    return strcmp((*(const pc_st_tensor *const *)a)->name, (*(const pc_st_tensor *const *)b)->name);
}

static pc_status build_name_index(pc_safetensors *st, pc_error *err)
{
    st->by_name = malloc((size_t)(st->ntensors ? st->ntensors : 1) * sizeof *st->by_name);
    if (!st->by_name) return pc_fail(err, PEFTC_ERR_NOMEM, "cannot allocate a name index of %d tensors", st->ntensors);
    for (int i = 0; i < st->ntensors; i++) st->by_name[i] = &st->tensors[i];
    qsort(st->by_name, (size_t)st->ntensors, sizeof *st->by_name, cmp_tensor_ptr_name);
    for (int i = 1; i < st->ntensors; i++)
        if (strcmp(st->by_name[i - 1]->name, st->by_name[i]->name) == 0)
            return pc_fail(err, PEFTC_ERR_FORMAT, "tensor '%s' is in both %s and %s", st->by_name[i]->name,
                           st->by_name[i - 1]->file, st->by_name[i]->file);
    return PEFTC_OK;
}

static pc_safetensors *new_container(pc_error *err)
{
    pc_safetensors *st = calloc(1, sizeof *st);
    if (!st) pc_fail(err, PEFTC_ERR_NOMEM, "cannot allocate a safetensors container");
    return st;
}

/* Takes ownership of st: *out on success, freed on failure. */
static pc_status finish_open(pc_safetensors *st, pc_status s, pc_safetensors **out)
{
    if (s != PEFTC_OK) {
        pc_st_close(st);
        return s;
    }
    *out = st;
    return PEFTC_OK;
}

pc_status pc_st_open(const char *path, pc_safetensors **out, pc_error *err)
{
    *out = NULL;
    pc_safetensors *st = new_container(err);
    if (!st) return PEFTC_ERR_NOMEM;
    pc_status s = load_file(st, path, err);
    if (s == PEFTC_OK) s = build_name_index(st, err);
    return finish_open(st, s, out);
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Validates weight_map and returns its distinct shard names, sorted. */
static pc_status shard_names(const char *index_path, const cJSON *map, const char ***names, int *count, pc_error *err)
{
    if (!cJSON_IsObject(map))
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: 'weight_map' must be an object, got %s", index_path,
                       pc_json_type_name(map));
    int n = cJSON_GetArraySize(map);
    if (n == 0) return pc_fail(err, PEFTC_ERR_FORMAT, "%s: 'weight_map' is empty", index_path);
    const char **v = malloc((size_t)n * sizeof *v);
    if (!v) return pc_fail(err, PEFTC_ERR_NOMEM, "%s: cannot allocate %d shard names", index_path, n);
    int k = 0;
    for (const cJSON *c = map->child; c; c = c->next) {
        if (!cJSON_IsString(c) || !c->valuestring[0] || strchr(c->valuestring, '/')) {
            free(v);
            return pc_fail(err, PEFTC_ERR_FORMAT, "%s: weight_map entry '%s' must be a plain file name in the same "
                           "directory", index_path, c->string);
        }
        v[k++] = c->valuestring;
    }
    qsort(v, (size_t)k, sizeof *v, cmp_str_ptr);
    int distinct = 0;
    for (int i = 0; i < k; i++)
        if (distinct == 0 || strcmp(v[distinct - 1], v[i]) != 0) v[distinct++] = v[i];
    *names = v;
    *count = distinct;
    return PEFTC_OK;
}

/* Every weight_map entry must be found in the shard it names. */
static pc_status check_index_entries(const pc_safetensors *st, const char *index_path, const cJSON *map, pc_error *err)
{
    for (const cJSON *c = map->child; c; c = c->next) {
        const pc_st_tensor *t = pc_st_find(st, c->string);
        const char *base = t ? strrchr(t->file, '/') : NULL;
        base = base ? base + 1 : (t ? t->file : NULL);
        if (!t)
            return pc_fail(err, PEFTC_ERR_FORMAT, "%s: tensor '%s' is listed for shard '%s' but is not in it",
                           index_path, c->string, c->valuestring);
        if (strcmp(base, c->valuestring) != 0)
            return pc_fail(err, PEFTC_ERR_FORMAT, "%s: tensor '%s' is listed for shard '%s' but is in %s",
                           index_path, c->string, c->valuestring, t->file);
    }
    return PEFTC_OK;
}

static pc_status load_sharded(pc_safetensors *st, const char *dir, const char *index_path, pc_error *err)
{
    cJSON *index;
    PC_TRY(pc_json_parse_file(index_path, &index, err));
    pc_status s = pc_json_check_no_duplicates(index, index_path, err);
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(index, "weight_map");
    const char **shards = NULL;
    int nshards = 0;
    if (s == PEFTC_OK) s = shard_names(index_path, map, &shards, &nshards, err);
    for (int i = 0; i < nshards && s == PEFTC_OK; i++) {
        char *path = join_path(dir, shards[i]);
        if (!path) s = pc_fail(err, PEFTC_ERR_NOMEM, "%s: cannot allocate a shard path", index_path);
        else s = load_file(st, path, err);
        free(path);
    }
    if (s == PEFTC_OK) s = build_name_index(st, err);
    if (s == PEFTC_OK) s = check_index_entries(st, index_path, map, err);
    free(shards);
    cJSON_Delete(index);
    return s;
}

pc_status pc_st_open_model_dir(const char *dir, pc_safetensors **out, pc_error *err)
{
    *out = NULL;
    char *single = join_path(dir, "model.safetensors");
    char *index = join_path(dir, "model.safetensors.index.json");
    pc_status s = PEFTC_OK;
    struct stat sb;
    if (!single || !index) s = pc_fail(err, PEFTC_ERR_NOMEM, "%s: cannot allocate a path", dir);
    else if (stat(single, &sb) == 0) s = pc_st_open(single, out, err);
    else if (stat(index, &sb) != 0)
        s = pc_fail(err, PEFTC_ERR_IO, "%s: neither model.safetensors nor model.safetensors.index.json exists", dir);
    else {
        pc_safetensors *st = new_container(err);
        s = st ? finish_open(st, load_sharded(st, dir, index, err), out) : PEFTC_ERR_NOMEM;
    }
    free(single);
    free(index);
    return s;
}

int pc_st_count(const pc_safetensors *st)
{
    return st ? st->ntensors : 0;
}

const pc_st_tensor *pc_st_at(const pc_safetensors *st, int i)
{
    return (st && i >= 0 && i < st->ntensors) ? &st->tensors[i] : NULL;
}

static int cmp_name_key(const void *key, const void *elem)
{
    return strcmp((const char *)key, (*(const pc_st_tensor *const *)elem)->name);
}

const pc_st_tensor *pc_st_find(const pc_safetensors *st, const char *name)
{
    if (!st || !st->by_name || !name) return NULL;
    const pc_st_tensor *const *hit = bsearch(name, st->by_name, (size_t)st->ntensors, sizeof *st->by_name, cmp_name_key);
    return hit ? *hit : NULL;
}

const cJSON *pc_st_metadata(const pc_safetensors *st)
{
    return st ? st->metadata : NULL;
}

pc_status pc_st_check_finite(const pc_st_tensor *t, const float *data, int64_t n, pc_error *err)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(data[i]))
            return pc_fail(err, PEFTC_ERR_NUMERIC, "%s: tensor '%s' holds %s at element %lld", t->file, t->name,
                           isnan(data[i]) ? "NaN" : "infinity", (long long)i);
    return PEFTC_OK;
}

void pc_st_close(pc_safetensors *st)
{
    if (!st) return;
    for (int i = 0; i < st->ntensors; i++) free((char *)st->tensors[i].name);
    for (int i = 0; i < st->nfiles; i++) {
        if (st->files[i].map) munmap(st->files[i].map, st->files[i].size);
        free(st->files[i].path);
    }
    free(st->tensors);
    free(st->files);
    free(st->by_name);
    cJSON_Delete(st->metadata);
    free(st);
}

/* ---- reading as float32 ------------------------------------------------- */

int64_t pc_st_numel(const pc_st_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

/* IEEE half -> float: rebias the exponent (15 -> 127); subnormals are man * 2^-24. */
static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
    if (exp == 0x1f) bits = sign | 0x7f800000u | (man << 13);
    else if (exp != 0) bits = sign | ((exp + 112) << 23) | (man << 13);
    else {
        float f = (float)man * 0x1p-24f;
        memcpy(&bits, &f, sizeof bits);
        bits |= sign;
    }
    float out;
    memcpy(&out, &bits, sizeof out);
    return out;
}

/* bfloat16 is the upper half of a float32. */
static float bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float out;
    memcpy(&out, &bits, sizeof out);
    return out;
}

pc_status pc_st_read_f32(const pc_st_tensor *t, float *dst, int64_t n, pc_error *err)
{
    if (!t || (!dst && n > 0)) return pc_fail(err, PEFTC_ERR_INVALID, "pc_st_read_f32: NULL tensor or destination");
    int64_t numel = pc_st_numel(t);
    if (numel != n)
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: tensor '%s' has %lld elements, expected %lld",
                       t->file, t->name, (long long)numel, (long long)n);
    const unsigned char *p = t->data; /* may be unaligned: read bytes, never a float* */
    switch (t->dtype) {
    case PC_DT_F32:
        if (n > 0) memcpy(dst, p, (size_t)n * sizeof *dst);
        return PEFTC_OK;
    case PC_DT_F16:
        for (int64_t i = 0; i < n; i++) dst[i] = f16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        return PEFTC_OK;
    case PC_DT_BF16:
        for (int64_t i = 0; i < n; i++) dst[i] = bf16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        return PEFTC_OK;
    default:
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: tensor '%s' has dtype %s, expected F32, F16 or BF16",
                       t->file, t->name, pc_dtype_name(t->dtype));
    }
}

pc_status pc_st_read_f32_shaped(const pc_st_tensor *t, int ndim, const int64_t *shape, float *dst, pc_error *err)
{
    if (!t || ndim < 0 || ndim > PC_MAX_DIMS || (ndim > 0 && !shape))
        return pc_fail(err, PEFTC_ERR_INVALID, "pc_st_read_f32_shaped: NULL tensor or bad expected shape");
    bool same = t->ndim == ndim;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        same = same && t->shape[i] == shape[i];
        n *= shape[i];
    }
    if (!same) {
        char have[160], want[160];
        format_shape(t->ndim, t->shape, have, sizeof have);
        format_shape(ndim, shape, want, sizeof want);
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: tensor '%s' has shape %s, expected %s", t->file, t->name, have, want);
    }
    return pc_st_read_f32(t, dst, n, err);
}

/* ---- writing ------------------------------------------------------------ */

typedef struct {
    char *p;
    size_t len, cap;
    bool oom;
} strbuf;

static void sb_put(strbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) { b->oom = true; return; }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(strbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_u64(strbuf *b, uint64_t v)
{
    char num[24];
    sb_put(b, num, (size_t)snprintf(num, sizeof num, "%llu", (unsigned long long)v));
}

/* A JSON string escaped as serde_json does: \" \\ \b \f \n \r \t, other
 * control bytes as \u00xx (lowercase hex), everything else verbatim. */
static void sb_json_string(strbuf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        const char *esc = NULL;
        switch (*p) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default: break;
        }
        if (esc) sb_str(b, esc);
        else if (*p < 0x20) {
            char u[7] = { '\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15], 0 };
            sb_put(b, u, 6);
        } else sb_put(b, (const char *)p, 1);
    }
    sb_put(b, "\"", 1);
}

static int cmp_item_name(const void *a, const void *b)
{
    return strcmp((*(const pc_st_item *const *)a)->name, (*(const pc_st_item *const *)b)->name);
}

/* The Rust library's data order: dtype descending, then name ascending. */
static int cmp_item_order(const void *a, const void *b)
{
    const pc_st_item *x = *(const pc_st_item *const *)a, *y = *(const pc_st_item *const *)b;
    if (x->dtype != y->dtype) return x->dtype > y->dtype ? -1 : 1;
    return strcmp(x->name, y->name);
}

static pc_status item_nbytes(const char *path, const pc_st_item *it, size_t *out, pc_error *err)
{
    if (!it->name) return pc_fail(err, PEFTC_ERR_INVALID, "%s: a tensor has no name", path);
    size_t bad;
    if (!valid_utf8(it->name, strlen(it->name), &bad))
        return pc_fail(err, PEFTC_ERR_INVALID, "%s: tensor name '%s' is not valid UTF-8", path, it->name);
    if (strcmp(it->name, "__metadata__") == 0)
        return pc_fail(err, PEFTC_ERR_INVALID, "%s: '__metadata__' is reserved and cannot name a tensor", path);
    if ((unsigned)it->dtype >= PC_DT_COUNT)
        return pc_fail(err, PEFTC_ERR_INVALID, "%s: tensor '%s' has an invalid dtype %d", path, it->name, (int)it->dtype);
    if (it->ndim < 0 || it->ndim > PC_MAX_DIMS)
        return pc_fail(err, PEFTC_ERR_INVALID, "%s: tensor '%s' has %d dimensions (0..%d allowed)",
                       path, it->name, it->ndim, PC_MAX_DIMS);
    uint64_t n = pc_dtype_size(it->dtype);
    for (int i = 0; i < it->ndim; i++)
        if (it->shape[i] < 0 || !mul_ok(&n, (uint64_t)it->shape[i]) || n > SIZE_MAX)
            return pc_fail(err, PEFTC_ERR_INVALID, "%s: tensor '%s' has a negative or oversized shape", path, it->name);
    if (n > 0 && !it->data)
        return pc_fail(err, PEFTC_ERR_INVALID, "%s: tensor '%s' needs %llu bytes of data but data is NULL",
                       path, it->name, (unsigned long long)n);
    *out = (size_t)n;
    return PEFTC_OK;
}

static pc_status check_write_metadata(const char *path, const cJSON *meta, pc_error *err)
{
    PC_TRY(check_metadata(meta, path, PEFTC_ERR_INVALID, err));
    size_t bad;
    for (const cJSON *c = meta->child; c; c = c->next)
        if (!valid_utf8(c->string, strlen(c->string), &bad) || !valid_utf8(c->valuestring, strlen(c->valuestring), &bad))
            return pc_fail(err, PEFTC_ERR_INVALID, "%s: __metadata__ key '%s' or its value is not valid UTF-8",
                           path, c->string);
    return PEFTC_OK;
}

/* Header JSON, compact, keys in data order, padded with spaces to a multiple of 8. */
static void build_header(strbuf *b, const pc_st_item *items, const pc_st_item *const *order, const size_t *nbytes,
                         int n, const cJSON *meta)
{
    sb_str(b, "{\"__metadata__\":{");
    if (!meta) sb_str(b, "\"format\":\"pt\"");
    for (const cJSON *c = meta ? meta->child : NULL; c; c = c->next) {
        if (c != meta->child) sb_str(b, ",");
        sb_json_string(b, c->string);
        sb_str(b, ":");
        sb_json_string(b, c->valuestring);
    }
    sb_str(b, "}");
    uint64_t offset = 0;
    for (int i = 0; i < n; i++) {
        const pc_st_item *it = order[i];
        sb_str(b, ",");
        sb_json_string(b, it->name);
        sb_str(b, ":{\"dtype\":\"");
        sb_str(b, pc_dtype_name(it->dtype));
        sb_str(b, "\",\"shape\":[");
        for (int d = 0; d < it->ndim; d++) {
            if (d) sb_str(b, ",");
            sb_u64(b, (uint64_t)it->shape[d]);
        }
        sb_str(b, "],\"data_offsets\":[");
        sb_u64(b, offset);
        sb_str(b, ",");
        offset += nbytes[it - items];
        sb_u64(b, offset);
        sb_str(b, "]}");
    }
    sb_str(b, "}");
    while (!b->oom && b->len % 8 != 0) sb_str(b, " ");
}

/* Validates items, then sorts pointers to them into data order; nbytes[k] is
 * the size of items[k]. */
static pc_status plan_items(const char *path, const pc_st_item *items, int n, const pc_st_item **order,
                            size_t *nbytes, pc_error *err)
{
    for (int i = 0; i < n; i++) {
        PC_TRY(item_nbytes(path, &items[i], &nbytes[i], err));
        order[i] = &items[i];
    }
    qsort(order, (size_t)n, sizeof *order, cmp_item_name);
    for (int i = 1; i < n; i++)
        if (strcmp(order[i - 1]->name, order[i]->name) == 0)
            return pc_fail(err, PEFTC_ERR_INVALID, "%s: duplicate tensor name '%s'", path, order[i]->name);
    qsort(order, (size_t)n, sizeof *order, cmp_item_order);
    return PEFTC_OK;
}

static pc_status write_planned(const char *path, const pc_st_item *items, const pc_st_item *const *order,
                               const size_t *nbytes, int n, const cJSON *meta, pc_error *err)
{
    strbuf header = { 0 };
    build_header(&header, items, order, nbytes, n, meta);
    if (header.oom) {
        free(header.p);
        return pc_fail(err, PEFTC_ERR_NOMEM, "%s: cannot allocate the header", path);
    }
    if (header.len > PC_ST_MAX_HEADER) {
        free(header.p);
        return pc_fail(err, PEFTC_ERR_INVALID, "%s: header would be %zu bytes, over the limit of %u",
                       path, header.len, PC_ST_MAX_HEADER);
    }
    unsigned char len_le[8];
    for (int i = 0; i < 8; i++) len_le[i] = (unsigned char)((uint64_t)header.len >> (8 * i));
    pc_write_part *parts = malloc((size_t)(n + 2) * sizeof *parts);
    if (!parts) {
        free(header.p);
        return pc_fail(err, PEFTC_ERR_NOMEM, "%s: cannot allocate %d write parts", path, n + 2);
    }
    parts[0] = (pc_write_part){ len_le, 8 };
    parts[1] = (pc_write_part){ header.p, header.len };
    for (int i = 0; i < n; i++) parts[i + 2] = (pc_write_part){ order[i]->data, nbytes[order[i] - items] };
    pc_status s = pc_write_file_atomic_parts(path, parts, n + 2, err);
    free(parts);
    free(header.p);
    return s;
}

pc_status pc_st_write(const char *path, const pc_st_item *items, int n, const cJSON *metadata, pc_error *err)
{
    if (!path || n < 0 || (n > 0 && !items))
        return pc_fail(err, PEFTC_ERR_INVALID, "pc_st_write: NULL path or items, or negative count");
    if (metadata) PC_TRY(check_write_metadata(path, metadata, err));
    const pc_st_item **order = malloc((size_t)(n ? n : 1) * sizeof *order);
    size_t *nbytes = malloc((size_t)(n ? n : 1) * sizeof *nbytes);
    pc_status s = PEFTC_OK;
    if (!order || !nbytes) s = pc_fail(err, PEFTC_ERR_NOMEM, "%s: cannot allocate a plan for %d tensors", path, n);
    if (s == PEFTC_OK) s = plan_items(path, items, n, order, nbytes, err);
    if (s == PEFTC_OK) s = write_planned(path, items, order, nbytes, n, metadata, err);
    free(order);
    free(nbytes);
    return s;
}
