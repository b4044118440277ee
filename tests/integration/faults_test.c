/*
 * Faults caused for real: SIGKILL of the server while devices post and
 * while it closes a round, PostgreSQL stopped under load, and two servers
 * sharing one database.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"
#include "device/client.h"
#include "model/params.h"
#include "pgtest.h"
#include "serve.h"
#include "store/migrate.h"

TestSuite(faults, .timeout = 300);

static float *delta_for(size_t dim, unsigned seed)
{
    float *d = malloc(dim * sizeof(float));
    uint32_t x = 2463534242u ^ (seed * 2654435761u);
    for (size_t i = 0; i < dim; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        d[i] = ((float)(x % 2001) - 1000.0f) * 1e-5f;
    }
    return d;
}

/* One device: check in and post. Returns the HTTP status (0: unreachable). */
static long device_once(const char *url, size_t dim, unsigned seed, char *receipt, char *code)
{
    fa_device_client *c = NULL;
    fa_device_key key;
    fa_device_round r;
    fa_error err = FA_ERROR_INIT;
    long status = 0;
    float *d = NULL;

    receipt[0] = code[0] = '\0';
    if (fa_device_client_new(&c, url, &err) < 0)
        return 0;
    if (fa_device_fetch_key(&key, c, &err) < 0 || fa_device_checkin(&r, c, NULL, &err) < 0) {
        status = err.code == FA_EUNAVAIL && strstr(err.msg, "HTTP 503") != NULL ? 503 : 0;
        goto done;
    }
    d = delta_for(dim, seed);
    if (fa_device_post_update(&status, receipt, code, 64, c, &key, r.token, r.model_version, 10, d,
                              dim, &err) < 0)
        status = 0;
done:
    free(d);
    fa_device_client_free(c);
    return status;
}

/* ---------------------------------------------- posting during SIGKILL */

struct poster {
    const char *url;
    size_t dim;
    atomic_int stop;
    atomic_int accepted;
    char receipts[64][64];
};

static void *poster_main(void *arg)
{
    struct poster *p = arg;
    for (unsigned i = 0; i < 64 && !atomic_load(&p->stop); i++) {
        char receipt[64], code[64];
        long st = device_once(p->url, p->dim, 100 + i, receipt, code);
        if (st == 202) {
            int k = atomic_load(&p->accepted);
            (void)snprintf(p->receipts[k], 64, "%s", receipt);
            atomic_store(&p->accepted, k + 1);
        } else if (st == 0) {
            break; /* the server is gone */
        }
    }
    return NULL;
}

Test(faults, sigkill_while_posting_loses_no_accepted_update)
{
    /* Round 1 spans the kill and the restart: posting until four are
     * accepted, the kill, a restart and three more posts fit in 4 s
     * (times the build's slowness), after which round 1 ends. */
    char db[1024], keys[256], q[256], receipt[64], code[64], deadline[64];
    const char *env[] = {
        "FEDAGG_NUM_ITEMS=20",
        "FEDAGG_MIN_COHORT=6",
        "FEDAGG_LOG_LEVEL=warn",
        "FEDAGG_EPSILON_MAX=1000",
        fa_pgtest_deadline_env(deadline, sizeof(deadline), 4.0 * fa_pgtest_time_scale()),
        NULL};
    fa_test_server srv;
    struct poster p;
    pthread_t t;

    fa_pgtest_create_db(db, sizeof(db));
    fa_test_keygen(keys, sizeof(keys));
    fa_test_server_start(&srv, db, keys, env);
    memset(&p, 0, sizeof(p));
    p.url = srv.url;
    p.dim = fa_params_count(20);
    cr_assert_eq(pthread_create(&t, NULL, poster_main, &p), 0);
    while (atomic_load(&p.accepted) < 4)
        fa_test_sleep_ms(5);
    fa_test_server_stop(&srv, SIGKILL); /* mid-stream: a request is usually in flight */
    atomic_store(&p.stop, 1);
    pthread_join(t, NULL);
    int accepted = atomic_load(&p.accepted);

    /* Every 202 has its committed row. */
    for (int i = 0; i < accepted; i++) {
        (void)snprintf(q, sizeof(q), "SELECT count(*) FROM updates WHERE receipt = '%s'",
                       p.receipts[i]);
        cr_assert_eq(fa_test_sql_long(db, q), 1, "accepted update %s was lost", p.receipts[i]);
    }
    long stored = fa_test_sql_long(db, "SELECT count(*) FROM updates WHERE round_id = 1");
    cr_assert_geq(stored, accepted);

    /* Restart and post to the same round, then check that its release at
     * the deadline used every stored update, those from before the kill
     * (rebuilt from the store) and after. */
    fa_test_server_start(&srv, db, keys, env);
    for (unsigned i = 0; i < 3; i++)
        cr_assert_eq(device_once(srv.url, p.dim, 500 + i, receipt, code), 202, "%s", code);
    cr_assert_eq(
        fa_test_sql_long(db, "SELECT count(*) FROM rounds WHERE id = 1 AND state = 'open'"), 1,
        "too slow: round 1 ended before the posts after the restart");
    cr_assert_eq(fa_test_wait_version(srv.url, 1, 60), 1);
    cr_assert_eq(fa_test_sql_long(db, "SELECT (metrics->>'cohort')::int FROM model_versions "
                                      "WHERE version = 1"),
                 stored + 3);
    cr_assert_eq(fa_test_sql_long(db, "SELECT count(*) FROM updates WHERE round_id = 1"),
                 stored + 3);
    fa_test_server_stop(&srv, SIGTERM);
}

/* ------------------------------------------------- SIGKILL during close */

Test(faults, sigkill_around_round_close_publishes_exactly_once)
{
    /* A large model makes the close take long enough for the kill to land
     * before, during or after its commit; the outcome must be the same.
     * The close starts at the round's deadline (within one 200 ms worker
     * tick) and takes about 0.6 s in a plain build, 1 s under ASan: the
     * kill lands that long after the deadline. Three 5 MB updates are
     * posted in about 1.3 s (1.8 s under ASan) on an idle machine; the
     * deadline (8 s) leaves room for a loaded one, which has needed over 5 s. */
    char deadline_env[64];
    const char *env[] = {"FEDAGG_NUM_ITEMS=20000",
                         "FEDAGG_MIN_COHORT=3",
                         "FEDAGG_LOG_LEVEL=warn",
                         "FEDAGG_EPSILON_MAX=1000",
                         fa_pgtest_deadline_env(deadline_env, sizeof(deadline_env),
                                                fmax(8.0, 4.0 * fa_pgtest_time_scale())),
                         NULL};
    const long delays_ms[] = {0, 400, 1200};
    size_t dim = fa_params_count(20000);

    for (size_t k = 0; k < sizeof(delays_ms) / sizeof(delays_ms[0]); k++) {
        char db[1024], keys[256], receipt[64], code[64];
        fa_test_server srv;

        fa_pgtest_create_db(db, sizeof(db));
        fa_test_keygen(keys, sizeof(keys));
        fa_test_server_start(&srv, db, keys, env);
        for (unsigned i = 0; i < 3; i++)
            cr_assert_eq(device_once(srv.url, dim, i + 1, receipt, code), 202, "%s", code);
        double wait = fa_test_round_deadline(db, 1) - fa_wall_seconds();
        fa_test_sleep_ms((wait > 0 ? (long)(wait * 1000) : 0) + delays_ms[k]);
        fa_test_server_stop(&srv, SIGKILL);
        long before = fa_test_sql_long(db, "SELECT count(*) FROM model_versions");
        fa_test_server_start(&srv, db, keys, env);
        cr_assert_eq(fa_test_wait_version(srv.url, 1, 120), 1);
        fa_test_sleep_ms(500); /* give a second, wrong publication the chance to happen */
        cr_assert_eq(fa_test_sql_long(db, "SELECT count(*) FROM model_versions"), 2,
                     "delay %ld ms (versions before restart: %ld)", delays_ms[k], before);
        /* Later rounds, empty, may have been abandoned meanwhile. */
        cr_assert_eq(
            fa_test_sql_long(db, "SELECT count(*) FROM privacy_ledger WHERE kind = 'release'"), 1);
        cr_assert_eq(fa_test_sql_long(db, "SELECT count(*) FROM privacy_ledger WHERE round_id = 1"),
                     1);
        cr_assert_eq(fa_test_sql_long(db, "SELECT count(*) FROM rounds WHERE state = 'closed'"), 1);
        cr_assert_eq(fa_test_sql_long(db, "SELECT count(*) FROM rounds WHERE state = 'open'"), 1);
        fa_test_server_stop(&srv, SIGTERM);
    }
}

/* --------------------------------------------- PostgreSQL stopped under load */

static size_t discard(char *buf, size_t size, size_t n, void *arg)
{
    (void)buf;
    (void)arg;
    return size * n;
}

static size_t on_header(char *buf, size_t size, size_t n, void *arg)
{
    if (size * n > 12 && strncasecmp(buf, "Retry-After:", 12) == 0)
        *(int *)arg = 1;
    return size * n;
}

/* A check-in needs the database: while it is down the answer must be 503
 * with Retry-After. */
static long post_probe(const char *url, int *retry_after)
{
    char full[128];
    long status = 0;
    CURL *c = curl_easy_init();
    const char *body = "{\"modelVersion\":0,\"roundToken\":\"x\",\"keyId\":\"k\",\"numSamples\":1,"
                       "\"encryptedGradients\":\"AAAA\"}";
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");

    *retry_after = 0;
    (void)snprintf(full, sizeof(full), "%s/api/federated/checkin", url);
    curl_easy_setopt(c, CURLOPT_URL, full);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, retry_after);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return status;
}

struct loader {
    const char *url;
    size_t dim;
    atomic_int stop;
    atomic_int ok, unavailable, other;
    char receipts[256][64];
};

static void *loader_main(void *arg)
{
    struct loader *l = arg;
    for (unsigned i = 0; i < 256 && !atomic_load(&l->stop); i++) {
        char receipt[64], code[64];
        long st = device_once(l->url, l->dim, 1000 + i, receipt, code);
        if (st == 202) {
            int k = atomic_load(&l->ok);
            (void)snprintf(l->receipts[k], 64, "%s", receipt);
            atomic_store(&l->ok, k + 1);
        } else if (st == 503) {
            atomic_fetch_add(&l->unavailable, 1);
        } else {
            atomic_fetch_add(&l->other, 1);
        }
        fa_test_sleep_ms(20);
    }
    return NULL;
}

static int cluster(const char *verb, const char *dir)
{
    char out[2048];
    const char *argv[] = {fa_pgtest_cluster_script(), verb, dir, NULL};
    return fa_pgtest_run(out, sizeof(out), argv, NULL);
}

Test(faults, database_outage_gives_503_and_recovers_without_restart)
{
    /* Every post falls in round 1 (a far deadline): a 503 here is the
     * outage's, never a check-in at a round's deadline. */
    static const char *const env[] = {"FEDAGG_NUM_ITEMS=20", "FEDAGG_MIN_COHORT=1000",
                                      "FEDAGG_ROUND_DEADLINE_S=600", "FEDAGG_LOG_LEVEL=error",
                                      NULL};
    char dir[] = "/tmp/fa-outage-XXXXXX", conninfo[1024], keys[256], path[300], q[256];
    fa_test_server srv;
    struct loader l;
    pthread_t t;
    int retry_after = 0;

    cr_assert_not_null(mkdtemp(dir));
    cr_assert_eq(cluster("start", dir), 0);
    (void)snprintf(path, sizeof(path), "%s/conninfo", dir);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(fgets(conninfo, sizeof(conninfo), f));
    fclose(f);
    conninfo[strcspn(conninfo, "\n")] = '\0';
    fa_migrate_opts mo = FA_MIGRATE_OPTS_INIT;
    fa_error err = FA_ERROR_INIT;
    int applied = 0;
    cr_assert_eq(fa_migrate_run(&applied, conninfo, &mo, &err), FA_OK, "%s", err.msg);
    fa_test_keygen(keys, sizeof(keys));
    fa_test_server_start(&srv, conninfo, keys, env);

    memset(&l, 0, sizeof(l));
    l.url = srv.url;
    l.dim = fa_params_count(20);
    cr_assert_eq(pthread_create(&t, NULL, loader_main, &l), 0);
    while (atomic_load(&l.ok) < 3)
        fa_test_sleep_ms(10);
    cr_assert_eq(cluster("stop", dir), 0);
    int seen_503 = 0;
    for (int i = 0; i < 30 && !seen_503; i++) {
        seen_503 = post_probe(srv.url, &retry_after) == 503 && retry_after;
        fa_test_sleep_ms(100);
    }
    fa_test_sleep_ms(1500);
    int ok_during = atomic_load(&l.ok);
    cr_assert_eq(cluster("start", dir), 0);
    /* Recovery without restarting the server. */
    for (int i = 0; i < 100 && atomic_load(&l.ok) < ok_during + 3; i++)
        fa_test_sleep_ms(100);
    atomic_store(&l.stop, 1);
    pthread_join(t, NULL);
    cr_assert(seen_503, "no 503 with Retry-After while the database was down");
    cr_assert_gt(atomic_load(&l.unavailable), 0, "devices never saw 503");
    cr_assert_geq(atomic_load(&l.ok), ok_during + 3, "posting did not recover");
    cr_assert_eq(atomic_load(&l.other), 0, "unexpected statuses");
    for (int i = 0; i < atomic_load(&l.ok); i++) {
        (void)snprintf(q, sizeof(q), "SELECT count(*) FROM updates WHERE receipt = '%s'",
                       l.receipts[i]);
        cr_assert_eq(fa_test_sql_long(conninfo, q), 1, "202 without a committed row: %s",
                     l.receipts[i]);
    }
    fa_test_server_stop(&srv, SIGTERM);
    (void)cluster("destroy", dir);
}

/* ------------------------------------------------- two servers, one database */

Test(faults, two_servers_share_rounds_and_close_each_once)
{
    /* Both servers try to close each round at its deadline; 2 s holds a
     * round's four small posts with room to spare. */
    static const char *const env[] = {"FEDAGG_NUM_ITEMS=20",       "FEDAGG_MIN_COHORT=4",
                                      "FEDAGG_ROUND_DEADLINE_S=2", "FEDAGG_LOG_LEVEL=warn",
                                      "FEDAGG_EPSILON_MAX=1000",   NULL};
    char db[1024], keys[256], receipt[64], code[64];
    fa_test_server a, b;
    size_t dim = fa_params_count(20);

    fa_pgtest_create_db(db, sizeof(db));
    fa_test_keygen(keys, sizeof(keys));
    fa_test_server_start(&a, db, keys, env);
    fa_test_server_start(&b, db, keys, env);
    for (long round = 1; round <= 3; round++) {
        (void)fa_test_fresh_round(db, 1.0);
        for (unsigned i = 0; i < 4; i++) {
            const char *url = i % 2 == 0 ? a.url : b.url;
            cr_assert_eq(device_once(url, dim, (unsigned)round * 10 + i, receipt, code), 202,
                         "round %ld device %u: %s", round, i, code);
        }
        cr_assert_eq(fa_test_wait_version(b.url, round, 60), round);
    }
    fa_test_sleep_ms(500);
    cr_assert_eq(fa_test_sql_long(db, "SELECT count(*) FROM model_versions"), 4);
    cr_assert_eq(fa_test_sql_long(db, "SELECT count(*) FROM privacy_ledger WHERE kind = 'release'"),
                 3);
    cr_assert_eq(fa_test_sql_long(db, "SELECT count(*) FROM privacy_ledger WHERE round_id <= 3"),
                 3);
    cr_assert_eq(fa_test_sql_long(db, "SELECT count(*) FROM rounds WHERE state = 'closed'"), 3);
    fa_test_server_stop(&a, SIGTERM);
    fa_test_server_stop(&b, SIGTERM);
}
