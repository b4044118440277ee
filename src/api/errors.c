#include "api/errors.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

/* The rejection table. Keep docs/api.md ("Error codes") in step: the lint
 * suite compares them. */
static const fa_api_rejection REJECTIONS[] = {
    /* the request itself */
    {"invalid_json", 400},
    {"invalid_field", 400},
    {"bad_base64", 400},
    {"bad_request", 400},
    {"bad_device_id", 400},
    {"unsupported_media_type", 415},
    {"body_too_large", 413},
    {"not_found", 404},
    {"method_not_allowed", 405},
    {"request_timeout", 408},
    /* who is asking, and how often */
    {"auth_required", 401},
    {"invalid_token", 401},
    {"unauthorized", 401},
    {"token_not_yours", 403},
    {"rate_limited", 429},
    /* the sealed update */
    {"bad_box", 400},
    {"bad_header", 400},
    {"header_mismatch", 400},
    {"wrong_dimension", 400},
    {"non_finite", 400},
    {"bad_num_samples", 400},
    {"unknown_key", 400},
    /* rounds and tokens */
    {"unknown_token", 404},
    {"no_open_round", 404},
    {"stale_model_version", 409},
    {"round_closed", 409},
    {"round_full", 409},
    {"token_reused", 409},
    {"already_checked_in", 409},
    /* models and the ledger */
    {"unknown_model_version", 404},
    {"no_model", 404},
    {"ledger_invalid", 500},
    /* the server's state */
    {"not_ready", 503},
    {"unavailable", 503},
    {"out_of_memory", 503},
    {"internal", 500},
    /* generic names of fa_code (fa_code_name), for errors no handler names */
    {"invalid", 400},
    {"too_big", 413},
    {"conflict", 409},
    {"refused", 403},
};

const fa_api_rejection *fa_api_rejections(size_t *n_out)
{
    *n_out = FA_ARRAY_LEN(REJECTIONS);
    return REJECTIONS;
}

unsigned fa_api_error_status(const char *api_code, fa_code err_code)
{
    const char *code = api_code != NULL ? api_code : fa_code_name(err_code);

    for (size_t i = 0; i < FA_ARRAY_LEN(REJECTIONS); i++)
        if (strcmp(REJECTIONS[i].code, code) == 0)
            return REJECTIONS[i].status;
    return 500;
}

unsigned fa_api_status(fa_code code)
{
    return code == FA_OK ? 200 : fa_api_error_status(NULL, code);
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
