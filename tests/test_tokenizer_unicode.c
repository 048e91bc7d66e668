/* UTF-8 handling, the BERT code-point classes and the regex classes of tokenizer.json
 * patterns, the latter two checked on every code point against Hugging Face tokenizers
 * (tests/fixtures/tokenizer/bert_chars.txt, regex_classes.txt). */
#include "testlib.h"

#include "text/bert.h"
#include "text/pattern.h"
#include "text/unicode.h"

#include <stdlib.h>

TEST(tokenizer_utf8_validation)
{
    static const struct { const char *s; size_t len, bad_at; } cases[] = {
        {"plain ascii", 11, 11},
        {"caf\xC3\xA9 \xE6\x88\x91 \xF0\x9F\x98\x80", 14, 14},   /* 2-, 3- and 4-byte forms */
        {"a\0b", 3, 3},                                           /* NUL is valid UTF-8 */
        {"ab\xC3", 3, 2},                                         /* truncated */
        {"ab\xC0\xAF", 4, 2},                                     /* overlong '/' */
        {"ab\xE0\x80\xAF", 5, 2},                                 /* overlong, 3 bytes */
        {"ab\xED\xA0\x80", 5, 2},                                 /* surrogate U+D800 */
        {"ab\xF4\x90\x80\x80", 6, 2},                             /* U+110000 */
        {"ab\xE6\x88z", 5, 2},                                    /* bad continuation */
        {"\xFF", 1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK_MSG(pc_utf8_invalid_at(cases[i].s, cases[i].len) == cases[i].bad_at, "case %zu: invalid at %zu, want %zu",
                  i, pc_utf8_invalid_at(cases[i].s, cases[i].len), cases[i].bad_at);
}

TEST(tokenizer_utf8_round_trip)
{
    static const uint32_t cps[] = {0, 0x41, 0x7F, 0x80, 0x7FF, 0x800, 0xFFFD, 0x10000, 0x1F600, 0x10FFFF};
    static const int lens[] = {1, 1, 1, 2, 2, 3, 3, 4, 4, 4};
    for (size_t i = 0; i < sizeof cps / sizeof cps[0]; i++) {
        char buf[4];
        uint32_t back = 0;
        int n = pc_utf8_encode(cps[i], buf);
        CHECK_INT_EQ(n, lens[i]);
        CHECK_INT_EQ(pc_utf8_invalid_at(buf, (size_t)n), n);
        CHECK_INT_EQ(pc_utf8_decode(buf, &back), n);
        CHECK_INT_EQ(back, cps[i]);
    }
}

/* ---- every code point against Hugging Face ------------------------------------------- */

enum { N_CP = 0x110000, BLOCK = 4096, N_BLOCKS = N_CP / BLOCK };

typedef struct char_fixture {
    unsigned char *cls;          /* per code point: bit 1 R, 2 W, 4 P, 8 C */
    uint32_t lower[N_BLOCKS], strip[N_BLOCKS];
} char_fixture;

static int class_bit(char c)
{
    switch (c) {
    case 'R': return 1;
    case 'W': return 2;
    case 'P': return 4;
    case 'C': return 8;
    }
    return 0;
}

static bool read_char_fixture(char_fixture *fx)
{
    FILE *f = fopen(pc_test_fixture("tokenizer/bert_chars.txt"), "r");
    CHECK_MSG(f != NULL, "cannot open %s", pc_test_fixture("tokenizer/bert_chars.txt"));
    if (!f) return false;
    fx->cls = calloc(N_CP, 1);
    char line[256];
    int n_blocks = 0;
    while (fx->cls && fgets(line, sizeof line, f)) {
        unsigned a, b;
        char kind;
        if (line[0] == '#') continue;
        if (sscanf(line, "%c %x %x", &kind, &a, &b) != 3) { CHECK_MSG(0, "bad line: %s", line); break; }
        if (kind == 'L' || kind == 'S') {
            if (a < N_BLOCKS) (kind == 'L' ? fx->lower : fx->strip)[a] = b;
            n_blocks++;
            continue;
        }
        for (unsigned cp = a; cp <= b && cp < N_CP; cp++) fx->cls[cp] |= (unsigned char)class_bit(kind);
    }
    fclose(f);
    CHECK_INT_EQ(n_blocks, 2 * N_BLOCKS);
    return fx->cls != NULL && n_blocks == 2 * N_BLOCKS;
}

/* FNV-1a over the little-endian bytes of one 32-bit word. */
static uint32_t fnv_word(uint32_t h, uint32_t w)
{
    for (int k = 0; k < 4; k++) h = (h ^ ((w >> (8 * k)) & 0xFF)) * 16777619u;
    return h;
}

/* Feeds "cp, image..., 0xffffffff" when the normalization of cp is not cp itself. */
static uint32_t digest_image(uint32_t h, uint32_t cp, const char *c, size_t clen, const pc_strbuf *img)
{
    if (img->n == clen && memcmp(img->v, c, clen) == 0) return h;
    h = fnv_word(h, cp);
    for (size_t i = 0; i < img->n;) {
        uint32_t x;
        i += (size_t)pc_utf8_decode(img->v + i, &x);
        h = fnv_word(h, x);
    }
    return fnv_word(h, 0xFFFFFFFFu);
}

/* The class bits the C code gives cp, through the real normalizer and pre-tokenizer. */
static int classes_of(uint32_t cp, const char *c, size_t clen, pc_strbuf *out, pc_cpbuf *s1, pc_cpbuf *s2)
{
    static const pc_bert_normalizer clean = {true, false, false, false}, chinese = {false, true, false, false};
    int bits = 0;
    out->n = 0;
    pc_bert_normalize(&clean, c, clen, out, s1, s2, NULL);
    if (out->n == 0) bits |= 1;
    else if (out->n == 1 && out->v[0] == ' ' && cp != ' ') bits |= 2;
    out->n = 0;
    pc_bert_normalize(&chinese, c, clen, out, s1, s2, NULL);
    if (out->n == clen + 2 && out->v[0] == ' ' && memcmp(out->v + 1, c, clen) == 0) bits |= 8;
    char text[6] = "x";                        /* "x" c "x": punctuation stands alone */
    memcpy(text + 1, c, clen);
    text[clen + 1] = 'x';
    size_t pos = 0, start, end, n_chars, words = 0, middle_alone = 0;
    while (pc_bert_next_word(text, clen + 2, &pos, &start, &end, &n_chars)) {
        words++;
        middle_alone |= start == 1 && end == clen + 1;
    }
    if (words == 3 && middle_alone) bits |= 4;
    return bits;
}

TEST(tokenizer_bert_classes_match_hugging_face_on_every_code_point)
{
    static char_fixture fx;
    if (!read_char_fixture(&fx)) { free(fx.cls); return; }
    static const pc_bert_normalizer lower = {false, false, false, true}, strip = {false, false, true, false};
    pc_strbuf out = {0};
    pc_cpbuf s1 = {0}, s2 = {0};
    int bad_classes = 0, bad_lower = 0, bad_strip = 0;
    for (uint32_t block = 0; block < N_BLOCKS; block++) {
        uint32_t hl = 2166136261u, hs = 2166136261u;
        for (uint32_t cp = block * BLOCK; cp < (block + 1) * BLOCK; cp++) {
            if (cp >= 0xD800 && cp <= 0xDFFF) continue;
            char c[4];
            size_t clen = (size_t)pc_utf8_encode(cp, c);
            int bits = classes_of(cp, c, clen, &out, &s1, &s2);
            if (bits != fx.cls[cp] && bad_classes++ < 10)
                CHECK_MSG(0, "U+%04X: classes %d, Hugging Face %d (1 removed, 2 space, 4 punct, 8 CJK)", cp, bits,
                          fx.cls[cp]);
            out.n = 0;
            pc_bert_normalize(&lower, c, clen, &out, &s1, &s2, NULL);
            hl = digest_image(hl, cp, c, clen, &out);
            out.n = 0;
            pc_bert_normalize(&strip, c, clen, &out, &s1, &s2, NULL);
            hs = digest_image(hs, cp, c, clen, &out);
        }
        uint32_t first = block * BLOCK, last = first + BLOCK - 1;
        if (hl != fx.lower[block] && bad_lower++ < 10)
            CHECK_MSG(0, "lowercase differs from Hugging Face in U+%04X..U+%04X", first, last);
        if (hs != fx.strip[block] && bad_strip++ < 10)
            CHECK_MSG(0, "strip_accents differs from Hugging Face in U+%04X..U+%04X", first, last);
    }
    free(out.v);
    free(s1.v);
    free(s2.v);
    free(fx.cls);
}

/* ---- regex classes on every code point ------------------------------------------------ */

/* FNV-1a over the code points as little-endian 32-bit words (the fixture's digest). */
static uint32_t digest_cps(uint32_t h, uint32_t cp)
{
    for (int k = 0; k < 4; k++) h = (h ^ ((cp >> (8 * k)) & 0xFF)) * 16777619u;
    return h;
}

/* Members of a regex class among the code points of one 64K block, through pc_pattern (and
 * so its stand-ins), as count and digest. */
static void class_members(const pc_pattern *p, uint32_t block, pc_strbuf *text, pc_match_work *mw, pc_spanbuf *hits,
                          long *count, uint32_t *digest)
{
    pc_error err = {0};
    text->n = 0;
    for (uint32_t cp = block << 16; cp < (block + 1) << 16; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        char c[4];
        pc_strbuf_append(text, c, (size_t)pc_utf8_encode(cp, c), &err);
    }
    hits->n = 0;
    CHECK_MSG(pc_pattern_find_all(p, text->v, text->n, mw, hits, &err) == PEFTC_OK, "%s", err.msg);
    *count = (long)hits->n;
    *digest = 2166136261u;
    for (size_t i = 0; i < hits->n; i++) {
        uint32_t cp;
        pc_utf8_decode(text->v + hits->v[i].start, &cp);
        *digest = digest_cps(*digest, cp);
    }
}

TEST(tokenizer_regex_classes_match_hugging_face_on_every_code_point)
{
    const char *path = pc_test_fixture("tokenizer/regex_classes.txt");
    FILE *f = fopen(path, "rb");
    CHECK_MSG(f != NULL, "cannot open %s", path);
    if (!f) return;
    char line[256], cls[64] = "";
    pc_pattern p = {0};
    pc_match_work mw = {0};
    pc_strbuf text = {0};
    pc_spanbuf hits = {0};
    int checked = 0, bad = 0;
    while (fgets(line, sizeof line, f)) {
        char name[64];
        unsigned block, want_digest;
        long want_count, count;
        uint32_t digest;
        if (line[0] == '#') continue;
        CHECK_MSG(sscanf(line, "%63s %x %ld %x", name, &block, &want_count, &want_digest) == 4, "bad line %s", line);
        if (strcmp(name, cls) != 0) {
            pc_error err = {0};
            pc_pattern_free(&p);
            snprintf(cls, sizeof cls, "%s", name);
            CHECK_MSG(pc_pattern_regex(&p, cls, "regex_classes.txt", &err) == PEFTC_OK, "%s", err.msg);
        }
        class_members(&p, block, &text, &mw, &hits, &count, &digest);
        if ((count != want_count || digest != want_digest) && bad++ < 10)
            CHECK_MSG(0, "%s in U+%04X..U+%04X: %ld members, Hugging Face %ld (or they differ)", cls, block << 16,
                      ((block + 1) << 16) - 1, count, want_count);
        checked++;
    }
    fclose(f);
    CHECK_INT_EQ(checked, 13 * 17);
    pc_pattern_free(&p);
    pc_match_work_free(&mw);
    free(text.v);
    free(hits.v);
}
