#include "api/request.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "core/base64.h"

static const char *const ROUTE_NAMES[FA_ROUTE_COUNT] = {
    "key",        "checkin", "round",       "update",  "model_latest",
    "model",      "ledger",  "ledger_head", "budget",  "privacy_key",
    "audit_page", "healthz", "readyz",      "metrics", "other",
};

static const struct {
    const char *path; /* exact path, or prefix when it ends with '/' */
    const char *method;
    fa_api_route route;
    int tree; /* a prefix that also matches the folder itself ("/privacy/") */
} ROUTES[] = {
    {"/api/federated/key", "GET", FA_ROUTE_KEY, 0},
    {"/api/federated/checkin", "POST", FA_ROUTE_CHECKIN, 0},
    {"/api/federated/round", "GET", FA_ROUTE_ROUND, 0},
    {"/api/federated/update", "POST", FA_ROUTE_UPDATE, 0},
    {"/api/federated/model/latest", "GET", FA_ROUTE_MODEL_LATEST, 0},
    {"/api/federated/model/", "GET", FA_ROUTE_MODEL, 0},
    {"/api/privacy/ledger", "GET", FA_ROUTE_LEDGER, 0},
    {"/api/privacy/ledger/head", "GET", FA_ROUTE_LEDGER_HEAD, 0},
    {"/api/privacy/budget", "GET", FA_ROUTE_BUDGET, 0},
    {"/api/privacy/key", "GET", FA_ROUTE_PRIVACY_KEY, 0},
    {"/privacy", "GET", FA_ROUTE_AUDIT_PAGE, 0},
    {"/privacy/", "GET", FA_ROUTE_AUDIT_PAGE, 1},
    {"/healthz", "GET", FA_ROUTE_HEALTHZ, 0},
    {"/readyz", "GET", FA_ROUTE_READYZ, 0},
    {"/metrics", "GET", FA_ROUTE_METRICS, 0},
};

const char *fa_api_route_name(fa_api_route r)
{
    return (unsigned)r < FA_ROUTE_COUNT ? ROUTE_NAMES[r] : "other";
}

fa_api_route fa_api_route_find(const char *url, const char **method_out)
{
    *method_out = NULL;
    for (size_t i = 0; i < FA_ARRAY_LEN(ROUTES); i++) {
        size_t n = strlen(ROUTES[i].path);
        int prefix = ROUTES[i].path[n - 1] == '/';
        if (prefix ? strncmp(url, ROUTES[i].path, n) == 0 && (url[n] != '\0' || ROUTES[i].tree)
                   : strcmp(url, ROUTES[i].path) == 0) {
            *method_out = ROUTES[i].method;
            return ROUTES[i].route;
        }
    }
    return FA_ROUTE_OTHER;
}

int fa_api_model_path(int64_t *version_out, int *format_out, int *by_accept, const char *rest,
                      fa_error *err)
{
    char num[24];
    size_t n = strcspn(rest, ".");

    *version_out = -1;
    *format_out = 0;
    *by_accept = 0;
    if (n == 0 || n >= sizeof(num))
        return fa_fail(err, FA_ENOTFOUND, "no such model version");
    memcpy(num, rest, n);
    num[n] = '\0';
    /* Digits only: fa_parse_i64 would also take a sign. */
    for (size_t i = 0; i < n; i++)
        if (num[i] < '0' || num[i] > '9')
            return fa_fail(err, FA_ENOTFOUND, "model version must be a number or latest");
    if (fa_parse_i64(version_out, num) < 0)
        return fa_fail(err, FA_ENOTFOUND, "model version must be a number or latest");
    if (rest[n] == '\0')
        *by_accept = 1;
    else if (strcmp(rest + n, ".safetensors") == 0)
        *format_out = 1;
    else if (strcmp(rest + n, ".json") != 0)
        return fa_fail(err, FA_ENOTFOUND, "unknown model format suffix");
    return FA_OK;
}

static int field_int(int64_t *out, json_t *body, const char *name, fa_error *err)
{
    json_t *v = json_object_get(body, name);

    if (v == NULL || !json_is_integer(v))
        return fa_fail(err, FA_EINVAL, "%s must be an integer", name);
    *out = (int64_t)json_integer_value(v);
    return FA_OK;
}

static int field_string(char *out, size_t max, json_t *body, const char *name, fa_error *err)
{
    json_t *v = json_object_get(body, name);

    if (v == NULL || !json_is_string(v) || json_string_length(v) == 0 ||
        json_string_length(v) > max)
        return fa_fail(err, FA_EINVAL, "%s must be a non-empty string of at most %zu bytes", name,
                       max);
    /* Tokens and key ids are plain text: a NUL inside would be cut off. */
    if (strlen(json_string_value(v)) != json_string_length(v))
        return fa_fail(err, FA_EINVAL, "%s must not contain NUL characters", name);
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return FA_OK;
}

int fa_api_update_parse(fa_api_update *out, const char **code_out, const char *body, size_t len,
                        size_t max_box, fa_error *err)
{
    json_error_t jerr;
    json_t *j = NULL, *g;
    int rc = FA_OK;

    memset(out, 0, sizeof(*out));
    *code_out = NULL;
    j = json_loadb(body != NULL ? body : "", len, JSON_REJECT_DUPLICATES, &jerr);
    if (j == NULL || !json_is_object(j)) {
        *code_out = "invalid_json";
        rc = j == NULL ? fa_fail(err, FA_EINVAL, "malformed JSON at line %d column %d: %s",
                                 jerr.line, jerr.column, jerr.text)
                       : fa_fail(err, FA_EINVAL, "request body must be a JSON object");
        goto cleanup;
    }
    if ((rc = field_int(&out->model_version, j, "modelVersion", err)) < 0 ||
        (rc = field_int(&out->num_samples, j, "numSamples", err)) < 0 ||
        (rc = field_string(out->round_token, FA_API_TOKEN_MAX, j, "roundToken", err)) < 0 ||
        (rc = field_string(out->key_id, FA_API_KEY_ID_MAX, j, "keyId", err)) < 0) {
        *code_out = "invalid_field";
        goto cleanup;
    }
    g = json_object_get(j, "encryptedGradients");
    if (g == NULL || !json_is_string(g) || json_string_length(g) == 0) {
        *code_out = "invalid_field";
        rc = fa_fail(err, FA_EINVAL, "encryptedGradients must be a non-empty base64 string");
        goto cleanup;
    }
    size_t b64_len = json_string_length(g);
    size_t cap = b64_len / 4 * 3 + 3;
    if (cap > max_box + 3) {
        *code_out = "body_too_large";
        rc = fa_fail(err, FA_ETOOBIG, "encryptedGradients is over the limit of %zu bytes", max_box);
        goto cleanup;
    }
    out->box = malloc(cap);
    if (out->box == NULL) {
        *code_out = "out_of_memory";
        rc = fa_fail(err, FA_ENOMEM, "out of memory");
        goto cleanup;
    }
    if (fa_base64_decode(out->box, cap, &out->box_len, json_string_value(g), b64_len) < 0) {
        *code_out = "bad_base64";
        rc = fa_fail(err, FA_EINVAL,
                     "encryptedGradients is not valid base64 (standard alphabet, padded)");
        goto cleanup;
    }
cleanup:
    json_decref(j);
    if (rc < 0)
        fa_api_update_done(out);
    return rc;
}

static int header_int(int64_t *out, const char *v, const char *name, fa_error *err)
{
    if (v == NULL || fa_parse_i64(out, v) < 0)
        return fa_fail(err, FA_EINVAL, "header %s must be an integer", name);
    return FA_OK;
}

static int header_string(char *out, size_t max, const char *v, const char *name, fa_error *err)
{
    size_t n = v != NULL ? strlen(v) : 0;

    if (n == 0 || n > max)
        return fa_fail(err, FA_EINVAL, "header %s must be a non-empty string of at most %zu bytes",
                       name, max);
    memcpy(out, v, n + 1);
    return FA_OK;
}

int fa_api_update_binary(fa_api_update *out, const char **code_out, const char *model_version,
                         const char *num_samples, const char *round_token, const char *key_id,
                         unsigned char **box, size_t len, size_t max_box, fa_error *err)
{
    int rc;

    memset(out, 0, sizeof(*out));
    *code_out = "invalid_field";
    if ((rc = header_int(&out->model_version, model_version, FA_API_HDR_MODEL_VERSION, err)) < 0 ||
        (rc = header_int(&out->num_samples, num_samples, FA_API_HDR_NUM_SAMPLES, err)) < 0 ||
        (rc = header_string(out->round_token, FA_API_TOKEN_MAX, round_token, FA_API_HDR_ROUND_TOKEN,
                            err)) < 0 ||
        (rc = header_string(out->key_id, FA_API_KEY_ID_MAX, key_id, FA_API_HDR_KEY_ID, err)) < 0)
        goto fail;
    if (*box == NULL || len == 0) {
        rc = fa_fail(err, FA_EINVAL, "the body must be the sealed update (it is empty)");
        goto fail;
    }
    if (len > max_box) {
        *code_out = "body_too_large";
        rc = fa_fail(err, FA_ETOOBIG, "the sealed update is over the limit of %zu bytes", max_box);
        goto fail;
    }
    out->box = *box;
    out->box_len = len;
    *box = NULL;
    *code_out = NULL;
    return FA_OK;
fail:
    free(*box);
    *box = NULL;
    memset(out, 0, sizeof(*out));
    return rc;
}

void fa_api_update_done(fa_api_update *u)
{
    if (u == NULL)
        return;
    free(u->box);
    u->box = NULL;
    u->box_len = 0;
}
