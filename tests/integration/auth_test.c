/*
 * Device authentication against a real server (auth = jwt): check-ins and
 * updates need a token from the configured issuer; the subject, not a
 * self-chosen deviceId, is the device (one check-in, so one token and one
 * update, per subject and round; a token is only good for the subject it
 * was issued to); the key set is re-read on SIGHUP. Every refusal is a
 * 401/403 with a code and changes no row.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"
#include "device/client.h"
#include "model/params.h"
#include "pgtest.h"
#include "core/base64.h"
#include "privacy/crypto.h"
#include "serve.h"

#define ITEMS 20
#define ISS   "https://id.example.test"

static fa_test_server g_srv;
static fa_crypto_sign_key *g_issuer, *g_other;
static char g_jwks_path[64] = "/tmp/fa-jwks-XXXXXX";
static fa_device_key g_key;
static size_t g_dim;

static void write_jwks(const fa_crypto_sign_key *k, const char *kid)
{
    char x[64];
    FILE *f = fopen(g_jwks_path, "w");

    cr_assert_not_null(f);
    fa_base64url_encode(x, sizeof(x), fa_crypto_sign_key_public(k), 32);
    fprintf(f, "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\",\"kid\":\"%s\"}]}\n",
            x, kid);
    fclose(f);
}

static void setup(void)
{
    char db[1024], keys[256], jwks_env[128];
    fa_error err = FA_ERROR_INIT;
    fa_device_client *c = NULL;
    int fd;

    cr_assert_eq(fa_crypto_init(&err), FA_OK);
    cr_assert_eq(fa_crypto_sign_key_generate(&g_issuer, &err), FA_OK);
    cr_assert_eq(fa_crypto_sign_key_generate(&g_other, &err), FA_OK);
    fd = mkstemp(g_jwks_path);
    cr_assert_geq(fd, 0);
    close(fd);
    write_jwks(g_issuer, "k1");
    (void)snprintf(jwks_env, sizeof(jwks_env), "FEDAGG_AUTH_JWKS_FILE=%s", g_jwks_path);
    const char *env[] = {"FEDAGG_NUM_ITEMS=20",
                         "FEDAGG_MIN_COHORT=3",
                         "FEDAGG_EPSILON_MAX=1000",
                         "FEDAGG_ROUND_DEADLINE_S=600",
                         "FEDAGG_LOG_LEVEL=warn",
                         "FEDAGG_AUTH=jwt",
                         "FEDAGG_AUTH_ISSUER=" ISS,
                         "FEDAGG_AUTH_AUDIENCE=fedagg-test",
                         jwks_env,
                         NULL};
    fa_pgtest_create_db(db, sizeof(db));
    fa_test_keygen(keys, sizeof(keys));
    fa_test_server_start(&g_srv, db, keys, env);
    cr_assert_eq(fa_device_client_new(&c, g_srv.url, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(fa_device_fetch_key(&g_key, c, &err), FA_OK, "%s", err.msg);
    fa_device_client_free(c);
    g_dim = fa_params_count(ITEMS);
}

static void teardown(void)
{
    fa_test_server_stop(&g_srv, SIGTERM);
    fa_crypto_sign_key_free(g_issuer);
    fa_crypto_sign_key_free(g_other);
    unlink(g_jwks_path);
}

TestSuite(auth, .init = setup, .fini = teardown, .timeout = 120);

/* A client carrying a token for sub signed by k (kid), expiring in exp_in seconds. */
static fa_device_client *client_as(const char *sub, const fa_crypto_sign_key *k, const char *kid,
                                   const char *aud, int64_t exp_in)
{
    fa_device_client *c = NULL;
    fa_error err = FA_ERROR_INIT;
    char *tok = NULL;

    cr_assert_eq(fa_device_client_new(&c, g_srv.url, &err), FA_OK, "%s", err.msg);
    if (sub != NULL) {
        cr_assert_eq(
            fa_device_mint_token(&tok, k, kid, ISS, aud, sub, (int64_t)time(NULL) + exp_in, &err),
            FA_OK, "%s", err.msg);
        cr_assert_eq(fa_device_client_set_token(c, tok, &err), FA_OK);
        free(tok);
    }
    return c;
}

static long rows(void)
{
    char q[] = "SELECT (SELECT count(*) FROM updates) * 1000 + (SELECT count(*) FROM round_tokens)";
    PGconn *pg = PQconnectdb(g_srv.db);
    PGresult *r = PQexec(pg, q);
    long n = PQresultStatus(r) == PGRES_TUPLES_OK ? strtol(PQgetvalue(r, 0, 0), NULL, 10) : -1;
    PQclear(r);
    PQfinish(pg);
    return n;
}

/* POST /api/federated/checkin {} as c: status, and the error code or token. */
static long checkin_as(fa_device_client *c, char *what, size_t cap)
{
    long st = 0;
    char *body = NULL;
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_device_http(&st, &body, NULL, c, "POST", "/api/federated/checkin",
                                "application/json", "{\"deviceId\":\"chosen-by-me\"}", 27, NULL,
                                &err),
                 FA_OK, "%s", err.msg);
    json_t *j = json_loads(body, 0, NULL);
    const char *v = st == 200
                        ? json_string_value(json_object_get(j, "roundToken"))
                        : json_string_value(json_object_get(json_object_get(j, "error"), "code"));
    (void)snprintf(what, cap, "%s", v != NULL ? v : "");
    json_decref(j);
    free(body);
    return st;
}

Test(auth, checkins_need_a_token_from_the_issuer)
{
    char what[128];
    long before = rows();
    struct {
        const char *sub;
        const fa_crypto_sign_key *k;
        const char *kid, *aud;
        int64_t exp_in;
        const char *code;
    } bad[] = {
        {NULL, NULL, NULL, NULL, 0, "auth_required"},
        {"tv-1", NULL, "k1", "fedagg-test", 600, "invalid_token"},   /* another signer */
        {"tv-1", NULL, "k2", "fedagg-test", 600, "invalid_token"},   /* unknown kid */
        {"tv-1", NULL, "k1", "someone-else", 600, "invalid_token"},  /* audience */
        {"tv-1", NULL, "k1", "fedagg-test", -3600, "invalid_token"}, /* expired */
    };
    bad[1].k = g_other;
    bad[2].k = g_issuer;
    bad[3].k = g_issuer;
    bad[4].k = g_issuer;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        fa_device_client *c =
            client_as(bad[i].sub, bad[i].k, bad[i].kid, bad[i].aud, bad[i].exp_in);
        cr_assert_eq(checkin_as(c, what, sizeof(what)), 401, "case %zu: %s", i, what);
        cr_assert_str_eq(what, bad[i].code, "case %zu", i);
        fa_device_client_free(c);
    }
    cr_assert_eq(rows(), before, "a refused check-in changed rows");

    /* The subject is the device: a second check-in in the round is refused,
     * whatever deviceId the body claims. */
    fa_device_client *c = client_as("tv-1", g_issuer, "k1", "fedagg-test", 600);
    cr_assert_eq(checkin_as(c, what, sizeof(what)), 200, "%s", what);
    cr_assert_eq(checkin_as(c, what, sizeof(what)), 409, "%s", what);
    cr_assert_str_eq(what, "already_checked_in");
    fa_device_client_free(c);
}

Test(auth, an_update_needs_its_own_subjects_token)
{
    char tok_a[128], tok_b[128], receipt[64], code[64];
    fa_device_client *a = client_as("phone-a", g_issuer, "k1", "fedagg-test", 600);
    fa_device_client *b = client_as("phone-b", g_issuer, "k1", "fedagg-test", 600);
    fa_device_client *anon = client_as(NULL, NULL, NULL, NULL, 0);
    fa_error err = FA_ERROR_INIT;
    float *d = calloc(g_dim, sizeof(float));
    long st = 0, before;

    cr_assert_eq(checkin_as(a, tok_a, sizeof(tok_a)), 200);
    cr_assert_eq(checkin_as(b, tok_b, sizeof(tok_b)), 200);
    before = rows();
    /* Without a bearer token, and with B's token under A's identity. */
    cr_assert_eq(
        fa_device_post_update(&st, receipt, code, 64, anon, &g_key, tok_a, 0, 5, d, g_dim, &err),
        FA_OK);
    cr_assert_eq(st, 401);
    cr_assert_str_eq(code, "auth_required");
    cr_assert_eq(
        fa_device_post_update(&st, receipt, code, 64, a, &g_key, tok_b, 0, 5, d, g_dim, &err),
        FA_OK);
    cr_assert_eq(st, 403);
    cr_assert_str_eq(code, "token_not_yours");
    cr_assert_eq(rows(), before);
    /* Each with its own token. */
    cr_assert_eq(
        fa_device_post_update(&st, receipt, code, 64, a, &g_key, tok_a, 0, 5, d, g_dim, &err),
        FA_OK);
    cr_assert_eq(st, 202, "%s", code);
    cr_assert_eq(
        fa_device_post_update(&st, receipt, code, 64, b, &g_key, tok_b, 0, 5, d, g_dim, &err),
        FA_OK);
    cr_assert_eq(st, 202, "%s", code);
    free(d);
    fa_device_client_free(a);
    fa_device_client_free(b);
    fa_device_client_free(anon);
}

Test(auth, the_key_set_is_reread_on_sighup)
{
    char what[128];
    fa_device_client *old = client_as("tv-9", g_issuer, "k1", "fedagg-test", 600);
    fa_device_client *fresh = client_as("tv-10", g_other, "k2", "fedagg-test", 600);

    cr_assert_eq(checkin_as(fresh, what, sizeof(what)), 401);
    write_jwks(g_other, "k2");
    cr_assert_eq(kill(g_srv.pid, SIGHUP), 0);
    /* The server takes signals once a second. */
    long st = 0;
    for (int i = 0; i < 50 && (st = checkin_as(fresh, what, sizeof(what))) == 401; i++)
        usleep(100 * 1000);
    cr_assert_eq(st, 200, "the new key was not loaded: %s", what);
    cr_assert_eq(checkin_as(old, what, sizeof(what)), 401, "the old key is still accepted");
    /* A broken key file on SIGHUP keeps the keys in use. */
    FILE *f = fopen(g_jwks_path, "w");
    fputs("{\"keys\": [", f);
    fclose(f);
    cr_assert_eq(kill(g_srv.pid, SIGHUP), 0);
    usleep(1500 * 1000);
    fa_device_client *again = client_as("tv-11", g_other, "k2", "fedagg-test", 600);
    cr_assert_eq(checkin_as(again, what, sizeof(what)), 200, "%s", what);
    fa_device_client_free(old);
    fa_device_client_free(fresh);
    fa_device_client_free(again);
}
