#include "testlib.h"
#include "formats/json.h"

#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>

/* path = tmpdir/json_<name>; writes content there unless content is NULL. */
static void tmp_path(char *path, size_t cap, const char *name, const char *content)
{
    snprintf(path, cap, "%s/json_%s", pc_test_tmpdir(), name);
    if (!content) return;
    FILE *f = fopen(path, "wb");
    if (!f) { CHECK_MSG(0, "cannot create %s", path); return; }
    fwrite(content, 1, strlen(content), f);
    fclose(f);
}

/* Whole file as a NUL-terminated string (caller frees), NULL if unreadable. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = calloc(1, 1 << 16);
    size_t n = buf ? fread(buf, 1, (1 << 16) - 1, f) : 0;
    (void)n;
    fclose(f);
    return buf;
}

/* Counts entries of dir whose name contains needle. */
static int count_entries_containing(const char *dir, const char *needle)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += strstr(e->d_name, needle) != NULL;
    if (d) closedir(d);
    return n;
}

TEST(json_parse_file_reads_values)
{
    char path[512];
    tmp_path(path, sizeof path, "ok.json", "{\"r\": 8, \"alpha\": 16.5, \"name\": \"q_proj\", \"on\": true}\n");
    pc_error err = {0};
    cJSON *root = NULL;
    CHECK_INT_EQ(pc_json_parse_file(path, &root, &err), PEFTC_OK);
    long long r = 0;
    double alpha = 0;
    const char *name = NULL;
    bool on = false;
    CHECK_INT_EQ(pc_json_get_int(root, "r", 0, &r, "cfg", &err), PEFTC_OK);
    CHECK_INT_EQ(pc_json_get_double(root, "alpha", 0, &alpha, "cfg", &err), PEFTC_OK);
    CHECK_INT_EQ(pc_json_get_string(root, "name", NULL, &name, "cfg", &err), PEFTC_OK);
    CHECK_INT_EQ(pc_json_get_bool(root, "on", false, &on, "cfg", &err), PEFTC_OK);
    CHECK_INT_EQ(r, 8);
    CHECK_NEAR(alpha, 16.5, 0);
    CHECK_STR_EQ(name, "q_proj");
    CHECK(on);
    cJSON_Delete(root);
}

/* Line 3 is `  "b": tru`: the bad literal starts at byte column 8. */
TEST(json_parse_file_syntax_error_names_line_and_column)
{
    char path[512], want[600];
    tmp_path(path, sizeof path, "bad.json", "{\n  \"a\": 1,\n  \"b\": tru\n}\n");
    pc_error err = {0};
    cJSON *root = (cJSON *)1;
    CHECK_INT_EQ(pc_json_parse_file(path, &root, &err), PEFTC_ERR_FORMAT);
    CHECK(root == NULL);
    snprintf(want, sizeof want, "%s:3:8: invalid JSON near 'tru'", path);
    CHECK_STR_EQ(err.msg, want);
}

TEST(json_parse_text_errors)
{
    pc_error err = {0};
    cJSON *root;
    CHECK_INT_EQ(pc_json_parse_text("[1, 2", 5, "x.json", &root, &err), PEFTC_ERR_FORMAT);
    CHECK_STR_EQ(err.msg, "x.json:1:6: invalid JSON: unexpected end of input");
    CHECK_INT_EQ(pc_json_parse_text("{} x", 4, "x.json", &root, &err), PEFTC_ERR_FORMAT);
    CHECK_STR_EQ(err.msg, "x.json:1:4: invalid JSON near 'x'");
    CHECK_INT_EQ(pc_json_parse_text("{\"a\":\n\"b\0\"}", 11, "x.json", &root, &err), PEFTC_ERR_FORMAT);
    CHECK_STR_EQ(err.msg, "x.json:2:3: invalid JSON: NUL byte in text");
    CHECK_INT_EQ(pc_json_parse_text("  ", 2, "x.json", &root, &err), PEFTC_ERR_FORMAT);
    CHECK_CONTAINS(err.msg, "unexpected end of input");
    /* Not NUL-terminated: only the first len bytes count. */
    CHECK_INT_EQ(pc_json_parse_text("[7]garbage", 3, "x.json", &root, &err), PEFTC_OK);
    CHECK_INT_EQ(cJSON_GetArrayItem(root, 0)->valueint, 7);
    cJSON_Delete(root);
}

TEST(json_parse_file_empty_missing_and_directory)
{
    char path[512];
    pc_error err = {0};
    cJSON *root;
    tmp_path(path, sizeof path, "empty.json", "");
    CHECK_INT_EQ(pc_json_parse_file(path, &root, &err), PEFTC_ERR_FORMAT);
    CHECK_CONTAINS(err.msg, path);
    CHECK_CONTAINS(err.msg, "file is empty");
    tmp_path(path, sizeof path, "missing.json", NULL);
    CHECK_INT_EQ(pc_json_parse_file(path, &root, &err), PEFTC_ERR_IO);
    CHECK_CONTAINS(err.msg, path);
    CHECK_CONTAINS(err.msg, "cannot open");
    CHECK_INT_EQ(pc_json_parse_file(pc_test_tmpdir(), &root, &err), PEFTC_ERR_IO);
    CHECK_CONTAINS(err.msg, "not a regular file");
}

TEST(json_getters_defaults_for_absent_and_null)
{
    pc_error err = {0};
    cJSON *root;
    CHECK_INT_EQ(pc_json_parse_text("{\"pad\": null}", 13, "cfg", &root, &err), PEFTC_OK);
    long long i = 0;
    double d = 0;
    bool b = false;
    const char *s = NULL;
    CHECK_INT_EQ(pc_json_get_int(root, "pad", -1, &i, "cfg", &err), PEFTC_OK);
    CHECK_INT_EQ(i, -1);
    CHECK_INT_EQ(pc_json_get_int(root, "absent", 3, &i, "cfg", &err), PEFTC_OK);
    CHECK_INT_EQ(i, 3);
    CHECK_INT_EQ(pc_json_get_double(root, "absent", 0.25, &d, "cfg", &err), PEFTC_OK);
    CHECK_NEAR(d, 0.25, 0);
    CHECK_INT_EQ(pc_json_get_bool(root, "pad", true, &b, "cfg", &err), PEFTC_OK);
    CHECK(b);
    CHECK_INT_EQ(pc_json_get_string(root, "absent", "none", &s, "cfg", &err), PEFTC_OK);
    CHECK_STR_EQ(s, "none");
    cJSON_Delete(root);
}

TEST(json_getters_reject_wrong_types)
{
    pc_error err = {0};
    cJSON *root;
    const char *ok = "{\"r\": \"8\", \"f\": 1.5, \"big\": 1e20, \"neg\": -4, \"s\": 3, \"b\": 1, \"d\": [1]}";
    CHECK_INT_EQ(pc_json_parse_text(ok, strlen(ok), "cfg", &root, &err), PEFTC_OK);
    long long i = 0;
    double d = 0;
    bool b;
    const char *s;
    CHECK_INT_EQ(pc_json_get_int(root, "r", 0, &i, "adapter_config.json", &err), PEFTC_ERR_INVALID);
    CHECK_STR_EQ(err.msg, "adapter_config.json: key 'r' must be an integer, got a string");
    CHECK_INT_EQ(pc_json_get_int(root, "f", 0, &i, "cfg", &err), PEFTC_ERR_INVALID);
    CHECK_STR_EQ(err.msg, "cfg: key 'f' must be an integer, got 1.5");
    CHECK_INT_EQ(pc_json_get_int(root, "big", 0, &i, "cfg", &err), PEFTC_ERR_INVALID);
    CHECK_CONTAINS(err.msg, "key 'big'");
    CHECK_CONTAINS(err.msg, "out of range");
    CHECK_INT_EQ(pc_json_get_int(root, "neg", 0, &i, "cfg", &err), PEFTC_OK);
    CHECK_INT_EQ(i, -4);
    CHECK_INT_EQ(pc_json_get_double(root, "neg", 0, &d, "cfg", &err), PEFTC_OK);
    CHECK_NEAR(d, -4.0, 0);
    CHECK_INT_EQ(pc_json_get_double(root, "d", 0, &d, "cfg", &err), PEFTC_ERR_INVALID);
    CHECK_STR_EQ(err.msg, "cfg: key 'd' must be a number, got an array");
    CHECK_INT_EQ(pc_json_get_string(root, "s", NULL, &s, "cfg", &err), PEFTC_ERR_INVALID);
    CHECK_STR_EQ(err.msg, "cfg: key 's' must be a string, got a number");
    CHECK_INT_EQ(pc_json_get_bool(root, "b", false, &b, "cfg", &err), PEFTC_ERR_INVALID);
    CHECK_STR_EQ(err.msg, "cfg: key 'b' must be true or false, got a number");
    /* Lookups are case-sensitive (cJSON_GetObjectItem is not). */
    CHECK_INT_EQ(pc_json_get_int(root, "NEG", 5, &i, "cfg", &err), PEFTC_OK);
    CHECK_INT_EQ(i, 5);
    /* The container itself must be an object. */
    CHECK_INT_EQ(pc_json_get_int(cJSON_GetObjectItem(root, "d"), "x", 0, &i, "cfg", &err), PEFTC_ERR_INVALID);
    CHECK_CONTAINS(err.msg, "expected an object");
    cJSON_Delete(root);
}

TEST(json_double_rejects_overflowing_number)
{
    pc_error err = {0};
    cJSON *root;
    CHECK_INT_EQ(pc_json_parse_text("{\"lr\": 1e999}", 13, "cfg", &root, &err), PEFTC_OK);
    double d;
    CHECK_INT_EQ(pc_json_get_double(root, "lr", 0, &d, "cfg", &err), PEFTC_ERR_INVALID);
    CHECK_STR_EQ(err.msg, "cfg: key 'lr' must be a finite number");
    cJSON_Delete(root);
}

static pc_status dup_check(const char *text, pc_error *err)
{
    cJSON *root;
    pc_status s = pc_json_parse_text(text, strlen(text), "t.json", &root, err);
    if (s != PEFTC_OK) return s;
    s = pc_json_check_no_duplicates(root, "t.json", err);
    cJSON_Delete(root);
    return s;
}

TEST(json_duplicate_keys_found_at_any_depth)
{
    pc_error err = {0};
    CHECK_INT_EQ(dup_check("{\"a\": {\"b\": 1, \"c\": 2}, \"d\": [{\"b\": 1}, {\"b\": 2}]}", &err), PEFTC_OK);
    CHECK_INT_EQ(dup_check("{\"r\": 8, \"alpha\": 1, \"r\": 16}", &err), PEFTC_ERR_FORMAT);
    CHECK_STR_EQ(err.msg, "t.json: duplicate key 'r' in the top-level object");
    CHECK_INT_EQ(dup_check("{\"a\": {\"b\": 1, \"b\": 2}}", &err), PEFTC_ERR_FORMAT);
    CHECK_STR_EQ(err.msg, "t.json: duplicate key 'b' in object 'a'");
    CHECK_INT_EQ(dup_check("{\"model\": {\"x\": [0, {\"k\": 1, \"j\": 2, \"k\": 3}]}}", &err), PEFTC_ERR_FORMAT);
    CHECK_STR_EQ(err.msg, "t.json: duplicate key 'k' in object 'model.x[1]'");
}

/* A large object (like a tokenizer vocab) whose duplicate keys are far apart. */
TEST(json_duplicate_keys_in_large_object)
{
    enum { N = 20000 };
    cJSON *obj = cJSON_CreateObject();
    char key[32];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "tok%d", i);
        cJSON_AddNumberToObject(obj, key, i);
    }
    pc_error err = {0};
    CHECK_INT_EQ(pc_json_check_no_duplicates(obj, "vocab", &err), PEFTC_OK);
    cJSON_AddNumberToObject(obj, "tok17", 1);
    CHECK_INT_EQ(pc_json_check_no_duplicates(obj, "vocab", &err), PEFTC_ERR_FORMAT);
    CHECK_STR_EQ(err.msg, "vocab: duplicate key 'tok17' in the top-level object");
    cJSON_Delete(obj);
}

TEST(json_write_pretty_and_compact)
{
    cJSON *obj = cJSON_CreateObject();
    cJSON_AddNumberToObject(obj, "a", 1);
    cJSON *arr = cJSON_AddArrayToObject(obj, "b");
    cJSON_AddItemToArray(arr, cJSON_CreateNumber(1));
    cJSON_AddItemToArray(arr, cJSON_CreateNumber(2));
    cJSON_AddStringToObject(cJSON_AddObjectToObject(obj, "c"), "d", "t\tx");
    char path[512];
    tmp_path(path, sizeof path, "pretty.json", NULL);
    pc_error err = {0};
    CHECK_INT_EQ(pc_json_write_file_atomic(path, obj, true, &err), PEFTC_OK);
    char *text = slurp(path);
    CHECK_STR_EQ(text, "{\n  \"a\": 1,\n  \"b\": [1, 2],\n  \"c\": {\n    \"d\": \"t\\tx\"\n  }\n}\n");
    free(text);
    CHECK_INT_EQ(pc_json_write_file_atomic(path, obj, false, &err), PEFTC_OK);
    text = slurp(path);
    CHECK_STR_EQ(text, "{\"a\":1,\"b\":[1,2],\"c\":{\"d\":\"t\\tx\"}}\n");
    free(text);
    cJSON *back;
    CHECK_INT_EQ(pc_json_parse_file(path, &back, &err), PEFTC_OK);
    CHECK(cJSON_Compare(back, obj, 1));
    cJSON_Delete(back);
    cJSON_Delete(obj);
}

TEST(json_write_file_atomic_replaces_file)
{
    char path[512];
    tmp_path(path, sizeof path, "blob.bin", "old contents that are longer");
    pc_error err = {0};
    CHECK_INT_EQ(pc_write_file_atomic(path, "new", 3, &err), PEFTC_OK);
    char *text = slurp(path);
    CHECK_STR_EQ(text, "new");
    free(text);
    pc_write_part parts[3] = { { "ab", 2 }, { NULL, 0 }, { "cd", 2 } };
    CHECK_INT_EQ(pc_write_file_atomic_parts(path, parts, 3, &err), PEFTC_OK);
    text = slurp(path);
    CHECK_STR_EQ(text, "abcd");
    free(text);
    CHECK_INT_EQ(count_entries_containing(pc_test_tmpdir(), "blob.bin.tmp."), 0);
}

TEST(json_write_file_atomic_failures_leave_no_temp_file)
{
    char path[512], dir[512];
    pc_error err = {0};
    tmp_path(path, sizeof path, "no_such_dir/out.json", NULL);
    CHECK_INT_EQ(pc_write_file_atomic(path, "x", 1, &err), PEFTC_ERR_IO);
    CHECK_CONTAINS(err.msg, path);
    /* Renaming a file over a directory fails after the temp file was written. */
    tmp_path(dir, sizeof dir, "a_dir", NULL);
    CHECK(mkdir(dir, 0755) == 0);
    CHECK_INT_EQ(pc_write_file_atomic(dir, "x", 1, &err), PEFTC_ERR_IO);
    CHECK_CONTAINS(err.msg, dir);
    CHECK_CONTAINS(err.msg, "rename");
    CHECK_INT_EQ(count_entries_containing(pc_test_tmpdir(), "json_a_dir.tmp."), 0);
    /* A part with bytes but no data is a caller error; nothing is left behind. */
    tmp_path(path, sizeof path, "nulldata.bin", NULL);
    pc_write_part bad = { NULL, 4 };
    CHECK_INT_EQ(pc_write_file_atomic_parts(path, &bad, 1, &err), PEFTC_ERR_INVALID);
    CHECK_INT_EQ(count_entries_containing(pc_test_tmpdir(), "nulldata.bin"), 0);
}
