/*
 * In-process rounds on a real PostgreSQL for the membership tests: one or
 * two aggregators ("server processes") on one database, a clock the test
 * steps, real sealed boxes, and the released model read back from the
 * store. Each world is its own database; two worlds built from the same
 * configuration (same model seed and noise seed) draw the same noise in
 * the same round, so their releases differ only by what their inputs do.
 */
#ifndef FA_TESTS_MEMBERSHIP_HARNESS_H
#define FA_TESTS_MEMBERSHIP_HARNESS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "aggregator/aggregator.h"
#include "core/config.h"

typedef struct fa_keys fa_keys;
typedef struct fa_store fa_store;

#define H_ITEMS   4     /* item rows: the smallest model, ~10,600 parameters */
#define H_FACTORS 4     /* ALS factors (h_config_als) */
#define H_PROCS   2     /* aggregators per world at most */
#define H_T0      1.0e9 /* the clock's start, seconds since the epoch */

typedef struct h_world {
    char db[1024];
    fa_config cfg;
    fa_store *st[H_PROCS];
    fa_aggregator *agg[H_PROCS];
    int workers;        /* start aggregators with their worker thread, on the wall clock */
    _Atomic double now; /* the clock every aggregator of the world reads */
} h_world;

/* The test configuration: S = 1, sigma, FedAvg at server_lr 1, seeded noise. */
void h_config(fa_config *cfg, int64_t min_cohort, int64_t max_cohort, double deadline_s,
              double sigma);

/*
 * The same with the ALS model: 4 factors, step 1 (so the release can be read
 * back from the model), ridge 10, trust_policy structure (at least 2 items),
 * and ALS-shaped updates from h_delta (norm 2 S, j's 5 S) until the next
 * h_config.
 */
void h_config_als(fa_config *cfg, int64_t min_cohort, int64_t max_cohort, double deadline_s,
                  double sigma);

/* 1 after h_config_als. */
int h_is_als(void);

/*
 * Creates the world's database and starts nprocs aggregators on it; with
 * workers set they run their worker threads and read the wall clock,
 * otherwise the test ticks them and steps the world's clock.
 */
void h_world_start(h_world *w, const fa_config *cfg, int nprocs, int workers);

/* Stops aggregator p as a crash would (its queue is lost) and starts it again. */
void h_world_restart(h_world *w, int p);

/* Stops every aggregator and frees the world (the database stays). */
void h_world_stop(h_world *w);

/* Advances the world's clock by dt seconds. */
void h_advance(h_world *w, double dt);

/* Seconds until the open round's deadline on the world's clock. */
double h_until_deadline(h_world *w);

/* The update of device d (deterministic; norm 2 S for d < 1000, else 5 S). */
void h_delta(float *out, size_t dim, unsigned d);

/* A device's sealed update ready to post (box owned). */
typedef struct h_post {
    char token[48];
    int64_t round_id;
    int64_t model_version;
    unsigned char *box;
    size_t box_len;
} h_post;

/* h_prepare without asserting (any thread): the fa_code. */
int h_try_prepare(h_post *out, h_world *w, int p, unsigned d);

/* Checks device d in through aggregator p and seals its update to the server key. */
void h_prepare(h_post *out, h_world *w, int p, unsigned d);

/* Posts a prepared update through aggregator p; returns the fa_code, reason in *reason. */
int h_send(h_world *w, int p, const h_post *post, const char **reason, fa_update_receipt *rc_out);

void h_post_done(h_post *post);

/* Check-in, seal and post device d through p; the fa_code of the post. */
int h_participate(h_world *w, int p, unsigned d, const char **reason);

/* Runs aggregator p's worker duties once (fold, close if due). */
void h_tick(h_world *w, int p);

/*
 * The newest model version's parameters into a new array (free()), and
 * its version. Aborts the test when the store fails.
 */
float *h_model(int64_t *version_out, h_world *w, int64_t version);

/* The dimension of the test model. */
size_t h_dim(void);

/* The keys every world shares (generated once per test process). */
const fa_keys *h_keys(void);

/* Runs sql on the world's database and returns the first value as a long. */
long h_sql_long(h_world *w, const char *sql);

/* Verifies the world's whole ledger and its published versions (fa_ledger_verify). */
void h_verify_ledger(h_world *w);

/* L2 norm of a - b over n floats, in double. */
double h_dist(const float *a, const float *b, size_t n);

#endif
