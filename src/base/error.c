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
    char prefix[512], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    int n = snprintf(err->msg, sizeof err->msg, "%s: ", prefix);
    if (n > 0 && (size_t)n < sizeof err->msg)
        snprintf(err->msg + n, sizeof err->msg - (size_t)n, "%s", old);
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
