/* Entry points of the fuzz targets: the input goes into a file in a private scratch directory
 * (under /dev/shm when it exists) and through the library's loader, as a user's file would. */
#include "fuzz_entry.h"

#include "base/fs.h"
#include "formats/json.h"
#include "formats/safetensors.h"
#include "kernels/quant4.h"
#include "models/distilbert.h"
#include "models/gpt2.h"
#include "models/llama.h"
#include "models/quantized.h"
#include "nn/linear.h"
#include "peft/lora_config.h"
#include "text/tokenizer.h"
#include "train/config.h"
#include "train/dataset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *source_dir = ".";

void pc_fuzz_set_source_dir(const char *dir) { source_dir = dir; }

/* ---- scratch files ---------------------------------------------------------------------- */

static char scratch[256];

static void remove_scratch(void)
{
    pc_error err = {0};
    if (scratch[0]) pc_remove_tree(scratch, &err);
}

/* scratch/sub/name (sub may be ""), its directory created. Aborts when the scratch directory
 * cannot be made: that is the harness failing, not the code under test. */
static const char *scratch_path(const char *sub, const char *name)
{
    static char path[512];
    pc_error err = {0};
    if (!scratch[0]) {
        snprintf(scratch, sizeof scratch, "%s/peftc-fuzz-XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
        if (!mkdtemp(scratch)) { perror("mkdtemp"); abort(); }
        atexit(remove_scratch);
    }
    snprintf(path, sizeof path, "%s/%s", scratch, sub);
    if (pc_mkdirs(path, &err) != PEFTC_OK) { fprintf(stderr, "%s\n", err.msg); abort(); }
    snprintf(path, sizeof path, "%s/%s%s%s", scratch, sub, sub[0] ? "/" : "", name);
    return path;
}

static const char *write_scratch(const char *sub, const char *name, const uint8_t *data, size_t size)
{
    const char *path = scratch_path(sub, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) { perror(path); abort(); }
    return path;
}

static void remove_scratch_file(const char *sub, const char *name) { unlink(scratch_path(sub, name)); }

/* The directory of scratch/sub/name as a string the caller keeps. */
static char *scratch_dir(const char *sub)
{
    char *dir = strdup(scratch_path(sub, "x"));
    if (!dir) abort();
    dir[strlen(dir) - 2] = '\0';
    return dir;
}

/* ---- safetensors ------------------------------------------------------------------------- */

/* Opens a checkpoint and reads each (small) tensor as f32, as the model loaders do. */
static void read_all_tensors(pc_safetensors *st)
{
    static float buf[1 << 14];
    pc_error err = {0};
    for (int i = 0; i < pc_st_count(st); i++) {
        const pc_st_tensor *t = pc_st_at(st, i);
        int64_t n = pc_st_numel(t);
        if (n <= (int64_t)(sizeof buf / sizeof buf[0])) pc_st_read_f32(t, buf, n, &err);
        if (pc_st_find(st, t->name) == NULL) abort();   /* every tensor must be found by its name */
    }
    pc_st_metadata(st);
}

int pc_fuzz_safetensors(const uint8_t *data, size_t size)
{
    pc_safetensors *st = NULL;
    pc_error err = {0};
    if (pc_st_open(write_scratch("", "x.safetensors", data, size), &st, &err) == PEFTC_OK) read_all_tensors(st);
    pc_st_close(st);
    return 0;
}

/* Two shards: a.weight, b.weight in the first; c.weight in the second (written once). */
static void write_fixed_shards(void)
{
    static bool done;
    static const float v[4] = { 1, 2, 3, 4 };
    pc_st_item one[2] = { { .name = "a.weight", .dtype = PC_DT_F32, .ndim = 1, .shape = { 2 }, .data = v },
                          { .name = "b.weight", .dtype = PC_DT_F32, .ndim = 2, .shape = { 1, 2 }, .data = v } };
    pc_st_item two[1] = { { .name = "c.weight", .dtype = PC_DT_F32, .ndim = 1, .shape = { 4 }, .data = v } };
    pc_error err = {0};
    if (done) return;
    if (pc_st_write(scratch_path("index", "model-00001-of-00002.safetensors"), one, 2, NULL, &err) != PEFTC_OK ||
        pc_st_write(scratch_path("index", "model-00002-of-00002.safetensors"), two, 1, NULL, &err) != PEFTC_OK) {
        fprintf(stderr, "%s\n", err.msg);
        abort();
    }
    done = true;
}

int pc_fuzz_st_index(const uint8_t *data, size_t size)
{
    pc_safetensors *st = NULL;
    pc_error err = {0};
    write_fixed_shards();
    write_scratch("index", "model.safetensors.index.json", data, size);
    char *dir = scratch_dir("index");
    if (pc_st_open_model_dir(dir, &st, &err) == PEFTC_OK) read_all_tensors(st);
    pc_st_close(st);
    free(dir);
    return 0;
}

/* ---- configuration files ----------------------------------------------------------------- */

int pc_fuzz_configs(const uint8_t *data, size_t size)
{
    pc_error err = {0};
    const char *path = write_scratch("", "config.json", data, size);

    pc_distilbert_config db = {0};
    if (pc_distilbert_config_load(path, &db, &err) == PEFTC_OK) pc_distilbert_config_free(&db);
    pc_llama_config llama;
    pc_llama_config_load(path, &llama, &err);
    pc_gpt2_config gpt2;
    pc_gpt2_config_load(path, &gpt2, &err);

    pc_lora_config lora;
    pc_lora_config_init(&lora);
    if (pc_lora_config_load(&lora, path, &err) == PEFTC_OK) pc_lora_config_prepare(&lora, &err);
    pc_lora_config_free(&lora);

    pc_config train;
    pc_config_init(&train);
    if (pc_config_load_json(&train, path, &err) == PEFTC_OK) pc_config_validate(&train, &err);
    pc_config_free(&train);
    return 0;
}

/* ---- tokenizers -------------------------------------------------------------------------- */

/* Encodes text (with and without special tokens, with truncation) and decodes the ids back. */
static void encode_decode(const pc_tokenizer *t, const char *text, size_t len)
{
    pc_error err = {0};
    for (int pass = 0; pass < 3; pass++) {
        int32_t *ids = NULL;
        int n = 0;
        if (pc_tokenizer_encode(t, text, len, pass != 1, pass == 2 ? 5 : 0, &ids, &n, &err) == PEFTC_OK) {
            for (int skip = 0; skip < 2; skip++) {
                char *back = NULL;
                if (pc_tokenizer_decode(t, ids, n, skip, &back, &err) == PEFTC_OK) free(back);
            }
        }
        free(ids);
    }
}

/* Uses a loaded tokenizer the way the trainer and the CLI do: special ids, a few texts,
 * every id (and a few past the end) decoded. */
static void use_tokenizer(const pc_tokenizer *t)
{
    static const char *texts[] = { "Hello world! It's 2 a.m.", " héllo\tWORLD\n naïve café 東京 🙂",
                                   "[CLS] [MASK] <s> </s> <unk> <|endoftext|> [SEP]", "", "  ", "a" };
    pc_error err = {0};
    pc_tokenizer_pad_id(t);
    pc_tokenizer_cls_id(t);
    pc_tokenizer_sep_id(t);
    pc_tokenizer_unk_id(t);
    pc_tokenizer_mask_id(t);
    pc_tokenizer_bos_id(t);
    pc_tokenizer_get_kind(t);
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) encode_decode(t, texts[i], strlen(texts[i]));
    int vocab = pc_tokenizer_vocab_size(t);
    for (int32_t id = -1; id < vocab + 2 && id < 4096; id++) {
        const char *tok = pc_tokenizer_id_to_token(t, id);
        if (tok) pc_tokenizer_token_to_id(t, tok);
        char *back = NULL;
        if (pc_tokenizer_decode(t, &id, 1, false, &back, &err) == PEFTC_OK) free(back);
    }
}

int pc_fuzz_tokenizer_json(const uint8_t *data, size_t size)
{
    pc_tokenizer *t = NULL;
    pc_error err = {0};
    write_scratch("tokenizer", "tokenizer.json", data, size);
    char *dir = scratch_dir("tokenizer");
    if (pc_tokenizer_load(dir, &t, &err) == PEFTC_OK) use_tokenizer(t);
    pc_tokenizer_free(t);
    free(dir);
    return 0;
}

/* The fixed tokenizers of tests/fuzz/tokenizers/ (one per model kind), loaded once. */
enum { N_FIXED = 3 };
static pc_tokenizer *fixed_tokenizers[N_FIXED];

static void free_fixed_tokenizers(void)
{
    for (int i = 0; i < N_FIXED; i++) pc_tokenizer_free(fixed_tokenizers[i]);
}

static void load_fixed_tokenizers(void)
{
    static const char *names[N_FIXED] = { "wordpiece", "bytelevel_bpe", "sentencepiece_bpe" };
    if (fixed_tokenizers[0]) return;
    for (int i = 0; i < N_FIXED; i++) {
        char dir[1024];
        pc_error err = {0};
        snprintf(dir, sizeof dir, "%s/tests/fuzz/tokenizers/%s", source_dir, names[i]);
        if (pc_tokenizer_load(dir, &fixed_tokenizers[i], &err) != PEFTC_OK) {
            fprintf(stderr, "fuzz: %s\n", err.msg);
            abort();
        }
    }
    atexit(free_fixed_tokenizers);
}

int pc_fuzz_tokenizer_encode(const uint8_t *data, size_t size)
{
    load_fixed_tokenizers();
    for (int i = 0; i < N_FIXED; i++) {
        encode_decode(fixed_tokenizers[i], (const char *)data, size);
        /* The same bytes as ids (little-endian int32), decoded. */
        int n = (int)(size / 4);
        int32_t *ids = malloc(n ? (size_t)n * 4 : 1);
        if (!ids) abort();
        memcpy(ids, data, (size_t)n * 4);
        for (int k = 0; k < n; k++) ids[k] = (int32_t)((uint32_t)ids[k] % (uint32_t)(pc_tokenizer_vocab_size(fixed_tokenizers[i]) + 2));
        for (int skip = 0; skip < 2; skip++) {
            char *back = NULL;
            pc_error err = {0};
            if (pc_tokenizer_decode(fixed_tokenizers[i], ids, n, skip, &back, &err) == PEFTC_OK) free(back);
        }
        free(ids);
    }
    return 0;
}

/* Copies tests/fuzz/tokenizers/<kind>/<name> into scratch/<sub>/<name>. */
static void copy_fixed(const char *kind, const char *name, const char *sub)
{
    char from[1024];
    pc_error err = {0};
    snprintf(from, sizeof from, "%s/tests/fuzz/tokenizers/%s/%s", source_dir, kind, name);
    if (pc_copy_file(from, scratch_path(sub, name), &err) != PEFTC_OK) { fprintf(stderr, "%s\n", err.msg); abort(); }
}

static void load_and_use(const char *sub)
{
    pc_tokenizer *t = NULL;
    pc_error err = {0};
    char *dir = scratch_dir(sub);
    if (pc_tokenizer_load(dir, &t, &err) == PEFTC_OK) use_tokenizer(t);
    pc_tokenizer_free(t);
    free(dir);
}

/* The input as vocab.txt (no tokenizer_config.json), and as tokenizer_config.json beside a
 * fixed vocab.txt and beside a fixed SentencePiece tokenizer.json. */
int pc_fuzz_tokenizer_files(const uint8_t *data, size_t size)
{
    static bool copied;
    if (!copied) {
        copy_fixed("wordpiece", "vocab.txt", "config_vocab");
        copy_fixed("sentencepiece_bpe", "tokenizer.json", "config_json");
        copied = true;
    }
    write_scratch("vocab", "vocab.txt", data, size);
    load_and_use("vocab");
    write_scratch("config_vocab", "tokenizer_config.json", data, size);
    load_and_use("config_vocab");
    write_scratch("config_json", "tokenizer_config.json", data, size);
    load_and_use("config_json");
    return 0;
}

/* ---- datasets ---------------------------------------------------------------------------- */

int pc_fuzz_dataset(const uint8_t *data, size_t size)
{
    static const char *names[] = { "x.jsonl", "x.json", "x.csv", "x.tsv" };
    static char *const id2label[] = { "neg", "pos" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *path = write_scratch("", names[i], data, size);
        pc_dataset *ds = NULL;
        pc_error err = {0};
        if (pc_dataset_load(path, "text", "label", id2label, 2, false, &ds, &err) == PEFTC_OK) pc_dataset_free(ds);
        ds = NULL;
        if (pc_lm_dataset_load(path, "text", &ds, &err) == PEFTC_OK) pc_dataset_free(ds);
        remove_scratch_file("", names[i]);
    }
    return 0;
}

/* ---- 4-bit weights ----------------------------------------------------------------------- */

/* A checkpoint holding the 4-bit weight "m" ([2, 64]) in bitsandbytes' layout with the input
 * as its quant_state; nested: absmax itself quantized (U8, with nested_absmax and map). */
static void write_4bit_checkpoint(const char *path, bool nested, const uint8_t *state, size_t size)
{
    static uint8_t packed[64], qabsmax[2];
    static float absmax[2] = { 1, 2 }, absmax2[1] = { 1 }, code2[256];
    const char *state_name = "m.weight.quant_state.bitsandbytes__nf4";
    pc_st_item items[6] = {
        { .name = "m.weight", .dtype = PC_DT_U8, .ndim = 2, .shape = { 64, 1 }, .data = packed },
        { .name = "m.weight.quant_map", .dtype = PC_DT_F32, .ndim = 1, .shape = { 16 }, .data = pc_q4_code_table(PC_Q4_NF4) },
        { .name = state_name, .dtype = PC_DT_U8, .ndim = 1, .shape = { (int64_t)size }, .data = state },
        { .name = "m.weight.absmax", .dtype = nested ? PC_DT_U8 : PC_DT_F32, .ndim = 1, .shape = { 2 },
          .data = nested ? (const void *)qabsmax : (const void *)absmax },
        { .name = "m.weight.nested_absmax", .dtype = PC_DT_F32, .ndim = 1, .shape = { 1 }, .data = absmax2 },
        { .name = "m.weight.nested_quant_map", .dtype = PC_DT_F32, .ndim = 1, .shape = { 256 }, .data = code2 },
    };
    pc_error err = {0};
    if (pc_st_write(path, items, nested ? 6 : 4, NULL, &err) != PEFTC_OK) { fprintf(stderr, "%s\n", err.msg); abort(); }
}

int pc_fuzz_quant_state(const uint8_t *data, size_t size)
{
    for (int nested = 0; nested < 2; nested++) {
        const char *path = scratch_path("", "q4.safetensors");
        write_4bit_checkpoint(path, nested, data, size);
        pc_safetensors *st = NULL;
        pc_error err = {0};
        if (pc_st_open(path, &st, &err) == PEFTC_OK) {
            pc_linear lin = { .name = "m", .in = 64, .out = 2 };
            if (pc_linear_load_4bit(st, "m", &lin, PC_Q4_COMPUTE_F32, &err) == PEFTC_OK) {
                pc_q4_free(lin.q4);
                free(lin.q4);
            }
        }
        pc_st_close(st);
    }
    return 0;
}

/* ---- by name ----------------------------------------------------------------------------- */

pc_fuzz_fn pc_fuzz_by_name(const char *name)
{
    static const struct { const char *name; pc_fuzz_fn fn; } targets[] = {
        { "safetensors", pc_fuzz_safetensors },         { "st_index", pc_fuzz_st_index },
        { "configs", pc_fuzz_configs },                 { "tokenizer_json", pc_fuzz_tokenizer_json },
        { "tokenizer_encode", pc_fuzz_tokenizer_encode }, { "tokenizer_files", pc_fuzz_tokenizer_files },
        { "dataset", pc_fuzz_dataset },                 { "quant_state", pc_fuzz_quant_state },
    };
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++)
        if (strcmp(targets[i].name, name) == 0) return targets[i].fn;
    return NULL;
}
