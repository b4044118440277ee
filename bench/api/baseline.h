/*
 * What the API benchmarks share: a pool of threads that take numbered
 * items until none are left, and the two baselines every ingest figure is
 * divided by (opening the same sealed box with the server key, and raw
 * libpq INSERTs of the same bytes). Each call runs its own threads and
 * returns when they are joined; the box and key are borrowed.
 */
#ifndef FA_BENCH_BASELINE_H
#define FA_BENCH_BASELINE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct fa_crypto_box_key fa_crypto_box_key;

/* n items, handed out in order to whichever thread asks first. */
typedef struct fa_bench_pool {
    int n;
    atomic_int next;
    atomic_int failed;
    void *arg; /* the workers' shared state, borrowed */
} fa_bench_pool;

/* The next item's index, or -1 when all n are taken. */
int fa_bench_pool_take(fa_bench_pool *p);

/* Runs fn(p) on threads threads (at most 64) from item 0; returns items/s. */
double fa_bench_pool_run(fa_bench_pool *p, int threads, void *(*fn)(void *));

/* Opens box n times on threads threads: the ceiling ingest could reach (opens/s). */
int fa_bench_decrypt_rate(double *rate_out, const fa_crypto_box_key *key, const unsigned char *box,
                          size_t box_len, int n, int threads, fa_error *err) FA_MUST_CHECK;

/*
 * INSERTs box n times as a bytea into a scratch table (created and dropped
 * here) over clients connections, one autocommitted row each (rows/s).
 */
int fa_bench_insert_rate(double *rate_out, const char *conninfo, const unsigned char *box,
                         size_t box_len, int n, int clients, fa_error *err) FA_MUST_CHECK;

/* Runs one statement that returns no rows. FA_EUNAVAIL with the server's message. */
int fa_bench_exec(const char *conninfo, const char *sql, fa_error *err) FA_MUST_CHECK;

/* The first column of the first row of sql, as an integer. FA_EUNAVAIL, FA_ENOTFOUND. */
int fa_bench_query_i64(int64_t *out, const char *conninfo, const char *sql,
                       fa_error *err) FA_MUST_CHECK;

#endif
