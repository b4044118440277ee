#include "api/auth.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/util.h"
#include "core/base64.h"
#include "privacy/crypto.h"

#define KEYS_MAX   64   /* keys of a JWKS that are kept */
#define KID_MAX    128  /* bytes of a key id */
#define PART_MAX   3072 /* decoded bytes of a token's header or claims */
#define JWKS_MAX   (1 << 20)
#define ISSUER_MAX 512

enum alg { ALG_ES256 = 1, ALG_EDDSA = 2 };

struct key {
    enum alg alg;
    char kid[KID_MAX + 1];
    int has_kid;
    unsigned char x[32], y[32]; /* EdDSA: x is the public key; ES256: the point */
};

struct keyset {
    struct key keys[KEYS_MAX];
    size_t n;
};

struct fa_auth {
    char issuer[ISSUER_MAX + 1], audience[ISSUER_MAX + 1];
    char *jwks_path; /* NULL when made from text */
    double leeway_s;
    pthread_rwlock_t mu; /* guards set */
    struct keyset *set;
};

/* ------------------------------------------------------------------ JWKS */

static int b64url_field(unsigned char out[32], json_t *jwk, const char *name, size_t i,
                        fa_error *err)
{
    const char *v = json_string_value(json_object_get(jwk, name));
    size_t n = 0;

    if (v == NULL || fa_base64url_decode(out, 32, &n, v, strlen(v)) < 0 || n != 32)
        return fa_fail(err, FA_EINVAL, "JWKS key %zu: \"%s\" is not 32 bytes of base64url", i,
                       name);
    return FA_OK;
}

/* One key of the set into k; 0 when it is of a kind tokens here never use (skipped). */
static int parse_key(struct key *k, json_t *jwk, size_t i, fa_error *err)
{
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    const char *crv = json_string_value(json_object_get(jwk, "crv"));
    const char *alg = json_string_value(json_object_get(jwk, "alg"));
    const char *use = json_string_value(json_object_get(jwk, "use"));
    json_t *kid = json_object_get(jwk, "kid");
    int rc;

    memset(k, 0, sizeof(*k));
    if (!json_is_object(jwk) || kty == NULL)
        return fa_fail(err, FA_EINVAL, "JWKS key %zu has no \"kty\"", i);
    if (use != NULL && strcmp(use, "sig") != 0)
        return 0; /* an encryption key */
    if (strcmp(kty, "EC") == 0 && crv != NULL && strcmp(crv, "P-256") == 0) {
        k->alg = ALG_ES256;
        if ((rc = b64url_field(k->x, jwk, "x", i, err)) < 0 ||
            (rc = b64url_field(k->y, jwk, "y", i, err)) < 0)
            return rc;
    } else if (strcmp(kty, "OKP") == 0 && crv != NULL && strcmp(crv, "Ed25519") == 0) {
        k->alg = ALG_EDDSA;
        if ((rc = b64url_field(k->x, jwk, "x", i, err)) < 0)
            return rc;
    } else {
        return 0; /* RSA, other curves: not accepted, so not kept */
    }
    /* A key pinned to an algorithm must be pinned to its own. */
    if (alg != NULL && strcmp(alg, k->alg == ALG_ES256 ? "ES256" : "EdDSA") != 0)
        return fa_fail(err, FA_EINVAL, "JWKS key %zu: \"alg\" %s does not fit its %s key", i, alg,
                       kty);
    if (kid != NULL) {
        if (!json_is_string(kid) || json_string_length(kid) == 0 ||
            json_string_length(kid) > KID_MAX)
            return fa_fail(err, FA_EINVAL, "JWKS key %zu: \"kid\" is not a string of 1-%d bytes", i,
                           KID_MAX);
        memcpy(k->kid, json_string_value(kid), json_string_length(kid) + 1);
        k->has_kid = 1;
    }
    return 1;
}

static int parse_jwks(struct keyset **out, const char *text, size_t len, fa_error *err)
{
    json_error_t jerr;
    json_t *doc = NULL, *keys;
    struct keyset *set = NULL;
    int rc = FA_OK;

    *out = NULL;
    if (len > JWKS_MAX)
        return fa_fail(err, FA_EINVAL, "JWKS is over %d bytes", JWKS_MAX);
    doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    keys = json_object_get(doc, "keys");
    if (doc == NULL || !json_is_array(keys)) {
        rc = doc == NULL ? fa_fail(err, FA_EINVAL, "JWKS is not JSON: %s", jerr.text)
                         : fa_fail(err, FA_EINVAL, "JWKS has no \"keys\" array");
        goto cleanup;
    }
    if ((set = calloc(1, sizeof(*set))) == NULL) {
        rc = fa_fail(err, FA_ENOMEM, "out of memory reading the JWKS");
        goto cleanup;
    }
    for (size_t i = 0; i < json_array_size(keys); i++) {
        int got;
        if (set->n == KEYS_MAX) {
            rc = fa_fail(err, FA_EINVAL, "JWKS holds more than %d usable keys", KEYS_MAX);
            goto cleanup;
        }
        if ((got = parse_key(&set->keys[set->n], json_array_get(keys, i), i, err)) < 0) {
            rc = got;
            goto cleanup;
        }
        set->n += (size_t)got;
    }
    if (set->n == 0) {
        rc = fa_fail(err, FA_EINVAL, "JWKS holds no ES256 (EC P-256) or EdDSA (OKP Ed25519) key");
        goto cleanup;
    }
    *out = set;
    set = NULL;
cleanup:
    free(set);
    json_decref(doc);
    return rc;
}

static int read_jwks(struct keyset **out, const char *path, fa_error *err)
{
    char *text = NULL;
    size_t len = 0;
    int rc;

    if ((rc = fa_file_read(&text, &len, path, JWKS_MAX, err)) < 0)
        return rc;
    rc = parse_jwks(out, text, len, err);
    free(text);
    if (rc < 0) {
        char why[sizeof(err->msg)];
        (void)snprintf(why, sizeof(why), "%s", err->msg); /* err->msg is rewritten below */
        (void)fa_fail(err, err->code, "%s: %s", path, why);
    }
    return rc;
}

static int make(fa_auth **out, const char *issuer, const char *audience, double leeway_s,
                fa_error *err)
{
    fa_auth *a;

    *out = NULL;
    if (strlen(issuer) == 0 || strlen(issuer) > ISSUER_MAX || strlen(audience) == 0 ||
        strlen(audience) > ISSUER_MAX)
        return fa_fail(err, FA_EINVAL, "auth needs an issuer and an audience of 1-%d bytes",
                       ISSUER_MAX);
    if (!(leeway_s >= 0 && leeway_s <= 3600))
        return fa_fail(err, FA_EINVAL, "auth leeway must be 0-3600 s");
    if ((a = calloc(1, sizeof(*a))) == NULL)
        return fa_fail(err, FA_ENOMEM, "out of memory");
    (void)snprintf(a->issuer, sizeof(a->issuer), "%s", issuer);
    (void)snprintf(a->audience, sizeof(a->audience), "%s", audience);
    a->leeway_s = leeway_s;
    (void)pthread_rwlock_init(&a->mu, NULL);
    *out = a;
    return FA_OK;
}

int fa_auth_new(fa_auth **out, const char *issuer, const char *audience, const char *jwks_path,
                double leeway_s, fa_error *err)
{
    fa_auth *a = NULL;
    int rc;

    if ((rc = make(&a, issuer, audience, leeway_s, err)) < 0)
        return rc;
    if ((a->jwks_path = strdup(jwks_path)) == NULL) {
        fa_auth_free(a);
        return fa_fail(err, FA_ENOMEM, "out of memory");
    }
    if ((rc = read_jwks(&a->set, jwks_path, err)) < 0) {
        fa_auth_free(a);
        return rc;
    }
    *out = a;
    return FA_OK;
}

int fa_auth_new_from_text(fa_auth **out, const char *issuer, const char *audience, const char *jwks,
                          size_t len, double leeway_s, fa_error *err)
{
    fa_auth *a = NULL;
    int rc;

    if ((rc = make(&a, issuer, audience, leeway_s, err)) < 0)
        return rc;
    if ((rc = parse_jwks(&a->set, jwks, len, err)) < 0) {
        fa_auth_free(a);
        return rc;
    }
    *out = a;
    return FA_OK;
}

int fa_auth_reload(fa_auth *a, fa_error *err)
{
    struct keyset *fresh = NULL, *old;
    int rc;

    if (a->jwks_path == NULL)
        return fa_fail(err, FA_EINVAL, "these keys were not read from a file");
    if ((rc = read_jwks(&fresh, a->jwks_path, err)) < 0)
        return rc;
    (void)pthread_rwlock_wrlock(&a->mu);
    old = a->set;
    a->set = fresh;
    (void)pthread_rwlock_unlock(&a->mu);
    free(old);
    return FA_OK;
}

size_t fa_auth_key_count(fa_auth *a)
{
    size_t n;

    (void)pthread_rwlock_rdlock(&a->mu);
    n = a->set->n;
    (void)pthread_rwlock_unlock(&a->mu);
    return n;
}

void fa_auth_free(fa_auth *a)
{
    if (a == NULL)
        return;
    (void)pthread_rwlock_destroy(&a->mu);
    free(a->set);
    free(a->jwks_path);
    free(a);
}

/* ---------------------------------------------------------------- tokens */

/* Decodes one base64url part of a token into a JSON object. */
static json_t *part_json(const char *p, size_t n, const char *what, fa_error *err)
{
    unsigned char buf[PART_MAX];
    size_t len = 0;
    json_error_t jerr;
    json_t *j;

    if (fa_base64url_decode(buf, sizeof(buf), &len, p, n) < 0) {
        (void)fa_fail(err, FA_EINVAL, "token %s is not base64url of at most %d bytes", what,
                      PART_MAX);
        return NULL;
    }
    j = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(j)) {
        json_decref(j);
        (void)fa_fail(err, FA_EINVAL, "token %s is not a JSON object", what);
        return NULL;
    }
    return j;
}

/* A NumericDate claim (RFC 7519 Sec. 2); -1 when absent, -2 when malformed. */
static double numeric_date(json_t *claims, const char *name)
{
    json_t *v = json_object_get(claims, name);

    if (v == NULL)
        return -1;
    if (!json_is_number(v) || !isfinite(json_number_value(v)) || json_number_value(v) < 0)
        return -2;
    return json_number_value(v);
}

static int audience_ok(json_t *aud, const char *want)
{
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0;
    if (json_is_array(aud))
        for (size_t i = 0; i < json_array_size(aud); i++)
            if (json_is_string(json_array_get(aud, i)) &&
                strcmp(json_string_value(json_array_get(aud, i)), want) == 0)
                return 1;
    return 0;
}

/* The signature check with the key set held: 1 verified, 0 not, <0 no key. */
static int signature_ok(const struct keyset *set, enum alg alg, const char *kid,
                        const char *signed_part, size_t signed_len, const unsigned char sig[64])
{
    int candidates = 0;

    for (size_t i = 0; i < set->n; i++) {
        const struct key *k = &set->keys[i];
        if (k->alg != alg || (kid != NULL && (!k->has_kid || strcmp(kid, k->kid) != 0)))
            continue;
        candidates++;
        if (alg == ALG_ES256
                ? fa_crypto_es256_verify(sig, signed_part, signed_len, k->x, k->y) == FA_OK
                : fa_crypto_sign_verify(sig, signed_part, signed_len, k->x) == FA_OK)
            return 1;
    }
    return candidates > 0 ? 0 : -1;
}

static int check_token(char subject[FA_AUTH_SUBJECT_MAX + 1], fa_auth *a, const char *tok,
                       size_t len, double now, fa_error *err)
{
    const char *dot1, *dot2, *alg_s, *kid = NULL, *iss, *sub;
    json_t *header = NULL, *claims = NULL, *typ;
    unsigned char sig[64];
    size_t sig_len = 0;
    double exp, nbf, iat;
    enum alg alg;
    int rc = FA_EINVAL, ok;

    for (size_t i = 0; i < len; i++) {
        const char c = tok[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return fa_fail(err, FA_EINVAL, "token holds a character outside base64url");
    }
    dot1 = memchr(tok, '.', len);
    dot2 = dot1 != NULL ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - tok)) : NULL;
    if (dot1 == NULL || dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - tok)))
        return fa_fail(err, FA_EINVAL, "token is not three base64url parts (a signed JWT)");
    if ((header = part_json(tok, (size_t)(dot1 - tok), "header", err)) == NULL)
        goto cleanup;
    alg_s = json_string_value(json_object_get(header, "alg"));
    if (alg_s != NULL && strcmp(alg_s, "ES256") == 0) {
        alg = ALG_ES256;
    } else if (alg_s != NULL && strcmp(alg_s, "EdDSA") == 0) {
        alg = ALG_EDDSA;
    } else {
        /* "none", the HMAC family (a public key is no secret) and the rest. */
        (void)fa_fail(err, FA_EINVAL, "token algorithm %.32s is not accepted (ES256 or EdDSA)",
                      alg_s != NULL ? alg_s : "(none given)");
        goto cleanup;
    }
    if (json_object_get(header, "crit") != NULL) {
        (void)fa_fail(err, FA_EINVAL, "token has critical header parameters this server ignores");
        goto cleanup;
    }
    typ = json_object_get(header, "typ");
    if (typ != NULL && !(json_is_string(typ) && strcasecmp(json_string_value(typ), "JWT") == 0)) {
        (void)fa_fail(err, FA_EINVAL, "token type is not JWT");
        goto cleanup;
    }
    if (json_object_get(header, "kid") != NULL &&
        (kid = json_string_value(json_object_get(header, "kid"))) == NULL) {
        (void)fa_fail(err, FA_EINVAL, "token \"kid\" is not a string");
        goto cleanup;
    }
    if (fa_base64url_decode(sig, sizeof(sig), &sig_len, dot2 + 1, len - (size_t)(dot2 + 1 - tok)) <
            0 ||
        sig_len != sizeof(sig)) {
        (void)fa_fail(err, FA_EINVAL, "token signature is not 64 bytes of base64url");
        goto cleanup;
    }
    (void)pthread_rwlock_rdlock(&a->mu);
    ok = signature_ok(a->set, alg, kid, tok, (size_t)(dot2 - tok), sig);
    (void)pthread_rwlock_unlock(&a->mu);
    if (ok < 0) {
        (void)fa_fail(err, FA_EINVAL, "no %s key%s%.64s%s in the key set", alg_s,
                      kid != NULL ? " with kid \"" : "", kid != NULL ? kid : "",
                      kid != NULL ? "\"" : "");
        goto cleanup;
    }
    if (ok == 0) {
        (void)fa_fail(err, FA_EINVAL, "token signature does not verify");
        goto cleanup;
    }
    /* Signed by the provider: now its claims. */
    if ((claims = part_json(dot1 + 1, (size_t)(dot2 - dot1 - 1), "claims", err)) == NULL)
        goto cleanup;
    iss = json_string_value(json_object_get(claims, "iss"));
    if (iss == NULL || strcmp(iss, a->issuer) != 0) {
        (void)fa_fail(err, FA_EINVAL, "token issuer is not %s", a->issuer);
        goto cleanup;
    }
    if (!audience_ok(json_object_get(claims, "aud"), a->audience)) {
        (void)fa_fail(err, FA_EINVAL, "token audience does not include %s", a->audience);
        goto cleanup;
    }
    exp = numeric_date(claims, "exp");
    nbf = numeric_date(claims, "nbf");
    iat = numeric_date(claims, "iat");
    if (exp < 0 || nbf == -2 || iat == -2) {
        (void)fa_fail(err, FA_EINVAL,
                      "token needs a numeric \"exp\" (and numeric nbf, iat if given)");
        goto cleanup;
    }
    if (now >= exp + a->leeway_s) {
        (void)fa_fail(err, FA_EINVAL, "token expired");
        goto cleanup;
    }
    if (nbf >= 0 && now + a->leeway_s < nbf) {
        (void)fa_fail(err, FA_EINVAL, "token is not valid yet");
        goto cleanup;
    }
    if (iat >= 0 && now + a->leeway_s < iat) {
        (void)fa_fail(err, FA_EINVAL, "token was issued in the future");
        goto cleanup;
    }
    sub = json_string_value(json_object_get(claims, "sub"));
    if (sub == NULL || sub[0] == '\0' || strlen(sub) > FA_AUTH_SUBJECT_MAX ||
        strlen(sub) != json_string_length(json_object_get(claims, "sub"))) {
        (void)fa_fail(err, FA_EINVAL, "token needs a subject of 1-%d bytes", FA_AUTH_SUBJECT_MAX);
        goto cleanup;
    }
    memcpy(subject, sub, strlen(sub) + 1);
    rc = FA_OK;
cleanup:
    json_decref(header);
    json_decref(claims);
    return rc;
}

int fa_auth_verify(char subject[FA_AUTH_SUBJECT_MAX + 1], const char **code_out, fa_auth *a,
                   const char *authorization, double now_s, fa_error *err)
{
    const char *tok;
    size_t len;
    int rc;

    subject[0] = '\0';
    *code_out = "auth_required";
    if (authorization == NULL || strncasecmp(authorization, "Bearer ", 7) != 0)
        return fa_fail(err, FA_EINVAL, "this server needs Authorization: Bearer <device token>");
    tok = authorization + 7;
    while (*tok == ' ')
        tok++;
    len = strlen(tok);
    *code_out = "invalid_token";
    if (len == 0)
        return fa_fail(err, FA_EINVAL, "the bearer token is empty");
    if (len > FA_AUTH_TOKEN_MAX)
        return fa_fail(err, FA_EINVAL, "the bearer token is over %d bytes", FA_AUTH_TOKEN_MAX);
    if ((rc = check_token(subject, a, tok, len, now_s, err)) == FA_OK)
        *code_out = NULL;
    return rc;
}
