/*
 * Multi-node load generator for bench/api/nodes.sh: many devices spread
 * round-robin over several `fedagg serve` nodes that share one database.
 * Check-ins and sealing happen before the clock starts; a pool of sealed
 * boxes is cycled over the devices' tokens (the server dedupes by token),
 * so memory stays bounded at any cohort. Prints one JSON line per mode.
 *
 *   bench_load baseline --server URL --database-url C --key-dir DIR
 *       decrypt-only opens/s (all cores) and raw libpq INSERTs/s of one box
 *   bench_load round --server URL [--server URL ...] --database-url C --cohort K
 *       accepted updates/s into one round, then its close latency
 *       (rounds.ended_at - rounds.deadline, and the closing node's
 *       fedagg_round_close_seconds gauge when it exposes it)
 *   bench_load rounds ... --rounds R --cohort K
 *       R rounds of K updates, then VACUUM, pg_database_size, and the size
 *       the same updates would take if every ciphertext were kept
 *   bench_load ceiling --server URL --database-url C --sink URL --cohort K
 *       K boxes posted to bench_sink (sink.c), which only receives them
 *       (/recv), then K it also opens (/open): the rate any server reaches
 *       here with this load generator beside it
 *
 * Other options: --clients C (concurrent connections, default 16),
 * --pool P (sealed boxes, default 64), --updates N (baseline), --decrypt-threads T.
 */
#include <ctype.h>
#include <dirent.h>
#include <getopt.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "baseline.h"
#include "core/util.h"
#include "device/client.h"
#include "model/params.h"
#include "privacy/crypto.h"
#include "privacy/keys.h"

#define MAX_NODES  16
#define MAX_STATUS 600

struct load {
    const char *urls[MAX_NODES];
    int nodes;
    const char *path; /* where updates are posted */
    const char *conninfo;
    PGconn *pg; /* the main thread's: round state and sizes */
    int clients;
    fa_device_key key;
    size_t dim;
    float *delta; /* changed a little between boxes so no two are alike */
    unsigned char **boxes;
    size_t *box_lens;
    int pool;
    int64_t pool_version; /* the model version the pool is sealed for, -1: none */
    char (*tokens)[64];   /* one per device */
    int64_t *round_ids;   /* the round each device's token is for */
    int64_t model_version;
    atomic_int status[MAX_STATUS]; /* posts by HTTP status; 0: no answer */
};

/* ============================================================== helpers */

/*
 * CPU time spent on this machine, in clock ticks, by kind of process: the
 * fedagg servers, PostgreSQL's processes, this load generator, everything
 * else, and idle (from /proc/stat). Taken around the timed posting, it says
 * where an accepted update's CPU went.
 */
enum { CPU_FEDAGG, CPU_POSTGRES, CPU_LOAD, CPU_OTHER, CPU_IDLE, CPU_KINDS };
static const char *const CPU_NAMES[CPU_KINDS] = {"fedagg", "postgres", "load", "other", "idle"};

static void cpu_sample(unsigned long long out[CPU_KINDS])
{
    char path[288], buf[1024];
    DIR *d = opendir("/proc");
    struct dirent *e;
    FILE *f;

    memset(out, 0, CPU_KINDS * sizeof(out[0]));
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        (void)snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        if ((f = fopen(path, "r")) == NULL)
            continue; /* gone */
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        (void)fclose(f);
        buf[n] = '\0';
        /* pid (comm) state ... field 14 utime, 15 stime; comm may hold spaces */
        char *open = strchr(buf, '('), *close = strrchr(buf, ')');
        unsigned long long ut = 0, st = 0;
        if (open == NULL || close == NULL ||
            sscanf(close + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) !=
                2)
            continue;
        *close = '\0';
        int kind = strtol(e->d_name, NULL, 10) == (long)getpid() ? CPU_LOAD
                   : strcmp(open + 1, "fedagg") == 0 || strcmp(open + 1, "bench_sink") == 0
                       ? CPU_FEDAGG
                   : strcmp(open + 1, "postgres") == 0 ? CPU_POSTGRES
                                                       : CPU_OTHER;
        out[kind] += ut + st;
    }
    if (d != NULL)
        (void)closedir(d);
    if ((f = fopen("/proc/stat", "r")) != NULL) {
        unsigned long long v[5] = {0};
        if (fscanf(f, "cpu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4]) == 5)
            out[CPU_IDLE] = v[3] + v[4]; /* idle + iowait */
        (void)fclose(f);
    }
}

/*
 * Prints "cpu_ms_per_update":{...}: CPU between two samples per accepted
 * update, the server's (fedagg or bench_sink) under server_name. A kind
 * whose processes exited between the samples can come out below zero
 * (their time left the sum): shown as 0.
 */
static void print_cpu(const unsigned long long a[CPU_KINDS], const unsigned long long b[CPU_KINDS],
                      int accepted, const char *server_name)
{
    const double ms_per_tick = 1000.0 / (double)sysconf(_SC_CLK_TCK);

    printf("\"cpu_ms_per_update\":{");
    for (int k = 0; k < CPU_KINDS; k++) {
        double ms =
            b[k] >= a[k] && accepted > 0 ? (double)(b[k] - a[k]) * ms_per_tick / accepted : 0.0;
        printf("%s\"%s\":%.3f", k ? "," : "", k == CPU_FEDAGG ? server_name : CPU_NAMES[k], ms);
    }
    printf("}");
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    (void)nanosleep(&ts, NULL);
}

/* Opens one client per node; a thread's devices use them round-robin. */
static int clients_new(fa_device_client **out, const struct load *l, fa_error *err)
{
    int rc;

    for (int n = 0; n < l->nodes; n++)
        if ((rc = fa_device_client_new(&out[n], l->urls[n], err)) < 0)
            return rc;
    return FA_OK;
}

static void clients_free(fa_device_client **c, int nodes)
{
    for (int n = 0; n < nodes; n++)
        fa_device_client_free(c[n]);
}

/* One row of sql ($1 = a round id) as text, or NULL when there is none; *res_out to PQclear. */
static const char *row_value(PGresult **res_out, PGconn *pg, const char *sql, int64_t id, int col)
{
    char idbuf[24];
    const char *values[1] = {idbuf};
    PGresult *r;

    (void)snprintf(idbuf, sizeof(idbuf), "%lld", (long long)id);
    r = PQexecParams(pg, sql, 1, NULL, values, NULL, NULL, 0);
    *res_out = r;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "bench_load: %s", PQerrorMessage(pg));
        return NULL;
    }
    if (PQntuples(r) < 1 || PQgetisnull(r, 0, col))
        return NULL;
    return PQgetvalue(r, 0, col);
}

/* The open round with an id above after_id: its id and deadline (epoch s). FA_ENOTFOUND. */
static int open_round(int64_t *id_out, double *deadline_out, PGconn *pg, int64_t after_id)
{
    PGresult *r = NULL;
    const char *v = row_value(&r, pg,
                              "SELECT id, extract(epoch FROM deadline) FROM rounds "
                              "WHERE state = 'open' AND id > $1::bigint",
                              after_id, 1);
    int rc = FA_ENOTFOUND;

    if (v != NULL && fa_parse_double(deadline_out, v) == FA_OK &&
        fa_parse_i64(id_out, PQgetvalue(r, 0, 0)) == FA_OK)
        rc = FA_OK;
    PQclear(r);
    return rc;
}

/* Seals the pool for model version v (once per version). */
static int seal_pool(struct load *l, int64_t v, fa_error *err)
{
    int rc;

    if (l->pool_version == v)
        return FA_OK;
    for (int i = 0; i < l->pool; i++) {
        free(l->boxes[i]);
        l->boxes[i] = NULL;
        if ((rc = fa_device_update_box(&l->boxes[i], &l->box_lens[i], &l->key, v, 10, l->delta,
                                       l->dim, err)) < 0)
            return rc;
        l->delta[(size_t)i % l->dim] += 1e-3f;
    }
    l->pool_version = v;
    return FA_OK;
}

/* ============================================================== devices */

static void *checkin_worker(void *arg)
{
    fa_bench_pool *p = arg;
    struct load *l = p->arg;
    fa_device_client *c[MAX_NODES] = {NULL};
    fa_error err = FA_ERROR_INIT;
    int i;

    if (clients_new(c, l, &err) < 0) {
        atomic_fetch_add(&p->failed, 1);
        goto cleanup;
    }
    while ((i = fa_bench_pool_take(p)) >= 0) {
        fa_device_round r;
        int rc = FA_EUNAVAIL;
        /* A 503 (database busy) is retried, as a device would. */
        for (int tries = 0; tries < 20 && rc == FA_EUNAVAIL; tries++) {
            if ((rc = fa_device_checkin(&r, c[i % l->nodes], NULL, &err)) == FA_EUNAVAIL)
                sleep_ms(100);
        }
        if (rc < 0 || !r.selected) {
            if (atomic_fetch_add(&p->failed, 1) == 0)
                fprintf(stderr, "bench_load: check-in: %s\n", err.msg);
            continue;
        }
        (void)snprintf(l->tokens[i], sizeof(l->tokens[i]), "%s", r.token);
        l->round_ids[i] = r.round_id;
        if (i == 0)
            l->model_version = r.model_version;
    }
cleanup:
    clients_free(c, l->nodes);
    return NULL;
}

static void *post_worker(void *arg)
{
    fa_bench_pool *p = arg;
    struct load *l = p->arg;
    fa_device_client *c[MAX_NODES] = {NULL};
    fa_error err = FA_ERROR_INIT;
    char headers[512];
    int i;

    if (clients_new(c, l, &err) < 0) {
        atomic_fetch_add(&p->failed, 1);
        goto cleanup;
    }
    while ((i = fa_bench_pool_take(p)) >= 0) {
        int b = i % l->pool;
        long status = 0;
        if (fa_device_update_headers(headers, sizeof(headers), &l->key, l->tokens[i],
                                     l->model_version, 10) < 0 ||
            fa_device_http(&status, NULL, NULL, c[i % l->nodes], "POST", l->path,
                           "application/octet-stream", l->boxes[b], l->box_lens[b], headers,
                           &err) < 0 ||
            status < 0 || status >= MAX_STATUS)
            status = 0;
        atomic_fetch_add(&l->status[status], 1);
    }
cleanup:
    clients_free(c, l->nodes);
    return NULL;
}

/* Checks cohort devices in to one round, after waiting for a round above after_id. */
static int checkin(int64_t *round_out, double *deadline_out, double *secs_out, struct load *l,
                   int cohort, int64_t after_id, fa_error *err)
{
    fa_bench_pool p = {.n = cohort, .arg = l};
    double rate;

    for (int waited = 0; open_round(round_out, deadline_out, l->pg, after_id) < 0; waited++) {
        if (waited > 6000)
            return fa_fail(err, FA_EUNAVAIL, "no round above %lld opened", (long long)after_id);
        sleep_ms(50);
    }
    rate = fa_bench_pool_run(&p, l->clients, checkin_worker);
    *secs_out = (double)cohort / rate;
    if (atomic_load(&p.failed) > 0)
        return fa_fail(err, FA_EUNAVAIL, "%d of %d check-ins failed", atomic_load(&p.failed),
                       cohort);
    for (int i = 0; i < cohort; i++)
        if (l->round_ids[i] != *round_out)
            return fa_fail(err, FA_ECONFLICT,
                           "check-ins spanned rounds %lld and %lld: give rounds a later deadline",
                           (long long)*round_out, (long long)l->round_ids[i]);
    return FA_OK;
}

/* Posts one update per checked-in device; returns the accepted (202) count. */
static int post(double *secs_out, struct load *l, int cohort)
{
    fa_bench_pool p = {.n = cohort, .arg = l};
    int before = atomic_load(&l->status[202]);
    double rate = fa_bench_pool_run(&p, l->clients, post_worker);

    *secs_out = (double)cohort / rate;
    return atomic_load(&l->status[202]) - before;
}

static void print_status(const struct load *l)
{
    const char *sep = "";

    printf("\"status\":{");
    for (int s = 0; s < MAX_STATUS; s++) {
        int n = atomic_load(&l->status[s]);
        if (n > 0) {
            printf("%s\"%d\":%d", sep, s, n);
            sep = ",";
        }
    }
    printf("}");
}

/*
 * Waits until round id has ended: its state, ended_at - deadline (s), and
 * how long after the deadline the ended round became visible (s, to the
 * 20 ms of polling). ended_at is the closing transaction's now(), its
 * start; the close's work is seen only when it commits.
 */
static int wait_close(char *state, size_t cap, double *latency_out, double *visible_out,
                      struct load *l, int64_t id, double deadline, fa_error *err)
{
    for (;;) {
        PGresult *r = NULL;
        const char *v = row_value(&r, l->pg,
                                  "SELECT state, extract(epoch FROM ended_at - deadline) "
                                  "FROM rounds WHERE id = $1::bigint AND ended_at IS NOT NULL",
                                  id, 1);
        int done = v != NULL && fa_parse_double(latency_out, v) == FA_OK;
        if (done)
            (void)snprintf(state, cap, "%s", PQgetvalue(r, 0, 0));
        PQclear(r);
        if (done) {
            *visible_out = fa_wall_seconds() - deadline;
            return FA_OK;
        }
        if (fa_wall_seconds() > deadline + 600)
            return fa_fail(err, FA_EUNAVAIL, "round %lld did not end within 600 s of its deadline",
                           (long long)id);
        sleep_ms(20);
    }
}

/* The value of the metric line named name (labels included) on node n, or -1. */
static double scrape_metric(const struct load *l, int n, const char *name)
{
    const size_t len = strlen(name);
    fa_device_client *c = NULL;
    fa_error err = FA_ERROR_INIT;
    char *body = NULL;
    long status = 0;
    double found = -1;

    if (fa_device_client_new(&c, l->urls[n], &err) == FA_OK &&
        fa_device_http(&status, &body, NULL, c, "GET", "/metrics", NULL, NULL, 0, NULL, &err) ==
            FA_OK &&
        status == 200) {
        for (char *line = body; line != NULL && *line != '\0';) {
            char *end = strchr(line, '\n');
            double x;
            if (end != NULL)
                *end = '\0';
            if (strncmp(line, name, len) == 0 && line[len] == ' ' &&
                fa_parse_double(&x, line + len + 1) == FA_OK)
                found = x;
            line = end != NULL ? end + 1 : NULL;
        }
    }
    free(body);
    fa_device_client_free(c);
    return found;
}

#define CLOSED_METRIC "fedagg_rounds_total{outcome=\"closed\"}"

/* The nodes' group commits so far, or -1 when one does not expose them. */
static double scrape_commits(const struct load *l)
{
    double sum = 0;

    for (int n = 0; n < l->nodes; n++) {
        double v = scrape_metric(l, n, "fedagg_group_commits_total");
        if (v < 0)
            return -1;
        sum += v;
    }
    return sum;
}

/* Each node's count of rounds it closed, into closed[] (-1: not exposed). */
static void scrape_closed(double closed[MAX_NODES], const struct load *l)
{
    for (int n = 0; n < l->nodes; n++)
        closed[n] = scrape_metric(l, n, CLOSED_METRIC);
}

/*
 * The fedagg_round_close_seconds gauge of the node that closed the round:
 * the one whose count of closed rounds rose since before[]. Another node's
 * gauge holds an earlier round's close. -1 when none did or none exposes it.
 */
static double scrape_close_seconds(const struct load *l, const double before[MAX_NODES])
{
    for (int n = 0; n < l->nodes; n++) {
        double now = scrape_metric(l, n, CLOSED_METRIC);
        if (before[n] >= 0 && now > before[n])
            return scrape_metric(l, n, "fedagg_round_close_seconds");
    }
    return -1;
}

/* ================================================================ modes */

static int mode_baseline(struct load *l, const fa_keys *keys, int updates, int decrypt_threads,
                         fa_error *err)
{
    double open_rate, pq_rate;
    int rc;

    if ((rc = seal_pool(l, 0, err)) < 0 ||
        (rc = fa_bench_decrypt_rate(&open_rate, fa_keys_box(keys), l->boxes[0], l->box_lens[0],
                                    updates * 4, decrypt_threads, err)) < 0 ||
        (rc = fa_bench_insert_rate(&pq_rate, l->conninfo, l->boxes[0], l->box_lens[0], updates,
                                   l->clients, err)) < 0)
        return rc;
    printf("{\"bench\":\"nodes-baseline\",\"update_bytes\":%zu,\"decrypt_only_per_s\":%.1f,"
           "\"decrypt_threads\":%d,\"libpq_inserts_per_s\":%.1f,\"insert_clients\":%d}\n",
           l->box_lens[0], open_rate, decrypt_threads, pq_rate, l->clients);
    return FA_OK;
}

/*
 * The ceiling: cohort boxes posted to bench_sink at sink, which only
 * receives them (/recv), then cohort it also opens (/open). One line each.
 */
static int mode_ceiling(struct load *l, const char *sink, int cohort, fa_error *err)
{
    static const char *const PATHS[2] = {"/recv", "/open"};
    int rc;

    if ((rc = seal_pool(l, 0, err)) < 0)
        return rc;
    for (int i = 0; i < cohort; i++)
        (void)snprintf(l->tokens[i], sizeof(l->tokens[i]), "sink-%d", i);
    l->model_version = 0;
    l->urls[0] = sink;
    l->nodes = 1;
    for (int k = 0; k < 2; k++) {
        unsigned long long cpu0[CPU_KINDS], cpu1[CPU_KINDS];
        double secs;
        int accepted;
        l->path = PATHS[k];
        cpu_sample(cpu0);
        accepted = post(&secs, l, cohort);
        cpu_sample(cpu1);
        if (accepted != cohort)
            return fa_fail(err, FA_EINTERNAL, "the sink accepted %d of %d posts to %s", accepted,
                           cohort, PATHS[k]);
        printf("{\"bench\":\"nodes-ceiling\",\"sink\":\"%s\",\"cohort\":%d,\"clients\":%d,"
               "\"update_bytes\":%zu,\"accepted_per_s\":%.1f,",
               PATHS[k] + 1, cohort, l->clients, l->box_lens[0], (double)accepted / secs);
        print_cpu(cpu0, cpu1, accepted, "sink");
        printf("}\n");
    }
    return FA_OK;
}

static int mode_round(struct load *l, int cohort, fa_error *err)
{
    int64_t id;
    double deadline, checkin_s, post_s, latency, visible, close_s;
    char state[32];
    int accepted, rc;

    if ((rc = checkin(&id, &deadline, &checkin_s, l, cohort, 0, err)) < 0 ||
        (rc = seal_pool(l, l->model_version, err)) < 0)
        return rc;
    unsigned long long cpu0[CPU_KINDS], cpu1[CPU_KINDS];
    double closed[MAX_NODES], commits0, commits1;
    scrape_closed(closed, l);
    commits0 = scrape_commits(l);
    cpu_sample(cpu0);
    accepted = post(&post_s, l, cohort);
    cpu_sample(cpu1);
    commits1 = scrape_commits(l);
    double margin = deadline - fa_wall_seconds(); /* < 0: posting ran past the deadline */
    if ((rc = wait_close(state, sizeof(state), &latency, &visible, l, id, deadline, err)) < 0)
        return rc;
    sleep_ms(300); /* the closing node sets its gauge just after the commit */
    close_s = scrape_close_seconds(l, closed);
    printf("{\"bench\":\"nodes\",\"nodes\":%d,\"cohort\":%d,\"clients\":%d,\"pool\":%d,"
           "\"update_bytes\":%zu,\"round\":%lld,\"checkin_s\":%.2f,\"post_s\":%.2f,"
           "\"accepted\":%d,\"accepted_per_s\":%.1f,",
           l->nodes, cohort, l->clients, l->pool, l->box_lens[0], (long long)id, checkin_s, post_s,
           accepted, (double)accepted / post_s);
    print_status(l);
    printf(",");
    print_cpu(cpu0, cpu1, accepted, "fedagg");
    /* Updates per group commit, over every node. */
    if (commits0 >= 0 && commits1 > commits0)
        printf(",\"mean_batch\":%.1f", (double)accepted / (commits1 - commits0));
    else
        printf(",\"mean_batch\":null");
    printf(",\"deadline_margin_s\":%.2f,\"round_state\":\"%s\",\"close_latency_s\":%.3f,"
           "\"close_visible_s\":%.3f,",
           margin, state, latency, visible);
    if (close_s >= 0)
        printf("\"metrics_close_seconds\":%.3f}\n", close_s);
    else
        printf("\"metrics_close_seconds\":null}\n");
    return FA_OK;
}

/* The ciphertexts of one round, kept in a table shaped like `updates`: its total bytes. */
static int kept_size(int64_t *bytes_out, struct load *l, int cohort, fa_error *err)
{
    PGresult *r = NULL;
    int rc;

    /* The `updates` table of migrations/0001_initial.sql, which kept every
     * ciphertext until its round ended (without the reference to rounds). */
    if ((rc = fa_bench_exec(l->conninfo,
                            "CREATE TABLE bench_kept ("
                            "id bigserial PRIMARY KEY, round_id bigint NOT NULL, "
                            "token_hash bytea NOT NULL CHECK (octet_length(token_hash) = 32), "
                            "receipt text NOT NULL UNIQUE, key_id text NOT NULL, "
                            "num_samples bigint NOT NULL CHECK (num_samples > 0), "
                            "box bytea NOT NULL, received_at timestamptz NOT NULL DEFAULT now(), "
                            "UNIQUE (round_id, token_hash))",
                            err)) < 0)
        return rc;
    for (int i = 0; i < cohort && rc == FA_OK; i++) {
        unsigned char token_hash[32];
        char receipt[65], round_id[24];
        int b = i % l->pool;
        fa_crypto_random(token_hash, sizeof(token_hash));
        fa_hex_encode(receipt, token_hash, 16); /* 32 hex digits, unique per row */
        (void)snprintf(round_id, sizeof(round_id), "%d", 1);
        const char *values[5] = {round_id, (const char *)token_hash, receipt, l->key.key_id,
                                 (const char *)l->boxes[b]};
        int lengths[5] = {0, 32, 0, 0, (int)l->box_lens[b]}, formats[5] = {0, 1, 0, 0, 1};
        r = PQexecParams(l->pg,
                         "INSERT INTO bench_kept (round_id, token_hash, receipt, key_id, "
                         "num_samples, box) VALUES ($1::bigint, $2::bytea, $3, $4, 10, $5::bytea)",
                         5, NULL, values, lengths, formats, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            rc = fa_fail(err, FA_EUNAVAIL, "%.*s", (int)strcspn(PQerrorMessage(l->pg), "\n"),
                         PQerrorMessage(l->pg));
        PQclear(r);
    }
    if (rc == FA_OK)
        rc = fa_bench_query_i64(bytes_out, l->conninfo,
                                "SELECT pg_total_relation_size('bench_kept')", err);
    int drop = fa_bench_exec(l->conninfo, "DROP TABLE bench_kept", err);
    return rc < 0 ? rc : drop;
}

/* The four largest tables of the schema, "name=bytes,...", into out. */
static void largest_tables(char *out, size_t cap, PGconn *pg)
{
    PGresult *r = PQexec(pg, "SELECT string_agg(relname || '=' || s, ',' ORDER BY s DESC) FROM "
                             "(SELECT c.relname, pg_total_relation_size(c.oid) AS s "
                             "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                             "WHERE n.nspname = 'public' AND c.relkind = 'r' "
                             "ORDER BY s DESC LIMIT 4) t");

    (void)snprintf(out, cap, "%s",
                   PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 ? PQgetvalue(r, 0, 0)
                                                                             : "");
    PQclear(r);
}

static int mode_rounds(struct load *l, int rounds, int cohort, fa_error *err)
{
    int64_t id = 0, base = 0, kept = 0, closed = 0;
    double deadline = 0, checkin_s, post_s, latency, visible;
    long accepted = 0;
    char state[32], tables[512];
    int rc;

    for (int k = 0; k < rounds; k++) {
        if ((rc = checkin(&id, &deadline, &checkin_s, l, cohort, id, err)) < 0 ||
            (rc = seal_pool(l, l->model_version, err)) < 0)
            return rc;
        accepted += post(&post_s, l, cohort);
    }
    if ((rc = wait_close(state, sizeof(state), &latency, &visible, l, id, deadline, err)) < 0 ||
        (rc = fa_bench_query_i64(&closed, l->conninfo,
                                 "SELECT count(*) FROM rounds WHERE state = 'closed'", err)) < 0 ||
        (rc = fa_bench_exec(l->conninfo, "VACUUM", err)) < 0 ||
        (rc = fa_bench_query_i64(&base, l->conninfo, "SELECT pg_database_size(current_database())",
                                 err)) < 0 ||
        (rc = kept_size(&kept, l, cohort, err)) < 0)
        return rc;
    largest_tables(tables, sizeof(tables), l->pg);
    int64_t all_kept = base + kept * rounds;
    printf("{\"bench\":\"nodes-db\",\"rounds\":%d,\"cohort\":%d,\"update_bytes\":%zu,"
           "\"accepted\":%ld,",
           rounds, cohort, l->box_lens[0], accepted);
    print_status(l);
    printf(",\"rounds_closed\":%lld,\"vacuumed\":true,\"pg_database_size\":%lld,"
           "\"largest_tables\":\"%s\",\"kept_round_bytes\":%lld,\"if_ciphertexts_kept\":%lld,"
           "\"kept_vs_actual\":%.2f}\n",
           (long long)closed, (long long)base, tables, (long long)kept, (long long)all_kept,
           (double)all_kept / (double)base);
    return FA_OK;
}

/* ================================================================= main */

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_load baseline|round|rounds|ceiling --server URL [--server URL ...] "
            "--database-url CONNINFO [--key-dir DIR] [--sink URL] [--cohort K] [--rounds R] "
            "[--clients C] [--pool P] [--updates N] [--decrypt-threads T]\n");
}

int main(int argc, char **argv)
{
    static const struct option OPTS[] = {
        {"server", required_argument, NULL, 's'},
        {"database-url", required_argument, NULL, 'd'},
        {"key-dir", required_argument, NULL, 'k'},
        {"cohort", required_argument, NULL, 'n'},
        {"rounds", required_argument, NULL, 'r'},
        {"clients", required_argument, NULL, 'c'},
        {"pool", required_argument, NULL, 'p'},
        {"updates", required_argument, NULL, 'u'},
        {"decrypt-threads", required_argument, NULL, 't'},
        {"sink", required_argument, NULL, 'S'},
        {NULL, 0, NULL, 0},
    };
    static struct load l; /* large (status counters); zeroed */
    int64_t cohort = 1000, rounds = 1, clients = 16, pool = 64, updates = 300;
    int64_t decrypt_threads = sysconf(_SC_NPROCESSORS_ONLN);
    const char *key_dir = NULL, *sink = NULL, *mode;
    fa_device_client *c = NULL;
    fa_keys *keys = NULL;
    fa_params *model = NULL;
    fa_error err = FA_ERROR_INIT;
    int opt, rc = FA_OK;

    if (argc < 2) {
        usage();
        return 2;
    }
    mode = argv[1];
    optind = 2;
    while ((opt = getopt_long(argc, argv, "", OPTS, NULL)) != -1) {
        int64_t *target = opt == 'n'   ? &cohort
                          : opt == 'r' ? &rounds
                          : opt == 'c' ? &clients
                          : opt == 'p' ? &pool
                          : opt == 'u' ? &updates
                          : opt == 't' ? &decrypt_threads
                                       : NULL;
        if (opt == 's' && l.nodes < MAX_NODES)
            l.urls[l.nodes++] = optarg;
        else if (opt == 'd')
            l.conninfo = optarg;
        else if (opt == 'k')
            key_dir = optarg;
        else if (opt == 'S')
            sink = optarg;
        else if (target == NULL || fa_parse_i64(target, optarg) < 0 || *target < 1 ||
                 *target > 1000000) {
            usage();
            return 2;
        }
    }
    if (decrypt_threads > 64) /* the pool's most threads */
        decrypt_threads = 64;
    if (l.nodes == 0 || l.conninfo == NULL || clients > 64 ||
        (strcmp(mode, "baseline") == 0 && key_dir == NULL) ||
        (strcmp(mode, "ceiling") == 0 && sink == NULL)) {
        usage();
        return 2;
    }
    l.clients = (int)clients;
    l.path = "/api/federated/update";
    l.pool = (int)(pool < cohort ? pool : cohort);
    l.pool_version = -1;
    l.pg = PQconnectdb(l.conninfo);
    if (PQstatus(l.pg) != CONNECTION_OK) {
        fprintf(stderr, "bench_load: %s", PQerrorMessage(l.pg));
        PQfinish(l.pg);
        return 1;
    }
    l.boxes = calloc((size_t)l.pool, sizeof(*l.boxes));
    l.box_lens = calloc((size_t)l.pool, sizeof(*l.box_lens));
    l.tokens = calloc((size_t)cohort, sizeof(*l.tokens));
    l.round_ids = calloc((size_t)cohort, sizeof(*l.round_ids));
    if (l.boxes == NULL || l.box_lens == NULL || l.tokens == NULL || l.round_ids == NULL) {
        rc = fa_fail(&err, FA_ENOMEM, "out of memory");
        goto cleanup;
    }
    if ((rc = fa_crypto_init(&err)) < 0 || (rc = fa_device_global_init(&err)) < 0 ||
        (rc = fa_device_client_new(&c, l.urls[0], &err)) < 0 ||
        (rc = fa_device_fetch_key(&l.key, c, &err)) < 0 ||
        (rc = fa_device_fetch_model(&model, c, 0, &err)) < 0)
        goto cleanup;
    l.dim = fa_params_len(model);
    if ((l.delta = malloc(l.dim * sizeof(float))) == NULL) {
        rc = fa_fail(&err, FA_ENOMEM, "out of memory");
        goto cleanup;
    }
    for (size_t i = 0; i < l.dim; i++)
        l.delta[i] = (float)((double)(i % 97) * 1e-5);
    if (strcmp(mode, "baseline") == 0) {
        if ((rc = fa_keys_load(&keys, key_dir, &err)) == FA_OK)
            rc = mode_baseline(&l, keys, (int)updates, (int)decrypt_threads, &err);
    } else if (strcmp(mode, "round") == 0) {
        rc = mode_round(&l, (int)cohort, &err);
    } else if (strcmp(mode, "ceiling") == 0) {
        rc = mode_ceiling(&l, sink, (int)cohort, &err);
    } else if (strcmp(mode, "rounds") == 0) {
        rc = mode_rounds(&l, (int)rounds, (int)cohort, &err);
    } else {
        usage();
        rc = FA_EINVAL;
    }
cleanup:
    if (rc < 0)
        fprintf(stderr, "bench_load: %s\n", err.msg);
    for (int i = 0; l.boxes != NULL && i < l.pool; i++)
        free(l.boxes[i]);
    free(l.boxes);
    free(l.box_lens);
    free(l.tokens);
    free(l.round_ids);
    free(l.delta);
    fa_params_free(model);
    fa_device_client_free(c);
    fa_keys_free(keys);
    PQfinish(l.pg);
    return rc < 0 ? 1 : 0;
}
