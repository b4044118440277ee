#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>

int fa_fail(fa_error *err, fa_code code, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return code;
    err->code = code;
    va_start(ap, fmt);
    (void)vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return code;
}

void fa_error_clear(fa_error *err)
{
    if (err == NULL)
        return;
    err->code = FA_OK;
    err->msg[0] = '\0';
}

const char *fa_code_name(fa_code code)
{
    switch (code) {
    case FA_OK:
        return "ok";
    case FA_EINVAL:
        return "invalid";
    case FA_ETOOBIG:
        return "too_big";
    case FA_ECONFLICT:
        return "conflict";
    case FA_ENOTFOUND:
        return "not_found";
    case FA_EUNAVAIL:
        return "unavailable";
    case FA_ENOMEM:
        return "out_of_memory";
    case FA_EINTERNAL:
        return "internal";
    case FA_EREFUSED:
        return "refused";
    }
    return "unknown";
}
