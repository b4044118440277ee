/*
 * Shared by the files of the store module only: the connection checkout,
 * prepared-statement execution, binary parameter/result helpers and the
 * SQLSTATE mapping. No other module includes this header.
 */
#ifndef FA_STORE_INTERNAL_H
#define FA_STORE_INTERNAL_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "store/store.h"

typedef struct fa_store_conn fa_store_conn;

/* Maps a failed result (or NULL) on pg to an fa_code with a clear message. */
int fa_store__map_error(const PGresult *res, PGconn *pg, const char *what, fa_error *err);

/* Opens a standalone connection (not from the pool) with notices silenced. */
int fa_store__connect(PGconn **out, const char *conninfo, fa_error *err) FA_MUST_CHECK;

/* Runs a simple (unprepared) command that returns no rows. */
int fa_store__exec(PGconn *pg, const char *sql, const char *what, fa_error *err) FA_MUST_CHECK;

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

/* Network byte order encoders for binary parameters. */
void fa_store__put_i64(unsigned char out[8], int64_t v);
void fa_store__put_f64(unsigned char out[8], double v);

#endif
