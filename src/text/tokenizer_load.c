/* Reading tokenizer.json / vocab.txt + tokenizer_config.json, and writing the latter pair. */
#include "text/tokenizer_impl.h"

#include "base/fs.h"
#include "formats/json.h"
#include "text/unicode.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const special_keys[PC_N_SPECIAL] = {"unk_token", "cls_token", "sep_token", "pad_token",
                                                       "mask_token", "bos_token", "eos_token"};
/* Names of the special tokens a file does not name, per kind (the transformers classes' defaults). */
static const char *const wordpiece_defaults[PC_N_SPECIAL] = {"[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"};
static const char *const byte_level_defaults[PC_N_SPECIAL] = {"<|endoftext|>", [PC_SPECIAL_BOS] = "<|endoftext|>",
                                                              [PC_SPECIAL_EOS] = "<|endoftext|>"};
static const char *const sentencepiece_defaults[PC_N_SPECIAL] = {"<unk>", [PC_SPECIAL_BOS] = "<s>",
                                                                 [PC_SPECIAL_EOS] = "</s>"};

enum { DEFAULT_MODEL_MAX_LENGTH = 512, DEFAULT_MAX_INPUT_CHARS = 100 };

/* What tokenizer_config.json says (absent keys keep these defaults). */
typedef struct tok_config {
    bool do_lower_case;
    int strip_accents;             /* 0, 1, or -1 for null: follow do_lower_case */
    bool tokenize_chinese_chars;
    int model_max_length;
    const char *names[PC_N_SPECIAL];  /* NULL when not given; point into the parsed JSON */
    bool null_names[PC_N_SPECIAL];    /* given as null: the tokenizer has none */
    int add_bos, add_eos;             /* add_bos_token / add_eos_token, -1 when not given */
} tok_config;

/* ---- files and JSON ---------------------------------------------------------------- */

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}


static pc_status parse_json_object(const char *path, cJSON **out, pc_error *err)
{
    PC_TRY(pc_json_parse_file(path, out, err));
    if (cJSON_IsObject(*out)) return PEFTC_OK;
    cJSON_Delete(*out);
    *out = NULL;
    return pc_fail(err, PEFTC_ERR_FORMAT, "%s: expected a JSON object at the top", path);
}

/* obj[key] as a bool; *out keeps its value when the key is absent or null. */
static pc_status json_bool(const cJSON *obj, const char *key, bool *out, const char *file, pc_error *err)
{
    return pc_json_get_bool(obj, key, *out, out, file, err);
}

/* obj[key] as a string; *out keeps its value when the key is absent or null. */
static pc_status json_string(const cJSON *obj, const char *key, const char **out, const char *file, pc_error *err)
{
    return pc_json_get_string(obj, key, *out, out, file, err);
}

/* obj[key] as an integer in [lo, hi]; *out keeps its value when the key is absent or null. */
static pc_status json_int(const cJSON *obj, const char *key, long long lo, long long hi, long long *out,
                          const char *file, pc_error *err)
{
    PC_TRY(pc_json_get_int(obj, key, *out, out, file, err));
    if (*out < lo || *out > hi)
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: '%s' = %lld is outside [%lld, %lld]", file, key, *out, lo, hi);
    return PEFTC_OK;
}

/* A "type" field of an optional component object; NULL when the component is null. */
static pc_status json_type(const cJSON *obj, const char *key, const char **type, const char *file, pc_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    *type = NULL;
    if (!v || cJSON_IsNull(v)) return PEFTC_OK;
    if (!cJSON_IsObject(v)) return pc_fail(err, PEFTC_ERR_FORMAT, "%s: '%s' must be an object or null", file, key);
    PC_TRY(json_string(v, "type", type, file, err));
    if (!*type) return pc_fail(err, PEFTC_ERR_FORMAT, "%s: '%s' has no \"type\"", file, key);
    return PEFTC_OK;
}

/* ---- tokenizer_config.json ------------------------------------------------------- */

/* A special token in tokenizer_config.json: "[CLS]", {"content": "[CLS]", ...} or null. */
static pc_status config_name(const cJSON *root, const char *key, const char **out, bool *null, const char *file,
                             pc_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    *null = v && cJSON_IsNull(v);
    if (v && cJSON_IsObject(v)) return json_string(v, "content", out, file, err);
    return json_string(root, key, out, file, err);
}

/* obj[key] as -1 (absent or null), 0 or 1. */
static pc_status config_flag(const cJSON *root, const char *key, int *out, const char *file, pc_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) return PEFTC_OK;
    bool b = false;
    PC_TRY(json_bool(root, key, &b, file, err));
    *out = b;
    return PEFTC_OK;
}

static pc_status parse_config(const cJSON *root, const char *file, tok_config *c, pc_error *err)
{
    PC_TRY(json_bool(root, "do_lower_case", &c->do_lower_case, file, err));
    bool strip = false;
    const cJSON *sa = cJSON_GetObjectItemCaseSensitive(root, "strip_accents");
    if (sa && !cJSON_IsNull(sa)) {
        PC_TRY(json_bool(root, "strip_accents", &strip, file, err));
        c->strip_accents = strip;
    }
    PC_TRY(json_bool(root, "tokenize_chinese_chars", &c->tokenize_chinese_chars, file, err));
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "model_max_length");
    if (m && !cJSON_IsNull(m)) {
        /* transformers writes 1e30 for "no limit"; anything past INT_MAX means that here. */
        if (!cJSON_IsNumber(m) || !(m->valuedouble >= 1))
            return pc_fail(err, PEFTC_ERR_FORMAT, "%s: 'model_max_length' must be a positive integer", file);
        c->model_max_length = m->valuedouble >= (double)INT_MAX ? INT_MAX : (int)m->valuedouble;
    }
    for (int i = 0; i < PC_N_SPECIAL; i++)
        PC_TRY(config_name(root, special_keys[i], &c->names[i], &c->null_names[i], file, err));
    PC_TRY(config_flag(root, "add_bos_token", &c->add_bos, file, err));
    return config_flag(root, "add_eos_token", &c->add_eos, file, err);
}

/* ---- tokenizer.json ---------------------------------------------------------------- */

static pc_status set_wordpiece_unk(pc_tokenizer *t, const char *unk, const char *file, pc_error *err)
{
    t->wordpiece.unk_id = pc_vocab_find(&t->wordpiece.vocab, unk, strlen(unk));
    if (t->wordpiece.unk_id < 0)
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: unk_token '%s' is not in the vocabulary", file, unk);
    return PEFTC_OK;
}

/* Sets a special token's name (NULL: none). */
static pc_status set_special_name(pc_tokenizer *t, int which, const char *name, pc_error *err)
{
    char *copy = name ? strdup(name) : NULL;
    if (name && !copy) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for special token '%s'", name);
    free(t->special_names[which]);
    t->special_names[which] = copy;
    return PEFTC_OK;
}

static pc_status parse_wordpiece_model(pc_tokenizer *t, const cJSON *model, const char *file, const char **unk_name,
                                       pc_error *err)
{
    const char *unk = "[UNK]", *prefix = "##";
    long long max_chars = DEFAULT_MAX_INPUT_CHARS;
    PC_TRY(json_string(model, "unk_token", &unk, file, err));
    PC_TRY(json_string(model, "continuing_subword_prefix", &prefix, file, err));
    PC_TRY(json_int(model, "max_input_chars_per_word", 0, INT_MAX, &max_chars, file, err));
    if (strlen(prefix) >= sizeof t->wordpiece.prefix)
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: continuing_subword_prefix '%s' is too long", file, prefix);
    strcpy(t->wordpiece.prefix, prefix);
    t->wordpiece.prefix_len = strlen(prefix);
    t->wordpiece.max_input_chars = (size_t)max_chars;
    PC_TRY(pc_vocab_parse_json(&t->wordpiece.vocab, cJSON_GetObjectItemCaseSensitive(model, "vocab"), file, err));
    *unk_name = unk;
    return set_wordpiece_unk(t, unk, file, err);
}

static pc_status parse_added_token(pc_tokenizer *t, const cJSON *a, size_t index, const char *file, pc_error *err)
{
    const char *content = NULL;
    long long id = -1;
    bool single_word = false, lstrip = false, rstrip = false, normalized = true, special = false;
    if (!cJSON_IsObject(a))
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: added_tokens[%zu] is not an object", file, index);
    PC_TRY(json_string(a, "content", &content, file, err));
    PC_TRY(pc_json_get_int(a, "id", -1, &id, file, err));
    if (!content || id < 0 || id > PC_VOCAB_MAX_ID)
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: added_tokens[%zu] needs a 'content' and an 'id' in [0, %d]", file,
                       index, (int)PC_VOCAB_MAX_ID);
    size_t len = strlen(content);
    if (pc_utf8_invalid_at(content, len) < len)
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: added_tokens[%zu] is not valid UTF-8", file, index);
    PC_TRY(json_bool(a, "single_word", &single_word, file, err));
    PC_TRY(json_bool(a, "lstrip", &lstrip, file, err));
    PC_TRY(json_bool(a, "rstrip", &rstrip, file, err));
    PC_TRY(json_bool(a, "normalized", &normalized, file, err));
    PC_TRY(json_bool(a, "special", &special, file, err));
    if (len == 0) return PEFTC_OK;                     /* Hugging Face ignores empty added tokens */
    return pc_added_add(&t->added, content, len, (int32_t)id, single_word, lstrip, rstrip, normalized, special, err);
}

static pc_status parse_added_tokens(pc_tokenizer *t, const cJSON *root, const char *file, pc_error *err)
{
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (!list || cJSON_IsNull(list)) return PEFTC_OK;
    if (!cJSON_IsArray(list)) return pc_fail(err, PEFTC_ERR_FORMAT, "%s: 'added_tokens' must be an array", file);
    size_t i = 0;
    for (const cJSON *a = list->child; a; a = a->next, i++) PC_TRY(parse_added_token(t, a, i, file, err));
    return PEFTC_OK;
}

static pc_status append_id(int32_t **v, size_t *n, int32_t id, pc_error *err)
{
    int32_t *grown = realloc(*v, (*n + 1) * sizeof *grown);
    if (!grown) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for the post-processor");
    grown[(*n)++] = id;
    *v = grown;
    return PEFTC_OK;
}

/* BertProcessing {"sep": ["[SEP]", 102], "cls": ["[CLS]", 101]} and RobertaProcessing: cls A sep. */
static pc_status parse_cls_sep(pc_tokenizer *t, const cJSON *pp, const char *type, const char *file, pc_error *err)
{
    const cJSON *cls = cJSON_GetObjectItemCaseSensitive(pp, "cls"), *sep = cJSON_GetObjectItemCaseSensitive(pp, "sep");
    const cJSON *cls_id = cJSON_GetArrayItem(cls, 1), *sep_id = cJSON_GetArrayItem(sep, 1);
    if (!cJSON_IsNumber(cls_id) || !cJSON_IsNumber(sep_id) || cls_id->valueint < 0 || sep_id->valueint < 0)
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: %s needs \"cls\" and \"sep\" as [token, id]", file, type);
    PC_TRY(append_id(&t->prefix_ids, &t->n_prefix, cls_id->valueint, err));
    return append_id(&t->suffix_ids, &t->n_suffix, sep_id->valueint, err);
}

/* TemplateProcessing: "single" is a list of {"SpecialToken": {"id": name}} and one
 * {"Sequence": {"id": "A"}}; "special_tokens" maps each name to its "ids". */
static pc_status parse_template(pc_tokenizer *t, const cJSON *pp, const char *file, pc_error *err)
{
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(pp, "single");
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(pp, "special_tokens");
    if (!cJSON_IsArray(single))
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: TemplateProcessing has no \"single\" list", file);
    bool seen_sequence = false;
    for (const cJSON *piece = single->child; piece; piece = piece->next) {
        if (cJSON_GetObjectItemCaseSensitive(piece, "Sequence")) {
            if (seen_sequence) return pc_fail(err, PEFTC_ERR_FORMAT, "%s: \"single\" holds two sequences", file);
            seen_sequence = true;
            continue;
        }
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(piece, "SpecialToken");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(st, "id");
        if (!cJSON_IsString(name))
            return pc_fail(err, PEFTC_ERR_FORMAT, "%s: \"single\" piece is neither Sequence nor SpecialToken", file);
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(specials,
                                                            name->valuestring), "ids");
        if (!cJSON_IsArray(ids))
            return pc_fail(err, PEFTC_ERR_FORMAT, "%s: special token '%s' of the template has no ids", file,
                           name->valuestring);
        for (const cJSON *id = ids->child; id; id = id->next) {
            if (!cJSON_IsNumber(id) || id->valueint < 0)
                return pc_fail(err, PEFTC_ERR_FORMAT, "%s: special token '%s' has a bad id", file, name->valuestring);
            if (seen_sequence) PC_TRY(append_id(&t->suffix_ids, &t->n_suffix, id->valueint, err));
            else PC_TRY(append_id(&t->prefix_ids, &t->n_prefix, id->valueint, err));
        }
    }
    if (!seen_sequence) return pc_fail(err, PEFTC_ERR_FORMAT, "%s: \"single\" has no Sequence", file);
    return PEFTC_OK;
}

/* One post-processor; ByteLevel changes only offsets. At most one may add special tokens. */
static pc_status parse_processor(pc_tokenizer *t, const cJSON *pp, const char *file, bool *adds, pc_error *err)
{
    const char *type = NULL;
    PC_TRY(json_string(pp, "type", &type, file, err));
    if (!type) return pc_fail(err, PEFTC_ERR_FORMAT, "%s: a post_processor has no \"type\"", file);
    if (strcmp(type, "ByteLevel") == 0) return PEFTC_OK;
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(pp, "processors");
        if (!cJSON_IsArray(list))
            return pc_fail(err, PEFTC_ERR_FORMAT, "%s: post_processor Sequence has no 'processors' list", file);
        for (const cJSON *p = list->child; p; p = p->next) PC_TRY(parse_processor(t, p, file, adds, err));
        return PEFTC_OK;
    }
    bool template = strcmp(type, "TemplateProcessing") == 0;
    if (!template && strcmp(type, "BertProcessing") != 0 && strcmp(type, "RobertaProcessing") != 0)
        return pc_fail(err, PEFTC_ERR_UNSUPPORTED, "%s: post_processor type '%s' is not supported", file, type);
    if (*adds)
        return pc_fail(err, PEFTC_ERR_UNSUPPORTED, "%s: more than one post_processor adds special tokens", file);
    *adds = true;
    return template ? parse_template(t, pp, file, err) : parse_cls_sep(t, pp, type, file, err);
}

static pc_status parse_post_processor(pc_tokenizer *t, const cJSON *root, const char *file, pc_error *err)
{
    const char *type;
    bool adds = false;
    PC_TRY(json_type(root, "post_processor", &type, file, err));
    if (!type) return PEFTC_OK;
    return parse_processor(t, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), file, &adds, err);
}

/* The model's "type"; files written without one are told apart by their keys, in the order
 * Hugging Face tries them (BPE has merges, WordPiece a vocab object). */
static pc_status model_type(const cJSON *model, const char **type, const char *file, pc_error *err)
{
    *type = NULL;
    PC_TRY(json_string(model, "type", type, file, err));
    if (*type) return PEFTC_OK;
    if (cJSON_GetObjectItemCaseSensitive(model, "merges")) *type = "BPE";
    else if (cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(model, "vocab"))) *type = "WordPiece";
    else return pc_fail(err, PEFTC_ERR_FORMAT, "%s: 'model' has no \"type\"", file);
    return PEFTC_OK;
}

/* The pipeline's components; what names each in messages ("FILE: pre_tokenizer"). */
static pc_status parse_components(pc_tokenizer *t, const cJSON *root, const char *file, pc_error *err)
{
    char what[4200];
    snprintf(what, sizeof what, "%s: normalizer", file);
    PC_TRY(pc_normalizer_parse(&t->normalizer, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), what, err));
    snprintf(what, sizeof what, "%s: pre_tokenizer", file);
    PC_TRY(pc_pretokenizer_parse(&t->pretokenizer, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), what,
                                 err));
    snprintf(what, sizeof what, "%s: decoder", file);
    PC_TRY(pc_decoder_parse(&t->decoder, cJSON_GetObjectItemCaseSensitive(root, "decoder"), what, err));
    PC_TRY(parse_added_tokens(t, root, file, err));
    return parse_post_processor(t, root, file, err);
}

static pc_status parse_tokenizer_json(pc_tokenizer *t, const cJSON *root, const char *file, const char **model_unk,
                                      pc_error *err)
{
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const char *type = NULL;
    if (!cJSON_IsObject(model)) return pc_fail(err, PEFTC_ERR_FORMAT, "%s: no 'model' object", file);
    PC_TRY(model_type(model, &type, file, err));
    PC_TRY(parse_components(t, root, file, err));
    if (strcmp(type, "WordPiece") == 0) {
        t->kind = PC_TOKENIZER_WORDPIECE;
        return parse_wordpiece_model(t, model, file, model_unk, err);
    }
    if (strcmp(type, "BPE") != 0)
        return pc_fail(err, PEFTC_ERR_UNSUPPORTED, "%s: model type '%s' is not supported (peftc reads WordPiece "
                       "and BPE)", file, type);
    t->kind = t->pretokenizer.byte_level ? PC_TOKENIZER_BYTE_LEVEL_BPE : PC_TOKENIZER_SENTENCEPIECE_BPE;
    char what[4200];
    snprintf(what, sizeof what, "%s: model", file);
    PC_TRY(pc_bpe_parse(&t->bpe, model, what, err));
    *model_unk = t->bpe.unk_token;
    return PEFTC_OK;
}

/* Names of the special tokens: tokenizer_config.json's, else the model's unk_token, else the
 * kind's defaults (when that token exists at all). */
static pc_status name_specials(pc_tokenizer *t, const tok_config *c, const char *model_unk, pc_error *err)
{
    const char *const *defaults = t->kind == PC_TOKENIZER_WORDPIECE ? wordpiece_defaults
                                  : t->kind == PC_TOKENIZER_BYTE_LEVEL_BPE ? byte_level_defaults
                                                                            : sentencepiece_defaults;
    for (int i = 0; i < PC_N_SPECIAL; i++) {
        const char *name = c->names[i] ? c->names[i] : c->null_names[i] ? NULL : defaults[i];
        if (!c->names[i] && !c->null_names[i] && i == PC_SPECIAL_UNK && model_unk) name = model_unk;
        PC_TRY(set_special_name(t, i, name, err));
    }
    return PEFTC_OK;
}

static pc_status load_tokenizer_json(pc_tokenizer *t, const char *path, const tok_config *c, pc_error *err)
{
    cJSON *root;
    const char *model_unk = NULL;
    PC_TRY(parse_json_object(path, &root, err));
    pc_status s = parse_tokenizer_json(t, root, path, &model_unk, err);
    if (s == PEFTC_OK) s = name_specials(t, c, model_unk, err);
    cJSON_Delete(root);
    return s;
}

/* ---- vocab.txt ------------------------------------------------------------------- */

/* One token per line, the id is the line number from 0 (a "\r\n" ending counts as "\n"). */
static pc_status parse_vocab_txt(pc_vocab *v, const char *data, size_t len, const char *file, pc_error *err)
{
    int32_t id = 0;
    for (size_t pos = 0; pos < len; id++) {
        const char *nl = memchr(data + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - data) : len, tok_len = end - pos;
        if (tok_len > 0 && data[end - 1] == '\r') tok_len--;
        if (pc_utf8_invalid_at(data + pos, tok_len) < tok_len)
            return pc_fail(err, PEFTC_ERR_FORMAT, "%s: line %d: invalid UTF-8", file, (int)id + 1);
        if (pc_vocab_add(v, data + pos, tok_len, id, err) != PEFTC_OK)
            return pc_error_prefix(err, "%s: line %d", file, (int)id + 1);
        pos = end + 1;
    }
    return PEFTC_OK;
}

/* BertTokenizer from vocab.txt: BertNormalizer, BertPreTokenizer, WordPiece decoder; its five
 * special tokens are raw (not normalized) added tokens and the post-processor is
 * [CLS] A [SEP], as transformers converts it. */
static pc_status load_vocab_txt(pc_tokenizer *t, const char *path, const tok_config *c, pc_error *err)
{
    char *data = NULL;
    size_t len = 0;
    PC_TRY(pc_read_file(path, (size_t)1 << 30, &data, &len, err));
    pc_status s = parse_vocab_txt(&t->wordpiece.vocab, data, len, path, err);
    free(data);
    PC_TRY(s);
    t->kind = PC_TOKENIZER_WORDPIECE;
    PC_TRY(name_specials(t, c, NULL, err));
    pc_bert_normalizer bert = {true, c->tokenize_chinese_chars,
                               c->strip_accents < 0 ? c->do_lower_case : c->strip_accents == 1, c->do_lower_case};
    PC_TRY(pc_normalizer_add_bert(&t->normalizer, &bert, err));
    PC_TRY(pc_pretokenizer_add_bert(&t->pretokenizer, err));
    PC_TRY(pc_decoder_add_wordpiece(&t->decoder, "##", true, err));
    strcpy(t->wordpiece.prefix, "##");
    t->wordpiece.prefix_len = 2;
    t->wordpiece.max_input_chars = DEFAULT_MAX_INPUT_CHARS;
    if (!t->special_names[PC_SPECIAL_UNK]) return pc_fail(err, PEFTC_ERR_FORMAT, "%s: unk_token is null", path);
    PC_TRY(set_wordpiece_unk(t, t->special_names[PC_SPECIAL_UNK], path, err));
    for (int i = 0; i < PC_N_SPECIAL; i++) {
        const char *name = t->special_names[i];
        int32_t id = name ? pc_vocab_find(&t->wordpiece.vocab, name, strlen(name)) : -1;
        if (id >= 0) PC_TRY(pc_added_add(&t->added, name, strlen(name), id, false, false, false, false, true, err));
        else if (i == PC_SPECIAL_CLS || i == PC_SPECIAL_SEP)
            return pc_fail(err, PEFTC_ERR_FORMAT, "%s: %s '%s' is not in the vocabulary", path, special_keys[i],
                           name ? name : "null");
    }
    PC_TRY(append_id(&t->prefix_ids, &t->n_prefix, pc_tokenizer_token_to_id(t, t->special_names[PC_SPECIAL_CLS]), err));
    return append_id(&t->suffix_ids, &t->n_suffix, pc_tokenizer_token_to_id(t, t->special_names[PC_SPECIAL_SEP]), err);
}

/* ---- common ---------------------------------------------------------------------- */

/* Normalized added tokens match the normalized text, so their pattern is normalized too. */
static pc_status normalize_added_patterns(pc_tokenizer *t, pc_error *err)
{
    pc_strbuf out = {0};
    pc_norm_work w = {0};
    pc_status s = PEFTC_OK;
    for (size_t i = 0; i < t->added.n && s == PEFTC_OK; i++) {
        const pc_added_token *a = &t->added.tokens[i];
        if (!a->normalized) continue;
        s = pc_tokenizer_normalize(t, a->content, a->len, &out, &w, err);
        if (s != PEFTC_OK) break;
        char *pattern = malloc(out.n + 1);
        if (!pattern) { s = pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for added token patterns"); break; }
        memcpy(pattern, out.v ? out.v : "", out.n);
        pattern[out.n] = '\0';
        pc_added_set_pattern(&t->added, i, pattern, out.n);
    }
    free(out.v);
    pc_norm_work_free(&w);
    return s;
}

/* add_bos_token / add_eos_token given: [bos] first and [eos] last, or neither, whatever the
 * post-processor said (transformers' LlamaTokenizerFast rebuilds its template so). */
static pc_status set_bos_eos(pc_tokenizer *t, const tok_config *c, const char *dir, pc_error *err)
{
    int32_t bos = t->special_ids[PC_SPECIAL_BOS], eos = t->special_ids[PC_SPECIAL_EOS];
    if ((c->add_bos == 1 && bos < 0) || (c->add_eos == 1 && eos < 0))
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s/tokenizer_config.json: add_%s_token is true but the tokenizer has "
                       "no %s token", dir, c->add_bos == 1 && bos < 0 ? "bos" : "eos",
                       c->add_bos == 1 && bos < 0 ? "bos" : "eos");
    if (c->add_bos >= 0 && c->add_bos != pc_tokenizer_adds_bos(t)) {
        t->n_prefix = 0;
        if (c->add_bos) PC_TRY(append_id(&t->prefix_ids, &t->n_prefix, bos, err));
    }
    if (c->add_eos >= 0 && c->add_eos != pc_tokenizer_adds_eos(t)) {
        t->n_suffix = 0;
        if (c->add_eos) PC_TRY(append_id(&t->suffix_ids, &t->n_suffix, eos, err));
    }
    return PEFTC_OK;
}

static void finish(pc_tokenizer *t)
{
    for (int i = 0; i < PC_N_SPECIAL; i++) t->special_ids[i] = pc_tokenizer_token_to_id(t, t->special_names[i]);
    t->n_ids = pc_tokenizer_vocab(t)->n_ids;
    for (size_t i = 0; i < t->added.n; i++)
        if (t->added.tokens[i].id >= t->n_ids) t->n_ids = t->added.tokens[i].id + 1;
}

static pc_status load_config(const char *dir, tok_config *c, cJSON **root, pc_error *err)
{
    char path[4096];
    *c = (tok_config){true, -1, true, DEFAULT_MODEL_MAX_LENGTH, {NULL}, {false}, -1, -1};
    *root = NULL;
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    if (!file_exists(path)) return PEFTC_OK;
    PC_TRY(parse_json_object(path, root, err));
    return parse_config(*root, path, c, err);
}

static pc_status load_into(pc_tokenizer *t, const char *dir, const tok_config *c, pc_error *err)
{
    char path[4096];
    t->model_max_length = c->model_max_length;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (file_exists(path)) {
        PC_TRY(load_tokenizer_json(t, path, c, err));
    } else {
        snprintf(path, sizeof path, "%s/vocab.txt", dir);
        if (!file_exists(path))
            return pc_fail(err, PEFTC_ERR_IO, "%s: neither tokenizer.json nor vocab.txt is there", dir);
        PC_TRY(load_vocab_txt(t, path, c, err));
    }
    PC_TRY(normalize_added_patterns(t, err));
    finish(t);
    return set_bos_eos(t, c, dir, err);
}

pc_status pc_tokenizer_load(const char *dir, pc_tokenizer **out, pc_error *err)
{
    if (!dir || !out) return pc_fail(err, PEFTC_ERR_INVALID, "pc_tokenizer_load: NULL argument");
    *out = NULL;
    if (strlen(dir) > 4000) return pc_fail(err, PEFTC_ERR_INVALID, "tokenizer directory name is too long");
    pc_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return pc_fail(err, PEFTC_ERR_NOMEM, "out of memory for a tokenizer");
    tok_config c;
    cJSON *config;
    pc_status s = load_config(dir, &c, &config, err);
    if (s == PEFTC_OK) s = load_into(t, dir, &c, err);
    cJSON_Delete(config);
    if (s != PEFTC_OK) { pc_tokenizer_free(t); return s; }
    *out = t;
    return PEFTC_OK;
}

/* ---- writing vocab.txt + tokenizer_config.json ------------------------------------ */

static pc_status unsupported_save(const char *why, pc_error *err)
{
    return pc_fail(err, PEFTC_ERR_UNSUPPORTED, "cannot save as vocab.txt: %s", why);
}

/* The BertNormalizer when it is the whole normalizer, else NULL. */
static const pc_bert_normalizer *only_bert(const pc_tokenizer *t)
{
    return t->normalizer.n == 1 && t->normalizer.steps[0].kind == PC_NORM_BERT ? &t->normalizer.steps[0].bert : NULL;
}

/* Whether the pre-tokenizer and decoder are those vocab.txt implies. */
static bool bert_pipeline(const pc_tokenizer *t)
{
    const pc_dec_step *d = t->decoder.n == 1 ? &t->decoder.steps[0] : NULL;
    return t->pretokenizer.n == 1 && t->pretokenizer.steps[0].kind == PC_PRE_BERT && d &&
           d->kind == PC_DEC_WORDPIECE && d->cleanup && strcmp(d->text, "##") == 0;
}

/* Whether loading vocab.txt + tokenizer_config.json would give back exactly t. */
static pc_status check_saveable(const pc_tokenizer *t, pc_error *err)
{
    const pc_wordpiece *wp = &t->wordpiece;
    if (t->kind != PC_TOKENIZER_WORDPIECE) return unsupported_save("not a WordPiece tokenizer", err);
    if (!only_bert(t)) return unsupported_save("the normalizer is not one BertNormalizer", err);
    if (!only_bert(t)->clean_text) return unsupported_save("clean_text is off", err);
    if (strcmp(wp->prefix, "##") != 0) return unsupported_save("continuing_subword_prefix is not \"##\"", err);
    if (wp->max_input_chars != DEFAULT_MAX_INPUT_CHARS)
        return unsupported_save("max_input_chars_per_word is not 100", err);
    if (t->n_prefix != 1 || t->n_suffix != 1 || t->prefix_ids[0] != t->special_ids[PC_SPECIAL_CLS] ||
        t->suffix_ids[0] != t->special_ids[PC_SPECIAL_SEP])
        return unsupported_save("the post-processor is not [CLS] A [SEP]", err);
    if (t->n_ids != wp->vocab.n_ids) return unsupported_save("added tokens lie outside the vocabulary", err);
    for (size_t i = 0; i < t->added.n; i++) {
        const pc_added_token *a = &t->added.tokens[i];
        bool named = false;
        for (int k = 0; k < PC_N_SPECIAL; k++)
            named |= t->special_names[k] && strcmp(a->content, t->special_names[k]) == 0;
        if (!named || a->normalized || a->lstrip || a->rstrip || a->single_word ||
            pc_vocab_find(&wp->vocab, a->content, a->len) != a->id)
            return pc_fail(err, PEFTC_ERR_UNSUPPORTED, "cannot save as vocab.txt: added token '%s' is not one of "
                           "the five plain special tokens of the vocabulary", a->content);
    }
    if (!bert_pipeline(t))
        return unsupported_save("the pre-tokenizer is not BertPreTokenizer or the decoder not WordPiece \"##\"", err);
    for (int32_t id = 0; id < wp->vocab.n_ids; id++) {
        const char *tok = pc_vocab_token(&wp->vocab, id, NULL);
        if (!tok) return pc_fail(err, PEFTC_ERR_UNSUPPORTED, "cannot save as vocab.txt: id %d has no token", (int)id);
        if (strpbrk(tok, "\r\n"))
            return pc_fail(err, PEFTC_ERR_UNSUPPORTED, "cannot save as vocab.txt: token %d holds a line break",
                           (int)id);
    }
    return PEFTC_OK;
}

static pc_status write_vocab_txt(const pc_tokenizer *t, const char *path, pc_error *err)
{
    pc_strbuf b = {0};
    pc_status s = PEFTC_OK;
    for (int32_t id = 0; id < t->wordpiece.vocab.n_ids && s == PEFTC_OK; id++) {
        size_t len;
        const char *tok = pc_vocab_token(&t->wordpiece.vocab, id, &len);
        s = pc_strbuf_append(&b, tok, len, err);
        if (s == PEFTC_OK) s = pc_strbuf_append(&b, "\n", 1, err);
    }
    if (s == PEFTC_OK) s = pc_write_file_atomic(path, b.v ? b.v : "", b.n, err);
    free(b.v);
    return s;
}

static pc_status write_config(const pc_tokenizer *t, const char *path, pc_error *err)
{
    const pc_bert_normalizer *bert = only_bert(t);
    cJSON *root = cJSON_CreateObject();
    bool ok = root && cJSON_AddStringToObject(root, "tokenizer_class", "BertTokenizer") &&
              cJSON_AddBoolToObject(root, "do_lower_case", bert->lowercase) &&
              cJSON_AddBoolToObject(root, "strip_accents", bert->strip_accents) &&
              cJSON_AddBoolToObject(root, "tokenize_chinese_chars", bert->handle_chinese_chars) &&
              cJSON_AddNumberToObject(root, "model_max_length", t->model_max_length);
    for (int i = 0; i < PC_N_SPECIAL && ok; i++)
        ok = (t->special_names[i] ? cJSON_AddStringToObject(root, special_keys[i], t->special_names[i])
                                  : cJSON_AddNullToObject(root, special_keys[i])) != NULL;
    pc_status s = ok ? pc_json_write_file_atomic(path, root, true, err)
                     : pc_fail(err, PEFTC_ERR_NOMEM, "out of memory writing %s", path);
    cJSON_Delete(root);
    return s;
}

pc_status pc_tokenizer_save_wordpiece(const pc_tokenizer *t, const char *dir, pc_error *err)
{
    if (!t || !dir) return pc_fail(err, PEFTC_ERR_INVALID, "pc_tokenizer_save_wordpiece: NULL argument");
    if (strlen(dir) > 4000) return pc_fail(err, PEFTC_ERR_INVALID, "tokenizer directory name is too long");
    PC_TRY(check_saveable(t, err));
    char path[4096];
    snprintf(path, sizeof path, "%s/vocab.txt", dir);
    PC_TRY(write_vocab_txt(t, path, err));
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    return write_config(t, path, err);
}
