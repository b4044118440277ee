/*
 * The accountant in force: one interface over the two ways fedagg composes
 * releases of the Poisson-subsampled Gaussian mechanism under add/remove
 * adjacency, the Renyi-DP accountant of privacy/rdp.h and the
 * privacy-loss-distribution accountant of privacy/pld.h. A running
 * accountant holds the composition of every release so far; one more
 * release composes into it incrementally (the close never recomputes the
 * past). An fa_accountant is owned by one thread at a time; the pure
 * functions may run on any thread.
 */
#ifndef FA_PRIVACY_ACCOUNTANT_H
#define FA_PRIVACY_ACCOUNTANT_H

#include <stdint.h>

#include "core/config.h"
#include "core/error.h"
#include "privacy/budget.h"
#include "privacy/rdp.h"

typedef enum fa_accountant_kind {
    FA_ACCOUNTANT_RDP = 1, /* "rdp-sgm-v1": MTZ 2019 RDP at the 156 orders of rdp.h */
    FA_ACCOUNTANT_PLD = 2, /* "pld-sgm-v1": pld.h in auto-grid mode */
} fa_accountant_kind;

#define FA_ACCOUNTANT_RDP_NAME "rdp-sgm-v1"
#define FA_ACCOUNTANT_PLD_NAME "pld-sgm-v1"

/* The ledger name of kind ("rdp-sgm-v1", "pld-sgm-v1"); NULL if unknown. */
const char *fa_accountant_name(fa_accountant_kind kind);

/* The short name of kind ("rdp", "pld") used by the configuration and the CLI. */
const char *fa_accountant_short_name(fa_accountant_kind kind);

/* Kind of a ledger name or a short name; FA_EINVAL when it is neither. */
int fa_accountant_parse(fa_accountant_kind *out, const char *name) FA_MUST_CHECK;

typedef struct fa_accountant fa_accountant;

/* An accountant of kind with nothing composed. FA_EINVAL, FA_ENOMEM. */
int fa_accountant_new(fa_accountant **out, fa_accountant_kind kind, fa_error *err) FA_MUST_CHECK;

/* A deep copy. FA_ENOMEM. */
int fa_accountant_copy(fa_accountant **out, const fa_accountant *a, fa_error *err) FA_MUST_CHECK;

void fa_accountant_free(fa_accountant *a); /* NULL-safe */

fa_accountant_kind fa_accountant_kind_of(const fa_accountant *a);

/* Releases composed so far. */
int64_t fa_accountant_releases(const fa_accountant *a);

/*
 * Composes count releases at sampling rate q and noise multiplier sigma
 * (the domain of rdp.h). On failure a is unchanged. FA_EINVAL,
 * FA_EINTERNAL, FA_ENOMEM.
 */
int fa_accountant_compose(fa_accountant *a, double q, double sigma, int64_t count,
                          fa_error *err) FA_MUST_CHECK;

/* The epsilon of the composition so far at delta in (0, 1); 0 when nothing was composed. */
int fa_accountant_epsilon(double *eps_out, const fa_accountant *a, double delta,
                          fa_error *err) FA_MUST_CHECK;

/*
 * The cumulative RDP vector of an RDP accountant (what v1/v2 ledger
 * entries record) and the order attaining its epsilon at delta; NULL for
 * a PLD accountant.
 */
const double *fa_accountant_rdp(const fa_accountant *a);

/*
 * Decides one more release at (q, sigma) against budget b. Always fills
 * *eps_before (the composition so far) and *eps_after (with the release).
 * FA_OK when eps_after <= b->epsilon_max: the release is then composed into
 * a. FA_EREFUSED when it would exceed the budget: a is unchanged (a refusal
 * spends nothing). FA_EINVAL, FA_EINTERNAL, FA_ENOMEM.
 */
int fa_accountant_decide(fa_accountant *a, double *eps_before, double *eps_after,
                         const fa_budget *b, double q, double sigma, fa_error *err) FA_MUST_CHECK;

/* Epsilon after `rounds` identical releases at (q, sigma) with accountant kind. */
int fa_accountant_epsilon_rounds(double *eps_out, fa_accountant_kind kind, double q, double sigma,
                                 int64_t rounds, double delta, fa_error *err) FA_MUST_CHECK;

/*
 * The smallest noise multiplier (to 0.1%, rounded up to 6 significant
 * digits) whose epsilon after `rounds` releases at rate q is at most
 * target_eps with accountant kind; *eps_out is that sigma's epsilon
 * (fa_rdp_calibrate, fa_pld_calibrate). FA_EINVAL when the target needs
 * more noise than FA_RDP_SIGMA_MAX, FA_ENOMEM.
 */
int fa_accountant_calibrate(double *sigma_out, double *eps_out, fa_accountant_kind kind,
                            double target_eps, double q, int64_t rounds, double delta,
                            fa_error *err) FA_MUST_CHECK;

/*
 * Resolves noise_multiplier = auto in cfg (FA_CONFIG_AUTO; nothing to do
 * otherwise): the smallest sigma whose planned_releases releases at
 * sampling_rate, composed one at a time as the round close composes them
 * with cfg's accountant, spend at most epsilon_max at delta. Sets
 * cfg->noise_multiplier and *eps_out (the epsilon after the planned
 * releases). Cost: one calibration plus planned_releases compositions.
 * FA_EINVAL when the budget cannot be met, FA_ENOMEM.
 */
int fa_accountant_resolve_config(fa_config *cfg, double *eps_out, fa_error *err) FA_MUST_CHECK;

#endif
