/* `peftc demo`: the seed's LoRA recipe end to end with no download. It writes a
 * small DistilBERT-architecture model (seeded random weights, a real Hugging
 * Face directory) and a built-in labelled sentiment dataset, fine-tunes with
 * the recipe's LoRA settings (more steps, higher learning rate), reports eval
 * accuracy before and after, and classifies two sentences with the adapter. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fs.h"
#include "base/rng.h"
#include "cli/cli.h"
#include "models/distilbert.h"

static const char *const positive[] = {"gorgeous", "witty", "moving", "brilliant", "charming", "delightful",
    "heartfelt", "funny", "clever", "beautiful", "gripping", "wonderful", "tender", "smart", "thrilling", "warm"};
static const char *const negative[] = {"flat", "lifeless", "dull", "tedious", "clumsy", "boring", "shallow",
    "predictable", "bland", "messy", "tiresome", "forgettable", "lazy", "hollow", "stale", "awkward"};
static const char *const nouns[] = {"film", "movie", "story", "drama", "comedy", "script", "performance",
    "thriller", "romance", "picture"};
static const char *const fillers[] = {"a", "an", "the", "this", "quite", "really", "truly", "often", "and", "but",
    "is", "feels", "with", "cast", "direction", "ending", "plot", "music", "at", "times", "overall", "simply"};
#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const char *pick(const char *const *words, int n, pc_rng *rng)
{
    return words[pc_rng_below(rng, (uint64_t)n)];
}

/* One review-like sentence whose sentiment words carry the label. */
static void make_sentence(char *buf, size_t n, int label, pc_rng *rng)
{
    const char *const *adj = label ? positive : negative;
    snprintf(buf, n, "%s %s %s , %s %s %s %s .", pick(fillers, COUNT(fillers), rng), pick(adj, 16, rng),
             pick(nouns, COUNT(nouns), rng), pick(fillers, COUNT(fillers), rng), pick(fillers, COUNT(fillers), rng),
             pick(adj, 16, rng), pick(fillers, COUNT(fillers), rng));
}

static int write_dataset(const char *path, int n, uint64_t seed)
{
    FILE *f = fopen(path, "w");
    if (!f) { perror(path); return 1; }
    pc_rng rng;
    pc_rng_init(&rng, seed, "demo_data");
    for (int i = 0; i < n; i++) {
        char text[256];
        int label = (int)pc_rng_below(&rng, 2);
        make_sentence(text, sizeof text, label, &rng);
        fprintf(f, "{\"text\": \"%s\", \"label\": %d}\n", text, label);
    }
    return fclose(f) != 0;
}

static void write_words(FILE *f, const char *const *words, int n)
{
    for (int i = 0; i < n; i++) fprintf(f, "%s\n", words[i]);
}

/* A WordPiece vocabulary covering the demo's words. */
static int write_tokenizer(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/vocab.txt", dir);
    FILE *f = fopen(path, "w");
    if (!f) { perror(path); return 1; }
    fprintf(f, "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n,\n.\n!\n'\n");
    write_words(f, positive, COUNT(positive));
    write_words(f, negative, COUNT(negative));
    write_words(f, nouns, COUNT(nouns));
    write_words(f, fillers, COUNT(fillers));
    fprintf(f, "not\nvery\n");
    if (fclose(f) != 0) return 1;
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    f = fopen(path, "w");
    if (!f) { perror(path); return 1; }
    fprintf(f, "{\"do_lower_case\": true, \"model_max_length\": 64}\n");
    return fclose(f) != 0;
}

static int vocab_size(void)
{
    return 9 + COUNT(positive) + COUNT(negative) + COUNT(nouns) + COUNT(fillers) + 2;
}

static int write_model(const char *dir)
{
    char *labels[2] = {"NEGATIVE", "POSITIVE"};
    pc_distilbert_config c = { .dim = 64, .n_layers = 2, .n_heads = 4, .hidden_dim = 256, .vocab_size = vocab_size(),
                               .max_position_embeddings = 64, .pad_token_id = 0, .dropout = 0.1f,
                               .attention_dropout = 0.1f, .seq_classif_dropout = 0.2f, .num_labels = 2,
                               .id2label = labels };
    pc_error err = {0};
    if (pc_distilbert_write_random(dir, &c, 1234, &err) != PEFTC_OK) { cli_print_error(&err); return 1; }
    return write_tokenizer(dir);
}

static int set(pc_config *c, const char *key, const char *value)
{
    pc_error err = {0};
    if (pc_config_set(c, key, value, "demo", &err) == PEFTC_OK) return 0;
    cli_print_error(&err);
    return 1;
}

/* The seed's recipe (r 8, alpha 32, q_lin/v_lin, dropout 0.05, bias none) with more steps and a higher lr. */
static int demo_config(pc_config *c, const char *out)
{
    char path[4096];
    int rc = 0;
    snprintf(path, sizeof path, "%s/model", out);
    rc |= set(c, "model_name_or_path", path);
    snprintf(path, sizeof path, "%s/train.jsonl", out);
    rc |= set(c, "train_file", path);
    snprintf(path, sizeof path, "%s/validation.jsonl", out);
    rc |= set(c, "validation_file", path);
    snprintf(path, sizeof path, "%s/adapter", out);
    rc |= set(c, "output_dir", path);
    rc |= set(c, "task_type", "SEQ_CLS") | set(c, "r", "8") | set(c, "lora_alpha", "32") |
          set(c, "target_modules", "q_lin,v_lin") | set(c, "lora_dropout", "0.05") | set(c, "bias", "none") |
          set(c, "id2label", "NEGATIVE,POSITIVE") | set(c, "learning_rate", "3e-3") | set(c, "max_steps", "150") |
          set(c, "logging_steps", "25") | set(c, "per_device_train_batch_size", "16") | set(c, "save_strategy", "no");
    return rc;
}

static int demo_predict(const char *out)
{
    char model[4096], adapter[4096];
    snprintf(model, sizeof model, "%s/model", out);
    snprintf(adapter, sizeof adapter, "%s/adapter", out);
    char *argv[] = {"--model_name_or_path", model, "--adapter_name_or_path", adapter,
                    "a gorgeous, witty film", "flat and lifeless"};
    printf("\n$ peftc predict --model_name_or_path %s --adapter_name_or_path %s \"%s\" \"%s\"\n", model, adapter,
           argv[4], argv[5]);
    return cmd_predict(6, argv);
}

int cmd_demo(int argc, char **argv)
{
    const char *out = "demo-out";
    if (argc == 2 && !strcmp(argv[0], "--output_dir")) out = argv[1];
    else if (argc != 0) { fprintf(stderr, "usage: peftc demo [--output_dir DIR]\n"); return 2; }
    char path[4096];
    pc_error err = {0};
    snprintf(path, sizeof path, "%s/model", out);
    if (pc_mkdirs(path, &err) != PEFTC_OK) { cli_print_error(&err); return 1; }
    printf("peftc demo: a %d-token-vocabulary DistilBERT (dim 64, 2 layers) with seeded weights in %s\n", vocab_size(), path);
    if (write_model(path)) return 1;
    snprintf(path, sizeof path, "%s/train.jsonl", out);
    int rc = write_dataset(path, 512, 1);
    snprintf(path, sizeof path, "%s/validation.jsonl", out);
    rc |= write_dataset(path, 128, 2);
    if (rc) return 1;
    printf("built-in sentiment data: %s/train.jsonl (512), %s/validation.jsonl (128)\n\n", out, out);
    pc_config cfg;
    pc_config_init(&cfg);
    rc = demo_config(&cfg, out);
    if (!rc) rc = cli_run_training(&cfg);
    pc_config_free(&cfg);
    return rc ? rc : demo_predict(out);
}
