/*
 * Several `fedagg serve` processes on one PostgreSQL, driven over HTTP:
 * a node killed mid-round loses none of the updates it acknowledged (the
 * survivor releases them, each exactly once, recomputed here with the
 * same seeded noise), and no update, sealed or plain, can be read from
 * the database once its round has closed.
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregator/round_math.h"
#include "core/base64.h"
#include "core/config.h"
#include "core/util.h"
#include "device/client.h"
#include "model/params.h"
#include "pgtest.h"
#include "privacy/crypto.h"
#include "privacy/noise.h"
#include "serve.h"

/* Each test runs its rounds to their deadlines: about 15 s in a plain
 * build, twice that under ASan. */
TestSuite(nodes, .timeout = 80);

#define NOISE_SEED "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed"
#define ITEMS      "4" /* item rows: the smallest model, about 10,600 parameters */

/* ------------------------------------------------------------- devices */

/* The update of device d: deterministic, norm 0.4 S to 2.5 S (S = 1), so
 * some are clipped and some are not. */
static float *device_delta(size_t dim, unsigned d)
{
    float *out = malloc(dim * sizeof(float));
    uint64_t x = 0x9E3779B97F4A7C15ull * (d + 1);
    double ss = 0.0, target = 0.4 + 0.3 * (double)(d % 8);

    cr_assert_not_null(out);
    for (size_t i = 0; i < dim; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out[i] = (float)((double)(x >> 11) / 9007199254740992.0 - 0.5);
        ss += (double)out[i] * out[i];
    }
    for (size_t i = 0; i < dim; i++)
        out[i] = (float)(out[i] * (target / sqrt(ss)));
    return out;
}

/* Samples device d claims: 5 to 24, against weight_cap_samples 16, so
 * some updates weigh less than 1. */
static int64_t device_samples(unsigned d)
{
    return 5 + (int64_t)((d * 7u) % 20u);
}

/* One device's participation, as the test saw it. */
typedef struct attempt {
    unsigned device;
    int node;         /* index of the server it talked to */
    int posted;       /* the update was sent (whatever came back) */
    long status;      /* HTTP status of the post; 0: no answer */
    int64_t round_id; /* from the check-in */
    int64_t base_version;
    char token[64];
    char receipt[64];
    int member; /* its update is in the round (set by the checks) */
} attempt;

/*
 * Device d checks in at url, seals its update to the server key and posts
 * it in the binary form; *box_out (may be NULL) receives the sealed box
 * exactly as sent (free()).
 */
static void participate(attempt *a, const char *url, size_t dim, unsigned d,
                        unsigned char **box_out, size_t *box_len_out)
{
    fa_device_client *c = NULL;
    fa_device_key key;
    fa_device_round r;
    fa_error err = FA_ERROR_INIT;
    unsigned char *box = NULL;
    size_t box_len = 0;
    char headers[512], *resp = NULL;
    float *delta = NULL;
    json_t *j = NULL;

    memset(a, 0, sizeof(*a));
    a->device = d;
    if (box_out != NULL)
        *box_out = NULL;
    if (fa_device_client_new(&c, url, &err) < 0 || fa_device_fetch_key(&key, c, &err) < 0 ||
        fa_device_checkin(&r, c, NULL, &err) < 0)
        goto done;
    a->round_id = r.round_id;
    a->base_version = r.model_version;
    (void)snprintf(a->token, sizeof(a->token), "%s", r.token);
    delta = device_delta(dim, d);
    if (fa_device_update_headers(headers, sizeof(headers), &key, r.token, r.model_version,
                                 device_samples(d)) < 0 ||
        fa_device_update_box(&box, &box_len, &key, r.model_version, device_samples(d), delta, dim,
                             &err) < 0)
        goto done;
    a->posted = 1;
    if (fa_device_http(&a->status, &resp, NULL, c, "POST", "/api/federated/update",
                       "application/octet-stream", box, box_len, headers, &err) < 0) {
        a->status = 0;
        goto done;
    }
    j = json_loads(resp, 0, NULL);
    if (a->status == 202) {
        const char *rc = json_string_value(json_object_get(j, "receipt"));
        (void)snprintf(a->receipt, sizeof(a->receipt), "%s", rc != NULL ? rc : "");
    }
    if (box_out != NULL) {
        *box_out = box;
        *box_len_out = box_len;
        box = NULL;
    }
done:
    json_decref(j);
    free(resp);
    free(box);
    free(delta);
    fa_device_client_free(c);
}

/* The test's view of the servers' configuration: the same "FEDAGG_KEY=value"
 * lines the servers get, applied over the defaults. */
static void config_of(fa_config *cfg, const char *const *env)
{
    fa_config_defaults(cfg);
    for (size_t i = 0; env[i] != NULL; i++) {
        char key[64];
        const char *eq = strchr(env[i], '=');
        size_t n = (size_t)(eq - env[i]) - strlen("FEDAGG_");
        fa_error err = FA_ERROR_INIT;

        cr_assert(eq != NULL && strncmp(env[i], "FEDAGG_", 7) == 0 && n < sizeof(key));
        for (size_t k = 0; k < n; k++)
            key[k] = (char)tolower((unsigned char)env[i][7 + k]);
        key[n] = '\0';
        cr_assert_eq(fa_config_set(cfg, key, eq + 1, &err), FA_OK, "%s", err.msg);
    }
}

/* Parameters of model version v as the server publishes them (new array). */
static float *model_of(const char *url, int64_t v, size_t dim)
{
    fa_device_client *c = NULL;
    fa_params *p = NULL;
    fa_error err = FA_ERROR_INIT;
    float *out = malloc(dim * sizeof(float));

    cr_assert_not_null(out);
    cr_assert_eq(fa_device_client_new(&c, url, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(fa_device_fetch_model(&p, c, v, &err), FA_OK, "model %lld: %s", (long long)v,
                 err.msg);
    cr_assert_eq(fa_params_len(p), dim);
    memcpy(out, fa_params_cdata(p), dim * sizeof(float));
    fa_params_free(p);
    fa_device_client_free(c);
    return out;
}

static double dist(const float *a, const float *b, size_t n)
{
    double s = 0.0;

    for (size_t i = 0; i < n; i++) {
        const double d = (double)a[i] - (double)b[i];
        s += d * d;
    }
    return sqrt(s);
}

static void init_clients(void)
{
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_crypto_init(&err), FA_OK, "%s", err.msg);
    cr_assert_eq(fa_device_global_init(&err), FA_OK, "%s", err.msg);
}

/* ------------------------------------------ one node dies mid-round */

#define MAX_ATTEMPTS 2048

struct run {
    const char *url[2];
    size_t dim;
    atomic_int stop;
    atomic_uint next_device;
    atomic_int acked[2]; /* 202s per node */
    pthread_mutex_t mu;
    attempt a[MAX_ATTEMPTS];
    size_t n;
};

struct poster {
    struct run *run;
    int node;
};

static void *poster_main(void *arg)
{
    struct poster *p = arg;
    struct run *run = p->run;

    while (!atomic_load(&run->stop)) {
        attempt a;
        unsigned d = atomic_fetch_add(&run->next_device, 1);

        participate(&a, run->url[p->node], run->dim, d, NULL, NULL);
        a.node = p->node;
        (void)pthread_mutex_lock(&run->mu);
        if (run->n < MAX_ATTEMPTS)
            run->a[run->n++] = a;
        (void)pthread_mutex_unlock(&run->mu);
        if (a.status == 202)
            atomic_fetch_add(&run->acked[p->node], 1);
        else if (a.status == 0)
            break; /* the node is gone (or never answered) */
    }
    return NULL;
}

Test(nodes, one_node_dies_mid_round_and_nothing_acknowledged_is_lost)
{
    char db[1024], keys[256], deadline_env[64], q[512];
    const double deadline = 6.0 * fa_pgtest_time_scale();
    const char *const env[] = {"FEDAGG_MODEL=ncf",
                               "FEDAGG_NUM_ITEMS=" ITEMS,
                               "FEDAGG_MIN_COHORT=2",
                               "FEDAGG_EPSILON_MAX=1000",
                               "FEDAGG_CLIP_NORM=1",
                               "FEDAGG_NOISE_MULTIPLIER=0.5",
                               "FEDAGG_WEIGHT_CAP_SAMPLES=16",
                               "FEDAGG_SERVER_OPTIMIZER=fedavg",
                               "FEDAGG_SERVER_LR=1",
                               "FEDAGG_NOISE_SEED=" NOISE_SEED,
                               "FEDAGG_LOG_LEVEL=warn",
                               fa_pgtest_deadline_env(deadline_env, sizeof(deadline_env), deadline),
                               NULL};
    static struct run run; /* large: not on the stack */
    struct poster posters[4];
    pthread_t th[4];
    fa_test_server a, b;
    fa_config cfg;
    int64_t r, base_version = -1;
    size_t acked = 0, extra = 0, in_flight_b = 0;

    init_clients();
    config_of(&cfg, env);
    fa_pgtest_create_db(db, sizeof(db));
    fa_test_keygen(keys, sizeof(keys));
    fa_test_server_start(&a, db, keys, env);
    fa_test_server_start(&b, db, keys, env);

    /* Post through both nodes, two devices at a time each, in a round
     * with most of its time ahead; kill B once both have acknowledged a
     * few (a post to B is then in flight, or about to be). */
    r = fa_test_fresh_round(db, 0.6 * deadline);
    memset(&run, 0, sizeof(run));
    (void)pthread_mutex_init(&run.mu, NULL);
    run.url[0] = a.url;
    run.url[1] = b.url;
    run.dim = fa_params_count(4);
    for (int i = 0; i < 4; i++) {
        posters[i].run = &run;
        posters[i].node = i % 2;
        cr_assert_eq(pthread_create(&th[i], NULL, poster_main, &posters[i]), 0);
    }
    for (int i = 0; i < 1000 && (atomic_load(&run.acked[0]) < 4 || atomic_load(&run.acked[1]) < 4);
         i++)
        fa_test_sleep_ms(5);
    fa_test_server_stop(&b, SIGKILL);
    fa_test_sleep_ms(300); /* A keeps accepting meanwhile */
    atomic_store(&run.stop, 1);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    cr_assert_geq(atomic_load(&run.acked[1]), 4, "B acknowledged only %d updates",
                  atomic_load(&run.acked[1]));
    cr_assert_gt(fa_test_round_deadline(db, r) - fa_wall_seconds(), 0.5,
                 "too slow: round %lld nearly ended while devices posted", (long long)r);

    /* Every acknowledged post was for round r, from a distinct device. */
    for (size_t i = 0; i < run.n; i++) {
        const attempt *t = &run.a[i];
        if (t->status != 202)
            continue;
        cr_assert_eq(t->round_id, r, "device %u posted to round %lld", t->device,
                     (long long)t->round_id);
        cr_assert(base_version < 0 || base_version == t->base_version);
        base_version = t->base_version;
        acked++;
    }
    cr_assert_eq(acked, (size_t)(atomic_load(&run.acked[0]) + atomic_load(&run.acked[1])));

    /* B stays dead: A alone closes round r at its deadline. */
    cr_assert_eq(fa_test_wait_version(a.url, base_version + 1, 60), base_version + 1);
    fa_test_sleep_ms(500); /* room for a second, wrong publication */
    const size_t dim = run.dim;
    float *base = model_of(a.url, base_version, dim);
    float *got = model_of(a.url, base_version + 1, dim);
    fa_test_server_stop(&a, SIGTERM);

    /* Closed exactly once: one new model version, one ledger entry. */
    cr_assert_eq(fa_test_sql_long(db, "SELECT count(*) FROM model_versions"), base_version + 2);
    (void)snprintf(q, sizeof(q), "SELECT count(*) FROM privacy_ledger WHERE round_id = %lld",
                   (long long)r);
    cr_assert_eq(fa_test_sql_long(db, q), 1);
    (void)snprintf(q, sizeof(q),
                   "SELECT model_version FROM privacy_ledger WHERE round_id = %lld"
                   " AND kind = 'release'",
                   (long long)r);
    cr_assert_eq(fa_test_sql_long(db, q), base_version + 1);
    (void)snprintf(q, sizeof(q), "SELECT count(*) FROM rounds WHERE id = %lld AND state = 'closed'",
                   (long long)r);
    cr_assert_eq(fa_test_sql_long(db, q), 1);

    /* Each receipt exactly once. A post that B made durable but could not
     * answer before it died may be in the round too: that is allowed
     * (durable, then 202), and only for a post to B left without answer. */
    for (size_t i = 0; i < run.n; i++) {
        const attempt *t = &run.a[i];
        if (t->status == 202) {
            (void)snprintf(q, sizeof(q),
                           "SELECT count(*) FROM updates WHERE receipt = '%s' AND round_id = %lld",
                           t->receipt, (long long)r);
            cr_assert_eq(fa_test_sql_long(db, q), 1,
                         "acknowledged update %s (device %u, node %c) is not in round %lld once",
                         t->receipt, t->device, t->node ? 'B' : 'A', (long long)r);
            run.a[i].member = 1;
            continue;
        }
        if (!t->posted)
            continue;
        in_flight_b += t->node == 1 && t->status == 0;
        (void)snprintf(q, sizeof(q),
                       "SELECT count(*) FROM updates"
                       " WHERE token_hash = sha256(convert_to('%s', 'UTF8'))",
                       t->token);
        long rows = fa_test_sql_long(db, q);
        cr_assert(rows == 0 || (t->node == 1 && t->status == 0),
                  "device %u: HTTP %ld from node %c, yet its update was stored", t->device,
                  t->status, t->node ? 'B' : 'A');
        if (rows == 1) {
            cr_assert_eq(t->round_id, r);
            run.a[i].member = 1;
            extra++;
        }
    }
    (void)snprintf(q, sizeof(q),
                   "SELECT (entry::jsonb->'mechanism'->>'cohort_size')::bigint"
                   " FROM privacy_ledger WHERE round_id = %lld",
                   (long long)r);
    long cohort = fa_test_sql_long(db, q);
    (void)snprintf(q, sizeof(q), "SELECT count(*) FROM updates WHERE round_id = %lld",
                   (long long)r);
    long rows = fa_test_sql_long(db, q);
    cr_assert_eq(rows, (long)(acked + extra), "round %lld holds %ld updates, %zu acknowledged",
                 (long long)r, rows, acked);
    cr_assert_eq(cohort, rows, "the ledger counts %ld updates, the round holds %ld", cohort, rows);
    fprintf(stderr,
            "nodes: round %lld: %zu acknowledged (A %d, B %d), %zu posts to B without answer, "
            "%zu of them stored\n",
            (long long)r, acked, atomic_load(&run.acked[0]), atomic_load(&run.acked[1]),
            in_flight_b, extra);

    /* The release recomputed from the members with the seeded noise:
     * base + (sum of clipped, weighted updates + Z) / denominator. */
    (void)snprintf(q, sizeof(q),
                   "SELECT (entry::jsonb->'mechanism'->>'denominator')::float8::bigint"
                   " FROM privacy_ledger WHERE round_id = %lld",
                   (long long)r);
    long denominator = fa_test_sql_long(db, q);
    cr_assert_eq(denominator, cfg.min_cohort);
    float *want = malloc(dim * sizeof(float));
    fa_round_sum *sum = NULL;
    fa_noise *nz = NULL;
    fa_error err = FA_ERROR_INIT;
    cr_assert_not_null(want);
    cr_assert_eq(fa_round_sum_new(&sum, dim, &err), FA_OK, "%s", err.msg);
    for (size_t i = 0; i < run.n; i++) {
        if (!run.a[i].member)
            continue;
        float *delta = device_delta(dim, run.a[i].device);
        cr_assert_eq(
            fa_round_sum_fold(sum, delta, device_samples(run.a[i].device), &cfg, NULL, &err), FA_OK,
            "%s", err.msg);
        free(delta);
    }
    cr_assert_eq(fa_round_noise(&nz, cfg.noise_seed, r, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(fa_round_sum_release(sum, nz, cfg.noise_multiplier * cfg.clip_norm,
                                      (double)denominator, &err),
                 FA_OK, "%s", err.msg);
    for (size_t i = 0; i < dim; i++)
        want[i] = base[i] + fa_round_sum_data(sum)[i];
    /* One update more or less moves the release by up to S / m = 0.5;
     * summation order only by float rounding. */
    double d = dist(got, want, dim);
    cr_assert(d < 1e-4, "the release is %.6g (S/m units: %.6g) from its members' recomputation", d,
              d * (double)denominator / cfg.clip_norm);
    fa_noise_free(nz);
    fa_round_sum_free(sum);
    free(base);
    free(got);
    free(want);
}
