/* BPE tokenizers (byte-level and SentencePiece-style): merges on hand-made vocabularies with
 * hand-computed results, load errors, and parity of encode and decode with Hugging Face
 * tokenizers on GPT-2, TinyLlama, stories260K and edited variants (fixtures from
 * tools/tokenizer_fixtures; the real files come from ../shared). */
#include "testlib.h"

#include "base/fs.h"
#include "formats/json.h"
#include "text/tokenizer.h"

#include <limits.h>
#include <stdlib.h>

enum { NO_TRUNCATION = INT_MAX };

/* ---- helpers ------------------------------------------------------------------------ */

static void write_text(const char *dir, const char *name, const char *text)
{
    char path[1024];
    pc_error err = {0};
    snprintf(path, sizeof path, "%s/%s", dir, name);
    CHECK_MSG(pc_write_file_atomic(path, text, strlen(text), &err) == PEFTC_OK, "%s", err.msg);
}

/* A fresh directory tmpdir/bpe_name. */
static const char *tmp_subdir(const char *name)
{
    static char dir[1024];
    pc_error err = {0};
    snprintf(dir, sizeof dir, "%s/bpe_%s", pc_test_tmpdir(), name);
    CHECK_MSG(pc_mkdirs(dir, &err) == PEFTC_OK, "%s", err.msg);
    return dir;
}

static pc_tokenizer *load_dir(const char *dir)
{
    pc_tokenizer *t = NULL;
    pc_error err = {0};
    CHECK_MSG(pc_tokenizer_load(dir, &t, &err) == PEFTC_OK, "%s: %s", dir, err.msg);
    return t;
}

/* A directory holding only tokenizer.json = json, loaded. */
static pc_tokenizer *load_json(const char *name, const char *json)
{
    const char *dir = tmp_subdir(name);
    write_text(dir, "tokenizer.json", json);
    return load_dir(dir);
}

/* A shared directory (copied: pc_test_shared's buffer is reused), or NULL when absent. */
static const char *shared_dir(const char *rel, char *buf, size_t size)
{
    const char *p = pc_test_shared(rel);
    if (!p) return NULL;
    snprintf(buf, size, "%s", p);
    return buf;
}

static void check_ids(const pc_tokenizer *t, const char *text, bool add_special, const int32_t *want, int n_want)
{
    int32_t *ids = NULL;
    int n = -1;
    pc_error err = {0};
    if (pc_tokenizer_encode(t, text, strlen(text), add_special, NO_TRUNCATION, &ids, &n, &err) != PEFTC_OK) {
        CHECK_MSG(0, "encode \"%s\": %s", text, err.msg);
        return;
    }
    bool same = n == n_want;
    for (int i = 0; same && i < n; i++) same = ids[i] == want[i];
    char got[256] = "";
    for (int i = 0, o = 0; i < n && o < 200; i++) o += snprintf(got + o, sizeof got - (size_t)o, " %d", ids[i]);
    CHECK_MSG(same, "encode \"%s\": got [%s ], want %d ids starting %d", text, got, n_want, n_want ? want[0] : -1);
    free(ids);
}

#define CHECK_IDS(t, text, special, ...) do { \
    const int32_t want_[] = {__VA_ARGS__}; \
    check_ids(t, text, special, want_, (int)(sizeof want_ / sizeof want_[0])); } while (0)

static void check_decode(const pc_tokenizer *t, const int32_t *ids, int n, bool skip_special, const char *want)
{
    char *text = NULL;
    pc_error err = {0};
    CHECK_MSG(pc_tokenizer_decode(t, ids, n, skip_special, &text, &err) == PEFTC_OK, "%s", err.msg);
    CHECK_STR_EQ(text, want);
    free(text);
}

#define CHECK_DECODE(t, skip, want, ...) do { \
    const int32_t ids_[] = {__VA_ARGS__}; \
    check_decode(t, ids_, (int)(sizeof ids_ / sizeof ids_[0]), skip, want); } while (0)

/* ---- hand-made vocabulary: merge order computed by hand ------------------------------ */

/* ids: <unk> 0, a 1, b 2, c 3, ab 4, bc 5, abc 6, d 7, cd 8, <0x78> ("x") 9, bcd 10.
 * Merge ranks: (b,c) 0, (a,b) 1, (a,bc) 2, (c,d) 3. No normalizer, no pre-tokenizer. */
static pc_tokenizer *tiny_bpe(const char *name, const char *options, bool pairs)
{
    char json[2048];
    snprintf(json, sizeof json,
             "{\"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", %s \"vocab\": {\"<unk>\": 0, \"a\": 1, "
             "\"b\": 2, \"c\": 3, \"ab\": 4, \"bc\": 5, \"abc\": 6, \"d\": 7, \"cd\": 8, \"<0x78>\": 9, \"bcd\": 10},"
             " \"merges\": %s}}", options,
             pairs ? "[[\"b\", \"c\"], [\"a\", \"b\"], [\"a\", \"bc\"], [\"c\", \"d\"]]"
                   : "[\"b c\", \"a b\", \"a bc\", \"c d\"]");
    return load_json(name, json);
}

TEST(tokenizer_bpe_merges_lowest_rank_first)
{
    for (int pairs = 0; pairs < 2; pairs++) {
        pc_tokenizer *t = tiny_bpe(pairs ? "rank_pairs" : "rank", "", pairs);
        if (!t) return;
        CHECK_INT_EQ(pc_tokenizer_get_kind(t), PC_TOKENIZER_SENTENCEPIECE_BPE);
        CHECK_IDS(t, "abc", false, 6);           /* b c (rank 0), then a bc (rank 2) */
        CHECK_IDS(t, "abcd", false, 6, 7);       /* b c first takes c from c d */
        CHECK_IDS(t, "cdab", false, 8, 4);       /* a b (1) before c d (3); both happen */
        CHECK_IDS(t, "bcd", false, 5, 7);        /* no merge reaches bcd */
        CHECK_IDS(t, "aab", false, 1, 4);        /* equal ranks: the leftmost pair, (a,a) has none */
        CHECK_INT_EQ(pc_tokenizer_vocab_size(t), 11);
        pc_tokenizer_free(t);
    }
}

TEST(tokenizer_bpe_unknown_characters)
{
    pc_tokenizer *t = tiny_bpe("unk", "", false);
    if (!t) return;
    CHECK_IDS(t, "xax", false, 0, 1, 0);
    CHECK_IDS(t, "xxa", false, 0, 0, 1);         /* one unk per character */
    pc_tokenizer_free(t);
    t = tiny_bpe("fuse", "\"fuse_unk\": true,", false);
    if (!t) return;
    CHECK_IDS(t, "xxa", false, 0, 1);            /* consecutive unks fused */
    CHECK_IDS(t, "xxaéé", false, 0, 1, 0);
    pc_tokenizer_free(t);
    t = tiny_bpe("fallback", "\"byte_fallback\": true,", false);
    if (!t) return;
    CHECK_IDS(t, "xab", false, 9, 4);            /* "x" is byte 0x78 */
    CHECK_IDS(t, "yab", false, 0, 4);            /* no <0x79>: unk */
    pc_tokenizer_free(t);
    t = tiny_bpe("ignore", "\"ignore_merges\": true,", false);
    if (!t) return;
    CHECK_IDS(t, "bcd", false, 10);              /* the whole word is a token */
    CHECK_IDS(t, "abcd", false, 6, 7);
    pc_tokenizer_free(t);
}

TEST(tokenizer_bpe_decode_rejects_unknown_ids)
{
    pc_tokenizer *t = tiny_bpe("decode", "", false);
    if (!t) return;
    CHECK_DECODE(t, false, "a b abc", 1, 2, 6);  /* no decoder: tokens joined by spaces */
    const int32_t bad[] = {1, 99};
    char *text = NULL;
    pc_error err = {0};
    CHECK_INT_EQ(pc_tokenizer_decode(t, bad, 2, false, &text, &err), PEFTC_ERR_INVALID);
    CHECK_CONTAINS(err.msg, "token id 99");
    CHECK(text == NULL);
    pc_tokenizer_free(t);
}

/* ---- load errors ------------------------------------------------------------------- */

static void check_load_fails(const char *name, const char *json, pc_status want, const char *needle)
{
    const char *dir = tmp_subdir(name);
    write_text(dir, "tokenizer.json", json);
    pc_tokenizer *t = NULL;
    pc_error err = {0};
    CHECK_INT_EQ(pc_tokenizer_load(dir, &t, &err), want);
    CHECK(t == NULL);
    CHECK_CONTAINS(err.msg, "tokenizer.json");
    CHECK_CONTAINS(err.msg, needle);
}

#define TINY_VOCAB "\"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}"

TEST(tokenizer_bpe_bad_files_name_the_problem)
{
    check_load_fails("err_type", "{\"model\": {\"type\": \"WordLevel\", " TINY_VOCAB "}}", PEFTC_ERR_UNSUPPORTED,
                     "model type 'WordLevel'");
    check_load_fails("err_merge", "{\"model\": {\"type\": \"BPE\", " TINY_VOCAB ", \"merges\": [\"a b\", \"a zz\"]}}",
                     PEFTC_ERR_FORMAT, "merges[1]: token 'zz' is not in the vocabulary");
    check_load_fails("err_merged", "{\"model\": {\"type\": \"BPE\", " TINY_VOCAB ", \"merges\": [[\"b\", \"a\"]]}}",
                     PEFTC_ERR_FORMAT, "merges[0]: merged token 'ba' is not in the vocabulary");
    check_load_fails("err_merge_form", "{\"model\": {\"type\": \"BPE\", " TINY_VOCAB ", \"merges\": [\"a b a\"]}}",
                     PEFTC_ERR_FORMAT, "merges[0] 'a b a'");
    check_load_fails("err_merge_pair", "{\"model\": {\"type\": \"BPE\", " TINY_VOCAB ", \"merges\": [[\"a\"]]}}",
                     PEFTC_ERR_FORMAT, "merges[0]");
    check_load_fails("err_regex",
                     "{\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", "
                     "\"pattern\": {\"Regex\": \"(\\\\p{L}+\"}, \"behavior\": \"Isolated\", \"invert\": false}]}, "
                     "\"model\": {\"type\": \"BPE\", " TINY_VOCAB ", \"merges\": []}}",
                     PEFTC_ERR_FORMAT, "pre_tokenizer.pretokenizers[0]: bad regex '(\\p{L}+'");
    check_load_fails("err_behavior",
                     "{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"String\": \" \"}, \"behavior\": "
                     "\"Sideways\"}, \"model\": {\"type\": \"BPE\", " TINY_VOCAB ", \"merges\": []}}",
                     PEFTC_ERR_FORMAT, "'Sideways'");
    check_load_fails("err_pretok", "{\"pre_tokenizer\": {\"type\": \"UnicodeScripts\"}, \"model\": {\"type\": "
                     "\"BPE\", " TINY_VOCAB ", \"merges\": []}}", PEFTC_ERR_UNSUPPORTED, "'UnicodeScripts'");
    check_load_fails("err_decoder", "{\"decoder\": {\"type\": \"CTC\"}, \"model\": {\"type\": \"BPE\", " TINY_VOCAB
                     ", \"merges\": []}}", PEFTC_ERR_UNSUPPORTED, "decoder: decoder type 'CTC'");
    check_load_fails("err_dropout", "{\"model\": {\"type\": \"BPE\", \"dropout\": 0.1, " TINY_VOCAB
                     ", \"merges\": []}}", PEFTC_ERR_UNSUPPORTED, "dropout");
    check_load_fails("err_processor", "{\"post_processor\": {\"type\": \"Sequence\", \"processors\": [{\"type\": "
                     "\"RobertaProcessing\", \"cls\": [\"a\", 0], \"sep\": [\"b\", 1]}, {\"type\": \"BertProcessing\", "
                     "\"cls\": [\"a\", 0], \"sep\": [\"b\", 1]}]}, \"model\": {\"type\": \"BPE\", " TINY_VOCAB
                     ", \"merges\": []}}", PEFTC_ERR_UNSUPPORTED, "more than one");
}

/* ---- the real tokenizers: known ids ------------------------------------------------- */

TEST(tokenizer_bpe_gpt2_known_ids)
{
    char dir[1024];
    if (!shared_dir("tokenizers/gpt2", dir, sizeof dir))
        SKIP("../shared/tokenizers/gpt2 is absent (the real GPT-2 tokenizer files)");
    pc_tokenizer *t = load_dir(dir);
    if (!t) return;
    CHECK_INT_EQ(pc_tokenizer_get_kind(t), PC_TOKENIZER_BYTE_LEVEL_BPE);
    CHECK_IDS(t, "Hello world", true, 15496, 995);
    CHECK_DECODE(t, false, "Hello world", 15496, 995);
    CHECK_INT_EQ(pc_tokenizer_vocab_size(t), 50257);
    CHECK_INT_EQ(pc_tokenizer_bos_id(t), 50256);
    CHECK_INT_EQ(pc_tokenizer_eos_id(t), 50256);
    CHECK_INT_EQ(pc_tokenizer_unk_id(t), 50256);
    CHECK_INT_EQ(pc_tokenizer_pad_id(t), -1);
    CHECK(!pc_tokenizer_adds_bos(t));
    CHECK(!pc_tokenizer_adds_eos(t));
    CHECK_INT_EQ(pc_tokenizer_model_max_length(t), 1024);
    CHECK_STR_EQ(pc_tokenizer_id_to_token(t, 995), "\xC4\xA0world");    /* "Ġworld" */
    pc_tokenizer_free(t);
}

TEST(tokenizer_bpe_tinyllama_known_ids)
{
    char dir[1024];
    if (!shared_dir("tokenizers/TinyLlama-1.1B-Chat-v1.0", dir, sizeof dir))
        SKIP("../shared/tokenizers/TinyLlama-1.1B-Chat-v1.0 is absent (the real Llama-2 tokenizer files)");
    pc_tokenizer *t = load_dir(dir);
    if (!t) return;
    CHECK_INT_EQ(pc_tokenizer_get_kind(t), PC_TOKENIZER_SENTENCEPIECE_BPE);
    CHECK_IDS(t, "Hello world", true, 1, 15043, 3186);
    /* the ids llama2.c's test.c pins for the Llama 2 tokenizer */
    CHECK_IDS(t, "I believe the meaning of life is", true, 1, 306, 4658, 278, 6593, 310, 2834, 338);
    CHECK_DECODE(t, true, "Hello world", 1, 15043, 3186);
    CHECK_DECODE(t, false, "<s> Hello world", 1, 15043, 3186);
    CHECK_INT_EQ(pc_tokenizer_vocab_size(t), 32000);
    CHECK_INT_EQ(pc_tokenizer_bos_id(t), 1);
    CHECK_INT_EQ(pc_tokenizer_eos_id(t), 2);
    CHECK_INT_EQ(pc_tokenizer_unk_id(t), 0);
    CHECK_INT_EQ(pc_tokenizer_pad_id(t), 2);                            /* pad_token "</s>" */
    CHECK(pc_tokenizer_adds_bos(t));
    CHECK(!pc_tokenizer_adds_eos(t));
    CHECK_INT_EQ(pc_tokenizer_model_max_length(t), 2048);
    pc_tokenizer_free(t);
}

/* stories260K's reference_outputs.json carries its own tokenizer cases (ids with BOS, and
 * the text decoded with special tokens skipped). */
TEST(tokenizer_bpe_stories260k_reference_cases)
{
    char dir[1024], path[1200];
    if (!shared_dir("models/stories260K", dir, sizeof dir))
        SKIP("../shared/models/stories260K is absent (the real stories260K files)");
    pc_tokenizer *t = load_dir(dir);
    if (!t) return;
    CHECK_INT_EQ(pc_tokenizer_pad_id(t), -1);                           /* pad_token null */
    snprintf(path, sizeof path, "%s/reference_outputs.json", dir);
    cJSON *root = NULL;
    pc_error err = {0};
    CHECK_MSG(pc_json_parse_file(path, &root, &err) == PEFTC_OK, "%s", err.msg);
    const cJSON *cases = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "tokenizer_cases"), "cases");
    int n = 0;
    for (const cJSON *c = cases ? cases->child : NULL; c; c = c->next, n++) {
        const cJSON *want = cJSON_GetObjectItem(c, "ids_with_bos");
        int32_t ids[1024];
        int n_ids = 0;
        for (const cJSON *w = want->child; w && n_ids < 1024; w = w->next) ids[n_ids++] = w->valueint;
        check_ids(t, cJSON_GetObjectItem(c, "text")->valuestring, true, ids, n_ids);
        check_decode(t, ids, n_ids, true, cJSON_GetObjectItem(c, "decoded")->valuestring);
    }
    CHECK(n >= 10);
    cJSON_Delete(root);
    pc_tokenizer_free(t);
}

TEST(tokenizer_bpe_add_bos_and_eos_from_config)
{
    char dir[1024], from[1200], to[1200];
    if (!shared_dir("models/stories260K", dir, sizeof dir))
        SKIP("../shared/models/stories260K is absent (the real stories260K files)");
    const char *sub = tmp_subdir("eos");
    snprintf(from, sizeof from, "%s/tokenizer.json", dir);
    snprintf(to, sizeof to, "%s/tokenizer.json", sub);
    pc_error err = {0};
    CHECK_MSG(pc_copy_file(from, to, &err) == PEFTC_OK, "%s", err.msg);
    write_text(sub, "tokenizer_config.json", "{\"add_bos_token\": false, \"add_eos_token\": true}");
    pc_tokenizer *t = load_dir(sub);
    if (!t) return;
    CHECK_IDS(t, "Once upon a time", true, 403, 407, 261, 378, 2);    /* reference ids, BOS dropped, EOS added */
    CHECK_IDS(t, "Once upon a time", false, 403, 407, 261, 378);
    CHECK(!pc_tokenizer_adds_bos(t));
    CHECK(pc_tokenizer_adds_eos(t));
    pc_tokenizer_free(t);

    write_text(sub, "tokenizer_config.json", "{\"add_eos_token\": true, \"eos_token\": null}");
    pc_tokenizer *bad = NULL;
    CHECK_INT_EQ(pc_tokenizer_load(sub, &bad, &err), PEFTC_ERR_FORMAT);
    CHECK_CONTAINS(err.msg, "add_eos_token is true");
    CHECK(bad == NULL);
}

/* ---- parity with Hugging Face -------------------------------------------------------- */

/* Applies a fixture variant's edits to a parsed tokenizer.json (as make_fixtures.js does). */
static void apply_edits(cJSON *root, const cJSON *edits)
{
    for (const cJSON *e = edits ? edits->child : NULL; e; e = e->next) {
        cJSON *model = cJSON_GetObjectItem(root, "model");
        if (strcmp(e->string, "model") == 0) {
            for (const cJSON *m = e->child; m; m = m->next) {
                cJSON_DeleteItemFromObject(model, m->string);
                cJSON_AddItemToObject(model, m->string, cJSON_Duplicate(m, 1));
            }
        } else if (strcmp(e->string, "added_tokens") == 0) {
            cJSON *added = cJSON_GetObjectItem(root, "added_tokens");
            for (const cJSON *a = e->child; a; a = a->next) cJSON_AddItemToArray(added, cJSON_Duplicate(a, 1));
        } else if (strcmp(e->string, "merges_as_pairs") == 0) {
            cJSON *pairs = cJSON_CreateArray();
            for (const cJSON *m = cJSON_GetObjectItem(model, "merges")->child; m; m = m->next) {
                const char *sp = strchr(m->valuestring, ' ');
                char *left = strndup(m->valuestring, (size_t)(sp - m->valuestring));
                const char *pair[2] = {left, sp + 1};
                cJSON_AddItemToArray(pairs, cJSON_CreateStringArray(pair, 2));
                free(left);
            }
            cJSON_ReplaceItemInObject(model, "merges", pairs);
        } else {
            cJSON_DeleteItemFromObject(root, e->string);
            cJSON_AddItemToObject(root, e->string, cJSON_Duplicate(e, 1));
        }
    }
}

/* The tokenizer of a fixture variant: the shared directory, or a copy with the edits. */
static pc_tokenizer *load_variant(const cJSON *v)
{
    char dir[1024], path[1200];
    const char *name = cJSON_GetObjectItem(v, "name")->valuestring;
    if (!shared_dir(cJSON_GetObjectItem(v, "dir")->valuestring, dir, sizeof dir)) return NULL;
    const cJSON *edits = cJSON_GetObjectItem(v, "edits");
    if (!edits) return load_dir(dir);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    cJSON *root = NULL;
    pc_error err = {0};
    CHECK_MSG(pc_json_parse_file(path, &root, &err) == PEFTC_OK, "%s", err.msg);
    if (!root) return NULL;
    apply_edits(root, edits);
    char sub[1200], to[1300];
    snprintf(sub, sizeof sub, "%s", tmp_subdir(name));
    snprintf(to, sizeof to, "%s/tokenizer.json", sub);
    CHECK_MSG(pc_json_write_file_atomic(to, root, false, &err) == PEFTC_OK, "%s", err.msg);
    cJSON_Delete(root);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    snprintf(to, sizeof to, "%s/tokenizer_config.json", sub);
    if (pc_path_exists(path)) CHECK_MSG(pc_copy_file(path, to, &err) == PEFTC_OK, "%s", err.msg);
    return load_dir(sub);
}

enum { MAX_VARIANTS = 16 };

typedef struct variants {
    cJSON *header;
    const char *names[MAX_VARIANTS];
    pc_tokenizer *tok[MAX_VARIANTS];
    int n;
} variants;

/* Loads the variants named on the first line of bpe_cases.jsonl; false (and a reason) when
 * the shared files are missing. */
static bool load_variants(FILE *f, variants *vs, const char **why)
{
    char line[1 << 16];
    pc_error err = {0};
    memset(vs, 0, sizeof *vs);
    *why = NULL;
    if (!fgets(line, sizeof line, f)) { CHECK_MSG(0, "bpe_cases.jsonl is empty"); return false; }
    CHECK_MSG(pc_json_parse_text(line, strlen(line), "bpe_cases.jsonl", &vs->header, &err) == PEFTC_OK, "%s",
              err.msg);
    const cJSON *list = cJSON_GetObjectItem(vs->header, "variants");
    for (const cJSON *v = list ? list->child : NULL; v && vs->n < MAX_VARIANTS; v = v->next) {
        const char *dir = cJSON_GetObjectItem(v, "dir")->valuestring;
        if (!pc_test_shared(dir)) { *why = dir; return false; }
        vs->names[vs->n] = cJSON_GetObjectItem(v, "name")->valuestring;
        vs->tok[vs->n++] = load_variant(v);
    }
    return vs->n > 0;
}

static void free_variants(variants *vs)
{
    for (int i = 0; i < vs->n; i++) pc_tokenizer_free(vs->tok[i]);
    cJSON_Delete(vs->header);
}

/* The expected ids of a variant: an array, or "=name" for the ids of an earlier variant. */
static const cJSON *expected_ids(const cJSON *ids, const char *name)
{
    const cJSON *v = cJSON_GetObjectItem(ids, name);
    return cJSON_IsString(v) ? cJSON_GetObjectItem(ids, v->valuestring + 1) : v;
}

static int to_ids(const cJSON *arr, int32_t **out)
{
    int n = cJSON_GetArraySize(arr), i = 0;
    *out = malloc(((size_t)n + 1) * sizeof **out);
    for (const cJSON *w = arr->child; w && *out; w = w->next) (*out)[i++] = w->valueint;
    return *out ? n : 0;
}

static void format_ids(char *buf, size_t size, const int32_t *ids, int n)
{
    size_t o = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && o + 12 < size; i++) o += (size_t)snprintf(buf + o, size - o, " %d", ids[i]);
}

/* One case for one variant: encode against the ids, decode of those ids against the text
 * (or "decoded") and "decoded_special". Returns whether all agree. */
static bool case_agrees(const pc_tokenizer *t, const char *name, const cJSON *c, int *reported)
{
    const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
    const cJSON *ml = cJSON_GetObjectItem(c, "max_length");
    bool add_special = !cJSON_IsFalse(cJSON_GetObjectItem(c, "add_special"));
    int max_length = ml && ml->valueint > 0 ? ml->valueint : NO_TRUNCATION;
    int32_t *want = NULL, *got = NULL;
    int n_want = to_ids(expected_ids(cJSON_GetObjectItem(c, "ids"), name), &want), n_got = 0;
    pc_error err = {0};
    pc_status s = pc_tokenizer_encode(t, text, strlen(text), add_special, max_length, &got, &n_got, &err);
    bool same = s == PEFTC_OK && n_got == n_want && (n_got == 0 || memcmp(got, want, (size_t)n_got * 4) == 0);
    if (!same && (*reported)++ < 8) {
        char g[400], w[400];
        format_ids(g, sizeof g, got, n_got);
        format_ids(w, sizeof w, want, n_want);
        CHECK_MSG(0, "%s: encode \"%.60s\" (add_special %d, max_length %d): %s got [%s ] want [%s ]", name, text,
                  add_special, ml ? ml->valueint : 0, s == PEFTC_OK ? "" : err.msg, g, w);
    }
    for (int skip = 0; !ml && skip < 2; skip++) {       /* decoding: on the plain cases */
        const cJSON *dec = cJSON_GetObjectItem(cJSON_GetObjectItem(c, skip ? "decoded" : "decoded_special"), name);
        if (!skip && !dec) continue;
        const char *want_text = dec ? dec->valuestring : text;
        char *out = NULL;
        s = pc_tokenizer_decode(t, want, n_want, skip, &out, &err);
        bool ok = s == PEFTC_OK && strcmp(out, want_text) == 0;
        if (!ok && (*reported)++ < 8)
            CHECK_MSG(0, "%s: decode (skip_special %d) for \"%.60s\": %s got \"%.80s\" want \"%.80s\"", name, skip, text,
                      s == PEFTC_OK ? "" : err.msg, out ? out : "", want_text);
        same &= ok;
        free(out);
    }
    free(want);
    free(got);
    return same;
}

TEST(tokenizer_bpe_matches_hugging_face)
{
    const char *fixture = pc_test_fixture("tokenizer/bpe_cases.jsonl");
    FILE *f = fopen(fixture, "rb");
    CHECK_MSG(f != NULL, "cannot open %s", fixture);
    if (!f) return;
    variants vs;
    const char *why;
    if (!load_variants(f, &vs, &why)) {
        fclose(f);
        free_variants(&vs);
        if (why) SKIP("../shared tokenizer files are absent (the real GPT-2, TinyLlama and stories260K tokenizers)");
        return;
    }
    static char line[1 << 20];
    int cases = 0, bad[MAX_VARIANTS] = {0}, reported = 0;
    while (fgets(line, sizeof line, f)) {
        cJSON *c = NULL;
        pc_error err = {0};
        CHECK_MSG(pc_json_parse_text(line, strlen(line), "bpe_cases.jsonl", &c, &err) == PEFTC_OK, "%s", err.msg);
        if (!c) break;
        for (int i = 0; i < vs.n; i++)           /* edge_only variants have ids on some cases only */
            if (vs.tok[i] && cJSON_GetObjectItem(cJSON_GetObjectItem(c, "ids"), vs.names[i]))
                bad[i] += !case_agrees(vs.tok[i], vs.names[i], c, &reported);
        cases++;
        cJSON_Delete(c);
    }
    fclose(f);
    for (int i = 0; i < vs.n; i++) {
        CHECK_MSG(vs.tok[i] != NULL, "variant %s did not load", vs.names[i]);
        CHECK_MSG(bad[i] == 0, "variant %s: %d of %d cases differ from Hugging Face", vs.names[i], bad[i], cases);
    }
    CHECK(cases > 1300);
    free_variants(&vs);
}

/* ---- every Rotten Tomatoes text, as digests ------------------------------------------ */

static uint32_t fnv1a(uint32_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
    return h;
}

/* FNV-1a of the ids as little-endian 32-bit words (the fixture's digest). */
static uint32_t ids_digest(const int32_t *ids, int n)
{
    uint32_t h = 2166136261u;
    for (int i = 0; i < n; i++) {
        unsigned char le[4] = {(unsigned char)ids[i], (unsigned char)(ids[i] >> 8), (unsigned char)(ids[i] >> 16),
                               (unsigned char)((uint32_t)ids[i] >> 24)};
        h = fnv1a(h, le, 4);
    }
    return h;
}

typedef struct text_list {
    char **v;
    int n, cap;
} text_list;

static void read_texts(const char *path, text_list *tl)
{
    FILE *f = fopen(path, "rb");
    CHECK_MSG(f != NULL, "cannot open %s", path);
    if (!f) return;
    static char line[1 << 16];
    while (fgets(line, sizeof line, f)) {
        cJSON *c = NULL;
        pc_error err = {0};
        if (pc_json_parse_text(line, strlen(line), path, &c, &err) != PEFTC_OK) { CHECK_MSG(0, "%s", err.msg); break; }
        if (tl->n == tl->cap) {
            tl->cap = tl->cap ? 2 * tl->cap : 1024;
            tl->v = realloc(tl->v, (size_t)tl->cap * sizeof *tl->v);
        }
        tl->v[tl->n++] = strdup(cJSON_GetObjectItem(c, "text")->valuestring);
        cJSON_Delete(c);
    }
    fclose(f);
}

/* What one tokenizer gives for one text: the ids' digest and whether decode gave the text back
 * (else the decoded text's digest). */
typedef struct text_result {
    pc_status status;
    uint32_t ids, decoded;
    bool round_trip;
} text_result;

static text_result run_text(const pc_tokenizer *t, const char *text)
{
    text_result r = {PEFTC_OK, 0, 0, false};
    int32_t *ids = NULL;
    int n = 0;
    char *out = NULL;
    pc_error err = {0};
    r.status = pc_tokenizer_encode(t, text, strlen(text), true, NO_TRUNCATION, &ids, &n, &err);
    if (r.status == PEFTC_OK) r.status = pc_tokenizer_decode(t, ids, n, true, &out, &err);
    if (r.status == PEFTC_OK) {
        r.ids = ids_digest(ids, n);
        r.round_trip = strcmp(out, text) == 0;
        r.decoded = fnv1a(2166136261u, out, strlen(out));
    }
    free(ids);
    free(out);
    return r;
}

/* Encodes every text with several threads at once (the tokenizer is shared), then compares. */
TEST(tokenizer_bpe_matches_hugging_face_on_all_rotten_tomatoes)
{
    static const char *const columns[] = {"gpt2", "tinyllama", "stories", "llama3"};   /* bpe_bulk.txt's order */
    enum { N_COLUMNS = 4 };
    char data[1024];
    if (!shared_dir("data/rotten_tomatoes", data, sizeof data))
        SKIP("../shared/data/rotten_tomatoes is absent (the texts)");
    FILE *f = fopen(pc_test_fixture("tokenizer/bpe_cases.jsonl"), "rb");
    CHECK(f != NULL);
    if (!f) return;
    variants vs;
    const char *why;
    bool loaded = load_variants(f, &vs, &why);
    fclose(f);
    if (!loaded) {
        free_variants(&vs);
        if (why) SKIP("../shared tokenizer files are absent (the real GPT-2, TinyLlama and stories260K tokenizers)");
        return;
    }
    text_list tl = {0};
    static const char *const files[] = {"train.jsonl", "validation.jsonl", "test.jsonl"};
    for (int i = 0; i < 3; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", data, files[i]);
        read_texts(path, &tl);
    }
    FILE *bulk = fopen(pc_test_fixture("tokenizer/bpe_bulk.txt"), "rb");
    CHECK(bulk != NULL);
    char line[512];
    int row = 0, bad = 0;
    text_result *res = calloc((size_t)tl.n, sizeof *res);
    for (int k = 0; k < N_COLUMNS && bulk && res; k++) {
        int v = 0;
        while (v < vs.n && strcmp(vs.names[v], columns[k]) != 0) v++;
        CHECK_MSG(v < vs.n && vs.tok[v], "variant %s is missing", columns[k]);
        if (v >= vs.n || !vs.tok[v]) break;
        #pragma omp parallel for schedule(dynamic, 64)
        for (int i = 0; i < tl.n; i++) res[i] = run_text(vs.tok[v], tl.v[i]);
        rewind(bulk);
        row = 0;
        while (fgets(line, sizeof line, bulk)) {
            if (line[0] == '#') continue;
            char *col = strtok(line, " \n");
            for (int c = 0; c < k && col; c++) col = strtok(NULL, " \n");
            CHECK_MSG(col && row < tl.n, "bpe_bulk.txt: line %d is short or extra", row);
            if (!col || row >= tl.n) break;
            unsigned want_ids = 0, want_dec = 0;
            int got_fields = sscanf(col, "%8x/%8x", &want_ids, &want_dec);
            const text_result *r = &res[row];
            bool ok = r->status == PEFTC_OK && r->ids == want_ids &&
                      (got_fields == 2 ? r->decoded == want_dec : r->round_trip);
            if (!ok && bad++ < 8)
                CHECK_MSG(0, "%s: text %d \"%.60s\": ids digest %08x want %08x, decoded %s", columns[k], row,
                          tl.v[row], (unsigned)r->ids, want_ids, r->round_trip ? "round-trips" : "differs");
            row++;
        }
        CHECK_INT_EQ(row, tl.n);
    }
    CHECK_INT_EQ(bad, 0);
    CHECK(tl.n > 10000);
    if (bulk) fclose(bulk);
    free(res);
    for (int i = 0; i < tl.n; i++) free(tl.v[i]);
    free(tl.v);
    free_variants(&vs);
}
