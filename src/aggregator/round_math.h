/*
 * The arithmetic of one round, shared by the server's round close and the
 * in-process simulator (`fedagg simulate --in-process`), so that both turn
 * the same updates into the same model: the running weighted sum (trust,
 * weight, clip, accumulate), the release (Gaussian noise on the SUM, then
 * the public denominator), the server optimizer step, and the mechanism a
 * ledger entry records for it. No I/O and no globals. An fa_round_sum
 * belongs to one thread; fa_round_factor is pure and may run on any thread.
 */
#ifndef FA_AGGREGATOR_ROUND_MATH_H
#define FA_AGGREGATOR_ROUND_MATH_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/error.h"
#include "core/round_state.h"

typedef struct fa_round_sum fa_round_sum;
typedef struct fa_clip_sumsq fa_clip_sumsq;
typedef struct fa_noise fa_noise;
typedef struct fa_optim fa_optim;
typedef struct fa_params fa_params;
typedef struct fa_ledger_mechanism fa_ledger_mechanism;
typedef struct fa_ledger_entry fa_ledger_entry;

/*
 * How the released mean's denominator is chosen: a public constant fixed
 * before the round (docs/privacy.md), the round's minimum cohort m, or the
 * configured expected cohort when that is set (it is at least m).
 */
#define FA_ROUND_DENOMINATOR_RULE          "min_cohort"
#define FA_ROUND_DENOMINATOR_RULE_EXPECTED "expected_cohort"

/* A zeroed running sum of dim floats, owned by the caller. FA_EINVAL, FA_ENOMEM. */
int fa_round_sum_new(fa_round_sum **out, size_t dim, fa_error *err) FA_MUST_CHECK;

/* Frees s; NULL-safe. */
void fa_round_sum_free(fa_round_sum *s);

/* Resets s to an empty sum (zeros, nothing folded) for the next round. */
void fa_round_sum_clear(fa_round_sum *s);

/* Updates folded since the last clear. */
int64_t fa_round_sum_folded(const fa_round_sum *s);

/* 1 once fa_round_sum_release ran (the data is then the released mean), else 0. */
int fa_round_sum_released(const fa_round_sum *s);

/* The dim floats: the weighted sum, or after the release the released mean. Borrowed. */
const float *fa_round_sum_data(const fa_round_sum *s);

/*
 * Trust of one update under cfg->trust_policy: 1 for "none"; for "cosine"
 * the cosine between delta and direction (the last published aggregate
 * direction, public; NULL before the first release gives 1), clamped to
 * [0, 1]. Depends on this update and public state only.
 */
double fa_round_trust(const fa_config *cfg, const float *delta, const float *direction, size_t dim);

/*
 * The per-update half of a fold: the factor f = w * min(1, S / ||delta||)
 * (shaded so that float rounding cannot push ||f delta|| over w S, see
 * fa_clip_factor) with w = trust * min(1, num_samples / weight_cap_samples),
 * so one device moves the sum by at most S = cfg->clip_norm. delta is only
 * read. Pure: any thread. FA_EINVAL for a non-finite delta or bad numbers.
 */
int fa_round_factor(double *f_out, const float *delta, size_t dim, int64_t num_samples,
                    const fa_config *cfg, const float *direction, fa_error *err) FA_MUST_CHECK;

/*
 * fa_round_factor with ||delta||^2 already formed (sumsq, over all dim
 * floats of delta, e.g. by fa_update_decode): delta itself is read only by
 * the cosine trust policy. Same bits as fa_round_factor.
 */
int fa_round_factor_of_sumsq(double *f_out, const fa_clip_sumsq *sumsq, const float *delta,
                             size_t dim, int64_t num_samples, const fa_config *cfg,
                             const float *direction, fa_error *err) FA_MUST_CHECK;

/*
 * The accumulating half: sum += (float)f * delta, f from fa_round_factor.
 * Float addition is not associative: the same updates added in another
 * order give a sum that differs by rounding. FA_EINVAL after a release.
 */
int fa_round_sum_add(fa_round_sum *s, const float *delta, double f, fa_error *err) FA_MUST_CHECK;

/*
 * Adds a partial sum (dim floats: other updates' folds, summed elsewhere)
 * holding count updates: sum += partial, folded += count. Float addition
 * is not associative, so merging partial sums gives the single sum of the
 * same updates up to rounding. FA_EINVAL after a release.
 */
int fa_round_sum_merge(fa_round_sum *s, const float *partial, int64_t count,
                       fa_error *err) FA_MUST_CHECK;

/* dst = src (same dim): the sum, its count and whether it was released. */
void fa_round_sum_copy(fa_round_sum *dst, const fa_round_sum *src);

/*
 * The fold of an update whose sum of squares is known (from its decode):
 * fa_round_factor_of_sumsq then fa_round_sum_add, one pass over delta
 * (two more under the cosine policy): fa_round_sum_fold_many of one.
 */
int fa_round_sum_fold_sumsq(fa_round_sum *s, const float *delta, const fa_clip_sumsq *sumsq,
                            int64_t num_samples, const fa_config *cfg, const float *direction,
                            fa_error *err) FA_MUST_CHECK;

/*
 * Folds n updates with known sums of squares as n calls of
 * fa_round_sum_fold_sumsq in order would, bit for bit, but groups of them
 * are added one cache-sized tile of the sum at a time, so the sum is read
 * and written once per group instead of once per update (it matters once
 * the sum outgrows L2). An update whose factor fails (non-finite sum of
 * squares, bad numbers) is skipped and the rest are folded; the first such
 * error is returned. *folded_out (may be NULL) gets how many were added.
 * The worker folds the updates queued since its last pass with it.
 */
int fa_round_sum_fold_many(fa_round_sum *s, size_t *folded_out, const float *const *deltas,
                           const fa_clip_sumsq *sumsqs, const int64_t *num_samples, size_t n,
                           const fa_config *cfg, const float *direction,
                           fa_error *err) FA_MUST_CHECK;

/* fa_round_factor then fa_round_sum_add: two passes over delta (only read). */
int fa_round_sum_fold(fa_round_sum *s, const float *delta, int64_t num_samples,
                      const fa_config *cfg, const float *direction, fa_error *err) FA_MUST_CHECK;

/*
 * The noise sampler of round round_id: with noise_seed (64 hex characters,
 * tests and simulation only) a stream keyed by SHA-256(seed || round id as
 * u64 LE), otherwise the OS CSPRNG. Owned by the caller (fa_noise_free).
 * FA_EINVAL for a malformed seed, FA_ENOMEM.
 */
int fa_round_noise(fa_noise **out, const char *noise_seed, int64_t round_id,
                   fa_error *err) FA_MUST_CHECK;

/*
 * The release: adds Z ~ N(0, stddev^2 I) from nz to the weighted SUM, then
 * divides by the public denominator; s then holds the released mean and
 * takes no more folds until cleared. nz NULL adds no noise at all: only the
 * simulator's explicit non-private baseline does that, never the server.
 * FA_EINVAL for a bad stddev or denominator or a second release,
 * FA_EINTERNAL from the sampler.
 */
int fa_round_sum_release(fa_round_sum *s, fa_noise *nz, double stddev, double denominator,
                         fa_error *err) FA_MUST_CHECK;

/*
 * A zeroed parameter vector of the configured model (model, factors) for
 * num_items items, owned by the caller. FA_EINVAL, FA_ENOMEM.
 */
int fa_round_params_new(fa_params **out, const fa_config *cfg, size_t num_items,
                        fa_error *err) FA_MUST_CHECK;

/*
 * The server optimizer cfg names (server_optimizer, server_lr, server_tau;
 * beta1 and beta2 as in Reddi et al. 2021) for dim parameters, fresh.
 * FA_EINVAL for an unknown optimizer, FA_ENOMEM.
 */
int fa_round_optim_new(fa_optim **out, const fa_config *cfg, size_t dim,
                       fa_error *err) FA_MUST_CHECK;

/*
 * The server step: next <- base, then opt applies mean to next. direction
 * (may be NULL) receives next - base, the published direction the cosine
 * trust policy reads in the next round. next, base and direction are dim
 * floats and must not overlap. FA_EINVAL for a bad mean, FA_EINTERNAL when
 * the result is not finite (opt unchanged then; next undefined).
 */
int fa_round_step(float *next, float *direction, fa_optim *opt, const float *base,
                  const float *mean, size_t dim, fa_error *err) FA_MUST_CHECK;

/*
 * The mechanism a ledger entry records for a round of cohort updates at
 * sampling rate q whose minimum cohort is min_cohort, under cfg: S, sigma,
 * q, cohort, denominator (cfg->expected_cohort when set, else min_cohort)
 * and its rule, weight bound 1, noise method, seeded, trust policy.
 */
void fa_round_mechanism(fa_ledger_mechanism *out, const fa_config *cfg, double sampling_rate,
                        int64_t cohort, int64_t min_cohort);

typedef struct fa_accountant fa_accountant;

/*
 * The round decision, the one the server's close and the in-process
 * simulator both take (no I/O): a round that ended with `cohort` members at
 * sampling rate q and minimum cohort min_cohort is abandoned when it is
 * below min_cohort or full (cfg->max_cohort: a full round may have turned
 * devices away, so who is in it would depend on arrival order); otherwise
 * its release is decided against cfg's budget with the running accountant
 * acct: released (the release is then composed into acct) or refused
 * (acct unchanged). e, started by fa_ledger_entry_next with round_id and
 * created_at set, is completed: mechanism, kind and epsilon; a release's
 * model_version and snapshot digest are the caller's once it publishes.
 * *out is FA_ROUND_CLOSED (released), FA_ROUND_REFUSED or
 * FA_ROUND_ABANDONED. FA_EINVAL, FA_EINTERNAL, FA_ENOMEM from the
 * accountant.
 */
int fa_round_decide(fa_round_state *out, fa_ledger_entry *e, fa_accountant *acct,
                    const fa_config *cfg, double q, int64_t cohort, int64_t min_cohort,
                    fa_error *err) FA_MUST_CHECK;

#endif
