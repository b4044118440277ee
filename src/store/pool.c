/*
 * The connection pool: pool_size connections to one database, each checked
 * out by one thread at a time. The pool mutex guards only the stack of idle
 * connections and is never held across a database round trip.
 */
#include "store/store.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

/* ------------------------------------------------------------------ pool */

struct fa_store {
    char *conninfo;
    pthread_mutex_t mu; /* guards free_idx, nfree; never held across I/O */
    pthread_cond_t cv;  /* signalled when a connection is returned */
    int size;
    fa_store_conn *conns;
    int *free_idx; /* stack of idle connection indexes */
    int nfree;
    /* Bumped when any connection finds the server gone: every connection
     * connected in an older epoch is reset before its next use, so one
     * database restart costs at most the calls already in flight. */
    atomic_uint epoch;
};

static void conn_close(fa_store_conn *c)
{
    if (c->pg != NULL)
        PQfinish(c->pg);
    c->pg = NULL;
    memset(c->prepared, 0, sizeof(c->prepared));
}

static void notice_ignore(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

int fa_store__connect(PGconn **out, const char *conninfo, fa_error *err)
{
    PGconn *pg = PQconnectdb(conninfo);

    *out = NULL;
    if (pg == NULL)
        return fa_fail(err, FA_ENOMEM, "out of memory connecting to the database");
    if (PQstatus(pg) != CONNECTION_OK) {
        char msg[200];
        (void)snprintf(msg, sizeof(msg), "%s", PQerrorMessage(pg));
        msg[strcspn(msg, "\n")] = '\0';
        PQfinish(pg);
        return fa_fail(err, FA_EUNAVAIL, "database unavailable: %s", msg);
    }
    (void)PQsetNoticeProcessor(pg, notice_ignore, NULL);
    *out = pg;
    return FA_OK;
}

static int conn_ensure(fa_store *st, fa_store_conn *c, fa_error *err)
{
    unsigned epoch = atomic_load(&st->epoch);

    if (c->pg != NULL && (PQstatus(c->pg) != CONNECTION_OK || c->epoch != epoch))
        conn_close(c);
    if (c->pg != NULL)
        return FA_OK;
    c->epoch = epoch;
    return fa_store__connect(&c->pg, st->conninfo, err);
}

int fa_store__conn_acquire(fa_store_conn **out, fa_store *st, fa_error *err)
{
    fa_store_conn *c;
    int rc;

    (void)pthread_mutex_lock(&st->mu);
    while (st->nfree == 0)
        (void)pthread_cond_wait(&st->cv, &st->mu);
    c = &st->conns[st->free_idx[--st->nfree]];
    (void)pthread_mutex_unlock(&st->mu);
    /* Connecting happens outside the lock: it is a network round trip. */
    if ((rc = conn_ensure(st, c, err)) < 0) {
        (void)pthread_mutex_lock(&st->mu);
        st->free_idx[st->nfree++] = (int)(c - st->conns);
        (void)pthread_cond_signal(&st->cv);
        (void)pthread_mutex_unlock(&st->mu);
        *out = NULL;
        return rc;
    }
    *out = c;
    return FA_OK;
}

void fa_store__conn_release(fa_store *st, fa_store_conn *c)
{
    if (c == NULL)
        return;
    /* A transaction left open by an error path is rolled back here, so
     * every caller's cleanup is just a release. A connection in any other
     * state (a query still running, a broken link) is dropped instead. */
    if (c->pg != NULL) {
        PGTransactionStatusType ts = PQtransactionStatus(c->pg);
        if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR) {
            PGresult *res = PQexec(c->pg, "ROLLBACK");
            if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK)
                conn_close(c);
            PQclear(res);
        } else if (ts != PQTRANS_IDLE) {
            conn_close(c);
        }
    }
    (void)pthread_mutex_lock(&st->mu);
    st->free_idx[st->nfree++] = (int)(c - st->conns);
    (void)pthread_cond_signal(&st->cv);
    (void)pthread_mutex_unlock(&st->mu);
}

void fa_store__note_failure(fa_store *st, fa_store_conn *c, int rc)
{
    if (rc == FA_EUNAVAIL && c != NULL && (c->pg == NULL || PQstatus(c->pg) != CONNECTION_OK)) {
        conn_close(c);
        atomic_fetch_add(&st->epoch, 1);
    }
}

int fa_store_open(fa_store **out, const char *conninfo, int pool_size, fa_error *err)
{
    fa_store *st = NULL;
    fa_store_conn *c = NULL;
    int rc = FA_OK;

    *out = NULL;
    if (pool_size < 1 || pool_size > 4096)
        return fa_fail(err, FA_EINVAL, "pool size %d is out of range 1..4096", pool_size);
    st = calloc(1, sizeof(*st));
    if (st == NULL)
        return fa_fail(err, FA_ENOMEM, "out of memory opening the store");
    st->conninfo = strdup(conninfo != NULL ? conninfo : "");
    st->conns = calloc((size_t)pool_size, sizeof(*st->conns));
    st->free_idx = calloc((size_t)pool_size, sizeof(*st->free_idx));
    if (st->conninfo == NULL || st->conns == NULL || st->free_idx == NULL) {
        rc = fa_fail(err, FA_ENOMEM, "out of memory opening the store");
        goto cleanup;
    }
    (void)pthread_mutex_init(&st->mu, NULL);
    (void)pthread_cond_init(&st->cv, NULL);
    st->size = pool_size;
    for (int i = 0; i < pool_size; i++)
        st->free_idx[st->nfree++] = pool_size - 1 - i;
    atomic_init(&st->epoch, 0);
    if ((rc = fa_store__conn_acquire(&c, st, err)) < 0)
        goto cleanup;
    fa_store__conn_release(st, c);
    *out = st;
    st = NULL;
cleanup:
    fa_store_free(st);
    return rc;
}

void fa_store_free(fa_store *st)
{
    if (st == NULL)
        return;
    if (st->conns != NULL) {
        for (int i = 0; i < st->size; i++)
            conn_close(&st->conns[i]);
        (void)pthread_mutex_destroy(&st->mu);
        (void)pthread_cond_destroy(&st->cv);
    }
    free(st->conns);
    free(st->free_idx);
    free(st->conninfo);
    free(st);
}

int fa_store_ping(fa_store *st, fa_error *err)
{
    PGresult *res = NULL;
    int rc = fa_store__run_read(&res, st, FA_STMT_PING, NULL, err);
    PQclear(res);
    return rc;
}
