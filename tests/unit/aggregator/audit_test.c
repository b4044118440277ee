/*
 * Empirical privacy audit of one round's release: the server's own round
 * math (fold with clipping and weights, the seeded Gaussian sampler,
 * release over the public denominator) run many times with and without a
 * canary device, a threshold test on each released mean, and the lower
 * bound on epsilon that the test's error rates prove (Jagielski, Ullman,
 * Oprea 2020, "Auditing Differentially Private Machine Learning: How
 * Private is Private SGD?", NeurIPS; Nasr, Song, Thakurta, Papernot,
 * Carlini 2021, "Adversary Instantiation: Lower Bounds for Differentially
 * Private Machine Learning", IEEE S&P). The real mechanism must stay below
 * the accountant's epsilon; two deliberately broken ones must exceed it.
 *
 * FA_AUDIT_TRIALS sets the trials per world (default AUDIT_TRIALS);
 * scripts/experiments/privacy_audit.sh runs it large for docs/privacy.md.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aggregator/round_math.h"
#include "core/config.h"
#include "privacy/budget.h"
#include "privacy/crypto.h"
#include "privacy/noise.h"

/* ============================================ Clopper-Pearson bounds */

/*
 * log P(X <= k) for X ~ Binomial(n, p), valid for k/n <= p < 1 (and
 * 0 < p). There the terms b(j) = C(n, j) p^j (1 - p)^(n - j) decrease from
 * j = k downwards: b(j - 1) / b(j) = r_j = j (1 - p) / ((n - j + 1) p), and
 * r_k <= (n - k) / (n - k + 1) < 1 at p = k/n, shrinking as j falls or p
 * grows. So the sum is taken relative to b(k) (no underflow, whatever
 * b(k) is) and stopped once the rest, at most b(j) r / (1 - r) by the
 * geometric bound, is below 1e-17 of it. log b(k) comes from lgamma, whose
 * cancellation costs about 1e-9 (relative) at n = 10^7: far below what
 * moves a bound at the digits we use.
 */
static double binom_log_cdf(int64_t k, int64_t n, double p)
{
    double odds = (1.0 - p) / p, term = 1.0, sum = 1.0;
    double log_top = lgamma((double)n + 1) - lgamma((double)k + 1) - lgamma((double)(n - k) + 1) +
                     (double)(n - k) * log1p(-p) + (k > 0 ? (double)k * log(p) : 0.0);

    for (int64_t j = k; j > 0; j--) {
        double r = (double)j / (double)(n - j + 1) * odds;
        term *= r;
        sum += term;
        if (r < 1.0 && term * r / (1.0 - r) <= 1e-17 * sum)
            break;
    }
    return log_top + log(sum);
}

/*
 * The one-sided Clopper-Pearson upper bound at level a: the p_u with
 * P(X <= k; p_u) = a, so that P(p > p_u) <= a for the true rate p given k
 * successes in n trials (Clopper & Pearson 1934, "The Use of Confidence or
 * Fiducial Limits Illustrated in the Case of the Binomial", Biometrika
 * 26(4)). Equivalently the 1 - a quantile of Beta(k + 1, n - k); here by
 * bisection on the exact binomial tail, which decreases in p. The bracket
 * starts at k/n, where P(X <= k) >= 1/2 > a (k = np is the median of the
 * binomial: Kaas & Buhrman 1980), and the upper end is returned, so the
 * bound is rounded up, never down.
 */
static double cp_upper(int64_t k, int64_t n, double a)
{
    double lo, hi = 1.0, log_a = log(a);

    cr_assert(n > 0 && k >= 0 && k <= n && a > 0.0 && a < 0.5);
    if (k == n)
        return 1.0;
    lo = (double)k / (double)n;
    for (int it = 0; it < 200 && hi - lo > 1e-15 * hi; it++) {
        double mid = lo + (hi - lo) / 2;
        if (binom_log_cdf(k, n, mid) > log_a)
            lo = mid;
        else
            hi = mid;
    }
    return hi;
}

/*
 * P(X <= k) by a second, independent method for the tests: the binomial
 * coefficients of row n of Pascal's triangle by additions in double
 * (exact to about n ulps; C(1000, 500) = 2.7e299 still fits), each term
 * formed from them directly. No lgamma, no ratio recurrence.
 */
static double pascal_cdf(int64_t k, int64_t n, double p)
{
    double *row = calloc((size_t)n + 1, sizeof(double));
    double sum = 0.0;

    cr_assert_not_null(row);
    cr_assert(n <= 1000);
    row[0] = 1.0;
    for (int64_t i = 1; i <= n; i++)
        for (int64_t j = i; j > 0; j--)
            row[j] += row[j - 1];
    for (int64_t j = 0; j <= k; j++)
        sum += exp(log(row[j]) + (double)j * log(p) + (double)(n - j) * log1p(-p));
    free(row);
    return sum;
}

Test(audit, clopper_pearson_has_the_closed_forms_at_k_0_and_k_n)
{
    static const int64_t ns[] = {1, 2, 10, 1000, 100000, 10000000};
    static const double as[] = {0.025, 1e-3, 1e-6};

    for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++)
        for (size_t j = 0; j < sizeof(as) / sizeof(as[0]); j++) {
            /* k = 0: (1 - p)^n = a, so p_u = 1 - a^(1/n), formed without cancellation */
            double expect = -expm1(log(as[j]) / (double)ns[i]);
            double got = cp_upper(0, ns[i], as[j]);
            cr_assert(fabs(got - expect) <= 1e-12 * expect, "n %" PRId64 " a %g: %.17g vs %.17g",
                      ns[i], as[j], got, expect);
            cr_assert_eq(cp_upper(ns[i], ns[i], as[j]), 1.0, "k = n leaves nothing to bound");
        }
}

Test(audit, clopper_pearson_matches_exact_values)
{
    /* Computed offline with exact rational arithmetic (Python fractions:
     * sum of C(n, j) p^j (1 - p)^(n - j) over j <= k, bisection on p to
     * 2e-14); the first is the upper end of R's binom.test(5, 20). */
    static const struct {
        int64_t k, n;
        double a, upper;
    } known[] = {
        {5, 20, 0.025, 0.49104587170797487},
        {3, 100, 0.025, 0.08517605297429612},
        {17, 50, 0.001, 0.567253089514816},
        {40, 41, 0.05, 0.9987497262835923},
    };

    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        double got = cp_upper(known[i].k, known[i].n, known[i].a);
        cr_assert(fabs(got - known[i].upper) <= 1e-12, "k %" PRId64 " n %" PRId64 ": %.17g",
                  known[i].k, known[i].n, got);
    }
}

Test(audit, clopper_pearson_matches_a_brute_force_binomial_sum)
{
    static const int64_t ns[] = {7, 60, 333, 1000};
    static const double as[] = {0.025, 1e-4};

    for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++)
        for (size_t j = 0; j < sizeof(as) / sizeof(as[0]); j++)
            for (int64_t k = 0; k < ns[i]; k += 1 + ns[i] / 9) {
                double pu = cp_upper(k, ns[i], as[j]);
                /* At the bound the tail equals a; a hair lower it is above a. */
                double at = pascal_cdf(k, ns[i], pu);
                double below = pascal_cdf(k, ns[i], pu * (1 - 1e-9));
                cr_assert(fabs(at - as[j]) <= 1e-9 * as[j], "n %" PRId64 " k %" PRId64 ": %.17g",
                          ns[i], k, at);
                cr_assert(below > as[j], "n %" PRId64 " k %" PRId64, ns[i], k);
                /* and the two tails agree where both apply */
                double p = (pu + (double)k / (double)ns[i]) / 2;
                cr_assert(fabs(exp(binom_log_cdf(k, ns[i], p)) - pascal_cdf(k, ns[i], p)) <=
                          1e-10 * pascal_cdf(k, ns[i], p));
            }
}

/* ============================================================= the audit */

/*
 * Parameters. One release of the Gaussian mechanism with noise multiplier
 * sigma is, for the optimal (likelihood-ratio) test, a shift of mu = 1 /
 * sigma between unit Gaussians (Dong, Roth, Su 2022, "Gaussian
 * Differential Privacy", JRSS B, Thm. 2.7). Projecting the released mean
 * on the canary's direction is that test, so no test does better.
 *
 * What N trials per world can show is capped by the smallest false
 * positive rate they certify: a count near 20 out of N, whose
 * Clopper-Pearson bound at level 0.05 / 66 is about twice that. The bound
 * tops out near log(N) - 4, and events rarer than about 1 / N are never
 * seen, while a small delta such as 1e-5 is what pays for them in the
 * claim. So the audit is stated at delta = 1e-3, where the claim is
 * tested in the region N can reach, and at sigma = 1, where the shifts
 * are large against the fixed cost of the intervals. The claim is 3.54;
 * at N = 40000 the real mechanism's expected bound is about 2.26 and the
 * broken ones' (mu = 2: half the noise, or the canary counted twice)
 * about 4.68, margins near 1.2 on both sides. Over nine seeds the real
 * bound ranged 2.13 to 2.43 and the broken ones 4.55 to 5.22 (this seed:
 * 2.38, 5.10, 4.76). At sigma 2 (claim 1.55) the expected margins shrink
 * to 0.6 and 0.7; at delta 1e-5 the broken margin nearly vanishes.
 * N = 40000 keeps the test to a few seconds under ASan (the sampler's
 * 256-coordinate group, drawn whole for each release, is most of the
 * cost).
 */
#define DIM          16   /* floats per update */
#define OTHERS       5    /* fixed devices besides the canary */
#define DENOM        6.0  /* the public denominator m (min_cohort) */
#define CLIP         0.5  /* S */
#define SIGMA        1.0  /* noise multiplier */
#define DELTA        1e-3 /* delta every epsilon here is stated at */
#define ALPHA        0.05 /* 1 - confidence of each audit */
#define N_CAP        100  /* weight_cap_samples */
#define NG           33   /* thresholds: g = -3, -2.75, ..., 5 */
#define AUDIT_SEED   "5eed0a0d17000000000000000000000000000000000000000000000000000001"
#define AUDIT_TRIALS 40000 /* per world, by default */

static double grid_g(int i)
{
    return -3.0 + 0.25 * i;
}

typedef struct audit {
    fa_config cfg;
    float others[OTHERS][DIM];
    int64_t others_n[OTHERS]; /* samples: weights min(1, n / N_CAP) */
    float canary[DIM];        /* 3 S along e: clipped to S */
    double e[DIM];            /* unit vector, the canary's direction */
    double thresholds[NG];    /* on the projection of the released mean on e */
} audit;

static void fixture(audit *a)
{
    static const double norms[OTHERS] = {0.05, 0.4, 0.9, 1.7, 6.0}; /* in units of S */
    static const int64_t samples[OTHERS] = {100, 30, 250, 64, 100};
    uint32_t v = 0x9e3779b9u;
    double ne = 0.0, center = 0.0;
    fa_round_sum *s = NULL;
    fa_error err = FA_ERROR_INIT;
    double f = 0.0;

    fa_config_defaults(&a->cfg);
    a->cfg.clip_norm = CLIP;
    a->cfg.noise_multiplier = SIGMA;
    a->cfg.weight_cap_samples = N_CAP;
    (void)snprintf(a->cfg.trust_policy, sizeof(a->cfg.trust_policy), "none");
    (void)snprintf(a->cfg.noise_seed, sizeof(a->cfg.noise_seed), "%s", AUDIT_SEED);

    for (size_t i = 0; i < DIM; i++) {
        a->e[i] = (i % 2 ? 1.0 : -1.0) * (1.0 + (double)(i % 3));
        ne += a->e[i] * a->e[i];
    }
    for (size_t i = 0; i < DIM; i++) {
        a->e[i] /= sqrt(ne);
        a->canary[i] = (float)(3.0 * CLIP * a->e[i]);
    }
    for (size_t k = 0; k < OTHERS; k++) {
        double raw[DIM], nr = 0.0;
        for (size_t i = 0; i < DIM; i++) {
            v ^= v << 13;
            v ^= v >> 17;
            v ^= v << 5;
            raw[i] = (double)(v % 20001) / 10000.0 - 1.0;
            nr += raw[i] * raw[i];
        }
        for (size_t i = 0; i < DIM; i++)
            a->others[k][i] = (float)(raw[i] / sqrt(nr) * norms[k] * CLIP);
        a->others_n[k] = samples[k];
    }

    /* The canary really is clipped, to S, with weight 1. */
    cr_assert_eq(fa_round_factor(&f, a->canary, DIM, N_CAP, &a->cfg, NULL, &err), FA_OK);
    cr_assert(f < 0.34 && f * 3.0 * CLIP > CLIP * (1 - 1e-6) && f * 3.0 * CLIP <= CLIP * 1.000001,
              "factor %g", f);

    /* Thresholds sit on the absent world's noise-free projection, in steps
     * of the real mechanism's projected noise sigma S / m: fixed before
     * any trial is drawn, so Bonferroni over them is valid. */
    cr_assert_eq(fa_round_sum_new(&s, DIM, &err), FA_OK);
    for (size_t k = 0; k < OTHERS; k++)
        cr_assert_eq(fa_round_sum_fold(s, a->others[k], a->others_n[k], &a->cfg, NULL, &err), FA_OK,
                     "%s", err.msg);
    cr_assert_eq(fa_round_sum_release(s, NULL, 0.0, DENOM, &err), FA_OK);
    for (size_t i = 0; i < DIM; i++)
        center += (double)fa_round_sum_data(s)[i] * a->e[i];
    for (int g = 0; g < NG; g++)
        a->thresholds[g] = center + grid_g(g) * SIGMA * CLIP / DENOM;
    fa_round_sum_free(s);
}

static int64_t audit_trials(void)
{
    const char *env = getenv("FA_AUDIT_TRIALS");
    char *end = NULL;
    long long n;

    if (env == NULL || env[0] == '\0')
        return AUDIT_TRIALS;
    errno = 0;
    n = strtoll(env, &end, 10);
    cr_assert(errno == 0 && *end == '\0' && n >= 1000 && n <= 1000000000,
              "FA_AUDIT_TRIALS must be an integer in 1000..1e9, got %s", env);
    return (int64_t)n;
}

/*
 * One world: `trials` releases of the others plus `canary_folds` folds of
 * the canary (0 absent, 1 present, 2 the broken double weight), with noise
 * of standard deviation stddev. above[g] counts releases whose projection
 * exceeds threshold g.
 *
 * The noise is the server's: the seeded sampler of round id `world`
 * (fa_round_noise), one per world, each release drawing the next group of
 * its ChaCha20 stream. The server keys a fresh sampler per round instead,
 * but a sampler lives in guarded memory (sodium_malloc: mmap, mprotect and
 * munmap), which costs about 35 us of system time per trial, five times
 * the rest; successive groups of one keystream are as independent as
 * streams under different keys (ChaCha20 as a PRF), and the per-round
 * keying is tested in round_math_test.c.
 */
static void run_world(int64_t above[NG], const audit *a, int canary_folds, double stddev,
                      int64_t world, int64_t trials)
{
    fa_round_sum *s = NULL;
    fa_noise *nz = NULL;
    fa_error err = FA_ERROR_INIT;

    memset(above, 0, NG * sizeof(above[0]));
    cr_assert_eq(fa_round_sum_new(&s, DIM, &err), FA_OK);
    cr_assert_eq(fa_round_noise(&nz, a->cfg.noise_seed, world, &err), FA_OK, "%s", err.msg);
    for (int64_t t = 0; t < trials; t++) {
        double proj = 0.0;

        fa_round_sum_clear(s);
        for (size_t k = 0; k < OTHERS; k++)
            cr_assert_eq(fa_round_sum_fold(s, a->others[k], a->others_n[k], &a->cfg, NULL, &err),
                         FA_OK, "%s", err.msg);
        for (int c = 0; c < canary_folds; c++)
            cr_assert_eq(fa_round_sum_fold(s, a->canary, N_CAP, &a->cfg, NULL, &err), FA_OK);
        cr_assert_eq(fa_round_sum_release(s, nz, stddev, DENOM, &err), FA_OK, "%s", err.msg);
        for (size_t i = 0; i < DIM; i++)
            proj += (double)fa_round_sum_data(s)[i] * a->e[i];
        for (int g = 0; g < NG && proj > a->thresholds[g]; g++)
            above[g]++;
    }
    fa_noise_free(nz);
    fa_round_sum_free(s);
}

typedef struct audit_bound {
    double eps;     /* the lower bound on epsilon, >= 0 */
    double g;       /* threshold attaining it, in projected noise units */
    int64_t fp, fn; /* false positives and negatives there */
} audit_bound;

/*
 * The test "canary present iff projection > threshold g" has false
 * positive rate FPR (over absent trials) and false negative rate FNR (over
 * present ones). An (eps, delta)-DP release forces FPR + e^eps FNR >=
 * 1 - delta and FNR + e^eps FPR >= 1 - delta (Wasserman & Zhou 2010;
 * Kairouz, Oh, Viswanath 2015, "The Composition Theorem for Differential
 * Privacy", Thm. 2.1), so
 *
 *   eps >= max( log((1 - delta - FNR) / FPR), log((1 - delta - FPR) / FNR) )
 *
 * and with upper confidence bounds in place of the rates this is a lower
 * bound on eps with their confidence (Jagielski et al. 2020; Nasr et al.
 * 2021; both bound the rates with Clopper-Pearson intervals). There are
 * NG thresholds and two one-sided bounds at each, each at level
 * ALPHA / (2 NG), so all 2 NG hold at once with probability >= 1 - ALPHA
 * (Bonferroni), and the maximum over thresholds is a lower bound at
 * confidence 1 - ALPHA.
 */
static audit_bound eps_lower_bound(const int64_t above_absent[NG], const int64_t above_present[NG],
                                   int64_t trials)
{
    audit_bound b = {0.0, 0.0, 0, 0};
    double level = ALPHA / (2.0 * NG);

    for (int g = 0; g < NG; g++) {
        int64_t fp = above_absent[g], fn = trials - above_present[g];
        double fpr_u = cp_upper(fp, trials, level), fnr_u = cp_upper(fn, trials, level);
        double cand[2] = {log((1.0 - DELTA - fnr_u) / fpr_u), log((1.0 - DELTA - fpr_u) / fnr_u)};

        for (int c = 0; c < 2; c++)
            if (isfinite(cand[c]) && cand[c] > b.eps) {
                b.eps = cand[c];
                b.g = grid_g(g);
                b.fp = fp;
                b.fn = fn;
            }
    }
    return b;
}

/* The epsilon the server's budget decision charges for this one release. */
static double claimed_epsilon(void)
{
    fa_budget budget = {100.0, DELTA};
    fa_budget_decision d;
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_budget_decide(&d, &budget, NULL, 1.0, SIGMA, &err), FA_OK, "%s", err.msg);
    return d.epsilon_after;
}

/*
 * Runs the absent world and the present one (the canary folded
 * canary_folds times), both with noise stddev, and returns the bound;
 * one logfmt line on stderr for scripts/experiments/privacy_audit.sh.
 */
static audit_bound audit_mechanism(const char *name, int canary_folds, double stddev,
                                   int64_t world_absent, int64_t world_present)
{
    audit a;
    int64_t trials = audit_trials(), above_absent[NG], above_present[NG];
    fa_error err = FA_ERROR_INIT;
    struct timespec t0, t1;
    audit_bound b;

    cr_assert_eq(fa_crypto_init(&err), FA_OK);
    fixture(&a);
    (void)clock_gettime(CLOCK_MONOTONIC, &t0);
    run_world(above_absent, &a, 0, stddev, world_absent, trials);
    run_world(above_present, &a, canary_folds, stddev, world_present, trials);
    b = eps_lower_bound(above_absent, above_present, trials);
    (void)clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr,
            "audit mechanism=%s trials=%" PRId64 " sigma=%g delta=%g confidence=%g thresholds=%d "
            "claimed_eps=%.4f eps_lb=%.4f at_g=%.2f fp=%" PRId64 " fn=%" PRId64 " seconds=%.2f\n",
            name, trials, SIGMA, DELTA, 1.0 - ALPHA, NG, claimed_epsilon(), b.eps, b.g, b.fp, b.fn,
            (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    return b;
}

Test(audit, the_real_release_stays_below_the_accountant)
{
    audit_bound b = audit_mechanism("real", 1, SIGMA * CLIP, 1, 2);
    double claimed = claimed_epsilon();

    /* A bound above the claim would mean a broken mechanism or accountant
     * (or the 5% the confidence leaves, but the seeds are fixed). */
    cr_assert(claimed > 3.5 && claimed < 3.6, "claimed %g", claimed);
    cr_assert(b.eps < claimed, "empirical %g >= claimed %g", b.eps, claimed);
    cr_assert(b.eps > 0.5, "the audit should see something: %g", b.eps);
}

Test(audit, halving_the_noise_is_caught)
{
    audit_bound b = audit_mechanism("half-noise", 1, SIGMA * CLIP / 2, 3, 4);
    double claimed = claimed_epsilon();

    cr_assert(b.eps > claimed, "empirical %g <= claimed %g", b.eps, claimed);
}

Test(audit, folding_the_canary_twice_is_caught)
{
    /* The absent world is the real one's (same round ids, same bits). */
    audit_bound b = audit_mechanism("double-weight", 2, SIGMA * CLIP, 1, 5);
    double claimed = claimed_epsilon();

    cr_assert(b.eps > claimed, "empirical %g <= claimed %g", b.eps, claimed);
}
