/* TEMPORARY (removed before commit): weak stand-ins until the BPE tokenizer work lands. */
#include <stdbool.h>
#include <stdint.h>
#include "text/tokenizer.h"
__attribute__((weak)) int32_t pc_tokenizer_eos_id(const pc_tokenizer *t) { (void)t; return -1; }
__attribute__((weak)) int32_t pc_tokenizer_bos_id(const pc_tokenizer *t) { (void)t; return -1; }
__attribute__((weak)) pc_status pc_tokenizer_decode(const pc_tokenizer *t, const int32_t *ids, int n, bool skip, char **text, pc_error *err)
{ (void)t; (void)ids; (void)n; (void)skip; *text = NULL; return pc_fail(err, PEFTC_ERR_UNSUPPORTED, "decode"); }
