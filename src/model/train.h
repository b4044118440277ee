/*
 * Training options shared by local (device) training and the centralized
 * baseline. Options are plain values owned by the caller; start from
 * FA_TRAIN_OPTS_INIT. Thread-safe: no state.
 */
#ifndef FA_MODEL_TRAIN_H
#define FA_MODEL_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef enum fa_optimizer {
    FA_OPTIMIZER_ADAM = 0, /* Kingma and Ba 2015 */
    FA_OPTIMIZER_SGD = 1,  /* plain SGD */
} fa_optimizer;

typedef enum fa_loss {
    FA_LOSS_BCE = 0, /* implicit feedback: BCE with logits, sampled negatives */
    FA_LOSS_MSE = 1, /* explicit ratings: squared error, no negatives */
} fa_loss;

typedef struct fa_train_opts {
    int epochs;             /* passes over the data (local training; the CLI for central) */
    size_t batch;           /* samples per step */
    double lr;              /* learning rate */
    fa_optimizer optimizer; /* adam | sgd */
    int negatives;          /* sampled negatives per positive, resampled each epoch (BCE) */
    fa_loss loss;           /* bce | mse */
    double beta1, beta2;    /* Adam moment decays */
    double eps;             /* Adam epsilon */
    uint64_t seed;          /* negatives, shuffling and (central) initialisation */
} fa_train_opts;

#define FA_TRAIN_OPTS_INIT                                                                         \
    {                                                                                              \
        1, 256, 1e-3, FA_OPTIMIZER_ADAM, 4, FA_LOSS_BCE, 0.9, 0.999, 1e-8, 0                       \
    }

/* Largest negatives-per-positive accepted. */
#define FA_TRAIN_MAX_NEGATIVES 100

/* Checks ranges (FA_EINVAL naming the option). */
int fa_train_opts_validate(const fa_train_opts *opts, fa_error *err) FA_MUST_CHECK;

/* "adam" or "sgd"; FA_EINVAL otherwise. */
int fa_train_optimizer_parse(fa_optimizer *out, const char *name) FA_MUST_CHECK;

/* "bce" or "mse"; FA_EINVAL otherwise. */
int fa_train_loss_parse(fa_loss *out, const char *name) FA_MUST_CHECK;

#endif
