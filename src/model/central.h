/*
 * Centralized training baseline: the same NCF model trained on every user
 * at once, with the user embeddings as a [num_users, 64] table trained
 * jointly (He et al. 2017). Each epoch resamples the negatives, shuffles and
 * runs mini-batch Adam (dense semantics, as torch.optim.Adam) or SGD. An
 * fa_central is used by one thread; it borrows the dataset, which must
 * outlive it.
 */
#ifndef FA_MODEL_CENTRAL_H
#define FA_MODEL_CENTRAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "model/train.h"

typedef struct fa_central fa_central;
typedef struct fa_dataset fa_dataset;
typedef struct fa_params fa_params;

/*
 * A trainer over ds with a model of fa_dataset_num_items(ds) items,
 * initialised from opts->seed (fa_params_init_random; user vectors
 * N(0, 0.01^2)). The trainer belongs to the caller. FA_EINVAL, FA_ENOMEM.
 */
int fa_central_new(fa_central **out, const fa_dataset *ds, const fa_train_opts *opts,
                   fa_error *err) FA_MUST_CHECK;

/* Frees c; NULL-safe. */
void fa_central_free(fa_central *c);

/*
 * One epoch over all training interactions; *loss_out receives the mean
 * loss. FA_EINTERNAL when the loss becomes non-finite.
 */
int fa_central_epoch(double *loss_out, fa_central *c, fa_error *err) FA_MUST_CHECK;

/* The current global parameters, borrowed from c. */
const fa_params *fa_central_params(const fa_central *c);

/* The user table [num_users, 64], borrowed from c. */
const float *fa_central_users(const fa_central *c);

/* Samples (positives and negatives) in the last epoch. */
size_t fa_central_samples(const fa_central *c);

#endif
