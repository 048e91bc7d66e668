/* The malformed-input catalogue: hand-made bad inputs, each made at test time from a good
 * committed fixture (bytes poked, files truncated, headers and JSON rewritten), loaded
 * through the library call a user's run goes through, and expected to fail with a specific
 * status and a message naming the file, tensor, key or line at fault. Nothing may crash or
 * leak (`make check` runs this under ASan/UBSan).
 *
 * The lower-level cases live beside their code (test_safetensors.c: raw header shapes;
 * test_dataset.c, test_config.c, test_tokenizer*.c, test_qlora.c); this catalogue covers
 * whole model and adapter directories, 4-bit checkpoints, and what the others leave out. */
#include "testlib.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"
#include "formats/json.h"
#include "formats/safetensors.h"
#include "models/merge.h"
#include "models/peft_model.h"
#include "models/quantized.h"
#include "text/tokenizer.h"
#include "train/config.h"
#include "train/dataset.h"

/* ---- how a bad input is made ------------------------------------------------------------ */

typedef enum {
    WRITE,        /* file := a */
    REPLACE,      /* first occurrence of text a in file := b (a safetensors file: in its header) */
    JSON_SET,     /* top-level key a of a JSON file := JSON value b (NULL: key removed) */
    TRUNCATE,     /* file cut to n bytes */
    HEADER_LEN,   /* a safetensors file's header length := file size + n */
    POKE_F32,     /* element n of F32 tensor a := b ("nan", "inf", "-inf" or a number) */
    TENSOR_BYTES, /* U8 tensor a rewritten to hold the bytes of string b (NULL: tensor dropped) */
    HUGE_LINE,    /* file := one line of n bytes: a, then the character b (NULL: 'x') repeated */
} mutation;

/* What loads it. */
typedef enum { MODEL, ADAPTER, DATA_CLS, DATA_LM, TRAIN_CONFIG, TOKENIZER } loader;

typedef struct bad_input {
    const char *name;
    const char *model;        /* fixture copied to CASE/model: a fixture dir, "q4" (made here), or NULL */
    const char *adapter;      /* fixture copied to CASE/adapter, or NULL */
    const char *file;         /* the file made bad, relative to CASE */
    mutation op;
    const char *a, *b;
    long n;
    loader load;
    pc_status code;
    const char *where;        /* the file, tensor, key or line the message must name */
    const char *what;         /* the specific complaint */
} bad_input;

#define DBERT "distilbert_tiny/qv/model"
#define DBERT_AD "distilbert_tiny/qv/adapter_init"
#define LLAMA "causal_tiny/llama_gqa/model"
#define LLAMA_AD "causal_tiny/llama_gqa/adapter_init"
#define ST "model/model.safetensors"
#define AD_ST "adapter/adapter_model.safetensors"
#define CFG "model/config.json"
#define AD_CFG "adapter/adapter_config.json"
#define Q_PROJ "model.layers.0.self_attn.q_proj.weight"
#define Q_LIN_A "base_model.model.distilbert.transformer.layer.0.attention.q_lin.lora_A.weight"
#define V_LIN_B "base_model.model.distilbert.transformer.layer.1.attention.v_lin.lora_B.weight"

static const char *case_dir(const char *name)
{
    static char dir[512];
    snprintf(dir, sizeof dir, "%s/catalogue/%s", pc_test_tmpdir(), name);
    return dir;
}

static bool read_whole(const char *path, char **text, size_t *len)
{
    pc_error err = {0};
    return pc_read_file(path, (size_t)1 << 30, text, len, &err) == PEFTC_OK;
}

static bool write_whole(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(data, 1, len, f) == len;
    return (fclose(f) == 0) && ok;
}

/* Copies every file of the directory src into dst (created). */
static bool copy_dir(const char *src, const char *dst)
{
    static const char *const names[] = {"config.json", "model.safetensors", "adapter_config.json",
                                        "adapter_model.safetensors", "vocab.txt", "tokenizer_config.json"};
    pc_error err = {0};
    if (pc_mkdirs(dst, &err) != PEFTC_OK) return false;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char from[1024], to[1024];
        snprintf(from, sizeof from, "%s/%s", src, names[i]);
        snprintf(to, sizeof to, "%s/%s", dst, names[i]);
        if (pc_path_exists(from) && pc_copy_file(from, to, &err) != PEFTC_OK) return false;
    }
    return true;
}

/* A good 4-bit (NF4, double-quantized) checkpoint of the tiny Llama, written once per run. */
static const char *q4_fixture(void)
{
    static char dir[512];
    if (dir[0]) return dir;
    snprintf(dir, sizeof dir, "%s/catalogue/q4_good", pc_test_tmpdir());
    char src[600], path[700];
    snprintf(src, sizeof src, "%s", pc_test_fixture(LLAMA));
    pc_model *m = NULL;
    pc_error err = {0};
    pc_quant_options o = { PC_Q4_NF4, true, PC_Q4_COMPUTE_F32, NULL, 0 };
    bool ok = pc_model_load(src, NULL, &m, &err) == PEFTC_OK && pc_model_quantize_4bit(m, &o, &err) == PEFTC_OK &&
              pc_mkdirs(dir, &err) == PEFTC_OK;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    ok = ok && pc_model_save_weights_4bit(m, path, PC_DT_F32, &o, &err) == PEFTC_OK;
    snprintf(src, sizeof src, "%s/config.json", pc_test_fixture(LLAMA));
    snprintf(path, sizeof path, "%s/config.json", dir);
    ok = ok && pc_copy_file(src, path, &err) == PEFTC_OK;
    pc_model_free(m);
    CHECK_MSG(ok, "cannot make the 4-bit fixture: %s", err.msg);
    return dir;
}

/* Replaces the first `from` in the header of a safetensors file by `to` (header length updated). */
static bool st_header_replace(const char *path, const char *from, const char *to)
{
    char *bytes;
    size_t len;
    if (!read_whole(path, &bytes, &len)) return false;
    uint64_t n;
    memcpy(&n, bytes, 8);
    char *header = bytes + 8, *hit = NULL;
    for (size_t i = 0; !hit && i + strlen(from) <= n; i++)
        if (memcmp(header + i, from, strlen(from)) == 0) hit = header + i;
    bool ok = hit != NULL;
    if (ok) {
        size_t pre = (size_t)(hit - header), out_len = len - strlen(from) + strlen(to);
        char *out = malloc(out_len);
        uint64_t n2 = n - strlen(from) + strlen(to);
        memcpy(out, &n2, 8);
        memcpy(out + 8, header, pre);
        memcpy(out + 8 + pre, to, strlen(to));
        memcpy(out + 8 + pre + strlen(to), hit + strlen(from), len - 8 - pre - strlen(from));
        ok = write_whole(path, out, out_len);
        free(out);
    }
    free(bytes);
    return ok;
}

static bool text_replace(const char *path, const char *from, const char *to)
{
    if (strstr(path, ".safetensors")) return st_header_replace(path, from, to);
    char *text;
    size_t len;
    if (!read_whole(path, &text, &len)) return false;
    char *hit = strstr(text, from);
    bool ok = hit != NULL;
    if (ok) {
        size_t pre = (size_t)(hit - text);
        char *out = malloc(len + strlen(to) + 1);
        memcpy(out, text, pre);
        strcpy(out + pre, to);
        strcat(out + pre, hit + strlen(from));
        ok = write_whole(path, out, strlen(out));
        free(out);
    }
    free(text);
    return ok;
}

static bool json_set(const char *path, const char *key, const char *value)
{
    char *text;
    size_t len;
    if (!read_whole(path, &text, &len)) return false;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root) return false;
    cJSON_DeleteItemFromObjectCaseSensitive(root, key);
    cJSON *v = value ? cJSON_Parse(value) : NULL;
    if (v) cJSON_AddItemToObject(root, key, v);
    char *out = cJSON_Print(root);
    bool ok = (!value || v) && out && write_whole(path, out, strlen(out));
    cJSON_free(out);
    cJSON_Delete(root);
    return ok;
}

static bool set_header_len(const char *path, long extra)
{
    char *bytes;
    size_t len;
    if (!read_whole(path, &bytes, &len)) return false;
    uint64_t n = (uint64_t)((long)len + extra);
    memcpy(bytes, &n, 8);
    bool ok = write_whole(path, bytes, len);
    free(bytes);
    return ok;
}

static bool poke_f32(const char *path, const char *tensor, long index, const char *value)
{
    pc_safetensors *st = NULL;
    pc_error err = {0};
    if (pc_st_open(path, &st, &err) != PEFTC_OK) return false;
    const pc_st_tensor *t = pc_st_find(st, tensor);
    const char *base = t ? (const char *)pc_st_at(st, 0)->data : NULL;
    long offset = -1;
    for (int i = 0; t && i < pc_st_count(st); i++)   /* the data section starts at the lowest tensor */
        if ((const char *)pc_st_at(st, i)->data < base) base = pc_st_at(st, i)->data;
    if (t && t->dtype == PC_DT_F32 && index < pc_st_numel(t)) {
        uint64_t n;
        FILE *f = fopen(path, "rb");
        bool got = f && fread(&n, 8, 1, f) == 1;
        if (f) fclose(f);
        if (got) offset = 8 + (long)n + (long)((const char *)t->data - base) + 4 * index;
    }
    pc_st_close(st);
    if (offset < 0) return false;
    float v = strcmp(value, "nan") == 0 ? NAN : strcmp(value, "inf") == 0 ? INFINITY
            : strcmp(value, "-inf") == 0 ? -INFINITY : strtof(value, NULL);
    FILE *f = fopen(path, "r+b");
    bool ok = f && fseek(f, offset, SEEK_SET) == 0 && fwrite(&v, 4, 1, f) == 1;
    return f ? (fclose(f) == 0) && ok : false;
}

/* Rewrites a safetensors file with U8 tensor `name` holding `bytes` (dropped when NULL). */
static bool tensor_bytes(const char *path, const char *name, const char *bytes)
{
    pc_safetensors *st = NULL;
    pc_error err = {0};
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s.orig", path);
    if (rename(path, tmp) != 0 || pc_st_open(tmp, &st, &err) != PEFTC_OK) return false;
    int n = pc_st_count(st), k = 0;
    pc_st_item *items = calloc((size_t)n, sizeof *items);
    for (int i = 0; i < n; i++) {
        const pc_st_tensor *t = pc_st_at(st, i);
        items[k] = (pc_st_item){ .name = t->name, .dtype = t->dtype, .ndim = t->ndim, .data = t->data };
        memcpy(items[k].shape, t->shape, sizeof t->shape);
        if (strcmp(t->name, name) == 0) {
            if (!bytes) continue;
            items[k] = (pc_st_item){ .name = t->name, .dtype = PC_DT_U8, .ndim = 1,
                                     .shape = {(int64_t)strlen(bytes)}, .data = bytes };
        }
        k++;
    }
    bool ok = pc_st_write(path, items, k, NULL, &err) == PEFTC_OK;
    free(items);
    pc_st_close(st);
    unlink(tmp);
    return ok;
}

static bool huge_line(const char *path, const char *start, const char *fill, long n)
{
    char *line = malloc((size_t)n + 1);
    size_t s = strlen(start);
    memcpy(line, start, s);
    memset(line + s, fill ? fill[0] : 'x', (size_t)n - s);
    line[n - 1] = '\n';
    bool ok = write_whole(path, line, (size_t)n);
    free(line);
    return ok;
}

static bool mutate(const bad_input *c, const char *path)
{
    switch (c->op) {
    case WRITE: return write_whole(path, c->a, strlen(c->a));
    case REPLACE: return text_replace(path, c->a, c->b);
    case JSON_SET: return json_set(path, c->a, c->b);
    case TRUNCATE: return truncate(path, c->n) == 0;
    case HEADER_LEN: return set_header_len(path, c->n);
    case POKE_F32: return poke_f32(path, c->a, c->n, c->b);
    case TENSOR_BYTES: return tensor_bytes(path, c->a, c->b);
    case HUGE_LINE: return huge_line(path, c->a, c->b, c->n);
    }
    return false;
}

/* ---- how it is loaded ---------------------------------------------------------------------- */

static pc_status load(const bad_input *c, const char *dir, const char *path, pc_error *err)
{
    char model_dir[600], adapter_dir[600];
    snprintf(model_dir, sizeof model_dir, "%s/model", dir);
    snprintf(adapter_dir, sizeof adapter_dir, "%s/adapter", dir);
    pc_status s;
    switch (c->load) {
    case MODEL: {
        pc_model *m = NULL;
        s = pc_model_load(model_dir, NULL, &m, err);
        CHECK_MSG(s != PEFTC_OK || m != NULL, "%s: no model and no error", c->name);
        pc_model_free(m);
        return s;
    }
    case ADAPTER: {
        pc_model *m = NULL;
        pc_peft_model *p = NULL;
        s = pc_model_load(model_dir, NULL, &m, err);
        CHECK_MSG(s == PEFTC_OK, "%s: the base model must load: %s", c->name, err->msg);
        if (s == PEFTC_OK) s = pc_peft_load(m, adapter_dir, &p, err);
        pc_peft_model_free(p);
        pc_model_free(m);
        return s;
    }
    case DATA_CLS:
    case DATA_LM: {
        char *names[2] = {"NEGATIVE", "POSITIVE"};
        pc_dataset *ds = NULL;
        s = c->load == DATA_CLS ? pc_dataset_load(path, "text", "label", names, 2, true, &ds, err)
                                : pc_lm_dataset_load(path, "text", &ds, err);
        CHECK_MSG(s != PEFTC_OK || ds != NULL, "%s: no dataset and no error", c->name);
        if (s != PEFTC_OK) CHECK_MSG(ds == NULL, "%s: a dataset after an error", c->name);
        pc_dataset_free(ds);
        return s;
    }
    case TRAIN_CONFIG: {
        pc_config cfg;
        pc_config_init(&cfg);
        s = pc_config_load_json(&cfg, path, err);
        if (s == PEFTC_OK) s = pc_config_validate(&cfg, err);
        pc_config_free(&cfg);
        return s;
    }
    case TOKENIZER: {
        pc_tokenizer *t = NULL;
        s = pc_tokenizer_load(model_dir, &t, err);
        if (s != PEFTC_OK) CHECK_MSG(t == NULL, "%s: a tokenizer after an error", c->name);
        pc_tokenizer_free(t);
        return s;
    }
    }
    return PEFTC_ERR_INVALID;
}

static void prepare(const bad_input *c, const char *dir)
{
    char dst[600];
    if (c->model) {
        snprintf(dst, sizeof dst, "%s/model", dir);
        const char *src = strcmp(c->model, "q4") == 0 ? q4_fixture() : pc_test_fixture(c->model);
        CHECK_MSG(copy_dir(src, dst), "%s: cannot copy %s", c->name, c->model);
    }
    if (c->adapter) {
        snprintf(dst, sizeof dst, "%s/adapter", dir);
        CHECK_MSG(copy_dir(pc_test_fixture(c->adapter), dst), "%s: cannot copy %s", c->name, c->adapter);
    }
    pc_error err = {0};
    CHECK(pc_mkdirs(dir, &err) == PEFTC_OK);
}

static void run_catalogue(const bad_input *cases, int n)
{
    for (int i = 0; i < n; i++) {
        const bad_input *c = &cases[i];
        const char *dir = case_dir(c->name);
        char path[700];
        prepare(c, dir);
        snprintf(path, sizeof path, "%s/%s", dir, c->file);
        if (!mutate(c, path)) { CHECK_MSG(0, "%s: cannot make the bad input %s", c->name, path); continue; }
        pc_error err = {0};
        pc_status s = load(c, dir, path, &err);
        CHECK_MSG(s == c->code, "%s: status %s, expected %s (%s)", c->name, peftc_status_name(s),
                  peftc_status_name(c->code), err.msg);
        CHECK_MSG(strstr(err.msg, c->where) != NULL, "%s: \"%s\" does not name \"%s\"", c->name, err.msg, c->where);
        CHECK_MSG(strstr(err.msg, c->what) != NULL, "%s: \"%s\" does not say \"%s\"", c->name, err.msg, c->what);
    }
}

#define RUN(table) run_catalogue(table, (int)(sizeof table / sizeof table[0]))

/* ---- safetensors files of a model or an adapter ------------------------------------------ */

static const bad_input safetensors_cases[] = {
    {"st_truncated_data", DBERT, NULL, ST, TRUNCATE, NULL, NULL, 50000, MODEL, PEFTC_ERR_FORMAT,
     "model.safetensors", "end beyond the data section"},
    {"st_truncated_header", DBERT, NULL, ST, TRUNCATE, NULL, NULL, 100, MODEL, PEFTC_ERR_FORMAT,
     "model.safetensors", "header length 4352 exceeds the 92 bytes after the length field"},
    {"st_header_len_beyond_file", DBERT, NULL, ST, HEADER_LEN, NULL, NULL, 1, MODEL, PEFTC_ERR_FORMAT,
     "model.safetensors", "exceeds the 95368 bytes after the length field"},
    {"st_header_len_zero", DBERT, NULL, ST, HEADER_LEN, NULL, NULL, -95376, MODEL, PEFTC_ERR_FORMAT,
     "model.safetensors", "unexpected end of input"},
    {"st_offsets_past_end", DBERT, NULL, ST, REPLACE, "91016]", "91020]", 0, MODEL, PEFTC_ERR_FORMAT,
     "model.safetensors", "end beyond the data section of 91016 bytes"},
    {"st_overlapping_tensors", DBERT, NULL, ST, REPLACE, "[8,264]", "[0,256]", 0, MODEL, PEFTC_ERR_FORMAT,
     "model.safetensors", "overlaps tensor 'classifier.bias'"},
    {"st_wrong_dtype_int", DBERT, NULL, ST, REPLACE, "\"F32\",\"shape\":[2,32]", "\"I32\",\"shape\":[2,32]", 0, MODEL,
     PEFTC_ERR_FORMAT, "model.safetensors", "tensor 'classifier.weight' has dtype I32, expected F32, F16 or BF16"},
    {"st_wrong_dtype_size", DBERT, NULL, ST, REPLACE, "\"F32\",\"shape\":[2,32]", "\"F16\",\"shape\":[2,32]", 0, MODEL,
     PEFTC_ERR_FORMAT, "model.safetensors", "hold 256 bytes but F16 shape [2, 32] needs 128"},
    {"st_duplicate_tensor_name", DBERT, NULL, ST, REPLACE, "\"classifier.weight\"", "\"classifier.bias\"", 0, MODEL,
     PEFTC_ERR_FORMAT, "model.safetensors", "duplicate key 'classifier.bias'"},
    {"st_missing_tensor", DBERT, NULL, ST, REPLACE, "layer.1.ffn.lin2.weight", "layer.1.ffn.lin2.weigh_", 0, MODEL,
     PEFTC_ERR_FORMAT, "tensor 'distilbert.transformer.layer.1.ffn.lin2.weight'", "is missing from the checkpoint"},
    {"st_nan_weight", DBERT, NULL, ST, POKE_F32, "distilbert.transformer.layer.0.attention.q_lin.weight", "nan", 5,
     MODEL, PEFTC_ERR_NUMERIC, "model.safetensors",
     "tensor 'distilbert.transformer.layer.0.attention.q_lin.weight' holds NaN at element 5"},
    {"st_inf_embedding", DBERT, NULL, ST, POKE_F32, "distilbert.embeddings.word_embeddings.weight", "inf", 3199, MODEL,
     PEFTC_ERR_NUMERIC, "model.safetensors",
     "tensor 'distilbert.embeddings.word_embeddings.weight' holds infinity at element 3199"},
    {"st_neg_inf_norm", LLAMA, NULL, ST, POKE_F32, "model.norm.weight", "-inf", 0, MODEL, PEFTC_ERR_NUMERIC,
     "model.safetensors", "tensor 'model.norm.weight' holds infinity at element 0"},
    {"st_nan_lm_head", LLAMA, NULL, ST, POKE_F32, "lm_head.weight", "nan", 2047, MODEL, PEFTC_ERR_NUMERIC,
     "model.safetensors", "tensor 'lm_head.weight' holds NaN at element 2047"},
    {"st_adapter_truncated", DBERT, DBERT_AD, AD_ST, TRUNCATE, NULL, NULL, 2000, ADAPTER, PEFTC_ERR_FORMAT,
     "adapter_model.safetensors", "end beyond the data section"},
    {"st_adapter_nan_lora_A", DBERT, DBERT_AD, AD_ST, POKE_F32, Q_LIN_A, "nan", 0, ADAPTER, PEFTC_ERR_NUMERIC,
     "adapter_model.safetensors", "tensor '" Q_LIN_A "' holds NaN at element 0"},
    {"st_adapter_inf_lora_B", DBERT, DBERT_AD, AD_ST, POKE_F32, V_LIN_B, "inf", 127, ADAPTER, PEFTC_ERR_NUMERIC,
     "adapter_model.safetensors", "tensor '" V_LIN_B "' holds infinity at element 127"},
    {"st_adapter_wrong_dtype", DBERT, DBERT_AD, AD_ST, REPLACE, "\"F32\",\"shape\":[4,32]", "\"I32\",\"shape\":[4,32]", 0,
     ADAPTER, PEFTC_ERR_FORMAT, "adapter_model.safetensors", "has dtype I32, expected F32, F16 or BF16"},
};

TEST(catalogue_safetensors) { RUN(safetensors_cases); }

/* ---- config.json of a model -------------------------------------------------------------- */

static const bad_input model_config_cases[] = {
    {"cfg_missing_model_type", DBERT, NULL, CFG, JSON_SET, "model_type", NULL, 0, MODEL, PEFTC_ERR_FORMAT,
     "config.json", "no model_type"},
    {"cfg_unknown_model_type", DBERT, NULL, CFG, JSON_SET, "model_type", "\"bert\"", 0, MODEL, PEFTC_ERR_UNSUPPORTED,
     "config.json", "model_type 'bert' is not supported"},
    {"cfg_dim_is_a_string", DBERT, NULL, CFG, JSON_SET, "dim", "\"32\"", 0, MODEL, PEFTC_ERR_INVALID,
     "config.json", "key 'dim'"},
    {"cfg_negative_layers", DBERT, NULL, CFG, JSON_SET, "n_layers", "-1", 0, MODEL, PEFTC_ERR_FORMAT,
     "config.json", "inconsistent sizes (dim 32, n_layers -1"},
    {"cfg_heads_do_not_divide_dim", DBERT, NULL, CFG, JSON_SET, "n_heads", "5", 0, MODEL, PEFTC_ERR_FORMAT,
     "config.json", "inconsistent sizes"},
    {"cfg_sizes_that_overflow_int", DBERT, NULL, CFG, JSON_SET, "hidden_dim", "4294967360", 0, MODEL, PEFTC_ERR_FORMAT,
     "config.json", "inconsistent sizes (dim 32, n_layers 2, n_heads 4, hidden_dim 4294967360"},
    {"cfg_absurd_sizes_not_allocated", DBERT, NULL, CFG, JSON_SET, "vocab_size", "10000000", 0, MODEL,
     PEFTC_ERR_FORMAT, "tensor 'distilbert.embeddings.word_embeddings.weight'", "has shape [100, 32], expected [10000000, 32]"},
    {"cfg_hidden_dim_vs_weights", DBERT, NULL, CFG, JSON_SET, "hidden_dim", "48", 0, MODEL, PEFTC_ERR_FORMAT,
     "tensor 'distilbert.transformer.layer.0.ffn.lin1.weight'", "has shape [64, 32], expected [48, 32]"},
    {"cfg_more_layers_than_weights", DBERT, NULL, CFG, JSON_SET, "n_layers", "3", 0, MODEL, PEFTC_ERR_FORMAT,
     "distilbert.transformer.layer.2.", "is missing"},
    {"cfg_dropout_out_of_range", DBERT, NULL, CFG, JSON_SET, "dropout", "1.5", 0, MODEL, PEFTC_ERR_FORMAT,
     "config.json", "dropout probabilities must be in [0, 1)"},
    {"cfg_unknown_activation", DBERT, NULL, CFG, JSON_SET, "activation", "\"swish\"", 0, MODEL, PEFTC_ERR_UNSUPPORTED,
     "config.json", "activation 'swish' is not supported"},
    {"cfg_id2label_gap", DBERT, NULL, CFG, JSON_SET, "id2label", "{\"0\": \"NEG\", \"5\": \"POS\"}", 0, MODEL,
     PEFTC_ERR_FORMAT, "config.json", "id2label entry '5' must map an id in 0..1"},
    {"cfg_duplicate_key", DBERT, NULL, CFG, REPLACE, "\"dim\": 32,", "\"dim\": 32, \"dim\": 48,", 0, MODEL,
     PEFTC_ERR_FORMAT, "config.json", "duplicate key 'dim'"},
    {"cfg_not_an_object", DBERT, NULL, CFG, WRITE, "[1, 2]", NULL, 0, MODEL, PEFTC_ERR_INVALID,
     "config.json", "expected an object holding key 'model_type', got an array"},
    {"cfg_truncated_json", DBERT, NULL, CFG, TRUNCATE, NULL, NULL, 100, MODEL, PEFTC_ERR_FORMAT,
     "config.json:", "invalid JSON"},
    {"cfg_empty_file", DBERT, NULL, CFG, WRITE, "", NULL, 0, MODEL, PEFTC_ERR_FORMAT,
     "config.json", "file is empty"},
    {"llama_kv_heads_do_not_divide", LLAMA, NULL, CFG, JSON_SET, "num_key_value_heads", "3", 0, MODEL,
     PEFTC_ERR_FORMAT, "config.json", "inconsistent sizes"},
    {"llama_odd_head_dim", LLAMA, NULL, CFG, JSON_SET, "head_dim", "7", 0, MODEL, PEFTC_ERR_FORMAT,
     "config.json", "head_dim 7"},
    {"llama_unknown_activation", LLAMA, NULL, CFG, JSON_SET, "hidden_act", "\"gelu\"", 0, MODEL, PEFTC_ERR_UNSUPPORTED,
     "config.json", "hidden_act 'gelu' is not supported"},
    {"llama_bad_rope_theta", LLAMA, NULL, CFG, JSON_SET, "rope_theta", "-10000", 0, MODEL, PEFTC_ERR_FORMAT,
     "config.json", "rope_theta must be > 0, got -10000"},
    {"llama_bad_rms_norm_eps", LLAMA, NULL, CFG, JSON_SET, "rms_norm_eps", "-1", 0, MODEL, PEFTC_ERR_FORMAT,
     "config.json", "rms_norm_eps must be >= 0, got -1"},
    {"llama_token_id_overflows", LLAMA, NULL, CFG, JSON_SET, "bos_token_id", "1e20", 0, MODEL, PEFTC_ERR_FORMAT,
     "config.json", "'bos_token_id' must be a token id"},
    {"llama_vocab_vs_weights", LLAMA, NULL, CFG, JSON_SET, "vocab_size", "100", 0, MODEL, PEFTC_ERR_FORMAT,
     "tensor 'model.embed_tokens.weight'", "has shape [64, 32], expected [100, 32]"},
    {"llama_untied_head_missing", LLAMA, NULL, ST, REPLACE, "\"lm_head.weight\"", "\"lm_head.weigh_\"", 0, MODEL,
     PEFTC_ERR_FORMAT, "lm_head.weight", "is missing (tie_word_embeddings is false)"},
};

TEST(catalogue_model_config) { RUN(model_config_cases); }

/* ---- adapters ----------------------------------------------------------------------------- */

static const bad_input adapter_cases[] = {
    {"ad_rank_mismatch", DBERT, DBERT_AD, AD_CFG, JSON_SET, "r", "8", 0, ADAPTER, PEFTC_ERR_FORMAT,
     "adapter_model.safetensors", "has shape [4, 32], expected [8, 32]"},
    {"ad_for_another_architecture", DBERT, LLAMA_AD, AD_CFG, JSON_SET, "task_type", "\"SEQ_CLS\"", 0, ADAPTER,
     PEFTC_ERR_INVALID, "'k_proj'", "matches no Linear module"},
    {"ad_for_another_size", "causal_tiny/llama_tied_bias/model", LLAMA_AD, AD_CFG, JSON_SET, "r", "4", 0, ADAPTER,
     PEFTC_ERR_FORMAT, "q_proj.lora_B.weight", "has shape [32, 4], expected [64, 4]"},
    {"ad_unknown_peft_type", DBERT, DBERT_AD, AD_CFG, JSON_SET, "peft_type", "\"IA3\"", 0, ADAPTER,
     PEFTC_ERR_UNSUPPORTED, "adapter_config.json", "peft_type 'IA3' is not supported"},
    {"ad_no_peft_type", DBERT, DBERT_AD, AD_CFG, JSON_SET, "peft_type", NULL, 0, ADAPTER, PEFTC_ERR_UNSUPPORTED,
     "adapter_config.json", "peft_type '' is not supported"},
    {"ad_targets_match_nothing", DBERT, DBERT_AD, AD_CFG, JSON_SET, "target_modules", "[\"query\"]", 0, ADAPTER,
     PEFTC_ERR_INVALID, "'query'", "matches no Linear module"},
    {"ad_regex_matches_nothing", DBERT, DBERT_AD, AD_CFG, JSON_SET, "target_modules", "\".*\\\\.query\"", 0, ADAPTER,
     PEFTC_ERR_INVALID, "target_modules", "matches no Linear module"},
    {"ad_bad_regex", DBERT, DBERT_AD, AD_CFG, JSON_SET, "target_modules", "\".*(q_lin\"", 0, ADAPTER,
     PEFTC_ERR_INVALID, "regex '.*(q_lin'", "missing closing parenthesis"},
    {"ad_targets_not_a_list", DBERT, DBERT_AD, AD_CFG, JSON_SET, "target_modules", "5", 0, ADAPTER, PEFTC_ERR_FORMAT,
     "adapter_config.json", "'target_modules' must be a list or a string"},
    {"ad_extra_tensor", DBERT, DBERT_AD, AD_ST, REPLACE, "layer.1.attention.v_lin.lora_B", "layer.1.attention.k_lin.lora_B",
     0, ADAPTER, PEFTC_ERR_FORMAT, "k_lin.lora_B.weight", "has no place in this model"},
    {"ad_missing_tensor", DBERT, DBERT_AD, AD_CFG, JSON_SET, "target_modules", "[\"q_lin\", \"v_lin\", \"k_lin\"]", 0,
     ADAPTER, PEFTC_ERR_FORMAT, "layer.0.attention.k_lin.lora_A.weight", "is missing"},
    {"ad_dora_without_magnitude", DBERT, DBERT_AD, AD_CFG, JSON_SET, "use_dora", "true", 0, ADAPTER, PEFTC_ERR_FORMAT,
     "lora_magnitude_vector", "is missing"},
    {"ad_rank_zero", DBERT, DBERT_AD, AD_CFG, JSON_SET, "r", "0", 0, ADAPTER, PEFTC_ERR_FORMAT,
     "adapter_config.json", "r must be a positive integer, got 0"},
    {"ad_rank_a_string", DBERT, DBERT_AD, AD_CFG, JSON_SET, "r", "\"4\"", 0, ADAPTER, PEFTC_ERR_INVALID,
     "adapter_config.json", "key 'r'"},
    {"ad_unknown_bias", DBERT, DBERT_AD, AD_CFG, JSON_SET, "bias", "\"some\"", 0, ADAPTER, PEFTC_ERR_FORMAT,
     "adapter_config.json", "bias must be \"none\", \"all\" or \"lora_only\""},
    {"ad_modules_to_save_a_string", DBERT, DBERT_AD, AD_CFG, JSON_SET, "modules_to_save", "\"classifier\"", 0, ADAPTER,
     PEFTC_ERR_FORMAT, "adapter_config.json", "'modules_to_save' must be a list of strings"},
    {"ad_rank_pattern", DBERT, DBERT_AD, AD_CFG, JSON_SET, "rank_pattern", "{\"q_lin\": 8}", 0, ADAPTER,
     PEFTC_ERR_UNSUPPORTED, "adapter_config.json", "'rank_pattern' is not supported"},
    {"ad_unknown_init", DBERT, DBERT_AD, AD_CFG, JSON_SET, "init_lora_weights", "\"pissa\"", 0, ADAPTER,
     PEFTC_ERR_UNSUPPORTED, "adapter_config.json", "init_lora_weights must be true, false or \"gaussian\""},
    {"ad_dropout_out_of_range", DBERT, DBERT_AD, AD_CFG, JSON_SET, "lora_dropout", "1.5", 0, ADAPTER,
     PEFTC_ERR_FORMAT, "adapter_config.json", "lora_dropout must be in [0, 1), got 1.5"},
    {"ad_duplicate_key", DBERT, DBERT_AD, AD_CFG, REPLACE, "\"r\": 4,", "\"r\": 4, \"r\": 8,", 0, ADAPTER,
     PEFTC_ERR_FORMAT, "adapter_config.json", "duplicate key 'r'"},
};

TEST(catalogue_adapters) { RUN(adapter_cases); }

/* ---- 4-bit (bitsandbytes) checkpoints ---------------------------------------------------- */

static const bad_input quant4_cases[] = {
    {"q4_blocksize", "q4", NULL, ST, TENSOR_BYTES, Q_PROJ ".quant_state.bitsandbytes__nf4",
     "{\"quant_type\": \"nf4\", \"blocksize\": 128, \"shape\": [32, 32], \"nested_offset\": 0.1}", 0, MODEL,
     PEFTC_ERR_UNSUPPORTED, Q_PROJ ".quant_state", "blocksize 128 is not supported"},
    {"q4_shape_vs_config", "q4", NULL, ST, TENSOR_BYTES, Q_PROJ ".quant_state.bitsandbytes__nf4",
     "{\"quant_type\": \"nf4\", \"blocksize\": 64, \"shape\": [32, 16], \"nested_offset\": 0.1}", 0, MODEL,
     PEFTC_ERR_FORMAT, Q_PROJ ".quant_state", "shape does not match [32, 32] from config.json"},
    {"q4_shape_not_numbers", "q4", NULL, ST, TENSOR_BYTES, Q_PROJ ".quant_state.bitsandbytes__nf4",
     "{\"quant_type\": \"nf4\", \"blocksize\": 64, \"shape\": [\"32\", \"32\"], \"nested_offset\": 0.1}", 0, MODEL,
     PEFTC_ERR_FORMAT, Q_PROJ ".quant_state", "shape does not match [32, 32] from config.json"},
    {"q4_state_not_an_object", "q4", NULL, ST, TENSOR_BYTES, Q_PROJ ".quant_state.bitsandbytes__nf4", "[1, 2]", 0,
     MODEL, PEFTC_ERR_INVALID, Q_PROJ ".quant_state", "expected an object"},
    {"q4_wrong_code_table", "q4", NULL, ST, POKE_F32, Q_PROJ ".quant_map", "0.5", 3, MODEL, PEFTC_ERR_FORMAT,
     Q_PROJ ".quant_map", "not the nf4 code table"},
    {"q4_nested_map_missing", "q4", NULL, ST, TENSOR_BYTES, Q_PROJ ".nested_quant_map", NULL, 0, MODEL,
     PEFTC_ERR_FORMAT, Q_PROJ ".nested_quant_map", "is missing"},
    {"q4_packed_weight_short", "q4", NULL, ST, TENSOR_BYTES, Q_PROJ, "0123456789", 0, MODEL, PEFTC_ERR_FORMAT,
     Q_PROJ, "is U8 with 10 bytes, expected U8 with 512"},
    {"q4_nan_nested_absmax", "q4", NULL, ST, POKE_F32, Q_PROJ ".nested_absmax", "nan", 0, MODEL, PEFTC_ERR_NUMERIC,
     Q_PROJ ".nested_absmax", "holds NaN at element 0"},
    {"q4_inf_nested_code", "q4", NULL, ST, POKE_F32, Q_PROJ ".nested_quant_map", "inf", 7, MODEL, PEFTC_ERR_NUMERIC,
     Q_PROJ ".nested_quant_map", "holds infinity at element 7"},
};

TEST(catalogue_quant4) { RUN(quant4_cases); }

/* ---- tokenizer files --------------------------------------------------------------------- */

#define TOK_JSON(vocab) "{\"model\": {\"type\": \"WordPiece\", \"unk_token\": \"[UNK]\", \"vocab\": " vocab "}}"

static const bad_input tokenizer_cases[] = {
    {"tok_vocab_not_utf8", NULL, NULL, "model/vocab.txt", WRITE, "[PAD]\n[UNK]\n[CLS]\n[SEP]\ncaf\xe9\n", NULL, 0,
     TOKENIZER, PEFTC_ERR_FORMAT, "vocab.txt: line 5", "invalid UTF-8"},
    {"tok_json_vocab_not_an_object", NULL, NULL, "model/tokenizer.json", WRITE, TOK_JSON("[\"[UNK]\", \"a\"]"), NULL,
     0, TOKENIZER, PEFTC_ERR_FORMAT, "tokenizer.json", "model has no 'vocab' object"},
    {"tok_json_added_token_without_id", NULL, NULL, "model/tokenizer.json", WRITE,
     "{\"added_tokens\": [{\"content\": \"<x>\"}], \"model\": {\"type\": \"WordPiece\", \"vocab\": {\"[UNK]\": 0}}}", NULL,
     0, TOKENIZER, PEFTC_ERR_FORMAT, "tokenizer.json", "added_tokens"},
    {"tok_json_shared_id", NULL, NULL, "model/tokenizer.json", WRITE, TOK_JSON("{\"[UNK]\": 0, \"a\": 1, \"b\": 1}"),
     NULL, 0, TOKENIZER, PEFTC_ERR_FORMAT, "tokenizer.json", "id 1"},
    {"tok_json_negative_id", NULL, NULL, "model/tokenizer.json", WRITE, TOK_JSON("{\"[UNK]\": 0, \"a\": -1}"), NULL, 0,
     TOKENIZER, PEFTC_ERR_FORMAT, "tokenizer.json", "-1"},
    {"tok_json_enormous_id", NULL, NULL, "model/tokenizer.json", WRITE, TOK_JSON("{\"[UNK]\": 0, \"a\": 2000000000}"),
     NULL, 0, TOKENIZER, PEFTC_ERR_FORMAT, "tokenizer.json", "2000000000"},
    {"tok_json_no_model", NULL, NULL, "model/tokenizer.json", WRITE, "{\"normalizer\": null}", NULL, 0, TOKENIZER,
     PEFTC_ERR_FORMAT, "tokenizer.json", "model"},
    {"tok_config_bad_max_length", NULL, NULL, "model/tokenizer_config.json", WRITE, "{\"model_max_length\": -5}", NULL,
     0, TOKENIZER, PEFTC_ERR_FORMAT, "tokenizer_config.json", "'model_max_length' must be a positive integer"},
};

TEST(catalogue_tokenizer)
{
    /* a good vocab.txt beside each bad file (a bad tokenizer.json is read first) */
    for (size_t i = 0; i < sizeof tokenizer_cases / sizeof tokenizer_cases[0]; i++) {
        char dir[700], path[800];
        pc_error err = {0};
        snprintf(dir, sizeof dir, "%s/model", case_dir(tokenizer_cases[i].name));
        CHECK(pc_mkdirs(dir, &err) == PEFTC_OK);
        snprintf(path, sizeof path, "%s/vocab.txt", dir);
        CHECK(write_whole(path, "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\n", 31));
    }
    RUN(tokenizer_cases);
}

/* ---- data sets ---------------------------------------------------------------------------- */

static const bad_input dataset_cases[] = {
    {"data_enormous_unterminated_line", NULL, NULL, "big.jsonl", HUGE_LINE, "{\"text\": \"", NULL, 10 << 20, DATA_CLS,
     PEFTC_ERR_FORMAT, "big.jsonl:1", "invalid JSON"},
    {"data_label_not_utf8", NULL, NULL, "l.jsonl", WRITE, "{\"text\": \"ok\", \"label\": \"NEG\xff\"}\n", NULL, 0,
     DATA_CLS, PEFTC_ERR_FORMAT, "l.jsonl:1", "unknown label 'NEG"},
    {"data_key_not_utf8", NULL, NULL, "k.jsonl", WRITE, "{\"te\xc3xt\": \"ok\", \"label\": 0}\n", NULL, 0, DATA_CLS,
     PEFTC_ERR_FORMAT, "k.jsonl:1", "missing column 'text'"},
    {"data_csv_header_not_utf8", NULL, NULL, "h.csv", WRITE, "te\xffxt,label\nok,0\n", NULL, 0, DATA_CLS,
     PEFTC_ERR_FORMAT, "h.csv:1", "missing column 'text'"},
    {"data_huge_label", NULL, NULL, "big_label.jsonl", WRITE, "{\"text\": \"a\", \"label\": 1e20}\n", NULL, 0, DATA_CLS,
     PEFTC_ERR_FORMAT, "big_label.jsonl:1", "out of range"},
    {"data_label_string_out_of_range", NULL, NULL, "s.jsonl", WRITE, "{\"text\": \"a\", \"label\": \"7\"}\n", NULL, 0,
     DATA_CLS, PEFTC_ERR_FORMAT, "s.jsonl:1", "label 7 out of range [0, 2)"},
    {"data_empty_lines_then_bad", NULL, NULL, "e.jsonl", WRITE, "\n\n{\"text\": \"a\", \"label\": 0}\n\n\n{\"text\": 1}\n",
     NULL, 0, DATA_CLS, PEFTC_ERR_FORMAT, "e.jsonl:6", "column 'text' is not a string"},
    {"data_csv_missing_text_column", NULL, NULL, "m.csv", WRITE, "sentence,label\nok,0\n", NULL, 0, DATA_CLS,
     PEFTC_ERR_FORMAT, "m.csv", "'text'"},
    {"data_tsv_missing_label_column", NULL, NULL, "m.tsv", WRITE, "text\tscore\nok\t0\n", NULL, 0, DATA_CLS,
     PEFTC_ERR_FORMAT, "m.tsv", "'label'"},
    {"data_csv_unterminated_quote", NULL, NULL, "q.csv", WRITE, "text,label\n\"ok,0\nfine,1\n", NULL, 0, DATA_CLS,
     PEFTC_ERR_FORMAT, "q.csv:2", "quote"},
    {"data_csv_extra_field", NULL, NULL, "x.csv", WRITE, "text,label\nok,0,extra\n", NULL, 0, DATA_CLS,
     PEFTC_ERR_FORMAT, "x.csv:2", "3 fields"},
    {"data_deep_nesting", NULL, NULL, "deep.jsonl", HUGE_LINE, "{\"text\": \"a\", \"label\": 0, \"x\": ", "[",
     4000, DATA_CLS, PEFTC_ERR_FORMAT, "deep.jsonl:1", "invalid JSON"},
    {"data_json_array_of_numbers", NULL, NULL, "arr.json", WRITE, "[1, 2]", NULL, 0, DATA_CLS, PEFTC_ERR_FORMAT,
     "arr.json", "not a JSON object"},
    {"data_lm_prompt_without_completion", NULL, NULL, "p.jsonl", WRITE, "{\"prompt\": \"Q\"}\n", NULL, 0, DATA_LM,
     PEFTC_ERR_FORMAT, "p.jsonl:1", "completion"},
    {"data_lm_completion_not_a_string", NULL, NULL, "c.jsonl", WRITE, "{\"prompt\": \"Q\", \"completion\": 5}\n", NULL,
     0, DATA_LM, PEFTC_ERR_FORMAT, "c.jsonl:1", "completion"},
    {"data_lm_text_missing", NULL, NULL, "t.jsonl", WRITE, "{\"content\": \"hello\"}\n", NULL, 0, DATA_LM,
     PEFTC_ERR_FORMAT, "t.jsonl:1", "'text'"},
};

TEST(catalogue_datasets) { RUN(dataset_cases); }

/* ---- training configuration files --------------------------------------------------------- */

static const bad_input train_config_cases[] = {
    {"tc_negative_lr", NULL, NULL, "neg_lr.json", WRITE, "{\"learning_rate\": -0.001}", NULL, 0, TRAIN_CONFIG,
     PEFTC_ERR_INVALID, "learning_rate", "must be >= 0"},
    {"tc_batch_size_overflows_int", NULL, NULL, "bs.json", WRITE, "{\"per_device_train_batch_size\": 3000000000}", NULL,
     0, TRAIN_CONFIG, PEFTC_ERR_INVALID, "key 'per_device_train_batch_size'", "expected an integer, got 3e+09"},
    {"tc_fractional_accumulation", NULL, NULL, "ga.json", WRITE, "{\"gradient_accumulation_steps\": 2.5}", NULL, 0,
     TRAIN_CONFIG, PEFTC_ERR_INVALID, "gradient_accumulation_steps", "expected an integer"},
    {"tc_alpha_a_string", NULL, NULL, "alpha.json", WRITE, "{\"lora_alpha\": \"16\"}", NULL, 0, TRAIN_CONFIG,
     PEFTC_ERR_INVALID, "lora_alpha", "expected a number, got a string"},
    {"tc_id2label_gap", NULL, NULL, "labels.json", WRITE, "{\"id2label\": {\"0\": \"A\", \"2\": \"B\"}}", NULL, 0,
     TRAIN_CONFIG, PEFTC_ERR_INVALID, "key 'id2label'", "key \"2\" is not a label id in 0..1"},
    {"tc_huge_max_steps", NULL, NULL, "steps.json", WRITE, "{\"max_steps\": 1e20}", NULL, 0, TRAIN_CONFIG,
     PEFTC_ERR_INVALID, "key 'max_steps'", "expected an integer, got 1e+20"},
    {"tc_infinite_epochs", NULL, NULL, "epochs.json", WRITE, "{\"num_train_epochs\": 1e999}", NULL, 0, TRAIN_CONFIG,
     PEFTC_ERR_INVALID, "key 'num_train_epochs'", "expected a finite number"},
    {"tc_not_utf8", NULL, NULL, "utf8.json", WRITE, "{\"output_dir\": \"out\xff\"}", NULL, 0, TRAIN_CONFIG,
     PEFTC_ERR_FORMAT, "utf8.json:1:20", "invalid UTF-8"},
};

TEST(catalogue_training_config) { RUN(train_config_cases); }
