/*
 * Every error answer the API gives comes from one table: an error code
 * (the "code" of {"error":{"code","message"}}), the HTTP status it is
 * answered with, and when. docs/api.md ("Error codes") lists the same
 * table; `meson test --suite lint` (rejections) checks that the two agree
 * and that every code the sources answer with is in it. Stateless; any
 * thread.
 */
#ifndef FA_API_ERRORS_H
#define FA_API_ERRORS_H

#include <stddef.h>

#include "core/error.h"

typedef struct fa_api_rejection {
    const char *code; /* e.g. "stale_model_version" */
    unsigned status;  /* e.g. 409 */
} fa_api_rejection;

/* The table, *n_out rows. */
const fa_api_rejection *fa_api_rejections(size_t *n_out);

/*
 * The status of an error answer: the table's for api_code, or when
 * api_code is NULL the table's for err_code's own name (fa_code_name).
 * A code missing from the table is a bug: 500.
 */
unsigned fa_api_error_status(const char *api_code, fa_code err_code);

/* HTTP status for a code (FA_OK -> 200): the table's row of its name. */
unsigned fa_api_status(fa_code code);

/*
 * Renders the error body for err into a new malloc'd NUL-terminated string
 * (caller frees). api_code overrides the default code name when not NULL
 * (e.g. "stale_model_version"). Returns NULL only when out of memory.
 */
char *fa_api_error_body(const fa_error *err, const char *api_code);

#endif
