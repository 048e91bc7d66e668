/* The entry points of the fuzz targets (tests/fuzz/fuzz_<name>.c), shared with the regression
 * test (tests/test_fuzz_regressions.c) that replays tests/fuzz/regressions/<name>/ through them.
 * Each feeds data[0..size) to one parser the way a user's file would reach it, uses what was
 * parsed a little, and frees everything; a clean error return is fine. The return value is
 * 0, as libFuzzer wants. */
#ifndef PC_FUZZ_ENTRY_H
#define PC_FUZZ_ENTRY_H

#include <stddef.h>
#include <stdint.h>

/* The repository root (for tests/fuzz/tokenizers/); "." unless set. */
void pc_fuzz_set_source_dir(const char *dir);

int pc_fuzz_safetensors(const uint8_t *data, size_t size);      /* a .safetensors file */
int pc_fuzz_st_index(const uint8_t *data, size_t size);         /* model.safetensors.index.json (two fixed shards) */
int pc_fuzz_configs(const uint8_t *data, size_t size);          /* config.json, adapter_config.json, training config */
int pc_fuzz_tokenizer_json(const uint8_t *data, size_t size);   /* tokenizer.json, then encode and decode */
int pc_fuzz_tokenizer_encode(const uint8_t *data, size_t size); /* text through fixed real-format tokenizers */
int pc_fuzz_tokenizer_files(const uint8_t *data, size_t size);  /* vocab.txt and tokenizer_config.json */
int pc_fuzz_dataset(const uint8_t *data, size_t size);          /* a JSONL / JSON / CSV / TSV dataset */
int pc_fuzz_quant_state(const uint8_t *data, size_t size);      /* bitsandbytes' 4-bit quant_state JSON */

/* A target by name (the names above without pc_fuzz_), or NULL. */
typedef int (*pc_fuzz_fn)(const uint8_t *data, size_t size);
pc_fuzz_fn pc_fuzz_by_name(const char *name);

#endif
