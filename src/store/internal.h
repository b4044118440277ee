/*
 * Shared by the files of the store module only: the statement table, the
 * connection checkout, prepared-statement execution, binary parameter and
 * result helpers, the SQLSTATE mapping, and the row codecs that a round
 * close shares with the plain calls. No other module includes this header.
 */
#ifndef FA_STORE_INTERNAL_H
#define FA_STORE_INTERNAL_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "store/store.h"

/* ------------------------------------------------------------ statements */

/* Every statement fedagg runs at request time (statements.c). */
typedef enum fa_stmt_id {
    FA_STMT_PING,
    FA_STMT_UPDATE_INSERT,
    FA_STMT_UPDATE_GET,
    FA_STMT_UPDATES_PAGE,
    FA_STMT_LEDGER_APPEND,
    FA_STMT_LEDGER_LIST,
    FA_STMT_LEDGER_LAST,
    FA_STMT_MODEL_GET,
    FA_STMT_MODEL_INSERT,
    FA_STMT_ROUND_INSERT,
    FA_STMT_ROUND_ACTIVE,
    FA_STMT_ROUND_GET,
    FA_STMT_ROUND_LOCK_SHARE,
    FA_STMT_ROUND_LOCK,
    FA_STMT_ROUND_END,
    FA_STMT_TOKEN_INSERT,
    FA_STMT_TOKEN_ROUND,
    FA_STMT_CLOSE_LOCK,
    FA_STMT_MODEL_LIST,
    FA_STMT_LEDGER_LAST_RELEASE,
    FA_STMT_LEDGER_PAGE,
    FA_STMT_UPDATES_ERASE,
    FA_STMT_UPDATES_SEALED_TO,
    FA_STMT_RECEIPTS_INSERT,
    FA_STMT_RECEIPTS_EXISTING,
    FA_STMT_PARTIAL_GET,
    FA_STMT_PARTIAL_PUT,
    FA_STMT_PARTIALS_OF_ROUND,
    FA_STMT_ROUND_MEMBERS,
    FA_STMT_PARTIALS_DELETE,
    FA_STMT_COUNT
} fa_stmt_id;

typedef struct fa_store_stmt {
    const char *name, *sql;
    int nparams;
} fa_store_stmt;

/* The SQL text of each statement, indexed by fa_stmt_id; immutable. */
extern const fa_store_stmt fa_store__stmts[FA_STMT_COUNT];

/* ------------------------------------------------------------------ pool */

/* One pooled connection, used by the one thread that acquired it. */
typedef struct fa_store_conn {
    PGconn *pg;
    unsigned prepared[(FA_STMT_COUNT + 31) / 32]; /* bit per statement */
    unsigned epoch;                               /* pool epoch when (re)connected */
} fa_store_conn;

/* Opens a standalone connection (not from the pool) with notices silenced. */
int fa_store__connect(PGconn **out, const char *conninfo, fa_error *err) FA_MUST_CHECK;

/*
 * Checks out an idle connection of st, waiting for one when all are in use,
 * and (re)connects it when needed. FA_EUNAVAIL when the database cannot be
 * reached; the connection is then back in the pool.
 */
int fa_store__conn_acquire(fa_store_conn **out, fa_store *st, fa_error *err) FA_MUST_CHECK;

/* Returns c to st, rolling back a transaction left open. NULL-safe. */
void fa_store__conn_release(fa_store *st, fa_store_conn *c);

/* After a failure rc on c, tells the pool when the server went away. */
void fa_store__note_failure(fa_store *st, fa_store_conn *c, int rc);

/* ------------------------------------------------------------- execution */

/* Maps a failed result (or NULL) on pg to an fa_code with a clear message. */
int fa_store__map_error(const PGresult *res, PGconn *pg, const char *what, fa_error *err);

/* Runs a simple (unprepared) command that returns no rows. */
int fa_store__exec(PGconn *pg, const char *sql, const char *what, fa_error *err) FA_MUST_CHECK;

/* Ciphertext rows read per page when a close folds pre-partial-sum updates. */
#define FA_STORE_PAGE 8

#define FA_STORE_PARAMS_MAX 12

/* Binary parameters of one statement call. Buffers for numbers live here,
 * byte strings are borrowed from the caller for the duration of the call. */
typedef struct fa_store_params {
    const char *v[FA_STORE_PARAMS_MAX];
    int len[FA_STORE_PARAMS_MAX]; /* bytes */
    unsigned char num[FA_STORE_PARAMS_MAX][8];
    int n;
} fa_store_params;

/*
 * Each runs statement id with binary parameters p (NULL: none) and binary
 * results; on success *out holds a result the caller PQclear()s.
 * run_read checks out a connection and retries once on a fresh one when the
 * connection was lost (reads are idempotent). run_write does not retry (the
 * write may have committed). run_in runs on c, inside a transaction the
 * caller holds. tx runs BEGIN, COMMIT or ROLLBACK on c.
 */
int fa_store__run_read(PGresult **out, fa_store *st, fa_stmt_id id, const fa_store_params *p,
                       fa_error *err) FA_MUST_CHECK;
int fa_store__run_write(PGresult **out, fa_store *st, fa_stmt_id id, const fa_store_params *p,
                        fa_error *err) FA_MUST_CHECK;
int fa_store__run_in(PGresult **out, fa_store *st, fa_store_conn *c, fa_stmt_id id,
                     const fa_store_params *p, fa_error *err) FA_MUST_CHECK;
int fa_store__tx(fa_store *st, fa_store_conn *c, const char *sql, fa_error *err) FA_MUST_CHECK;

/* ------------------------------------------------------- binary encoding */

/* Appends one parameter to p. bytes: NULL data becomes SQL NULL. */
void fa_store__param_i64(fa_store_params *p, int64_t x);
void fa_store__param_f64(fa_store_params *p, double x);
void fa_store__param_bool(fa_store_params *p, int x);
void fa_store__param_bytes(fa_store_params *p, const void *data, size_t len);
void fa_store__param_text(fa_store_params *p, const char *s);

/* Binary result getters (the store requests binary results everywhere). */
int64_t fa_store__get_i64(const PGresult *res, int row, int col);
int32_t fa_store__get_i32(const PGresult *res, int row, int col);
double fa_store__get_f64(const PGresult *res, int row, int col);
/* Copies a column into a buffer of exactly n bytes; FA_EINTERNAL if its length differs. */
int fa_store__get_fixed(void *out, size_t n, const PGresult *res, int row, int col,
                        fa_error *err) FA_MUST_CHECK;
/* Copies a column into a new NUL-terminated malloc'd buffer. */
int fa_store__get_dup(unsigned char **out, size_t *len_out, const PGresult *res, int row, int col,
                      fa_error *err) FA_MUST_CHECK;
/* Copies a text column into out[cap]; FA_EINTERNAL when it does not fit. */
int fa_store__get_text(char *out, size_t cap, const PGresult *res, int row, int col,
                       fa_error *err) FA_MUST_CHECK;

/* Network byte order encoders for binary parameters. */
void fa_store__put_i64(unsigned char out[8], int64_t v);
void fa_store__put_f64(unsigned char out[8], double v);

/* ------------------------------------------------------------ row codecs */

/* One row of FA_STMT_UPDATES_PAGE into out (out->round_id is left as is). */
int fa_store__update_read(fa_store_update *out, const PGresult *res, int row,
                          fa_error *err) FA_MUST_CHECK;

/* The parameters of FA_STMT_LEDGER_APPEND for row (borrowed by p). */
void fa_store__ledger_params(fa_store_params *p, const fa_store_ledger_row *row);

/*
 * Every row of a ledger query result res into a new array; rc is the
 * query's code (res is not read when it failed). Takes res (PQclear()s it).
 */
int fa_store__ledger_rows_from(fa_store_ledger_row **rows_out, size_t *n_out, int rc, PGresult *res,
                               fa_error *err) FA_MUST_CHECK;

/* The first row of res into out; FA_ENOTFOUND when res has none (an empty ledger). */
int fa_store__ledger_last_from(fa_store_ledger_row *out, const PGresult *res,
                               fa_error *err) FA_MUST_CHECK;

/* The parameters of FA_STMT_MODEL_INSERT for m (borrowed by p). */
void fa_store__model_params(fa_store_params *p, const fa_store_model *m);

/* The parameters of FA_STMT_ROUND_INSERT for r. */
void fa_store__round_params(fa_store_params *p, const fa_store_round *r);

/* One row of the round columns (ROUND_COLS of statements.c) into out. */
int fa_store__round_read(fa_store_round *out, const PGresult *res, int row,
                         fa_error *err) FA_MUST_CHECK;

/*
 * The round state spelled in column col of row into out. FA_EINTERNAL for
 * a spelling core/round_state.h does not know (the schema's check allows
 * only those it does).
 */
int fa_store__round_state_read(fa_round_state *out, const PGresult *res, int row, int col,
                               fa_error *err) FA_MUST_CHECK;

#endif
