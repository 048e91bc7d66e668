#include "peft/lora_config.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/json.h"

void pc_lora_config_init(pc_lora_config *c)
{
    memset(c, 0, sizeof *c);
    c->r = 8;
    c->lora_alpha = 8;
    c->bias = PC_BIAS_NONE;
    c->init_lora_weights = PC_LORA_INIT_DEFAULT;
}

static void free_list(char **list, int n)
{
    for (int i = 0; list && i < n; i++) free(list[i]);
    free(list);
}

void pc_lora_config_free(pc_lora_config *c)
{
    free_list(c->target_modules, c->n_target_modules);
    free_list(c->modules_to_save, c->n_modules_to_save);
    free(c->target_regex);
    free(c->base_model_name_or_path);
    pcre2_code_free(c->compiled_regex);
    memset(c, 0, sizeof *c);
}

static int list_append(char ***list, int *n, const char *s)
{
    char **grown = realloc(*list, sizeof *grown * (size_t)(*n + 1));
    if (!grown) return -1;
    *list = grown;
    if (!(grown[*n] = strdup(s))) return -1;
    (*n)++;
    return 0;
}

pc_status pc_lora_config_add_task_modules(pc_lora_config *c, pc_error *err)
{
    if (strcmp(c->task_type, "SEQ_CLS") != 0) return PEFTC_OK;
    if (list_append(&c->modules_to_save, &c->n_modules_to_save, "classifier") ||
        list_append(&c->modules_to_save, &c->n_modules_to_save, "score"))
        return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
    return PEFTC_OK;
}

pc_status pc_lora_config_prepare(pc_lora_config *c, pc_error *err)
{
    if (!c->target_regex || c->compiled_regex) return PEFTC_OK;
    int code;
    PCRE2_SIZE offset;
    c->compiled_regex = pcre2_compile((PCRE2_SPTR)c->target_regex, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &code, &offset, NULL);
    if (!c->compiled_regex) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        return pc_fail(err, PEFTC_ERR_INVALID, "target_modules regex '%s': %s at offset %zu", c->target_regex,
                       (const char *)msg, (size_t)offset);
    }
    return PEFTC_OK;
}

/* re.fullmatch(pattern, name) */
static bool regex_fullmatch(void *code, const char *name)
{
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(code, NULL);
    if (!md) return false;
    int rc = pcre2_match(code, (PCRE2_SPTR)name, strlen(name), 0, PCRE2_ANCHORED | PCRE2_ENDANCHORED, md, NULL);
    pcre2_match_data_free(md);
    return rc >= 0;
}

static bool name_matches(const char *name, const char *target)
{
    size_t n = strlen(name), t = strlen(target);
    if (n == t) return strcmp(name, target) == 0;
    return n > t && name[n - t - 1] == '.' && strcmp(name + n - t, target) == 0;
}

bool pc_lora_config_targets(const pc_lora_config *c, const char *module_name)
{
    if (pc_lora_config_saves(c, module_name)) return false;  /* PEFT >= 0.16 never targets modules_to_save */
    if (c->all_linear) return true;
    if (c->compiled_regex) return regex_fullmatch(c->compiled_regex, module_name);
    for (int i = 0; i < c->n_target_modules; i++)
        if (name_matches(module_name, c->target_modules[i])) return true;
    return false;
}

bool pc_lora_config_saves(const pc_lora_config *c, const char *module_name)
{
    size_t n = strlen(module_name);
    for (int i = 0; i < c->n_modules_to_save; i++) {
        size_t t = strlen(c->modules_to_save[i]);
        if (n >= t && strcmp(module_name + n - t, c->modules_to_save[i]) == 0) return true;
    }
    return false;
}

/* ---------- adapter_config.json ---------- */

static const char *bias_name(pc_lora_bias b)
{
    return b == PC_BIAS_ALL ? "all" : b == PC_BIAS_LORA_ONLY ? "lora_only" : "none";
}

static cJSON *string_list(char **items, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateString(items[i]));
    return a;
}

static cJSON *init_weights_json(pc_lora_init init)
{
    if (init == PC_LORA_INIT_GAUSSIAN) return cJSON_CreateString("gaussian");
    return cJSON_CreateBool(init == PC_LORA_INIT_DEFAULT);
}

/* The field set of PEFT v0.13's LoraConfig: every PEFT release since loads it
 * (newer ones fill their new fields with defaults; older ones reject unknown keys). */
pc_status pc_lora_config_save(const pc_lora_config *c, const char *path, pc_error *err)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddItemToObject(j, "alpha_pattern", cJSON_CreateObject());
    cJSON_AddNullToObject(j, "auto_mapping");
    if (c->base_model_name_or_path) cJSON_AddStringToObject(j, "base_model_name_or_path", c->base_model_name_or_path);
    else cJSON_AddNullToObject(j, "base_model_name_or_path");
    cJSON_AddStringToObject(j, "bias", bias_name(c->bias));
    cJSON_AddBoolToObject(j, "fan_in_fan_out", c->fan_in_fan_out);
    cJSON_AddBoolToObject(j, "inference_mode", true);
    cJSON_AddItemToObject(j, "init_lora_weights", init_weights_json(c->init_lora_weights));
    cJSON_AddNullToObject(j, "layer_replication");
    cJSON_AddNullToObject(j, "layers_pattern");
    cJSON_AddNullToObject(j, "layers_to_transform");
    cJSON_AddItemToObject(j, "loftq_config", cJSON_CreateObject());
    cJSON_AddNumberToObject(j, "lora_alpha", c->lora_alpha);
    cJSON_AddNumberToObject(j, "lora_dropout", c->lora_dropout);
    cJSON_AddNullToObject(j, "megatron_config");
    cJSON_AddStringToObject(j, "megatron_core", "megatron.core");
    if (c->n_modules_to_save) cJSON_AddItemToObject(j, "modules_to_save", string_list(c->modules_to_save, c->n_modules_to_save));
    else cJSON_AddNullToObject(j, "modules_to_save");
    cJSON_AddStringToObject(j, "peft_type", "LORA");
    cJSON_AddNumberToObject(j, "r", c->r);
    cJSON_AddItemToObject(j, "rank_pattern", cJSON_CreateObject());
    cJSON_AddNullToObject(j, "revision");
    if (c->all_linear) cJSON_AddStringToObject(j, "target_modules", "all-linear");
    else if (c->target_regex) cJSON_AddStringToObject(j, "target_modules", c->target_regex);
    else cJSON_AddItemToObject(j, "target_modules", string_list(c->target_modules, c->n_target_modules));
    if (c->task_type[0]) cJSON_AddStringToObject(j, "task_type", c->task_type);
    else cJSON_AddNullToObject(j, "task_type");
    cJSON_AddBoolToObject(j, "use_dora", c->use_dora);
    cJSON_AddBoolToObject(j, "use_rslora", c->use_rslora);
    pc_status s = pc_json_write_file_atomic(path, j, true, err);
    cJSON_Delete(j);
    return s;
}

static pc_status read_string_list(const cJSON *item, const char *key, const char *path, char ***list, int *n,
                                  pc_error *err)
{
    if (!cJSON_IsArray(item)) return pc_fail(err, PEFTC_ERR_FORMAT, "%s: '%s' must be a list of strings", path, key);
    for (const cJSON *e = item->child; e; e = e->next) {
        if (!cJSON_IsString(e)) return pc_fail(err, PEFTC_ERR_FORMAT, "%s: '%s' must be a list of strings", path, key);
        if (list_append(list, n, e->valuestring)) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
    }
    return PEFTC_OK;
}

static pc_status read_targets(pc_lora_config *c, const cJSON *j, const char *path, pc_error *err)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "target_modules");
    if (cJSON_IsString(t)) {
        if (strcmp(t->valuestring, "all-linear") == 0) c->all_linear = true;
        else if (!(c->target_regex = strdup(t->valuestring))) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
        return PEFTC_OK;
    }
    if (!cJSON_IsArray(t)) return pc_fail(err, PEFTC_ERR_FORMAT, "%s: 'target_modules' must be a list or a string", path);
    return read_string_list(t, "target_modules", path, &c->target_modules, &c->n_target_modules, err);
}

static pc_status read_init(pc_lora_config *c, const cJSON *j, const char *path, pc_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "init_lora_weights");
    if (!v || cJSON_IsTrue(v)) c->init_lora_weights = PC_LORA_INIT_DEFAULT;
    else if (cJSON_IsFalse(v)) c->init_lora_weights = PC_LORA_INIT_NONE;
    else if (cJSON_IsString(v) && strcmp(v->valuestring, "gaussian") == 0) c->init_lora_weights = PC_LORA_INIT_GAUSSIAN;
    else return pc_fail(err, PEFTC_ERR_UNSUPPORTED, "%s: init_lora_weights must be true, false or \"gaussian\"", path);
    return PEFTC_OK;
}

/* Options peftc cannot honour yet must not be silently dropped. */
static pc_status reject_unsupported(const cJSON *j, const char *path, pc_error *err)
{
    static const char *const empty_objects[] = {"rank_pattern", "alpha_pattern"};
    for (int i = 0; i < 2; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, empty_objects[i]);
        if (v && !cJSON_IsNull(v) && cJSON_GetArraySize(v) > 0)
            return pc_fail(err, PEFTC_ERR_UNSUPPORTED, "%s: '%s' is not supported yet", path, empty_objects[i]);
    }
    static const char *const null_keys[] = {"layers_to_transform", "layer_replication", "exclude_modules"};
    for (int i = 0; i < 3; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, null_keys[i]);
        if (v && !cJSON_IsNull(v)) return pc_fail(err, PEFTC_ERR_UNSUPPORTED, "%s: '%s' is not supported yet", path, null_keys[i]);
    }
    const cJSON *lb = cJSON_GetObjectItemCaseSensitive(j, "lora_bias");
    if (cJSON_IsTrue(lb)) return pc_fail(err, PEFTC_ERR_UNSUPPORTED, "%s: 'lora_bias' is not supported yet", path);
    return PEFTC_OK;
}

static pc_status read_fields(pc_lora_config *c, const cJSON *j, const char *path, pc_error *err)
{
    const char *peft_type = NULL, *bias = NULL, *task = NULL, *base = NULL;
    long long r;
    PC_TRY(pc_json_get_string(j, "peft_type", "", &peft_type, path, err));
    if (strcmp(peft_type, "LORA") != 0)
        return pc_fail(err, PEFTC_ERR_UNSUPPORTED, "%s: peft_type '%s' is not supported (LORA)", path, peft_type);
    PC_TRY(pc_json_get_int(j, "r", 8, &r, path, err));
    if (r < 1 || r > 65536) return pc_fail(err, PEFTC_ERR_FORMAT, "%s: r must be a positive integer, got %lld", path, r);
    c->r = (int)r;
    PC_TRY(pc_json_get_double(j, "lora_alpha", 8, &c->lora_alpha, path, err));
    PC_TRY(pc_json_get_double(j, "lora_dropout", 0, &c->lora_dropout, path, err));
    if (c->lora_dropout < 0 || c->lora_dropout >= 1)
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: lora_dropout must be in [0, 1), got %g", path, c->lora_dropout);
    PC_TRY(pc_json_get_bool(j, "use_rslora", false, &c->use_rslora, path, err));
    PC_TRY(pc_json_get_bool(j, "use_dora", false, &c->use_dora, path, err));
    PC_TRY(pc_json_get_bool(j, "fan_in_fan_out", false, &c->fan_in_fan_out, path, err));
    PC_TRY(pc_json_get_string(j, "bias", "none", &bias, path, err));
    if (strcmp(bias, "none") == 0) c->bias = PC_BIAS_NONE;
    else if (strcmp(bias, "all") == 0) c->bias = PC_BIAS_ALL;
    else if (strcmp(bias, "lora_only") == 0) c->bias = PC_BIAS_LORA_ONLY;
    else return pc_fail(err, PEFTC_ERR_FORMAT, "%s: bias must be \"none\", \"all\" or \"lora_only\"", path);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "task_type");
    if (t && !cJSON_IsNull(t)) PC_TRY(pc_json_get_string(j, "task_type", "", &task, path, err));
    snprintf(c->task_type, sizeof c->task_type, "%s", task ? task : "");
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "base_model_name_or_path");
    if (b && !cJSON_IsNull(b)) PC_TRY(pc_json_get_string(j, "base_model_name_or_path", "", &base, path, err));
    if (base && !(c->base_model_name_or_path = strdup(base))) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory");
    PC_TRY(read_targets(c, j, path, err));
    PC_TRY(read_init(c, j, path, err));
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "modules_to_save");
    if (m && !cJSON_IsNull(m))
        PC_TRY(read_string_list(m, "modules_to_save", path, &c->modules_to_save, &c->n_modules_to_save, err));
    return reject_unsupported(j, path, err);
}

pc_status pc_lora_config_load(pc_lora_config *c, const char *path, pc_error *err)
{
    pc_lora_config_init(c);
    cJSON *j = NULL;
    PC_TRY(pc_json_parse_file(path, &j, err));
    pc_status s = cJSON_IsObject(j) ? pc_json_check_no_duplicates(j, path, err)
                                    : pc_fail(err, PEFTC_ERR_FORMAT, "%s: not a JSON object", path);
    if (!s) s = read_fields(c, j, path, err);
    cJSON_Delete(j);
    if (!s) s = pc_lora_config_prepare(c, err);
    if (s) pc_lora_config_free(c);
    return s;
}
