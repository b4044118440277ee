/*
 * fedagg serve end to end: real PostgreSQL, real HTTP over loopback, real
 * sealed boxes. Each test starts its own server on its own database.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <pthread.h>
#include <time.h>

#include "core/digest.h"
#include "core/util.h"
#include "device/client.h"
#include "model/params.h"
#include "model/snapshot.h"
#include "pgtest.h"
#include "core/base64.h"
#include "privacy/crypto.h"
#include "privacy/keys.h"
#include "serve.h"

#define ITEMS 20
/* The server suite's round 1 never needs to end (its tests check in and
 * post once or twice): a deadline far away, so that no test can straddle
 * one. Suites whose rounds end use a deadline of a few seconds. */
static const char *const ENV[] = {"FEDAGG_NUM_ITEMS=20",
                                  "FEDAGG_MIN_COHORT=3",
                                  "FEDAGG_MAX_BODY_BYTES=1000000",
                                  "FEDAGG_EPSILON_MAX=1000",
                                  "FEDAGG_ROUND_DEADLINE_S=600",
                                  "FEDAGG_LOG_LEVEL=warn",
                                  NULL};

static fa_test_server g_srv;
static fa_device_client *g_c;
static fa_device_key g_key;
static size_t g_dim;

static void start_with(const char *const *env)
{
    char db[1024], keys[256];
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_crypto_init(&err), FA_OK);
    fa_pgtest_create_db(db, sizeof(db));
    fa_test_keygen(keys, sizeof(keys));
    fa_test_server_start(&g_srv, db, keys, env);
    cr_assert_eq(fa_device_client_new(&g_c, g_srv.url, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(fa_device_fetch_key(&g_key, g_c, &err), FA_OK, "%s", err.msg);
    g_dim = fa_params_count(ITEMS);
}

static void setup(void)
{
    start_with(ENV);
}

static void teardown(void)
{
    fa_device_client_free(g_c);
    fa_test_server_stop(&g_srv, SIGTERM);
}

TestSuite(server, .init = setup, .fini = teardown, .timeout = 180);

/* ------------------------------------------------------------- helpers */

static float *random_delta(unsigned seed)
{
    float *d = malloc(g_dim * sizeof(float));
    uint32_t x = 2463534242u ^ seed;
    for (size_t i = 0; i < g_dim; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        d[i] = ((float)(x % 2001) - 1000.0f) * 1e-5f;
    }
    return d;
}

static fa_device_round checkin(void)
{
    fa_device_round r;
    fa_error err = FA_ERROR_INIT;
    cr_assert_eq(fa_device_checkin(&r, g_c, NULL, &err), FA_OK, "%s", err.msg);
    cr_assert(r.selected);
    return r;
}

/* Checks in and posts a random update; returns the HTTP status. */
static long participate(unsigned seed, char *receipt)
{
    fa_device_round r = checkin();
    float *d = random_delta(seed);
    fa_error err = FA_ERROR_INIT;
    long status = 0;
    char code[64];
    cr_assert_eq(fa_device_post_update(&status, receipt, code, 64, g_c, &g_key, r.token,
                                       r.model_version, 10, d, g_dim, &err),
                 FA_OK, "%s", err.msg);
    free(d);
    return status;
}

static char *sql(const char *q)
{
    PGconn *pg = fa_pgtest_connect(g_srv.db);
    char *v = fa_pgtest_query(pg, q);
    PQfinish(pg);
    return v;
}

static long sql_long(const char *q)
{
    char *v = sql(q);
    long n = strtol(v, NULL, 10);
    free(v);
    return n;
}

struct resp {
    long status;
    char *body;
    size_t len;
    json_t *json;
};

static struct resp http(const char *method, const char *path, const char *ctype, const char *body,
                        size_t len, const char *header)
{
    struct resp r = {0, NULL, 0, NULL};
    fa_error err = FA_ERROR_INIT;
    cr_assert_eq(fa_device_http(&r.status, &r.body, &r.len, g_c, method, path, ctype, body, len,
                                header, &err),
                 FA_OK, "%s", err.msg);
    r.json = json_loads(r.body, 0, NULL);
    return r;
}

static void resp_done(struct resp *r)
{
    free(r->body);
    json_decref(r->json);
}

static const char *err_code(const struct resp *r)
{
    return json_string_value(json_object_get(json_object_get(r->json, "error"), "code"));
}

static const char *err_msg(const struct resp *r)
{
    return json_string_value(json_object_get(json_object_get(r->json, "error"), "message"));
}

static void sleep_s(double s)
{
    struct timespec t = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&t, NULL);
}

/* The open round's id and deadline (seconds since the epoch). */
static int64_t open_round(double *deadline_out)
{
    struct resp r = http("GET", "/api/federated/round", NULL, NULL, 0, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    int64_t id = json_integer_value(json_object_get(r.json, "roundId"));
    if (deadline_out != NULL)
        *deadline_out = json_number_value(json_object_get(r.json, "deadline"));
    resp_done(&r);
    return id;
}

/*
 * Returns the id of an open round with at least left_s seconds before its
 * deadline, waiting for the next round when the open one has less: rounds
 * follow a fixed schedule, so after a restart or a wait a test may find
 * itself just before a deadline, and check-ins and posts there would race
 * it. The server and the test share the machine's clock.
 */
static int64_t fresh_round(double left_s)
{
    for (int i = 0; i < 600; i++) {
        double deadline;
        int64_t id = open_round(&deadline);
        if (deadline - fa_wall_seconds() >= left_s)
            return id;
        sleep_s(0.05);
    }
    cr_assert_fail("no round with %.1f s left within 30 s", left_s);
    return 0;
}

/*
 * The close takes a PostgreSQL advisory lock (src/store/close.c,
 * CLOSE_LOCK_KEY) so that one server process closes each round. Holding it
 * here is what a second process in the middle of a close looks like: the
 * round stays as it is while updates keep arriving, which makes what the
 * server answers at a deadline or at max_cohort deterministic.
 */
#define CLOSE_LOCK_KEY "7306916001716300140"

static PGconn *hold_closes(void)
{
    PGconn *pg = fa_pgtest_connect(g_srv.db);
    free(fa_pgtest_query(pg, "SELECT pg_advisory_lock(" CLOSE_LOCK_KEY ")"));
    return pg;
}

static void release_closes(PGconn *pg)
{
    PQfinish(pg); /* a session lock ends with its session */
}

/* Posts the update of seed with r's token and model version. */
static struct resp post_with(const fa_device_round *r, unsigned seed)
{
    float *d = random_delta(seed);
    char *body = NULL;
    size_t len = 0;
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(
        fa_device_update_body(&body, &len, &g_key, r->token, r->model_version, 10, d, g_dim, &err),
        FA_OK, "%s", err.msg);
    struct resp out = http("POST", "/api/federated/update", "application/json", body, len, NULL);
    free(body);
    free(d);
    return out;
}

/* 32 bytes as 64 lower-case hex digits. */
static void hex_of(char out[65], const unsigned char in[32])
{
    for (int i = 0; i < 32; i++)
        (void)snprintf(out + 2 * i, 3, "%02x", in[i]);
}

/* Number of ledger entries of kind in GET /api/privacy/ledger. */
static size_t ledger_entries(const char *kind)
{
    struct resp l = http("GET", "/api/privacy/ledger", NULL, NULL, 0, NULL);
    json_t *entries = json_object_get(l.json, "entries");
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(entries); i++)
        n += strcmp(json_string_value(json_object_get(json_array_get(entries, i), "kind")), kind) ==
             0;
    resp_done(&l);
    return n;
}

/* ----------------------------------------------------------- happy path */

/*
 * Rounds that end: every round runs to its deadline, so these tests take
 * a few deadlines each. 2 s is ample for the three to five small updates
 * a round gets here, even under ASan on a loaded machine; fresh_round
 * keeps a test's posts away from a deadline it has not waited for. Later
 * rounds nobody posts to are abandoned every 2 s meanwhile, so counts are
 * of releases, not of ledger entries.
 */
#define ROUND_S "2"
static const char *const ROUNDS_ENV[] = {"FEDAGG_NUM_ITEMS=20",
                                         "FEDAGG_MIN_COHORT=3",
                                         "FEDAGG_MAX_BODY_BYTES=1000000",
                                         "FEDAGG_EPSILON_MAX=1000",
                                         "FEDAGG_ROUND_DEADLINE_S=" ROUND_S,
                                         "FEDAGG_LOG_LEVEL=warn",
                                         NULL};

static void setup_rounds(void)
{
    start_with(ROUNDS_ENV);
}

TestSuite(rounds, .init = setup_rounds, .fini = teardown, .timeout = 180);

Test(rounds, three_rounds_publish_three_versions)
{
    char receipt[64], out[8192], env_db[1100];
    for (int round = 1; round <= 3; round++) {
        (void)fresh_round(1.0);
        for (int i = 0; i < 3; i++)
            cr_assert_eq(participate((unsigned)(round * 10 + i), receipt), 202);
        cr_assert_eq(fa_test_wait_version(g_srv.url, round, 60), round);
    }
    cr_assert_eq(sql_long("SELECT count(*) FROM privacy_ledger WHERE kind = 'release'"), 3);
    cr_assert_eq(sql_long("SELECT count(*) FROM model_versions"), 4);
    cr_assert_eq(sql_long("SELECT count(*) FROM rounds WHERE state = 'closed'"), 3);
    /* min_cohort updates arrived early in each round; none ended before its deadline. */
    cr_assert_eq(sql_long("SELECT count(*) FROM rounds WHERE ended_at < deadline"), 0);

    /* The ledger verifies with the server's public key. */
    (void)snprintf(env_db, sizeof(env_db), "DATABASE_URL=%s", g_srv.db);
    const char *env[] = {env_db, NULL};
    const char *argv[] = {"fedagg", "ledger", "verify", "--key-dir", g_srv.keydir, NULL};
    cr_assert_eq(fa_pgtest_run(out, sizeof(out), argv, env), 0, "%s", out);

    /* Version 3 in safetensors is the stored snapshot, byte for byte. */
    struct resp st = http("GET", "/api/federated/model/3.safetensors", NULL, NULL, 0, NULL);
    cr_assert_eq(st.status, 200);
    unsigned char sha[32];
    char hex[65];
    fa_sha256(sha, st.body, st.len);
    for (int i = 0; i < 32; i++)
        (void)snprintf(hex + 2 * i, 3, "%02x", sha[i]);
    char *stored = sql("SELECT encode(sha256, 'hex') || ':' || encode(sha256(snapshot), 'hex') "
                       "FROM model_versions WHERE version = 3");
    char expect[140];
    (void)snprintf(expect, sizeof(expect), "%s:%s", hex, hex);
    cr_assert_str_eq(stored, expect);
    free(stored);

    /* The TF.js form holds the same parameters. */
    fa_params *p = NULL;
    fa_snapshot_meta meta = FA_SNAPSHOT_META_INIT;
    fa_error err = FA_ERROR_INIT;
    cr_assert_eq(fa_snapshot_safetensors_parse(&p, &meta, (unsigned char *)st.body, st.len,
                                               FA_PARAMS_MAX_ITEMS, &err),
                 FA_OK, "%s", err.msg);
    cr_assert_eq(meta.version, 3);
    cr_assert_eq(meta.parent_version, 2);
    /* It names its release entry: that entry's seq and the hash before it. */
    cr_assert_eq(meta.ledger_seq,
                 sql_long("SELECT seq FROM privacy_ledger WHERE kind = 'release' AND "
                          "model_version = 3"));
    {
        char prev_hex[65];
        char *prev = sql("SELECT encode(prev_hash, 'hex') FROM privacy_ledger WHERE kind = "
                         "'release' AND model_version = 3");
        hex_of(prev_hex, meta.ledger_prev_hash);
        cr_assert_str_eq(prev_hex, prev);
        free(prev);
    }
    char *tfjs = NULL;
    size_t tfjs_len = 0;
    cr_assert_eq(fa_snapshot_tfjs_json(&tfjs, &tfjs_len, p, &meta, &err), FA_OK, "%s", err.msg);
    struct resp tj = http("GET", "/api/federated/model/3", NULL, NULL, 0, NULL);
    cr_assert_eq(tj.status, 200);
    cr_assert_eq(tj.len, tfjs_len);
    cr_assert_eq(memcmp(tj.body, tfjs, tfjs_len), 0);
    free(tfjs);
    fa_params_free(p);

    /* Accept: application/octet-stream selects safetensors too. */
    struct resp oc =
        http("GET", "/api/federated/model/3", NULL, NULL, 0, "Accept: application/octet-stream");
    cr_assert_eq(oc.status, 200);
    cr_assert_eq(oc.len, st.len);
    cr_assert_eq(memcmp(oc.body, st.body, st.len), 0);

    /* If-None-Match with the ETag gives 304. */
    char inm[128];
    (void)snprintf(inm, sizeof(inm), "If-None-Match: \"%s\"", hex);
    struct resp nm = http("GET", "/api/federated/model/3.safetensors", NULL, NULL, 0, inm);
    cr_assert_eq(nm.status, 304);
    cr_assert_eq(nm.len, 0);

    struct resp latest = http("GET", "/api/federated/model/latest", NULL, NULL, 0, NULL);
    cr_assert_eq(json_integer_value(json_object_get(latest.json, "version")), 3);
    cr_assert_str_eq(json_string_value(json_object_get(latest.json, "sha256")), hex);

    struct resp budget = http("GET", "/api/privacy/budget", NULL, NULL, 0, NULL);
    cr_assert_eq(json_integer_value(json_object_get(budget.json, "releases")), 3);
    cr_assert_gt(json_real_value(json_object_get(budget.json, "epsilonSpent")), 0.0);
    cr_assert_eq(ledger_entries("release"), 3);
    struct resp metrics = http("GET", "/metrics", NULL, NULL, 0, NULL);
    cr_assert(strstr(metrics.body, "fedagg_updates_accepted_total 9") != NULL, "%s", metrics.body);
    cr_assert(strstr(metrics.body, "fedagg_rounds_total{outcome=\"closed\"} 3") != NULL);
    resp_done(&st);
    resp_done(&tj);
    resp_done(&oc);
    resp_done(&nm);
    resp_done(&latest);
    resp_done(&budget);
    resp_done(&metrics);
}

Test(rounds, a_changed_server_optimizer_carries_the_model_on)
{
    char receipt[64], db[1024], keys[256];
    static const char *const FEDAVG[] = {"FEDAGG_NUM_ITEMS=20",
                                         "FEDAGG_MIN_COHORT=3",
                                         "FEDAGG_MAX_BODY_BYTES=1000000",
                                         "FEDAGG_EPSILON_MAX=1000",
                                         "FEDAGG_ROUND_DEADLINE_S=" ROUND_S,
                                         "FEDAGG_LOG_LEVEL=warn",
                                         "FEDAGG_SERVER_OPTIMIZER=fedavg",
                                         NULL};
    fa_error err = FA_ERROR_INIT;

    /* Round 1 under the default FedAdam. */
    for (int i = 0; i < 3; i++)
        cr_assert_eq(participate((unsigned)(50 + i), receipt), 202);
    cr_assert_eq(fa_test_wait_version(g_srv.url, 1, 60), 1);
    cr_assert_eq(sql_long("SELECT get_byte(optimizer_state, 12) FROM model_versions "
                          "WHERE version = 1"),
                 2, "FedAdam state");

    /* The operator switches to FedAvg: the server starts, the model goes on
     * from version 1 and the next state is FedAvg's. */
    (void)snprintf(db, sizeof(db), "%s", g_srv.db);
    (void)snprintf(keys, sizeof(keys), "%s", g_srv.keydir);
    fa_device_client_free(g_c);
    fa_test_server_stop(&g_srv, SIGTERM);
    fa_test_server_start(&g_srv, db, keys, FEDAVG);
    cr_assert_eq(fa_device_client_new(&g_c, g_srv.url, &err), FA_OK, "%s", err.msg);
    (void)fresh_round(1.0); /* round 2, or a later one if round 2 passed during the restart */
    for (int i = 0; i < 3; i++)
        cr_assert_eq(participate((unsigned)(60 + i), receipt), 202);
    cr_assert_eq(fa_test_wait_version(g_srv.url, 2, 60), 2);
    cr_assert_eq(sql_long("SELECT get_byte(optimizer_state, 12) FROM model_versions "
                          "WHERE version = 2"),
                 1, "FedAvg state");
    char *parent = sql("SELECT parent FROM model_versions WHERE version = 2");
    cr_assert_str_eq(parent, "1");
    free(parent);
}

Test(server, same_update_twice_is_idempotent)
{
    fa_device_round r = checkin();
    float *d = random_delta(1);
    char *body = NULL;
    size_t len = 0;
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_device_update_body(&body, &len, &g_key, r.token, 0, 5, d, g_dim, &err), FA_OK);
    struct resp a = http("POST", "/api/federated/update", "application/json", body, len, NULL);
    struct resp b = http("POST", "/api/federated/update", "application/json", body, len, NULL);
    cr_assert_eq(a.status, 202, "%s", a.body);
    cr_assert_eq(b.status, 202, "%s", b.body);
    cr_assert_str_eq(json_string_value(json_object_get(a.json, "receipt")),
                     json_string_value(json_object_get(b.json, "receipt")));
    cr_assert(json_is_true(json_object_get(b.json, "duplicate")));
    cr_assert_eq(sql_long("SELECT count(*) FROM updates"), 1);
    free(body);
    free(d);
    resp_done(&a);
    resp_done(&b);
}

Test(server, health_and_readiness)
{
    struct resp h = http("GET", "/healthz", NULL, NULL, 0, NULL);
    struct resp r = http("GET", "/readyz", NULL, NULL, 0, NULL);
    struct resp k = http("GET", "/api/federated/key", NULL, NULL, 0, NULL);
    struct resp rd = http("GET", "/api/federated/round", NULL, NULL, 0, NULL);
    cr_assert_eq(h.status, 200);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_eq(k.status, 200);
    cr_assert_eq(rd.status, 200);
    cr_assert_eq(json_integer_value(json_object_get(rd.json, "roundId")), 1);
    cr_assert_eq(json_integer_value(json_object_get(rd.json, "minCohort")), 3);
    resp_done(&h);
    resp_done(&r);
    resp_done(&k);
    resp_done(&rd);
}

/* ------------------------------------------------------------ bad input */

static long g_rows_before;

static long rows(void)
{
    return sql_long("SELECT (SELECT count(*) FROM updates) * 1000000 + "
                    "(SELECT count(*) FROM model_versions) * 1000 + "
                    "(SELECT count(*) FROM privacy_ledger)");
}

/* Posts body and checks status, error code, a message fragment, and that no row changed. */
static void expect_reject(const char *ctype, const char *body, size_t len, long status,
                          const char *code, const char *msg_part)
{
    g_rows_before = rows();
    struct resp r = http("POST", "/api/federated/update", ctype, body, len, NULL);
    cr_assert_eq(r.status, status, "status %ld, body %.300s", r.status, r.body);
    cr_assert_not_null(err_code(&r), "no error code in %.300s", r.body);
    cr_assert_str_eq(err_code(&r), code, "message: %s", err_msg(&r));
    cr_assert(strstr(err_msg(&r), msg_part) != NULL, "message '%s' lacks '%s'", err_msg(&r),
              msg_part);
    cr_assert_eq(rows(), g_rows_before, "a rejected update changed stored rows");
    resp_done(&r);
}

/* A valid update body with one thing changed by the caller. */
static char *body_with(const char *token, int64_t version, int64_t samples, const float *d,
                       size_t dim, size_t *len)
{
    char *body = NULL;
    fa_error err = FA_ERROR_INIT;
    cr_assert_eq(fa_device_update_body(&body, len, &g_key, token, version, samples, d, dim, &err),
                 FA_OK, "%s", err.msg);
    return body;
}

static char *replace_field(const char *body, const char *field, const char *value)
{
    json_t *j = json_loads(body, 0, NULL);
    json_t *v = json_loads(value, JSON_DECODE_ANY, NULL);
    json_object_set_new(j, field, v);
    char *out = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return out;
}

/* The binary form: the sealed box as the body, the fields as headers. */
static struct resp post_box(const fa_device_round *r, const unsigned char *box, size_t len,
                            const char *headers)
{
    char lines[512];

    cr_assert_eq(
        fa_device_update_headers(lines, sizeof(lines), &g_key, r->token, r->model_version, 10),
        FA_OK);
    return http("POST", "/api/federated/update", "application/octet-stream", (const char *)box, len,
                headers != NULL ? headers : lines);
}

/* A fresh update (delta from seed) sealed and posted in the binary form. */
static struct resp post_binary(const fa_device_round *r, unsigned seed, const char *headers)
{
    float *d = random_delta(seed);
    unsigned char *box = NULL;
    size_t len = 0;
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_device_update_box(&box, &len, &g_key, r->model_version, 10, d, g_dim, &err),
                 FA_OK, "%s", err.msg);
    struct resp out = post_box(r, box, len, headers);
    free(box);
    free(d);
    return out;
}

Test(server, binary_update_is_accepted_once_like_json)
{
    fa_device_round r = checkin();
    float *d = random_delta(3);
    unsigned char *box = NULL;
    size_t len = 0;
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_device_update_box(&box, &len, &g_key, r.model_version, 10, d, g_dim, &err),
                 FA_OK, "%s", err.msg);
    struct resp a = post_box(&r, box, len, NULL);
    struct resp b = post_box(&r, box, len, NULL);
    cr_assert_eq(a.status, 202, "%s", a.body);
    cr_assert_eq(b.status, 202, "%s", b.body);
    cr_assert(json_is_false(json_object_get(a.json, "duplicate")));
    cr_assert(json_is_true(json_object_get(b.json, "duplicate")), "a retry is a duplicate");
    cr_assert_str_eq(json_string_value(json_object_get(a.json, "receipt")),
                     json_string_value(json_object_get(b.json, "receipt")));
    /* The same box in the JSON form is the same update's retry too. */
    size_t b64_cap = FA_BASE64_LEN(len), cap = b64_cap + 512;
    char *b64 = malloc(b64_cap), *body = malloc(cap);
    fa_base64_encode(b64, b64_cap, box, len);
    int n = snprintf(body, cap,
                     "{\"modelVersion\":%lld,\"roundToken\":\"%s\",\"keyId\":\"%s\","
                     "\"numSamples\":10,\"encryptedGradients\":\"%s\"}",
                     (long long)r.model_version, r.token, g_key.key_id, b64);
    struct resp c =
        http("POST", "/api/federated/update", "application/json", body, (size_t)n, NULL);
    cr_assert_eq(c.status, 202, "%s", c.body);
    cr_assert(json_is_true(json_object_get(c.json, "duplicate")));
    /* A different box under the same token is a reuse, in either form. */
    struct resp e = post_binary(&r, 3, NULL);
    cr_assert_eq(e.status, 409, "%s", e.body);
    cr_assert_str_eq(err_code(&e), "token_reused");
    cr_assert_eq(sql_long("SELECT count(*) FROM updates"), 1);
    free(b64);
    free(body);
    free(box);
    free(d);
    resp_done(&a);
    resp_done(&b);
    resp_done(&c);
    resp_done(&e);
}

/* A binary post with one header line changed; checks status, code, message and stored rows. */
static void expect_binary_reject(const fa_device_round *r, const char *headers, long status,
                                 const char *code, const char *msg_part)
{
    g_rows_before = rows();
    struct resp x = post_binary(r, 5, headers);
    cr_assert_eq(x.status, status, "status %ld, body %.300s", x.status, x.body);
    cr_assert_str_eq(err_code(&x), code, "message: %s", err_msg(&x));
    cr_assert(strstr(err_msg(&x), msg_part) != NULL, "message '%s' lacks '%s'", err_msg(&x),
              msg_part);
    cr_assert_eq(rows(), g_rows_before, "a rejected update changed stored rows");
    resp_done(&x);
}

Test(server, binary_update_rejects_bad_headers_and_bodies)
{
    fa_device_round r = checkin();
    char h[512];

    (void)snprintf(h, sizeof(h),
                   "Fedagg-Model-Version: 0\nFedagg-Key-Id: %s\nFedagg-Num-Samples: 10",
                   g_key.key_id);
    expect_binary_reject(&r, h, 400, "invalid_field", "Fedagg-Round-Token");
    (void)snprintf(h, sizeof(h),
                   "Fedagg-Model-Version: zero\nFedagg-Round-Token: %s\nFedagg-Key-Id: %s\n"
                   "Fedagg-Num-Samples: 10",
                   r.token, g_key.key_id);
    expect_binary_reject(&r, h, 400, "invalid_field", "Fedagg-Model-Version");
    (void)snprintf(h, sizeof(h),
                   "Fedagg-Model-Version: 0\nFedagg-Round-Token: %s\nFedagg-Key-Id: %s", r.token,
                   g_key.key_id);
    expect_binary_reject(&r, h, 400, "invalid_field", "Fedagg-Num-Samples");
    (void)snprintf(h, sizeof(h),
                   "Fedagg-Model-Version: 0\nFedagg-Round-Token: %s\nFedagg-Key-Id: "
                   "0000000000000000\nFedagg-Num-Samples: 10",
                   r.token);
    expect_binary_reject(&r, h, 400, "unknown_key", "");
    (void)snprintf(h, sizeof(h),
                   "Fedagg-Model-Version: 7\nFedagg-Round-Token: %s\nFedagg-Key-Id: %s\n"
                   "Fedagg-Num-Samples: 10",
                   r.token, g_key.key_id);
    expect_binary_reject(&r, h, 409, "stale_model_version", "");

    /* An empty body, a body that is not a box, and the binary form elsewhere. */
    (void)snprintf(h, sizeof(h),
                   "Fedagg-Model-Version: 0\nFedagg-Round-Token: %s\nFedagg-Key-Id: %s\n"
                   "Fedagg-Num-Samples: 10",
                   r.token, g_key.key_id);
    g_rows_before = rows();
    struct resp e = http("POST", "/api/federated/update", "application/octet-stream", "", 0, h);
    cr_assert_eq(e.status, 400, "%s", e.body);
    cr_assert_str_eq(err_code(&e), "invalid_field");
    struct resp g = http("POST", "/api/federated/update", "application/octet-stream",
                         "not a sealed box at all, just text", 34, h);
    cr_assert_eq(g.status, 400, "%s", g.body);
    struct resp k =
        http("POST", "/api/federated/checkin", "application/octet-stream", "{}", 2, NULL);
    cr_assert_eq(k.status, 415, "%s", k.body);
    cr_assert_eq(rows(), g_rows_before);
    resp_done(&e);
    resp_done(&g);
    resp_done(&k);

    /* The token is still good: the rejections consumed nothing. */
    struct resp ok = post_binary(&r, 5, NULL);
    cr_assert_eq(ok.status, 202, "%s", ok.body);
    resp_done(&ok);
}

Test(server, rejects_malformed_json)
{
    expect_reject("application/json", "{\"modelVersion\": ", 17, 400, "invalid_json",
                  "malformed JSON");
}

Test(server, rejects_wrong_content_type)
{
    expect_reject("text/plain", "{}", 2, 415, "unsupported_media_type", "application/json");
}

Test(server, rejects_body_over_limit_with_413)
{
    size_t n = 2000000;
    char *big = malloc(n);
    memset(big, ' ', n);
    expect_reject("application/json", big, n, 413, "body_too_large", "over the limit");
    free(big);
}

Test(server, rejects_bad_base64)
{
    fa_device_round r = checkin();
    float *d = random_delta(2);
    size_t len;
    char *body = body_with(r.token, 0, 10, d, g_dim, &len);
    char *bad = replace_field(body, "encryptedGradients", "\"not*base64!\"");
    expect_reject("application/json", bad, strlen(bad), 400, "bad_base64", "base64");
    free(bad);
    free(body);
    free(d);
}

Test(server, rejects_box_sealed_to_another_key)
{
    fa_device_round r = checkin();
    float *d = random_delta(3);
    fa_device_key other = g_key;
    unsigned char sk[32];
    fa_crypto_random(sk, 32);
    fa_crypto_box_key *k = NULL;
    fa_error err = FA_ERROR_INIT;
    cr_assert_eq(fa_crypto_box_key_from_secret(&k, sk, &err), FA_OK);
    memcpy(other.pk, fa_crypto_box_key_public(k), 32);
    fa_crypto_box_key_free(k);
    char *body = NULL;
    size_t len = 0;
    cr_assert_eq(fa_device_update_body(&body, &len, &other, r.token, 0, 10, d, g_dim, &err), FA_OK);
    expect_reject("application/json", body, len, 400, "bad_box", "update did not decrypt");
    free(body);
    free(d);
}

Test(server, rejects_truncated_box)
{
    fa_device_round r = checkin();
    float *d = random_delta(4);
    size_t len;
    char *body = body_with(r.token, 0, 10, d, g_dim, &len);
    json_t *j = json_loads(body, 0, NULL);
    const char *b64 = json_string_value(json_object_get(j, "encryptedGradients"));
    size_t cap = strlen(b64), n = 0;
    unsigned char *box = malloc(cap);
    cr_assert_eq(fa_base64_decode(box, cap, &n, b64, strlen(b64)), FA_OK);
    char *shorter = malloc(FA_BASE64_LEN(n));
    fa_base64_encode(shorter, FA_BASE64_LEN(n), box, n - 3);
    json_object_set_new(j, "encryptedGradients", json_string(shorter));
    char *bad = json_dumps(j, JSON_COMPACT);
    expect_reject("application/json", bad, strlen(bad), 400, "bad_box", "update did not decrypt");
    free(bad);
    free(shorter);
    free(box);
    json_decref(j);
    free(body);
    free(d);
}

Test(server, rejects_header_json_mismatch)
{
    fa_device_round r = checkin();
    float *d = random_delta(5);
    size_t len;
    char *body = body_with(r.token, 0, 10, d, g_dim, &len);
    char *bad = replace_field(body, "numSamples", "11");
    expect_reject("application/json", bad, strlen(bad), 400, "header_mismatch", "disagrees");
    free(bad);
    free(body);
    free(d);
}

Test(server, rejects_wrong_dimension)
{
    fa_device_round r = checkin();
    float *d = random_delta(6);
    size_t len;
    char *body = body_with(r.token, 0, 10, d, g_dim - 1, &len);
    expect_reject("application/json", body, len, 400, "wrong_dimension", "dimension");
    free(body);
    free(d);
}

static void non_finite(float v)
{
    fa_device_round r = checkin();
    float *d = random_delta(7);
    d[17] = v;
    size_t len;
    char *body = body_with(r.token, 0, 10, d, g_dim, &len);
    expect_reject("application/json", body, len, 400, "non_finite", "not finite");
    free(body);
    free(d);
}

Test(server, rejects_nan)
{
    non_finite(NAN);
}

Test(server, rejects_inf)
{
    non_finite(INFINITY);
}

Test(server, rejects_stale_model_version)
{
    fa_device_round r = checkin();
    float *d = random_delta(8);
    size_t len;
    char *body = body_with(r.token, 7, 10, d, g_dim, &len);
    expect_reject("application/json", body, len, 409, "stale_model_version",
                  "model version 7 is stale (round 1 uses 0)");
    free(body);
    free(d);
}

Test(server, rejects_unknown_key_id)
{
    fa_device_round r = checkin();
    float *d = random_delta(9);
    size_t len;
    char *body = body_with(r.token, 0, 10, d, g_dim, &len);
    char *bad = replace_field(body, "keyId", "\"0000000000000000\"");
    expect_reject("application/json", bad, strlen(bad), 400, "unknown_key", "unknown key id");
    free(bad);
    free(body);
    free(d);
}

Test(server, rejects_reused_token)
{
    fa_device_round r = checkin();
    float *d = random_delta(10);
    size_t len;
    char *body = body_with(r.token, 0, 10, d, g_dim, &len);
    struct resp ok = http("POST", "/api/federated/update", "application/json", body, len, NULL);
    cr_assert_eq(ok.status, 202, "%s", ok.body);
    d[0] += 0.5f;
    char *other = body_with(r.token, 0, 10, d, g_dim, &len);
    expect_reject("application/json", other, len, 409, "token_reused", "already used");
    resp_done(&ok);
    free(other);
    free(body);
    free(d);
}

Test(server, rejects_unknown_token)
{
    float *d = random_delta(11);
    size_t len;
    char *body = body_with("bm90LWEtcmVhbC10b2tlbg", 0, 10, d, g_dim, &len);
    expect_reject("application/json", body, len, 404, "unknown_token", "unknown participation");
    free(body);
    free(d);
}

Test(rounds, rejects_token_of_a_closed_round)
{
    char receipt[64];
    fa_device_round early = checkin(); /* a token for round 1, kept unused */
    for (int i = 0; i < 3; i++)
        cr_assert_eq(participate((unsigned)(20 + i), receipt), 202);
    cr_assert_eq(fa_test_wait_version(g_srv.url, 1, 60), 1);
    (void)fresh_round(1.0); /* no round ends while expect_reject counts rows */
    float *d = random_delta(12);
    size_t len;
    char *body = body_with(early.token, 0, 10, d, g_dim, &len);
    expect_reject("application/json", body, len, 409, "round_closed", "round 1 is closed");
    free(body);
    free(d);
}

Test(server, rejects_bad_num_samples)
{
    fa_device_round r = checkin();
    float *d = random_delta(13);
    size_t len;
    char *body = body_with(r.token, 0, 0, d, g_dim, &len);
    expect_reject("application/json", body, len, 400, "bad_num_samples", "numSamples");
    free(body);
    body = body_with(r.token, 0, 2000000000, d, g_dim, &len);
    expect_reject("application/json", body, len, 400, "bad_num_samples", "numSamples");
    free(body);
    free(d);
}

Test(server, rejects_missing_field)
{
    expect_reject("application/json", "{\"modelVersion\": 0}", 19, 400, "invalid_field",
                  "numSamples");
}

Test(server, unknown_route_is_404_and_wrong_method_405)
{
    struct resp a = http("GET", "/api/federated/nothing", NULL, NULL, 0, NULL);
    cr_assert_eq(a.status, 404);
    cr_assert_str_eq(err_code(&a), "not_found");
    struct resp b = http("GET", "/api/federated/update", NULL, NULL, 0, NULL);
    cr_assert_eq(b.status, 405);
    cr_assert_str_eq(err_code(&b), "method_not_allowed");
    struct resp c = http("GET", "/api/federated/model/99", NULL, NULL, 0, NULL);
    cr_assert_eq(c.status, 404);
    cr_assert_str_eq(err_code(&c), "unknown_model_version");
    resp_done(&a);
    resp_done(&b);
    resp_done(&c);
}

/* The ledger key as GET /api/privacy/key serves it, and the audit page. */
Test(server, serves_the_ledger_key_and_the_audit_page)
{
    fa_keys *keys = NULL;
    fa_error err = FA_ERROR_INIT;
    unsigned char sha[32];
    char hex[65], id[17];

    cr_assert_eq(fa_keys_load(&keys, g_srv.keydir, &err), FA_OK, "%s", err.msg);
    hex_of(hex, fa_keys_sign_public(keys));
    fa_sha256(sha, fa_keys_sign_public(keys), 32);
    fa_keys_free(keys);
    fa_hex_encode(id, sha, 8);
    struct resp k = http("GET", "/api/privacy/key", NULL, NULL, 0, NULL);
    cr_assert_eq(k.status, 200, "%s", k.body);
    cr_assert_str_eq(json_string_value(json_object_get(k.json, "publicKey")), hex);
    cr_assert_str_eq(json_string_value(json_object_get(k.json, "keyId")), id);
    cr_assert_str_eq(json_string_value(json_object_get(k.json, "algorithm")), "ed25519");
    struct resp h = http("GET", "/api/privacy/ledger/head", NULL, NULL, 0, NULL);
    cr_assert_eq(h.status, 200, "%s", h.body);
    cr_assert_str_eq(json_string_value(json_object_get(h.json, "keyId")), id,
                     "the head names the key that signed it");

    struct resp page = http("GET", "/privacy/", NULL, NULL, 0, NULL);
    cr_assert_eq(page.status, 200);
    cr_assert_not_null(strstr(page.body, "<title>fedagg privacy ledger audit</title>"));
    struct resp index = http("GET", "/privacy/index.html", NULL, NULL, 0, NULL);
    cr_assert_eq(index.status, 200);
    cr_assert_eq(index.len, page.len);
    struct resp js = http("GET", "/privacy/verify.js", NULL, NULL, 0, NULL);
    cr_assert_eq(js.status, 200);
    cr_assert_not_null(strstr(js.body, "export async function verifyLedger"));
    struct resp bare = http("GET", "/privacy", NULL, NULL, 0, NULL);
    cr_assert_eq(bare.status, 308, "the bare folder redirects to /privacy/");
    struct resp none = http("GET", "/privacy/nothing.js", NULL, NULL, 0, NULL);
    cr_assert_eq(none.status, 404);
    cr_assert_str_eq(err_code(&none), "not_found");
    struct resp post = http("POST", "/privacy/", "application/json", "{}", 2, NULL);
    cr_assert_eq(post.status, 405);
    struct resp *all[] = {&k, &h, &page, &index, &js, &bare, &none, &post};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        resp_done(all[i]);
}

/* ------------------------------------------------------------- sampling */

/* 400 check-ins must fall in one round (the coin is per round): a far deadline. */
static const char *const SAMPLING_ENV[] = {"FEDAGG_NUM_ITEMS=20",
                                           "FEDAGG_MIN_COHORT=3",
                                           "FEDAGG_SAMPLING_RATE=0.5",
                                           "FEDAGG_EPSILON_MAX=1000",
                                           "FEDAGG_ROUND_DEADLINE_S=600",
                                           "FEDAGG_LOG_LEVEL=warn",
                                           NULL};

TestSuite(sampling, .fini = teardown, .timeout = 180);

Test(sampling, poisson_coin_per_device_and_round)
{
    int selected = 0, n = 200;
    fa_error err = FA_ERROR_INIT;

    start_with(SAMPLING_ENV);
    for (int i = 0; i < n; i++) {
        char id[32];
        fa_device_round r, again;
        (void)snprintf(id, sizeof(id), "device-%d", i);
        cr_assert_eq(fa_device_checkin(&r, g_c, id, &err), FA_OK, "%s", err.msg);
        selected += r.selected;
        /* The coin is flipped once per device and round. */
        int rc = fa_device_checkin(&again, g_c, id, &err);
        if (r.selected)
            cr_assert_eq(rc, FA_ECONFLICT, "a selected device checked in twice: %s", err.msg);
        else
            cr_assert(rc == FA_OK && !again.selected, "the coin changed for %s", id);
    }
    /* Binomial(200, 0.5): 100 +- 3 standard deviations (21). */
    cr_assert(selected > 79 && selected < 121, "%d of %d selected", selected, n);
    /* Only keyed hashes of the pseudonyms are stored. */
    cr_assert_eq(sql_long("SELECT count(*) FROM round_tokens WHERE pseudonym_hash = "
                          "sha256(convert_to('device-0', 'UTF8'))"),
                 0);
    char q[128];
    (void)snprintf(q, sizeof(q),
                   "SELECT count(*) FROM round_tokens WHERE pseudonym_hash IS NOT NULL");
    cr_assert_eq(sql_long(q), selected);
}

Test(sampling, checkin_without_device_id_is_rejected)
{
    start_with(SAMPLING_ENV);
    struct resp r = http("POST", "/api/federated/checkin", "application/json", "{}", 2, NULL);
    cr_assert_eq(r.status, 400, "%s", r.body);
    cr_assert_str_eq(err_code(&r), "bad_device_id");
    resp_done(&r);
}

Test(sampling, ledger_records_the_sampling_rate)
{
    /* Round 1 ends: about six check-ins and three posts fit in 3 s. */
    static const char *const env[] = {"FEDAGG_NUM_ITEMS=20",
                                      "FEDAGG_MIN_COHORT=3",
                                      "FEDAGG_SAMPLING_RATE=0.5",
                                      "FEDAGG_EPSILON_MAX=1000",
                                      "FEDAGG_ROUND_DEADLINE_S=3",
                                      "FEDAGG_LOG_LEVEL=warn",
                                      NULL};
    fa_error err = FA_ERROR_INIT;
    char receipt[64], code[64];
    int posted = 0;

    start_with(env);
    for (int i = 0; posted < 3 && i < 100; i++) {
        char id[32];
        fa_device_round r;
        (void)snprintf(id, sizeof(id), "dev-%d", i);
        cr_assert_eq(fa_device_checkin(&r, g_c, id, &err), FA_OK, "%s", err.msg);
        if (!r.selected)
            continue;
        float *d = random_delta((unsigned)i);
        long status = 0;
        cr_assert_eq(fa_device_post_update(&status, receipt, code, 64, g_c, &g_key, r.token,
                                           r.model_version, 10, d, g_dim, &err),
                     FA_OK);
        free(d);
        cr_assert_eq(status, 202, "%s", code);
        posted++;
    }
    cr_assert_eq(fa_test_wait_version(g_srv.url, 1, 60), 1);
    char *entry = sql("SELECT entry FROM privacy_ledger WHERE seq = 1");
    cr_assert(strstr(entry, "\"sampling_rate\":0.5,") != NULL,
              "ledger entry does not record q = 0.5: %.400s", entry);
    free(entry);
}

/* ------------------------------------------------------ round lifecycle */

TestSuite(lifecycle, .fini = teardown, .timeout = 180);

Test(lifecycle, release_over_budget_is_refused_and_recorded)
{
    /* sigma 1 at q = 1 costs about epsilon 4.4 for one release: over 1. */
    static const char *const env[] = {"FEDAGG_NUM_ITEMS=20",    "FEDAGG_MIN_COHORT=3",
                                      "FEDAGG_EPSILON_MAX=1",   "FEDAGG_ROUND_DEADLINE_S=1",
                                      "FEDAGG_LOG_LEVEL=error", NULL};
    char receipt[64];

    start_with(env);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(participate((unsigned)(40 + i), receipt), 202);
    for (int i = 0; i < 100 && sql_long("SELECT count(*) FROM privacy_ledger") == 0; i++)
        nanosleep(&(struct timespec){0, 100000000L}, NULL);
    cr_assert_eq(sql_long("SELECT count(*) FROM privacy_ledger WHERE kind = 'refusal' AND "
                          "cumulative_epsilon = 0"),
                 1);
    cr_assert_eq(sql_long("SELECT count(*) FROM rounds WHERE id = 1 AND state = 'refused'"), 1);
    cr_assert_eq(sql_long("SELECT count(*) FROM model_versions"), 1, "nothing is released");
    cr_assert_eq(sql_long("SELECT base_version FROM rounds WHERE state = 'open'"), 0);
    struct resp b = http("GET", "/api/privacy/budget", NULL, NULL, 0, NULL);
    cr_assert_eq(json_integer_value(json_object_get(b.json, "refusals")), 1);
    cr_assert_float_eq(json_real_value(json_object_get(b.json, "epsilonSpent")), 0.0, 0);
    resp_done(&b);
}

Test(lifecycle, round_below_minimum_at_deadline_is_abandoned)
{
    static const char *const env[] = {"FEDAGG_NUM_ITEMS=20",       "FEDAGG_MIN_COHORT=3",
                                      "FEDAGG_ROUND_DEADLINE_S=2", "FEDAGG_EPSILON_MAX=1000",
                                      "FEDAGG_LOG_LEVEL=error",    NULL};
    char receipt[64];

    start_with(env);
    cr_assert_eq(participate(50, receipt), 202);
    for (int i = 0; i < 100 && sql_long("SELECT count(*) FROM privacy_ledger") == 0; i++)
        nanosleep(&(struct timespec){0, 100000000L}, NULL);
    cr_assert_eq(sql_long("SELECT count(*) FROM privacy_ledger WHERE seq = 1 AND "
                          "kind = 'abandonment' AND cumulative_epsilon = 0"),
                 1);
    cr_assert_eq(sql_long("SELECT count(*) FROM rounds WHERE id = 1 AND state = 'abandoned'"), 1);
    cr_assert_eq(sql_long("SELECT count(*) FROM model_versions"), 1, "nothing is released");
    /* The next round is open on the same model, and its updates count anew. */
    cr_assert_eq(sql_long("SELECT base_version FROM rounds WHERE id = 2 AND state = 'open'"), 0);
    (void)fresh_round(1.0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(participate((unsigned)(60 + i), receipt), 202);
    cr_assert_eq(fa_test_wait_version(g_srv.url, 1, 60), 1);
    cr_assert_eq(sql_long("SELECT (metrics->>'cohort')::int FROM model_versions WHERE version = 1"),
                 3);
}

/* ---------------------------------------------- the deadline and the cap */

static long cohort_of_round(int64_t id)
{
    char q[160];
    (void)snprintf(q, sizeof(q),
                   "SELECT (entry::jsonb->'mechanism'->>'cohort_size')::bigint FROM privacy_ledger"
                   " WHERE round_id = %lld",
                   (long long)id);
    return sql_long(q);
}

Test(lifecycle, a_round_with_more_than_min_cohort_updates_releases_them_all_at_its_deadline)
{
    static const char *const env[] = {"FEDAGG_NUM_ITEMS=20",     "FEDAGG_MIN_COHORT=3",
                                      "FEDAGG_EPSILON_MAX=1000", "FEDAGG_ROUND_DEADLINE_S=3",
                                      "FEDAGG_LOG_LEVEL=warn",   NULL};
    char receipt[64];
    double deadline;

    start_with(env);
    cr_assert_eq(fresh_round(2.0), 1);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(participate((unsigned)(70 + i), receipt), 202);
    /* min_cohort updates are in and the worker has ticked since: the round
     * is still open, and takes more. */
    sleep_s(0.5);
    cr_assert_eq(sql_long("SELECT count(*) FROM privacy_ledger"), 0, "the round ended early");
    cr_assert_eq(open_round(&deadline), 1);
    cr_assert_lt(fa_wall_seconds(), deadline, "too slow: the deadline passed before the check");
    for (int i = 3; i < 5; i++)
        cr_assert_eq(participate((unsigned)(70 + i), receipt), 202);
    cr_assert_eq(fa_test_wait_version(g_srv.url, 1, 60), 1);
    cr_assert_eq(cohort_of_round(1), 5, "the release must hold every update answered 202");
    cr_assert_eq(sql_long("SELECT (metrics->>'cohort')::int FROM model_versions WHERE version = 1"),
                 5);
    cr_assert_eq(sql_long("SELECT count(*) FROM rounds WHERE id = 1 AND state = 'closed'"
                          " AND ended_at >= deadline"),
                 1);
}

Test(lifecycle, an_update_after_the_deadline_is_refused_with_round_closed_and_not_counted)
{
    static const char *const env[] = {"FEDAGG_NUM_ITEMS=20",     "FEDAGG_MIN_COHORT=3",
                                      "FEDAGG_EPSILON_MAX=1000", "FEDAGG_ROUND_DEADLINE_S=2",
                                      "FEDAGG_LOG_LEVEL=warn",   NULL};
    char receipt[64];
    double deadline;

    start_with(env);
    cr_assert_eq(fresh_round(1.5), 1);
    fa_device_round late = checkin(); /* a round 1 token, used after the deadline */
    for (int i = 0; i < 3; i++)
        cr_assert_eq(participate((unsigned)(90 + i), receipt), 202);
    /* Keep round 1 from being closed, so the late update meets the
     * deadline check itself rather than a closed round. */
    PGconn *lock = hold_closes();
    cr_assert_eq(open_round(&deadline), 1);
    sleep_s(deadline - fa_wall_seconds() + 0.1);
    struct resp r = post_with(&late, 99);
    cr_assert_eq(r.status, 409, "%s", r.body);
    cr_assert_str_eq(err_code(&r), "round_closed");
    cr_assert_str_eq(err_msg(&r), "round 1 has passed its deadline");
    resp_done(&r);
    /* No new member can check in either until the round is closed. */
    struct resp ck = http("POST", "/api/federated/checkin", "application/json", "{}", 2, NULL);
    cr_assert_eq(ck.status, 503, "%s", ck.body);
    resp_done(&ck);
    cr_assert_eq(sql_long("SELECT count(*) FROM updates WHERE round_id = 1"), 3);
    release_closes(lock);

    cr_assert_eq(fa_test_wait_version(g_srv.url, 1, 60), 1);
    cr_assert_eq(cohort_of_round(1), 3, "the late update must not be in the release");
    cr_assert_eq(sql_long("SELECT (metrics->>'cohort')::int FROM model_versions WHERE version = 1"),
                 3);
    struct resp m = http("GET", "/metrics", NULL, NULL, 0, NULL);
    cr_assert(strstr(m.body, "fedagg_updates_accepted_total 3\n") != NULL, "%s", m.body);
    cr_assert(strstr(m.body, "fedagg_updates_rejected_total{code=\"round_closed\"} 1\n") != NULL,
              "%s", m.body);
    resp_done(&m);
}

Test(lifecycle, a_full_round_refuses_the_next_update_with_round_full_and_is_abandoned)
{
    /* max_cohort 3 above min_cohort 2, and a deadline far away: only the
     * cap can end round 1 within this test. */
    static const char *const env[] = {"FEDAGG_NUM_ITEMS=20",
                                      "FEDAGG_MIN_COHORT=2",
                                      "FEDAGG_MAX_COHORT=3",
                                      "FEDAGG_EPSILON_MAX=1000",
                                      "FEDAGG_ROUND_DEADLINE_S=60",
                                      "FEDAGG_LOG_LEVEL=warn",
                                      NULL};
    fa_device_round dev[4];

    start_with(env);
    for (int i = 0; i < 4; i++)
        dev[i] = checkin();
    /* Without this the worker abandons the round as soon as the third
     * update fills it, and the fourth meets a closed round instead. */
    PGconn *lock = hold_closes();
    for (int i = 0; i < 3; i++) {
        struct resp r = post_with(&dev[i], (unsigned)(80 + i));
        cr_assert_eq(r.status, 202, "%s", r.body);
        resp_done(&r);
    }
    struct resp full = post_with(&dev[3], 83);
    cr_assert_eq(full.status, 409, "%s", full.body);
    cr_assert_str_eq(err_code(&full), "round_full");
    cr_assert(strstr(err_msg(&full), "round 1 is full") != NULL, "%s", err_msg(&full));
    resp_done(&full);
    cr_assert_eq(sql_long("SELECT count(*) FROM updates WHERE round_id = 1"), 3);
    release_closes(lock);

    /* Abandoned at once, nothing released, long before its deadline. */
    for (int i = 0; i < 200 && open_round(NULL) == 1; i++)
        sleep_s(0.05);
    cr_assert_eq(sql_long("SELECT count(*) FROM rounds WHERE id = 1 AND state = 'abandoned'"
                          " AND ended_at < deadline"),
                 1);
    cr_assert_eq(sql_long("SELECT count(*) FROM privacy_ledger WHERE round_id = 1 AND"
                          " kind = 'abandonment' AND cumulative_epsilon = 0"),
                 1);
    cr_assert_eq(cohort_of_round(1), 3);
    cr_assert_eq(sql_long("SELECT count(*) FROM model_versions"), 1, "nothing is released");
    /* The device turned away takes part in the next round. */
    fa_device_round again = checkin();
    cr_assert_eq(again.round_id, 2);
    struct resp ok = post_with(&again, 83);
    cr_assert_eq(ok.status, 202, "%s", ok.body);
    resp_done(&ok);
}

/* ------------------------------------------------- the ledger, paged */

Test(rounds, the_ledger_pages_and_its_head_is_signed)
{
    char receipt[64], hex[65];
    unsigned char sha[32], sig[64];
    fa_keys *keys = NULL;
    fa_error err = FA_ERROR_INIT;

    (void)fresh_round(1.0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(participate((unsigned)(70 + i), receipt), 202);
    cr_assert_eq(fa_test_wait_version(g_srv.url, 1, 60), 1);
    /* Later rounds nobody posts to end as abandonments: wait for three entries. */
    for (int i = 0; i < 200 && sql_long("SELECT count(*) FROM privacy_ledger") < 3; i++)
        sleep_s(0.05);
    cr_assert_geq(sql_long("SELECT count(*) FROM privacy_ledger"), 3);

    /* One entry per page; "text" is exactly what the hash covers. */
    struct resp p1 = http("GET", "/api/privacy/ledger?limit=1", NULL, NULL, 0, NULL);
    cr_assert_eq(p1.status, 200, "%s", p1.body);
    json_t *e1 = json_array_get(json_object_get(p1.json, "entries"), 0);
    cr_assert_eq(json_array_size(json_object_get(p1.json, "entries")), 1);
    cr_assert_eq(json_integer_value(json_object_get(e1, "seq")), 1);
    cr_assert_eq(json_integer_value(json_object_get(p1.json, "next")), 1);
    const char *text = json_string_value(json_object_get(e1, "text"));
    cr_assert_not_null(text);
    cr_assert(strncmp(text, "{\"format\":\"fedagg-ledger-v3\",", 29) == 0, "%s", text);
    fa_sha256(sha, text, strlen(text));
    hex_of(hex, sha);
    cr_assert_str_eq(hex, json_string_value(json_object_get(e1, "hash")));
    resp_done(&p1);
    struct resp p2 = http("GET", "/api/privacy/ledger?after=1&limit=1", NULL, NULL, 0, NULL);
    cr_assert_eq(json_integer_value(json_object_get(
                     json_array_get(json_object_get(p2.json, "entries"), 0), "seq")),
                 2);
    resp_done(&p2);
    /* Past the end: an empty page with no next. */
    struct resp p3 = http("GET", "/api/privacy/ledger?after=1000000", NULL, NULL, 0, NULL);
    cr_assert_eq(p3.status, 200);
    cr_assert_eq(json_array_size(json_object_get(p3.json, "entries")), 0);
    cr_assert(json_is_null(json_object_get(p3.json, "next")));
    resp_done(&p3);
    static const char *const BAD[] = {
        "/api/privacy/ledger?limit=0", "/api/privacy/ledger?limit=10001",
        "/api/privacy/ledger?after=-1", "/api/privacy/ledger?after=x"};
    for (size_t i = 0; i < sizeof(BAD) / sizeof(BAD[0]); i++) {
        struct resp b = http("GET", BAD[i], NULL, NULL, 0, NULL);
        cr_assert_eq(b.status, 400, "%s: %ld", BAD[i], b.status);
        resp_done(&b);
    }

    /* The head: a statement signed now with the ledger key over a verified head. */
    struct resp h = http("GET", "/api/privacy/ledger/head", NULL, NULL, 0, NULL);
    cr_assert_eq(h.status, 200, "%s", h.body);
    const json_int_t seq = json_integer_value(json_object_get(h.json, "seq"));
    const char *statement = json_string_value(json_object_get(h.json, "statement"));
    char want[200];
    cr_assert_geq(seq, 3);
    cr_assert_eq(sql_long("SELECT count(*) FROM privacy_ledger") >= seq, 1);
    (void)snprintf(want, sizeof(want),
                   "{\"format\":\"fedagg-ledger-head-v1\",\"seq\":%lld,\"hash\":\"%s\","
                   "\"signed_at\":%lld}",
                   (long long)seq, json_string_value(json_object_get(h.json, "hash")),
                   (long long)json_integer_value(json_object_get(h.json, "signedAt")));
    cr_assert_str_eq(statement, want);
    cr_assert_eq(fa_keys_load(&keys, g_srv.keydir, &err), FA_OK, "%s", err.msg);
    fa_sha256(sha, statement, strlen(statement));
    for (int i = 0; i < 64; i++) {
        unsigned v = 0;
        cr_assert_eq(
            sscanf(json_string_value(json_object_get(h.json, "signature")) + 2 * i, "%2x", &v), 1);
        sig[i] = (unsigned char)v;
    }
    cr_assert_eq(fa_crypto_sign_verify(sig, sha, 32, fa_keys_sign_public(keys)), FA_OK,
                 "the head statement does not verify under the ledger key");
    sha[0] ^= 1;
    cr_assert_neq(fa_crypto_sign_verify(sig, sha, 32, fa_keys_sign_public(keys)), FA_OK);
    fa_keys_free(keys);
    resp_done(&h);
}

/* ------------------------------------------------------------- rotation */

static const char *const ROTATION_ENV[] = {"FEDAGG_NUM_ITEMS=20",     "FEDAGG_MIN_COHORT=2",
                                           "FEDAGG_EPSILON_MAX=1000", "FEDAGG_ROUND_DEADLINE_S=8",
                                           "FEDAGG_LOG_LEVEL=warn",   NULL};

static void setup_rotation(void)
{
    start_with(ROTATION_ENV);
}

TestSuite(rotation, .init = setup_rotation, .fini = teardown, .timeout = 180);

/* Runs `fedagg keygen ARGS` on the server's key directory; its exit status. */
static int keygen(const char *args)
{
    char cmd[2600];
    (void)snprintf(cmd, sizeof(cmd), "\"%s\" keygen --out \"%s\" %s >/dev/null 2>&1",
                   getenv("FEDAGG_BIN"), g_srv.keydir, args);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Stops the server and starts it again on the same database and keys. */
static void restart(void)
{
    fa_error err = FA_ERROR_INIT;
    char db[1024], keys[256];

    (void)snprintf(db, sizeof(db), "%s", g_srv.db);
    (void)snprintf(keys, sizeof(keys), "%s", g_srv.keydir);
    fa_device_client_free(g_c);
    fa_test_server_stop(&g_srv, SIGTERM);
    fa_test_server_start(&g_srv, db, keys, ROTATION_ENV);
    cr_assert_eq(fa_device_client_new(&g_c, g_srv.url, &err), FA_OK, "%s", err.msg);
}

Test(rotation, devices_on_the_old_key_finish_new_ones_use_the_new_and_a_retired_key_is_refused)
{
    fa_device_key old_key, new_key;
    fa_error err = FA_ERROR_INIT;
    char receipt[64], code[64], retire[1200], q[128];
    long status = 0;

    /* Device A seals its update to the key of the day and posts it. */
    (void)fresh_round(5.0);
    old_key = g_key;
    fa_device_round a = checkin();
    float *d = random_delta(41);
    cr_assert_eq(fa_device_post_update(&status, receipt, code, 64, g_c, &old_key, a.token,
                                       a.model_version, 10, d, g_dim, &err),
                 FA_OK, "%s", err.msg);
    cr_assert_eq(status, 202, "%s", code);

    /* The operator rotates and restarts: the new process announces the new
     * key and still accepts the replaced one. */
    cr_assert_eq(keygen("--rotate"), 0);
    restart();
    cr_assert_eq(fa_device_fetch_key(&new_key, g_c, &err), FA_OK, "%s", err.msg);
    cr_assert_str_neq(new_key.key_id, old_key.key_id);
    struct resp k = http("GET", "/api/federated/key", NULL, NULL, 0, NULL);
    json_t *ids = json_object_get(k.json, "acceptedKeyIds");
    cr_assert_eq(json_array_size(ids), 2, "%s", k.body);
    cr_assert_str_eq(json_string_value(json_array_get(ids, 0)), new_key.key_id);
    cr_assert_str_eq(json_string_value(json_array_get(ids, 1)), old_key.key_id);
    resp_done(&k);

    /* Device B uses the new key. A's acknowledged update is already in a
     * partial sum sealed at rest, not to the old key: retiring the old key
     * now loses nothing. */
    fa_device_round b = checkin();
    cr_assert_eq(b.round_id, a.round_id, "the round did not end while the server restarted");
    cr_assert_eq(fa_device_post_update(&status, receipt, code, 64, g_c, &new_key, b.token,
                                       b.model_version, 10, d, g_dim, &err),
                 FA_OK, "%s", err.msg);
    cr_assert_eq(status, 202, "%s", code);
    (void)snprintf(retire, sizeof(retire), "--retire %s --database-url \"%s\"", old_key.key_id,
                   g_srv.db);
    cr_assert_eq(keygen(retire), 0, "nothing stored is sealed to the old key");

    /* The round releases both updates at its deadline, A's included. */
    cr_assert_eq(fa_test_wait_version(g_srv.url, 1, 60), 1);
    (void)snprintf(q, sizeof(q), "SELECT count(*) FROM updates WHERE round_id = %lld",
                   (long long)a.round_id);
    cr_assert_eq(sql_long(q), 2);
    cr_assert_eq(ledger_entries("release"), 1);

    /* After a restart the retired key is refused. */
    restart();
    fa_device_round c = checkin();
    cr_assert_eq(fa_device_post_update(&status, receipt, code, 64, g_c, &old_key, c.token,
                                       c.model_version, 10, d, g_dim, &err),
                 FA_OK, "%s", err.msg);
    cr_assert_eq(status, 400);
    cr_assert_str_eq(code, "unknown_key");
    cr_assert_eq(fa_device_post_update(&status, receipt, code, 64, g_c, &new_key, c.token,
                                       c.model_version, 10, d, g_dim, &err),
                 FA_OK, "%s", err.msg);
    cr_assert_eq(status, 202, "%s", code);
    free(d);
}

/* ------------------------------------------------------------- parking */

/*
 * One HTTP thread, and a group commit that waits up to a second for eight
 * updates: an update waiting for its commit must not hold the thread, or
 * each commit would hold the one update that thread received.
 */
static const char *const PARK_ENV[] = {"FEDAGG_NUM_ITEMS=20",        "FEDAGG_MIN_COHORT=3",
                                       "FEDAGG_EPSILON_MAX=1000",    "FEDAGG_ROUND_DEADLINE_S=600",
                                       "FEDAGG_LOG_LEVEL=warn",      "FEDAGG_HTTP_THREADS=1",
                                       "FEDAGG_DB_POOL_SIZE=3",      "FEDAGG_COMMIT_BATCH_MAX=8",
                                       "FEDAGG_COMMIT_WAIT_MS=1000", NULL};

TestSuite(parking, .fini = teardown, .timeout = 180);

struct poster {
    pthread_t t;
    fa_device_round r;
    unsigned seed;
    long status;
    char receipt[64];
};

/* One device's post, on its own connection. */
static void *poster_main(void *arg)
{
    struct poster *p = arg;
    fa_device_client *c = NULL;
    fa_error err = FA_ERROR_INIT;
    float *d = random_delta(p->seed);
    char code[64];

    if (fa_device_client_new(&c, g_srv.url, &err) == FA_OK &&
        fa_device_post_update(&p->status, p->receipt, code, sizeof(code), c, &g_key, p->r.token,
                              p->r.model_version, 10, d, g_dim, &err) < 0)
        p->status = -1;
    fa_device_client_free(c);
    free(d);
    return NULL;
}

/* The value of an unlabelled metric in GET /metrics. */
static long metric(const char *name)
{
    struct resp r = http("GET", "/metrics", NULL, NULL, 0, NULL);
    char key[96];
    const char *at;
    long v = -1;

    cr_assert_eq(r.status, 200, "%s", r.body);
    (void)snprintf(key, sizeof(key), "\n%s ", name);
    if ((at = strstr(r.body, key)) != NULL)
        v = strtol(at + strlen(key), NULL, 10);
    resp_done(&r);
    cr_assert_geq(v, 0, "no %s in /metrics", name);
    return v;
}

/* Checks n devices in, then posts their updates at once. */
static void post_all(struct poster *p, int n)
{
    for (int i = 0; i < n; i++) {
        p[i].r = checkin();
        p[i].seed = 500u + (unsigned)i;
    }
    for (int i = 0; i < n; i++)
        cr_assert_eq(pthread_create(&p[i].t, NULL, poster_main, &p[i]), 0);
}

static void join_all(struct poster *p, int n)
{
    for (int i = 0; i < n; i++) {
        (void)pthread_join(p[i].t, NULL);
        cr_assert_eq(p[i].status, 202, "post %d: %ld", i, p[i].status);
    }
}

Test(parking, one_http_thread_commits_many_waiting_updates_together)
{
    struct poster p[8];
    char q[128];

    start_with(PARK_ENV);
    memset(p, 0, sizeof(p));
    post_all(p, 8);
    join_all(p, 8);
    (void)snprintf(q, sizeof(q), "SELECT count(*) FROM updates WHERE round_id = %lld",
                   (long long)p[0].r.round_id);
    cr_assert_eq(sql_long(q), 8);
    /* A thread held by each waiting update would make eight commits. */
    long commits = metric("fedagg_group_commits_total");
    cr_assert(commits >= 1 && commits < 8, "%ld group commits for 8 updates", commits);
    cr_assert_eq(metric("fedagg_updates_parked"), 0);
}

Test(parking, stopping_the_server_answers_the_updates_waiting_for_their_commit)
{
    struct poster p[3];
    char q[128];

    start_with(PARK_ENV);
    memset(p, 0, sizeof(p));
    post_all(p, 3);
    /* All three wait (fewer than eight: the commit waits its second). */
    for (int i = 0; i < 200 && metric("fedagg_updates_parked") < 3; i++)
        fa_test_sleep_ms(10);
    cr_assert_eq(metric("fedagg_updates_parked"), 3);
    fa_test_server_stop(&g_srv, SIGTERM);
    join_all(p, 3);
    (void)snprintf(q, sizeof(q), "SELECT count(*) FROM updates WHERE round_id = %lld",
                   (long long)p[0].r.round_id);
    cr_assert_eq(sql_long(q), 3);
}
