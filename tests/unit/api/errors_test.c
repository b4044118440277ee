#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>

#include "api/errors.h"

Test(api_errors, status_table)
{
    cr_assert_eq(fa_api_status(FA_OK), 200);
    cr_assert_eq(fa_api_status(FA_EINVAL), 400);
    cr_assert_eq(fa_api_status(FA_ETOOBIG), 413);
    cr_assert_eq(fa_api_status(FA_ECONFLICT), 409);
    cr_assert_eq(fa_api_status(FA_ENOTFOUND), 404);
    cr_assert_eq(fa_api_status(FA_EUNAVAIL), 503);
    cr_assert_eq(fa_api_status(FA_ENOMEM), 503);
    cr_assert_eq(fa_api_status(FA_EINTERNAL), 500);
}

Test(api_errors, body_shape_and_internal_messages_hidden)
{
    fa_error err = FA_ERROR_INIT;
    json_error_t jerr;

    (void)fa_fail(&err, FA_ECONFLICT, "model version 7 is stale (round 12 uses 9)");
    char *text = fa_api_error_body(&err, "stale_model_version");
    json_t *j = json_loads(text, 0, &jerr);
    cr_assert_not_null(j);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                     "stale_model_version");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "error"), "message")),
                     "model version 7 is stale (round 12 uses 9)");
    json_decref(j);
    free(text);

    (void)fa_fail(&err, FA_EINTERNAL, "relation \"updates\" does not exist");
    text = fa_api_error_body(&err, NULL);
    cr_assert(strstr(text, "updates") == NULL, "%s", text);
    cr_assert(strstr(text, "\"internal\"") != NULL, "%s", text);
    free(text);
}

Test(api_errors, every_answer_takes_its_status_from_the_rejection_table)
{
    size_t n = 0;
    const fa_api_rejection *t = fa_api_rejections(&n);

    cr_assert_geq(n, 30);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(fa_api_error_status(t[i].code, FA_EINTERNAL), t[i].status, "%s", t[i].code);
        for (size_t j = 0; j < i; j++)
            cr_assert_str_neq(t[i].code, t[j].code, "%s is in the table twice", t[i].code);
    }
    /* No code: the error's own name decides; an unknown code is a bug. */
    cr_assert_eq(fa_api_error_status(NULL, FA_EUNAVAIL), 503);
    cr_assert_eq(fa_api_error_status(NULL, FA_EREFUSED), 403);
    cr_assert_eq(fa_api_error_status("rate_limited", FA_EINVAL), 429);
    cr_assert_eq(fa_api_error_status("no_such_code", FA_EINVAL), 500);
}
