#include "train/config.h"

#include "formats/json.h"
#include "train/optim.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- the key table ------------------------------------------------------- */

typedef enum pc_key_kind {
    KEY_STR, KEY_INT, KEY_DBL, KEY_BOOL, KEY_LIST,
    KEY_TARGETS,       /* target_modules: list, regex string or "all-linear" */
    KEY_INIT_WEIGHTS,  /* init_lora_weights: JSON bool or string */
    KEY_NUM_LABELS, KEY_ID2LABEL, KEY_LABEL2ID,
    KEY_PEFT_TYPE,     /* only "LORA" */
    KEY_PUSH_TO_HUB,   /* false is recorded and ignored, true is an error */
    KEY_IGNORED,       /* harmless Python key: recorded, no effect */
    KEY_ALIAS          /* old spelling of another key */
} pc_key_kind;

typedef struct pc_key {
    const char *name;
    pc_key_kind kind;
    size_t off;          /* offset of the field in pc_config */
    size_t count_off;    /* KEY_LIST: offset of the int count */
    const char *dflt;    /* default: the literal itself for strings, its text for numbers and bools */
    bool nullable;       /* JSON null restores the default (Python's None) */
    const char *alias_of;
} pc_key;

#define F(field) offsetof(pc_config, field)
#define K_STR(n, d, nul)  { #n, KEY_STR, F(n), 0, d, nul, NULL }
#define K_INT(n, d, nul)  { #n, KEY_INT, F(n), 0, d, nul, NULL }
#define K_DBL(n, d, nul)  { #n, KEY_DBL, F(n), 0, d, nul, NULL }
#define K_BOOL(n, d)      { #n, KEY_BOOL, F(n), 0, d, false, NULL }
#define K_LIST(n, cnt)    { #n, KEY_LIST, F(n), F(cnt), NULL, true, NULL }
#define K_IGNORED(n)      { #n, KEY_IGNORED, 0, 0, NULL, true, NULL }

static const pc_key keys[] = {
    K_STR(model_name_or_path, NULL, true),
    K_STR(adapter_name_or_path, NULL, true),
    K_STR(train_file, NULL, true),
    K_STR(validation_file, NULL, true),
    K_STR(text_column, "text", false),
    K_STR(label_column, "label", false),
    K_STR(output_dir, "trainer_output", false),
    K_STR(task_type, "SEQ_CLS", false),
    K_INT(max_length, "0", true),
    { "num_labels", KEY_NUM_LABELS, F(num_labels), 0, "2", true, NULL },
    { "id2label", KEY_ID2LABEL, F(id2label), 0, NULL, true, NULL },
    { "label2id", KEY_LABEL2ID, F(id2label), 0, NULL, true, NULL },

    K_INT(r, "8", false),
    K_DBL(lora_alpha, "8", false),
    { "target_modules", KEY_TARGETS, F(target_modules), 0, NULL, true, NULL },
    K_DBL(lora_dropout, "0", false),
    K_STR(bias, "none", false),
    K_BOOL(use_rslora, "false"),
    K_BOOL(use_dora, "false"),
    K_BOOL(fan_in_fan_out, "false"),
    { "init_lora_weights", KEY_INIT_WEIGHTS, F(init_lora_weights), 0, "true", false, NULL },
    K_LIST(modules_to_save, n_modules_to_save),
    { "peft_type", KEY_PEFT_TYPE, 0, 0, NULL, false, NULL },

    K_DBL(learning_rate, "5e-5", false),
    K_DBL(weight_decay, "0", false),
    K_DBL(adam_beta1, "0.9", false),
    K_DBL(adam_beta2, "0.999", false),
    K_DBL(adam_epsilon, "1e-8", false),
    K_DBL(max_grad_norm, "1", false),
    K_DBL(warmup_ratio, "0", true),
    K_DBL(num_train_epochs, "3", false),
    K_DBL(neftune_noise_alpha, "0", true),
    K_STR(lr_scheduler_type, "linear", false),
    K_STR(optim, "adamw_torch", false),
    K_STR(eval_strategy, "no", false),
    K_STR(save_strategy, "steps", false),
    K_INT(warmup_steps, "0", false),
    K_INT(max_steps, "-1", false),
    K_INT(per_device_train_batch_size, "8", false),
    K_INT(per_device_eval_batch_size, "8", false),
    K_INT(gradient_accumulation_steps, "1", false),
    K_INT(logging_steps, "500", false),
    K_INT(eval_steps, "0", true),
    K_INT(save_steps, "500", false),
    K_INT(save_total_limit, "0", true),
    K_STR(resume_from_checkpoint, NULL, true),
    K_INT(max_consecutive_nonfinite_steps, "5", false),
    K_INT(max_memory_mb, "0", false),
    K_BOOL(dry_run, "false"),
    K_INT(seed, "42", false),
    K_INT(threads, "0", false),
    K_BOOL(profile, "false"),
    K_BOOL(logging_first_step, "false"),
    K_BOOL(shuffle, "true"),
    K_BOOL(gradient_checkpointing, "false"),
    K_INT(gradient_checkpointing_kept_blocks, "0", false),
    K_BOOL(dataloader_drop_last, "false"),

    K_BOOL(packing, "false"),
    K_BOOL(completion_only_loss, "true"),
    K_STR(prompt, NULL, true),
    K_INT(max_new_tokens, "64", false),
    K_BOOL(do_sample, "false"),
    K_DBL(temperature, "0", false),
    K_INT(top_k, "50", false),
    K_DBL(top_p, "1", false),

    K_BOOL(load_in_4bit, "false"),
    K_STR(bnb_4bit_quant_type, "fp4", false),
    K_BOOL(bnb_4bit_use_double_quant, "false"),
    K_STR(bnb_4bit_compute_dtype, "float32", true),
    K_LIST(llm_int8_skip_modules, n_llm_int8_skip_modules),
    K_BOOL(bf16, "false"),

    { "evaluation_strategy", KEY_ALIAS, 0, 0, NULL, false, "eval_strategy" },
    { "dataset_text_field", KEY_ALIAS, 0, 0, NULL, false, "text_column" },
    { "push_to_hub", KEY_PUSH_TO_HUB, 0, 0, NULL, false, NULL },
    K_IGNORED(report_to),
    K_IGNORED(overwrite_output_dir),
    K_IGNORED(logging_dir),
    K_IGNORED(run_name),
    K_IGNORED(do_train),
    K_IGNORED(do_eval),
    K_IGNORED(disable_tqdm),
};
#define N_KEYS ((int)(sizeof keys / sizeof keys[0]))

#define FIELD(c, k, type) ((type *)((char *)(c) + (k)->off))
#define CFIELD(c, k, type) ((const type *)((const char *)(c) + (k)->off))

static const char *const all_linear = "all-linear";

static int key_index(const char *name)
{
    for (int i = 0; i < N_KEYS; i++)
        if (strcmp(keys[i].name, name) == 0) return i;
    return -1;
}

/* The key a name stands for (an alias resolves to its target). */
static int resolved_index(int i)
{
    return keys[i].kind == KEY_ALIAS ? key_index(keys[i].alias_of) : i;
}

/* ---- unknown keys: suggestion by edit distance ---------------------------- */

enum { MAX_SUGGEST_LEN = 64 };

static int levenshtein(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    int row[MAX_SUGGEST_LEN + 1];
    for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* The closest valid key when it is at most min(3, len/3) edits away, else NULL. */
static const char *suggest_key(const char *name)
{
    size_t len = strlen(name);
    if (len > MAX_SUGGEST_LEN) return NULL;
    int limit = (int)(len / 3) < 3 ? (int)(len / 3) : 3;
    const char *best = NULL;
    int best_d = limit + 1;
    for (int i = 0; i < N_KEYS; i++) {
        if (strlen(keys[i].name) > MAX_SUGGEST_LEN) continue;
        int d = levenshtein(name, keys[i].name);
        if (d < best_d) { best_d = d; best = keys[i].name; }
    }
    return best;
}

static pc_status fail_unknown_key(const char *name, const char *origin, pc_error *err)
{
    const char *s = suggest_key(name);
    if (s)
        return pc_fail(err, PEFTC_ERR_INVALID, "unknown key '%s' in %s; did you mean '%s'?", name, origin, s);
    return pc_fail(err, PEFTC_ERR_INVALID, "unknown key '%s' in %s", name, origin);
}

/* ---- owned values ------------------------------------------------------- */

static void free_list(char **list, int n)
{
    if (!list) return;
    for (int i = 0; i < n; i++) free(list[i]);
    free(list);
}

static void free_str(char *s, const char *dflt)
{
    if (s != dflt) free(s);
}

static void clear_targets(pc_config *c)
{
    free_list(c->target_modules, c->n_target_modules);
    free(c->target_modules_regex);
    c->target_modules = NULL;
    c->n_target_modules = 0;
    c->target_modules_regex = NULL;
    c->target_modules_is_regex = false;
}

static void clear_labels(pc_config *c)
{
    free_list(c->id2label, c->num_labels);
    c->id2label = NULL;
}

/* Releases what key k owns and puts its default back. */
static void reset_key(pc_config *c, const pc_key *k)
{
    switch (k->kind) {
    case KEY_STR:
    case KEY_INIT_WEIGHTS:
        free_str(*FIELD(c, k, char *), k->dflt);
        *FIELD(c, k, char *) = (char *)k->dflt;
        break;
    case KEY_INT: *FIELD(c, k, int) = (int)strtol(k->dflt, NULL, 10); break;
    case KEY_DBL: *FIELD(c, k, double) = strtod(k->dflt, NULL); break;
    case KEY_BOOL: *FIELD(c, k, bool) = strcmp(k->dflt, "true") == 0; break;
    case KEY_LIST:
        free_list(*FIELD(c, k, char **), *(int *)((char *)c + k->count_off));
        *FIELD(c, k, char **) = NULL;
        *(int *)((char *)c + k->count_off) = 0;
        break;
    case KEY_TARGETS: clear_targets(c); break;
    case KEY_NUM_LABELS:  /* back to "not given": id2label's count, else 2 */
        if (!c->id2label) c->num_labels = 2;
        c->num_labels_given = false;
        break;
    case KEY_ID2LABEL:
    case KEY_LABEL2ID:
        clear_labels(c);
        if (!c->num_labels_given) c->num_labels = 2;
        break;
    case KEY_PEFT_TYPE:
    case KEY_PUSH_TO_HUB:
    case KEY_IGNORED:
    case KEY_ALIAS:
        break;
    }
}

void pc_config_init(pc_config *c)
{
    memset(c, 0, sizeof *c);
    for (int i = 0; i < N_KEYS; i++) {
        const pc_key *k = &keys[i];
        if (k->kind == KEY_STR || k->kind == KEY_INIT_WEIGHTS) *FIELD(c, k, char *) = (char *)k->dflt;
        else reset_key(c, k);
    }
}

void pc_config_free(pc_config *c)
{
    if (!c) return;
    for (int i = 0; i < N_KEYS; i++) reset_key(c, &keys[i]);
    cJSON_Delete(c->ignored);
    c->ignored = NULL;
}

static pc_status dup_str(const char *s, char **out, pc_error *err)
{
    *out = strdup(s);
    return *out ? PEFTC_OK : pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
}

/* ---- applying one JSON value to one key ---------------------------------- */

/* Context for messages: where the value came from and under which name. */
typedef struct pc_where { const char *origin, *name; } pc_where;

static pc_status fail_type(pc_where w, const char *expected, const cJSON *v, pc_error *err)
{
    return pc_fail(err, PEFTC_ERR_INVALID, "%s: key '%s': expected %s, got %s", w.origin, w.name,
                   expected, pc_json_type_name(v));
}

static pc_status json_to_int(const cJSON *v, pc_where w, int *out, pc_error *err)
{
    if (!cJSON_IsNumber(v)) return fail_type(w, "an integer", v, err);
    double d = v->valuedouble;
    if (d != floor(d) || d < INT_MIN || d > INT_MAX)
        return pc_fail(err, PEFTC_ERR_INVALID, "%s: key '%s': expected an integer, got %g", w.origin,
                       w.name, d);
    *out = (int)d;
    return PEFTC_OK;
}

/* A JSON array of non-empty strings as an owned list. */
static pc_status json_to_list(const cJSON *v, pc_where w, char ***out, int *n_out, pc_error *err)
{
    if (!cJSON_IsArray(v)) return fail_type(w, "an array of strings", v, err);
    int n = cJSON_GetArraySize(v);
    char **list = calloc(n > 0 ? (size_t)n : 1, sizeof *list);
    if (!list) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
    int i = 0;
    pc_status s = PEFTC_OK;
    for (const cJSON *it = v->child; it && s == PEFTC_OK; it = it->next, i++) {
        if (!cJSON_IsString(it))
            s = pc_fail(err, PEFTC_ERR_INVALID, "%s: key '%s': item %d is %s, expected a string",
                        w.origin, w.name, i + 1, pc_json_type_name(it));
        else if (!it->valuestring[0])
            s = pc_fail(err, PEFTC_ERR_INVALID, "%s: key '%s': item %d is empty", w.origin, w.name, i + 1);
        else
            s = dup_str(it->valuestring, &list[i], err);
    }
    if (s != PEFTC_OK) { free_list(list, n); return s; }
    *out = list;
    *n_out = n;
    return PEFTC_OK;
}

static pc_status set_list(pc_config *c, const pc_key *k, const cJSON *v, pc_where w, pc_error *err)
{
    char **list;
    int n;
    PC_TRY(json_to_list(v, w, &list, &n, err));
    reset_key(c, k);
    *FIELD(c, k, char **) = list;
    *(int *)((char *)c + k->count_off) = n;
    return PEFTC_OK;
}

/* target_modules: array -> names; "all-linear" (any case) -> the shorthand;
 * any other string -> a regex that must fullmatch the module name. */
static pc_status set_targets(pc_config *c, const cJSON *v, pc_where w, pc_error *err)
{
    if (cJSON_IsArray(v)) {
        if (cJSON_GetArraySize(v) == 0)
            return pc_fail(err, PEFTC_ERR_INVALID,
                           "%s: key '%s': empty list (leave the key out for the model's default)",
                           w.origin, w.name);
        char **list;
        int n;
        PC_TRY(json_to_list(v, w, &list, &n, err));
        clear_targets(c);
        c->target_modules = list;
        c->n_target_modules = n;
        return PEFTC_OK;
    }
    if (!cJSON_IsString(v)) return fail_type(w, "an array of names or a regex string", v, err);
    if (!v->valuestring[0])
        return pc_fail(err, PEFTC_ERR_INVALID, "%s: key '%s': empty regex", w.origin, w.name);
    if (strcasecmp(v->valuestring, all_linear) == 0) {
        char **list = malloc(sizeof *list);
        if (!list || dup_str(all_linear, &list[0], err) != PEFTC_OK) {
            free(list);
            return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
        }
        clear_targets(c);
        c->target_modules = list;
        c->n_target_modules = 1;
        return PEFTC_OK;
    }
    char *re;
    PC_TRY(dup_str(v->valuestring, &re, err));
    clear_targets(c);
    c->target_modules_regex = re;
    c->target_modules_is_regex = true;
    return PEFTC_OK;
}

/* Installs names[0..n) as id2label, keeping num_labels consistent. Takes names. */
static pc_status install_labels(pc_config *c, char **names, int n, pc_where w, pc_error *err)
{
    if (c->num_labels_given && n != c->num_labels) {
        free_list(names, n);
        return pc_fail(err, PEFTC_ERR_INVALID, "%s: key '%s' has %d labels but num_labels is %d",
                       w.origin, w.name, n, c->num_labels);
    }
    clear_labels(c);
    c->id2label = names;
    c->num_labels = n;
    return PEFTC_OK;
}

static pc_status check_unique_labels(char **names, int n, pc_where w, pc_error *err)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++)
            if (strcmp(names[i], names[j]) == 0)
                return pc_fail(err, PEFTC_ERR_INVALID, "%s: key '%s': label '%s' appears twice",
                               w.origin, w.name, names[i]);
    return PEFTC_OK;
}

/* Parses a decimal label id in [0, n) from s; -1 if s is not one. */
static int parse_label_id(const char *s, int n)
{
    if (!isdigit((unsigned char)s[0]) || (s[0] == '0' && s[1])) return -1;
    char *end;
    errno = 0;
    long id = strtol(s, &end, 10);
    return (*end || errno || id >= n) ? -1 : (int)id;
}

/* id2label {"0": "NEGATIVE", "1": "POSITIVE"} (keys exactly 0..n-1) or
 * label2id {"NEGATIVE": 0, ...} (ids exactly 0..n-1) -> names by id. */
static pc_status json_to_label_names(const cJSON *v, bool by_name, pc_where w, char ***out, int *n_out,
                                     pc_error *err)
{
    if (!cJSON_IsObject(v)) return fail_type(w, "an object", v, err);
    int n = cJSON_GetArraySize(v);
    if (n == 0) return pc_fail(err, PEFTC_ERR_INVALID, "%s: key '%s': no labels", w.origin, w.name);
    char **names = calloc((size_t)n, sizeof *names);
    if (!names) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
    pc_status s = PEFTC_OK;
    for (const cJSON *it = v->child; it && s == PEFTC_OK; it = it->next) {
        const char *name;
        int id;
        if (by_name) {
            name = it->string;
            if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) ||
                it->valuedouble < 0 || it->valuedouble >= n) {
                s = pc_fail(err, PEFTC_ERR_INVALID,
                            "%s: key '%s': label '%s' must map to an integer id in [0, %d)", w.origin,
                            w.name, it->string, n);
                break;
            }
            id = (int)it->valuedouble;
        } else {
            id = parse_label_id(it->string, n);
            if (id < 0) {
                s = pc_fail(err, PEFTC_ERR_INVALID,
                            "%s: key '%s': key \"%s\" is not a label id in 0..%d", w.origin, w.name,
                            it->string, n - 1);
                break;
            }
            if (!cJSON_IsString(it)) {
                s = pc_fail(err, PEFTC_ERR_INVALID, "%s: key '%s': label %d is %s, expected a string",
                            w.origin, w.name, id, pc_json_type_name(it));
                break;
            }
            name = it->valuestring;
        }
        if (names[id])
            s = pc_fail(err, PEFTC_ERR_INVALID, "%s: key '%s': label id %d appears twice", w.origin,
                        w.name, id);
        else
            s = dup_str(name, &names[id], err);
    }
    if (s == PEFTC_OK) s = check_unique_labels(names, n, w, err);
    if (s != PEFTC_OK) { free_list(names, n); return s; }
    *out = names;
    *n_out = n;
    return PEFTC_OK;
}

static pc_status set_num_labels(pc_config *c, const cJSON *v, pc_where w, pc_error *err)
{
    int n;
    PC_TRY(json_to_int(v, w, &n, err));
    if (n < 1) return pc_fail(err, PEFTC_ERR_INVALID, "%s: key '%s' must be >= 1 (got %d)", w.origin, w.name, n);
    if (c->id2label && n != c->num_labels)
        return pc_fail(err, PEFTC_ERR_INVALID, "%s: num_labels is %d but id2label has %d labels",
                       w.origin, n, c->num_labels);
    c->num_labels = n;
    c->num_labels_given = true;
    return PEFTC_OK;
}

static pc_status record_ignored(pc_config *c, const char *name, const cJSON *v, pc_error *err)
{
    if (!c->ignored && !(c->ignored = cJSON_CreateObject()))
        return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
    cJSON *copy = cJSON_Duplicate(v, true);
    if (!copy) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
    cJSON_DeleteItemFromObjectCaseSensitive(c->ignored, name);
    if (!cJSON_AddItemToObject(c->ignored, name, copy)) {
        cJSON_Delete(copy);
        return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
    }
    return PEFTC_OK;
}

static pc_status set_string(pc_config *c, const pc_key *k, const char *s, pc_error *err)
{
    char *copy;
    PC_TRY(dup_str(s, &copy, err));
    reset_key(c, k);
    *FIELD(c, k, char *) = copy;
    return PEFTC_OK;
}

/* Applies v to key k (alias already resolved); w.name is the name as given. */
static pc_status apply_json(pc_config *c, const pc_key *k, const cJSON *v, pc_where w, pc_error *err)
{
    if (cJSON_IsNull(v) && k->kind != KEY_IGNORED) {
        if (!k->nullable) return fail_type(w, "a value", v, err);
        reset_key(c, k);
        return PEFTC_OK;
    }
    switch (k->kind) {
    case KEY_STR:
        if (!cJSON_IsString(v)) return fail_type(w, "a string", v, err);
        return set_string(c, k, v->valuestring, err);
    case KEY_INT: return json_to_int(v, w, FIELD(c, k, int), err);
    case KEY_DBL:
        if (!cJSON_IsNumber(v)) return fail_type(w, "a number", v, err);
        if (!isfinite(v->valuedouble))
            return pc_fail(err, PEFTC_ERR_INVALID, "%s: key '%s': expected a finite number", w.origin, w.name);
        *FIELD(c, k, double) = v->valuedouble;
        return PEFTC_OK;
    case KEY_BOOL:
        if (!cJSON_IsBool(v)) return fail_type(w, "true or false", v, err);
        *FIELD(c, k, bool) = cJSON_IsTrue(v);
        return PEFTC_OK;
    case KEY_LIST: return set_list(c, k, v, w, err);
    case KEY_TARGETS: return set_targets(c, v, w, err);
    case KEY_INIT_WEIGHTS:
        if (cJSON_IsBool(v)) return set_string(c, k, cJSON_IsTrue(v) ? "true" : "false", err);
        if (!cJSON_IsString(v)) return fail_type(w, "true, false or a method name", v, err);
        return set_string(c, k, v->valuestring, err);
    case KEY_NUM_LABELS: return set_num_labels(c, v, w, err);
    case KEY_ID2LABEL:
    case KEY_LABEL2ID: {
        char **names;
        int n;
        PC_TRY(json_to_label_names(v, k->kind == KEY_LABEL2ID, w, &names, &n, err));
        return install_labels(c, names, n, w, err);
    }
    case KEY_PEFT_TYPE:
        if (!cJSON_IsString(v)) return fail_type(w, "a string", v, err);
        if (strcmp(v->valuestring, "LORA") != 0)
            return pc_fail(err, PEFTC_ERR_UNSUPPORTED, "%s: peft_type '%s' is not supported (only LORA)",
                           w.origin, v->valuestring);
        return PEFTC_OK;
    case KEY_PUSH_TO_HUB:
        if (!cJSON_IsBool(v)) return fail_type(w, "true or false", v, err);
        if (cJSON_IsTrue(v))
            return pc_fail(err, PEFTC_ERR_UNSUPPORTED,
                           "%s: push_to_hub is true, but peftc has no network access; "
                           "remove the key and upload output_dir yourself", w.origin);
        return record_ignored(c, w.name, v, err);
    case KEY_IGNORED: return record_ignored(c, w.name, v, err);
    case KEY_ALIAS: break;
    }
    return pc_fail(err, PEFTC_ERR_INVALID, "%s: key '%s' cannot be set", w.origin, w.name);
}

/* ---- JSON file ---------------------------------------------------------- */

/* id2label and label2id in the same file must describe the same labels. */
static pc_status check_label2id_agrees(const pc_config *c, const cJSON *v, pc_where w, pc_error *err)
{
    char **names;
    int n;
    PC_TRY(json_to_label_names(v, true, w, &names, &n, err));
    pc_status s = PEFTC_OK;
    if (n != c->num_labels)
        s = pc_fail(err, PEFTC_ERR_INVALID, "%s: label2id has %d labels but id2label has %d", w.origin,
                    n, c->num_labels);
    for (int i = 0; i < n && s == PEFTC_OK; i++)
        if (strcmp(names[i], c->id2label[i]) != 0)
            s = pc_fail(err, PEFTC_ERR_INVALID,
                        "%s: label2id and id2label disagree on id %d ('%s' vs '%s')", w.origin, i,
                        names[i], c->id2label[i]);
    free_list(names, n);
    return s;
}

pc_status pc_config_load_json(pc_config *c, const char *path, pc_error *err)
{
    cJSON *root;
    PC_TRY(pc_json_parse_file(path, &root, err));
    if (!cJSON_IsObject(root)) {
        pc_status s = pc_fail(err, PEFTC_ERR_FORMAT, "%s: expected a JSON object of key: value pairs, got %s",
                              path, pc_json_type_name(root));
        cJSON_Delete(root);
        return s;
    }
    const char *seen[N_KEYS] = {0};
    const cJSON *label2id = NULL;
    pc_status s = PEFTC_OK;
    for (const cJSON *it = root->child; it && s == PEFTC_OK; it = it->next) {
        int i = key_index(it->string);
        if (i < 0) { s = fail_unknown_key(it->string, path, err); break; }
        int r = resolved_index(i);
        if (seen[r]) {
            s = strcmp(seen[r], it->string) == 0
                    ? pc_fail(err, PEFTC_ERR_INVALID, "%s: key '%s' given twice", path, it->string)
                    : pc_fail(err, PEFTC_ERR_INVALID, "%s: key '%s' given twice (also as '%s')", path,
                              it->string, seen[r]);
            break;
        }
        seen[r] = it->string;
        if (keys[r].kind == KEY_LABEL2ID) { label2id = it; continue; }
        s = apply_json(c, &keys[r], it, (pc_where){path, it->string}, err);
    }
    if (s == PEFTC_OK && label2id) {
        pc_where w = {path, "label2id"};
        bool file_has_id2label = seen[key_index("id2label")] && c->id2label;
        if (file_has_id2label && !cJSON_IsNull(label2id)) s = check_label2id_agrees(c, label2id, w, err);
        else if (!file_has_id2label) s = apply_json(c, &keys[key_index("label2id")], label2id, w, err);
    }
    cJSON_Delete(root);
    return s;
}

/* ---- command-line values ------------------------------------------------ */

static pc_status parse_bool_text(const char *v, pc_where w, bool *out, pc_error *err)
{
    if (!v || strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0) { *out = true; return PEFTC_OK; }
    if (strcasecmp(v, "false") == 0 || strcmp(v, "0") == 0) { *out = false; return PEFTC_OK; }
    return pc_fail(err, PEFTC_ERR_INVALID, "%s: key '%s': expected true or false, got '%s'", w.origin,
                   w.name, v);
}

static pc_status parse_number_text(const char *v, bool integer, pc_where w, cJSON **out, pc_error *err)
{
    char *end;
    errno = 0;
    double d = integer ? (double)strtol(v, &end, 10) : strtod(v, &end);
    bool ok = end != v && !*end && errno == 0 && isfinite(d) && !isspace((unsigned char)v[0]);
    if (ok && integer && (d < INT_MIN || d > INT_MAX)) ok = false;
    if (!ok)
        return pc_fail(err, PEFTC_ERR_INVALID, "%s: key '%s': expected %s, got '%s'", w.origin, w.name,
                       integer ? "an integer" : "a finite number", v);
    *out = cJSON_CreateNumber(d);
    return PEFTC_OK;
}

static pc_status parse_json_text(const char *v, pc_where w, cJSON **out, pc_error *err)
{
    *out = cJSON_Parse(v);
    if (!*out)
        return pc_fail(err, PEFTC_ERR_INVALID, "%s: key '%s': invalid JSON '%s'", w.origin, w.name, v);
    return PEFTC_OK;
}

/* "a, b,c" -> ["a","b","c"] (items trimmed; an empty item is kept and rejected later). */
static cJSON *comma_list(const char *v)
{
    cJSON *arr = cJSON_CreateArray();
    for (const char *p = v; arr;) {
        const char *comma = strchr(p, ',');
        const char *e = comma ? comma : p + strlen(p);
        const char *b = p;
        while (b < e && isspace((unsigned char)*b)) b++;
        while (e > b && isspace((unsigned char)e[-1])) e--;
        char *item = strndup(b, (size_t)(e - b));
        cJSON *s = item ? cJSON_CreateString(item) : NULL;
        free(item);
        if (!s || !cJSON_AddItemToArray(arr, s)) { cJSON_Delete(s); cJSON_Delete(arr); return NULL; }
        if (!comma) break;
        p = comma + 1;
    }
    return arr;
}

/* "a,b" -> {"0":"a","1":"b"} */
static cJSON *comma_labels(const char *v)
{
    cJSON *arr = comma_list(v), *obj = cJSON_CreateObject();
    bool ok = arr && obj;
    int i = 0;
    for (cJSON *it = arr ? arr->child : NULL; it && ok; it = it->next, i++) {
        char id[16];
        snprintf(id, sizeof id, "%d", i);
        ok = cJSON_AddStringToObject(obj, id, it->valuestring) != NULL;
    }
    cJSON_Delete(arr);
    if (!ok) { cJSON_Delete(obj); return NULL; }
    return obj;
}

/* The JSON value a command-line text stands for, by the key's type. */
static pc_status text_to_json(const pc_key *k, const char *v, pc_where w, cJSON **out, pc_error *err)
{
    *out = NULL;
    if (!v && k->kind != KEY_BOOL && k->kind != KEY_PUSH_TO_HUB)
        return pc_fail(err, PEFTC_ERR_INVALID, "%s: key '%s' needs a value", w.origin, w.name);
    bool b;
    switch (k->kind) {
    case KEY_INT:
    case KEY_NUM_LABELS: PC_TRY(parse_number_text(v, true, w, out, err)); break;
    case KEY_DBL: PC_TRY(parse_number_text(v, false, w, out, err)); break;
    case KEY_BOOL:
    case KEY_PUSH_TO_HUB:
        PC_TRY(parse_bool_text(v, w, &b, err));
        *out = cJSON_CreateBool(b);
        break;
    case KEY_LIST:
        if (v[0] == '[') return parse_json_text(v, w, out, err);
        *out = comma_list(v);
        break;
    case KEY_TARGETS:
        if (v[0] == '[' || v[0] == '"') return parse_json_text(v, w, out, err);
        *out = strcasecmp(v, all_linear) == 0 ? cJSON_CreateString(v) : comma_list(v);
        break;
    case KEY_INIT_WEIGHTS:
        if (parse_bool_text(v, w, &b, NULL) == PEFTC_OK) *out = cJSON_CreateBool(b);
        else *out = cJSON_CreateString(v);
        break;
    case KEY_ID2LABEL:
        if (v[0] == '{') return parse_json_text(v, w, out, err);
        *out = comma_labels(v);
        break;
    case KEY_LABEL2ID: return parse_json_text(v, w, out, err);
    case KEY_STR:
    case KEY_PEFT_TYPE:
    case KEY_IGNORED:
    case KEY_ALIAS: *out = cJSON_CreateString(v); break;
    }
    return *out ? PEFTC_OK : pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
}

pc_status pc_config_set(pc_config *c, const char *key, const char *value, const char *origin,
                        pc_error *err)
{
    int i = key_index(key);
    if (i < 0) return fail_unknown_key(key, origin, err);
    const pc_key *k = &keys[resolved_index(i)];
    pc_where w = {origin, key};
    cJSON *v;
    PC_TRY(text_to_json(k, value, w, &v, err));
    pc_status s = apply_json(c, k, v, w, err);
    cJSON_Delete(v);
    return s;
}

/* ---- validation --------------------------------------------------------- */

/* Index of s in the NULL-terminated names, or -1. */
static int name_index(const char *s, const char *const *names)
{
    for (int i = 0; names[i]; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}

static pc_status check_choice(const char *key, const char *value, const char *const *choices,
                              const char *verb, pc_error *err)
{
    if (name_index(value, choices) >= 0) return PEFTC_OK;
    char list[256] = "";
    size_t len = 0;
    for (int i = 0; choices[i] && len < sizeof list; i++)
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "", choices[i]);
    return pc_fail(err, PEFTC_ERR_INVALID, "%s '%s' %s, choose one of %s", key, value, verb, list);
}

static pc_status check_range(const char *key, double v, double lo, bool lo_open, double hi, bool hi_open,
                             pc_error *err)
{
    bool ok = (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
    if (ok) return PEFTC_OK;
    if (isinf(hi))
        return pc_fail(err, PEFTC_ERR_INVALID, "%s must be %s %g (got %g)", key, lo_open ? ">" : ">=", lo, v);
    return pc_fail(err, PEFTC_ERR_INVALID, "%s must be in %c%g, %g%c (got %g)", key, lo_open ? '(' : '[', lo,
                   hi, hi_open ? ')' : ']', v);
}

#define AT_LEAST(key, v, lo) check_range(key, v, lo, false, INFINITY, true, err)

static pc_status validate_names(const pc_config *c, pc_error *err)
{
    static const char *const task_types[] = {"SEQ_CLS", "CAUSAL_LM", NULL};
    static const char *const biases[] = {"none", "all", "lora_only", NULL};
    static const char *const inits[] = {"true", "false", "gaussian", NULL};
    static const char *const schedulers[] = {"linear", "constant", "cosine", "constant_with_warmup", NULL};
    static const char *const strategies[] = {"no", "steps", "epoch", NULL};
    static const char *const quant_types[] = {"fp4", "nf4", NULL};
    static const char *const dtypes[] = {"float32", "bfloat16", "float16", NULL};
    PC_TRY(check_choice("task_type", c->task_type, task_types, "is not supported", err));
    PC_TRY(check_choice("bias", c->bias, biases, "is not valid", err));
    PC_TRY(check_choice("init_lora_weights", c->init_lora_weights, inits, "is not supported", err));
    PC_TRY(check_choice("lr_scheduler_type", c->lr_scheduler_type, schedulers, "is not available", err));
    PC_TRY(check_choice("optim", c->optim, pc_optim_names, "is not available", err));
    PC_TRY(check_choice("eval_strategy", c->eval_strategy, strategies, "is not valid", err));
    PC_TRY(check_choice("save_strategy", c->save_strategy, strategies, "is not valid", err));
    PC_TRY(check_choice("bnb_4bit_quant_type", c->bnb_4bit_quant_type, quant_types, "is not valid", err));
    return check_choice("bnb_4bit_compute_dtype", c->bnb_4bit_compute_dtype, dtypes, "is not valid", err);
}

static pc_status validate_non_empty(const pc_config *c, pc_error *err)
{
    const char *const names[] = {"text_column", "label_column", "output_dir"};
    const char *const values[] = {c->text_column, c->label_column, c->output_dir};
    for (int i = 0; i < 3; i++)
        if (!values[i][0]) return pc_fail(err, PEFTC_ERR_INVALID, "%s must not be empty", names[i]);
    return PEFTC_OK;
}

static pc_status validate_steps(const pc_config *c, pc_error *err)
{
    if (c->max_steps != -1 && c->max_steps < 1)
        return pc_fail(err, PEFTC_ERR_INVALID,
                       "max_steps must be -1 (train num_train_epochs) or >= 1 (got %d)", c->max_steps);
    if (c->max_steps == -1) PC_TRY(check_range("num_train_epochs", c->num_train_epochs, 0, true, INFINITY, true, err));
    PC_TRY(AT_LEAST("warmup_steps", c->warmup_steps, 0));
    PC_TRY(AT_LEAST("threads", c->threads, 0));
    PC_TRY(check_range("warmup_ratio", c->warmup_ratio, 0, false, 1, false, err));
    PC_TRY(AT_LEAST("per_device_train_batch_size", c->per_device_train_batch_size, 1));
    PC_TRY(AT_LEAST("per_device_eval_batch_size", c->per_device_eval_batch_size, 1));
    PC_TRY(AT_LEAST("gradient_accumulation_steps", c->gradient_accumulation_steps, 1));
    PC_TRY(AT_LEAST("logging_steps", c->logging_steps, 1));
    PC_TRY(AT_LEAST("eval_steps", c->eval_steps, 0));
    PC_TRY(AT_LEAST("save_steps", c->save_steps, 1));
    PC_TRY(AT_LEAST("save_total_limit", c->save_total_limit, 0));
    PC_TRY(AT_LEAST("max_memory_mb", c->max_memory_mb, 0));
    PC_TRY(AT_LEAST("gradient_checkpointing_kept_blocks", c->gradient_checkpointing_kept_blocks, -1));
    if (c->gradient_checkpointing_kept_blocks == -1 && c->max_memory_mb == 0)
        return pc_fail(err, PEFTC_ERR_INVALID, "gradient_checkpointing_kept_blocks -1 (as many as fit) needs "
                       "max_memory_mb, the memory they may fill");
    if (strcmp(c->eval_strategy, "no") != 0 && !c->validation_file)
        return pc_fail(err, PEFTC_ERR_INVALID, "eval_strategy '%s' needs validation_file", c->eval_strategy);
    return PEFTC_OK;
}

pc_status pc_config_validate(const pc_config *c, pc_error *err)
{
    PC_TRY(validate_names(c, err));
    PC_TRY(validate_non_empty(c, err));
    PC_TRY(AT_LEAST("max_length", c->max_length, 0));
    PC_TRY(AT_LEAST("num_labels", c->num_labels, 1));
    PC_TRY(AT_LEAST("r", c->r, 1));
    PC_TRY(check_range("lora_dropout", c->lora_dropout, 0, false, 1, true, err));
    PC_TRY(AT_LEAST("learning_rate", c->learning_rate, 0));
    PC_TRY(AT_LEAST("weight_decay", c->weight_decay, 0));
    PC_TRY(check_range("adam_beta1", c->adam_beta1, 0, false, 1, true, err));
    PC_TRY(check_range("adam_beta2", c->adam_beta2, 0, false, 1, true, err));
    PC_TRY(AT_LEAST("adam_epsilon", c->adam_epsilon, 0));
    PC_TRY(AT_LEAST("max_grad_norm", c->max_grad_norm, 0));
    PC_TRY(AT_LEAST("neftune_noise_alpha", c->neftune_noise_alpha, 0));
    PC_TRY(AT_LEAST("max_new_tokens", c->max_new_tokens, 0));
    PC_TRY(AT_LEAST("temperature", c->temperature, 0));
    PC_TRY(AT_LEAST("top_k", c->top_k, 0));
    PC_TRY(check_range("top_p", c->top_p, 0, true, 1, false, err));
    return validate_steps(c, err);
}

/* ---- back to JSON ------------------------------------------------------- */

static cJSON *list_to_json(char *const *list, int n)
{
    if (n == 0) return cJSON_CreateNull();
    return cJSON_CreateStringArray((const char *const *)list, n);
}

static cJSON *targets_to_json(const pc_config *c)
{
    if (c->target_modules_is_regex) return cJSON_CreateString(c->target_modules_regex);
    if (c->n_target_modules == 1 && strcmp(c->target_modules[0], all_linear) == 0)
        return cJSON_CreateString(all_linear);
    return list_to_json(c->target_modules, c->n_target_modules);
}

static cJSON *id2label_to_json(const pc_config *c)
{
    if (!c->id2label) return cJSON_CreateNull();
    cJSON *obj = cJSON_CreateObject();
    for (int i = 0; i < c->num_labels && obj; i++) {
        char id[16];
        snprintf(id, sizeof id, "%d", i);
        if (!cJSON_AddStringToObject(obj, id, c->id2label[i])) { cJSON_Delete(obj); obj = NULL; }
    }
    return obj;
}

/* The value of key k in *out (NULL when out of memory); false when k is not
 * written (aliases, label2id, and the recorded ignored keys, written separately). */
static bool key_value(const pc_config *c, const pc_key *k, cJSON **out)
{
    const char *s;
    switch (k->kind) {
    case KEY_STR:
        s = *CFIELD(c, k, char *);
        *out = s ? cJSON_CreateString(s) : cJSON_CreateNull();
        return true;
    case KEY_INT: *out = cJSON_CreateNumber(*CFIELD(c, k, int)); return true;
    case KEY_NUM_LABELS:
        *out = c->num_labels_given ? cJSON_CreateNumber(c->num_labels) : cJSON_CreateNull();
        return true;
    case KEY_DBL: *out = cJSON_CreateNumber(*CFIELD(c, k, double)); return true;
    case KEY_BOOL: *out = cJSON_CreateBool(*CFIELD(c, k, bool)); return true;
    case KEY_LIST:
        *out = list_to_json(*(char **const *)((const char *)c + k->off),
                            *(const int *)((const char *)c + k->count_off));
        return true;
    case KEY_TARGETS: *out = targets_to_json(c); return true;
    case KEY_INIT_WEIGHTS:
        s = c->init_lora_weights;
        *out = strcmp(s, "true") == 0 ? cJSON_CreateTrue()
             : strcmp(s, "false") == 0 ? cJSON_CreateFalse() : cJSON_CreateString(s);
        return true;
    case KEY_ID2LABEL: *out = id2label_to_json(c); return true;
    case KEY_PEFT_TYPE: *out = cJSON_CreateString("LORA"); return true;
    case KEY_LABEL2ID:
    case KEY_PUSH_TO_HUB:
    case KEY_IGNORED:
    case KEY_ALIAS: break;
    }
    return false;
}

pc_status pc_config_to_json(const pc_config *c, cJSON **out, pc_error *err)
{
    cJSON *obj = cJSON_CreateObject();
    bool ok = obj != NULL;
    for (int i = 0; i < N_KEYS && ok; i++) {
        cJSON *v;
        if (!key_value(c, &keys[i], &v)) continue;
        ok = v && cJSON_AddItemToObject(obj, keys[i].name, v);
        if (!ok) cJSON_Delete(v);
    }
    for (const cJSON *it = c->ignored ? c->ignored->child : NULL; it && ok; it = it->next) {
        cJSON *v = cJSON_Duplicate(it, true);
        ok = v && cJSON_AddItemToObject(obj, it->string, v);
        if (!ok) cJSON_Delete(v);
    }
    if (!ok) {
        cJSON_Delete(obj);
        return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
    }
    *out = obj;
    return PEFTC_OK;
}
