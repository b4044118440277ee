/*
 * Parsing of what clients send, kept apart from libmicrohttpd so each parser
 * can be fuzzed alone: the route table and the update request body (JSON
 * plus base64). Stateless; any thread.
 */
#ifndef FA_API_REQUEST_H
#define FA_API_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef enum fa_api_route {
    FA_ROUTE_KEY,
    FA_ROUTE_CHECKIN,
    FA_ROUTE_ROUND,
    FA_ROUTE_UPDATE,
    FA_ROUTE_MODEL_LATEST,
    FA_ROUTE_MODEL,
    FA_ROUTE_LEDGER,
    FA_ROUTE_LEDGER_HEAD,
    FA_ROUTE_BUDGET,
    FA_ROUTE_PRIVACY_KEY,
    FA_ROUTE_AUDIT_PAGE,
    FA_ROUTE_HEALTHZ,
    FA_ROUTE_READYZ,
    FA_ROUTE_METRICS,
    FA_ROUTE_OTHER,
    FA_ROUTE_COUNT
} fa_api_route;

/* Metric label of a route ("update", "model", ...). */
const char *fa_api_route_name(fa_api_route r);

/* The route of a URL path; *method_out gets its one allowed method (NULL for OTHER). */
fa_api_route fa_api_route_find(const char *url, const char **method_out);

/*
 * The model path after "/api/federated/model/": version and format
 * (0 = TF.js JSON unless *by_accept, 1 = safetensors). *by_accept is set
 * when the path has no suffix and the Accept header decides.
 * FA_ENOTFOUND for anything else.
 */
int fa_api_model_path(int64_t *version_out, int *format_out, int *by_accept, const char *rest,
                      fa_error *err) FA_MUST_CHECK;

#define FA_API_TOKEN_MAX  128 /* bytes of a round token */
#define FA_API_KEY_ID_MAX 64  /* bytes of a key id */

typedef struct fa_api_update {
    int64_t model_version;
    int64_t num_samples;
    char round_token[FA_API_TOKEN_MAX + 1];
    char key_id[FA_API_KEY_ID_MAX + 1];
    unsigned char *box; /* decoded encryptedGradients, owned */
    size_t box_len;     /* bytes */
} fa_api_update;

/*
 * Parses an update request body (len bytes). Boxes longer than max_box
 * bytes are FA_ETOOBIG. On failure *code_out names the client error
 * ("invalid_json", "invalid_field", "bad_base64") and out holds nothing.
 */
int fa_api_update_parse(fa_api_update *out, const char **code_out, const char *body, size_t len,
                        size_t max_box, fa_error *err) FA_MUST_CHECK;

/*
 * The binary form (Content-Type: application/octet-stream): the body is the
 * sealed box itself, the other fields come as request headers, given here
 * as their values (NULL when absent): FA_API_HDR_MODEL_VERSION and
 * FA_API_HDR_NUM_SAMPLES (decimal integers), FA_API_HDR_ROUND_TOKEN and
 * FA_API_HDR_KEY_ID (text). *box (len bytes, malloc'd) is taken: on success
 * out owns it, on failure it is freed; *box is NULL afterwards either way.
 * Same codes as fa_api_update_parse ("invalid_field", "body_too_large").
 */
#define FA_API_HDR_MODEL_VERSION "Fedagg-Model-Version"
#define FA_API_HDR_NUM_SAMPLES   "Fedagg-Num-Samples"
#define FA_API_HDR_ROUND_TOKEN   "Fedagg-Round-Token"
#define FA_API_HDR_KEY_ID        "Fedagg-Key-Id"
int fa_api_update_binary(fa_api_update *out, const char **code_out, const char *model_version,
                         const char *num_samples, const char *round_token, const char *key_id,
                         unsigned char **box, size_t len, size_t max_box,
                         fa_error *err) FA_MUST_CHECK;

/* Frees the box of a parsed update. NULL-safe. */
void fa_api_update_done(fa_api_update *u);

#endif
