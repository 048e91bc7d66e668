/* peftc — parameter-efficient fine-tuning of transformer models, in C.
 * Public API. Every function that can fail returns a peftc_status; the
 * message of the last failure is available from the handle or error struct. */
#ifndef PEFTC_H
#define PEFTC_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum peftc_status {
    PEFTC_OK = 0,
    PEFTC_ERR_IO,          /* a file could not be read or written */
    PEFTC_ERR_FORMAT,      /* a file or record is malformed */
    PEFTC_ERR_INVALID,     /* an argument or config value is wrong */
    PEFTC_ERR_NOMEM,       /* an allocation failed */
    PEFTC_ERR_UNSUPPORTED, /* valid but not supported (yet) */
    PEFTC_ERR_NUMERIC,     /* NaN/Inf where a number was required */
    PEFTC_ERR_INTERRUPTED  /* stopped by a signal */
} peftc_status;

const char *peftc_status_name(peftc_status s);

#ifdef __cplusplus
}
#endif
#endif
