/* Growable buffers for the tokenizers: bytes, code points and token ids. */
#ifndef PC_TEXT_BUF_H
#define PC_TEXT_BUF_H

#include "base/error.h"

#include <stddef.h>
#include <stdint.h>

typedef struct pc_strbuf { char *v; size_t n, cap; } pc_strbuf;
typedef struct pc_cpbuf { uint32_t *v; size_t n, cap; } pc_cpbuf;
typedef struct pc_idbuf { int32_t *v; size_t n, cap; } pc_idbuf;

pc_status pc_strbuf_append(pc_strbuf *b, const char *s, size_t len, pc_error *err);
pc_status pc_cpbuf_push(pc_cpbuf *b, uint32_t cp, pc_error *err);
pc_status pc_idbuf_push(pc_idbuf *b, int32_t id, pc_error *err);

/* Ensure room for `more` further elements (a strbuf also keeps room for its closing NUL). */
pc_status pc_cpbuf_reserve(pc_cpbuf *b, size_t more, pc_error *err);
pc_status pc_strbuf_reserve(pc_strbuf *b, size_t more, pc_error *err);

#endif
