#include "store/store.h"

#include <arpa/inet.h>
#include <assert.h>
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
    S_UPDATE_SAME,
    S_UPDATES_PAGE,
    S_LEDGER_APPEND,
    S_LEDGER_LIST,
    S_LEDGER_LAST,
    S_MODEL_GET,
    S_MODEL_INSERT,
    S_ROUND_INSERT,
    S_ROUND_ACTIVE,
    S_ROUND_GET,
    S_ROUND_LOCK_SHARE,
    S_ROUND_LOCK,
    S_ROUND_END,
    S_ROUND_COUNT,
    S_TOKEN_INSERT,
    S_TOKEN_ROUND,
    S_TOKEN_CHECK,
    S_CLOSE_LOCK,
    S_MODEL_LIST,
    S_LEDGER_LAST_RELEASE,
    S_LEDGER_PAGE,
    S_UPDATE_IDS,
    S_UPDATES_ERASE,
    S_UPDATES_SEALED_TO,
    S_COUNT
};

#define ROUND_COLS                                                                                 \
    "id, base_version, state, min_cohort::bigint, sampling_rate,"                                  \
    " extract(epoch FROM opened_at)::float8, extract(epoch FROM deadline)::float8,"                \
    " coalesce(result_version, 0),"                                                                \
    " (SELECT count(*) FROM updates u WHERE u.round_id = rounds.id)"
#define LEDGER_COLS                                                                                \
    "seq, kind, coalesce(round_id, 0), coalesce(model_version, 0),"                                \
    " cumulative_epsilon, entry, prev_hash, hash, signature"

#define FA_STR_(x) #x
#define FA_STR(x)  FA_STR_(x)

/* Advisory lock key of the round closer ("fedaggcl"). */
#define CLOSE_LOCK_KEY 7306916001716300140LL

static const struct fa_stmt {
    const char *name, *sql;
    int nparams;
} STMTS[S_COUNT] = {
    [S_PING] = {"ping", "SELECT 1", 0},
    [S_UPDATE_INSERT] = {"update_insert",
                         "INSERT INTO updates (round_id, token_hash, receipt, key_id, num_samples,"
                         " box) VALUES ($1::bigint, $2::bytea, $3::text, $4::text, $5::bigint,"
                         " $6::bytea) ON CONFLICT (round_id, token_hash) DO NOTHING"
                         " RETURNING id, receipt",
                         6},
    [S_UPDATE_GET] = {"update_get",
                      "SELECT id, receipt, key_id, num_samples, box FROM updates"
                      " WHERE round_id = $1::bigint AND token_hash = $2::bytea",
                      2},
    [S_UPDATE_SAME] = {"update_same",
                       "SELECT id, receipt, box = $3::bytea FROM updates"
                       " WHERE round_id = $1::bigint AND token_hash = $2::bytea",
                       3},
    [S_UPDATES_PAGE] =
        {"updates_page",
         "SELECT id, token_hash, receipt, key_id, num_samples, box FROM updates"
         " WHERE round_id = $1::bigint AND id > $2::bigint ORDER BY id LIMIT " FA_STR(
             FA_STORE_PAGE),
         2},
    [S_LEDGER_APPEND] = {"ledger_append",
                         "INSERT INTO privacy_ledger (seq, kind, round_id, model_version,"
                         " cumulative_epsilon, entry, prev_hash, hash, signature)"
                         " VALUES ($1::bigint, $2::text, NULLIF($3::bigint, 0),"
                         " NULLIF($4::bigint, 0), $5::float8, $6::text, $7::bytea, $8::bytea,"
                         " $9::bytea)",
                         9},
    [S_LEDGER_LIST] = {"ledger_list", "SELECT " LEDGER_COLS " FROM privacy_ledger ORDER BY seq", 0},
    [S_LEDGER_LAST] = {"ledger_last",
                       "SELECT " LEDGER_COLS " FROM privacy_ledger ORDER BY seq DESC LIMIT 1", 0},
    [S_MODEL_GET] = {"model_get",
                     "SELECT version, coalesce(parent, -1), sha256,"
                     " extract(epoch FROM created_at)::float8,"
                     " CASE WHEN $2::bool THEN snapshot END,"
                     " CASE WHEN $2::bool THEN optimizer_state END, metrics::text"
                     " FROM model_versions WHERE version = CASE WHEN $1::bigint < 0"
                     " THEN (SELECT max(version) FROM model_versions) ELSE $1::bigint END",
                     2},
    [S_MODEL_INSERT] = {"model_insert",
                        "INSERT INTO model_versions (version, parent, sha256, snapshot,"
                        " optimizer_state, metrics) VALUES ($1::bigint, NULLIF($2::bigint, -1),"
                        " $3::bytea, $4::bytea, $5::bytea, coalesce($6::text, '{}')::jsonb)"
                        " ON CONFLICT DO NOTHING",
                        6},
    [S_ROUND_INSERT] = {"round_insert",
                        "INSERT INTO rounds (id, base_version, min_cohort, sampling_rate,"
                        " deadline) VALUES ($1::bigint, $2::bigint, $3::bigint, $4::float8,"
                        " to_timestamp($5::float8)) ON CONFLICT DO NOTHING",
                        5},
    [S_ROUND_ACTIVE] = {"round_active", "SELECT " ROUND_COLS " FROM rounds WHERE state = 'open'",
                        0},
    [S_ROUND_GET] = {"round_get", "SELECT " ROUND_COLS " FROM rounds WHERE id = $1::bigint", 1},
    [S_ROUND_LOCK_SHARE] = {"round_lock_share",
                            "SELECT state, extract(epoch FROM deadline)::float8 FROM rounds"
                            " WHERE id = $1::bigint FOR SHARE NOWAIT",
                            1},
    [S_ROUND_LOCK] = {"round_lock",
                      "SELECT " ROUND_COLS " FROM rounds WHERE id = $1::bigint FOR UPDATE", 1},
    [S_ROUND_END] = {"round_end",
                     "UPDATE rounds SET state = $2::text, ended_at = now(),"
                     " result_version = NULLIF($3::bigint, 0)"
                     " WHERE id = $1::bigint AND state = 'open'",
                     3},
    [S_ROUND_COUNT] = {"round_count", "SELECT count(*) FROM updates WHERE round_id = $1::bigint",
                       1},
    [S_TOKEN_INSERT] = {"token_insert",
                        "INSERT INTO round_tokens (round_id, token_hash, pseudonym_hash)"
                        " SELECT $1::bigint, $2::bytea, $3::bytea WHERE EXISTS"
                        " (SELECT 1 FROM rounds WHERE id = $1::bigint AND state = 'open')",
                        3},
    [S_TOKEN_ROUND] =
        {"token_round",
         "SELECT round_id, pseudonym_hash FROM round_tokens WHERE token_hash = $1::bytea"
         " ORDER BY round_id DESC LIMIT 1",
         1},
    [S_TOKEN_CHECK] = {"token_check",
                       "SELECT 1 FROM round_tokens WHERE round_id = $1::bigint"
                       " AND token_hash = $2::bytea",
                       2},
    [S_CLOSE_LOCK] = {"close_lock", "SELECT pg_try_advisory_xact_lock($1::bigint)", 1},
    [S_MODEL_LIST] = {"model_list", "SELECT version, sha256 FROM model_versions ORDER BY version",
                      0},
    [S_LEDGER_LAST_RELEASE] = {"ledger_last_release",
                               "SELECT " LEDGER_COLS " FROM privacy_ledger WHERE kind = 'release'"
                               " ORDER BY seq DESC LIMIT 1",
                               0},
    [S_LEDGER_PAGE] = {"ledger_page",
                       "SELECT " LEDGER_COLS " FROM privacy_ledger WHERE seq > $1::bigint"
                       " ORDER BY seq LIMIT $2::bigint",
                       2},
    [S_UPDATE_IDS] = {"update_ids",
                      "SELECT id FROM updates WHERE round_id = $1::bigint ORDER BY id", 1},
    [S_UPDATES_ERASE] = {"updates_erase",
                         "UPDATE updates SET box = ''::bytea WHERE round_id = $1::bigint", 1},
    [S_UPDATES_SEALED_TO] = {"updates_sealed_to",
                             "SELECT count(*) FROM updates WHERE key_id = $1::text"
                             " AND box <> ''::bytea",
                             1},
};

/* Binary parameters of one statement call. Buffers for numbers live here,
 * byte strings are borrowed from the caller for the duration of the call. */
struct params {
    const char *v[12];
    int len[12];
    unsigned char num[12][8];
    int n;
};

static void p_i64(struct params *p, int64_t x)
{
    fa_store__put_i64(p->num[p->n], x);
    p->v[p->n] = (const char *)p->num[p->n];
    p->len[p->n++] = 8;
}

static void p_f64(struct params *p, double x)
{
    fa_store__put_f64(p->num[p->n], x);
    p->v[p->n] = (const char *)p->num[p->n];
    p->len[p->n++] = 8;
}

static void p_bool(struct params *p, int x)
{
    p->num[p->n][0] = x != 0;
    p->v[p->n] = (const char *)p->num[p->n];
    p->len[p->n++] = 1;
}

/* NULL data becomes SQL NULL. */
static void p_bytes(struct params *p, const void *data, size_t len)
{
    p->v[p->n] = data;
    p->len[p->n++] = (int)len;
}

static void p_text(struct params *p, const char *s)
{
    p_bytes(p, s, s != NULL ? strlen(s) : 0);
}

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
     * retry; connection exceptions (08), shutdown (57P0x), resource
     * exhaustion (53) and a NOWAIT lock that was taken (55P03) mean "try
     * again later", not "your input is wrong". */
    if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
        strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0 ||
        strncmp(state, "53", 2) == 0 || strcmp(state, "55P03") == 0)
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
 * Outside a transaction, serialization failures and deadlocks are retried
 * once. On success *out holds a result the caller PQclear()s.
 */
static int run(PGresult **out, fa_store_conn *c, int id, const struct params *p, fa_error *err)
{
    static const int formats[12] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    PGresult *res = NULL;
    int rc;

    *out = NULL;
    assert(p == NULL ? STMTS[id].nparams == 0 : p->n == STMTS[id].nparams);
    if ((rc = prepare(c, id, err)) < 0)
        return rc;
    for (int attempt = 0; attempt < 2; attempt++) {
        PQclear(res);
        res = PQexecPrepared(c->pg, STMTS[id].name, STMTS[id].nparams, p != NULL ? p->v : NULL,
                             p != NULL ? p->len : NULL, formats, 1);
        ExecStatusType s = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
        if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) {
            *out = res;
            return FA_OK;
        }
        if (!is_retryable_state(res) || PQtransactionStatus(c->pg) != PQTRANS_IDLE)
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
static int run_read(PGresult **out, fa_store *st, int id, const struct params *p, fa_error *err)
{
    fa_store_conn *c = NULL;
    int rc = FA_OK;

    for (int attempt = 0; attempt < 2; attempt++) {
        if ((rc = conn_acquire(&c, st, err)) < 0)
            return rc;
        rc = run(out, c, id, p, err);
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
static int run_write(PGresult **out, fa_store *st, int id, const struct params *p, fa_error *err)
{
    fa_store_conn *c = NULL;
    int rc;

    if ((rc = conn_acquire(&c, st, err)) < 0)
        return rc;
    rc = run(out, c, id, p, err);
    note_failure(st, c, rc);
    conn_release(st, c);
    return rc;
}

/* Runs a statement inside a transaction the caller holds on c. */
static int run_in(PGresult **out, fa_store *st, fa_store_conn *c, int id, const struct params *p,
                  fa_error *err)
{
    int rc = run(out, c, id, p, err);
    note_failure(st, c, rc);
    return rc;
}

static int tx(fa_store *st, fa_store_conn *c, const char *sql, fa_error *err)
{
    int rc = fa_store__exec(c->pg, sql, sql, err);
    note_failure(st, c, rc);
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

int fa_store_ping(fa_store *st, fa_error *err)
{
    PGresult *res = NULL;
    int rc = run_read(&res, st, S_PING, NULL, err);
    PQclear(res);
    return rc;
}

/* ---------------------------------------------------------------- updates */

static int update_params(struct params *p, const fa_store_update_in *u, fa_error *err)
{
    if (u->box_len > (size_t)INT32_MAX)
        return fa_fail(err, FA_ETOOBIG, "sealed update of %zu bytes is too large", u->box_len);
    memset(p, 0, sizeof(*p));
    p_i64(p, u->round_id);
    p_bytes(p, u->token_hash, 32);
    p_text(p, u->receipt);
    p_text(p, u->key_id);
    p_i64(p, u->num_samples);
    p_bytes(p, u->box, u->box_len);
    return FA_OK;
}

int fa_store_update_insert(int64_t *id_out, fa_store *st, const fa_store_update_in *u,
                           fa_error *err)
{
    struct params p;
    PGresult *res = NULL;
    int rc;

    *id_out = 0;
    if ((rc = update_params(&p, u, err)) < 0 ||
        (rc = run_write(&res, st, S_UPDATE_INSERT, &p, err)) < 0)
        goto cleanup;
    if (PQntuples(res) == 0) {
        rc = fa_fail(err, FA_ECONFLICT, "round %lld already has an update for this token",
                     (long long)u->round_id);
        goto cleanup;
    }
    *id_out = fa_store__get_i64(res, 0, 0);
cleanup:
    PQclear(res);
    return rc;
}

static int update_read(fa_store_update *out, const PGresult *res, int row, fa_error *err)
{
    int rc;

    out->id = fa_store__get_i64(res, row, 0);
    out->num_samples = fa_store__get_i64(res, row, 4);
    if ((rc = fa_store__get_fixed(out->token_hash, 32, res, row, 1, err)) < 0 ||
        (rc = copy_text(out->receipt, sizeof(out->receipt), res, row, 2, err)) < 0 ||
        (rc = copy_text(out->key_id, sizeof(out->key_id), res, row, 3, err)) < 0 ||
        (rc = fa_store__get_dup(&out->box, &out->box_len, res, row, 5, err)) < 0)
        return rc;
    return FA_OK;
}

int fa_store_update_get(fa_store_update *out, fa_store *st, int64_t round_id,
                        const unsigned char token_hash[32], fa_error *err)
{
    struct params p = {0};
    PGresult *res = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    p_i64(&p, round_id);
    p_bytes(&p, token_hash, 32);
    if ((rc = run_read(&res, st, S_UPDATE_GET, &p, err)) < 0)
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

int fa_store_update_accept(fa_store_accept *out, fa_store *st, const fa_store_update_in *u,
                           int64_t max_cohort, double now, fa_error *err)
{
    fa_store_conn *c = NULL;
    PGresult *res = NULL;
    struct params p = {0}, up;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = update_params(&up, u, err)) < 0 || (rc = conn_acquire(&c, st, err)) < 0)
        return rc;
    if ((rc = tx(st, c, "BEGIN", err)) < 0)
        goto cleanup;
    /* A share lock on the round row: many updates proceed together, while
     * a closer holding the row exclusively makes us fail fast (NOWAIT)
     * instead of parking an HTTP thread behind the close. */
    p_i64(&p, u->round_id);
    rc = run_in(&res, st, c, S_ROUND_LOCK_SHARE, &p, err);
    if (rc < 0) {
        if (rc == FA_EUNAVAIL && PQstatus(c->pg) == CONNECTION_OK)
            rc = fa_fail(err, FA_EUNAVAIL, "round %lld is being closed; retry shortly",
                         (long long)u->round_id);
        goto cleanup;
    }
    if (PQntuples(res) == 0) {
        rc = fa_fail(err, FA_ENOTFOUND, "round %lld does not exist", (long long)u->round_id);
        goto cleanup;
    }
    if (strcmp(PQgetvalue(res, 0, 0), "open") != 0) {
        out->conflict = FA_STORE_CONFLICT_ROUND_ENDED;
        rc = fa_fail(err, FA_ECONFLICT, "round %lld is %s and takes no more updates",
                     (long long)u->round_id, PQgetvalue(res, 0, 0));
        goto cleanup;
    }
    /* Membership is "delivered by the deadline": checked under the share
     * lock, so an update is either in before the deadline or refused, never
     * decided by which other updates came first. */
    if (now >= fa_store__get_f64(res, 0, 1)) {
        out->conflict = FA_STORE_CONFLICT_ROUND_ENDED;
        rc = fa_fail(err, FA_ECONFLICT, "round %lld has passed its deadline",
                     (long long)u->round_id);
        goto cleanup;
    }
    PQclear(res);
    res = NULL;
    memset(&p, 0, sizeof(p));
    p_i64(&p, u->round_id);
    p_bytes(&p, u->token_hash, 32);
    if ((rc = run_in(&res, st, c, S_TOKEN_CHECK, &p, err)) < 0)
        goto cleanup;
    if (PQntuples(res) == 0) {
        rc = fa_fail(err, FA_ENOTFOUND, "token was not issued for round %lld",
                     (long long)u->round_id);
        goto cleanup;
    }
    PQclear(res);
    res = NULL;
    /* The common case sends the box once: insert, and only when the token
     * already has an update compare the boxes (a retry or a reuse). */
    if ((rc = run_in(&res, st, c, S_UPDATE_INSERT, &up, err)) < 0)
        goto cleanup;
    if (PQntuples(res) == 1) {
        out->id = fa_store__get_i64(res, 0, 0);
        if ((rc = copy_text(out->receipt, sizeof(out->receipt), res, 0, 1, err)) < 0)
            goto cleanup;
    } else {
        PQclear(res);
        res = NULL;
        memset(&p, 0, sizeof(p));
        p_i64(&p, u->round_id);
        p_bytes(&p, u->token_hash, 32);
        p_bytes(&p, u->box, u->box_len);
        if ((rc = run_in(&res, st, c, S_UPDATE_SAME, &p, err)) < 0)
            goto cleanup;
        if (PQntuples(res) != 1 || PQgetvalue(res, 0, 2)[0] != 1) {
            out->conflict = FA_STORE_CONFLICT_TOKEN_USED;
            rc = fa_fail(err, FA_ECONFLICT, "token was already used for a different update");
            goto cleanup;
        }
        out->duplicate = 1;
        out->id = fa_store__get_i64(res, 0, 0);
        if ((rc = copy_text(out->receipt, sizeof(out->receipt), res, 0, 1, err)) < 0)
            goto cleanup;
    }
    PQclear(res);
    res = NULL;
    memset(&p, 0, sizeof(p));
    p_i64(&p, u->round_id);
    if ((rc = run_in(&res, st, c, S_ROUND_COUNT, &p, err)) < 0)
        goto cleanup;
    /* Counted after the insert, inside the transaction: over the cap, the
     * rollback in cleanup takes this update back out. */
    if (!out->duplicate && fa_store__get_i64(res, 0, 0) > max_cohort) {
        out->conflict = FA_STORE_CONFLICT_ROUND_FULL;
        rc = fa_fail(err, FA_ECONFLICT, "round %lld is full (%lld updates)", (long long)u->round_id,
                     (long long)max_cohort);
        goto cleanup;
    }
    out->cohort = fa_store__get_i64(res, 0, 0);
    rc = tx(st, c, "COMMIT", err);
cleanup:
    PQclear(res);
    conn_release(st, c); /* rolls back an unfinished transaction */
    return rc;
}

int fa_store_updates_page(fa_store_update *out, size_t *n_out, fa_store *st, int64_t round_id,
                          int64_t after_id, fa_error *err)
{
    struct params p = {0};
    PGresult *res = NULL;
    size_t n = 0;
    int rc;

    *n_out = 0;
    memset(out, 0, FA_STORE_PAGE * sizeof(*out));
    p_i64(&p, round_id);
    p_i64(&p, after_id);
    if ((rc = run_read(&res, st, S_UPDATES_PAGE, &p, err)) < 0)
        goto cleanup;
    for (; n < (size_t)PQntuples(res) && n < FA_STORE_PAGE; n++) {
        out[n].round_id = round_id;
        if ((rc = update_read(&out[n], res, (int)n, err)) < 0) {
            for (size_t i = 0; i <= n; i++)
                fa_store_update_done(&out[i]);
            goto cleanup;
        }
    }
    *n_out = n;
cleanup:
    PQclear(res);
    return rc;
}

int fa_store_round_cohort(int64_t *out, fa_store *st, int64_t round_id, fa_error *err)
{
    struct params p = {0};
    PGresult *res = NULL;
    int rc;

    *out = 0;
    p_i64(&p, round_id);
    if ((rc = run_read(&res, st, S_ROUND_COUNT, &p, err)) == FA_OK)
        *out = fa_store__get_i64(res, 0, 0);
    PQclear(res);
    return rc;
}

/* ---------------------------------------------------------------- ledger */

static void ledger_params(struct params *p, const fa_store_ledger_row *row)
{
    memset(p, 0, sizeof(*p));
    p_i64(p, row->seq);
    p_text(p, row->kind);
    p_i64(p, row->round_id);
    p_i64(p, row->model_version);
    p_f64(p, row->cumulative_epsilon);
    p_text(p, row->entry);
    p_bytes(p, row->prev_hash, 32);
    p_bytes(p, row->hash, 32);
    p_bytes(p, row->signature, 64);
}

int fa_store_ledger_append(fa_store *st, const fa_store_ledger_row *row, fa_error *err)
{
    struct params p;
    PGresult *res = NULL;
    int rc;

    if (row->entry == NULL || strlen(row->entry) > 16u * 1024 * 1024)
        return fa_fail(err, FA_EINVAL, "ledger entry text is missing or too large");
    ledger_params(&p, row);
    rc = run_write(&res, st, S_LEDGER_APPEND, &p, err);
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

/* Every row of a ledger query result into a new array (rc: the query's). */
static int ledger_rows_from(fa_store_ledger_row **rows_out, size_t *n_out, int rc, PGresult *res,
                            fa_error *err)
{
    fa_store_ledger_row *rows = NULL;
    size_t n = 0;

    *rows_out = NULL;
    *n_out = 0;
    if (rc < 0)
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

int fa_store_ledger_list(fa_store_ledger_row **rows_out, size_t *n_out, fa_store *st, fa_error *err)
{
    PGresult *res = NULL;
    const int rc = run_read(&res, st, S_LEDGER_LIST, NULL, err);

    return ledger_rows_from(rows_out, n_out, rc, res, err);
}

int fa_store_ledger_page(fa_store_ledger_row **rows_out, size_t *n_out, fa_store *st,
                         int64_t after_seq, int64_t limit, fa_error *err)
{
    struct params p = {0};
    PGresult *res = NULL;
    int rc;

    p_i64(&p, after_seq);
    p_i64(&p, limit);
    rc = run_read(&res, st, S_LEDGER_PAGE, &p, err);
    return ledger_rows_from(rows_out, n_out, rc, res, err);
}

static int ledger_last_from(fa_store_ledger_row *out, const PGresult *res, fa_error *err)
{
    memset(out, 0, sizeof(*out));
    if (PQntuples(res) == 0)
        return fa_fail(err, FA_ENOTFOUND, "the ledger is empty");
    return ledger_row_read(out, res, 0, err);
}

int fa_store_ledger_last(fa_store_ledger_row *out, fa_store *st, fa_error *err)
{
    PGresult *res = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = run_read(&res, st, S_LEDGER_LAST, NULL, err)) == FA_OK)
        rc = ledger_last_from(out, res, err);
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

/* ----------------------------------------------------------------- models */

int fa_store_model_get(fa_store_model *out, fa_store *st, int64_t version, int with_bytes,
                       fa_error *err)
{
    struct params p = {0};
    PGresult *res = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    p_i64(&p, version);
    p_bool(&p, with_bytes);
    if ((rc = run_read(&res, st, S_MODEL_GET, &p, err)) < 0)
        goto cleanup;
    if (PQntuples(res) == 0) {
        rc = version < 0 ? fa_fail(err, FA_ENOTFOUND, "no model version is published yet")
                         : fa_fail(err, FA_ENOTFOUND, "model version %lld does not exist",
                                   (long long)version);
        goto cleanup;
    }
    out->version = fa_store__get_i64(res, 0, 0);
    out->parent = fa_store__get_i64(res, 0, 1);
    out->created_at = fa_store__get_f64(res, 0, 3);
    if ((rc = fa_store__get_fixed(out->sha256, 32, res, 0, 2, err)) < 0)
        goto cleanup;
    if (with_bytes &&
        (rc = fa_store__get_dup(&out->snapshot, &out->snapshot_len, res, 0, 4, err)) < 0)
        goto cleanup;
    if (with_bytes && !PQgetisnull(res, 0, 5) &&
        (rc = fa_store__get_dup(&out->optimizer_state, &out->optimizer_state_len, res, 0, 5, err)) <
            0)
        goto cleanup;
    if (!PQgetisnull(res, 0, 6) &&
        (rc = fa_store__get_dup((unsigned char **)&out->metrics, NULL, res, 0, 6, err)) < 0)
        goto cleanup;
cleanup:
    PQclear(res);
    if (rc < 0)
        fa_store_model_done(out);
    return rc;
}

void fa_store_model_done(fa_store_model *m)
{
    if (m == NULL)
        return;
    free(m->snapshot);
    free(m->optimizer_state);
    free(m->metrics);
    m->snapshot = m->optimizer_state = NULL;
    m->metrics = NULL;
}

int fa_store_model_list(fa_store_version **out, size_t *n_out, fa_store *st, fa_error *err)
{
    PGresult *res = NULL;
    fa_store_version *v = NULL;
    size_t n = 0;
    int rc;

    *out = NULL;
    *n_out = 0;
    if ((rc = run_read(&res, st, S_MODEL_LIST, NULL, err)) < 0)
        goto cleanup;
    n = (size_t)PQntuples(res);
    v = calloc(n > 0 ? n : 1, sizeof(*v));
    if (v == NULL) {
        rc = fa_fail(err, FA_ENOMEM, "out of memory reading the model versions");
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++) {
        v[i].version = fa_store__get_i64(res, (int)i, 0);
        if ((rc = fa_store__get_fixed(v[i].sha256, 32, res, (int)i, 1, err)) < 0)
            goto cleanup;
    }
    *out = v;
    *n_out = n;
    v = NULL;
cleanup:
    free(v);
    PQclear(res);
    return rc;
}

static void model_params(struct params *p, const fa_store_model *m)
{
    memset(p, 0, sizeof(*p));
    p_i64(p, m->version);
    p_i64(p, m->parent);
    p_bytes(p, m->sha256, 32);
    p_bytes(p, m->snapshot, m->snapshot_len);
    p_bytes(p, m->optimizer_state, m->optimizer_state_len);
    p_bytes(p, m->metrics, m->metrics != NULL ? strlen(m->metrics) : 0);
}

static void round_params(struct params *p, const fa_store_round *r)
{
    memset(p, 0, sizeof(*p));
    p_i64(p, r->id);
    p_i64(p, r->base_version);
    p_i64(p, r->min_cohort);
    p_f64(p, r->sampling_rate);
    p_f64(p, r->deadline);
}

/* ----------------------------------------------------------------- rounds */

static int round_read(fa_store_round *out, const PGresult *res, int row, fa_error *err)
{
    memset(out, 0, sizeof(*out));
    out->id = fa_store__get_i64(res, row, 0);
    out->base_version = fa_store__get_i64(res, row, 1);
    out->min_cohort = fa_store__get_i64(res, row, 3);
    out->sampling_rate = fa_store__get_f64(res, row, 4);
    out->opened_at = fa_store__get_f64(res, row, 5);
    out->deadline = fa_store__get_f64(res, row, 6);
    out->result_version = fa_store__get_i64(res, row, 7);
    out->cohort = fa_store__get_i64(res, row, 8);
    return copy_text(out->state, sizeof(out->state), res, row, 2, err);
}

int fa_store_bootstrap(fa_store *st, const fa_store_model *initial, const fa_store_round *round,
                       fa_error *err)
{
    fa_store_conn *c = NULL;
    PGresult *res = NULL;
    struct params p;
    int rc;

    if ((rc = conn_acquire(&c, st, err)) < 0)
        return rc;
    if ((rc = tx(st, c, "BEGIN", err)) < 0)
        goto cleanup;
    /* ON CONFLICT DO NOTHING on both rows: a second process starting at
     * the same moment finds them written and changes nothing. */
    model_params(&p, initial);
    if ((rc = run_in(&res, st, c, S_MODEL_INSERT, &p, err)) < 0)
        goto cleanup;
    int fresh = strcmp(PQcmdTuples(res), "1") == 0;
    PQclear(res);
    res = NULL;
    if (fresh) {
        round_params(&p, round);
        if ((rc = run_in(&res, st, c, S_ROUND_INSERT, &p, err)) < 0)
            goto cleanup;
    }
    rc = tx(st, c, "COMMIT", err);
cleanup:
    PQclear(res);
    conn_release(st, c);
    return rc;
}

static int round_query(fa_store_round *out, fa_store *st, int id, const struct params *p,
                       const char *missing, fa_error *err)
{
    PGresult *res = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = run_read(&res, st, id, p, err)) < 0)
        goto cleanup;
    if (PQntuples(res) == 0) {
        rc = fa_fail(err, FA_ENOTFOUND, "%s", missing);
        goto cleanup;
    }
    rc = round_read(out, res, 0, err);
cleanup:
    PQclear(res);
    return rc;
}

int fa_store_round_active(fa_store_round *out, fa_store *st, fa_error *err)
{
    return round_query(out, st, S_ROUND_ACTIVE, NULL, "no round is open", err);
}

int fa_store_round_get(fa_store_round *out, fa_store *st, int64_t id, fa_error *err)
{
    struct params p = {0};
    p_i64(&p, id);
    return round_query(out, st, S_ROUND_GET, &p, "no such round", err);
}

int fa_store_token_insert(fa_store *st, int64_t round_id, const unsigned char token_hash[32],
                          const unsigned char *pseudonym_hash, fa_error *err)
{
    struct params p = {0};
    PGresult *res = NULL;
    int rc;

    p_i64(&p, round_id);
    p_bytes(&p, token_hash, 32);
    p_bytes(&p, pseudonym_hash, pseudonym_hash != NULL ? 32 : 0);
    rc = run_write(&res, st, S_TOKEN_INSERT, &p, err);
    if (rc == FA_ECONFLICT)
        rc = fa_fail(err, FA_ECONFLICT, "this device already checked in for round %lld",
                     (long long)round_id);
    else if (rc == FA_OK && strcmp(PQcmdTuples(res), "1") != 0)
        /* The round ended between reading it and this insert: the next
         * one is already open, so the check-in only needs repeating. */
        rc = fa_fail(err, FA_EUNAVAIL, "round %lld has just ended; check in again",
                     (long long)round_id);
    PQclear(res);
    return rc;
}

int fa_store_token_round(int64_t *round_out, unsigned char pseudonym_out[32],
                         int *has_pseudonym_out, fa_store *st, const unsigned char token_hash[32],
                         fa_error *err)
{
    struct params p = {0};
    PGresult *res = NULL;
    int rc;

    *round_out = 0;
    *has_pseudonym_out = 0;
    p_bytes(&p, token_hash, 32);
    if ((rc = run_read(&res, st, S_TOKEN_ROUND, &p, err)) < 0)
        goto cleanup;
    if (PQntuples(res) == 0) {
        rc = fa_fail(err, FA_ENOTFOUND, "unknown participation token");
        goto cleanup;
    }
    *round_out = fa_store__get_i64(res, 0, 0);
    if (!PQgetisnull(res, 0, 1) && PQgetlength(res, 0, 1) == 32) {
        memcpy(pseudonym_out, PQgetvalue(res, 0, 1), 32);
        *has_pseudonym_out = 1;
    }
cleanup:
    PQclear(res);
    return rc;
}

int fa_store_updates_sealed_to(int64_t *count_out, fa_store *st, const char *key_id, fa_error *err)
{
    struct params p = {0};
    PGresult *res = NULL;
    int rc;

    *count_out = 0;
    p_text(&p, key_id);
    if ((rc = run_read(&res, st, S_UPDATES_SEALED_TO, &p, err)) == FA_OK)
        *count_out = fa_store__get_i64(res, 0, 0);
    PQclear(res);
    return rc;
}

/* ------------------------------------------------------------ round close */

struct fa_store_close {
    fa_store *st;
    fa_store_conn *c;
    int64_t round_id;
    int64_t last_id; /* keyset cursor over the round's updates */
    PGresult *page;  /* current page of updates */
    int page_pos;
    int exhausted;
};

int fa_store_close_begin(fa_store_close **out, fa_store_round *round_out, fa_store *st,
                         int64_t round_id, fa_error *err)
{
    fa_store_close *cl = calloc(1, sizeof(*cl));
    PGresult *res = NULL;
    struct params p = {0};
    int rc;

    *out = NULL;
    if (cl == NULL)
        return fa_fail(err, FA_ENOMEM, "out of memory closing a round");
    cl->st = st;
    cl->round_id = round_id;
    if ((rc = conn_acquire(&cl->c, st, err)) < 0 || (rc = tx(st, cl->c, "BEGIN", err)) < 0)
        goto cleanup;
    p_i64(&p, CLOSE_LOCK_KEY);
    if ((rc = run_in(&res, st, cl->c, S_CLOSE_LOCK, &p, err)) < 0)
        goto cleanup;
    if (PQgetvalue(res, 0, 0)[0] != 1) {
        rc = fa_fail(err, FA_ECONFLICT, "another process is closing a round");
        goto cleanup;
    }
    PQclear(res);
    res = NULL;
    memset(&p, 0, sizeof(p));
    p_i64(&p, round_id);
    if ((rc = run_in(&res, st, cl->c, S_ROUND_LOCK, &p, err)) < 0)
        goto cleanup;
    if (PQntuples(res) == 0) {
        rc = fa_fail(err, FA_ENOTFOUND, "round %lld does not exist", (long long)round_id);
        goto cleanup;
    }
    if ((rc = round_read(round_out, res, 0, err)) < 0)
        goto cleanup;
    if (strcmp(round_out->state, "open") != 0) {
        rc = fa_fail(err, FA_ECONFLICT, "round %lld has already ended (%s)", (long long)round_id,
                     round_out->state);
        goto cleanup;
    }
    *out = cl;
    cl = NULL;
cleanup:
    PQclear(res);
    fa_store_close_free(cl);
    return rc;
}

int fa_store_close_next_update(fa_store_update *out, int *done, fa_store_close *cl, fa_error *err)
{
    int rc;

    memset(out, 0, sizeof(*out));
    *done = 0;
    if (cl->page == NULL || cl->page_pos >= PQntuples(cl->page)) {
        struct params p = {0};
        PQclear(cl->page);
        cl->page = NULL;
        cl->page_pos = 0;
        if (cl->exhausted) {
            *done = 1;
            return FA_OK;
        }
        p_i64(&p, cl->round_id);
        p_i64(&p, cl->last_id);
        if ((rc = run_in(&cl->page, cl->st, cl->c, S_UPDATES_PAGE, &p, err)) < 0)
            return rc;
        if (PQntuples(cl->page) < FA_STORE_PAGE)
            cl->exhausted = 1;
        if (PQntuples(cl->page) == 0) {
            *done = 1;
            return FA_OK;
        }
    }
    out->round_id = cl->round_id;
    if ((rc = update_read(out, cl->page, cl->page_pos, err)) < 0) {
        fa_store_update_done(out);
        return rc;
    }
    cl->last_id = out->id;
    cl->page_pos++;
    return FA_OK;
}

int fa_store_close_update_ids(int64_t **ids_out, size_t *n_out, fa_store_close *cl, fa_error *err)
{
    PGresult *res = NULL;
    struct params p = {0};
    int64_t *ids = NULL;
    size_t n = 0;
    int rc;

    *ids_out = NULL;
    *n_out = 0;
    /* A statement of its own after the round row is locked: under READ
     * COMMITTED it takes a fresh snapshot, so it sees every update whose
     * transaction held the round's share lock before ours was granted. */
    p_i64(&p, cl->round_id);
    if ((rc = run_in(&res, cl->st, cl->c, S_UPDATE_IDS, &p, err)) < 0)
        goto cleanup;
    n = (size_t)PQntuples(res);
    ids = calloc(n > 0 ? n : 1, sizeof(*ids));
    if (ids == NULL) {
        rc = fa_fail(err, FA_ENOMEM, "out of memory reading the round's update ids");
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++)
        ids[i] = fa_store__get_i64(res, (int)i, 0);
    *ids_out = ids;
    *n_out = n;
    ids = NULL;
cleanup:
    free(ids);
    PQclear(res);
    return rc;
}

int fa_store_close_ledger_last_release(fa_store_ledger_row *out, fa_store_close *cl, fa_error *err)
{
    PGresult *res = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = run_in(&res, cl->st, cl->c, S_LEDGER_LAST_RELEASE, NULL, err)) == FA_OK)
        rc = ledger_last_from(out, res, err);
    PQclear(res);
    return rc;
}

int fa_store_close_ledger_page(fa_store_ledger_row **rows_out, size_t *n_out, fa_store_close *cl,
                               int64_t after_seq, int64_t limit, fa_error *err)
{
    struct params p = {0};
    PGresult *res = NULL;
    int rc;

    p_i64(&p, after_seq);
    p_i64(&p, limit);
    rc = run_in(&res, cl->st, cl->c, S_LEDGER_PAGE, &p, err);
    return ledger_rows_from(rows_out, n_out, rc, res, err);
}

int fa_store_close_ledger_last(fa_store_ledger_row *out, fa_store_close *cl, fa_error *err)
{
    PGresult *res = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = run_in(&res, cl->st, cl->c, S_LEDGER_LAST, NULL, err)) == FA_OK)
        rc = ledger_last_from(out, res, err);
    PQclear(res);
    return rc;
}

int fa_store_close_commit(fa_store_close *cl, const fa_store_close_result *r, fa_error *err)
{
    PGresult *res = NULL;
    struct params p;
    int rc;

    PQclear(cl->page);
    cl->page = NULL;
    if (r->model != NULL) {
        model_params(&p, r->model);
        if ((rc = run_in(&res, cl->st, cl->c, S_MODEL_INSERT, &p, err)) < 0)
            goto cleanup;
        if (strcmp(PQcmdTuples(res), "1") != 0) {
            rc = fa_fail(err, FA_ECONFLICT, "model version %lld already exists",
                         (long long)r->model->version);
            goto cleanup;
        }
        PQclear(res);
        res = NULL;
    }
    if (r->budget != NULL) {
        ledger_params(&p, r->budget);
        if ((rc = run_in(&res, cl->st, cl->c, S_LEDGER_APPEND, &p, err)) < 0)
            goto cleanup;
        PQclear(res);
        res = NULL;
    }
    ledger_params(&p, r->ledger);
    if ((rc = run_in(&res, cl->st, cl->c, S_LEDGER_APPEND, &p, err)) < 0)
        goto cleanup;
    PQclear(res);
    res = NULL;
    memset(&p, 0, sizeof(p));
    p_i64(&p, cl->round_id);
    p_text(&p, r->final_state);
    p_i64(&p, r->model != NULL ? r->model->version : 0);
    if ((rc = run_in(&res, cl->st, cl->c, S_ROUND_END, &p, err)) < 0)
        goto cleanup;
    if (strcmp(PQcmdTuples(res), "1") != 0) {
        rc = fa_fail(err, FA_ECONFLICT, "round %lld has already ended", (long long)cl->round_id);
        goto cleanup;
    }
    PQclear(res);
    res = NULL;
    /* No individual update outlives its round: the ciphertexts go with
     * the same commit that ends it (receipts and token hashes stay). */
    memset(&p, 0, sizeof(p));
    p_i64(&p, cl->round_id);
    if ((rc = run_in(&res, cl->st, cl->c, S_UPDATES_ERASE, &p, err)) < 0)
        goto cleanup;
    PQclear(res);
    res = NULL;
    if (r->next != NULL) {
        round_params(&p, r->next);
        if ((rc = run_in(&res, cl->st, cl->c, S_ROUND_INSERT, &p, err)) < 0)
            goto cleanup;
        if (strcmp(PQcmdTuples(res), "1") != 0) {
            rc = fa_fail(err, FA_ECONFLICT, "round %lld already exists", (long long)r->next->id);
            goto cleanup;
        }
    }
    rc = tx(cl->st, cl->c, "COMMIT", err);
cleanup:
    PQclear(res);
    return rc;
}

void fa_store_close_free(fa_store_close *cl)
{
    if (cl == NULL)
        return;
    PQclear(cl->page);
    conn_release(cl->st, cl->c); /* rolls back anything not committed */
    free(cl);
}
