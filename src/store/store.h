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
#include "core/round_state.h"

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
 * An update row stored with its ciphertext (as every row was before partial
 * sums existed), every field borrowed for the call.
 */
typedef struct fa_store_update_in {
    int64_t round_id;
    unsigned char token_hash[32]; /* SHA-256 of the participation token */
    char receipt[40];             /* opaque receipt id given to the device */
    char key_id[64];              /* server key the box was sealed to */
    int64_t num_samples;          /* device's claimed training examples */
    const unsigned char *box;     /* sealed ciphertext, borrowed */
    size_t box_len;               /* bytes */
} fa_store_update_in;

/*
 * Inserts one update (box copied by the database). FA_ECONFLICT when the
 * (round, token) pair already has an update; id_out receives the new row id.
 */
int fa_store_update_insert(int64_t *id_out, fa_store *st, const fa_store_update_in *u,
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

/*
 * Reads at most limit rows with seq > after_seq, in seq order (paging; an
 * empty page ends the ledger). Same ownership as fa_store_ledger_list.
 */
int fa_store_ledger_page(fa_store_ledger_row **rows_out, size_t *n_out, fa_store *st,
                         int64_t after_seq, int64_t limit, fa_error *err) FA_MUST_CHECK;

/* Reads the last row (highest seq); FA_ENOTFOUND when the ledger is empty. */
int fa_store_ledger_last(fa_store_ledger_row *out, fa_store *st, fa_error *err) FA_MUST_CHECK;

void fa_store_ledger_row_done(fa_store_ledger_row *row);
void fa_store_ledger_rows_free(fa_store_ledger_row *rows, size_t n);

/* ---------------------------------------------------------------- models */

typedef struct fa_store_model {
    int64_t version;                /* 0 is the initial model */
    int64_t parent;                 /* -1 for the initial model */
    unsigned char sha256[32];       /* of the safetensors snapshot */
    double created_at;              /* seconds since the epoch */
    unsigned char *snapshot;        /* safetensors bytes, owned; NULL if not loaded */
    size_t snapshot_len;            /* bytes */
    unsigned char *optimizer_state; /* server optimizer state, owned; may be NULL */
    size_t optimizer_state_len;     /* bytes */
    char *metrics;                  /* JSON object text, owned; may be NULL */
} fa_store_model;

/*
 * Reads model version (version < 0: the newest). With with_bytes unset only
 * the metadata is read (snapshot and optimizer_state stay NULL).
 * FA_ENOTFOUND when there is no such version.
 */
int fa_store_model_get(fa_store_model *out, fa_store *st, int64_t version, int with_bytes,
                       fa_error *err) FA_MUST_CHECK;
void fa_store_model_done(fa_store_model *m);

/* A published version's number and snapshot digest (no bytes). */
typedef struct fa_store_version {
    int64_t version;
    unsigned char sha256[32];
} fa_store_version;

/* Lists every model version in version order into a new array (free()). */
int fa_store_model_list(fa_store_version **out, size_t *n_out, fa_store *st,
                        fa_error *err) FA_MUST_CHECK;

/* ---------------------------------------------------------------- rounds */

typedef struct fa_store_round {
    int64_t id;
    int64_t base_version;   /* model version devices must train on */
    fa_round_state state;   /* open, or how the round ended */
    int64_t min_cohort;     /* updates needed to close */
    double sampling_rate;   /* q of Poisson sampling at check-in */
    double opened_at;       /* seconds since the epoch */
    double deadline;        /* seconds since the epoch */
    int64_t result_version; /* version published by this round, 0 if none */
    int64_t cohort;         /* updates stored so far */
} fa_store_round;

/*
 * Creates model version 0 and opens round 1 on it, in one transaction, when
 * the database has no model yet; does nothing otherwise (safe when several
 * processes start at once). round->id and base_version are set here.
 */
int fa_store_bootstrap(fa_store *st, const fa_store_model *initial, const fa_store_round *round,
                       fa_error *err) FA_MUST_CHECK;

/* Reads the open round; FA_ENOTFOUND when none is open. */
int fa_store_round_active(fa_store_round *out, fa_store *st, fa_error *err) FA_MUST_CHECK;

/* Reads round id without its cohort (out->cohort is 0); FA_ENOTFOUND when there is none. */
int fa_store_round_get(fa_store_round *out, fa_store *st, int64_t id, fa_error *err) FA_MUST_CHECK;

/*
 * Records a participation token (its hash) for round_id. pseudonym_hash
 * (may be NULL) makes a second check-in of the same device in the same round
 * an FA_ECONFLICT. FA_EUNAVAIL when the round is no longer open (it ended
 * a moment ago; checking in again joins the next one).
 */
int fa_store_token_insert(fa_store *st, int64_t round_id, const unsigned char token_hash[32],
                          const unsigned char *pseudonym_hash, fa_error *err) FA_MUST_CHECK;

/*
 * How many stored updates are still sealed to box key key_id (their round
 * has not ended: a close erases the ciphertexts of the round it ends).
 */
int fa_store_updates_sealed_to(int64_t *count_out, fa_store *st, const char *key_id,
                               fa_error *err) FA_MUST_CHECK;

/*
 * Finds the round a token was issued for (as fa_store_round_get reads it,
 * in the same query) and the keyed pseudonym hash it was issued to
 * (*has_pseudonym_out 0 for an anonymous check-in); FA_ENOTFOUND for
 * unknown tokens.
 */
int fa_store_token_round(fa_store_round *round_out, unsigned char pseudonym_out[32],
                         int *has_pseudonym_out, fa_store *st, const unsigned char token_hash[32],
                         fa_error *err) FA_MUST_CHECK;

/*
 * A group commit: one transaction that adds a batch of accepted updates to
 * this node's partial sum of a round. It holds the round row's share lock
 * from fa_store_batch_begin to commit or free, so a closer (which locks the
 * row exclusively) sees the whole batch or none of it. The receipt rows and
 * the partial sum that holds their updates are committed together: an
 * acknowledged update is in exactly one committed partial sum, once. One
 * thread uses a batch handle.
 */
typedef struct fa_store_batch fa_store_batch;

typedef enum fa_store_conflict {
    FA_STORE_CONFLICT_NONE,
    FA_STORE_CONFLICT_ROUND_ENDED, /* the round takes no more updates */
    FA_STORE_CONFLICT_ROUND_FULL,  /* max_cohort reached */
    FA_STORE_CONFLICT_TOKEN_USED,  /* token used with a different box */
} fa_store_conflict;

/* What became of one update of a batch. */
typedef enum fa_store_item_outcome {
    FA_STORE_ITEM_NEW,        /* receipt row written: fold it into the partial sum */
    FA_STORE_ITEM_DUPLICATE,  /* the token already has this very update: its receipt */
    FA_STORE_ITEM_TOKEN_USED, /* the token already has a different update */
    FA_STORE_ITEM_ROUND_FULL, /* max_cohort reached */
    FA_STORE_ITEM_RETRY,      /* another node stored this token meanwhile: ask again */
} fa_store_item_outcome;

typedef struct fa_store_batch_item {
    unsigned char token_hash[32]; /* SHA-256 of the participation token */
    unsigned char seal_id[32];    /* fa_crypto_box_digest of the sealed update */
    char receipt[40];             /* in: a fresh receipt (hex); out: the stored one */
    char key_id[64];              /* server key the box was sealed to ([0-9a-z] only) */
    int64_t num_samples;          /* device's claimed training examples */
    fa_store_item_outcome outcome;
} fa_store_batch_item;

/*
 * Begins a batch for round_id: locks its row for share (failing fast while a
 * closer holds it: FA_EUNAVAIL "being closed, retry"), checks it is open
 * and now (seconds since the epoch) is before its deadline (else
 * FA_ECONFLICT with *conflict_out = ROUND_ENDED), and reads how many
 * updates it holds into *cohort_out. FA_ENOTFOUND: no such round.
 */
int fa_store_batch_begin(fa_store_batch **out, fa_store_conflict *conflict_out, int64_t *cohort_out,
                         fa_store *st, int64_t round_id, double now, fa_error *err) FA_MUST_CHECK;

/*
 * Writes the receipt rows of items[0..n) for node (16 bytes), in order, as
 * long as the round stays within max_cohort, and sets each item's outcome
 * (a token twice in one batch: the second is a retry of the first).
 * *new_out counts FA_STORE_ITEM_NEW. Nothing is visible before commit.
 */
int fa_store_batch_receipts(fa_store_batch *b, size_t *new_out, fa_store_batch_item *items,
                            size_t n, const unsigned char node[16], int64_t max_cohort,
                            fa_error *err) FA_MUST_CHECK;

/*
 * Reads node's committed partial sum of the round (locking its row):
 * *sealed_out (malloc, free()) and the updates it holds. FA_ENOTFOUND when
 * the node has none.
 */
int fa_store_batch_partial_get(unsigned char **sealed_out, size_t *len_out, int64_t *folded_out,
                               fa_store_batch *b, const unsigned char node[16],
                               fa_error *err) FA_MUST_CHECK;

/*
 * Replaces node's partial sum: folded updates in sealed. The row must hold
 * prev_folded updates now (0: no row), else FA_ECONFLICT (this node's view
 * of its own row is stale: reload it with fa_store_batch_partial_get).
 */
int fa_store_batch_partial_put(fa_store_batch *b, const unsigned char node[16], int64_t prev_folded,
                               int64_t folded, const unsigned char *sealed, size_t len,
                               fa_error *err) FA_MUST_CHECK;

/* Commits the batch (durable on return: synchronous commit). */
int fa_store_batch_commit(fa_store_batch *b, fa_error *err) FA_MUST_CHECK;

/* Rolls back (if not committed) and returns the connection. NULL-safe. */
void fa_store_batch_free(fa_store_batch *b);

/*
 * VACUUM (SKIP_LOCKED) partial_sums, outside any transaction: makes the
 * space of superseded partial sums reusable now (a commit rewrites its
 * node's sum, leaving the old version dead). FA_OK also while another
 * session vacuums the table (its VACUUM is as good; *ran_out 0, else 1);
 * FA_EREFUSED when the database skipped it (this role does not own the
 * table).
 */
int fa_store_partials_vacuum(fa_store *st, int *ran_out, fa_error *err) FA_MUST_CHECK;

/* ------------------------------------------------------------ round close */

/*
 * A round close is one database transaction on one connection, held from
 * fa_store_close_begin to fa_store_close_commit or fa_store_close_free:
 * it takes a transaction-scoped advisory lock (one closer across all
 * processes), locks the round row (updates to it wait, then see it ended),
 * streams the round's updates, reads the ledger head and commits the new
 * model version, the ledger entry, the round's final state and the next
 * round together. One thread uses a close handle.
 */
typedef struct fa_store_close fa_store_close;

/*
 * Begins closing round_id; *round_out receives the round as locked.
 * FA_ECONFLICT when another process holds the close lock or the round has
 * already ended (nothing to do).
 */
int fa_store_close_begin(fa_store_close **out, fa_store_round *round_out, fa_store *st,
                         int64_t round_id, fa_error *err) FA_MUST_CHECK;

/*
 * Reads the next update of the round that is stored as a ciphertext (rows
 * written before partial sums existed; in id order) into out (box owned by
 * out: fa_store_update_done). *done is set to 1, and out left empty, after
 * the last one. Memory stays bounded: rows are fetched a few at a time.
 */
int fa_store_close_next_update(fa_store_update *out, int *done, fa_store_close *c,
                               fa_error *err) FA_MUST_CHECK;

/* One node's committed partial sum of the round being closed. */
typedef struct fa_store_partial {
    unsigned char node[16];
    int64_t folded;        /* updates it holds, as its row says */
    int64_t receipts;      /* receipt rows that name this node */
    unsigned char *sealed; /* owned */
    size_t sealed_len;
} fa_store_partial;

/*
 * The round's membership, read after the round row was locked (so no
 * batch committed before the lock is missed): every node's partial sum
 * with its receipt count, into a new array (fa_store_partials_free), and
 * *legacy_out, the members stored as ciphertexts (next_update reads them),
 * and *cohort_out, every receipt row of the round. A node that has receipt
 * rows but no partial sum is listed with sealed NULL.
 */
int fa_store_close_partials(fa_store_partial **out, size_t *n_out, int64_t *legacy_out,
                            int64_t *cohort_out, fa_store_close *c, fa_error *err) FA_MUST_CHECK;

void fa_store_partials_free(fa_store_partial *p, size_t n);

/* Reads the newest release row inside the close transaction; FA_ENOTFOUND if none. */
int fa_store_close_ledger_last_release(fa_store_ledger_row *out, fa_store_close *c,
                                       fa_error *err) FA_MUST_CHECK;

/* fa_store_ledger_page inside the close transaction. */
int fa_store_close_ledger_page(fa_store_ledger_row **rows_out, size_t *n_out, fa_store_close *c,
                               int64_t after_seq, int64_t limit, fa_error *err) FA_MUST_CHECK;

/* Reads the ledger's last row inside the close transaction; FA_ENOTFOUND if empty. */
int fa_store_close_ledger_last(fa_store_ledger_row *out, fa_store_close *c,
                               fa_error *err) FA_MUST_CHECK;

typedef struct fa_store_close_result {
    fa_round_state final_state;        /* closed, abandoned or refused */
    const fa_store_model *model;       /* new version when closed, else NULL */
    const fa_store_ledger_row *budget; /* a budget event written before it, or NULL */
    const fa_store_ledger_row *ledger; /* the ledger entry (always) */
    const fa_store_round *next;        /* the round to open next, or NULL */
} fa_store_close_result;

/*
 * Writes everything in r, deletes the round's partial sums and erases its
 * stored ciphertexts (no individual update outlives its round) and commits. r->final_state is a
 * state an open round may move to (fa_round_state_can_move). On failure
 * nothing is written.
 */
int fa_store_close_commit(fa_store_close *c, const fa_store_close_result *r,
                          fa_error *err) FA_MUST_CHECK;

/* Rolls back (if not committed) and returns the connection. NULL-safe. */
void fa_store_close_free(fa_store_close *c);

#endif
