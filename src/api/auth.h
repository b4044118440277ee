/*
 * Device authentication: the app's identity provider issues each device a
 * signed JSON Web Token (RFC 7519), and fedagg checks the
 * `Authorization: Bearer` token of a check-in or an update against the
 * provider's keys (a JWKS file, RFC 7517): signature (ES256 or EdDSA over
 * Ed25519 only: RFC 7518 Sec. 3.4, RFC 8037), issuer, audience, expiry,
 * not-before, and a subject. The subject, not a self-chosen deviceId, is
 * who the device is. Verification is thread-safe; fa_auth_reload swaps the
 * key set (SIGHUP) while verifications run.
 */
#ifndef FA_API_AUTH_H
#define FA_API_AUTH_H

#include <stddef.h>

#include "core/compiler.h"
#include "core/error.h"

typedef struct fa_auth fa_auth;

#define FA_AUTH_TOKEN_MAX   4096 /* bytes of a token; longer ones are refused unread */
#define FA_AUTH_SUBJECT_MAX 256  /* bytes of a subject */

/*
 * A verifier for tokens of issuer for audience, with the keys of the JWKS
 * file at jwks_path, allowing leeway_s of clock skew on exp / nbf / iat.
 * FA_EINVAL when the file does not hold a usable key set (the message says
 * why), FA_ENOTFOUND when it cannot be read.
 */
int fa_auth_new(fa_auth **out, const char *issuer, const char *audience, const char *jwks_path,
                double leeway_s, fa_error *err) FA_MUST_CHECK;

/* The same from the JWKS text itself (tests, fuzzing); jwks_path is then unset. */
int fa_auth_new_from_text(fa_auth **out, const char *issuer, const char *audience, const char *jwks,
                          size_t len, double leeway_s, fa_error *err) FA_MUST_CHECK;

/*
 * Re-reads the JWKS file. On failure the keys in use stay as they were
 * and the error says why. Any thread.
 */
int fa_auth_reload(fa_auth *a, fa_error *err) FA_MUST_CHECK;

/* Number of keys in use. */
size_t fa_auth_key_count(fa_auth *a);

/*
 * Checks the value of an Authorization header (NULL when absent) at time
 * now_s (seconds since the epoch). FA_OK with the token's subject in
 * subject; otherwise FA_EINVAL with *code_out "auth_required" (no bearer
 * token) or "invalid_token" (anything else: the message says what).
 */
int fa_auth_verify(char subject[FA_AUTH_SUBJECT_MAX + 1], const char **code_out, fa_auth *a,
                   const char *authorization, double now_s, fa_error *err) FA_MUST_CHECK;

void fa_auth_free(fa_auth *a);

#endif
