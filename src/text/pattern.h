/* The patterns of tokenizer.json (Split and Replace "pattern": {"String": s} or {"Regex": r}):
 * a literal string, or a regex compiled with PCRE2 (UTF + UCP, JIT when available) as the
 * file gives it. Matches are found left to right without overlap, the way Hugging Face
 * tokenizers iterates them (an empty match right after the previous match is skipped).
 * Hugging Face matches with Oniguruma; where PCRE2's Unicode tables class a character
 * differently (see pc_uni_regex_stand_in), matching sees a stand-in of the right class. */
#ifndef PC_TEXT_PATTERN_H
#define PC_TEXT_PATTERN_H

#include "base/error.h"

#include <cJSON.h>

#include <stdbool.h>
#include <stddef.h>

typedef struct pc_pattern {
    struct pcre2_real_code_8 *re;   /* NULL for a literal */
    char *literal;
    size_t literal_len;
} pc_pattern;

/* Per-thread matching state (PCRE2 match data); zero-initialize, free with pc_match_work_free. */
typedef struct pc_match_work {
    struct pcre2_real_match_data_8 *md;
    char *copy;                     /* the text with stand-ins for characters PCRE2 classes differently */
    size_t copy_cap;
} pc_match_work;

/* A byte range [start, end) of a string. */
typedef struct pc_span {
    size_t start, end;
} pc_span;

typedef struct pc_spanbuf {
    pc_span *v;
    size_t n, cap;
} pc_spanbuf;

pc_status pc_spanbuf_push(pc_spanbuf *b, size_t start, size_t end, pc_error *err);

/* Compiles regex (what names it in messages, e.g. "FILE: pre_tokenizer.pretokenizers[0]"). */
pc_status pc_pattern_regex(pc_pattern *p, const char *regex, const char *what, pc_error *err);
pc_status pc_pattern_literal(pc_pattern *p, const char *s, size_t len, pc_error *err);

/* Reads {"String": s} or {"Regex": r} from obj[key]. */
pc_status pc_pattern_parse(pc_pattern *p, const cJSON *obj, const char *key, const char *what, pc_error *err);

void pc_pattern_free(pc_pattern *p);

/* Appends every match in the valid UTF-8 s[0..len) to out. */
pc_status pc_pattern_find_all(const pc_pattern *p, const char *s, size_t len, pc_match_work *w, pc_spanbuf *out,
                              pc_error *err);

void pc_match_work_free(pc_match_work *w);

#endif
