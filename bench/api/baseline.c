#include "baseline.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "privacy/crypto.h"

int fa_bench_pool_take(fa_bench_pool *p)
{
    int i = atomic_fetch_add(&p->next, 1);
    return i < p->n ? i : -1;
}

double fa_bench_pool_run(fa_bench_pool *p, int threads, void *(*fn)(void *))
{
    pthread_t t[64];
    int started = 0;
    uint64_t t0;

    if (threads > 64)
        threads = 64;
    atomic_store(&p->next, 0);
    t0 = fa_now_ns();
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&t[started], NULL, fn, p) == 0)
            started++;
        else
            atomic_fetch_add(&p->failed, 1);
    }
    for (int i = 0; i < started; i++)
        (void)pthread_join(t[i], NULL);
    return (double)p->n / ((double)(fa_now_ns() - t0) * 1e-9);
}

/* ============================================================ decrypt only */

struct open_job {
    const fa_crypto_box_key *key;
    const unsigned char *box;
    size_t box_len;
};

static void *open_worker(void *arg)
{
    fa_bench_pool *p = arg;
    const struct open_job *j = p->arg;
    size_t len = 0;
    unsigned char *plain = malloc(j->box_len);
    fa_error err = FA_ERROR_INIT;

    if (plain == NULL) {
        atomic_fetch_add(&p->failed, 1);
        return NULL;
    }
    while (fa_bench_pool_take(p) >= 0) {
        if (fa_crypto_box_open(plain, j->box_len, &len, j->key, j->box, j->box_len, &err) < 0)
            atomic_fetch_add(&p->failed, 1);
    }
    fa_crypto_wipe(plain, j->box_len);
    free(plain);
    return NULL;
}

int fa_bench_decrypt_rate(double *rate_out, const fa_crypto_box_key *key, const unsigned char *box,
                          size_t box_len, int n, int threads, fa_error *err)
{
    struct open_job j = {key, box, box_len};
    fa_bench_pool p = {.n = n, .arg = &j};

    *rate_out = fa_bench_pool_run(&p, threads, open_worker);
    if (atomic_load(&p.failed) > 0)
        return fa_fail(err, FA_EINTERNAL, "%d of %d boxes did not open", atomic_load(&p.failed), n);
    return FA_OK;
}

/* ============================================================== raw INSERT */

struct insert_job {
    const char *conninfo;
    const unsigned char *box;
    size_t box_len;
};

static void *insert_worker(void *arg)
{
    fa_bench_pool *p = arg;
    const struct insert_job *j = p->arg;
    PGconn *pg = PQconnectdb(j->conninfo);
    const char *values[1] = {(const char *)j->box};
    int lengths[1] = {(int)j->box_len}, formats[1] = {1};

    if (PQstatus(pg) != CONNECTION_OK) {
        atomic_fetch_add(&p->failed, 1);
        PQfinish(pg);
        return NULL;
    }
    while (fa_bench_pool_take(p) >= 0) {
        PGresult *r = PQexecParams(pg, "INSERT INTO bench_raw (box) VALUES ($1::bytea)", 1, NULL,
                                   values, lengths, formats, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            atomic_fetch_add(&p->failed, 1);
        PQclear(r);
    }
    PQfinish(pg);
    return NULL;
}

int fa_bench_insert_rate(double *rate_out, const char *conninfo, const unsigned char *box,
                         size_t box_len, int n, int clients, fa_error *err)
{
    struct insert_job j = {conninfo, box, box_len};
    fa_bench_pool p = {.n = n, .arg = &j};
    int rc;

    if ((rc = fa_bench_exec(conninfo,
                            "CREATE TABLE IF NOT EXISTS bench_raw (id bigserial PRIMARY KEY, "
                            "box bytea NOT NULL)",
                            err)) < 0)
        return rc;
    *rate_out = fa_bench_pool_run(&p, clients, insert_worker);
    rc = fa_bench_exec(conninfo, "DROP TABLE bench_raw", err);
    if (rc == FA_OK && atomic_load(&p.failed) > 0)
        rc = fa_fail(err, FA_EUNAVAIL, "%d of %d inserts failed", atomic_load(&p.failed), n);
    return rc;
}

/* ===================================================================== SQL */

/* The connection's last error, without libpq's trailing newline. */
static int pg_fail(fa_error *err, PGconn *pg)
{
    const char *msg = PQerrorMessage(pg);
    size_t len = strcspn(msg, "\n");

    return fa_fail(err, FA_EUNAVAIL, "%.*s", (int)len, msg);
}

int fa_bench_exec(const char *conninfo, const char *sql, fa_error *err)
{
    PGconn *pg = PQconnectdb(conninfo);
    PGresult *r = PQexec(pg, sql);
    int rc = FA_OK;

    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        rc = pg_fail(err, pg);
    PQclear(r);
    PQfinish(pg);
    return rc;
}

int fa_bench_query_i64(int64_t *out, const char *conninfo, const char *sql, fa_error *err)
{
    PGconn *pg = PQconnectdb(conninfo);
    PGresult *r = PQexec(pg, sql);
    int rc = FA_OK;

    *out = 0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        rc = pg_fail(err, pg);
    else if (PQntuples(r) < 1 || PQgetisnull(r, 0, 0) || fa_parse_i64(out, PQgetvalue(r, 0, 0)) < 0)
        rc = fa_fail(err, FA_ENOTFOUND, "no integer answer");
    PQclear(r);
    PQfinish(pg);
    return rc;
}
