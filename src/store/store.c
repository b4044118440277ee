#include "store/store.h"

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

/* ------------------------------------------------------------ statements */

/* Every statement fedagg runs at request time. Prepared lazily, once per
 * connection, so a connection to a database that is not migrated yet can
 * still answer a ping. Parameters carry explicit casts because they are
 * sent in binary. */
enum stmt_id {
    S_PING,
    S_UPDATE_INSERT,
    S_UPDATE_GET,
    S_LEDGER_APPEND,
    S_LEDGER_LIST,
    S_LEDGER_LAST,
    S_COUNT
};

static const struct fa_stmt {
    const char *name, *sql;
    int nparams;
} STMTS[S_COUNT] = {
    [S_PING] = {"ping", "SELECT 1", 0},
    [S_UPDATE_INSERT] =
        {"update_insert",
         "INSERT INTO updates (round_id, token_hash, receipt, key_id, num_samples, box)"
         " VALUES ($1::bigint, $2::bytea, $3::text, $4::text, $5::bigint, $6::bytea)"
         " RETURNING id",
         6},
    [S_UPDATE_GET] = {"update_get",
                      "SELECT id, receipt, key_id, num_samples, box FROM updates"
                      " WHERE round_id = $1::bigint AND token_hash = $2::bytea",
                      2},
    [S_LEDGER_APPEND] = {"ledger_append",
                         "INSERT INTO privacy_ledger (seq, kind, round_id, model_version,"
                         " cumulative_epsilon, entry, prev_hash, hash, signature)"
                         " VALUES ($1::bigint, $2::text, NULLIF($3::bigint, 0),"
                         " NULLIF($4::bigint, 0), $5::float8, $6::text, $7::bytea, $8::bytea,"
                         " $9::bytea)",
                         9},
    [S_LEDGER_LIST] = {"ledger_list",
                       "SELECT seq, kind, coalesce(round_id, 0), coalesce(model_version, 0),"
                       " cumulative_epsilon, entry, prev_hash, hash, signature"
                       " FROM privacy_ledger ORDER BY seq",
                       0},
    [S_LEDGER_LAST] = {"ledger_last",
                       "SELECT seq, kind, coalesce(round_id, 0), coalesce(model_version, 0),"
                       " cumulative_epsilon, entry, prev_hash, hash, signature"
                       " FROM privacy_ledger ORDER BY seq DESC LIMIT 1",
                       0},
};

/* ------------------------------------------------------------------ pool */

struct fa_store_conn {
    PGconn *pg;
    unsigned prepared[(S_COUNT + 31) / 32]; /* bit per statement */
    unsigned epoch;                         /* pool epoch when (re)connected */
};

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

static int conn_acquire(fa_store_conn **out, fa_store *st, fa_error *err)
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

static void conn_release(fa_store *st, fa_store_conn *c)
{
    if (c == NULL)
        return;
    /* A connection left inside a transaction (a bug or an I/O error in the
     * middle of one) is not reusable: drop it rather than leak state. */
    if (c->pg != NULL && PQtransactionStatus(c->pg) != PQTRANS_IDLE)
        conn_close(c);
    (void)pthread_mutex_lock(&st->mu);
    st->free_idx[st->nfree++] = (int)(c - st->conns);
    (void)pthread_cond_signal(&st->cv);
    (void)pthread_mutex_unlock(&st->mu);
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
    if ((rc = conn_acquire(&c, st, err)) < 0)
        goto cleanup;
    conn_release(st, c);
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

/* ------------------------------------------------------------ execution */

int fa_store__map_error(const PGresult *res, PGconn *pg, const char *what, fa_error *err)
{
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    char msg[160];

    if (primary == NULL)
        primary = pg != NULL ? PQerrorMessage(pg) : "no result";
    (void)snprintf(msg, sizeof(msg), "%s", primary);
    msg[strcspn(msg, "\n")] = '\0';
    if (state == NULL) {
        if (pg == NULL || PQstatus(pg) != CONNECTION_OK)
            return fa_fail(err, FA_EUNAVAIL, "database unavailable during %s: %s", what, msg);
        if (res == NULL)
            return fa_fail(err, FA_ENOMEM, "out of memory during %s", what);
        return fa_fail(err, FA_EINTERNAL, "database error during %s: %s", what, msg);
    }
    if (strcmp(state, "23505") == 0)
        return fa_fail(err, FA_ECONFLICT, "%s conflicts with an existing row", what);
    /* Serialization failures and deadlocks reach here only after their one
     * retry; connection exceptions (08), shutdown (57P0x) and resource
     * exhaustion (53) mean "try again later", not "your input is wrong". */
    if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
        strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0 ||
        strncmp(state, "53", 2) == 0)
        return fa_fail(err, FA_EUNAVAIL, "database unavailable during %s: %s", what, msg);
    if (strcmp(state, "42P01") == 0)
        return fa_fail(err, FA_EINTERNAL, "database schema is missing (run fedagg migrate): %s",
                       msg);
    if (strncmp(state, "23", 2) == 0 || strncmp(state, "22", 2) == 0)
        return fa_fail(err, FA_EINVAL, "%s rejected by the database: %s", what, msg);
    return fa_fail(err, FA_EINTERNAL, "database error %s during %s: %s", state, what, msg);
}

int fa_store__exec(PGconn *pg, const char *sql, const char *what, fa_error *err)
{
    PGresult *res = PQexec(pg, sql);
    int rc = FA_OK;
    ExecStatusType s = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;

    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
        rc = fa_store__map_error(res, pg, what, err);
    PQclear(res);
    return rc;
}

static int is_retryable_state(const PGresult *res)
{
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return state != NULL && (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0);
}

/* Prepares statement id on c if this connection has not done so yet. */
static int prepare(fa_store_conn *c, int id, fa_error *err)
{
    PGresult *res;
    int rc = FA_OK;

    if (c->prepared[id / 32] & (1u << (id % 32)))
        return FA_OK;
    res = PQprepare(c->pg, STMTS[id].name, STMTS[id].sql, STMTS[id].nparams, NULL);
    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = fa_store__map_error(res, c->pg, STMTS[id].name, err);
    else
        c->prepared[id / 32] |= 1u << (id % 32);
    PQclear(res);
    return rc;
}

/*
 * Runs prepared statement id with binary parameters and binary results.
 * Serialization failures and deadlocks are retried once. On success *out
 * holds a result the caller PQclear()s.
 */
static int run(PGresult **out, fa_store_conn *c, int id, const char *const *values,
               const int *lengths, fa_error *err)
{
    int formats[16];
    PGresult *res = NULL;
    int rc;

    *out = NULL;
    for (int i = 0; i < STMTS[id].nparams; i++)
        formats[i] = 1;
    if ((rc = prepare(c, id, err)) < 0)
        return rc;
    for (int attempt = 0; attempt < 2; attempt++) {
        PQclear(res);
        res = PQexecPrepared(c->pg, STMTS[id].name, STMTS[id].nparams, values, lengths, formats, 1);
        ExecStatusType s = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
        if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) {
            *out = res;
            return FA_OK;
        }
        if (!is_retryable_state(res))
            break;
    }
    rc = fa_store__map_error(res, c->pg, STMTS[id].name, err);
    PQclear(res);
    return rc;
}

/* After a failure, tells the pool when the server went away. */
static void note_failure(fa_store *st, fa_store_conn *c, int rc)
{
    if (rc == FA_EUNAVAIL && c != NULL && (c->pg == NULL || PQstatus(c->pg) != CONNECTION_OK)) {
        conn_close(c);
        atomic_fetch_add(&st->epoch, 1);
    }
}

/*
 * Checks out a connection, runs one read-only statement, and returns the
 * connection. A read that fails because the connection was lost is retried
 * once on a fresh connection: reads are idempotent, so the caller sees the
 * database restart only if it is still down.
 */
static int run_read(PGresult **out, fa_store *st, int id, const char *const *values,
                    const int *lengths, fa_error *err)
{
    fa_store_conn *c = NULL;
    int rc = FA_OK;

    for (int attempt = 0; attempt < 2; attempt++) {
        if ((rc = conn_acquire(&c, st, err)) < 0)
            return rc;
        rc = run(out, c, id, values, lengths, err);
        int lost = rc == FA_EUNAVAIL && PQstatus(c->pg) != CONNECTION_OK;
        note_failure(st, c, rc);
        conn_release(st, c);
        c = NULL;
        if (!lost)
            break;
    }
    return rc;
}

/* Runs one write statement. A lost connection is not retried: the write
 * may have committed, so the caller decides (FA_EUNAVAIL). */
static int run_write(PGresult **out, fa_store *st, int id, const char *const *values,
                     const int *lengths, fa_error *err)
{
    fa_store_conn *c = NULL;
    int rc;

    if ((rc = conn_acquire(&c, st, err)) < 0)
        return rc;
    rc = run(out, c, id, values, lengths, err);
    note_failure(st, c, rc);
    conn_release(st, c);
    return rc;
}

/* ------------------------------------------------------ binary encoding */

void fa_store__put_i64(unsigned char out[8], int64_t v)
{
    uint64_t u = (uint64_t)v;
    for (int i = 7; i >= 0; i--) {
        out[i] = (unsigned char)(u & 0xff);
        u >>= 8;
    }
}

void fa_store__put_f64(unsigned char out[8], double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof(u));
    fa_store__put_i64(out, (int64_t)u);
}

static uint64_t get_u64(const PGresult *res, int row, int col)
{
    const unsigned char *p = (const unsigned char *)PQgetvalue(res, row, col);
    uint64_t u = 0;

    if (PQgetisnull(res, row, col) || PQgetlength(res, row, col) != 8)
        return 0;
    for (int i = 0; i < 8; i++)
        u = u << 8 | p[i];
    return u;
}

int64_t fa_store__get_i64(const PGresult *res, int row, int col)
{
    return (int64_t)get_u64(res, row, col);
}

int32_t fa_store__get_i32(const PGresult *res, int row, int col)
{
    uint32_t u;

    if (PQgetisnull(res, row, col) || PQgetlength(res, row, col) != 4)
        return 0;
    memcpy(&u, PQgetvalue(res, row, col), 4);
    return (int32_t)ntohl(u);
}

double fa_store__get_f64(const PGresult *res, int row, int col)
{
    uint64_t u = get_u64(res, row, col);
    double v;
    memcpy(&v, &u, sizeof(v));
    return v;
}

int fa_store__get_fixed(void *out, size_t n, const PGresult *res, int row, int col, fa_error *err)
{
    if (PQgetisnull(res, row, col) || (size_t)PQgetlength(res, row, col) != n)
        return fa_fail(err, FA_EINTERNAL, "stored column %s has %d bytes, expected %zu",
                       PQfname(res, col), PQgetlength(res, row, col), n);
    memcpy(out, PQgetvalue(res, row, col), n);
    return FA_OK;
}

int fa_store__get_dup(unsigned char **out, size_t *len_out, const PGresult *res, int row, int col,
                      fa_error *err)
{
    size_t n = (size_t)PQgetlength(res, row, col);
    unsigned char *p = malloc(n + 1);

    *out = NULL;
    if (p == NULL)
        return fa_fail(err, FA_ENOMEM, "out of memory reading %s", PQfname(res, col));
    memcpy(p, PQgetvalue(res, row, col), n);
    p[n] = '\0';
    *out = p;
    if (len_out != NULL)
        *len_out = n;
    return FA_OK;
}

/* ----------------------------------------------------------------- calls */

int fa_store_ping(fa_store *st, fa_error *err)
{
    PGresult *res = NULL;
    int rc = run_read(&res, st, S_PING, NULL, NULL, err);
    PQclear(res);
    return rc;
}

int fa_store_update_insert(int64_t *id_out, fa_store *st, const fa_store_update *u, fa_error *err)
{
    unsigned char round_be[8], n_be[8];
    const char *values[6];
    int lengths[6];
    PGresult *res = NULL;
    int rc;

    *id_out = 0;
    if (u->box_len > (size_t)INT32_MAX)
        return fa_fail(err, FA_ETOOBIG, "sealed update of %zu bytes is too large", u->box_len);
    fa_store__put_i64(round_be, u->round_id);
    fa_store__put_i64(n_be, u->num_samples);
    values[0] = (const char *)round_be;
    lengths[0] = 8;
    values[1] = (const char *)u->token_hash;
    lengths[1] = 32;
    values[2] = u->receipt;
    lengths[2] = (int)strlen(u->receipt);
    values[3] = u->key_id;
    lengths[3] = (int)strlen(u->key_id);
    values[4] = (const char *)n_be;
    lengths[4] = 8;
    values[5] = (const char *)u->box;
    lengths[5] = (int)u->box_len;
    if ((rc = run_write(&res, st, S_UPDATE_INSERT, values, lengths, err)) < 0)
        goto cleanup;
    *id_out = fa_store__get_i64(res, 0, 0);
cleanup:
    PQclear(res);
    return rc;
}

static int copy_text(char *out, size_t cap, const PGresult *res, int row, int col, fa_error *err)
{
    size_t n = (size_t)PQgetlength(res, row, col);

    if (n >= cap)
        return fa_fail(err, FA_EINTERNAL, "stored column %s is longer than %zu bytes",
                       PQfname(res, col), cap - 1);
    memcpy(out, PQgetvalue(res, row, col), n);
    out[n] = '\0';
    return FA_OK;
}

int fa_store_update_get(fa_store_update *out, fa_store *st, int64_t round_id,
                        const unsigned char token_hash[32], fa_error *err)
{
    unsigned char round_be[8];
    const char *values[2] = {(const char *)round_be, (const char *)token_hash};
    int lengths[2] = {8, 32};
    PGresult *res = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    fa_store__put_i64(round_be, round_id);
    if ((rc = run_read(&res, st, S_UPDATE_GET, values, lengths, err)) < 0)
        goto cleanup;
    if (PQntuples(res) == 0) {
        rc = fa_fail(err, FA_ENOTFOUND, "no update for this token in round %lld",
                     (long long)round_id);
        goto cleanup;
    }
    out->id = fa_store__get_i64(res, 0, 0);
    out->round_id = round_id;
    memcpy(out->token_hash, token_hash, 32);
    out->num_samples = fa_store__get_i64(res, 0, 3);
    if ((rc = copy_text(out->receipt, sizeof(out->receipt), res, 0, 1, err)) < 0 ||
        (rc = copy_text(out->key_id, sizeof(out->key_id), res, 0, 2, err)) < 0 ||
        (rc = fa_store__get_dup(&out->box, &out->box_len, res, 0, 4, err)) < 0)
        goto cleanup;
cleanup:
    PQclear(res);
    if (rc < 0)
        fa_store_update_done(out);
    return rc;
}

void fa_store_update_done(fa_store_update *u)
{
    if (u == NULL)
        return;
    free(u->box);
    u->box = NULL;
    u->box_len = 0;
}

/* ---------------------------------------------------------------- ledger */

int fa_store_ledger_append(fa_store *st, const fa_store_ledger_row *row, fa_error *err)
{
    unsigned char seq_be[8], round_be[8], ver_be[8], eps_be[8];
    const char *values[9];
    int lengths[9];
    PGresult *res = NULL;
    int rc;

    if (row->entry == NULL || strlen(row->entry) > 16u * 1024 * 1024)
        return fa_fail(err, FA_EINVAL, "ledger entry text is missing or too large");
    fa_store__put_i64(seq_be, row->seq);
    fa_store__put_i64(round_be, row->round_id);
    fa_store__put_i64(ver_be, row->model_version);
    fa_store__put_f64(eps_be, row->cumulative_epsilon);
    values[0] = (const char *)seq_be;
    lengths[0] = 8;
    values[1] = row->kind;
    lengths[1] = (int)strlen(row->kind);
    values[2] = (const char *)round_be;
    lengths[2] = 8;
    values[3] = (const char *)ver_be;
    lengths[3] = 8;
    values[4] = (const char *)eps_be;
    lengths[4] = 8;
    values[5] = row->entry;
    lengths[5] = (int)strlen(row->entry);
    values[6] = (const char *)row->prev_hash;
    lengths[6] = 32;
    values[7] = (const char *)row->hash;
    lengths[7] = 32;
    values[8] = (const char *)row->signature;
    lengths[8] = 64;
    rc = run_write(&res, st, S_LEDGER_APPEND, values, lengths, err);
    PQclear(res);
    return rc;
}

static int ledger_row_read(fa_store_ledger_row *out, const PGresult *res, int row, fa_error *err)
{
    int rc;

    memset(out, 0, sizeof(*out));
    out->seq = fa_store__get_i64(res, row, 0);
    out->round_id = fa_store__get_i64(res, row, 2);
    out->model_version = fa_store__get_i64(res, row, 3);
    out->cumulative_epsilon = fa_store__get_f64(res, row, 4);
    if ((rc = copy_text(out->kind, sizeof(out->kind), res, row, 1, err)) < 0 ||
        (rc = fa_store__get_dup((unsigned char **)&out->entry, NULL, res, row, 5, err)) < 0 ||
        (rc = fa_store__get_fixed(out->prev_hash, 32, res, row, 6, err)) < 0 ||
        (rc = fa_store__get_fixed(out->hash, 32, res, row, 7, err)) < 0 ||
        (rc = fa_store__get_fixed(out->signature, 64, res, row, 8, err)) < 0) {
        fa_store_ledger_row_done(out);
        return rc;
    }
    return FA_OK;
}

int fa_store_ledger_list(fa_store_ledger_row **rows_out, size_t *n_out, fa_store *st, fa_error *err)
{
    PGresult *res = NULL;
    fa_store_ledger_row *rows = NULL;
    size_t n = 0;
    int rc;

    *rows_out = NULL;
    *n_out = 0;
    if ((rc = run_read(&res, st, S_LEDGER_LIST, NULL, NULL, err)) < 0)
        goto cleanup;
    n = (size_t)PQntuples(res);
    rows = calloc(n > 0 ? n : 1, sizeof(*rows));
    if (rows == NULL) {
        rc = fa_fail(err, FA_ENOMEM, "out of memory reading the ledger");
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++)
        if ((rc = ledger_row_read(&rows[i], res, (int)i, err)) < 0)
            goto cleanup;
    *rows_out = rows;
    *n_out = n;
    rows = NULL;
cleanup:
    fa_store_ledger_rows_free(rows, n);
    PQclear(res);
    return rc;
}

int fa_store_ledger_last(fa_store_ledger_row *out, fa_store *st, fa_error *err)
{
    PGresult *res = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = run_read(&res, st, S_LEDGER_LAST, NULL, NULL, err)) < 0)
        goto cleanup;
    if (PQntuples(res) == 0) {
        rc = fa_fail(err, FA_ENOTFOUND, "the ledger is empty");
        goto cleanup;
    }
    rc = ledger_row_read(out, res, 0, err);
cleanup:
    PQclear(res);
    return rc;
}

void fa_store_ledger_row_done(fa_store_ledger_row *row)
{
    if (row == NULL)
        return;
    free(row->entry);
    row->entry = NULL;
}

void fa_store_ledger_rows_free(fa_store_ledger_row *rows, size_t n)
{
    if (rows == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        fa_store_ledger_row_done(&rows[i]);
    free(rows);
}
