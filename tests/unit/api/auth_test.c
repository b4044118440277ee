/*
 * Device tokens: every way a token can be wrong is refused with a reason,
 * and the good ones give their subject. Tokens are minted here with
 * libsodium (EdDSA) and OpenSSL (ES256), independently of the verifier.
 */
#include <criterion/criterion.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/auth.h"
#include "core/base64.h"
#include "privacy/crypto.h"

#define ISS "https://id.example.com"
#define AUD "fedagg"

static fa_crypto_sign_key *g_ed; /* EdDSA issuer key, kid "ed-1" */
static EVP_PKEY *g_ec;           /* ES256 issuer key, kid "ec-1" */
static char g_jwks[2048];
static double g_now;

static void b64url(char *out, size_t cap, const void *p, size_t n)
{
    fa_base64url_encode(out, cap, p, n);
}

static void setup(void)
{
    fa_error err = FA_ERROR_INIT;
    unsigned char x[32], y[32];
    char ex[64], ey[64], ed[64];
    BIGNUM *bx = NULL, *by = NULL;

    cr_assert_eq(fa_crypto_init(&err), FA_OK);
    cr_assert_eq(fa_crypto_sign_key_generate(&g_ed, &err), FA_OK);
    g_ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    cr_assert_not_null(g_ec);
    cr_assert_eq(EVP_PKEY_get_bn_param(g_ec, OSSL_PKEY_PARAM_EC_PUB_X, &bx), 1);
    cr_assert_eq(EVP_PKEY_get_bn_param(g_ec, OSSL_PKEY_PARAM_EC_PUB_Y, &by), 1);
    cr_assert_eq(BN_bn2binpad(bx, x, 32), 32);
    cr_assert_eq(BN_bn2binpad(by, y, 32), 32);
    BN_free(bx);
    BN_free(by);
    b64url(ex, sizeof(ex), x, 32);
    b64url(ey, sizeof(ey), y, 32);
    b64url(ed, sizeof(ed), fa_crypto_sign_key_public(g_ed), 32);
    (void)snprintf(g_jwks, sizeof(g_jwks),
                   "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\",\"kid\":\"ed-1\","
                   "\"alg\":\"EdDSA\",\"use\":\"sig\"},"
                   "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\",\"kid\":\"ec-1\"},"
                   "{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\",\"kid\":\"rsa-1\"}]}",
                   ed, ex, ey);
    g_now = (double)time(NULL);
}

static void teardown(void)
{
    fa_crypto_sign_key_free(g_ed);
    EVP_PKEY_free(g_ec);
}

TestSuite(auth, .init = setup, .fini = teardown);

/* header.claims signed with alg ("EdDSA", "ES256", or anything else: no signature). */
static char *mint(const char *header, const char *claims, const char *alg)
{
    char *tok = malloc(8192);
    char h[2048], c[4096], s[200];
    unsigned char sig[64];

    b64url(h, sizeof(h), header, strlen(header));
    b64url(c, sizeof(c), claims, strlen(claims));
    int n = snprintf(tok, 8192, "%s.%s", h, c);
    s[0] = '\0';
    if (strcmp(alg, "EdDSA") == 0) {
        fa_crypto_sign(sig, g_ed, tok, (size_t)n);
        b64url(s, sizeof(s), sig, 64);
    } else if (strcmp(alg, "ES256") == 0) {
        unsigned char der[80];
        size_t der_len = sizeof(der);
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        cr_assert_eq(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, g_ec), 1);
        cr_assert_eq(EVP_DigestSign(md, der, &der_len, (unsigned char *)tok, (size_t)n), 1);
        EVP_MD_CTX_free(md);
        const unsigned char *p = der;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
        cr_assert_not_null(es);
        cr_assert_eq(BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32), 32);
        cr_assert_eq(BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32), 32);
        ECDSA_SIG_free(es);
        b64url(s, sizeof(s), sig, 64);
    }
    (void)snprintf(tok + n, 8192 - (size_t)n, ".%s", s);
    return tok;
}

/* The claims text, in one of 32 static buffers (the cases hold several at once). */
static char *claims(const char *iss, const char *aud, double exp, const char *extra)
{
    static char ring[32][2048];
    static unsigned next;
    char *buf = ring[next++ % 32];
    (void)snprintf(buf, 2048, "{\"iss\":\"%s\",\"aud\":%s,\"sub\":\"tv-42\",\"exp\":%.0f%s}", iss,
                   aud, exp, extra != NULL ? extra : "");
    return buf;
}

static fa_auth *verifier(void)
{
    fa_auth *a = NULL;
    fa_error err = FA_ERROR_INIT;
    cr_assert_eq(fa_auth_new_from_text(&a, ISS, AUD, g_jwks, strlen(g_jwks), 60, &err), FA_OK, "%s",
                 err.msg);
    cr_assert_eq(fa_auth_key_count(a), 2, "the RSA key is not kept");
    return a;
}

/* Verifies "Bearer tok"; returns the error message ("" when it verified). */
static const char *check(fa_auth *a, const char *tok, char *subject)
{
    static fa_error err;
    static char header[9000];
    const char *code = NULL;

    memset(&err, 0, sizeof(err));
    (void)snprintf(header, sizeof(header), "Bearer %s", tok);
    if (fa_auth_verify(subject, &code, a, header, g_now, &err) == FA_OK) {
        cr_assert_null(code);
        return "";
    }
    cr_assert_str_eq(code, "invalid_token");
    return err.msg;
}

#define ED_HEADER "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"ed-1\"}"
#define EC_HEADER "{\"alg\":\"ES256\",\"kid\":\"ec-1\"}"

Test(auth, good_tokens_give_their_subject)
{
    fa_auth *a = verifier();
    char sub[FA_AUTH_SUBJECT_MAX + 1];
    char *t1 = mint(ED_HEADER, claims(ISS, "\"" AUD "\"", g_now + 600, NULL), "EdDSA");
    char *t2 = mint(EC_HEADER, claims(ISS, "[\"other\",\"" AUD "\"]", g_now + 600, NULL), "ES256");
    /* No kid: every key of the algorithm is tried. */
    char *t3 = mint("{\"alg\":\"EdDSA\"}", claims(ISS, "\"" AUD "\"", g_now + 600, NULL), "EdDSA");

    cr_assert_str_eq(check(a, t1, sub), "");
    cr_assert_str_eq(sub, "tv-42");
    cr_assert_str_eq(check(a, t2, sub), "");
    cr_assert_str_eq(check(a, t3, sub), "");
    free(t1);
    free(t2);
    free(t3);
    fa_auth_free(a);
}

Test(auth, every_bad_token_is_refused_with_its_reason)
{
    fa_auth *a = verifier();
    char sub[FA_AUTH_SUBJECT_MAX + 1], *t;
    const char *aud = "\"" AUD "\"";
    struct {
        const char *header, *claims, *alg, *reason;
    } cases[] = {
        {ED_HEADER, claims("https://evil.example", aud, g_now + 600, NULL), "EdDSA", "issuer"},
        {ED_HEADER, claims(ISS, "\"other\"", g_now + 600, NULL), "EdDSA", "audience"},
        {ED_HEADER, claims(ISS, "[\"other\"]", g_now + 600, NULL), "EdDSA", "audience"},
        {ED_HEADER, claims(ISS, aud, g_now - 61, NULL), "EdDSA", "expired"},
        {ED_HEADER, claims(ISS, aud, g_now + 600, ",\"nbf\":9999999999"), "EdDSA", "not valid yet"},
        {ED_HEADER, claims(ISS, aud, g_now + 600, ",\"iat\":9999999999"), "EdDSA", "future"},
        {ED_HEADER, "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"x\"}", "EdDSA", "exp"},
        {ED_HEADER, "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":9999999999}", "EdDSA",
         "subject"},
        {"{\"alg\":\"EdDSA\",\"kid\":\"nope\"}", claims(ISS, aud, g_now + 600, NULL), "EdDSA",
         "no EdDSA key with kid"},
        /* An EdDSA token naming the ES256 key: keys never change algorithm. */
        {"{\"alg\":\"EdDSA\",\"kid\":\"ec-1\"}", claims(ISS, aud, g_now + 600, NULL), "EdDSA",
         "no EdDSA key"},
        {"{\"alg\":\"none\"}", claims(ISS, aud, g_now + 600, NULL), "none", "not accepted"},
        {"{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}", claims(ISS, aud, g_now + 600, NULL), "none",
         "not accepted"},
        {"{\"alg\":\"EdDSA\",\"crit\":[\"exp\"]}", claims(ISS, aud, g_now + 600, NULL), "EdDSA",
         "critical"},
        {"{\"alg\":\"EdDSA\",\"typ\":\"JWE\"}", claims(ISS, aud, g_now + 600, NULL), "EdDSA",
         "type"},
        {"{\"alg\":\"EdDSA\",\"alg\":\"ES256\"}", claims(ISS, aud, g_now + 600, NULL), "EdDSA",
         "header is not a JSON object"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        t = mint(cases[i].header, cases[i].claims, cases[i].alg);
        const char *why = check(a, t, sub);
        cr_assert(strstr(why, cases[i].reason) != NULL, "case %zu: '%s' lacks '%s'", i, why,
                  cases[i].reason);
        free(t);
    }
    /* Within the leeway (60 s) an expired token still passes. */
    t = mint(ED_HEADER, claims(ISS, aud, g_now - 30, NULL), "EdDSA");
    cr_assert_str_eq(check(a, t, sub), "");
    free(t);
    fa_auth_free(a);
}

Test(auth, tampering_and_malformed_tokens_are_refused)
{
    fa_auth *a = verifier();
    char sub[FA_AUTH_SUBJECT_MAX + 1], hs[2048], *t;
    const char *aud = "\"" AUD "\"";
    const char *code = NULL;
    fa_error err = FA_ERROR_INIT;

    /* A flipped signature bit, then claims swapped under a valid signature. */
    t = mint(ED_HEADER, claims(ISS, aud, g_now + 600, NULL), "EdDSA");
    size_t n = strlen(t);
    t[n - 2] = t[n - 2] == 'A' ? 'B' : 'A';
    cr_assert(strstr(check(a, t, sub), "does not verify") != NULL);
    free(t);
    t = mint(ED_HEADER, claims(ISS, aud, g_now + 600, NULL), "EdDSA");
    char *other = mint(
        ED_HEADER, "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"admin\",\"exp\":9999999999}",
        "EdDSA");
    char *dot_t = strchr(t, '.'), *dot_o = strchr(other, '.');
    char forged[8192];
    (void)snprintf(forged, sizeof(forged), "%.*s%.*s%s", (int)(dot_t - t), t,
                   (int)(strrchr(other, '.') - dot_o), dot_o, strrchr(t, '.'));
    cr_assert(strstr(check(a, forged, sub), "does not verify") != NULL, "%s", forged);
    free(t);
    free(other);

    /* HS256 keyed with the public key (the classic algorithm confusion). */
    (void)snprintf(hs, sizeof(hs), "%s", "{\"alg\":\"HS256\",\"kid\":\"ed-1\"}");
    t = mint(hs, claims(ISS, aud, g_now + 600, NULL), "none");
    cr_assert(strstr(check(a, t, sub), "HS256 is not accepted") != NULL);
    free(t);

    /* Shapes: two parts, four parts, foreign characters, empty, oversized. */
    cr_assert(strstr(check(a, "abc.def", sub), "three") != NULL);
    cr_assert(strstr(check(a, "a.b.c.d", sub), "three") != NULL);
    cr_assert(strstr(check(a, "a+b.c/d.e=", sub), "outside base64url") != NULL);
    cr_assert(strstr(check(a, "", sub), "empty") != NULL);
    char *big = malloc(FA_AUTH_TOKEN_MAX + 10);
    memset(big, 'a', FA_AUTH_TOKEN_MAX + 1);
    big[FA_AUTH_TOKEN_MAX + 1] = '\0';
    cr_assert(strstr(check(a, big, sub), "over") != NULL);
    free(big);
    /* No header at all, or another scheme. */
    cr_assert_eq(fa_auth_verify(sub, &code, a, NULL, g_now, &err), FA_EINVAL);
    cr_assert_str_eq(code, "auth_required");
    cr_assert_eq(fa_auth_verify(sub, &code, a, "Basic dXNlcjpwYXNz", g_now, &err), FA_EINVAL);
    cr_assert_str_eq(code, "auth_required");
    fa_auth_free(a);
}

Test(auth, key_sets_are_checked_and_reloaded_from_their_file)
{
    fa_auth *a = NULL;
    fa_error err = FA_ERROR_INIT;
    char path[] = "/tmp/fa-jwks-XXXXXX", sub[FA_AUTH_SUBJECT_MAX + 1];
    int fd = mkstemp(path);
    const char *bad[] = {
        "[]",
        "{\"keys\":[]}",
        "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AAAA\"}]}",
        ("{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"alg\":\"ES256\","
         "\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}]}"),
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(fa_auth_new_from_text(&a, ISS, AUD, bad[i], strlen(bad[i]), 60, &err),
                     FA_EINVAL, "key set %zu was accepted", i);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, g_jwks, strlen(g_jwks)), (ssize_t)strlen(g_jwks));
    close(fd);
    cr_assert_eq(fa_auth_new(&a, ISS, AUD, path, 60, &err), FA_OK, "%s", err.msg);
    char *t = mint(ED_HEADER, claims(ISS, "\"" AUD "\"", g_now + 600, NULL), "EdDSA");
    cr_assert_str_eq(check(a, t, sub), "");
    /* A broken file on reload keeps the keys in use... */
    FILE *f = fopen(path, "w");
    fputs("{\"keys\":", f);
    fclose(f);
    cr_assert_eq(fa_auth_reload(a, &err), FA_EINVAL);
    cr_assert_str_eq(check(a, t, sub), "");
    /* ... and a new key set replaces them (the EdDSA key is gone). */
    const char *ec_only = strstr(g_jwks, "{\"kty\":\"EC\"");
    f = fopen(path, "w");
    fprintf(f, "{\"keys\":[%.*s]}", (int)(strstr(ec_only, "}") + 1 - ec_only), ec_only);
    fclose(f);
    cr_assert_eq(fa_auth_reload(a, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(fa_auth_key_count(a), 1);
    cr_assert(strstr(check(a, t, sub), "no EdDSA key") != NULL);
    free(t);
    unlink(path);
    fa_auth_free(a);
}
