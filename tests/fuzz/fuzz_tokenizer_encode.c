/* libFuzzer target: see pc_fuzz_tokenizer_encode in fuzz_entry.h. */
#include "fuzz_entry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return pc_fuzz_tokenizer_encode(data, size); }
