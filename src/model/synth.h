/*
 * A planted latent-factor generator of implicit-feedback data for tests and
 * benchmarks where MovieLens is not available. Users and items get random
 * factors; each user's positives are drawn without replacement with
 * probability growing with the planted affinity (Gumbel top-k), one of them
 * is held out as the test item and 99 negatives are drawn from the rest.
 * The result has the same in-memory form fa_dataset_load produces.
 * Stateless; deterministic for a given seed.
 */
#ifndef FA_MODEL_SYNTH_H
#define FA_MODEL_SYNTH_H

#include <stdint.h>

#include "core/error.h"

typedef struct fa_dataset fa_dataset;

typedef struct fa_synth_opts {
    int32_t num_users;  /* users */
    int32_t num_items;  /* items; at least positives + 100 */
    int32_t positives;  /* training positives per user (plus one test item) */
    int32_t latent_dim; /* planted factor dimension */
    double temperature; /* lower = positives follow the factors more closely */
    uint64_t seed;
} fa_synth_opts;

#define FA_SYNTH_OPTS_INIT                                                                         \
    {                                                                                              \
        200, 400, 20, 8, 0.5, 1                                                                    \
    }

/*
 * Generates a dataset owned by the caller (fa_dataset_free). FA_EINVAL for
 * out-of-range options, FA_ENOMEM.
 */
int fa_synth_dataset(fa_dataset **out, const fa_synth_opts *opts, fa_error *err) FA_MUST_CHECK;

/*
 * Writes ds in the leave-one-out split format that fa_dataset_load reads:
 * DIR/loo_train.tsv (user, item, rating, timestamp 0) and DIR/loo_test.tsv
 * (user, test item, 99 negatives), 1-based ids, tab-separated. DIR is
 * created (mode 0755) when missing; each file is written atomically and an
 * existing one is never replaced (FA_ECONFLICT). Loading the files gives
 * the same users, interactions and test lines; its item count is the
 * largest item id that occurs. FA_EINVAL on I/O errors, FA_ENOMEM.
 */
int fa_synth_write(const fa_dataset *ds, const char *dir, fa_error *err) FA_MUST_CHECK;

#endif
