/*
 * Privacy-loss-distribution (PLD) accountant of the Poisson-subsampled
 * Gaussian mechanism under add/remove adjacency: a pessimistic discrete PLD
 * per direction, composed by convolution, converted to (epsilon, delta).
 * An fa_pld is owned by the caller and used by one thread at a time;
 * distinct ones may be used concurrently (no shared state).
 */
#ifndef FA_PRIVACY_PLD_H
#define FA_PRIVACY_PLD_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

/*
 * The PLD of every composed round is discretised pessimistically on a grid
 * of privacy-loss values k * h (connect-the-dots, Doroshenko et al. 2022),
 * once for the "remove" direction (M(D) against M(D minus one user)) and
 * once for "add"; both are composed separately and epsilon is the larger of
 * the two, as Google's dp_accounting does. The reported epsilon (delta) is
 * an upper bound on the true one for every h, up to double-precision
 * rounding of masses near 1e-16: tails cut to keep the arrays short move
 * their mass to larger losses or to infinity, never to smaller ones.
 *
 * Grid spacing h (nats):
 *  - FA_PLD_INTERVAL_AUTO: before each batch the spacing becomes the power
 *    of two <= the smaller of FA_PLD_AUTO_ROUND times the standard deviation
 *    of one round's privacy loss (bounds the bias each composed round adds)
 *    and FA_PLD_AUTO_TOTAL times that of the whole composition (bounds the
 *    interpolation error where epsilon is small). The running PLD follows:
 *    refined exactly (the grids nest), or coarsened pessimistically as
 *    rounds accumulate. This is the mode that meets the accuracy target.
 *  - h > 0: that spacing, fixed. A nested finer grid (h / 2^k) gives an
 *    epsilon no larger (both are upper bounds), at proportionally more
 *    memory and time.
 * In both modes the spacing doubles, re-discretising pessimistically, when a
 * direction would exceed FA_PLD_MAX_POINTS grid points.
 *
 * Accuracy (tests/unit/privacy/pld_test.c, tests/vectors/pld_reference.txt):
 * in auto mode, on sigma in [0.5, 20], q in [1e-3, 1], 1..10^4 rounds and
 * delta in [1e-9, 1e-3], epsilon is never below the true value and at most
 * 1% above it (measured: at most 0.13% above the reference vectors and the
 * Gaussian closed form, 0.25% above a 16 times finer grid over a sweep of
 * the domain).
 *
 * Cost of one fa_pld_compose_sgm(count = 1), N the points of the running
 * PLD per direction and M those of one round (M = loss range / h: in auto
 * mode 200 to 400 without sampling once the composition spans 25 rounds'
 * spread, 5 times more before, and up to ~3e4 for q = 1e-3, sigma = 0.5):
 *  - discretising the round: O(M) normal-density evaluations, skipped when
 *    (q, sigma) repeats (the last round is kept, M doubles per direction);
 *  - the convolution: O(N M) directly or O((N + M) log(N + M)) by FFT,
 *    whichever is cheaper, on a window given by Chernoff bounds.
 * Memory: N doubles per direction held, plus a transient 4 L doubles for an
 * FFT of size L (the power of two >= N + M). In auto mode N grows like
 * sqrt(T) after T similar rounds (at T = 10^4: 2e4 points and ~4 ms per
 * compose at q = 0.01, sigma = 1.1; 5e4 points and ~17 ms at q = 1e-3,
 * sigma = 0.5); it never exceeds FA_PLD_MAX_POINTS
 * (8 MiB per direction). count identical rounds at once cost one FFT of the
 * count-fold window raised to the count-th power by repeated squaring per
 * frequency: O(L log L + L log count).
 */
typedef struct fa_pld fa_pld;

#define FA_PLD_INTERVAL_AUTO 0.0       /* choose the grid per round (see above) */
#define FA_PLD_INTERVAL_MIN  1e-9      /* smallest fixed grid spacing, nats */
#define FA_PLD_INTERVAL_MAX  1.0       /* largest fixed grid spacing, nats */
#define FA_PLD_AUTO_ROUND    0.1       /* auto spacing / loss sd of one round */
#define FA_PLD_AUTO_TOTAL    0.02      /* auto spacing / loss sd of the composition */
#define FA_PLD_MAX_POINTS    (1 << 20) /* grid points per direction */
#define FA_PLD_TAIL_MASS     1e-18     /* mass one convolution may move to a tail */

/*
 * A PLD of nothing released (epsilon 0), on grid spacing
 * discretization_interval (FA_PLD_INTERVAL_AUTO, or a spacing in
 * [FA_PLD_INTERVAL_MIN, FA_PLD_INTERVAL_MAX]). The caller owns *out and
 * frees it with fa_pld_free. FA_EINVAL, FA_ENOMEM.
 */
int fa_pld_new(fa_pld **out, double discretization_interval, fa_error *err) FA_MUST_CHECK;

/* A deep copy of pld (e.g. to try one more round without committing it). FA_ENOMEM. */
int fa_pld_copy(fa_pld **out, const fa_pld *pld, fa_error *err) FA_MUST_CHECK;

void fa_pld_free(fa_pld *pld); /* NULL-safe */

/*
 * Composes count rounds of the Gaussian mechanism with noise multiplier
 * sigma on a Poisson sample of rate q (the domain of privacy/rdp.h: sigma in
 * [FA_RDP_SIGMA_MIN, FA_RDP_SIGMA_MAX], q in [FA_RDP_Q_MIN, 1], count in
 * [1, FA_RDP_ROUNDS_MAX]) into pld. Rounds with different settings compose
 * in any order, one by one or in batches, with the same result: up to
 * rounding on a fixed grid; in auto mode up to the finer discretisation of
 * rounds composed while the grid was finer (measured up to 3e-4 relative, the
 * one-by-one composition stating less). On failure pld
 * is left unchanged. FA_EINVAL, FA_ENOMEM.
 */
int fa_pld_compose_sgm(fa_pld *pld, double q, double sigma, int64_t count,
                       fa_error *err) FA_MUST_CHECK;

/*
 * The smallest epsilon >= 0 such that the composition so far is
 * (epsilon, delta)-DP under add/remove adjacency, for delta in (0, 1).
 * INFINITY when the mass at infinite loss alone exceeds delta (only for
 * delta near FA_PLD_TAIL_MASS). FA_EINVAL for a bad delta.
 */
int fa_pld_epsilon(double *eps_out, const fa_pld *pld, double delta, fa_error *err) FA_MUST_CHECK;

/* The delta at epsilon >= 0 (the larger hockey-stick divergence). FA_EINVAL. */
int fa_pld_delta(double *delta_out, const fa_pld *pld, double eps, fa_error *err) FA_MUST_CHECK;

/* Current grid spacing in nats (0 in auto mode before the first round). */
double fa_pld_interval(const fa_pld *pld);

/* Grid points held by the larger of the two directions. */
size_t fa_pld_points(const fa_pld *pld);

/*
 * Epsilon after `rounds` identical rounds at (q, sigma), in auto mode.
 * FA_EINVAL, FA_ENOMEM.
 */
int fa_pld_epsilon_rounds(double *eps_out, double q, double sigma, int64_t rounds, double delta,
                          fa_error *err) FA_MUST_CHECK;

/*
 * Calibration: the smallest noise multiplier in [FA_RDP_SIGMA_MIN,
 * FA_RDP_SIGMA_MAX], to within 0.1%, whose PLD epsilon after `rounds` rounds
 * at rate q is at most target_eps (bisection in log sigma); sigma_out is
 * rounded up to 6 significant digits and eps_out is the epsilon of
 * sigma_out itself. Returns FA_RDP_SIGMA_MIN when even that meets the
 * target. FA_EINVAL for bad input or a target that needs more noise than
 * FA_RDP_SIGMA_MAX; FA_ENOMEM.
 */
int fa_pld_calibrate(double *sigma_out, double *eps_out, double target_eps, double q,
                     int64_t rounds, double delta, fa_error *err) FA_MUST_CHECK;

#endif
