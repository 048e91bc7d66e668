#include "text/bytelevel.h"

#include "text/unicode.h"

/* The bytes that stand for themselves: '!'..'~', U+00A1..U+00AC, U+00AE..U+00FF. */
static int is_printable(unsigned b)
{
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
}

/* The other 68 bytes in increasing order become U+0100 + their rank: 0..32, 127..160, 173. */
uint32_t pc_byte_level_char(unsigned char b)
{
    if (is_printable(b)) return b;
    if (b <= 32) return 256u + b;
    if (b >= 127 && b <= 160) return 256u + 33 + (b - 127u);
    return 256u + 67;                                          /* 173 */
}

int pc_byte_level_byte(uint32_t cp)
{
    if (cp < 256) return is_printable(cp) ? (int)cp : -1;
    if (cp < 256 + 33) return (int)(cp - 256);
    if (cp < 256 + 67) return (int)(cp - 256 - 33 + 127);
    return cp == 256 + 67 ? 173 : -1;
}

pc_status pc_byte_level_encode(const char *s, size_t len, pc_strbuf *out, pc_error *err)
{
    PC_TRY(pc_strbuf_reserve(out, 2 * len, err));              /* every character takes 1 or 2 bytes */
    for (size_t i = 0; i < len; i++) {
        char u[4];
        int n = pc_utf8_encode(pc_byte_level_char((unsigned char)s[i]), u);
        PC_TRY(pc_strbuf_append(out, u, (size_t)n, err));
    }
    return PEFTC_OK;
}
