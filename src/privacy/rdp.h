/*
 * Renyi-DP accountant of the Poisson-sampled Gaussian mechanism (Mironov,
 * Talwar, Zhang 2019) at 156 fixed orders: 1.1, 1.2, ..., 10.9, 11, ..., 63,
 * 128, 256, 512, 1024. Composition, conversion to (epsilon, delta) and noise
 * calibration. Functions on caller-owned arrays, any thread; a cache is
 * owned by one thread.
 */
#ifndef FA_PRIVACY_RDP_H
#define FA_PRIVACY_RDP_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define FA_RDP_NUM_ORDERS 156

/* The validated domain of the accountant; inputs outside are FA_EINVAL. */
#define FA_RDP_SIGMA_MIN  0.3      /* noise multiplier */
#define FA_RDP_SIGMA_MAX  100.0    /* noise multiplier */
#define FA_RDP_Q_MIN      1e-6     /* sampling rate */
#define FA_RDP_ROUNDS_MAX 10000000 /* releases composed at one setting */

/* One release: Poisson sampling rate q and noise multiplier sigma. */
typedef struct fa_rdp_release {
    double q;     /* sampling rate in [FA_RDP_Q_MIN, 1] */
    double sigma; /* noise stddev / L2 sensitivity */
} fa_rdp_release;

/* The order at index i (< FA_RDP_NUM_ORDERS). */
double fa_rdp_order(size_t i);

/* Index of order alpha in the fixed set, or -1 when it is not one of them. */
int fa_rdp_order_index(double alpha);

/* FA_OK when (q, sigma) lie in the validated domain, else FA_EINVAL naming the bad one. */
int fa_rdp_check(double q, double sigma, fa_error *err) FA_MUST_CHECK;

/*
 * RDP of one release of the sampled Gaussian mechanism at one order
 * alpha > 1 (any real; used by tests for orders outside the fixed set).
 * FA_EINVAL outside the domain; FA_EINTERNAL if the series fails to converge.
 */
int fa_rdp_sgm_order(double *out, double q, double sigma, double alpha,
                     fa_error *err) FA_MUST_CHECK;

/* RDP of one release at every fixed order. FA_EINVAL, FA_EINTERNAL. */
int fa_rdp_sgm(double out[FA_RDP_NUM_ORDERS], double q, double sigma, fa_error *err) FA_MUST_CHECK;

/*
 * Composition (RDP adds up, Mironov 2017 Prop. 1): acc[i] += times * rdp[i].
 */
void fa_rdp_add(double acc[FA_RDP_NUM_ORDERS], const double rdp[FA_RDP_NUM_ORDERS], double times);

/*
 * A memo of per-release RDP vectors for the last few distinct (q, sigma)
 * pairs, for composing long histories that alternate between settings.
 * Owned by one thread.
 */
typedef struct fa_rdp_cache fa_rdp_cache;

int fa_rdp_cache_new(fa_rdp_cache **out, fa_error *err) FA_MUST_CHECK; /* FA_ENOMEM */
void fa_rdp_cache_free(fa_rdp_cache *cache);                           /* NULL-safe */

/* Makes dst hold what src holds (both from fa_rdp_cache_new). */
void fa_rdp_cache_assign(fa_rdp_cache *dst, const fa_rdp_cache *src);

/*
 * fa_rdp_sgm through the cache: *out points at the vector of (q, sigma),
 * valid until the next call on the cache. FA_EINVAL, FA_EINTERNAL.
 */
int fa_rdp_sgm_cached(const double **out, fa_rdp_cache *cache, double q, double sigma,
                      fa_error *err) FA_MUST_CHECK;

/*
 * Adds n releases with their own (q, sigma) to acc, one at a time in the
 * given order (so the result equals adding each release's vector in turn).
 * Each distinct setting is computed once (via a cache). FA_EINVAL,
 * FA_EINTERNAL, FA_ENOMEM.
 */
int fa_rdp_compose(double acc[FA_RDP_NUM_ORDERS], const fa_rdp_release *releases, size_t n,
                   fa_error *err) FA_MUST_CHECK;

/*
 * Smallest epsilon over the orders for delta in (0, 1) (Balle et al. 2020,
 * Theorem 21; Canonne, Kamath, Steinke 2020, Proposition 12), and the order
 * attaining it. An all-zero vector (nothing released) gives epsilon 0 and
 * order 0. FA_EINVAL for a bad delta or a negative or non-finite entry.
 */
int fa_rdp_epsilon(double *eps_out, double *order_out, const double rdp[FA_RDP_NUM_ORDERS],
                   double delta, fa_error *err) FA_MUST_CHECK;

/* Epsilon after `rounds` identical releases. FA_EINVAL, FA_EINTERNAL. */
int fa_rdp_epsilon_rounds(double *eps_out, double *order_out, double q, double sigma,
                          int64_t rounds, double delta, fa_error *err) FA_MUST_CHECK;

/*
 * Calibration: the smallest noise multiplier in [FA_RDP_SIGMA_MIN,
 * FA_RDP_SIGMA_MAX], to within 0.1%, whose epsilon after `rounds` releases at
 * rate q is at most target_eps; sigma_out is rounded up to 6 significant
 * digits and eps_out/order_out are those of sigma_out itself. Returns
 * FA_RDP_SIGMA_MIN when even that meets the target. FA_EINVAL for bad input or a
 * target that needs more noise than FA_RDP_SIGMA_MAX.
 */
int fa_rdp_calibrate(double *sigma_out, double *eps_out, double *order_out, double target_eps,
                     double q, int64_t rounds, double delta, fa_error *err) FA_MUST_CHECK;

#endif
