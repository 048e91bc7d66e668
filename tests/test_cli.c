/* End-to-end tests of the peftc binary ($PEFTC_BIN, set by `make test`) and of
 * adapter save/load through the library. */
#include "testlib.h"

#include <stdlib.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"
#include "formats/safetensors.h"
#include "models/distilbert.h"
#include "models/peft_model.h"

static const char *peftc_bin(void)
{
    const char *b = getenv("PEFTC_BIN");
    return b ? b : "build/peftc";
}

/* Runs `peftc ARGS` (stdout+stderr into out); returns the exit status. */
static int run_peftc(const char *args, char *out, size_t n)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", peftc_bin(), args);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t used = fread(out, 1, n - 1, p);
    out[used] = '\0';
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CHECK_MSG(f != NULL, "cannot write %s", path);
    if (f) { fputs(text, f); fclose(f); }
}

static const char *const words[] = {"good", "great", "fine", "fun", "bad", "awful", "dull", "poor", "film", "movie",
                                    "a", "the", "very", "not"};

/* A 14-word vocabulary, a 6-layer tiny DistilBERT, and a labelled data set in dir. */
static void make_tiny_world(const char *dir, int n_layers)
{
    char path[512];
    pc_error err = {0};
    snprintf(path, sizeof path, "%s/model", dir);
    CHECK(pc_mkdirs(path, &err) == PEFTC_OK);
    char *labels[2] = {"NEGATIVE", "POSITIVE"};
    pc_distilbert_config c = { .dim = 16, .n_layers = n_layers, .n_heads = 2, .hidden_dim = 32, .vocab_size = 19,
                               .max_position_embeddings = 32, .dropout = 0.1f, .attention_dropout = 0.1f,
                               .seq_classif_dropout = 0.2f, .num_labels = 2, .id2label = labels };
    CHECK_MSG(pc_distilbert_write_random(path, &c, 7, &err) == PEFTC_OK, "%s", err.msg);
    char vocab[512] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n";
    for (int i = 0; i < 14; i++) { strcat(vocab, words[i]); strcat(vocab, "\n"); }
    snprintf(path, sizeof path, "%s/model/vocab.txt", dir);
    write_text(path, vocab);
    char data[4096] = "";
    for (int i = 0; i < 40; i++) {
        char line[128];
        int label = i % 2;
        snprintf(line, sizeof line, "{\"text\": \"a %s film\", \"label\": %d}\n", words[(label ? 0 : 4) + i % 4], label);
        strcat(data, line);
    }
    snprintf(path, sizeof path, "%s/train.jsonl", dir);
    write_text(path, data);
}

static void make_world_dir(char *dir, size_t n, const char *name, int n_layers)
{
    snprintf(dir, n, "%s/%s", pc_test_tmpdir(), name);
    make_tiny_world(dir, n_layers);
}

TEST(cli_train_writes_peft_adapter_with_pefts_keys)
{
    char dir[512], args[2048], out[16384];
    make_world_dir(dir, sizeof dir, "cli_train", 6);
    snprintf(args, sizeof args, "train --model_name_or_path %s/model --train_file %s/train.jsonl "
             "--output_dir %s/out --task_type SEQ_CLS --r 8 --lora_alpha 32 --target_modules q_lin,v_lin "
             "--lora_dropout 0.05 --learning_rate 1e-3 --logging_steps 1 --max_steps 3 --id2label NEGATIVE,POSITIVE",
             dir, dir, dir);
    int rc = run_peftc(args, out, sizeof out);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, out);
    CHECK_CONTAINS(out, "trainable params: ");
    CHECK_CONTAINS(out, "\"step\":3");
    char path[600];
    snprintf(path, sizeof path, "%s/out/adapter_model.safetensors", dir);
    pc_safetensors *st = NULL;
    pc_error err = {0};
    CHECK_MSG(pc_st_open(path, &st, &err) == PEFTC_OK, "%s", err.msg);
    if (!st) return;
    /* PEFT's key set for the recipe: 6 layers x {q_lin, v_lin} x {A, B} + pre_classifier and classifier. */
    CHECK_INT_EQ(pc_st_count(st), 28);
    CHECK(pc_st_find(st, "base_model.model.distilbert.transformer.layer.0.attention.q_lin.lora_A.weight") != NULL);
    CHECK(pc_st_find(st, "base_model.model.distilbert.transformer.layer.5.attention.v_lin.lora_B.weight") != NULL);
    CHECK(pc_st_find(st, "base_model.model.pre_classifier.weight") != NULL);
    CHECK(pc_st_find(st, "base_model.model.classifier.bias") != NULL);
    pc_st_close(st);
    snprintf(path, sizeof path, "%s/out/trainer_state.json", dir);
    CHECK(pc_path_exists(path));
    snprintf(path, sizeof path, "%s/out/checkpoint-3/adapter_config.json", dir);
    CHECK(pc_path_exists(path));
}

TEST(cli_predict_prints_label_and_probabilities)
{
    char dir[512], args[2048], out[16384];
    make_world_dir(dir, sizeof dir, "cli_predict", 1);
    snprintf(args, sizeof args, "train --model_name_or_path %s/model --train_file %s/train.jsonl --output_dir %s/out "
             "--target_modules q_lin,v_lin --max_steps 2 --id2label NEGATIVE,POSITIVE", dir, dir, dir);
    CHECK_MSG(run_peftc(args, out, sizeof out) == 0, "%s", out);
    snprintf(args, sizeof args, "predict --model_name_or_path %s/model --adapter_name_or_path %s/out "
             "\"a good film\" \"the awful movie\"", dir, dir);
    CHECK_MSG(run_peftc(args, out, sizeof out) == 0, "%s", out);
    CHECK_CONTAINS(out, "NEGATIVE=0.");
    CHECK_CONTAINS(out, "\ta good film\n");
    snprintf(args, sizeof args, "predict --json --model_name_or_path %s/model --adapter_name_or_path %s/out \"a good film\"",
             dir, dir);
    CHECK_MSG(run_peftc(args, out, sizeof out) == 0, "%s", out);
    CHECK_CONTAINS(out, "\"probabilities\":{\"NEGATIVE\":");
}

TEST(cli_unknown_key_suggests_the_right_one)
{
    char out[4096];
    int rc = run_peftc("train --learnig_rate 1e-4", out, sizeof out);
    CHECK_INT_EQ(rc, 2);
    CHECK_CONTAINS(out, "learning_rate");
}

TEST(cli_target_matching_nothing_is_an_error_naming_it_and_writes_nothing)
{
    char dir[512], args[2048], out[8192], path[600];
    make_world_dir(dir, sizeof dir, "cli_bad_target", 1);
    snprintf(args, sizeof args, "train --model_name_or_path %s/model --train_file %s/train.jsonl --output_dir %s/out "
             "--target_modules q_lin,query --max_steps 1", dir, dir, dir);
    int rc = run_peftc(args, out, sizeof out);
    CHECK(rc != 0);
    CHECK_CONTAINS(out, "'query' matches no Linear module");
    snprintf(path, sizeof path, "%s/out/adapter_model.safetensors", dir);
    CHECK(!pc_path_exists(path));
}

TEST(cli_label_out_of_range_names_file_and_line)
{
    char dir[512], args[2048], out[8192], path[600];
    make_world_dir(dir, sizeof dir, "cli_bad_label", 1);
    snprintf(path, sizeof path, "%s/bad.jsonl", dir);
    write_text(path, "{\"text\": \"a good film\", \"label\": 1}\n{\"text\": \"a bad film\", \"label\": 7}\n");
    snprintf(args, sizeof args, "train --model_name_or_path %s/model --train_file %s --output_dir %s/out "
             "--target_modules q_lin --max_steps 1", dir, path, dir);
    CHECK(run_peftc(args, out, sizeof out) != 0);
    CHECK_CONTAINS(out, "bad.jsonl:2");
}

TEST(cli_corrupt_safetensors_is_a_clear_error)
{
    char dir[512], args[2048], out[8192], path[600];
    make_world_dir(dir, sizeof dir, "cli_corrupt", 1);
    snprintf(path, sizeof path, "%s/model/model.safetensors", dir);
    CHECK(truncate(path, 100) == 0);
    snprintf(args, sizeof args, "predict --model_name_or_path %s/model \"a good film\"", dir);
    CHECK(run_peftc(args, out, sizeof out) == 1);
    CHECK_CONTAINS(out, "model.safetensors");
}

TEST(cli_inspect_and_tokenize)
{
    char dir[512], args[2048], out[16384];
    make_world_dir(dir, sizeof dir, "cli_inspect", 1);
    snprintf(args, sizeof args, "inspect %s/model/model.safetensors", dir);
    CHECK_MSG(run_peftc(args, out, sizeof out) == 0, "%s", out);
    CHECK_CONTAINS(out, "distilbert.embeddings.word_embeddings.weight");
    CHECK_CONTAINS(out, "[19, 16]");
    snprintf(args, sizeof args, "tokenize --model_name_or_path %s/model \"A good film!\"", dir);
    CHECK_MSG(run_peftc(args, out, sizeof out) == 0, "%s", out);
    CHECK_STR_EQ(out, "2 15 5 13 1 3\n");  /* [CLS] a good film [UNK]('!' is not in the vocab) [SEP] */
}

/* An adapter saved and loaded again gives bit-identical logits. */
TEST(adapter_round_trip_gives_identical_logits)
{
    pc_error err = {0};
    pc_model *m = NULL, *m2 = NULL;
    pc_peft_model *p = NULL, *p2 = NULL;
    char model_dir[512], adapter_dir[512], out_dir[512];
    snprintf(model_dir, sizeof model_dir, "%s", pc_test_fixture("distilbert_tiny/all/model"));
    snprintf(adapter_dir, sizeof adapter_dir, "%s", pc_test_fixture("distilbert_tiny/all/adapter_init"));
    snprintf(out_dir, sizeof out_dir, "%s/roundtrip", pc_test_tmpdir());
    CHECK(pc_mkdirs(out_dir, &err) == PEFTC_OK);
    CHECK_MSG(pc_model_load(model_dir, NULL, &m, &err) == PEFTC_OK, "%s", err.msg);
    CHECK_MSG(pc_peft_load(m, adapter_dir, &p, &err) == PEFTC_OK, "%s", err.msg);
    if (!p) { pc_model_free(m); return; }
    CHECK_MSG(pc_peft_save(p, out_dir, &err) == PEFTC_OK, "%s", err.msg);
    CHECK_MSG(pc_model_load(model_dir, NULL, &m2, &err) == PEFTC_OK, "%s", err.msg);
    CHECK_MSG(pc_peft_load(m2, out_dir, &p2, &err) == PEFTC_OK, "%s", err.msg);
    if (p2) {
        int32_t ids[6] = {2, 17, 33, 4, 3, 0};
        uint8_t mask[6] = {1, 1, 1, 1, 1, 0};
        pc_batch b = {1, 6, ids, mask, NULL};
        float loss, l1[3], l2[3];
        CHECK(m->ops->reserve(m, 1, 6, &err) == PEFTC_OK && m2->ops->reserve(m2, 1, 6, &err) == PEFTC_OK);
        CHECK(m->ops->forward(m, &b, false, &loss, &err) == PEFTC_OK);
        memcpy(l1, m->logits, sizeof l1);
        CHECK(m2->ops->forward(m2, &b, false, &loss, &err) == PEFTC_OK);
        memcpy(l2, m2->logits, sizeof l2);
        CHECK(memcmp(l1, l2, sizeof l1) == 0);
    }
    pc_peft_model_free(p2);
    pc_model_free(m2);
    pc_peft_model_free(p);
    pc_model_free(m);
}

/* The seed's recipe values on the real distilbert vocabulary and Rotten Tomatoes
 * (a small random model in distilbert's layout stands in for the weights). */
TEST(cli_recipe_runs_on_real_vocab_and_rotten_tomatoes)
{
    char vocab_path[512], data_path[512], dir[512], path[600], args[4096], out[65536];
    const char *vocab = pc_test_shared("tokenizers/distilbert-base-uncased/vocab.txt");
    snprintf(vocab_path, sizeof vocab_path, "%s", vocab ? vocab : "");
    const char *data = pc_test_shared("data/rotten_tomatoes/mini_train.jsonl");
    snprintf(data_path, sizeof data_path, "%s", data ? data : "");
    if (!vocab || !data) SKIP("../shared/tokenizers or ../shared/data absent: real-vocabulary recipe run not checked");
    snprintf(dir, sizeof dir, "%s/recipe", pc_test_tmpdir());
    pc_error err = {0};
    snprintf(path, sizeof path, "%s/model", dir);
    CHECK(pc_mkdirs(path, &err) == PEFTC_OK);
    char *labels[2] = {"NEGATIVE", "POSITIVE"};
    pc_distilbert_config c = { .dim = 32, .n_layers = 2, .n_heads = 4, .hidden_dim = 64, .vocab_size = 30522,
                               .max_position_embeddings = 512, .dropout = 0.1f, .attention_dropout = 0.1f,
                               .seq_classif_dropout = 0.2f, .num_labels = 2, .id2label = labels };
    CHECK(pc_distilbert_write_random(path, &c, 3, &err) == PEFTC_OK);
    snprintf(path, sizeof path, "%s/model/vocab.txt", dir);
    CHECK(pc_copy_file(vocab_path, path, &err) == PEFTC_OK);
    snprintf(args, sizeof args, "train %s/examples/rotten_tomatoes_lora.json --model_name_or_path %s/model "
             "--train_file %s --validation_file %s --output_dir %s/out",
             getenv("PEFTC_SOURCE_DIR") ? getenv("PEFTC_SOURCE_DIR") : ".", dir, data_path, data_path, dir);
    int rc = run_peftc(args, out, sizeof out);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, out);
    CHECK_CONTAINS(out, "\"learning_rate\":1e-05");
    CHECK_CONTAINS(out, "\"step\":10");
    CHECK_CONTAINS(out, "eval after training: accuracy");
}

/* The causal-LM recipe on the real stories260K: LoRA lowers the validation loss, and greedy
 * generation through the CLI (tokenizer, KV cache, streaming decode) gives the reference story. */
TEST(cli_stories_lora_lowers_validation_loss_and_generates)
{
    const char *s = pc_test_shared("models/stories260K/model.safetensors");
    if (!s) SKIP("../shared/models/stories260K absent: causal-LM CLI run not checked");
    char args[4096], out[65536];
    const char *src = getenv("PEFTC_SOURCE_DIR") ? getenv("PEFTC_SOURCE_DIR") : ".";
    char model[512];
    snprintf(model, sizeof model, "%s", pc_test_shared("models/stories260K"));
    snprintf(args, sizeof args, "train %s/examples/stories_lora.json --model_name_or_path %s "
             "--train_file %s/examples/data/stories_train.jsonl --validation_file %s/examples/data/stories_validation.jsonl "
             "--output_dir %s/stories --max_steps 20 --eval_strategy no --logging_steps 10", src, model, src, src,
             pc_test_tmpdir());
    int rc = run_peftc(args, out, sizeof out);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, out);
    double before = 0, after = 0;
    const char *b = strstr(out, "eval before training: loss "), *a = strstr(out, "eval after training: loss ");
    CHECK(b && a);
    if (b && a) {
        before = atof(b + strlen("eval before training: loss "));
        after = atof(a + strlen("eval after training: loss "));
        CHECK_MSG(after < 0.8 * before, "validation loss %.4f -> %.4f", before, after);
    }
    snprintf(args, sizeof args, "generate --model_name_or_path %s --max_new_tokens 24", model);
    CHECK_MSG(run_peftc(args, out, sizeof out) == 0, "%s", out);
    CHECK_CONTAINS(out, "Once upon a time, there was a little girl named Lily.");
    snprintf(args, sizeof args, "generate --model_name_or_path %s --adapter_name_or_path %s/stories "
             "--prompt \"Once upon a time\" --max_new_tokens 16 --temperature 0.8 --top_k 40 --top_p 0.95 --seed 1",
             model, pc_test_tmpdir());
    CHECK_MSG(run_peftc(args, out, sizeof out) == 0, "%s", out);
    CHECK(strlen(out) > 10);
    /* merge_and_unload: the merged directory generates what the adapter did */
    char with_adapter[4096], merged[4096];
    snprintf(args, sizeof args, "generate --model_name_or_path %s --adapter_name_or_path %s/stories "
             "--prompt \"Once upon a time\" --max_new_tokens 24", model, pc_test_tmpdir());
    CHECK_MSG(run_peftc(args, with_adapter, sizeof with_adapter) == 0, "%s", with_adapter);
    snprintf(args, sizeof args, "merge --model_name_or_path %s --adapter_name_or_path %s/stories --output_dir %s/merged",
             model, pc_test_tmpdir(), pc_test_tmpdir());
    CHECK_MSG(run_peftc(args, out, sizeof out) == 0, "%s", out);
    snprintf(args, sizeof args, "generate --model_name_or_path %s/merged --prompt \"Once upon a time\" --max_new_tokens 24",
             pc_test_tmpdir());
    CHECK_MSG(run_peftc(args, merged, sizeof merged) == 0, "%s", merged);
    CHECK_STR_EQ(merged, with_adapter);
}

/* The value after `label` on the line that starts (after spaces) with it, or -1. */
static double profile_value(const char *out, const char *label)
{
    char needle[64];
    snprintf(needle, sizeof needle, "\n  %s ", label);
    const char *at = strstr(out, needle);
    return at ? strtod(at + strlen(needle), NULL) : -1;
}

/* --profile: the table is printed, the phases add up to the step time, the main op kinds are seen, and the
 * steps took no longer than the whole process did (timed here, outside the code under test). */
TEST(cli_train_profile_prints_phases_and_ops)
{
    char dir[512], args[2048], out[16384];
    make_world_dir(dir, sizeof dir, "cli_profile", 2);
    snprintf(args, sizeof args, "train --model_name_or_path %s/model --train_file %s/train.jsonl --output_dir %s/out "
             "--target_modules q_lin,v_lin --max_steps 6 --save_strategy no --id2label NEGATIVE,POSITIVE "
             "--threads 2 --profile", dir, dir, dir);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = run_peftc(args, out, sizeof out);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, out);
    const char *table = strstr(out, "profile: 6 steps, ");
    CHECK_MSG(table != NULL, "no profile table: %s", out);
    if (!table) return;
    CHECK_CONTAINS(table, ", 2 threads\n");
    const double wall_ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) * 1e-6;
    const double step_ms = strtod(table + strlen("profile: 6 steps, "), NULL);
    CHECK_MSG(step_ms > 0 && 6 * step_ms < wall_ms, "step %g ms, process %g ms", step_ms, wall_ms);
    double phases = 0;
    const char *names[] = {"data", "forward", "backward", "optimizer"};
    for (int i = 0; i < 4; i++) {
        double ms = profile_value(table, names[i]);
        CHECK_MSG(ms >= 0, "phase %s missing: %s", names[i], table);
        phases += ms;
    }
    CHECK_MSG(phases > 0.8 * step_ms && phases <= 1.001 * step_ms + 0.01, "phases %g ms of a %g ms step", phases,
              step_ms);
    CHECK_NEAR(profile_value(table, "sum of phases"), phases, 0.01);
    /* every kind is listed; those this model spends real time in are not zero */
    const char *ops[] = {"matmul (base)", "attention", "norm", "activation", "dropout", "lora", "embedding", "loss",
                         "matmul (4-bit base)", "rope"};
    double op_sum = 0;
    for (int i = 0; i < 10; i++) {
        double ms = profile_value(table, ops[i]);
        CHECK_MSG(i < 5 ? ms > 0 : ms >= 0, "op %s: %g ms: %s", ops[i], ms, table);
        op_sum += ms;
    }
    CHECK_MSG(op_sum <= phases + 0.01, "ops %g ms > phases %g ms", op_sum, phases);
}

/* The program restarts once with OpenBLAS's SkylakeX (AVX-512) kernels when the CPU has what they use and the
 * environment pins others; PEFTC_OPENBLAS_CORETYPE=keep keeps the environment's choice; without AVX-512 the
 * environment's choice stands. Read off --profile's "products:" line (OpenBLAS's own core name). */
TEST(cli_restarts_with_openblas_avx512_kernels)
{
    char dir[512], args[2048], out[16384];
    make_world_dir(dir, sizeof dir, "cli_coretype", 1);
    snprintf(args, sizeof args, "train --model_name_or_path %s/model --train_file %s/train.jsonl --output_dir %s/out "
             "--target_modules q_lin --max_steps 1 --save_strategy no --id2label NEGATIVE,POSITIVE --profile", dir,
             dir, dir);
    __builtin_cpu_init();
    bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                  __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
    const char *saved = getenv("OPENBLAS_CORETYPE");
    char saved_copy[64] = "";
    if (saved) snprintf(saved_copy, sizeof saved_copy, "%s", saved);
    setenv("OPENBLAS_CORETYPE", "Haswell", 1);
    int rc = run_peftc(args, out, sizeof out);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, out);
    CHECK_CONTAINS(out, avx512 ? "core SkylakeX;" : "core Haswell;");
    setenv("PEFTC_OPENBLAS_CORETYPE", "keep", 1);
    rc = run_peftc(args, out, sizeof out);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, out);
    CHECK_CONTAINS(out, "core Haswell;");
    unsetenv("PEFTC_OPENBLAS_CORETYPE");
    if (saved) setenv("OPENBLAS_CORETYPE", saved_copy, 1);
    else unsetenv("OPENBLAS_CORETYPE");
}

/* Every shipped causal-LM example trains (a few steps, on the real stories260K): the prompt/completion SFT one
 * once overran the tokenized dataset's buffers. */
TEST(cli_shipped_causal_examples_train)
{
    const char *s = pc_test_shared("models/stories260K/model.safetensors");
    if (!s) SKIP("../shared/models/stories260K absent: the shipped causal examples not run");
    const char *src = getenv("PEFTC_SOURCE_DIR") ? getenv("PEFTC_SOURCE_DIR") : ".";
    const char *examples[] = {"stories_lora", "stories_neftune", "qlora_causal"};
    for (int i = 0; i < 3; i++) {
        char args[4096], out[65536];
        const char *data = i == 1 ? "stories_sft" : "stories";
        snprintf(args, sizeof args, "train %s/examples/%s.json --model_name_or_path %s --train_file "
                 "%s/examples/data/%s_train.jsonl --validation_file %s/examples/data/%s_validation.jsonl "
                 "--output_dir %s/example-%s --max_steps 3 --save_strategy no", src, examples[i],
                 pc_test_shared("models/stories260K"), src, data, src, data, pc_test_tmpdir(), examples[i]);
        int rc = run_peftc(args, out, sizeof out);
        CHECK_MSG(rc == 0 && strstr(out, "trained 3 steps"), "%s: exit %d: %s", examples[i], rc, out);
    }
}

/* The lines of a run's output that carry a "loss" key (the Trainer's logs), concatenated. */
static void loss_lines(const char *out, char *lines, size_t n)
{
    lines[0] = '\0';
    for (const char *p = strstr(out, "\"loss\":"); p; p = strstr(p + 1, "\"loss\":")) {
        const char *start = p, *end = strchr(p, '\n');
        while (start > out && start[-1] != '\n') start--;
        size_t len = end ? (size_t)(end - start) : strlen(start), used = strlen(lines);
        if (used + len + 2 < n) { memcpy(lines + used, start, len); lines[used + len] = '\n'; lines[used + len + 1] = '\0'; }
    }
}

/* The QLoRA recipe with blocks keeping their MLP products trains exactly as with every MLP recomputed: the same
 * logged losses and gradient norms, bit for bit, and the run says how many blocks kept theirs. */
TEST(cli_qlora_kept_blocks_train_as_recomputed)
{
    const char *s = pc_test_shared("models/stories260K/model.safetensors");
    if (!s) SKIP("../shared/models/stories260K absent: gradient_checkpointing_kept_blocks not run end to end");
    const char *src = getenv("PEFTC_SOURCE_DIR") ? getenv("PEFTC_SOURCE_DIR") : ".";
    static char out[2][65536], lines[2][8192];
    for (int kept = 0; kept < 2; kept++) {
        char args[4096];
        snprintf(args, sizeof args, "train %s/examples/qlora_causal.json --model_name_or_path %s --train_file "
                 "%s/examples/data/stories_train.jsonl --validation_file %s/examples/data/stories_validation.jsonl "
                 "--output_dir %s/kept-%d --max_steps 3 --logging_steps 1 --gradient_checkpointing_kept_blocks %d",
                 src, pc_test_shared("models/stories260K"), src, src, pc_test_tmpdir(), kept, kept ? 3 : 0);
        int rc = run_peftc(args, out[kept], sizeof out[kept]);
        CHECK_MSG(rc == 0 && strstr(out[kept], "trained 3 steps"), "exit %d: %s", rc, out[kept]);
        loss_lines(out[kept], lines[kept], sizeof lines[kept]);
    }
    CHECK_CONTAINS(out[1], "3 block(s) keep their MLP's gate/up outputs");
    CHECK_MSG(strlen(lines[0]) > 0 && strcmp(lines[0], lines[1]) == 0, "logs differ:\n%s---\n%s", lines[0], lines[1]);
}

/* gradient_checkpointing_kept_blocks -1 keeps as many blocks as max_memory_mb has room for, and says so; without
 * max_memory_mb it is an error. */
TEST(cli_kept_blocks_fill_max_memory_mb)
{
    const char *s = pc_test_shared("models/stories260K/model.safetensors");
    if (!s) SKIP("../shared/models/stories260K absent: gradient_checkpointing_kept_blocks -1 not run");
    const char *src = getenv("PEFTC_SOURCE_DIR") ? getenv("PEFTC_SOURCE_DIR") : ".";
    char common[4096], args[4200], out[65536];
    snprintf(common, sizeof common, "train %s/examples/qlora_causal.json --model_name_or_path %s --train_file "
             "%s/examples/data/stories_train.jsonl --validation_file %s/examples/data/stories_validation.jsonl "
             "--output_dir %s/kept-fit --dry_run", src, pc_test_shared("models/stories260K"), src, src, pc_test_tmpdir());
    snprintf(args, sizeof args, "%s --gradient_checkpointing_kept_blocks -1", common);
    CHECK_INT_EQ(run_peftc(args, out, sizeof out), 2);
    CHECK_CONTAINS(out, "gradient_checkpointing_kept_blocks -1 (as many as fit) needs max_memory_mb");
    CHECK_INT_EQ(run_peftc(common, out, sizeof out), 0);   /* none kept: the estimate to fill from */
    const char *p = strstr(out, "estimated peak memory ");
    double none_kept = p ? atof(p + 22) : 0;
    CHECK(none_kept > 0);
    snprintf(args, sizeof args, "%s --gradient_checkpointing_kept_blocks -1 --max_memory_mb 100000", common);
    CHECK_INT_EQ(run_peftc(args, out, sizeof out), 0);
    CHECK_CONTAINS(out, "4 block(s) keep their MLP's gate/up outputs");   /* stories260K: 5 blocks, the top one current */
    snprintf(args, sizeof args, "%s --gradient_checkpointing_kept_blocks -1 --max_memory_mb %.0f", common, none_kept + 2);
    CHECK_INT_EQ(run_peftc(args, out, sizeof out), 0);
    p = strstr(out, "gradient checkpointing: ");
    int kept = p ? atoi(p + 24) : -1;
    CHECK_MSG(kept >= 1 && kept < 4, "%d blocks kept with 2 MiB of room: %s", kept, out);
    p = strstr(out, "estimated peak memory ");
    CHECK_MSG(p && atof(p + 22) <= none_kept + 2, "the kept blocks overfill max_memory_mb: %s", out);
}
