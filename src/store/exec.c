/*
 * Statement execution: prepared statements run with binary parameters and
 * results, the one retry of serialization failures and deadlocks, the
 * retry of reads on a lost connection, and SQLSTATEs mapped to fa_codes.
 */
#include "store/internal.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

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
static int prepare(fa_store_conn *c, fa_stmt_id id, fa_error *err)
{
    const fa_store_stmt *stmt = &fa_store__stmts[id];
    PGresult *res;
    int rc = FA_OK;

    if (c->prepared[id / 32] & (1u << (id % 32)))
        return FA_OK;
    res = PQprepare(c->pg, stmt->name, stmt->sql, stmt->nparams, NULL);
    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = fa_store__map_error(res, c->pg, stmt->name, err);
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
static int run(PGresult **out, fa_store_conn *c, fa_stmt_id id, const fa_store_params *p,
               fa_error *err)
{
    _Static_assert(FA_STORE_PARAMS_MAX == 12, "formats has one entry per parameter");
    static const int formats[FA_STORE_PARAMS_MAX] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    const fa_store_stmt *stmt = &fa_store__stmts[id];
    PGresult *res = NULL;
    int rc;

    *out = NULL;
    assert(p == NULL ? stmt->nparams == 0 : p->n == stmt->nparams);
    if ((rc = prepare(c, id, err)) < 0)
        return rc;
    for (int attempt = 0; attempt < 2; attempt++) {
        PQclear(res);
        res = PQexecPrepared(c->pg, stmt->name, stmt->nparams, p != NULL ? p->v : NULL,
                             p != NULL ? p->len : NULL, formats, 1);
        ExecStatusType s = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
        if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) {
            *out = res;
            return FA_OK;
        }
        if (!is_retryable_state(res) || PQtransactionStatus(c->pg) != PQTRANS_IDLE)
            break;
    }
    rc = fa_store__map_error(res, c->pg, stmt->name, err);
    PQclear(res);
    return rc;
}

/*
 * Checks out a connection, runs one read-only statement, and returns the
 * connection. A read that fails because the connection was lost is retried
 * once on a fresh connection: reads are idempotent, so the caller sees the
 * database restart only if it is still down.
 */
int fa_store__run_read(PGresult **out, fa_store *st, fa_stmt_id id, const fa_store_params *p,
                       fa_error *err)
{
    fa_store_conn *c = NULL;
    int rc = FA_OK;

    for (int attempt = 0; attempt < 2; attempt++) {
        if ((rc = fa_store__conn_acquire(&c, st, err)) < 0)
            return rc;
        rc = run(out, c, id, p, err);
        int lost = rc == FA_EUNAVAIL && PQstatus(c->pg) != CONNECTION_OK;
        fa_store__note_failure(st, c, rc);
        fa_store__conn_release(st, c);
        c = NULL;
        if (!lost)
            break;
    }
    return rc;
}

/* Runs one write statement. A lost connection is not retried: the write
 * may have committed, so the caller decides (FA_EUNAVAIL). */
int fa_store__run_write(PGresult **out, fa_store *st, fa_stmt_id id, const fa_store_params *p,
                        fa_error *err)
{
    fa_store_conn *c = NULL;
    int rc;

    if ((rc = fa_store__conn_acquire(&c, st, err)) < 0)
        return rc;
    rc = run(out, c, id, p, err);
    fa_store__note_failure(st, c, rc);
    fa_store__conn_release(st, c);
    return rc;
}

/* Runs a statement inside a transaction the caller holds on c. */
int fa_store__run_in(PGresult **out, fa_store *st, fa_store_conn *c, fa_stmt_id id,
                     const fa_store_params *p, fa_error *err)
{
    int rc = run(out, c, id, p, err);
    fa_store__note_failure(st, c, rc);
    return rc;
}

int fa_store__tx(fa_store *st, fa_store_conn *c, const char *sql, fa_error *err)
{
    int rc = fa_store__exec(c->pg, sql, sql, err);
    fa_store__note_failure(st, c, rc);
    return rc;
}
