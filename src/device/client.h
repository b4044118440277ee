/*
 * A device's side of the protocol over HTTP (libcurl): fetch the server
 * key, check in, download a model, seal and post an update. Used by
 * `fedagg simulate`, the demo federation and the end-to-end tests. One
 * client (one connection) is used by one thread at a time.
 */
#ifndef FA_DEVICE_CLIENT_H
#define FA_DEVICE_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct fa_device_client fa_device_client;
typedef struct fa_params fa_params;
typedef struct fa_crypto_sign_key fa_crypto_sign_key;

/* A client for the server at base_url ("http://127.0.0.1:8080"). */
/* Sets up libcurl; once, before any thread exists. FA_EINTERNAL. */
int fa_device_global_init(fa_error *err) FA_MUST_CHECK;

int fa_device_client_new(fa_device_client **out, const char *base_url, fa_error *err) FA_MUST_CHECK;
void fa_device_client_free(fa_device_client *c);

/*
 * One HTTP exchange. body may be NULL. *resp_out (may be NULL) receives the
 * response body, NUL-terminated, owned by the caller. extra_header (may be
 * NULL) is one or more "Name: value" lines separated by newlines (lines
 * of 512 bytes or more are left out). FA_EUNAVAIL when the server cannot be
 * reached; any HTTP status is FA_OK with *status_out set.
 */
int fa_device_http(long *status_out, char **resp_out, size_t *resp_len_out, fa_device_client *c,
                   const char *method, const char *path, const char *content_type, const void *body,
                   size_t body_len, const char *extra_header, fa_error *err) FA_MUST_CHECK;

typedef struct fa_device_key {
    unsigned char pk[32];
    char key_id[40];
} fa_device_key;

int fa_device_fetch_key(fa_device_key *out, fa_device_client *c, fa_error *err) FA_MUST_CHECK;

typedef struct fa_device_round {
    int selected;
    char token[64];
    int64_t round_id;
    int64_t model_version;
    int64_t min_cohort;
} fa_device_round;

/* Checks in (device_id may be NULL). Non-2xx answers are FA_ECONFLICT etc. with the server's
 * message. */
int fa_device_checkin(fa_device_round *out, fa_device_client *c, const char *device_id,
                      fa_error *err) FA_MUST_CHECK;

/* Downloads model version (safetensors) and parses it into *out. */
int fa_device_fetch_model(fa_params **out, fa_device_client *c, int64_t version,
                          fa_error *err) FA_MUST_CHECK;

/*
 * Seals one update (header + delta) to key: *box_out (*len_out bytes) is
 * the body of the binary form, owned by the caller. The plaintext is wiped.
 */
int fa_device_update_box(unsigned char **box_out, size_t *len_out, const fa_device_key *key,
                         int64_t model_version, int64_t num_samples, const float *delta, size_t dim,
                         fa_error *err) FA_MUST_CHECK;

/*
 * The binary form's header lines (docs/api.md), separated by '\n', for
 * fa_device_http's extra_header. FA_EINVAL when they do not fit in cap.
 */
int fa_device_update_headers(char *out, size_t cap, const fa_device_key *key, const char *token,
                             int64_t model_version, int64_t num_samples) FA_MUST_CHECK;

/*
 * Builds the request body of one update in the JSON form: header + delta
 * sealed to key, base64, JSON. *body_out is owned by the caller.
 */
int fa_device_update_body(char **body_out, size_t *len_out, const fa_device_key *key,
                          const char *token, int64_t model_version, int64_t num_samples,
                          const float *delta, size_t dim, fa_error *err) FA_MUST_CHECK;

/*
 * Sends "Authorization: Bearer <token>" with every request (NULL: none),
 * for a server with auth = jwt. FA_EINVAL for a token with a line break.
 */
int fa_device_client_set_token(fa_device_client *c, const char *token, fa_error *err) FA_MUST_CHECK;

/*
 * Verifies an HTTPS server with the CA certificates of the PEM file
 * ca_file instead of the system's (NULL: the system's again). The server
 * certificate is always verified, TLS 1.2 at least.
 */
int fa_device_client_set_ca(fa_device_client *c, const char *ca_file, fa_error *err) FA_MUST_CHECK;

/*
 * A device token as an identity provider would issue it: a JWT signed
 * with EdDSA (Ed25519) by issuer, header kid, claims iss, aud, sub, exp
 * (iat one hour before exp). For simulations and tests; *out is owned by
 * the caller.
 */
int fa_device_mint_token(char **out, const fa_crypto_sign_key *issuer, const char *kid,
                         const char *iss, const char *aud, const char *sub, int64_t exp,
                         fa_error *err) FA_MUST_CHECK;

/* Post updates in the JSON form (1) or the binary form (0, the default). */
void fa_device_client_use_json(fa_device_client *c, int json_updates);

/*
 * Seals and posts one update (binary form unless fa_device_client_use_json). *status_out gets the
 * HTTP status and receipt (cap bytes) the receipt on 202; on other statuses *code_out (cap bytes)
 * gets the error code. FA_EUNAVAIL when the server is unreachable.
 */
int fa_device_post_update(long *status_out, char *receipt, char *code_out, size_t cap,
                          fa_device_client *c, const fa_device_key *key, const char *token,
                          int64_t model_version, int64_t num_samples, const float *delta,
                          size_t dim, fa_error *err) FA_MUST_CHECK;

#endif
