/*
 * The one table that maps fa_code to an HTTP status and the JSON error body
 * {"error":{"code":"...","message":"..."}}. Stateless; any thread.
 */
#ifndef FA_API_ERRORS_H
#define FA_API_ERRORS_H

#include <stddef.h>

#include "core/error.h"

/* HTTP status for a code (FA_OK -> 200). */
unsigned fa_api_status(fa_code code);

/*
 * Renders the error body for err into a new malloc'd NUL-terminated string
 * (caller frees). api_code overrides the default code name when not NULL
 * (e.g. "stale_model_version"). Returns NULL only when out of memory.
 */
char *fa_api_error_body(const fa_error *err, const char *api_code);

#endif
