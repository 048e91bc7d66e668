/* WordPiece tokenizer: unit tests on a hand-made vocabulary, and parity with Hugging Face
 * tokenizers (encode and decode) on the DistilBERT files (fixture from tools/tokenizer_fixtures). */
#include "testlib.h"

#include "base/fs.h"
#include "formats/json.h"
#include "text/tokenizer.h"

#include <stdlib.h>

/* ---- helpers ------------------------------------------------------------------------ */

static void write_text(const char *dir, const char *name, const char *text)
{
    char path[1024];
    pc_error err = {0};
    snprintf(path, sizeof path, "%s/%s", dir, name);
    CHECK_MSG(pc_write_file_atomic(path, text, strlen(text), &err) == PEFTC_OK, "%s", err.msg);
}

/* A fresh directory tmpdir/name. */
static const char *tmp_subdir(const char *name)
{
    static char dir[1024];
    pc_error err = {0};
    snprintf(dir, sizeof dir, "%s/tok_%s", pc_test_tmpdir(), name);
    CHECK_MSG(pc_mkdirs(dir, &err) == PEFTC_OK, "%s", err.msg);
    return dir;
}

/* ids 0..12 of the hand-made vocabulary below */
static const char *tiny_vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nun\n##aff\n##able\na\n##b\n,\ncafe\n##s\n";
enum { PAD, UNK, CLS, SEP, MASK, UN, AFF, ABLE, A, B, COMMA, CAFE, S_ };

static pc_tokenizer *load_tiny(const char *name, const char *config)
{
    const char *dir = tmp_subdir(name);
    write_text(dir, "vocab.txt", tiny_vocab);
    if (config) write_text(dir, "tokenizer_config.json", config);
    pc_tokenizer *t = NULL;
    pc_error err = {0};
    CHECK_MSG(pc_tokenizer_load(dir, &t, &err) == PEFTC_OK, "%s", err.msg);
    return t;
}

/* Encodes text and compares with want[0..n_want). */
static void check_encode(const pc_tokenizer *t, const char *text, bool add_special, int max_length,
                         const int32_t *want, int n_want)
{
    int32_t *ids = NULL;
    int n = -1;
    pc_error err = {0};
    if (pc_tokenizer_encode(t, text, strlen(text), add_special, max_length, &ids, &n, &err) != PEFTC_OK) {
        CHECK_MSG(0, "encode \"%s\": %s", text, err.msg);
        return;
    }
    bool same = n == n_want;
    for (int i = 0; same && i < n; i++) same = ids[i] == want[i];
    CHECK_MSG(same, "encode \"%s\" (max_length %d): got %d ids, first %d; want %d ids", text, max_length, n,
              n > 0 ? ids[0] : -1, n_want);
    free(ids);
}

#define CHECK_ENCODE(t, text, special, maxlen, ...) do { \
    const int32_t want_[] = {__VA_ARGS__}; \
    check_encode(t, text, special, maxlen, want_, (int)(sizeof want_ / sizeof want_[0])); } while (0)

/* ---- hand-made vocabulary ------------------------------------------------------------ */

TEST(tokenizer_wordpiece_greedy_longest_match)
{
    pc_tokenizer *t = load_tiny("greedy", NULL);
    if (!t) return;
    CHECK_ENCODE(t, "unaffable", true, 0, CLS, UN, AFF, ABLE, SEP);
    CHECK_ENCODE(t, "UnAffable, a ab", true, 0, CLS, UN, AFF, ABLE, COMMA, A, A, B, SEP);
    CHECK_ENCODE(t, "Cafés", false, 0, CAFE, S_);                   /* lowercase + accent stripped */
    CHECK_ENCODE(t, "unaffablex", false, 0, UNK);                   /* no piece for "x": one [UNK] */
    CHECK_ENCODE(t, "ax a", false, 0, UNK, A);
    CHECK_ENCODE(t, "x[CLS]y [MASK]", false, 0, UNK, CLS, UNK, MASK);
    CHECK_ENCODE(t, "", true, 0, CLS, SEP);
    pc_tokenizer_free(t);
}

TEST(tokenizer_word_longer_than_100_chars_is_unk)
{
    pc_tokenizer *t = load_tiny("long", NULL);
    if (!t) return;
    char word[160] = "a";
    memset(word + 1, 'b', 99);                                      /* a + 99 b: 100 chars */
    int32_t *ids = NULL;
    int n = 0;
    pc_error err = {0};
    CHECK(pc_tokenizer_encode(t, word, 100, false, 0, &ids, &n, &err) == PEFTC_OK);
    CHECK_INT_EQ(n, 100);                                           /* a ##b ##b ... */
    free(ids);
    memcpy(word + 100, "b", 2);                                     /* 101 chars */
    CHECK_ENCODE(t, word, false, 0, UNK);
    pc_tokenizer_free(t);
}

TEST(tokenizer_truncation_keeps_the_closing_sep)
{
    pc_tokenizer *t = load_tiny("trunc", "{\"model_max_length\": 5}");
    if (!t) return;
    CHECK_INT_EQ(pc_tokenizer_model_max_length(t), 5);
    CHECK_ENCODE(t, "unaffable a", true, 4, CLS, UN, AFF, SEP);
    CHECK_ENCODE(t, "unaffable a", false, 4, UN, AFF, ABLE, A);
    CHECK_ENCODE(t, "unaffable a", true, 2, CLS, SEP);
    CHECK_ENCODE(t, "unaffable a a", true, 0, CLS, UN, AFF, ABLE, SEP);   /* 0: model_max_length */
    int32_t *ids = NULL;
    int n = 0;
    pc_error err = {0};
    CHECK_INT_EQ(pc_tokenizer_encode(t, "a", 1, true, 1, &ids, &n, &err), PEFTC_ERR_INVALID);
    CHECK_CONTAINS(err.msg, "special");
    pc_tokenizer_free(t);
}

TEST(tokenizer_config_options_of_vocab_txt)
{
    pc_tokenizer *t = load_tiny("cased", "{\"do_lower_case\": false, \"unk_token\": {\"content\": \"[UNK]\"}}");
    if (!t) return;
    CHECK_ENCODE(t, "unaffable Unaffable", false, 0, UN, AFF, ABLE, UNK);
    pc_tokenizer_free(t);
    t = load_tiny("accents", "{\"do_lower_case\": true, \"strip_accents\": false}");
    if (!t) return;
    CHECK_ENCODE(t, "CAFE Cafés", false, 0, CAFE, UNK);
    pc_tokenizer_free(t);
}

TEST(tokenizer_special_ids_and_vocab)
{
    pc_tokenizer *t = load_tiny("ids", NULL);
    if (!t) return;
    CHECK_INT_EQ(pc_tokenizer_get_kind(t), PC_TOKENIZER_WORDPIECE);
    CHECK_INT_EQ(pc_tokenizer_vocab_size(t), 13);
    CHECK_INT_EQ(pc_tokenizer_pad_id(t), PAD);
    CHECK_INT_EQ(pc_tokenizer_unk_id(t), UNK);
    CHECK_INT_EQ(pc_tokenizer_cls_id(t), CLS);
    CHECK_INT_EQ(pc_tokenizer_sep_id(t), SEP);
    CHECK_INT_EQ(pc_tokenizer_mask_id(t), MASK);
    CHECK_INT_EQ(pc_tokenizer_model_max_length(t), 512);
    CHECK_STR_EQ(pc_tokenizer_id_to_token(t, AFF), "##aff");
    CHECK(pc_tokenizer_id_to_token(t, 13) == NULL);
    CHECK(pc_tokenizer_id_to_token(t, -1) == NULL);
    CHECK_INT_EQ(pc_tokenizer_token_to_id(t, "##able"), ABLE);
    CHECK_INT_EQ(pc_tokenizer_token_to_id(t, "able"), -1);
    pc_tokenizer_free(t);
}

/* tokenizer.json with a cased BertNormalizer (other options at their defaults), a
 * BertProcessing post-processor and an added token outside the vocabulary. */
TEST(tokenizer_json_bert_processing_and_added_token)
{
    const char *dir = tmp_subdir("bert_processing");
    write_text(dir, "tokenizer.json",
               "{\"added_tokens\": [{\"id\": 13, \"content\": \"<x>\", \"single_word\": false, \"lstrip\": false,"
               " \"rstrip\": false, \"normalized\": false, \"special\": true}],"
               " \"normalizer\": {\"type\": \"BertNormalizer\", \"lowercase\": false},"
               " \"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"},"
               " \"post_processor\": {\"type\": \"BertProcessing\", \"sep\": [\"[SEP]\", 3], \"cls\": [\"[CLS]\", 2]},"
               " \"model\": {\"type\": \"WordPiece\", \"unk_token\": \"[UNK]\", \"vocab\": {\"[PAD]\": 0, \"[UNK]\": 1,"
               " \"[CLS]\": 2, \"[SEP]\": 3, \"[MASK]\": 4, \"un\": 5, \"##aff\": 6, \"##able\": 7, \"a\": 8, \"##b\": 9,"
               " \",\": 10, \"cafe\": 11, \"##s\": 12}}}");
    pc_tokenizer *t = NULL;
    pc_error err = {0};
    CHECK_MSG(pc_tokenizer_load(dir, &t, &err) == PEFTC_OK, "%s", err.msg);
    if (!t) return;
    CHECK_ENCODE(t, "unaffable<x>Unaffable\tcafé", true, 0, CLS, UN, AFF, ABLE, 13, UNK, UNK, SEP);  /* cased */
    CHECK_INT_EQ(pc_tokenizer_vocab_size(t), 14);
    CHECK_STR_EQ(pc_tokenizer_id_to_token(t, 13), "<x>");
    CHECK_INT_EQ(pc_tokenizer_save_wordpiece(t, tmp_subdir("bert_processing_saved"), &err), PEFTC_ERR_UNSUPPORTED);
    CHECK_CONTAINS(err.msg, "added tokens");
    pc_tokenizer_free(t);
}

/* ---- errors --------------------------------------------------------------------------- */

TEST(tokenizer_rejects_invalid_utf8)
{
    pc_tokenizer *t = load_tiny("utf8", NULL);
    if (!t) return;
    static const char *bad[] = {"ab\xC3", "ab\xC0\x80", "ab\xED\xA0\x80", "ab\xF4\x90\x80\x80", "ab\x80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int32_t *ids = NULL;
        int n = 0;
        pc_error err = {0};
        CHECK_INT_EQ(pc_tokenizer_encode(t, bad[i], strlen(bad[i]), true, 0, &ids, &n, &err), PEFTC_ERR_FORMAT);
        CHECK_CONTAINS(err.msg, "invalid UTF-8 at byte 2");
        CHECK(ids == NULL);
    }
    pc_tokenizer_free(t);
}

static void check_load_fails(const char *dir, pc_status want, const char *needle)
{
    pc_tokenizer *t = NULL;
    pc_error err = {0};
    CHECK_INT_EQ(pc_tokenizer_load(dir, &t, &err), want);
    CHECK(t == NULL);
    CHECK_CONTAINS(err.msg, needle);
}

TEST(tokenizer_load_errors_name_the_file)
{
    const char *dir = tmp_subdir("malformed_json");
    write_text(dir, "tokenizer.json", "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0,}}");
    check_load_fails(dir, PEFTC_ERR_FORMAT, "tokenizer.json");

    dir = tmp_subdir("unigram");
    write_text(dir, "tokenizer.json", "{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", -1.0]]}}");
    check_load_fails(dir, PEFTC_ERR_UNSUPPORTED, "model type 'Unigram'");

    dir = tmp_subdir("normalizer");
    write_text(dir, "tokenizer.json", "{\"normalizer\": {\"type\": \"Precompiled\"}, \"pre_tokenizer\": {\"type\": "
               "\"BertPreTokenizer\"}, \"model\": {\"type\": \"WordPiece\", \"vocab\": {\"[UNK]\": 0}}}");
    check_load_fails(dir, PEFTC_ERR_UNSUPPORTED, "Precompiled");

    dir = tmp_subdir("no_unk");
    write_text(dir, "vocab.txt", "[PAD]\n[CLS]\n[SEP]\nhello\n");
    check_load_fails(dir, PEFTC_ERR_FORMAT, "[UNK]");
    check_load_fails(dir, PEFTC_ERR_FORMAT, "vocab.txt");

    dir = tmp_subdir("bad_config");
    write_text(dir, "vocab.txt", tiny_vocab);
    write_text(dir, "tokenizer_config.json", "{\"do_lower_case\": \"yes\"}");
    check_load_fails(dir, PEFTC_ERR_INVALID, "do_lower_case");

    check_load_fails(tmp_subdir("empty"), PEFTC_ERR_IO, "vocab.txt");
}

/* ---- Hugging Face parity -------------------------------------------------------------- */

static cJSON *read_json(const char *path)
{
    cJSON *root = NULL;
    pc_error err = {0};
    CHECK_MSG(pc_json_parse_file(path, &root, &err) == PEFTC_OK, "%s", err.msg);
    return root;
}

static void write_json(const char *dir, const char *name, const cJSON *obj)
{
    char path[1024];
    pc_error err = {0};
    snprintf(path, sizeof path, "%s/%s", dir, name);
    CHECK_MSG(pc_json_write_file_atomic(path, obj, false, &err) == PEFTC_OK, "%s", err.msg);
}

/* tokenizer.json of a fixture variant: the DistilBERT one with the variant's normalizer
 * (when given) and added tokens. */
static pc_tokenizer *load_variant_json(const cJSON *variant, const char *name, const char *tok_dir)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/tokenizer.json", tok_dir);
    cJSON *root = read_json(path);
    if (!root) return NULL;
    const cJSON *norm = cJSON_GetObjectItem(variant, "normalizer");
    if (cJSON_IsObject(norm)) cJSON_ReplaceItemInObject(root, "normalizer", cJSON_Duplicate(norm, 1));
    const cJSON *extra = cJSON_GetObjectItem(variant, "added_tokens");
    cJSON *added = cJSON_GetObjectItem(root, "added_tokens");
    for (const cJSON *a = extra ? extra->child : NULL; a; a = a->next)
        cJSON_AddItemToArray(added, cJSON_Duplicate(a, 1));
    char sub[256];
    snprintf(sub, sizeof sub, "%s_json", name);
    const char *dir = tmp_subdir(sub);
    write_json(dir, "tokenizer.json", root);
    cJSON_Delete(root);
    pc_tokenizer *t = NULL;
    pc_error err = {0};
    CHECK_MSG(pc_tokenizer_load(dir, &t, &err) == PEFTC_OK, "variant %s: %s", name, err.msg);
    return t;
}

/* vocab.txt + the variant's tokenizer_config.json, or NULL when vocab.txt cannot express it. */
static pc_tokenizer *load_variant_txt(const cJSON *variant, const char *name, const char *tok_dir)
{
    const cJSON *config = cJSON_GetObjectItem(variant, "tokenizer_config");
    if (!cJSON_IsObject(config)) return NULL;
    char sub[256], from[1200], to[1200];
    snprintf(sub, sizeof sub, "%s_txt", name);
    const char *dir = tmp_subdir(sub);
    snprintf(from, sizeof from, "%s/vocab.txt", tok_dir);
    snprintf(to, sizeof to, "%s/vocab.txt", dir);
    pc_error err = {0};
    CHECK_MSG(pc_copy_file(from, to, &err) == PEFTC_OK, "%s", err.msg);
    write_json(dir, "tokenizer_config.json", config);
    pc_tokenizer *t = NULL;
    CHECK_MSG(pc_tokenizer_load(dir, &t, &err) == PEFTC_OK, "variant %s: %s", name, err.msg);
    return t;
}

/* The text of a fixture case: "hex" (UTF-8 bytes, for texts holding U+0000) or "text". */
static char *case_text(const cJSON *c, size_t *len)
{
    const cJSON *hex = cJSON_GetObjectItem(c, "hex");
    const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
    size_t n = hex ? strlen(hex->valuestring) / 2 : strlen(text);
    char *buf = malloc(n + 1);
    if (!buf) return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned byte = 0;
        if (hex) sscanf(hex->valuestring + 2 * i, "%2x", &byte);
        buf[i] = hex ? (char)byte : text[i];
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* decode(ids) against the case's "decoded" (special tokens skipped) and "decoded_special". */
static bool decode_matches(const pc_tokenizer *t, const int32_t *ids, int n, const cJSON *c, const char *how,
                           int *reported)
{
    static const char *const keys[2] = {"decoded_special", "decoded"};
    bool same = true;
    for (int skip = 0; skip < 2; skip++) {
        const cJSON *want = cJSON_GetObjectItem(c, keys[skip]);
        if (!want) continue;
        char *text = NULL;
        pc_error err = {0};
        pc_status s = pc_tokenizer_decode(t, ids, n, skip, &text, &err);
        bool ok = s == PEFTC_OK && strcmp(text, want->valuestring) == 0;
        if (!ok && (*reported)++ < 5)
            CHECK_MSG(0, "%s: decode (skip_special %d) of \"%.60s\": got \"%.80s\" want \"%.80s\" %s", how, skip,
                      cJSON_GetObjectItem(c, "text")->valuestring, text ? text : "", want->valuestring,
                      s == PEFTC_OK ? "" : err.msg);
        same &= ok;
        free(text);
    }
    return same;
}

/* Compares one fixture case; returns whether the ids (and decoded texts) agree (reports the
 * first few misses). */
static bool case_matches(const pc_tokenizer *t, const cJSON *c, const char *how, int *reported)
{
    size_t len = 0;
    char *text = case_text(c, &len);
    if (!text) return false;
    const cJSON *want = cJSON_GetObjectItem(c, "ids");
    const cJSON *ml = cJSON_GetObjectItem(c, "max_length");
    bool add_special = !cJSON_IsFalse(cJSON_GetObjectItem(c, "add_special"));
    int max_length = ml ? ml->valueint : 0;
    int32_t *ids = NULL;
    int n = 0;
    pc_error err = {0};
    pc_status s = pc_tokenizer_encode(t, text, len, add_special, max_length, &ids, &n, &err);
    bool same = s == PEFTC_OK && n == cJSON_GetArraySize(want);
    const cJSON *w = want->child;
    for (int i = 0; same && i < n; i++, w = w->next) same = ids[i] == w->valueint;
    if (!same && (*reported)++ < 5) {
        char got[512] = "", exp[512] = "";
        size_t o = 0;
        for (int i = 0; i < n && o < sizeof got - 12; i++)
            o += (size_t)snprintf(got + o, sizeof got - o, " %d", ids[i]);
        o = 0;
        for (w = want->child; w && o < sizeof exp - 12; w = w->next)
            o += (size_t)snprintf(exp + o, sizeof exp - o, " %d", w->valueint);
        CHECK_MSG(0, "%s: \"%.80s\" (max_length %d, add_special %d): %s got [%s ] want [%s ]", how, text,
                  max_length, add_special, s == PEFTC_OK ? "" : err.msg, got, exp);
    }
    if (same) same = decode_matches(t, ids, n, c, how, reported);
    free(ids);
    free(text);
    return same;
}

/* Every case of the fixture against both loading paths of its variant. */
TEST(tokenizer_matches_hugging_face_on_distilbert)
{
    const char *tok_dir = pc_test_shared("tokenizers/distilbert-base-uncased");
    if (!tok_dir) SKIP("../shared/tokenizers/distilbert-base-uncased is absent (the real tokenizer files)");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", tok_dir);
    FILE *f = fopen(pc_test_fixture("tokenizer/distilbert_ids.jsonl"), "rb");
    CHECK_MSG(f != NULL, "cannot open %s", pc_test_fixture("tokenizer/distilbert_ids.jsonl"));
    if (!f) return;
    pc_tokenizer *from_json = NULL, *from_txt = NULL;
    char name[64] = "", line[1 << 16];
    int n_json = 0, n_txt = 0, bad = 0, reported = 0;
    while (fgets(line, sizeof line, f)) {
        cJSON *c = NULL;
        pc_error err = {0};
        CHECK_MSG(pc_json_parse_text(line, strlen(line), "distilbert_ids.jsonl", &c, &err) == PEFTC_OK, "%s", err.msg);
        if (!c) break;
        if (!cJSON_GetObjectItem(c, "text")) {            /* a variant definition */
            pc_tokenizer_free(from_json);
            pc_tokenizer_free(from_txt);
            snprintf(name, sizeof name, "%s", cJSON_GetObjectItem(c, "variant")->valuestring);
            from_json = load_variant_json(c, name, dir);
            from_txt = load_variant_txt(c, name, dir);
        } else {
            if (from_json) { n_json++; bad += !case_matches(from_json, c, "tokenizer.json", &reported); }
            if (from_txt) { n_txt++; bad += !case_matches(from_txt, c, "vocab.txt", &reported); }
        }
        cJSON_Delete(c);
    }
    fclose(f);
    pc_tokenizer_free(from_json);
    pc_tokenizer_free(from_txt);
    CHECK_INT_EQ(bad, 0);
    CHECK(n_json > 700);
    CHECK(n_txt > 500);
}

TEST(tokenizer_distilbert_special_ids)
{
    const char *tok_dir = pc_test_shared("tokenizers/distilbert-base-uncased");
    if (!tok_dir) SKIP("../shared/tokenizers/distilbert-base-uncased is absent (the real tokenizer files)");
    pc_tokenizer *t = NULL;
    pc_error err = {0};
    CHECK_MSG(pc_tokenizer_load(tok_dir, &t, &err) == PEFTC_OK, "%s", err.msg);
    if (!t) return;
    CHECK_INT_EQ(pc_tokenizer_vocab_size(t), 30522);
    CHECK_INT_EQ(pc_tokenizer_pad_id(t), 0);
    CHECK_INT_EQ(pc_tokenizer_unk_id(t), 100);
    CHECK_INT_EQ(pc_tokenizer_cls_id(t), 101);
    CHECK_INT_EQ(pc_tokenizer_sep_id(t), 102);
    CHECK_INT_EQ(pc_tokenizer_mask_id(t), 103);
    CHECK_INT_EQ(pc_tokenizer_model_max_length(t), 512);
    CHECK_STR_EQ(pc_tokenizer_id_to_token(t, 2088), "world");
    pc_tokenizer_free(t);
}

/* Whole file as a malloc'ed string, NULL when unreadable. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    *len = buf ? fread(buf, 1, (size_t)n, f) : 0;
    fclose(f);
    return buf;
}

/* Saving the tokenizer.json tokenizer as vocab.txt gives back DistilBERT's own vocab.txt. */
TEST(tokenizer_save_wordpiece_round_trip)
{
    const char *tok_dir = pc_test_shared("tokenizers/distilbert-base-uncased");
    if (!tok_dir) SKIP("../shared/tokenizers/distilbert-base-uncased is absent (the real tokenizer files)");
    char shared_vocab[1024];
    snprintf(shared_vocab, sizeof shared_vocab, "%s/vocab.txt", tok_dir);
    pc_tokenizer *t = NULL, *back = NULL;
    pc_error err = {0};
    CHECK_MSG(pc_tokenizer_load(tok_dir, &t, &err) == PEFTC_OK, "%s", err.msg);
    if (!t) return;
    const char *dir = tmp_subdir("saved");
    CHECK_MSG(pc_tokenizer_save_wordpiece(t, dir, &err) == PEFTC_OK, "%s", err.msg);
    char saved_vocab[1024];
    snprintf(saved_vocab, sizeof saved_vocab, "%s/vocab.txt", dir);
    size_t n_saved = 0, n_shared = 0;
    char *saved = slurp(saved_vocab, &n_saved), *orig = slurp(shared_vocab, &n_shared);
    CHECK(saved && orig && n_saved == n_shared && memcmp(saved, orig, n_saved) == 0);
    free(saved);
    free(orig);
    CHECK_MSG(pc_tokenizer_load(dir, &back, &err) == PEFTC_OK, "%s", err.msg);
    if (back) {
        CHECK_INT_EQ(pc_tokenizer_vocab_size(back), 30522);
        CHECK_INT_EQ(pc_tokenizer_model_max_length(back), 512);
        CHECK_ENCODE(back, "Café, don't [SEP] 我爱", true, 0, 101, 7668, 1010, 2123, 1005, 1056, 102, 1855, 100,
                     102);
    }
    CHECK_ENCODE(t, "Café, don't [SEP] 我爱", true, 0, 101, 7668, 1010, 2123, 1005, 1056, 102, 1855, 100, 102);
    pc_tokenizer_free(back);
    pc_tokenizer_free(t);
}
