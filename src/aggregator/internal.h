/*
 * Shared by the files of the aggregator module only: the aggregator's
 * struct, the ingest node and the close helpers. Fields marked "worker"
 * are touched only by the worker thread (or a caller of
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
#include "core/error.h"
#include "privacy/accountant.h"
#include "privacy/clip.h"
#include "store/store.h"

typedef struct fa_params fa_params;
typedef struct fa_crypto_box_key fa_crypto_box_key;
typedef struct fa_optim fa_optim;
typedef struct fa_round_sum fa_round_sum;

/*
 * An accepted update waiting for its group commit: on the stack of a thread
 * that waits until done (fa_aggregator__submit), or in a ticket whose
 * on_done is called once it is settled (fa_aggregator__queue). The leader
 * of the commit sets the results under node.mu.
 */
struct fa_pending {
    struct fa_pending *next;
    pthread_cond_t cv; /* waiting threads: signalled when done, or to lead the next commit */
    void (*on_done)(void *arg); /* queued tickets: called once settled, NULL for a waiter */
    void *done_arg;
    int64_t round_id;
    int64_t base_version;
    int64_t num_samples;
    const float *delta;  /* dim floats, the opened update */
    fa_clip_sumsq sumsq; /* delta's sum of squares, from its decode */
    fa_store_batch_item item;
    int done;           /* set by the leader once the results below hold */
    int rc;             /* FA_OK: stored (or an identical retry) */
    int duplicate;      /* 1: an identical retry, item.receipt is the first receipt */
    const char *reason; /* client-facing reason on failure */
    int64_t cohort;     /* updates in the round after this batch */
    fa_error err;
};

/*
 * This process's ingest node: the partial sums of the updates it accepted,
 * committed in batches (group commit, ingest.c). Fields marked "mu" are
 * guarded by node.mu; "leader" fields are touched only by the one thread
 * that leads a commit at a time (node.leader set under mu): the committer
 * thread when the aggregator runs threads, else a waiting caller.
 */
struct fa_node {
    unsigned char id[16];      /* random per process: names its partial sums */
    pthread_mutex_t mu;        /* guards the queue; never held across I/O */
    pthread_cond_t cv;         /* signalled when one is queued (committer, gathering leader) */
    struct fa_pending *head;   /* mu: waiting, in arrival order */
    size_t queued;             /* mu */
    pthread_t committer;       /* leads every commit while has_committer */
    int committer_started;     /* the thread runs (or ran) and is to be joined */
    int has_committer;         /* mu: 1 from its start until it ends, queue empty */
    int stop;                  /* mu: the committer ends once the queue is empty */
    int leader;                /* mu: 1 while a thread leads a commit */
    int gathering;             /* mu: 1 while the leader waits for more (commit_wait_ms) */
    int64_t unvacuumed;        /* mu: partial sums written since the last VACUUM */
    struct fa_pending **batch; /* leader: commit_batch_max slots */
    int64_t round_id;          /* leader: round of sum, 0 none */
    fa_round_sum
        *sum; /* leader: this node's committed partial sum of round_id (its count is the row's) */
    fa_round_sum *next;            /* leader: sum plus the batch being committed */
    int known;                     /* leader: 1 when sum and folded are the committed row */
    float *direction;              /* leader: base version's published direction, or NULL */
    unsigned char *plain, *sealed; /* leader: sealing buffers */
};

struct fa_aggregator {
    const fa_config *cfg;
    fa_store *store;
    const fa_keys *keys;
    size_t dim;                 /* global parameter count (fixed by model version 0) */
    size_t num_items;           /* item embedding rows */
    double (*clock)(void *arg); /* wall clock, seconds since the epoch */
    void *clock_arg;

    pthread_mutex_t mu; /* guards stop and vacuum_due; never held across I/O */
    pthread_cond_t cv;  /* signalled on stop and when a VACUUM is due */
    int stop;           /* mu */
    int vacuum_due;     /* mu: the node asks the worker to VACUUM partial_sums */
    pthread_t thread;
    int has_thread;

    struct fa_node node; /* the ingest side: partial sums and group commit */

    fa_round_sum *sum;              /* worker: the close's merged sum */
    int64_t model_version;          /* worker: version held in params, -1 none */
    unsigned char model_sha256[32]; /* worker: SHA-256 of that version's snapshot */
    fa_params *params;              /* worker: the model of model_version */
    fa_optim *opt;                  /* worker: server optimizer state after it */
    float *scratch;                 /* worker: dim floats */
    fa_accountant *acct;            /* worker: every release of the ledger up to acct_seq */
    int64_t acct_seq;               /* worker: ledger seq acct holds; 0 = nothing */
    unsigned char acct_hash[32];    /* worker: hash of entry acct_seq */

    atomic_uint_fast64_t rounds_closed, rounds_abandoned, rounds_refused, updates_folded;
    atomic_uint_fast64_t partial_vacuums;  /* VACUUMs of partial_sums that ran, not skipped */
    atomic_uint_fast64_t group_commits;    /* batches led (committed or failed) */
    atomic_uint_fast64_t vacuum_warned_ns; /* when a failed VACUUM was last logged */
    _Atomic double epsilon;
    _Atomic double last_close_s; /* duration of the last close this process ran */
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

/*
 * The published direction of model version v for the cosine trust policy
 * (public state: version v minus its parent, as the close that made v
 * computed it), into *out (dim floats, free()); NULL when the policy is not
 * cosine or v has no parent.
 */
int fa_aggregator__direction(float **out, fa_aggregator *agg, int64_t version,
                             fa_error *err) FA_MUST_CHECK;

/* Sets up this process's ingest node (a fresh random id). FA_ENOMEM. */
int fa_aggregator__node_init(fa_aggregator *agg, fa_error *err) FA_MUST_CHECK;
void fa_aggregator__node_done(fa_aggregator *agg);

/*
 * Hands an opened update to the group commit and returns once its batch
 * is committed (or failed): the results are in p.
 */
void fa_aggregator__submit(fa_aggregator *agg, struct fa_pending *p);

/*
 * Hands an opened update to the group commit and returns at once;
 * on_done(arg) is called from the committer thread once p's results hold
 * (p may be freed from then on). Without a committer thread it commits
 * here, as fa_aggregator__submit, and calls on_done before returning.
 */
void fa_aggregator__queue(fa_aggregator *agg, struct fa_pending *p, void (*on_done)(void *),
                          void *arg);

/* The committer thread: started with the worker; stop commits what is queued first. */
int fa_aggregator__committer_start(fa_aggregator *agg, fa_error *err) FA_MUST_CHECK;
void fa_aggregator__committer_stop(fa_aggregator *agg);

/*
 * VACUUM (SKIP_LOCKED) partial_sums: run by the worker when the node asks
 * for it, or by the node itself when the process has no worker. A failure
 * is logged (at most once a minute) and changes nothing else.
 */
void fa_aggregator__vacuum_partials(fa_aggregator *agg);

/*
 * Opens a partial sum sealed at rest for (round_id, node, folded) into out
 * (dim floats). FA_EINTERNAL when it does not open (changed, or bound to
 * another round, node or count) or has the wrong size.
 */
int fa_aggregator__partial_open(fa_aggregator *agg, float *out, int64_t round_id,
                                const unsigned char node[16], int64_t folded,
                                const unsigned char *sealed, size_t len,
                                fa_error *err) FA_MUST_CHECK;

/* Closes the open round if it is past its deadline or full (the worker's duty). */
int fa_aggregator__maybe_close(fa_aggregator *agg, fa_error *err) FA_MUST_CHECK;

#endif
