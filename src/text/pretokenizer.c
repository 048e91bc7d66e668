#include "text/pretokenizer.h"

#include "formats/json.h"
#include "text/bert.h"
#include "text/unicode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The split regex ByteLevel applies when use_regex is true (Hugging Face's GPT-2 pattern). */
static const char GPT2_REGEX[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

void pc_pretokenizer_free(pc_pretokenizer *pt)
{
    for (size_t i = 0; i < pt->n; i++) pc_pattern_free(&pt->steps[i].pattern);
    free(pt->steps);
    memset(pt, 0, sizeof *pt);
}

void pc_pre_work_free(pc_pre_work *w)
{
    free(w->text.v);
    free(w->words.v);
    free(w->next.v);
    free(w->matches.v);
    free(w->segs);
    pc_match_work_free(&w->match);
    memset(w, 0, sizeof *w);
}

static pc_status add_step(pc_pretokenizer *pt, pc_pre_kind kind, pc_pre_step **step, pc_error *err)
{
    pc_pre_step *grown = realloc(pt->steps, (pt->n + 1) * sizeof *grown);
    if (!grown) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for pre-tokenizer steps");
    pt->steps = grown;
    *step = &pt->steps[pt->n++];
    memset(*step, 0, sizeof **step);
    (*step)->kind = kind;
    return PEFTC_OK;
}

pc_status pc_pretokenizer_add_bert(pc_pretokenizer *pt, pc_error *err)
{
    pc_pre_step *st = NULL;
    return add_step(pt, PC_PRE_BERT, &st, err);
}

/* ---- parsing ------------------------------------------------------------------------- */

static pc_status parse_behavior(pc_pre_step *st, const cJSON *j, const char *what, pc_error *err)
{
    static const char *const names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
    const char *b = NULL;
    PC_TRY(pc_json_get_string(j, "behavior", NULL, &b, what, err));
    for (int i = 0; b && i < 5; i++)
        if (strcmp(b, names[i]) == 0) { st->behavior = (pc_split_behavior)i; return PEFTC_OK; }
    return pc_fail(err, PEFTC_ERR_FORMAT, "%s: Split 'behavior' %s%s%s is not one of Removed, Isolated, "
                   "MergedWithPrevious, MergedWithNext, Contiguous", what, b ? "'" : "", b ? b : "missing",
                   b ? "'" : "");
}

static pc_status parse_split(pc_pre_step *st, const cJSON *j, const char *what, pc_error *err)
{
    st->use_pattern = true;
    PC_TRY(pc_pattern_parse(&st->pattern, j, "pattern", what, err));
    PC_TRY(parse_behavior(st, j, what, err));
    return pc_json_get_bool(j, "invert", false, &st->invert, what, err);
}

static pc_status parse_byte_level(pc_pre_step *st, const cJSON *j, const char *what, pc_error *err)
{
    PC_TRY(pc_json_get_bool(j, "add_prefix_space", true, &st->add_prefix_space, what, err));
    PC_TRY(pc_json_get_bool(j, "use_regex", true, &st->use_pattern, what, err));
    st->behavior = PC_SPLIT_ISOLATED;
    return st->use_pattern ? pc_pattern_regex(&st->pattern, GPT2_REGEX, what, err) : PEFTC_OK;
}

static pc_status parse_metaspace(pc_pre_step *st, const cJSON *j, const char *what, pc_error *err)
{
    const char *rep = "\xE2\x96\x81", *scheme = NULL;      /* U+2581 */
    bool add_prefix_space = true;
    PC_TRY(pc_json_get_string(j, "replacement", rep, &rep, what, err));
    if (strlen(rep) == 0 || strlen(rep) >= sizeof st->replacement || strlen(rep) != (size_t)pc_utf8_char_len(rep))
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: Metaspace 'replacement' must be one character", what);
    strcpy(st->replacement, rep);
    PC_TRY(pc_json_get_bool(j, "split", true, &st->split, what, err));
    PC_TRY(pc_json_get_bool(j, "add_prefix_space", true, &add_prefix_space, what, err));
    PC_TRY(pc_json_get_string(j, "prepend_scheme", NULL, &scheme, what, err));
    if (!scheme) st->prepend_scheme = add_prefix_space ? PC_PREPEND_ALWAYS : PC_PREPEND_NEVER;
    else if (strcmp(scheme, "always") == 0) st->prepend_scheme = PC_PREPEND_ALWAYS;
    else if (strcmp(scheme, "first") == 0) st->prepend_scheme = PC_PREPEND_FIRST;
    else if (strcmp(scheme, "never") == 0) st->prepend_scheme = PC_PREPEND_NEVER;
    else return pc_fail(err, PEFTC_ERR_FORMAT, "%s: Metaspace 'prepend_scheme' '%s' is not always, first or never",
                        what, scheme);
    st->behavior = PC_SPLIT_MERGED_WITH_NEXT;
    if (st->split) return pc_pattern_literal(&st->pattern, st->replacement, strlen(st->replacement), err);
    return PEFTC_OK;
}

static pc_status parse_one(pc_pretokenizer *pt, const cJSON *j, const char *what, pc_error *err);

static pc_status parse_sequence(pc_pretokenizer *pt, const cJSON *j, const char *what, pc_error *err)
{
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(j, "pretokenizers");
    if (!cJSON_IsArray(list))
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: Sequence has no 'pretokenizers' list", what);
    size_t i = 0;
    for (const cJSON *item = list->child; item; item = item->next, i++) {
        char sub[512];
        snprintf(sub, sizeof sub, "%s.pretokenizers[%zu]", what, i);
        PC_TRY(parse_one(pt, item, sub, err));
    }
    return PEFTC_OK;
}

static pc_status parse_one(pc_pretokenizer *pt, const cJSON *j, const char *what, pc_error *err)
{
    const char *type = NULL;
    if (!cJSON_IsObject(j)) return pc_fail(err, PEFTC_ERR_FORMAT, "%s must be an object", what);
    PC_TRY(pc_json_get_string(j, "type", NULL, &type, what, err));
    if (!type) return pc_fail(err, PEFTC_ERR_FORMAT, "%s has no \"type\"", what);
    if (strcmp(type, "Sequence") == 0) return parse_sequence(pt, j, what, err);
    if (pt->byte_level)
        return pc_fail(err, PEFTC_ERR_UNSUPPORTED, "%s: a pre-tokenizer after ByteLevel is not supported", what);
    pc_pre_step *st = NULL;
    if (strcmp(type, "BertPreTokenizer") == 0) return add_step(pt, PC_PRE_BERT, &st, err);
    if (strcmp(type, "Split") == 0) {
        PC_TRY(add_step(pt, PC_PRE_SPLIT, &st, err));
        return parse_split(st, j, what, err);
    }
    if (strcmp(type, "Metaspace") == 0) {
        PC_TRY(add_step(pt, PC_PRE_METASPACE, &st, err));
        return parse_metaspace(st, j, what, err);
    }
    if (strcmp(type, "ByteLevel") == 0) {
        PC_TRY(add_step(pt, PC_PRE_BYTE_LEVEL, &st, err));
        pt->byte_level = true;
        return parse_byte_level(st, j, what, err);
    }
    return pc_fail(err, PEFTC_ERR_UNSUPPORTED, "%s: pre_tokenizer type '%s' is not supported", what, type);
}

pc_status pc_pretokenizer_parse(pc_pretokenizer *pt, const cJSON *json, const char *what, pc_error *err)
{
    if (!json || cJSON_IsNull(json)) return PEFTC_OK;
    return parse_one(pt, json, what, err);
}

/* ---- splitting ----------------------------------------------------------------------- */

/* Appends [start, end) to the next words unless it is empty. */
static pc_status emit(pc_pre_work *w, size_t start, size_t end, pc_error *err)
{
    return start < end ? pc_spanbuf_push(&w->next, start, end, err) : PEFTC_OK;
}

static pc_status push_segment(pc_pre_work *w, size_t start, size_t end, bool is_match, pc_error *err)
{
    if (w->n_segs == w->segs_cap) {
        size_t cap = w->segs_cap ? w->segs_cap * 2 : 64;
        pc_pre_seg *v = realloc(w->segs, cap * sizeof *v);
        if (!v) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for %zu split segments", cap);
        w->segs = v;
        w->segs_cap = cap;
    }
    w->segs[w->n_segs++] = (pc_pre_seg){start, end, is_match};
    return PEFTC_OK;
}

/* Makes a new copy of a word at the end of w->text: prefix (or none), then the word with
 * each ' ' replaced by space_to (or kept when NULL). Sets *word to the copy. */
static pc_status rewrite(pc_pre_work *w, pc_span *word, const char *prefix, const char *space_to, pc_error *err)
{
    size_t prefix_len = prefix ? strlen(prefix) : 0, to_len = space_to ? strlen(space_to) : 1, spaces = 0;
    for (size_t i = word->start; space_to && i < word->end; i++) spaces += w->text.v[i] == ' ';
    /* Reserve first: the copy reads from the same buffer, which must not move meanwhile. */
    PC_TRY(pc_strbuf_reserve(&w->text, prefix_len + word->end - word->start + spaces * (to_len - 1), err));
    size_t start = w->text.n;
    if (prefix) PC_TRY(pc_strbuf_append(&w->text, prefix, prefix_len, err));
    for (size_t i = word->start; i < word->end;) {
        if (space_to && w->text.v[i] == ' ') {
            PC_TRY(pc_strbuf_append(&w->text, space_to, to_len, err));
            i++;
            continue;
        }
        size_t j = i + 1;
        while (j < word->end && !(space_to && w->text.v[j] == ' ')) j++;
        PC_TRY(pc_strbuf_append(&w->text, w->text.v + i, j - i, err));
        i = j;
    }
    if (word->start == w->first_start) w->first_start = start;
    *word = (pc_span){start, w->text.n};
    return PEFTC_OK;
}

/* The word's segments as Hugging Face's Pattern::find_matches gives them: the gaps between
 * matches and the matches themselves (empty ones included), flagged, inverted if asked. */
static pc_status find_segments(const pc_pre_step *st, pc_span word, pc_pre_work *w, pc_error *err)
{
    size_t len = word.end - word.start, prev = 0;
    w->matches.n = 0;
    w->n_segs = 0;
    PC_TRY(pc_pattern_find_all(&st->pattern, w->text.v + word.start, len, &w->match, &w->matches, err));
    for (size_t k = 0; k <= w->matches.n; k++) {
        pc_span m = k < w->matches.n ? w->matches.v[k] : (pc_span){len, len};
        if (m.start > prev) PC_TRY(push_segment(w, word.start + prev, word.start + m.start, st->invert, err));
        if (k < w->matches.n) PC_TRY(push_segment(w, word.start + m.start, word.start + m.end, !st->invert, err));
        prev = m.end;
    }
    return PEFTC_OK;
}

/* Whether segment s joins the piece before it (in walking order) under the behavior. */
static bool joins(pc_split_behavior b, bool is_match, bool previous_match)
{
    switch (b) {
    case PC_SPLIT_MERGED_WITH_PREVIOUS:
    case PC_SPLIT_MERGED_WITH_NEXT:
        return is_match && !previous_match;
    case PC_SPLIT_CONTIGUOUS:
        return is_match == previous_match;
    default:
        return false;
    }
}

/* Splits word on the step's pattern as the delimiter behavior says (SplitDelimiterBehavior). */
static pc_status split_word(const pc_pre_step *st, pc_span word, pc_pre_work *w, pc_error *err)
{
    PC_TRY(find_segments(st, word, w, err));
    /* MergedWithNext folds from the end: walk the segments reversed. */
    bool backwards = st->behavior == PC_SPLIT_MERGED_WITH_NEXT;
    for (size_t a = 0, b = w->n_segs; backwards && a + 1 < b; a++, b--) {
        pc_pre_seg t = w->segs[a];
        w->segs[a] = w->segs[b - 1];
        w->segs[b - 1] = t;
    }
    size_t n_out = 0;                  /* pieces are folded in place into segs[0..n_out) */
    bool previous_match = false;
    for (size_t i = 0; i < w->n_segs; i++) {
        pc_pre_seg s = w->segs[i];
        if (st->behavior == PC_SPLIT_REMOVED && s.is_match) continue;
        if (n_out > 0 && joins(st->behavior, s.is_match, previous_match)) {
            if (backwards) w->segs[n_out - 1].start = s.start;
            else w->segs[n_out - 1].end = s.end;
        } else {
            w->segs[n_out++] = s;          /* n_out <= i: never overwrites a segment still to read */
        }
        previous_match = s.is_match;
    }
    for (size_t i = 0; i < n_out; i++) {
        pc_pre_seg s = w->segs[backwards ? n_out - 1 - i : i];
        PC_TRY(emit(w, s.start, s.end, err));
    }
    return PEFTC_OK;
}

static pc_status bert_words(pc_span word, pc_pre_work *w, pc_error *err)
{
    size_t pos = 0, a, b, n_chars;
    while (pc_bert_next_word(w->text.v + word.start, word.end - word.start, &pos, &a, &b, &n_chars))
        PC_TRY(emit(w, word.start + a, word.start + b, err));
    return PEFTC_OK;
}

static bool starts_with(const pc_pre_work *w, pc_span word, const char *s)
{
    size_t n = strlen(s);
    return word.end - word.start >= n && memcmp(w->text.v + word.start, s, n) == 0;
}

static pc_status metaspace_word(const pc_pre_step *st, pc_span word, pc_pre_work *w, pc_error *err)
{
    bool first = w->at_origin && word.start == w->first_start;
    bool prepend = st->prepend_scheme == PC_PREPEND_ALWAYS || (st->prepend_scheme == PC_PREPEND_FIRST && first);
    /* after ' ' -> replacement, the word starts with the replacement when it started with either */
    if (starts_with(w, word, " ") || starts_with(w, word, st->replacement)) prepend = false;
    PC_TRY(rewrite(w, &word, prepend ? st->replacement : NULL, st->replacement, err));
    return st->split ? split_word(st, word, w, err) : emit(w, word.start, word.end, err);
}

static pc_status apply_step(const pc_pre_step *st, pc_pre_work *w, pc_error *err)
{
    w->next.n = 0;
    for (size_t i = 0; i < w->words.n; i++) {
        pc_span word = w->words.v[i];
        switch (st->kind) {
        case PC_PRE_BERT:
            PC_TRY(bert_words(word, w, err));
            break;
        case PC_PRE_BYTE_LEVEL:
            if (st->add_prefix_space && !starts_with(w, word, " ")) PC_TRY(rewrite(w, &word, " ", NULL, err));
            PC_TRY(st->use_pattern ? split_word(st, word, w, err) : emit(w, word.start, word.end, err));
            break;
        case PC_PRE_SPLIT:
            PC_TRY(split_word(st, word, w, err));
            break;
        case PC_PRE_METASPACE:
            PC_TRY(metaspace_word(st, word, w, err));
            break;
        }
    }
    pc_spanbuf t = w->words;
    w->words = w->next;
    w->next = t;
    return PEFTC_OK;
}

pc_status pc_pretokenize(const pc_pretokenizer *pt, const char *s, size_t len, bool at_origin, pc_pre_work *w,
                         pc_error *err)
{
    w->text.n = 0;
    w->words.n = 0;
    w->first_start = 0;
    w->at_origin = at_origin;
    PC_TRY(pc_strbuf_append(&w->text, s, len, err));
    if (len > 0) PC_TRY(pc_spanbuf_push(&w->words, 0, len, err));
    for (size_t i = 0; i < pt->n && w->words.n > 0; i++) PC_TRY(apply_step(&pt->steps[i], w, err));
    return PEFTC_OK;
}
