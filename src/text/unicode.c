#include "text/unicode.h"

#include <utf8proc.h>

size_t pc_utf8_invalid_at(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned c = u[i];
        if (c < 0x80) { i++; continue; }
        int n;
        uint32_t cp, min;
        if (c >= 0xC2 && c <= 0xDF) { n = 2; cp = c & 0x1F; min = 0x80; }
        else if (c >= 0xE0 && c <= 0xEF) { n = 3; cp = c & 0x0F; min = 0x800; }
        else if (c >= 0xF0 && c <= 0xF4) { n = 4; cp = c & 0x07; min = 0x10000; }
        else return i;
        if (len - i < (size_t)n) return i;
        for (int k = 1; k < n; k++) {
            if ((u[i + k] & 0xC0) != 0x80) return i;
            cp = (cp << 6) | (u[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
        i += (size_t)n;
    }
    return len;
}

int pc_utf8_decode(const char *s, uint32_t *cp)
{
    const unsigned char *u = (const unsigned char *)s;
    if (u[0] < 0x80) { *cp = u[0]; return 1; }
    if (u[0] < 0xE0) { *cp = ((uint32_t)(u[0] & 0x1F) << 6) | (u[1] & 0x3F); return 2; }
    if (u[0] < 0xF0) {
        *cp = ((uint32_t)(u[0] & 0x0F) << 12) | ((uint32_t)(u[1] & 0x3F) << 6) | (u[2] & 0x3F);
        return 3;
    }
    *cp = ((uint32_t)(u[0] & 0x07) << 18) | ((uint32_t)(u[1] & 0x3F) << 12) |
          ((uint32_t)(u[2] & 0x3F) << 6) | (u[3] & 0x3F);
    return 4;
}

/* Bytes of the longest prefix of s[0..len) that starts a valid UTF-8 sequence, when that
 * sequence is incomplete or broken (1 for a byte that starts none); 0 when s starts a
 * complete valid sequence. */
static size_t invalid_prefix(const unsigned char *s, size_t len)
{
    unsigned c = s[0];
    size_t n;
    unsigned lo = 0x80, hi = 0xBF;            /* the range of the second byte */
    if (c < 0x80) return 0;
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c >= 0xE0 && c <= 0xEF) { n = 3; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
    else if (c >= 0xF0 && c <= 0xF4) { n = 4; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
    else return 1;
    for (size_t k = 1; k < n; k++) {
        if (k >= len) return k;
        unsigned b = s[k];
        if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) return k;
    }
    return 0;
}

pc_status pc_utf8_append_lossy(pc_strbuf *out, const char *s, size_t len, pc_error *err)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t done = 0, i = 0;
    while (i < len) {
        size_t bad = invalid_prefix(u + i, len - i);
        if (bad == 0) { i += (size_t)pc_utf8_char_len(s + i); continue; }
        PC_TRY(pc_strbuf_append(out, s + done, i - done, err));
        PC_TRY(pc_strbuf_append(out, "\xEF\xBF\xBD", 3, err));     /* U+FFFD */
        i += bad;
        done = i;
    }
    return pc_strbuf_append(out, s + done, len - done, err);
}

int pc_utf8_char_len(const char *s)
{
    unsigned char c = (unsigned char)s[0];
    return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

int pc_utf8_encode(uint32_t cp, char out[4])
{
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static utf8proc_category_t category(uint32_t cp)
{
    return utf8proc_category((utf8proc_int32_t)cp);
}

/* Hugging Face tokenizers takes categories (Cc/Cf/Co, P*, Mn) from the unicode_categories
 * crate, whose tables are Unicode 8.0, but lowercasing from Rust's std (Unicode 16.0).
 * utf8proc (2.8 has Unicode 15.0) lies in between, so these tables list the code points
 * where its answer differs from tokenizers'. tests/test_tokenizer_unicode.c checks every
 * code point and names the ones to add when another utf8proc version moves the line. */
typedef struct { uint32_t first, last; } cp_range;

static bool in_ranges(uint32_t cp, const cp_range *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (cp >= r[i].first && cp <= r[i].last) return true;
    return false;
}

/* Format characters assigned after Unicode 8.0: tokenizers keeps them. */
static const cp_range newer_format[] = {
    {0x0890, 0x0891}, {0x08E2, 0x08E2}, {0x110CD, 0x110CD}, {0x13430, 0x1343F},
};

/* Punctuation assigned after Unicode 8.0: tokenizers does not split on it. */
static const cp_range newer_punct[] = {
    {0x061D, 0x061D}, {0x09FD, 0x09FD}, {0x0A76, 0x0A76}, {0x0C77, 0x0C77}, {0x0C84, 0x0C84},
    {0x1B7D, 0x1B7E}, {0x2E43, 0x2E4F}, {0x2E52, 0x2E5D}, {0x10EAD, 0x10EAD}, {0x10F55, 0x10F59},
    {0x10F86, 0x10F89}, {0x1144B, 0x1144F}, {0x1145A, 0x1145B}, {0x1145D, 0x1145D}, {0x11660, 0x1166C},
    {0x116B9, 0x116B9}, {0x1183B, 0x1183B}, {0x11944, 0x11946}, {0x119E2, 0x119E2}, {0x11A3F, 0x11A46},
    {0x11A9A, 0x11A9C}, {0x11A9E, 0x11AA2}, {0x11B00, 0x11B09}, {0x11C41, 0x11C45}, {0x11C70, 0x11C71},
    {0x11EF7, 0x11EF8}, {0x11F43, 0x11F4F}, {0x11FFF, 0x11FFF}, {0x12FF1, 0x12FF2}, {0x16E97, 0x16E9A},
    {0x16FE2, 0x16FE2}, {0x1E95E, 0x1E95F},
};

/* Punctuation (Po) in Unicode 8.0 that later versions moved to another category. */
static const cp_range former_punct[] = { {0x166D, 0x166D}, {0x111C9, 0x111C9} };

/* Nonspacing marks assigned after Unicode 8.0: strip_accents keeps them. */
static const cp_range newer_mark[] = {
    {0x07FD, 0x07FD}, {0x0898, 0x089F}, {0x08CA, 0x08E1}, {0x09FE, 0x09FE}, {0x0AFA, 0x0AFF}, {0x0B55, 0x0B55},
    {0x0C04, 0x0C04}, {0x0C3C, 0x0C3C}, {0x0D00, 0x0D00}, {0x0D3B, 0x0D3C}, {0x0D81, 0x0D81}, {0x0EBA, 0x0EBA},
    {0x0ECE, 0x0ECE}, {0x180F, 0x180F}, {0x1885, 0x1886}, {0x1ABF, 0x1ACE}, {0x1DF6, 0x1DFB}, {0xA82C, 0xA82C},
    {0xA8C5, 0xA8C5}, {0xA8FF, 0xA8FF}, {0xA9BD, 0xA9BD}, {0x10D24, 0x10D27}, {0x10EAB, 0x10EAC},
    {0x10EFD, 0x10EFF}, {0x10F46, 0x10F50}, {0x10F82, 0x10F85}, {0x11070, 0x11070}, {0x11073, 0x11074},
    {0x110C2, 0x110C2}, {0x111C9, 0x111C9}, {0x111CF, 0x111CF}, {0x1123E, 0x1123E}, {0x11241, 0x11241},
    {0x1133B, 0x1133B}, {0x11438, 0x1143F}, {0x11442, 0x11444}, {0x11446, 0x11446}, {0x1145E, 0x1145E},
    {0x1182F, 0x11837}, {0x11839, 0x1183A}, {0x1193B, 0x1193C}, {0x1193E, 0x1193E}, {0x11943, 0x11943},
    {0x119D4, 0x119D7}, {0x119DA, 0x119DB}, {0x119E0, 0x119E0}, {0x11A01, 0x11A0A}, {0x11A33, 0x11A38},
    {0x11A3B, 0x11A3E}, {0x11A47, 0x11A47}, {0x11A51, 0x11A56}, {0x11A59, 0x11A5B}, {0x11A8A, 0x11A96},
    {0x11A98, 0x11A99}, {0x11C30, 0x11C36}, {0x11C38, 0x11C3D}, {0x11C3F, 0x11C3F}, {0x11C92, 0x11CA7},
    {0x11CAA, 0x11CB0}, {0x11CB2, 0x11CB3}, {0x11CB5, 0x11CB6}, {0x11D31, 0x11D36}, {0x11D3A, 0x11D3A},
    {0x11D3C, 0x11D3D}, {0x11D3F, 0x11D45}, {0x11D47, 0x11D47}, {0x11D90, 0x11D91}, {0x11D95, 0x11D95},
    {0x11D97, 0x11D97}, {0x11EF3, 0x11EF4}, {0x11F00, 0x11F01}, {0x11F36, 0x11F3A}, {0x11F40, 0x11F40},
    {0x11F42, 0x11F42}, {0x13440, 0x13440}, {0x13447, 0x13455}, {0x16F4F, 0x16F4F}, {0x16FE4, 0x16FE4},
    {0x1CF00, 0x1CF2D}, {0x1CF30, 0x1CF46}, {0x1E000, 0x1E006}, {0x1E008, 0x1E018}, {0x1E01B, 0x1E021},
    {0x1E023, 0x1E024}, {0x1E026, 0x1E02A}, {0x1E08F, 0x1E08F}, {0x1E130, 0x1E136}, {0x1E2AE, 0x1E2AE},
    {0x1E2EC, 0x1E2EF}, {0x1E4EC, 0x1E4EF}, {0x1E944, 0x1E94A},
};

/* A nonspacing mark (Mn) in Unicode 8.0 that later versions made spacing (Mc). */
static const cp_range former_mark[] = { {0x1734, 0x1734} };

/* Lowercase mappings added in Unicode 16.0 (utf8proc 2.8 has 15.0). */
static const struct { uint32_t first, last, lower; } newer_lower[] = {
    {0x1C89, 0x1C89, 0x1C8A}, {0xA7CB, 0xA7CB, 0x0264}, {0xA7CC, 0xA7CC, 0xA7CD}, {0xA7CE, 0xA7CE, 0xA7CF},
    {0xA7D2, 0xA7D2, 0xA7D3}, {0xA7D4, 0xA7D4, 0xA7D5}, {0xA7DA, 0xA7DA, 0xA7DB}, {0xA7DC, 0xA7DC, 0x019B},
    {0x10D50, 0x10D65, 0x10D70}, {0x16EA0, 0x16EB8, 0x16EBB},
};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* Below U+0300 no code point is a mark, has a combining class, or (below U+00C0) a
 * canonical decomposition: the fast paths for the common Latin text. */
enum { FIRST_MARK = 0x300, FIRST_DECOMPOSABLE = 0xC0 };

static int combining_class(uint32_t cp)
{
    return cp < FIRST_MARK ? 0 : utf8proc_get_property((utf8proc_int32_t)cp)->combining_class;
}

bool pc_uni_is_whitespace(uint32_t cp)
{
    switch (cp) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20: case 0x85: case 0xA0:
    case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
        return true;
    default:
        return cp >= 0x2000 && cp <= 0x200A;
    }
}

bool pc_uni_is_removed_control(uint32_t cp)
{
    if (cp == 0 || cp == 0xFFFD) return true;
    if (cp == '\t' || cp == '\n' || cp == '\r') return false;
    if (cp < 0x80) return cp < 0x20 || cp == 0x7F;
    utf8proc_category_t c = category(cp);
    if (c == UTF8PROC_CATEGORY_CF) return !in_ranges(cp, newer_format, N_OF(newer_format));
    return c == UTF8PROC_CATEGORY_CC || c == UTF8PROC_CATEGORY_CO;
}

bool pc_uni_is_punct(uint32_t cp)
{
    if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126))
        return true;
    if (cp < 128) return false;
    utf8proc_category_t c = category(cp);
    if (c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_PO) return !in_ranges(cp, newer_punct, N_OF(newer_punct));
    return in_ranges(cp, former_punct, N_OF(former_punct));
}

/* The "Chinese character" ranges of BERT's BasicTokenizer as Hugging Face tokenizers has them. */
bool pc_uni_is_cjk(uint32_t cp)
{
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
           (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
           (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

bool pc_uni_is_nonspacing_mark(uint32_t cp)
{
    if (cp < FIRST_MARK) return false;
    if (category(cp) == UTF8PROC_CATEGORY_MN) return !in_ranges(cp, newer_mark, N_OF(newer_mark));
    return in_ranges(cp, former_mark, N_OF(former_mark));
}

bool pc_uni_is_word_char(uint32_t cp)
{
    if (cp == 0x200C || cp == 0x200D) return true;
    utf8proc_category_t c = category(cp);
    return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_NL) || c == UTF8PROC_CATEGORY_PC;
}

int pc_uni_lower(uint32_t cp, uint32_t out[2])
{
    /* The only unconditional multi-code-point lowercase mapping (SpecialCasing.txt). */
    if (cp < 0x80) { out[0] = cp >= 'A' && cp <= 'Z' ? cp + 32 : cp; return 1; }
    if (cp == 0x130) { out[0] = 'i'; out[1] = 0x307; return 2; }
    for (size_t i = 0; i < N_OF(newer_lower); i++)
        if (cp >= newer_lower[i].first && cp <= newer_lower[i].last) {
            out[0] = newer_lower[i].lower + (cp - newer_lower[i].first);
            return 1;
        }
    out[0] = (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp);
    return 1;
}

pc_status pc_uni_nfd(const uint32_t *cps, size_t n, pc_cpbuf *out, pc_error *err)
{
    enum { MAX_DECOMPOSITION = 4 };  /* the longest canonical decomposition, e.g. U+1F82 */
    size_t first = out->n;
    for (size_t i = 0; i < n; i++) {
        PC_TRY(pc_cpbuf_reserve(out, MAX_DECOMPOSITION, err));
        utf8proc_int32_t *dst = (utf8proc_int32_t *)out->v + out->n;
        utf8proc_ssize_t k = 0;
        /* tokenizers' NFD tables leave U+11938 DIVES AKURU VOWEL SIGN O whole. */
        if (cps[i] >= FIRST_DECOMPOSABLE && cps[i] != 0x11938) {
            int last = 0;
            k = utf8proc_decompose_char((utf8proc_int32_t)cps[i], dst, MAX_DECOMPOSITION, UTF8PROC_DECOMPOSE, &last);
        }
        if (k <= 0 || k > MAX_DECOMPOSITION) { *dst = (utf8proc_int32_t)cps[i]; k = 1; }  /* no decomposition */
        out->n += (size_t)k;
    }
    uint32_t *buf = out->v;
    size_t len = out->n;
    /* Canonical ordering: a stable sort by combining class inside each run of non-starters. */
    for (size_t i = first + 1; i < len; i++) {
        uint32_t c = buf[i];
        int ccc = combining_class(c);
        if (ccc == 0) continue;
        size_t j = i;
        while (j > first) {
            int prev = combining_class(buf[j - 1]);
            if (prev <= ccc) break;
            buf[j] = buf[j - 1];
            j--;
        }
        buf[j] = c;
    }
    return PEFTC_OK;
}

/* ---- regex stand-ins --------------------------------------------------------------- */

/* Classes of the characters PCRE2 does not know yet, and a stand-in of each class that it
 * knows, for a 3-byte and a 4-byte UTF-8 character. */
enum { LU, LL, LM, LO, ND, NO, P, S, M, N_CLASSES };
static const uint32_t stand_ins[N_CLASSES][2] = {
    [LU] = {0x1E00, 0x10400}, [LL] = {0x1E01, 0x10428}, [LM] = {0x3005, 0x16F93}, [LO] = {0xA000, 0x10000},
    [ND] = {0x0966, 0x104A0}, [NO] = {0x2070, 0x10107}, [P] = {0x3001, 0x10100},  [S] = {0x2600, 0x1F300},
    [M] = {0x0900, 0x101FD},
};

/* Assigned in Unicode 15.0-16.0 (as Hugging Face tokenizers' regexes class them), sorted. */
static const struct { uint32_t first, last; unsigned char cls; } new_chars[] = {
    {0x897, 0x897, M}, {0xCF3, 0xCF3, M}, {0xECE, 0xECE, M}, {0x1B4E, 0x1B4F, P}, {0x1B7F, 0x1B7F, P},
    {0x1C89, 0x1C89, LU}, {0x1C8A, 0x1C8A, LL}, {0x2427, 0x2429, S}, {0x2FFC, 0x2FFF, S}, {0x31E4, 0x31E5, S},
    {0x31EF, 0x31EF, S}, {0xA7CB, 0xA7CC, LU}, {0xA7CD, 0xA7CD, LL}, {0xA7DA, 0xA7DA, LU}, {0xA7DB, 0xA7DB, LL},
    {0xA7DC, 0xA7DC, LU}, {0x105C0, 0x105F3, LO}, {0x10D40, 0x10D49, ND}, {0x10D4A, 0x10D4D, LO},
    {0x10D4E, 0x10D4E, LM}, {0x10D4F, 0x10D4F, LO}, {0x10D50, 0x10D65, LU}, {0x10D69, 0x10D6D, M},
    {0x10D6E, 0x10D6E, P}, {0x10D6F, 0x10D6F, LM}, {0x10D70, 0x10D85, LL}, {0x10D8E, 0x10D8F, S},
    {0x10EC2, 0x10EC4, LO}, {0x10EFC, 0x10EFF, M}, {0x1123F, 0x11240, LO}, {0x11241, 0x11241, M},
    {0x11380, 0x11389, LO}, {0x1138B, 0x1138B, LO}, {0x1138E, 0x1138E, LO}, {0x11390, 0x113B5, LO},
    {0x113B7, 0x113B7, LO}, {0x113B8, 0x113C0, M}, {0x113C2, 0x113C2, M}, {0x113C5, 0x113C5, M},
    {0x113C7, 0x113CA, M}, {0x113CC, 0x113D0, M}, {0x113D1, 0x113D1, LO}, {0x113D2, 0x113D2, M},
    {0x113D3, 0x113D3, LO}, {0x113D4, 0x113D5, P}, {0x113D7, 0x113D8, P}, {0x113E1, 0x113E2, M},
    {0x116D0, 0x116E3, ND}, {0x11B00, 0x11B09, P}, {0x11BC0, 0x11BE0, LO}, {0x11BE1, 0x11BE1, P},
    {0x11BF0, 0x11BF9, ND}, {0x11F00, 0x11F01, M}, {0x11F02, 0x11F02, LO}, {0x11F03, 0x11F03, M},
    {0x11F04, 0x11F10, LO}, {0x11F12, 0x11F33, LO}, {0x11F34, 0x11F3A, M}, {0x11F3E, 0x11F42, M},
    {0x11F43, 0x11F4F, P}, {0x11F50, 0x11F59, ND}, {0x11F5A, 0x11F5A, M}, {0x1342F, 0x1342F, LO},
    {0x13440, 0x13440, M}, {0x13441, 0x13446, LO}, {0x13447, 0x13455, M}, {0x13460, 0x143FA, LO},
    {0x16100, 0x1611D, LO}, {0x1611E, 0x1612F, M}, {0x16130, 0x16139, ND}, {0x16D40, 0x16D42, LM},
    {0x16D43, 0x16D6A, LO}, {0x16D6B, 0x16D6C, LM}, {0x16D6D, 0x16D6F, P}, {0x16D70, 0x16D79, ND},
    {0x18CFF, 0x18CFF, LO}, {0x1B132, 0x1B132, LO}, {0x1B155, 0x1B155, LO}, {0x1CC00, 0x1CCEF, S},
    {0x1CCF0, 0x1CCF9, ND}, {0x1CD00, 0x1CEB3, S}, {0x1D2C0, 0x1D2D3, NO}, {0x1DF25, 0x1DF2A, LL},
    {0x1E030, 0x1E06D, LM}, {0x1E08F, 0x1E08F, M}, {0x1E4D0, 0x1E4EA, LO}, {0x1E4EB, 0x1E4EB, LM},
    {0x1E4EC, 0x1E4EF, M}, {0x1E4F0, 0x1E4F9, ND}, {0x1E5D0, 0x1E5ED, LO}, {0x1E5EE, 0x1E5EF, M},
    {0x1E5F0, 0x1E5F0, LO}, {0x1E5F1, 0x1E5FA, ND}, {0x1E5FF, 0x1E5FF, P}, {0x1F6DC, 0x1F6DC, S},
    {0x1F774, 0x1F776, S}, {0x1F77B, 0x1F77F, S}, {0x1F7D9, 0x1F7D9, S}, {0x1F8B2, 0x1F8BB, S},
    {0x1F8C0, 0x1F8C1, S}, {0x1FA75, 0x1FA77, S}, {0x1FA87, 0x1FA89, S}, {0x1FA8F, 0x1FA8F, S},
    {0x1FAAD, 0x1FAAF, S}, {0x1FABB, 0x1FABF, S}, {0x1FAC6, 0x1FAC6, S}, {0x1FACE, 0x1FACF, S},
    {0x1FADA, 0x1FADC, S}, {0x1FADF, 0x1FADF, S}, {0x1FAE8, 0x1FAE9, S}, {0x1FAF7, 0x1FAF8, S},
    {0x1FBCB, 0x1FBEF, S}, {0x2B739, 0x2B739, LO}, {0x2EBF0, 0x2EE5D, LO}, {0x31350, 0x323AF, LO},
};

uint32_t pc_uni_regex_stand_in(uint32_t cp)
{
    if (cp == 0x180E) return 0x200B;                 /* MONGOLIAN VOWEL SEPARATOR: Cf, not \s */
    if (cp < new_chars[0].first) return cp;
    size_t lo = 0, hi = sizeof new_chars / sizeof new_chars[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp > new_chars[mid].last) lo = mid + 1;
        else if (cp < new_chars[mid].first) hi = mid;
        else return stand_ins[new_chars[mid].cls][cp >= 0x10000];
    }
    return cp;
}
