/*
 * The one error type of fedagg: a negative code plus a one-line message.
 * A caller owns its fa_error (usually on the stack); functions fill it on
 * failure and return the same code. Thread-safe: no shared state.
 */
#ifndef FA_CORE_ERROR_H
#define FA_CORE_ERROR_H

#include "core/compiler.h"

typedef enum fa_code {
    FA_OK = 0,
    FA_EINVAL = -1,    /* 400: malformed or out-of-range input */
    FA_ETOOBIG = -2,   /* 413: input larger than its limit */
    FA_ECONFLICT = -3, /* 409: state conflict (duplicate, stale version) */
    FA_ENOTFOUND = -4, /* 404: no such object */
    FA_EUNAVAIL = -5,  /* 503: dependency down, retry later */
    FA_ENOMEM = -6,    /* out of memory */
    FA_EINTERNAL = -7, /* a bug or an unexpected failure */
    FA_EREFUSED = -8,  /* an operation refused by policy (privacy budget) */
} fa_code;

#define FA_ERROR_MSG_MAX 256

typedef struct fa_error {
    fa_code code;
    char msg[FA_ERROR_MSG_MAX];
} fa_error;

#define FA_ERROR_INIT                                                                              \
    {                                                                                              \
        FA_OK,                                                                                     \
        {                                                                                          \
            0                                                                                      \
        }                                                                                          \
    }

/* Records code and message in err (which may be NULL) and returns code. */
int fa_fail(fa_error *err, fa_code code, const char *fmt, ...) FA_PRINTF(3, 4);

/* Resets err to FA_OK with an empty message. NULL-safe. */
void fa_error_clear(fa_error *err);

/* Stable lower-case name of a code ("invalid", "conflict", ...). */
const char *fa_code_name(fa_code code);

#endif
