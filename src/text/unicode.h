/* Unicode helpers for the tokenizers: UTF-8 validation, decoding and encoding, and the
 * code-point classes of Hugging Face tokenizers' BertNormalizer and BertPreTokenizer.
 * The classes follow what the Rust library actually does (checked code point by code
 * point against it, see tests/fixtures/tokenizer/bert_chars.txt), not the Python
 * BertTokenizer where the two differ. */
#ifndef PC_TEXT_UNICODE_H
#define PC_TEXT_UNICODE_H

#include "text/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Byte offset of the first invalid UTF-8 sequence in s[0..len) (overlong forms,
 * surrogates and code points above U+10FFFF are invalid), or len when all is valid. */
size_t pc_utf8_invalid_at(const char *s, size_t len);

/* Decodes the code point at s (which must be valid UTF-8); returns its byte length. */
int pc_utf8_decode(const char *s, uint32_t *cp);

/* Byte length (1..4) of the UTF-8 character whose first byte is s[0] (valid UTF-8). */
int pc_utf8_char_len(const char *s);

/* Appends bytes s[0..len) to out with each invalid UTF-8 sequence (a maximal prefix of a
 * valid sequence, or else one byte) replaced by U+FFFD, as Rust's String::from_utf8_lossy. */
pc_status pc_utf8_append_lossy(pc_strbuf *out, const char *s, size_t len, pc_error *err);

/* Writes cp as UTF-8 to out; returns the byte length (1..4). */
int pc_utf8_encode(uint32_t cp, char out[4]);

/* Whitespace for BertNormalizer/BertPreTokenizer: the White_Space property (Rust's
 * char::is_whitespace), which includes \t \n \r, U+0085, U+2028 and U+2029. */
bool pc_uni_is_whitespace(uint32_t cp);

/* Removed by clean_text: NUL, U+FFFD and categories Cc, Cf, Co, except \t \n \r. */
bool pc_uni_is_removed_control(uint32_t cp);

/* Isolated by BertPreTokenizer: ASCII punctuation (33-47, 58-64, 91-96, 123-126) and
 * Unicode P* categories as of the older tables Hugging Face tokenizers uses. */
bool pc_uni_is_punct(uint32_t cp);

/* CJK ideographs that handle_chinese_chars surrounds with spaces. */
bool pc_uni_is_cjk(uint32_t cp);

/* Category Mn (dropped by strip_accents after NFD). */
bool pc_uni_is_nonspacing_mark(uint32_t cp);

/* Regex \w as Rust's regex crate has it (letters, marks, decimal and letter numbers,
 * connector punctuation, the joiners U+200C/U+200D): single_word added tokens. */
bool pc_uni_is_word_char(uint32_t cp);

/* For regex matching: a code point that PCRE2 classes (\s, \p{..} general categories) as
 * Hugging Face tokenizers' Oniguruma classes cp, of the same UTF-8 length, or cp itself.
 * PCRE2 10.42 has Unicode 14 tables, Oniguruma Unicode 16: characters assigned since are
 * unassigned to PCRE2; and PCRE2's \s includes U+180E, a format character since Unicode
 * 6.3. Checked on every code point against Hugging Face (tests/fixtures/tokenizer/
 * regex_classes.txt). */
uint32_t pc_uni_regex_stand_in(uint32_t cp);

/* Full lowercase mapping of one code point (Rust's char::to_lowercase): writes 1 or 2
 * code points to out and returns how many. */
int pc_uni_lower(uint32_t cp, uint32_t out[2]);

/* Appends the canonical decomposition (NFD, with canonical reordering) of cps[0..n) to out. */
pc_status pc_uni_nfd(const uint32_t *cps, size_t n, pc_cpbuf *out, pc_error *err);

#endif
