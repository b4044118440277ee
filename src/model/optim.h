/*
 * Server optimizers that turn the round's mean client delta into the next
 * global model: FedAvg with a server learning rate, and FedAdam / FedYogi
 * (Reddi et al. 2021, "Adaptive Federated Optimization", Algorithm 2).
 * The optimizer owns its moment vectors; its state serializes to a
 * versioned little-endian byte string so that it survives a restart. One
 * thread (the aggregation worker) uses an optimizer at a time.
 */
#ifndef FA_MODEL_OPTIM_H
#define FA_MODEL_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct fa_optim fa_optim;

typedef enum fa_optim_kind {
    FA_OPTIM_FEDAVG = 1,  /* theta += lr * mean_delta */
    FA_OPTIM_FEDADAM = 2, /* Reddi et al. 2021, Alg. 2, FedAdam */
    FA_OPTIM_FEDYOGI = 3, /* Reddi et al. 2021, Alg. 2, FedYogi */
    FA_OPTIM_ALS = 4,     /* the ALS item solve of model/als.h, step = lr */
} fa_optim_kind;

typedef struct fa_optim_config {
    fa_optim_kind kind;
    double lr;          /* server learning rate eta */
    double beta1;       /* first-moment decay (FedAdam, FedYogi) */
    double beta2;       /* second-moment decay */
    double tau;         /* adaptivity: v starts at tau^2 and tau is added to sqrt(v) */
    size_t als_factors; /* ALS: F; the vector is num_items x F then F x F */
    double als_reg;     /* ALS: ridge as a share of the mean Gram's trace / F */
} fa_optim_config;

#define FA_OPTIM_CONFIG_INIT                                                                       \
    {                                                                                              \
        FA_OPTIM_FEDAVG, 1.0, 0.9, 0.99, 1e-3, 0, 0.16                                             \
    }

/* Current version of the serialized state. */
#define FA_OPTIM_STATE_VERSION 1

/* "fedavg", "fedadam", "fedyogi" or "als"; FA_EINVAL otherwise. */
int fa_optim_kind_parse(fa_optim_kind *out, const char *name) FA_MUST_CHECK;

/* The lower-case name of kind. */
const char *fa_optim_kind_name(fa_optim_kind kind);

/*
 * An optimizer for a global vector of dim floats, with fresh state (m = 0,
 * v = tau^2), owned by the caller. ALS: lr is the step in (0, 1] and dim
 * must be a whole number of item rows plus the Gram matrix. FA_EINVAL for a
 * bad config, FA_ENOMEM.
 */
int fa_optim_new(fa_optim **out, const fa_optim_config *cfg, size_t dim,
                 fa_error *err) FA_MUST_CHECK;

/* Frees opt; NULL-safe. */
void fa_optim_free(fa_optim *opt);

/*
 * Applies one server step: theta (dim floats) moves by the mean delta.
 * Checks dim and that delta is finite first (FA_EINVAL, nothing changed);
 * FA_EINTERNAL if the result would not be finite (nothing changed).
 */
int fa_optim_step(fa_optim *opt, float *theta, const float *mean_delta, size_t dim,
                  fa_error *err) FA_MUST_CHECK;

/* Steps applied so far (restored by fa_optim_load). */
uint64_t fa_optim_steps(const fa_optim *opt);

/* The configuration in force, borrowed. */
const fa_optim_config *fa_optim_config_of(const fa_optim *opt);

/*
 * Serializes the state to a new buffer owned by the caller (free()):
 *   "FAOPTIM\0", u32 version, u32 kind, u64 dim, u64 steps,
 *   f64 lr, beta1, beta2, tau (at save time), then for FedAdam/FedYogi
 *   f32 m[dim], f32 v[dim]; all little-endian. FA_ENOMEM.
 */
int fa_optim_save(unsigned char **out, size_t *len_out, const fa_optim *opt,
                  fa_error *err) FA_MUST_CHECK;

/*
 * Restores state saved by fa_optim_save into opt, whose kind and dim must
 * match; the hyperparameters of opt's config stay in force. Checks magic,
 * version, exact length and finite moments (v >= 0). FA_EINVAL (opt
 * unchanged).
 */
int fa_optim_load(fa_optim *opt, const unsigned char *buf, size_t len, fa_error *err) FA_MUST_CHECK;

/*
 * The optimizer kind a saved state was written by, read from its header
 * (magic and version checked, nothing else). FA_EINVAL for a buffer that is
 * not a state of this version.
 */
int fa_optim_state_kind(fa_optim_kind *kind_out, const unsigned char *buf, size_t len,
                        fa_error *err) FA_MUST_CHECK;

#endif
