/*
 * Ingest benchmark: sealed updates posted to a running fedagg server over
 * loopback (each answered 202 only after its row is committed) against raw
 * libpq INSERTs of the same ciphertext bytes into the same database, with
 * the same number of concurrent clients, in the same run. Check-ins and
 * sealing happen before the clock starts. Prints one JSON line.
 *
 * usage: bench_ingest --server URL --database-url CONNINFO [--updates N] [--clients C]
 */
#include <getopt.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "device.h"
#include "model/params.h"
#include "privacy/base64.h"
#include "privacy/crypto.h"

struct job {
    const char *url;
    const char *conninfo;
    char **bodies;
    size_t *lens;
    unsigned char *box; /* one ciphertext for the libpq baseline */
    size_t box_len;
    int n;
    atomic_int next;
    atomic_int failed;
};

static void *post_worker(void *arg)
{
    struct job *j = arg;
    fa_device_client *c = NULL;
    fa_error err = FA_ERROR_INIT;

    if (fa_device_client_new(&c, j->url, &err) < 0) {
        atomic_fetch_add(&j->failed, 1);
        return NULL;
    }
    for (;;) {
        int i = atomic_fetch_add(&j->next, 1);
        long status = 0;
        if (i >= j->n)
            break;
        if (fa_device_http(&status, NULL, NULL, c, "POST", "/api/federated/update",
                           "application/json", j->bodies[i], j->lens[i], NULL, &err) < 0 ||
            status != 202)
            atomic_fetch_add(&j->failed, 1);
    }
    fa_device_client_free(c);
    return NULL;
}

static void *insert_worker(void *arg)
{
    struct job *j = arg;
    PGconn *pg = PQconnectdb(j->conninfo);
    const char *values[1] = {(const char *)j->box};
    int lengths[1] = {(int)j->box_len}, formats[1] = {1};

    if (PQstatus(pg) != CONNECTION_OK) {
        atomic_fetch_add(&j->failed, 1);
        PQfinish(pg);
        return NULL;
    }
    for (;;) {
        int i = atomic_fetch_add(&j->next, 1);
        if (i >= j->n)
            break;
        PGresult *r = PQexecParams(pg, "INSERT INTO bench_raw (box) VALUES ($1::bytea)", 1, NULL,
                                   values, lengths, formats, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            atomic_fetch_add(&j->failed, 1);
        PQclear(r);
    }
    PQfinish(pg);
    return NULL;
}

static double run(struct job *j, void *(*fn)(void *), int clients)
{
    pthread_t t[64];
    uint64_t t0;

    atomic_store(&j->next, 0);
    t0 = fa_now_ns();
    for (int i = 0; i < clients; i++)
        (void)pthread_create(&t[i], NULL, fn, j);
    for (int i = 0; i < clients; i++)
        (void)pthread_join(t[i], NULL);
    return (double)j->n / ((double)(fa_now_ns() - t0) * 1e-9);
}

static int exec_sql(const char *conninfo, const char *sql)
{
    PGconn *pg = PQconnectdb(conninfo);
    PGresult *r = PQexec(pg, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        fprintf(stderr, "bench_ingest: %s", PQerrorMessage(pg));
    PQclear(r);
    PQfinish(pg);
    return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
    static const struct option OPTS[] = {
        {"server", required_argument, NULL, 's'},
        {"database-url", required_argument, NULL, 'd'},
        {"updates", required_argument, NULL, 'n'},
        {"clients", required_argument, NULL, 'c'},
        {NULL, 0, NULL, 0},
    };
    struct job j;
    int64_t n = 200, clients = 4;
    fa_device_client *c = NULL;
    fa_device_key key;
    fa_params *model = NULL;
    fa_error err = FA_ERROR_INIT;
    int opt;

    memset(&j, 0, sizeof(j));
    while ((opt = getopt_long(argc, argv, "", OPTS, NULL)) != -1) {
        if (opt == 's')
            j.url = optarg;
        else if (opt == 'd')
            j.conninfo = optarg;
        else if (opt == 'n' && fa_parse_i64(&n, optarg) == FA_OK && n > 0 && n <= 100000)
            continue;
        else if (opt == 'c' && fa_parse_i64(&clients, optarg) == FA_OK && clients > 0 &&
                 clients <= 64)
            continue;
        else {
            fprintf(stderr, "usage: bench_ingest --server URL --database-url CONNINFO "
                            "[--updates N] [--clients C]\n");
            return 2;
        }
    }
    if (j.url == NULL || j.conninfo == NULL) {
        fprintf(stderr, "bench_ingest: --server and --database-url are required\n");
        return 2;
    }
    if (fa_crypto_init(&err) < 0 || fa_device_client_new(&c, j.url, &err) < 0 ||
        fa_device_fetch_key(&key, c, &err) < 0 || fa_device_fetch_model(&model, c, 0, &err) < 0)
        goto fail;
    size_t dim = fa_params_len(model);
    float *delta = malloc(dim * sizeof(float));
    j.n = (int)n;
    j.bodies = calloc((size_t)n, sizeof(char *));
    j.lens = calloc((size_t)n, sizeof(size_t));
    if (delta == NULL || j.bodies == NULL || j.lens == NULL)
        goto fail;
    for (size_t i = 0; i < dim; i++)
        delta[i] = (float)((double)(i % 97) * 1e-5);
    for (int64_t i = 0; i < n; i++) {
        fa_device_round r;
        if (fa_device_checkin(&r, c, NULL, &err) < 0 ||
            fa_device_update_body(&j.bodies[i], &j.lens[i], &key, r.token, r.model_version, 10,
                                  delta, dim, &err) < 0)
            goto fail;
        delta[i % dim] += 1e-3f; /* distinct updates */
    }
    /* The same ciphertext bytes for the baseline: decode one body's box. */
    const char *b64 = strstr(j.bodies[0], "\"encryptedGradients\":\"") + 22;
    size_t b64_len = strcspn(b64, "\"");
    j.box = malloc(b64_len);
    if (j.box == NULL || fa_base64_decode(j.box, b64_len, &j.box_len, b64, b64_len) < 0)
        goto fail;

    double server_rate = run(&j, post_worker, (int)clients);
    int server_failed = atomic_load(&j.failed);
    if (exec_sql(j.conninfo, "CREATE TABLE IF NOT EXISTS bench_raw (id bigserial PRIMARY KEY, "
                             "box bytea NOT NULL)") < 0)
        return 1;
    double pq_rate = run(&j, insert_worker, (int)clients);
    (void)exec_sql(j.conninfo, "DROP TABLE bench_raw");
    printf("{\"bench\":\"ingest\",\"updates\":%d,\"clients\":%d,\"update_bytes\":%zu,"
           "\"server_updates_per_s\":%.1f,\"libpq_inserts_per_s\":%.1f,\"ratio\":%.3f,"
           "\"failed\":%d}\n",
           j.n, (int)clients, j.box_len, server_rate, pq_rate, server_rate / pq_rate,
           atomic_load(&j.failed));
    return server_failed == 0 && atomic_load(&j.failed) == 0 ? 0 : 1;
fail:
    fprintf(stderr, "bench_ingest: %s\n", err.msg[0] ? err.msg : "out of memory");
    return 1;
}
