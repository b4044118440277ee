/*
 * Local training on one device (the client side of federated averaging):
 * E epochs over the device's own interactions starting from the global
 * model, updating the device's user vector in place and returning
 * delta = theta_local - theta_global over the global vector. Only the rows
 * of items the device touched (its positives and its sampled negatives)
 * can change; every other embedding row of the delta is exactly 0, and the
 * work per step is independent of the number of items. An fa_local is a
 * reusable workspace for one thread; it never shares state with others.
 */
#ifndef FA_MODEL_LOCAL_H
#define FA_MODEL_LOCAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "model/data.h"
#include "model/train.h"

typedef struct fa_local fa_local;
typedef struct fa_params fa_params;

/* What one local training run did. */
typedef struct fa_local_stats {
    double loss;         /* mean loss of the last epoch */
    size_t samples;      /* samples per epoch (positives and negatives) */
    size_t touched_rows; /* distinct item rows that were read or updated */
} fa_local_stats;

/*
 * A workspace for a global model of num_items items and batches up to
 * max_batch (caller frees). FA_EINVAL, FA_ENOMEM.
 */
int fa_local_new(fa_local **out, size_t num_items, size_t max_batch, fa_error *err) FA_MUST_CHECK;

/* Frees lt; NULL-safe. */
void fa_local_free(fa_local *lt);

/*
 * Trains on dev (items strictly increasing rows < num_items) from global,
 * which is only read. opts->epochs, batch (<= max_batch), lr, optimizer,
 * negatives, loss and seed apply. user_vec (64 floats) is updated in place.
 * delta_out (fa_params_len(global) floats) is overwritten with
 * theta_local - theta_global. With Adam, embedding rows follow lazy Adam:
 * a row moves only in steps where it has a gradient. stats_out may be NULL.
 * FA_EINVAL for bad options or data, FA_ENOMEM, FA_EINTERNAL when the loss
 * becomes non-finite.
 *
 * An ALS model (model/als.h) has no local training: user_vec's first F
 * floats receive the device's user vector and delta_out its sufficient
 * statistics (norm 1); the optimizer options do not apply.
 */
int fa_local_train(fa_local_stats *stats_out, float *delta_out, fa_local *lt, float *user_vec,
                   const fa_params *global, const fa_device_data *dev, const fa_train_opts *opts,
                   fa_error *err) FA_MUST_CHECK;

/*
 * The item rows touched by the last fa_local_train (increasing order not
 * guaranteed), borrowed from lt; *n_out receives their count.
 */
const int32_t *fa_local_touched(const fa_local *lt, size_t *n_out);

#endif
