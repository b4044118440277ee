/*
 * Shared by the files of the aggregator module only: the aggregator's
 * struct, the running sum and the fold/close helpers. Fields marked
 * "worker" are touched only by the worker thread (or a caller of
 * fa_aggregator_tick, which then plays the worker); fields marked "mu"
 * only under agg->mu.
 */
#ifndef FA_AGGREGATOR_INTERNAL_H
#define FA_AGGREGATOR_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "aggregator/aggregator.h"
#include "aggregator/idset.h"
#include "core/error.h"
#include "privacy/accountant.h"
#include "privacy/clip.h"

typedef struct fa_params fa_params;
typedef struct fa_crypto_box_key fa_crypto_box_key;
typedef struct fa_optim fa_optim;
typedef struct fa_round_sum fa_round_sum;

/* A validated update waiting to be folded (owned by the queue). */
struct fa_job {
    struct fa_job *next;
    int64_t round_id;
    int64_t update_id; /* its row in `updates`: folded at most once */
    int64_t num_samples;
    float *delta;        /* dim floats, owned */
    fa_clip_sumsq sumsq; /* delta's sum of squares, from its decode */
};

/*
 * The running weighted sum of one round: O(model size) floats plus the ids
 * of the updates in it. Invariant: sum holds exactly the updates whose ids
 * are in ids, each once (ids.len == fa_round_sum_folded(sum)).
 */
struct fa_acc {
    int64_t round_id;  /* 0 = empty or spent */
    fa_round_sum *sum; /* sum of w_i * clip(u_i) (round_math.h) */
    fa_idset ids;      /* the stored update ids folded into sum */
};

#define FA_AGG_MAX_QUEUED 64 /* updates waiting to be folded */

struct fa_aggregator {
    const fa_config *cfg;
    fa_store *store;
    const fa_keys *keys;
    size_t dim;                 /* global parameter count (fixed by model version 0) */
    size_t num_items;           /* item embedding rows */
    double (*clock)(void *arg); /* wall clock, seconds since the epoch */
    void *clock_arg;

    pthread_mutex_t mu;         /* guards the queue and stop; never held across I/O */
    pthread_cond_t cv;          /* signalled on enqueue and stop */
    struct fa_job *head, *tail; /* mu */
    size_t queued;              /* mu */
    int stop;                   /* mu */
    pthread_t thread;
    int has_thread;

    struct fa_acc acc;              /* worker */
    int64_t model_version;          /* worker: version held in params, -1 none */
    unsigned char model_sha256[32]; /* worker: SHA-256 of that version's snapshot */
    fa_params *params;              /* worker: the model of model_version */
    fa_optim *opt;                  /* worker: server optimizer state after it */
    float *direction;               /* worker: published direction for trust, NULL if none */
    float *scratch;                 /* worker: dim floats */
    fa_accountant *acct;            /* worker: every release of the ledger up to acct_seq */
    int64_t acct_seq;               /* worker: ledger seq acct holds; 0 = nothing */
    unsigned char acct_hash[32];    /* worker: hash of entry acct_seq */

    atomic_uint_fast64_t rounds_closed, rounds_abandoned, rounds_refused, updates_folded;
    _Atomic double epsilon;
};

/* Opens and decodes a sealed update into out (dim floats) and its sum of squares. */
int fa_aggregator__open(fa_aggregator *agg, float *out, fa_clip_sumsq *sumsq_out,
                        const char **reason_out, const fa_crypto_box_key *key,
                        const unsigned char *box, size_t box_len, int64_t model_version,
                        int64_t num_samples, fa_error *err) FA_MUST_CHECK;

/* Loads model version v (and its optimizer state) into the worker's slots. */
int fa_aggregator__load_model(fa_aggregator *agg, int64_t version, fa_error *err) FA_MUST_CHECK;

/* The aggregator's clock (opts->clock, or the wall clock). */
double fa_aggregator__now(const fa_aggregator *agg);

/* Empties the running sum and forgets its round (the next tick rebuilds it). */
void fa_aggregator__acc_reset(fa_aggregator *agg);

/*
 * Folds one stored update (id, box) into the running sum unless the sum
 * already holds it; the single door through which a stored update enters a
 * sum, so none enters twice. FA_EINVAL when the box no longer opens.
 */
int fa_aggregator__fold_stored(fa_aggregator *agg, int64_t id, const unsigned char *box,
                               size_t box_len, int64_t num_samples, int64_t base_version,
                               fa_error *err) FA_MUST_CHECK;

/* Closes round_id if it is past its deadline or full (the worker's duty). */
int fa_aggregator__maybe_close(fa_aggregator *agg, fa_error *err) FA_MUST_CHECK;

#endif
