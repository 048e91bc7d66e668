/* libFuzzer target: see pc_fuzz_st_index in fuzz_entry.h. */
#include "fuzz_entry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return pc_fuzz_st_index(data, size); }
