#include "base/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

pc_status pc_fail(pc_error *err, pc_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

pc_status pc_error_prefix(pc_error *err, const char *fmt, ...)
{
    if (!err) return PEFTC_ERR_INVALID;
    char joined[2 * sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(joined, sizeof err->msg, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof err->msg) n = (int)sizeof err->msg - 1;
    snprintf(joined + n, sizeof joined - (size_t)n, ": %s", err->msg);
    snprintf(err->msg, sizeof err->msg, "%.*s", (int)sizeof err->msg - 1, joined);
    return err->code;
}

void pc_error_clear(pc_error *err)
{
    if (err) { err->code = PEFTC_OK; err->msg[0] = '\0'; }
}

const char *peftc_status_name(peftc_status s)
{
    switch (s) {
    case PEFTC_OK: return "ok";
    case PEFTC_ERR_IO: return "I/O error";
    case PEFTC_ERR_FORMAT: return "malformed input";
    case PEFTC_ERR_INVALID: return "invalid argument";
    case PEFTC_ERR_NOMEM: return "out of memory";
    case PEFTC_ERR_UNSUPPORTED: return "unsupported";
    case PEFTC_ERR_NUMERIC: return "numerical fault";
    case PEFTC_ERR_INTERRUPTED: return "interrupted";
    }
    return "unknown status";
}
