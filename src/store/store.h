/*
 * The store: fedagg's only door to PostgreSQL. A pool of connections, each
 * used by one thread at a time, with every statement prepared once per
 * connection. Functions speak domain types; SQLSTATEs become fa_codes
 * (23505 -> FA_ECONFLICT; class 08, 40001, 40P01 after one retry, and a lost
 * connection -> FA_EUNAVAIL). A lost connection is re-opened on the next call.
 * All functions are thread-safe; lock order: pool mutex only, never held
 * across a database round trip.
 */
#ifndef FA_STORE_STORE_H
#define FA_STORE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct fa_store fa_store;

/*
 * Opens a pool of pool_size connections to conninfo (libpq keyword/value
 * string or URI). Connections are opened lazily; the first is opened here so
 * a bad conninfo fails early with FA_EUNAVAIL.
 */
int fa_store_open(fa_store **out, const char *conninfo, int pool_size, fa_error *err) FA_MUST_CHECK;
void fa_store_free(fa_store *st);

/* Round trip to the database: FA_OK or FA_EUNAVAIL. */
int fa_store_ping(fa_store *st, fa_error *err) FA_MUST_CHECK;

/* ------------------------------------------------------------- updates */

typedef struct fa_store_update {
    int64_t id;
    int64_t round_id;
    unsigned char token_hash[32]; /* SHA-256 of the participation token */
    char receipt[40];             /* opaque receipt id given to the device */
    char key_id[64];              /* server key the box was sealed to */
    int64_t num_samples;          /* device's claimed training examples */
    unsigned char *box;           /* sealed ciphertext, owned */
    size_t box_len;               /* bytes */
} fa_store_update;

/*
 * Inserts one update (box copied by the database). FA_ECONFLICT when the
 * (round, token) pair already has an update; id_out receives the new row id.
 */
int fa_store_update_insert(int64_t *id_out, fa_store *st, const fa_store_update *u,
                           fa_error *err) FA_MUST_CHECK;

/* Reads the update of (round, token hash) into out; FA_ENOTFOUND if none. */
int fa_store_update_get(fa_store_update *out, fa_store *st, int64_t round_id,
                        const unsigned char token_hash[32], fa_error *err) FA_MUST_CHECK;

/* Frees the box of an update read from the store (the struct is the caller's). */
void fa_store_update_done(fa_store_update *u);

/* --------------------------------------------------------------- ledger */

typedef struct fa_store_ledger_row {
    int64_t seq;               /* 1-based position in the chain */
    char kind[16];             /* release | refusal | abandonment */
    int64_t round_id;          /* 0 when none */
    int64_t model_version;     /* version produced, 0 when none */
    double cumulative_epsilon; /* after this entry */
    char *entry;               /* canonical encoding (text), owned */
    unsigned char prev_hash[32];
    unsigned char hash[32];
    unsigned char signature[64];
} fa_store_ledger_row;

/* Appends one row; FA_ECONFLICT if seq is taken (another writer won). */
int fa_store_ledger_append(fa_store *st, const fa_store_ledger_row *row,
                           fa_error *err) FA_MUST_CHECK;

/* Reads all rows in seq order into a new array owned by the caller. */
int fa_store_ledger_list(fa_store_ledger_row **rows_out, size_t *n_out, fa_store *st,
                         fa_error *err) FA_MUST_CHECK;

/* Reads the last row (highest seq); FA_ENOTFOUND when the ledger is empty. */
int fa_store_ledger_last(fa_store_ledger_row *out, fa_store *st, fa_error *err) FA_MUST_CHECK;

void fa_store_ledger_row_done(fa_store_ledger_row *row);
void fa_store_ledger_rows_free(fa_store_ledger_row *rows, size_t n);

#endif
