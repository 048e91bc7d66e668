/* GPT-2's byte-level alphabet: each of the 256 byte values stands for one printable
 * character (ByteLevel pre-tokenizer and decoder). Printable Latin-1 bytes map to
 * themselves; the others (controls, space, DEL..NBSP, soft hyphen) to U+0100 onwards. */
#ifndef PC_TEXT_BYTELEVEL_H
#define PC_TEXT_BYTELEVEL_H

#include "text/buf.h"

#include <stdint.h>

/* Code point standing for byte b. */
uint32_t pc_byte_level_char(unsigned char b);

/* Byte that code point cp stands for, or -1 when cp is not in the alphabet. */
int pc_byte_level_byte(uint32_t cp);

/* Appends the characters of bytes s[0..len) to out, as UTF-8. */
pc_status pc_byte_level_encode(const char *s, size_t len, pc_strbuf *out, pc_error *err);

#endif
