/*
 * The aggregator: rounds of sealed updates turned into published model
 * versions. HTTP threads call fa_aggregator_checkin/accept, which validate
 * and open the update; the node's commit thread folds it into this
 * process's partial sum of the round and makes it durable (ingest.c); the
 * worker thread, the only one that touches model math (BLAS), closes the
 * round when its deadline passes (or it is full), merging every node's
 * partial sum. Thread-safe; the aggregator's and the node's mutexes are
 * never held across a database call, nor one inside the other (a queued
 * update's callback runs under the node's).
 */
#ifndef FA_AGGREGATOR_AGGREGATOR_H
#define FA_AGGREGATOR_AGGREGATOR_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/error.h"
#include "core/round_state.h"

typedef struct fa_aggregator fa_aggregator;
typedef struct fa_store fa_store;
typedef struct fa_keys fa_keys;

typedef struct fa_aggregator_opts {
    const fa_config *cfg; /* borrowed, immutable, outlives the aggregator */
    fa_store *store;      /* borrowed, outlives the aggregator */
    const fa_keys *keys;  /* borrowed server keys, outlive the aggregator */
    int start_worker;     /* 0: no thread; rounds close only via fa_aggregator_tick */
    /* The clock deadlines are read from (seconds since the epoch); NULL is
     * the wall clock. Tests step it to put a deadline behind them. */
    double (*clock)(void *arg);
    void *clock_arg;
} fa_aggregator_opts;

#define FA_AGGREGATOR_OPTS_INIT                                                                    \
    {                                                                                              \
        NULL, NULL, NULL, 1, NULL, NULL                                                            \
    }

/*
 * Bootstraps the database (model version 0 and round 1) if it is empty,
 * rebuilds the open round's running sum from its stored ciphertexts, and
 * starts the worker. FA_EUNAVAIL when the database is down.
 */
int fa_aggregator_start(fa_aggregator **out, const fa_aggregator_opts *opts,
                        fa_error *err) FA_MUST_CHECK;

/* Stops the worker (finishing the update it holds) and frees. NULL-safe. */
void fa_aggregator_stop(fa_aggregator *agg);

typedef struct fa_round_info {
    int64_t id;
    int64_t base_version;
    fa_round_state state; /* FA_ROUND_OPEN for the open round */
    int64_t min_cohort;
    int64_t cohort;
    double sampling_rate;
    double deadline; /* seconds since the epoch */
} fa_round_info;

/* Reads the open round. FA_ENOTFOUND when none is open, FA_EUNAVAIL. */
int fa_aggregator_round(fa_round_info *out, fa_aggregator *agg, fa_error *err) FA_MUST_CHECK;

typedef struct fa_checkin {
    int selected;        /* 0 when Poisson sampling left this device out */
    char token[48];      /* base64url participation token (when selected) */
    fa_round_info round; /* the round joined */
} fa_checkin;

/*
 * Joins the open round. pseudonym (may be NULL when sampling is off) is the
 * device's stable pseudonym: with sampling on, the coin for (pseudonym,
 * round) is flipped once and only its keyed hash is stored. FA_EINVAL when
 * sampling is on and pseudonym is missing, FA_ECONFLICT when this pseudonym
 * already checked in for the round, FA_EUNAVAIL when the round is past its
 * deadline and not closed yet (check in again shortly).
 */
int fa_aggregator_checkin(fa_checkin *out, fa_aggregator *agg, const char *pseudonym,
                          fa_error *err) FA_MUST_CHECK;

typedef struct fa_update_request {
    int64_t model_version;    /* the JSON modelVersion */
    const char *round_token;  /* the JSON roundToken */
    const char *key_id;       /* the JSON keyId */
    int64_t num_samples;      /* the JSON numSamples */
    const unsigned char *box; /* decoded encryptedGradients */
    size_t box_len;           /* bytes */
    const char *subject;      /* the authenticated device, or NULL (auth = none) */
} fa_update_request;

typedef struct fa_update_receipt {
    char receipt[40];
    int64_t round_id;
    int64_t cohort; /* updates in the round including this one */
    int duplicate;  /* 1 when this was an idempotent retry */
} fa_update_receipt;

/*
 * Accepts one update: checks key id, token, round and model version, opens
 * the box and checks header, dimension and finiteness; then the group
 * commit folds it into this node's partial sum and stores its receipt in
 * one transaction, and only then does this return. On failure *reason_out
 * names the problem for clients ("stale_model_version", "bad_box", ...) and
 * nothing is stored. Codes: FA_EINVAL, FA_ECONFLICT, FA_ENOTFOUND,
 * FA_EUNAVAIL (retry later).
 */
int fa_aggregator_accept(fa_update_receipt *out, const char **reason_out, fa_aggregator *agg,
                         const fa_update_request *req, fa_error *err) FA_MUST_CHECK;

/*
 * fa_aggregator_accept in three steps, for a server that answers many
 * devices from a few threads without one waiting for the commit:
 * - fa_aggregator_accept_open makes every check and opens the box; its
 *   errors are those fa_aggregator_accept returns before anything is
 *   queued. On success *out is a ticket holding the opened update.
 * - fa_aggregator_accept_queue hands the ticket to the group commit and
 *   returns at once; done(arg) is called exactly once, from the thread
 *   that committed the batch (or from the caller before it returns, when
 *   the aggregator runs no threads).
 * - after done, fa_aggregator_accept_result gives what fa_aggregator_accept
 *   would have returned, and frees the ticket.
 * fa_aggregator_accept_commit queues the ticket, waits for its commit and
 * returns its result (freeing it): fa_aggregator_accept after the open.
 * fa_aggregator_ticket_free drops a ticket that was never queued or whose
 * done was called (its result unread).
 */
typedef struct fa_update_ticket fa_update_ticket;

int fa_aggregator_accept_open(fa_update_ticket **out, const char **reason_out, fa_aggregator *agg,
                              const fa_update_request *req, fa_error *err) FA_MUST_CHECK;
void fa_aggregator_accept_queue(fa_aggregator *agg, fa_update_ticket *t, void (*done)(void *arg),
                                void *arg);
int fa_aggregator_accept_result(fa_update_receipt *out, const char **reason_out,
                                fa_update_ticket *t, fa_error *err) FA_MUST_CHECK;
int fa_aggregator_accept_commit(fa_update_receipt *out, const char **reason_out, fa_aggregator *agg,
                                fa_update_ticket *t, fa_error *err) FA_MUST_CHECK;
void fa_aggregator_ticket_free(fa_update_ticket *t);

/*
 * Runs the worker's periodic duties once on the calling thread: fold queued
 * updates and close the round if it is past its deadline or full. For
 * tests and single-threaded tools; the worker calls it on its own.
 */
int fa_aggregator_tick(fa_aggregator *agg, fa_error *err) FA_MUST_CHECK;

/* Statistics for /metrics (monotonic counters since start). */
typedef struct fa_aggregator_stats {
    uint64_t rounds_closed;
    uint64_t rounds_abandoned;
    uint64_t rounds_refused;
    uint64_t updates_folded;
    uint64_t partial_vacuums; /* VACUUMs of partial_sums this process ran */
    uint64_t group_commits;   /* batches this process committed (or tried to) */
    double cumulative_epsilon;
    double last_close_seconds; /* how long this process's last round close took */
} fa_aggregator_stats;

void fa_aggregator_stats_get(fa_aggregator_stats *out, fa_aggregator *agg);

#endif
