#include "api/errors.h"

#include <jansson.h>
#include <stdlib.h>

static const struct {
    fa_code code;
    unsigned status;
} STATUS[] = {
    {FA_OK, 200},        {FA_EINVAL, 400},    {FA_ETOOBIG, 413},
    {FA_ECONFLICT, 409}, {FA_ENOTFOUND, 404}, {FA_EUNAVAIL, 503},
    {FA_ENOMEM, 503},    {FA_EINTERNAL, 500}, {FA_EREFUSED, 403},
};

unsigned fa_api_status(fa_code code)
{
    for (size_t i = 0; i < FA_ARRAY_LEN(STATUS); i++)
        if (STATUS[i].code == code)
            return STATUS[i].status;
    return 500;
}

char *fa_api_error_body(const fa_error *err, const char *api_code)
{
    json_t *body = NULL;
    char *text = NULL;

    /* An internal error's message may name tables or files: the client
     * gets a generic message; the details go to the log. */
    const char *message = err->code == FA_EINTERNAL ? "internal error" : err->msg;
    body = json_pack("{s:{s:s,s:s}}", "error", "code",
                     api_code != NULL ? api_code : fa_code_name(err->code), "message", message);
    if (body != NULL)
        text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    return text;
}
