/* Errors are values: every fallible library function returns pc_status and
 * fills a pc_error whose message names the file, line, key or tensor at fault.
 * The library never prints, exits or aborts; callers decide what to show. */
#ifndef PC_BASE_ERROR_H
#define PC_BASE_ERROR_H

#include "peftc.h"

typedef peftc_status pc_status;

typedef struct pc_error {
    pc_status code;
    char msg[1024];
} pc_error;

/* Records code and a printf-style message in err (may be NULL); returns code. */
pc_status pc_fail(pc_error *err, pc_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends "context: " to an existing message (e.g. the file name). Returns err->code. */
pc_status pc_error_prefix(pc_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void pc_error_clear(pc_error *err);

/* Propagate a failure from a call that already filled err. */
#define PC_TRY(expr) do { pc_status pc_try_s_ = (expr); if (pc_try_s_ != PEFTC_OK) return pc_try_s_; } while (0)

#endif
