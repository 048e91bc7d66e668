/* Disk full while writing: every writer fails with an error naming the file, leaves no file
 * that looks complete (no temporary left behind), and the previous outputs stay byte for byte.
 * The failure comes from the test hook pc_fs_fail_writes_after (ENOSPC after N bytes), which
 * works as root too, where a read-only directory would not stop a write. */
#include "testlib.h"

#include <dirent.h>
#include <stdlib.h>

#include "base/fs.h"
#include "formats/json.h"
#include "models/merge.h"
#include "models/peft_model.h"
#include "train/trainer.h"

typedef struct { char *bytes; size_t len; } file_copy;

static file_copy snapshot(const char *path)
{
    file_copy f = {0};
    pc_error err = {0};
    CHECK_MSG(pc_read_file(path, (size_t)1 << 28, &f.bytes, &f.len, &err) == PEFTC_OK, "%s", err.msg);
    return f;
}

static void check_unchanged(const char *path, file_copy *before, int budget)
{
    file_copy now = snapshot(path);
    CHECK_MSG(now.bytes && now.len == before->len && memcmp(now.bytes, before->bytes, now.len) == 0,
              "%s changed by a failed write (budget %d)", path, budget);
    free(now.bytes);
}

/* The directory holds exactly n entries (besides . and ..): no temporary or staged file is left. */
static void check_entries(const char *dir, int n, int budget)
{
    DIR *d = opendir(dir);
    int count = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) count++;
    if (d) closedir(d);
    CHECK_MSG(count == n, "%s holds %d files after a failed write (budget %d), expected %d", dir, count, budget, n);
}

/* An error of a failed write: I/O, naming the file, saying why. */
static void check_write_error(pc_status s, const pc_error *err, const char *file, int budget)
{
    CHECK_MSG(s == PEFTC_ERR_IO, "budget %d: status %d (%s)", budget, s, err->msg);
    CHECK_MSG(strstr(err->msg, file) != NULL, "budget %d: \"%s\" does not name %s", budget, err->msg, file);
    CHECK_MSG(strstr(err->msg, "No space left on device") != NULL, "budget %d: \"%s\"", budget, err->msg);
}

static pc_model *load_model(const char *fixture)
{
    pc_model *m = NULL;
    pc_error err = {0};
    CHECK_MSG(pc_model_load(pc_test_fixture(fixture), NULL, &m, &err) == PEFTC_OK, "%s", err.msg);
    return m;
}

TEST(disk_full_adapter_save_keeps_the_previous_adapter)
{
    pc_model *m = load_model("distilbert_tiny/qv/model");
    if (!m) return;
    pc_peft_model *p = NULL;
    pc_error err = {0};
    CHECK_MSG(pc_peft_load(m, pc_test_fixture("distilbert_tiny/qv/adapter_init"), &p, &err) == PEFTC_OK, "%s", err.msg);
    if (!p) { pc_model_free(m); return; }
    char dir[512], weights[600], config[600];
    snprintf(dir, sizeof dir, "%s/disk_full_adapter", pc_test_tmpdir());
    snprintf(weights, sizeof weights, "%s/adapter_model.safetensors", dir);
    snprintf(config, sizeof config, "%s/adapter_config.json", dir);
    CHECK(pc_mkdirs(dir, &err) == PEFTC_OK);
    CHECK_MSG(pc_peft_save(p, dir, &err) == PEFTC_OK, "%s", err.msg);
    file_copy old_w = snapshot(weights), old_c = snapshot(config);
    p->trainable.items[0].data[0] += 1.0f;   /* the next save would write other bytes */
    /* out of space at once, in the header, in the tensors, just before the end, in the second file */
    const int budgets[] = {0, 1, 100, 4000, (int)old_w.len - 1, (int)old_w.len + 10};
    for (size_t i = 0; i < sizeof budgets / sizeof budgets[0]; i++) {
        pc_fs_fail_writes_after(budgets[i]);
        pc_status s = pc_peft_save(p, dir, &err);
        pc_fs_fail_writes_after(-1);
        check_write_error(s, &err, budgets[i] > (int)old_w.len ? "adapter_config.json" : "adapter_model.safetensors",
                          budgets[i]);
        check_unchanged(weights, &old_w, budgets[i]);
        check_unchanged(config, &old_c, budgets[i]);
        check_entries(dir, 2, budgets[i]);
    }
    CHECK_MSG(pc_peft_save(p, dir, &err) == PEFTC_OK, "%s", err.msg);   /* with space again */
    file_copy now = snapshot(weights);
    CHECK(now.len == old_w.len && memcmp(now.bytes, old_w.bytes, now.len) != 0);
    free(now.bytes);
    free(old_w.bytes);
    free(old_c.bytes);
    pc_peft_model_free(p);
    pc_model_free(m);
}

TEST(disk_full_merged_model_keeps_the_previous_file)
{
    pc_model *m = load_model("causal_tiny/llama_gqa/model");
    if (!m) return;
    char dir[512], path[600];
    pc_error err = {0};
    snprintf(dir, sizeof dir, "%s/disk_full_merged", pc_test_tmpdir());
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK(pc_mkdirs(dir, &err) == PEFTC_OK);
    CHECK_MSG(pc_model_save_weights(m, path, PC_DT_F32, &err) == PEFTC_OK, "%s", err.msg);
    file_copy old = snapshot(path);
    const int budgets[] = {0, 7, 5000, 30000};   /* the bf16 file is about 40 kB */
    for (size_t i = 0; i < sizeof budgets / sizeof budgets[0]; i++) {
        pc_fs_fail_writes_after(budgets[i]);
        pc_status s = pc_model_save_weights(m, path, PC_DT_BF16, &err);
        pc_fs_fail_writes_after(-1);
        check_write_error(s, &err, path, budgets[i]);
        check_unchanged(path, &old, budgets[i]);
        check_entries(dir, 1, budgets[i]);
    }
    free(old.bytes);
    pc_model_free(m);
}

TEST(disk_full_json_and_copied_files_keep_the_previous_file)
{
    char dir[512], json[600], copy[600];
    pc_error err = {0};
    snprintf(dir, sizeof dir, "%s/disk_full_small", pc_test_tmpdir());
    snprintf(json, sizeof json, "%s/trainer_state.json", dir);
    snprintf(copy, sizeof copy, "%s/config.json", dir);
    CHECK(pc_mkdirs(dir, &err) == PEFTC_OK);
    cJSON *obj = cJSON_CreateObject();
    cJSON_AddNumberToObject(obj, "global_step", 1);
    CHECK(pc_json_write_file_atomic(json, obj, true, &err) == PEFTC_OK);
    CHECK(pc_copy_file(pc_test_fixture("causal_tiny/llama_gqa/model/config.json"), copy, &err) == PEFTC_OK);
    file_copy old_json = snapshot(json), old_copy = snapshot(copy);
    cJSON_ReplaceItemInObject(obj, "global_step", cJSON_CreateNumber(2));
    for (int budget = 0; budget < 12; budget += 5) {
        pc_fs_fail_writes_after(budget);
        pc_status s = pc_json_write_file_atomic(json, obj, true, &err);
        pc_fs_fail_writes_after(-1);
        check_write_error(s, &err, json, budget);
        pc_fs_fail_writes_after(budget);
        s = pc_copy_file(pc_test_fixture("distilbert_tiny/qv/model/config.json"), copy, &err);
        pc_fs_fail_writes_after(-1);
        check_write_error(s, &err, copy, budget);
        check_unchanged(json, &old_json, budget);
        check_unchanged(copy, &old_copy, budget);
        check_entries(dir, 2, budget);
    }
    cJSON_Delete(obj);
    free(old_json.bytes);
    free(old_copy.bytes);
}

/* A run writing checkpoint-2 into an output_dir that holds an earlier run's outputs. */
static pc_status train_once(const char *dir, const char *seed, pc_error *err)
{
    static const char *const kv[][2] = {{"target_modules", "q_lin,v_lin"}, {"per_device_train_batch_size", "4"},
                                        {"max_steps", "3"}, {"save_steps", "2"}, {"learning_rate", "1e-2"}};
    char path[700];
    pc_config c;
    pc_config_init(&c);
    pc_status s = pc_config_set(&c, "seed", seed, "test", err);
    snprintf(path, sizeof path, "%s/model", dir);
    if (!s) s = pc_config_set(&c, "model_name_or_path", path, "test", err);
    snprintf(path, sizeof path, "%s/train.jsonl", dir);
    if (!s) s = pc_config_set(&c, "train_file", path, "test", err);
    snprintf(path, sizeof path, "%s/out", dir);
    if (!s) s = pc_config_set(&c, "output_dir", path, "test", err);
    for (size_t i = 0; !s && i < sizeof kv / sizeof kv[0]; i++) s = pc_config_set(&c, kv[i][0], kv[i][1], "test", err);
    pc_train_result result;
    if (!s) s = pc_train(&c, NULL, &result, err);
    pc_config_free(&c);
    return s;
}

static bool write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) return false;
    fputs(text, f);
    return fclose(f) == 0;
}

TEST(disk_full_checkpoint_keeps_the_previous_run)
{
    char dir[512], path[700];
    pc_error err = {0};
    snprintf(dir, sizeof dir, "%s/disk_full_checkpoint", pc_test_tmpdir());
    snprintf(path, sizeof path, "%s/model", dir);
    CHECK(pc_mkdirs(path, &err) == PEFTC_OK);
    const char *files[] = {"config.json", "model.safetensors"};
    for (int i = 0; i < 2; i++) {
        char from[700], to[800];
        snprintf(from, sizeof from, "%s/%s", pc_test_fixture("distilbert_tiny/qv/model"), files[i]);
        snprintf(to, sizeof to, "%s/%s", path, files[i]);
        CHECK(pc_copy_file(from, to, &err) == PEFTC_OK);
    }
    snprintf(path, sizeof path, "%s/model/vocab.txt", dir);
    CHECK(write_text(path, "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\ngood\nbad\nfilm\n"));
    snprintf(path, sizeof path, "%s/train.jsonl", dir);
    CHECK(write_text(path, "{\"text\": \"good film\", \"label\": 1}\n{\"text\": \"bad film\", \"label\": 0}\n"
                           "{\"text\": \"good\", \"label\": 1}\n{\"text\": \"bad\", \"label\": 0}\n"));
    CHECK_MSG(train_once(dir, "1", &err) == PEFTC_OK, "%s", err.msg);
    char ckpt[700], final[700];
    snprintf(ckpt, sizeof ckpt, "%s/out/checkpoint-2/adapter_model.safetensors", dir);
    snprintf(final, sizeof final, "%s/out/adapter_model.safetensors", dir);
    file_copy old_ckpt = snapshot(ckpt), old_final = snapshot(final);
    const int budgets[] = {0, 3000};   /* nothing written; out of space inside checkpoint-2 */
    for (size_t i = 0; i < sizeof budgets / sizeof budgets[0]; i++) {
        pc_fs_fail_writes_after(budgets[i]);
        pc_status s = train_once(dir, "2", &err);
        pc_fs_fail_writes_after(-1);
        check_write_error(s, &err, "checkpoint-2", budgets[i]);
        check_unchanged(ckpt, &old_ckpt, budgets[i]);
        check_unchanged(final, &old_final, budgets[i]);
        snprintf(path, sizeof path, "%s/out", dir);
        check_entries(path, 5, budgets[i]);   /* the adapter pair, trainer_state.json, checkpoint-2, checkpoint-3 */
    }
    free(old_ckpt.bytes);
    free(old_final.bytes);
}
