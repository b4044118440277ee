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

/* Each test runs its rounds to their deadlines: about 10 s in a plain
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

    /* Closed exactly once: one new model version, one ledger entry, and
     * the ledger verifies. */
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
    {
        char env_db[1100], out[4096];
        (void)snprintf(env_db, sizeof(env_db), "DATABASE_URL=%s", db);
        const char *venv[] = {env_db, NULL};
        const char *argv[] = {"fedagg", "ledger", "verify", "--key-dir", keys, NULL};
        cr_assert_eq(fa_pgtest_run(out, sizeof(out), argv, venv), 0, "%s", out);
    }

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

/* ------------------------------ no update readable after its round closes */

#define WINDOW      64 /* bytes: a window this long found anywhere is a leak */
#define MAX_NEEDLES 64

/*
 * Every WINDOW-byte window of some secret byte strings (the needles),
 * indexed by a rolling hash, so that a haystack is searched for all of
 * them in one pass: a window found means a secret is readable.
 */
typedef struct scanner {
    unsigned char *data[MAX_NEEDLES]; /* owned */
    size_t len[MAX_NEEDLES];
    char name[MAX_NEEDLES][48];
    size_t n;
    uint64_t *hash; /* open addressing: cap slots */
    uint32_t *who;  /* needle index + 1; 0: empty slot */
    uint32_t *off;  /* window offset in the needle */
    size_t cap;
} scanner;

#define HASH_BASE 1099511628211ull

static uint64_t hash_window(const unsigned char *p)
{
    uint64_t h = 0;

    for (size_t i = 0; i < WINDOW; i++)
        h = h * HASH_BASE + p[i];
    return h;
}

/* HASH_BASE^(WINDOW-1), the weight of a window's first byte. */
static uint64_t hash_lead(void)
{
    uint64_t w = 1;

    for (size_t i = 1; i < WINDOW; i++)
        w *= HASH_BASE;
    return w;
}

static size_t slot_of(const scanner *s, uint64_t h)
{
    return (size_t)((h * 0x9E3779B97F4A7C15ull) >> 20) & (s->cap - 1);
}

/* Adds a copy of len bytes as needle name (in its raw form only). */
static void scanner_add(scanner *s, const void *data, size_t len, const char *name)
{
    cr_assert(s->n < MAX_NEEDLES && len >= WINDOW);
    s->data[s->n] = malloc(len);
    cr_assert_not_null(s->data[s->n]);
    memcpy(s->data[s->n], data, len);
    s->len[s->n] = len;
    (void)snprintf(s->name[s->n], sizeof(s->name[0]), "%s", name);
    s->n++;
}

/* Adds a secret as it would be readable: raw, lower-case hex (bytea's text
 * form) and base64 (the JSON form of an update). */
static void scanner_add_secret(scanner *s, const void *data, size_t len, const char *what)
{
    char name[48],
        *text = malloc(FA_BASE64_LEN(len) > 2 * len + 1 ? FA_BASE64_LEN(len) : 2 * len + 1);

    cr_assert_not_null(text);
    scanner_add(s, data, len, what);
    fa_hex_encode(text, data, len);
    (void)snprintf(name, sizeof(name), "%s (hex)", what);
    scanner_add(s, text, strlen(text), name);
    fa_base64_encode(text, FA_BASE64_LEN(len), data, len);
    (void)snprintf(name, sizeof(name), "%s (base64)", what);
    scanner_add(s, text, strlen(text), name);
    free(text);
}

static void scanner_build(scanner *s)
{
    size_t windows = 0;

    for (size_t k = 0; k < s->n; k++)
        windows += s->len[k] - WINDOW + 1;
    for (s->cap = 1024; s->cap < 2 * windows; s->cap *= 2)
        ;
    s->hash = calloc(s->cap, sizeof(*s->hash));
    s->who = calloc(s->cap, sizeof(*s->who));
    s->off = calloc(s->cap, sizeof(*s->off));
    cr_assert(s->hash != NULL && s->who != NULL && s->off != NULL);
    for (size_t k = 0; k < s->n; k++)
        for (size_t i = 0; i + WINDOW <= s->len[k]; i++) {
            uint64_t h = hash_window(s->data[k] + i);
            size_t j = slot_of(s, h);
            while (s->who[j] != 0)
                j = (j + 1) & (s->cap - 1);
            s->hash[j] = h;
            s->who[j] = (uint32_t)k + 1;
            s->off[j] = (uint32_t)i;
        }
}

static void scanner_done(scanner *s)
{
    for (size_t k = 0; k < s->n; k++)
        free(s->data[k]);
    free(s->hash);
    free(s->who);
    free(s->off);
}

/* The first needle one of whose windows occurs in p[0..n), as index + 1; 0 if none. */
static size_t scanner_find(const scanner *s, const unsigned char *p, size_t n)
{
    const uint64_t lead = hash_lead();
    uint64_t h;

    if (n < WINDOW)
        return 0;
    h = hash_window(p);
    for (size_t i = 0;; i++) {
        for (size_t j = slot_of(s, h); s->who[j] != 0; j = (j + 1) & (s->cap - 1))
            if (s->hash[j] == h && memcmp(s->data[s->who[j] - 1] + s->off[j], p + i, WINDOW) == 0)
                return s->who[j];
        if (i + WINDOW >= n)
            return 0;
        h = (h - p[i] * lead) * HASH_BASE + p[i + WINDOW];
    }
}

typedef struct scan_result {
    long values;       /* column values searched */
    long hits;         /* values holding a secret, outside the scratch table */
    long scratch_hits; /* the same inside it */
    char first[256];   /* where the first hit outside it is */
} scan_result;

/*
 * Searches every value of every column of every table of db (in both the
 * text and the binary result format) for the scanner's needles.
 */
static void scan_db(scan_result *out, const scanner *s, const char *db, const char *scratch)
{
    PGconn *pg = fa_pgtest_connect(db);
    PGresult *cols = PQexec(pg, "SELECT c.table_schema, c.table_name, c.column_name"
                                " FROM information_schema.columns c"
                                " JOIN information_schema.tables t"
                                "   ON t.table_schema = c.table_schema"
                                "  AND t.table_name = c.table_name"
                                " WHERE t.table_type = 'BASE TABLE'"
                                "   AND c.table_schema NOT IN ('pg_catalog', 'information_schema')"
                                " ORDER BY 1, 2, 3");

    memset(out, 0, sizeof(*out));
    cr_assert_eq(PQresultStatus(cols), PGRES_TUPLES_OK, "%s", PQerrorMessage(pg));
    cr_assert_gt(PQntuples(cols), 10, "the database has too few columns to be fedagg's");
    for (int c = 0; c < PQntuples(cols); c++) {
        const char *table = PQgetvalue(cols, c, 1);
        char *schema_id = PQescapeIdentifier(pg, PQgetvalue(cols, c, 0), 256);
        char *table_id = PQescapeIdentifier(pg, table, 256);
        char *col_id = PQescapeIdentifier(pg, PQgetvalue(cols, c, 2), 256);
        char q[1024];

        cr_assert(schema_id != NULL && table_id != NULL && col_id != NULL);
        (void)snprintf(q, sizeof(q), "SELECT %s FROM %s.%s", col_id, schema_id, table_id);
        for (int format = 0; format <= 1; format++) {
            PGresult *res = PQexecParams(pg, q, 0, NULL, NULL, NULL, NULL, format);
            cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s: %s", q, PQerrorMessage(pg));
            for (int row = 0; row < PQntuples(res); row++) {
                if (PQgetisnull(res, row, 0))
                    continue;
                size_t k = scanner_find(s, (const unsigned char *)PQgetvalue(res, row, 0),
                                        (size_t)PQgetlength(res, row, 0));
                out->values++;
                if (k == 0)
                    continue;
                if (strcmp(table, scratch) == 0) {
                    out->scratch_hits++;
                } else if (out->hits++ == 0) {
                    (void)snprintf(out->first, sizeof(out->first), "%s.%s.%s row %d: %s",
                                   PQgetvalue(cols, c, 0), table, PQgetvalue(cols, c, 2), row,
                                   s->name[k - 1]);
                }
            }
            PQclear(res);
        }
        PQfreemem(schema_id);
        PQfreemem(table_id);
        PQfreemem(col_id);
    }
    PQclear(cols);
    PQfinish(pg);
}

/* A counter of url's /metrics, or -1 when it is not there. */
static long metric_of(const char *url, const char *name)
{
    fa_device_client *c = NULL;
    fa_error err = FA_ERROR_INIT;
    char *body = NULL, key[128];
    long status = 0, v = -1;

    cr_assert_eq(fa_device_client_new(&c, url, &err), FA_OK, "%s", err.msg);
    if (fa_device_http(&status, &body, NULL, c, "GET", "/metrics", NULL, NULL, 0, NULL, &err) ==
            FA_OK &&
        status == 200) {
        (void)snprintf(key, sizeof(key), "\n%s ", name);
        const char *at = strstr(body, key);
        if (at != NULL)
            v = strtol(at + strlen(key), NULL, 10);
    }
    free(body);
    fa_device_client_free(c);
    return v;
}

#define DEVICES 4

Test(nodes, no_update_is_readable_from_the_database_open_or_closed)
{
    char db[1024], keys[256], deadline_env[64], name[48], q[256];
    const double deadline = 5.0 * fa_pgtest_time_scale();
    const char *const env[] = {"FEDAGG_NUM_ITEMS=" ITEMS,
                               "FEDAGG_MIN_COHORT=2",
                               "FEDAGG_EPSILON_MAX=1000",
                               "FEDAGG_LOG_LEVEL=warn",
                               "FEDAGG_PARTIAL_VACUUM_COMMITS=1",
                               fa_pgtest_deadline_env(deadline_env, sizeof(deadline_env), deadline),
                               NULL};
    const size_t dim = fa_params_count(4);
    fa_test_server a, b;
    scanner s;
    scan_result open_scan, closed_scan;
    unsigned char *box[DEVICES];
    size_t box_len[DEVICES];
    int64_t r, base_version = 0;

    init_clients();
    fa_pgtest_create_db(db, sizeof(db));
    fa_test_keygen(keys, sizeof(keys));
    fa_test_server_start(&a, db, keys, env);
    fa_test_server_start(&b, db, keys, env);
    memset(&s, 0, sizeof(s));

    /* Each device posts through one of the two nodes; the test keeps the
     * sealed box it sent and the plaintext floats in it. */
    r = fa_test_fresh_round(db, 0.6 * deadline);
    for (unsigned d = 0; d < DEVICES; d++) {
        attempt t;
        float *delta = device_delta(dim, 100 + d);

        participate(&t, d % 2 == 0 ? a.url : b.url, dim, 100 + d, &box[d], &box_len[d]);
        cr_assert_eq(t.status, 202, "device %u: HTTP %ld", d, t.status);
        cr_assert_eq(t.round_id, r, "too slow: device %u posted to round %lld", d,
                     (long long)t.round_id);
        base_version = t.base_version;
        (void)snprintf(name, sizeof(name), "device %u's sealed box", d);
        scanner_add_secret(&s, box[d], box_len[d], name);
        (void)snprintf(name, sizeof(name), "device %u's plaintext floats", d);
        scanner_add_secret(&s, delta, dim * sizeof(float), name);
        free(delta);
    }
    scanner_build(&s);

    /* While the round is open its durable record is the nodes' partial
     * sums, sealed at rest: no ciphertext and no plaintext of an update is
     * readable from the database even before the close. */
    scan_db(&open_scan, &s, db, "");
    cr_assert_eq(open_scan.hits, 0, "round %lld is open and %ld values hold an update, first %s",
                 (long long)r, open_scan.hits, open_scan.first);
    (void)snprintf(q, sizeof(q),
                   "SELECT count(*) FROM partial_sums WHERE round_id = %lld AND folded > 0",
                   (long long)r);
    cr_assert(fa_test_sql_long(db, q) >= 1, "the open round has no partial sum");
    /* Each commit left its node's previous sum behind, dead: after each
     * one (partial_vacuum_commits = 1) the node's worker vacuums the table,
     * so the space of every superseded sum is free for reuse. The worker
     * runs after the 202 and merges requests that arrive while it is busy:
     * at least one VACUUM per node, in time. */
    long vacuums = 0, va = 0, vb = 0;
    for (int i = 0; i < 100; i++) {
        /* The nodes' counts first: each VACUUM they count is already in
         * PostgreSQL's (reported when it ends), so theirs cannot exceed it. */
        va = metric_of(a.url, "fedagg_partial_vacuums_total");
        vb = metric_of(b.url, "fedagg_partial_vacuums_total");
        vacuums = fa_test_sql_long(db, "SELECT vacuum_count FROM pg_stat_user_tables"
                                       " WHERE relname = 'partial_sums'");
        if (vacuums >= 2 && va >= 1 && vb >= 1)
            break;
        fa_test_sleep_ms(100);
    }
    cr_assert_geq(vacuums, 2, "the nodes did not vacuum their superseded partial sums");
    cr_assert(va >= 1 && vb >= 1, "the nodes counted %ld and %ld VACUUMs", va, vb);
    cr_assert_leq(va + vb, vacuums, "the nodes counted VACUUMs PostgreSQL did not run");

    /* The round closes at its deadline. */
    cr_assert_eq(fa_test_wait_version(a.url, base_version + 1, 60), base_version + 1);
    (void)snprintf(q, sizeof(q), "SELECT count(*) FROM rounds WHERE id = %lld AND state = 'closed'",
                   (long long)r);
    cr_assert_eq(fa_test_sql_long(db, q), 1);
    (void)snprintf(q, sizeof(q), "SELECT count(*) FROM partial_sums WHERE round_id = %lld",
                   (long long)r);
    cr_assert_eq(fa_test_sql_long(db, q), 0, "the closed round's partial sums are still stored");
    fa_test_server_stop(&a, SIGTERM);
    fa_test_server_stop(&b, SIGTERM);

    /* The scan must be able to fail: a slice of one box (raw) and of one
     * plaintext (hex, as text) planted in a scratch table are found. */
    {
        PGconn *pg = fa_pgtest_connect(db);
        char hex[2 * WINDOW + 1];
        float *delta = device_delta(dim, 100 + DEVICES - 1);
        const char *values[2];
        int lengths[2] = {WINDOW, 0}, formats[2] = {1, 0};

        fa_hex_encode(hex, (const unsigned char *)delta + 40, WINDOW);
        values[0] = (const char *)box[1] + 101;
        values[1] = hex;
        free(fa_pgtest_query(pg, "CREATE TABLE scan_planted (b bytea, t text)"));
        PGresult *res = PQexecParams(pg, "INSERT INTO scan_planted VALUES ($1, $2), (NULL, $2)", 2,
                                     NULL, values, lengths, formats, 0);
        cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQerrorMessage(pg));
        PQclear(res);
        PQfinish(pg);
        free(delta);
    }
    scan_db(&closed_scan, &s, db, "scan_planted");
    cr_assert_eq(closed_scan.scratch_hits, 3 * 2, "the scan missed planted secrets (found %ld)",
                 closed_scan.scratch_hits);
    cr_assert_eq(closed_scan.hits, 0,
                 "round %lld is closed, yet %ld values hold an update; first %s", (long long)r,
                 closed_scan.hits, closed_scan.first);
    fprintf(stderr, "nodes: round %lld closed: %ld values searched, none holds an update\n",
            (long long)r, closed_scan.values);
    scanner_done(&s);
    for (unsigned d = 0; d < DEVICES; d++)
        free(box[d]);
}
