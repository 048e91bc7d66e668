#include "testlib.h"
#include "train/config.h"

#include <stdlib.h>

static const char *write_tmp(char *buf, size_t cap, const char *name, const char *text)
{
    snprintf(buf, cap, "%s/%s", pc_test_tmpdir(), name);
    FILE *f = fopen(buf, "wb");
    if (f) { fputs(text, f); fclose(f); }
    return buf;
}

/* Loads text as a config file that must fail with exactly "<path>: <rest>" (or
 * rest alone when it does not start with ':'); code is the expected status. */
static void expect_load_error(const char *text, pc_status code, const char *rest, int line)
{
    char path[512], want[1024];
    write_tmp(path, sizeof path, "bad.json", text);
    if (rest[0] == ':') snprintf(want, sizeof want, "%s%s", path, rest);
    else snprintf(want, sizeof want, rest, path);
    pc_config c;
    pc_config_init(&c);
    pc_error err = {0};
    pc_status s = pc_config_load_json(&c, path, &err);
    if (s != code) pc_test_fail(__FILE__, line, "status %d, expected %d (%s)", s, code, err.msg);
    if (strcmp(err.msg, want) != 0) pc_test_fail(__FILE__, line, "message \"%s\", expected \"%s\"", err.msg, want);
    pc_config_free(&c);
}
#define EXPECT_LOAD_ERROR(text, code, rest) expect_load_error(text, code, rest, __LINE__)

/* Sets key=value on a default config and expects failure with exactly msg. */
static void expect_set_error(const char *key, const char *value, pc_status code, const char *msg, int line)
{
    pc_config c;
    pc_config_init(&c);
    pc_error err = {0};
    pc_status s = pc_config_set(&c, key, value, "command line", &err);
    if (s != code) pc_test_fail(__FILE__, line, "status %d, expected %d (%s)", s, code, err.msg);
    if (strcmp(err.msg, msg) != 0) pc_test_fail(__FILE__, line, "message \"%s\", expected \"%s\"", err.msg, msg);
    pc_config_free(&c);
}
#define EXPECT_SET_ERROR(key, value, code, msg) expect_set_error(key, value, code, msg, __LINE__)

/* Sets key=value and expects pc_config_validate to fail with exactly msg. */
static void expect_invalid(const char *key, const char *value, const char *msg, int line)
{
    pc_config c;
    pc_config_init(&c);
    pc_error err = {0};
    pc_status s = pc_config_set(&c, key, value, "command line", &err);
    if (s != PEFTC_OK) pc_test_fail(__FILE__, line, "set %s=%s failed: %s", key, value, err.msg);
    s = pc_config_validate(&c, &err);
    if (s != PEFTC_ERR_INVALID) pc_test_fail(__FILE__, line, "validate gave %d for %s=%s", s, key, value);
    else if (strcmp(err.msg, msg) != 0)
        pc_test_fail(__FILE__, line, "message \"%s\", expected \"%s\"", err.msg, msg);
    pc_config_free(&c);
}
#define EXPECT_INVALID(key, value, msg) expect_invalid(key, value, msg, __LINE__)

/* Defaults from peft_facts.md §1.1 (LoraConfig), §8.1 (TrainingArguments), §6.1 (BitsAndBytesConfig). */
TEST(config_defaults_are_the_python_defaults)
{
    pc_config c;
    pc_config_init(&c);
    CHECK(c.model_name_or_path == NULL);
    CHECK(c.train_file == NULL);
    CHECK_STR_EQ(c.text_column, "text");
    CHECK_STR_EQ(c.label_column, "label");
    CHECK_STR_EQ(c.output_dir, "trainer_output");
    CHECK_STR_EQ(c.task_type, "SEQ_CLS");
    CHECK_INT_EQ(c.max_length, 0);
    CHECK(c.id2label == NULL);
    CHECK_INT_EQ(c.num_labels, 2);
    CHECK_INT_EQ(c.r, 8);
    CHECK_NEAR(c.lora_alpha, 8.0, 0);
    CHECK_INT_EQ(c.n_target_modules, 0);
    CHECK(!c.target_modules_is_regex);
    CHECK_NEAR(c.lora_dropout, 0.0, 0);
    CHECK_STR_EQ(c.bias, "none");
    CHECK(!c.use_rslora && !c.use_dora && !c.fan_in_fan_out);
    CHECK_STR_EQ(c.init_lora_weights, "true");
    CHECK_INT_EQ(c.n_modules_to_save, 0);
    CHECK_NEAR(c.learning_rate, 5e-5, 1e-15);
    CHECK_NEAR(c.weight_decay, 0.0, 0);
    CHECK_NEAR(c.adam_beta1, 0.9, 1e-15);
    CHECK_NEAR(c.adam_beta2, 0.999, 1e-15);
    CHECK_NEAR(c.adam_epsilon, 1e-8, 1e-20);
    CHECK_NEAR(c.max_grad_norm, 1.0, 0);
    CHECK_NEAR(c.warmup_ratio, 0.0, 0);
    CHECK_NEAR(c.num_train_epochs, 3.0, 0);
    CHECK_NEAR(c.neftune_noise_alpha, 0.0, 0);
    CHECK_STR_EQ(c.lr_scheduler_type, "linear");
    CHECK_STR_EQ(c.optim, "adamw_torch");
    CHECK_STR_EQ(c.eval_strategy, "no");
    CHECK_STR_EQ(c.save_strategy, "steps");
    CHECK_INT_EQ(c.warmup_steps, 0);
    CHECK_INT_EQ(c.max_steps, -1);
    CHECK_INT_EQ(c.per_device_train_batch_size, 8);
    CHECK_INT_EQ(c.per_device_eval_batch_size, 8);
    CHECK_INT_EQ(c.gradient_accumulation_steps, 1);
    CHECK_INT_EQ(c.logging_steps, 500);
    CHECK_INT_EQ(c.eval_steps, 0);
    CHECK_INT_EQ(c.save_steps, 500);
    CHECK_INT_EQ(c.save_total_limit, 0);
    CHECK_INT_EQ(c.seed, 42);
    CHECK(!c.logging_first_step && c.shuffle && !c.gradient_checkpointing && !c.dataloader_drop_last);
    CHECK(!c.load_in_4bit && !c.bnb_4bit_use_double_quant && !c.bf16);
    CHECK_STR_EQ(c.bnb_4bit_quant_type, "fp4");
    CHECK_STR_EQ(c.bnb_4bit_compute_dtype, "float32");
    pc_error err = {0};
    CHECK_INT_EQ(pc_config_validate(&c, &err), PEFTC_OK);
    pc_config_free(&c);
}

TEST(config_load_json_fixture)
{
    pc_config c;
    pc_config_init(&c);
    pc_error err = {0};
    pc_status s = pc_config_load_json(&c, pc_test_fixture("data/lora_seq_cls.json"), &err);
    CHECK_MSG(s == PEFTC_OK, "%s", err.msg);
    CHECK_STR_EQ(c.model_name_or_path, "distilbert-base-uncased");
    CHECK_STR_EQ(c.text_column, "sentence");
    CHECK_INT_EQ(c.max_length, 128);
    CHECK_INT_EQ(c.num_labels, 2);
    if (c.id2label) { CHECK_STR_EQ(c.id2label[0], "NEGATIVE"); CHECK_STR_EQ(c.id2label[1], "POSITIVE"); }
    CHECK_INT_EQ(c.r, 16);
    CHECK_NEAR(c.lora_alpha, 32.0, 0);
    CHECK_INT_EQ(c.n_target_modules, 2);
    if (c.n_target_modules == 2) { CHECK_STR_EQ(c.target_modules[0], "q_lin"); CHECK_STR_EQ(c.target_modules[1], "v_lin"); }
    CHECK(!c.target_modules_is_regex);
    CHECK_NEAR(c.lora_dropout, 0.1, 1e-15);
    CHECK_INT_EQ(c.n_modules_to_save, 2);
    CHECK_STR_EQ(c.init_lora_weights, "gaussian");
    CHECK_NEAR(c.learning_rate, 2e-4, 1e-15);
    CHECK_NEAR(c.num_train_epochs, 1.0, 0);
    CHECK_INT_EQ(c.per_device_train_batch_size, 16);
    CHECK_STR_EQ(c.eval_strategy, "epoch");  /* from the old spelling evaluation_strategy */
    CHECK_STR_EQ(c.lr_scheduler_type, "cosine");
    CHECK_NEAR(c.warmup_ratio, 0.06, 1e-15);
    CHECK_INT_EQ(c.logging_steps, 10);
    CHECK_INT_EQ(c.seed, 7);
    CHECK_INT_EQ(c.per_device_eval_batch_size, 8);  /* untouched keys keep their defaults */
    CHECK(c.ignored != NULL);
    CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c.ignored, "run_name")), "sst2-lora");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c.ignored, "overwrite_output_dir")));
    CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(c.ignored, "push_to_hub")));
    CHECK_INT_EQ(pc_config_validate(&c, &err), PEFTC_OK);
    pc_config_free(&c);
}

TEST(config_unknown_key_suggests_the_nearest)
{
    EXPECT_LOAD_ERROR("{\"learnig_rate\": 0.001}", PEFTC_ERR_INVALID,
                      "unknown key 'learnig_rate' in %s; did you mean 'learning_rate'?");
    EXPECT_LOAD_ERROR("{\"lora_dropuot\": 0.1}", PEFTC_ERR_INVALID,
                      "unknown key 'lora_dropuot' in %s; did you mean 'lora_dropout'?");
    EXPECT_LOAD_ERROR("{\"epochs\": 3}", PEFTC_ERR_INVALID, "unknown key 'epochs' in %s");
    EXPECT_SET_ERROR("lr", "1e-3", PEFTC_ERR_INVALID, "unknown key 'lr' in command line");
    EXPECT_SET_ERROR("num_train_epoch", "2", PEFTC_ERR_INVALID,
                     "unknown key 'num_train_epoch' in command line; did you mean 'num_train_epochs'?");
}

TEST(config_json_type_errors_name_the_key)
{
    EXPECT_LOAD_ERROR("{\"r\": \"8\"}", PEFTC_ERR_INVALID, ": key 'r': expected an integer, got a string");
    EXPECT_LOAD_ERROR("{\"r\": 8.5}", PEFTC_ERR_INVALID, ": key 'r': expected an integer, got 8.5");
    EXPECT_LOAD_ERROR("{\"learning_rate\": \"5e-5\"}", PEFTC_ERR_INVALID,
                      ": key 'learning_rate': expected a number, got a string");
    EXPECT_LOAD_ERROR("{\"use_dora\": 1}", PEFTC_ERR_INVALID, ": key 'use_dora': expected true or false, got a number");
    EXPECT_LOAD_ERROR("{\"bias\": null}", PEFTC_ERR_INVALID, ": key 'bias': expected a value, got null");
    EXPECT_LOAD_ERROR("{\"modules_to_save\": [\"classifier\", 3]}", PEFTC_ERR_INVALID,
                      ": key 'modules_to_save': item 2 is a number, expected a string");
    EXPECT_LOAD_ERROR("{\"target_modules\": 5}", PEFTC_ERR_INVALID,
                      ": key 'target_modules': expected an array of names or a regex string, got a number");
    EXPECT_LOAD_ERROR("{\"target_modules\": []}", PEFTC_ERR_INVALID,
                      ": key 'target_modules': empty list (leave the key out for the model's default)");
    EXPECT_LOAD_ERROR("{\"init_lora_weights\": 0}", PEFTC_ERR_INVALID,
                      ": key 'init_lora_weights': expected true, false or a method name, got a number");
    EXPECT_LOAD_ERROR("[1, 2]", PEFTC_ERR_FORMAT, ": expected a JSON object of key: value pairs, got an array");

    /* syntax errors come from formats/json: file:line:col */
    char path[512];
    write_tmp(path, sizeof path, "syntax.json", "{\"r\": 8,\n \"seed\": 1,,\n}");
    pc_config c;
    pc_config_init(&c);
    pc_error err = {0};
    CHECK_INT_EQ(pc_config_load_json(&c, path, &err), PEFTC_ERR_FORMAT);
    CHECK_CONTAINS(err.msg, "syntax.json:2:");
    CHECK_CONTAINS(err.msg, "invalid JSON");
    pc_config_free(&c);
}

TEST(config_duplicates_aliases_and_python_only_keys)
{
    EXPECT_LOAD_ERROR("{\"r\": 8, \"r\": 16}", PEFTC_ERR_INVALID, ": key 'r' given twice");
    EXPECT_LOAD_ERROR("{\"eval_strategy\": \"no\", \"evaluation_strategy\": \"steps\"}", PEFTC_ERR_INVALID,
                      ": key 'evaluation_strategy' given twice (also as 'eval_strategy')");
    EXPECT_LOAD_ERROR("{\"push_to_hub\": true}", PEFTC_ERR_UNSUPPORTED,
                      ": push_to_hub is true, but peftc has no network access; remove the key and upload "
                      "output_dir yourself");
    EXPECT_LOAD_ERROR("{\"peft_type\": \"IA3\"}", PEFTC_ERR_UNSUPPORTED,
                      ": peft_type 'IA3' is not supported (only LORA)");
    pc_config c;
    pc_config_init(&c);
    pc_error err = {0};
    CHECK_INT_EQ(pc_config_set(&c, "evaluation_strategy", "steps", "command line", &err), PEFTC_OK);
    CHECK_STR_EQ(c.eval_strategy, "steps");
    CHECK_INT_EQ(pc_config_set(&c, "report_to", "wandb", "command line", &err), PEFTC_OK);
    CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c.ignored, "report_to")), "wandb");
    CHECK_INT_EQ(pc_config_set(&c, "report_to", "none", "command line", &err), PEFTC_OK);
    CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c.ignored, "report_to")), "none");
    CHECK_INT_EQ(cJSON_GetArraySize(c.ignored), 1);
    pc_config_free(&c);
}

TEST(config_set_parses_by_type)
{
    pc_config c;
    pc_config_init(&c);
    pc_error err = {0};
    CHECK_INT_EQ(pc_config_set(&c, "r", "4", "command line", &err), PEFTC_OK);
    CHECK_INT_EQ(c.r, 4);
    CHECK_INT_EQ(pc_config_set(&c, "learning_rate", "3e-4", "command line", &err), PEFTC_OK);
    CHECK_NEAR(c.learning_rate, 3e-4, 1e-15);
    CHECK_INT_EQ(pc_config_set(&c, "use_dora", "true", "command line", &err), PEFTC_OK);
    CHECK(c.use_dora);
    CHECK_INT_EQ(pc_config_set(&c, "use_dora", "0", "command line", &err), PEFTC_OK);
    CHECK(!c.use_dora);
    CHECK_INT_EQ(pc_config_set(&c, "gradient_checkpointing", NULL, "command line", &err), PEFTC_OK);
    CHECK(c.gradient_checkpointing);
    CHECK_INT_EQ(pc_config_set(&c, "shuffle", "False", "command line", &err), PEFTC_OK);
    CHECK(!c.shuffle);
    CHECK_INT_EQ(pc_config_set(&c, "output_dir", "runs/a", "command line", &err), PEFTC_OK);
    CHECK_STR_EQ(c.output_dir, "runs/a");
    CHECK_INT_EQ(pc_config_set(&c, "output_dir", "runs/b", "command line", &err), PEFTC_OK);
    CHECK_STR_EQ(c.output_dir, "runs/b");
    CHECK_INT_EQ(pc_config_set(&c, "modules_to_save", "pre_classifier, classifier", "command line", &err), PEFTC_OK);
    CHECK_INT_EQ(c.n_modules_to_save, 2);
    if (c.n_modules_to_save == 2) CHECK_STR_EQ(c.modules_to_save[1], "classifier");
    CHECK_INT_EQ(pc_config_set(&c, "modules_to_save", "[\"score\"]", "command line", &err), PEFTC_OK);
    CHECK_INT_EQ(c.n_modules_to_save, 1);
    CHECK_STR_EQ(c.modules_to_save[0], "score");
    CHECK_INT_EQ(pc_config_set(&c, "init_lora_weights", "false", "command line", &err), PEFTC_OK);
    CHECK_STR_EQ(c.init_lora_weights, "false");
    CHECK_INT_EQ(pc_config_set(&c, "max_length", "null", "command line", &err), PEFTC_ERR_INVALID);
    pc_config_free(&c);

    EXPECT_SET_ERROR("r", "eight", PEFTC_ERR_INVALID, "command line: key 'r': expected an integer, got 'eight'");
    EXPECT_SET_ERROR("r", "8.0", PEFTC_ERR_INVALID, "command line: key 'r': expected an integer, got '8.0'");
    EXPECT_SET_ERROR("r", "99999999999", PEFTC_ERR_INVALID,
                     "command line: key 'r': expected an integer, got '99999999999'");
    EXPECT_SET_ERROR("learning_rate", "nan", PEFTC_ERR_INVALID,
                     "command line: key 'learning_rate': expected a finite number, got 'nan'");
    EXPECT_SET_ERROR("use_dora", "yes", PEFTC_ERR_INVALID,
                     "command line: key 'use_dora': expected true or false, got 'yes'");
    EXPECT_SET_ERROR("optim", NULL, PEFTC_ERR_INVALID, "command line: key 'optim' needs a value");
    EXPECT_SET_ERROR("modules_to_save", "a,,b", PEFTC_ERR_INVALID,
                     "command line: key 'modules_to_save': item 2 is empty");
    EXPECT_SET_ERROR("modules_to_save", "[\"a\"", PEFTC_ERR_INVALID,
                     "command line: key 'modules_to_save': invalid JSON '[\"a\"'");
    EXPECT_SET_ERROR("push_to_hub", "1", PEFTC_ERR_UNSUPPORTED,
                     "command line: push_to_hub is true, but peftc has no network access; remove the key and "
                     "upload output_dir yourself");
}

TEST(config_target_modules_forms)
{
    pc_config c;
    pc_config_init(&c);
    pc_error err = {0};
    CHECK_INT_EQ(pc_config_set(&c, "target_modules", "q_proj,v_proj", "command line", &err), PEFTC_OK);
    CHECK_INT_EQ(c.n_target_modules, 2);
    CHECK(!c.target_modules_is_regex);
    if (c.n_target_modules == 2) CHECK_STR_EQ(c.target_modules[1], "v_proj");
    /* a JSON string is Python's str: a regex for re.fullmatch */
    CHECK_INT_EQ(pc_config_set(&c, "target_modules", "\".*\\\\.(q|v)_lin\"", "command line", &err), PEFTC_OK);
    CHECK(c.target_modules_is_regex);
    CHECK_STR_EQ(c.target_modules_regex, ".*\\.(q|v)_lin");
    CHECK_INT_EQ(c.n_target_modules, 0);
    CHECK_INT_EQ(pc_config_set(&c, "target_modules", "[\"q_lin\"]", "command line", &err), PEFTC_OK);
    CHECK(!c.target_modules_is_regex);
    CHECK(c.target_modules_regex == NULL);
    CHECK_INT_EQ(c.n_target_modules, 1);
    CHECK_INT_EQ(pc_config_set(&c, "target_modules", "all-linear", "command line", &err), PEFTC_OK);
    CHECK_INT_EQ(c.n_target_modules, 1);
    CHECK_STR_EQ(c.target_modules[0], "all-linear");
    CHECK(!c.target_modules_is_regex);
    pc_config_free(&c);

    char path[512];
    write_tmp(path, sizeof path, "targets.json", "{\"target_modules\": \"ALL-LINEAR\"}");
    pc_config_init(&c);
    CHECK_INT_EQ(pc_config_load_json(&c, path, &err), PEFTC_OK);
    CHECK_INT_EQ(c.n_target_modules, 1);
    if (c.n_target_modules == 1) CHECK_STR_EQ(c.target_modules[0], "all-linear");
    write_tmp(path, sizeof path, "targets.json", "{\"target_modules\": \"model.*attention.*(q|v)_lin\"}");
    CHECK_INT_EQ(pc_config_load_json(&c, path, &err), PEFTC_OK);
    CHECK(c.target_modules_is_regex);
    CHECK_STR_EQ(c.target_modules_regex, "model.*attention.*(q|v)_lin");
    write_tmp(path, sizeof path, "targets.json", "{\"target_modules\": null}");
    CHECK_INT_EQ(pc_config_load_json(&c, path, &err), PEFTC_OK);
    CHECK(!c.target_modules_is_regex);
    CHECK_INT_EQ(c.n_target_modules, 0);
    pc_config_free(&c);
}

TEST(config_labels_id2label_label2id_num_labels)
{
    pc_config c;
    pc_config_init(&c);
    pc_error err = {0};
    char path[512];
    write_tmp(path, sizeof path, "labels.json", "{\"label2id\": {\"pos\": 1, \"neu\": 2, \"neg\": 0}}");
    CHECK_INT_EQ(pc_config_load_json(&c, path, &err), PEFTC_OK);
    CHECK_INT_EQ(c.num_labels, 3);
    if (c.id2label) {
        CHECK_STR_EQ(c.id2label[0], "neg");
        CHECK_STR_EQ(c.id2label[1], "pos");
        CHECK_STR_EQ(c.id2label[2], "neu");
    }
    CHECK_INT_EQ(pc_config_set(&c, "id2label", "bad,good", "command line", &err), PEFTC_OK);
    CHECK_INT_EQ(c.num_labels, 2);
    CHECK_STR_EQ(c.id2label[1], "good");
    CHECK_INT_EQ(pc_config_set(&c, "num_labels", "3", "command line", &err), PEFTC_ERR_INVALID);
    CHECK_STR_EQ(err.msg, "command line: num_labels is 3 but id2label has 2 labels");
    pc_config_free(&c);

    pc_config_init(&c);
    CHECK_INT_EQ(pc_config_set(&c, "num_labels", "5", "command line", &err), PEFTC_OK);
    CHECK_INT_EQ(c.num_labels, 5);
    CHECK(c.id2label == NULL);
    CHECK_INT_EQ(pc_config_set(&c, "id2label", "{\"0\": \"a\", \"1\": \"b\"}", "command line", &err),
                 PEFTC_ERR_INVALID);
    CHECK_STR_EQ(err.msg, "command line: key 'id2label' has 2 labels but num_labels is 5");
    pc_config_free(&c);

    EXPECT_LOAD_ERROR("{\"id2label\": {\"0\": \"a\", \"2\": \"b\"}}", PEFTC_ERR_INVALID,
                      ": key 'id2label': key \"2\" is not a label id in 0..1");
    EXPECT_LOAD_ERROR("{\"id2label\": {\"0\": \"a\", \"1\": \"a\"}}", PEFTC_ERR_INVALID,
                      ": key 'id2label': label 'a' appears twice");
    EXPECT_LOAD_ERROR("{\"id2label\": {\"0\": \"a\", \"1\": 1}}", PEFTC_ERR_INVALID,
                      ": key 'id2label': label 1 is a number, expected a string");
    EXPECT_LOAD_ERROR("{\"label2id\": {\"a\": 0, \"b\": 0}}", PEFTC_ERR_INVALID,
                      ": key 'label2id': label id 0 appears twice");
    EXPECT_LOAD_ERROR("{\"label2id\": {\"a\": 0, \"b\": 2}}", PEFTC_ERR_INVALID,
                      ": key 'label2id': label 'b' must map to an integer id in [0, 2)");
    EXPECT_LOAD_ERROR("{\"id2label\": {\"0\": \"a\", \"1\": \"b\"}, \"label2id\": {\"b\": 0, \"a\": 1}}",
                      PEFTC_ERR_INVALID, ": label2id and id2label disagree on id 0 ('b' vs 'a')");
    EXPECT_LOAD_ERROR("{\"num_labels\": 3, \"id2label\": {\"0\": \"a\", \"1\": \"b\"}}", PEFTC_ERR_INVALID,
                      ": key 'id2label' has 2 labels but num_labels is 3");
    EXPECT_LOAD_ERROR("{\"num_labels\": 0}", PEFTC_ERR_INVALID, ": key 'num_labels' must be >= 1 (got 0)");
}

TEST(config_validate_names_the_key)
{
    EXPECT_INVALID("r", "0", "r must be >= 1 (got 0)");
    EXPECT_INVALID("lora_dropout", "1", "lora_dropout must be in [0, 1) (got 1)");
    EXPECT_INVALID("lora_dropout", "-0.1", "lora_dropout must be in [0, 1) (got -0.1)");
    EXPECT_INVALID("bias", "some", "bias 'some' is not valid, choose one of none, all, lora_only");
    EXPECT_INVALID("learning_rate", "-1e-4", "learning_rate must be >= 0 (got -0.0001)");
    EXPECT_INVALID("per_device_train_batch_size", "0", "per_device_train_batch_size must be >= 1 (got 0)");
    EXPECT_INVALID("per_device_eval_batch_size", "-2", "per_device_eval_batch_size must be >= 1 (got -2)");
    EXPECT_INVALID("gradient_accumulation_steps", "0", "gradient_accumulation_steps must be >= 1 (got 0)");
    EXPECT_INVALID("optim", "lion_8bit",
                   "optim 'lion_8bit' is not available, choose one of adamw_torch, adamw_torch_fused, adamw_hf, "
                   "adamw_8bit, adamw_bnb_8bit, paged_adamw_8bit, paged_adamw_32bit");
    EXPECT_INVALID("lr_scheduler_type", "polynomial",
                   "lr_scheduler_type 'polynomial' is not available, choose one of linear, constant, cosine, "
                   "constant_with_warmup");
    EXPECT_INVALID("eval_strategy", "best", "eval_strategy 'best' is not valid, choose one of no, steps, epoch");
    EXPECT_INVALID("save_strategy", "always", "save_strategy 'always' is not valid, choose one of no, steps, epoch");
    EXPECT_INVALID("eval_strategy", "steps", "eval_strategy 'steps' needs validation_file");
    EXPECT_INVALID("task_type", "TOKEN_CLS", "task_type 'TOKEN_CLS' is not supported, choose one of SEQ_CLS, CAUSAL_LM");
    EXPECT_INVALID("init_lora_weights", "pissa",
                   "init_lora_weights 'pissa' is not supported, choose one of true, false, gaussian");
    EXPECT_INVALID("adam_beta2", "1", "adam_beta2 must be in [0, 1) (got 1)");
    EXPECT_INVALID("adam_epsilon", "-1e-8", "adam_epsilon must be >= 0 (got -1e-08)");
    EXPECT_INVALID("max_grad_norm", "-1", "max_grad_norm must be >= 0 (got -1)");
    EXPECT_INVALID("warmup_ratio", "1.5", "warmup_ratio must be in [0, 1] (got 1.5)");
    EXPECT_INVALID("warmup_steps", "-3", "warmup_steps must be >= 0 (got -3)");
    EXPECT_INVALID("max_steps", "0", "max_steps must be -1 (train num_train_epochs) or >= 1 (got 0)");
    EXPECT_INVALID("num_train_epochs", "0", "num_train_epochs must be > 0 (got 0)");
    EXPECT_INVALID("logging_steps", "0", "logging_steps must be >= 1 (got 0)");
    EXPECT_INVALID("save_steps", "0", "save_steps must be >= 1 (got 0)");
    EXPECT_INVALID("max_length", "-1", "max_length must be >= 0 (got -1)");
    EXPECT_INVALID("neftune_noise_alpha", "-5", "neftune_noise_alpha must be >= 0 (got -5)");
    EXPECT_INVALID("text_column", "", "text_column must not be empty");
    EXPECT_INVALID("bnb_4bit_quant_type", "int4", "bnb_4bit_quant_type 'int4' is not valid, choose one of fp4, nf4");
    EXPECT_INVALID("bnb_4bit_compute_dtype", "fp8",
                   "bnb_4bit_compute_dtype 'fp8' is not valid, choose one of float32, bfloat16, float16");

    pc_config c;
    pc_config_init(&c);
    pc_error err = {0};
    CHECK_INT_EQ(pc_config_set(&c, "num_train_epochs", "0", "command line", &err), PEFTC_OK);
    CHECK_INT_EQ(pc_config_set(&c, "max_steps", "100", "command line", &err), PEFTC_OK);
    CHECK_INT_EQ(pc_config_validate(&c, &err), PEFTC_OK);  /* max_steps overrides the epochs */
    pc_config_free(&c);
}

TEST(config_to_json_round_trips)
{
    pc_config c;
    pc_config_init(&c);
    pc_error err = {0};
    pc_status s = pc_config_load_json(&c, pc_test_fixture("data/lora_seq_cls.json"), &err);
    CHECK_MSG(s == PEFTC_OK, "%s", err.msg);
    CHECK_INT_EQ(pc_config_set(&c, "target_modules", "\"q_.*\"", "command line", &err), PEFTC_OK);
    cJSON *j = NULL;
    CHECK_INT_EQ(pc_config_to_json(&c, &j, &err), PEFTC_OK);
    if (!j) { pc_config_free(&c); return; }
    /* spot checks against the fixture's values */
    CHECK_NEAR(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(j, "learning_rate")), 2e-4, 1e-15);
    CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "target_modules")), "q_.*");
    CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "init_lora_weights")), "gaussian");
    CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "eval_strategy")), "epoch");
    CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "run_name")), "sst2-lora");
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "adapter_name_or_path")));
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "shuffle")));
    CHECK(cJSON_GetObjectItemCaseSensitive(j, "evaluation_strategy") == NULL);
    const cJSON *id2label = cJSON_GetObjectItemCaseSensitive(j, "id2label");
    CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(id2label, "1")), "POSITIVE");

    /* what it writes loads back to the same configuration */
    char *text = cJSON_Print(j);
    char path[512];
    write_tmp(path, sizeof path, "roundtrip.json", text ? text : "");
    pc_config c2;
    pc_config_init(&c2);
    s = pc_config_load_json(&c2, path, &err);
    CHECK_MSG(s == PEFTC_OK, "%s", err.msg);
    cJSON *j2 = NULL;
    CHECK_INT_EQ(pc_config_to_json(&c2, &j2, &err), PEFTC_OK);
    CHECK(cJSON_Compare(j, j2, true));
    CHECK(c2.target_modules_is_regex);
    CHECK_NEAR(c2.lora_dropout, 0.1, 0);
    cJSON_Delete(j2);
    pc_config_free(&c2);
    free(text);
    cJSON_Delete(j);
    pc_config_free(&c);

    /* an unset num_labels stays unset (the model's config.json decides) */
    pc_config_init(&c);
    CHECK_INT_EQ(pc_config_to_json(&c, &j, &err), PEFTC_OK);
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "num_labels")));
    text = cJSON_PrintUnformatted(j);
    write_tmp(path, sizeof path, "roundtrip.json", text ? text : "");
    CHECK_INT_EQ(pc_config_load_json(&c, path, &err), PEFTC_OK);
    CHECK(!c.num_labels_given);
    CHECK_INT_EQ(c.num_labels, 2);
    free(text);
    cJSON_Delete(j);
    pc_config_free(&c);
}
