#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "privacy/pld.h"
#include "privacy/rdp.h"
#include "vectors.h"

/*
 * The PLD accountant against closed forms, its own invariants and the
 * independent references of tests/vectors/pld_reference.txt. "Never below
 * the truth" is checked with a relative slack of 1e-12: the resolution of
 * the double-precision closed forms and bisections it is compared with.
 */

#define BELOW_TOL 1e-12 /* relative slack of the closed-form comparisons */
#define ABOVE_TOL 0.01  /* accuracy target: at most 1% above the truth */

static double pld_eps(double interval, double q, double sigma, int64_t rounds, double delta)
{
    fa_pld *pld = NULL;
    fa_error err = FA_ERROR_INIT;
    double eps;

    cr_assert_eq(fa_pld_new(&pld, interval, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(fa_pld_compose_sgm(pld, q, sigma, rounds, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(fa_pld_epsilon(&eps, pld, delta, &err), FA_OK, "%s", err.msg);
    fa_pld_free(pld);
    return eps;
}

/* ------------------------------------------------------------ closed form */

/*
 * log Phi(x), Phi the standard normal CDF; below x = -5 through the
 * continued fraction of the Mills ratio Phi(x) / phi(x) =
 * 1 / (t + 1 / (t + 2 / (t + 3 / (t + ...)))), t = -x (Abramowitz & Stegun
 * 26.2.14), so that it stays finite where Phi underflows.
 */
static double log_ndtr(double x)
{
    double f;

    if (x > -5.0)
        return log(0.5 * erfc(-x / sqrt(2.0)));
    f = -x;
    for (int k = 300; k >= 1; k--)
        f = -x + k / f;
    return -log(f) - 0.5 * x * x - 0.5 * log(6.283185307179586);
}

/*
 * The Gaussian mechanism with sensitivity 1 and noise multiplier sigma
 * (Balle & Wang 2018, "Improving the Gaussian Mechanism for Differential
 * Privacy", Theorem 8):
 *   delta(eps) = Phi(-eps sigma + 1/(2 sigma)) - e^eps Phi(-eps sigma - 1/(2 sigma)),
 * the second term as exp(eps + log Phi(.)) so that large epsilons (T rounds
 * at small sigma) neither overflow nor underflow.
 */
static double gaussian_delta(double sigma, double eps)
{
    return exp(log_ndtr(-eps * sigma + 0.5 / sigma)) -
           exp(eps + log_ndtr(-eps * sigma - 0.5 / sigma));
}

/* Its epsilon for delta, by bisection (delta(eps) decreases in eps). */
static double gaussian_eps(double sigma, double delta)
{
    double lo = 0.0, hi = 1.0;

    if (gaussian_delta(sigma, 0.0) <= delta)
        return 0.0;
    while (gaussian_delta(sigma, hi) > delta)
        hi *= 2.0;
    for (int i = 0; i < 200 && hi - lo > 1e-15 * hi; i++) {
        const double mid = 0.5 * (lo + hi);
        if (gaussian_delta(sigma, mid) > delta)
            lo = mid;
        else
            hi = mid;
    }
    return hi;
}

static void assert_tight(double got, double want, const char *what)
{
    cr_assert_geq(got, want * (1.0 - BELOW_TOL), "%s: %.12g is below the exact %.12g", what, got,
                  want);
    cr_assert_leq(got, want * (1.0 + ABOVE_TOL), "%s: %.12g is over 1%% above the exact %.12g",
                  what, got, want);
}

Test(pld, one_round_without_sampling_is_the_analytic_gaussian)
{
    static const double SIGMAS[] = {0.5, 1.0, 2.0, 5.0, 20.0};
    static const double DELTAS[] = {1e-9, 1e-5, 1e-3};

    for (size_t s = 0; s < FA_ARRAY_LEN(SIGMAS); s++)
        for (size_t d = 0; d < FA_ARRAY_LEN(DELTAS); d++) {
            char what[64];
            snprintf(what, sizeof(what), "sigma %g delta %g", SIGMAS[s], DELTAS[d]);
            assert_tight(pld_eps(FA_PLD_INTERVAL_AUTO, 1.0, SIGMAS[s], 1, DELTAS[d]),
                         gaussian_eps(SIGMAS[s], DELTAS[d]), what);
        }
}

/* T rounds of the Gaussian mechanism compose exactly to one with sigma / sqrt(T). */
Test(pld, rounds_without_sampling_are_the_gaussian_with_sigma_over_sqrt_t)
{
    static const double SIGMAS[] = {0.5, 2.0, 20.0};
    static const int64_t ROUNDS[] = {2, 10, 1000, 10000};
    static const double DELTAS[] = {1e-9, 1e-5};

    for (size_t s = 0; s < FA_ARRAY_LEN(SIGMAS); s++)
        for (size_t t = 0; t < FA_ARRAY_LEN(ROUNDS); t++)
            for (size_t d = 0; d < FA_ARRAY_LEN(DELTAS); d++) {
                const double sigma_t = SIGMAS[s] / sqrt((double)ROUNDS[t]);
                char what[64];
                snprintf(what, sizeof(what), "sigma %g T %lld delta %g", SIGMAS[s],
                         (long long)ROUNDS[t], DELTAS[d]);
                assert_tight(pld_eps(FA_PLD_INTERVAL_AUTO, 1.0, SIGMAS[s], ROUNDS[t], DELTAS[d]),
                             gaussian_eps(sigma_t, DELTAS[d]), what);
            }
}

/* ------------------------------------------------------ reference vectors */

/*
 * Subsampled cases against the independent references (exact closed form at
 * T = 1, a rigorous fine-grid bracket [eps_lo, eps_hi] otherwise): never
 * below eps_lo, at most 1% above it; and never above the RDP accountant,
 * whose value for the same case is recomputed here from privacy/rdp.h.
 */
Test(pld, subsampled_cases_match_the_independent_references)
{
    FILE *f = fa_vectors_open("pld_reference.txt");
    char line[512];
    int rows = 0;
    fa_error err = FA_ERROR_INIT;

    while (fa_vectors_next(f, line, sizeof(line))) {
        double q, sigma, delta, lo, hi, rdp_want, eps, rdp, order;
        long long rounds;
        cr_assert_eq(sscanf(line, "%lf %lf %lld %lf %lf %lf %lf", &q, &sigma, &rounds, &delta, &lo,
                            &hi, &rdp_want),
                     7, "bad line: %s", line);
        cr_assert_leq(lo, hi, "%s", line);
        cr_assert_leq(hi, lo * 1.002 + 1e-12, "reference bracket too wide: %s", line);
        eps = pld_eps(FA_PLD_INTERVAL_AUTO, q, sigma, rounds, delta);
        cr_assert_geq(eps, lo * (1.0 - BELOW_TOL), "%s: %.12g is below the truth", line, eps);
        cr_assert_leq(eps, lo * (1.0 + ABOVE_TOL), "%s: %.12g is over 1%% above the truth", line,
                      eps);
        cr_assert_eq(fa_rdp_epsilon_rounds(&rdp, &order, q, sigma, rounds, delta, &err), FA_OK,
                     "%s", err.msg);
        cr_assert(fabs(rdp - rdp_want) <= 1e-6 * rdp_want, "%s: rdp %.12g", line, rdp);
        cr_assert_leq(eps, rdp, "%s: pld %.12g above rdp %.12g", line, eps, rdp);
        rows++;
    }
    cr_assert_geq(rows, 20);
    fclose(f);
}

/* The team's dp_accounting measurement: 0.550 (RDP 0.956). */
Test(pld, reference_point_of_dp_accounting)
{
    double rdp, order;
    const double eps = pld_eps(FA_PLD_INTERVAL_AUTO, 0.01, 1.1, 100, 1e-5);
    fa_error err = FA_ERROR_INIT;

    cr_assert(eps >= 0.5495 && eps <= 0.5505, "%.6f", eps);
    cr_assert_eq(fa_rdp_epsilon_rounds(&rdp, &order, 0.01, 1.1, 100, 1e-5, &err), FA_OK);
    cr_assert(rdp >= 0.9555 && rdp <= 0.9565, "%.6f", rdp);
}

/*
 * At eps = 0 the hockey-stick divergence is the total variation distance,
 * the same in both directions: q TV(N(1, s^2), N(0, s^2)) = q (2 Phi(1/(2 s)) - 1).
 * Loss 0 is a grid point, where connect-the-dots is exact; epsilon is 0
 * exactly when delta is at least that.
 */
Test(pld, delta_at_zero_is_the_total_variation_distance)
{
    static const double CASES[][2] = {{0.001, 20.0}, {0.003, 1.1}, {0.1, 0.5}, {1.0, 2.0}};
    fa_error err = FA_ERROR_INIT;

    for (size_t c = 0; c < FA_ARRAY_LEN(CASES); c++) {
        const double q = CASES[c][0], sigma = CASES[c][1];
        const double tv = q * (2.0 * exp(log_ndtr(0.5 / sigma)) - 1.0);
        fa_pld *pld = NULL;
        double d0, eps;
        cr_assert_eq(fa_pld_new(&pld, FA_PLD_INTERVAL_AUTO, &err), FA_OK);
        cr_assert_eq(fa_pld_compose_sgm(pld, q, sigma, 1, &err), FA_OK);
        cr_assert_eq(fa_pld_delta(&d0, pld, 0.0, &err), FA_OK);
        cr_assert(d0 >= tv * (1.0 - BELOW_TOL) && d0 <= tv * (1.0 + 1e-9), "q %g s %g: %.15g %.15g",
                  q, sigma, d0, tv);
        cr_assert_eq(fa_pld_epsilon(&eps, pld, tv * (1.0 + 1e-6), &err), FA_OK);
        cr_assert_eq(eps, 0.0, "q %g s %g: %g", q, sigma, eps);
        cr_assert_eq(fa_pld_epsilon(&eps, pld, tv * (1.0 - 1e-3), &err), FA_OK);
        cr_assert_gt(eps, 0.0, "q %g s %g", q, sigma);
        fa_pld_free(pld);
    }
}

/* ---------------------------------------------------------- monotonicity */

Test(pld, epsilon_is_monotone_in_sigma_q_rounds_and_delta)
{
    double prev;

    prev = INFINITY;
    for (double s = 0.5; s <= 20.0; s *= 1.5) {
        const double eps = pld_eps(FA_PLD_INTERVAL_AUTO, 0.01, s, 100, 1e-5);
        cr_assert_leq(eps, prev, "sigma %g", s);
        prev = eps;
    }
    prev = 0.0;
    for (double q = 1e-3; q <= 1.0; q *= 2.0) {
        const double eps = pld_eps(FA_PLD_INTERVAL_AUTO, q, 1.1, 100, 1e-5);
        cr_assert_geq(eps, prev, "q %g", q);
        prev = eps;
    }
    prev = 0.0;
    for (int64_t t = 1; t <= 10000; t = t * 3 + 1) {
        const double eps = pld_eps(FA_PLD_INTERVAL_AUTO, 0.01, 1.1, t, 1e-5);
        cr_assert_geq(eps, prev, "T %lld", (long long)t);
        prev = eps;
    }
    /* One PLD, many deltas: epsilon does not grow as delta does. */
    {
        fa_pld *pld = NULL;
        fa_error err = FA_ERROR_INIT;
        cr_assert_eq(fa_pld_new(&pld, FA_PLD_INTERVAL_AUTO, &err), FA_OK);
        cr_assert_eq(fa_pld_compose_sgm(pld, 0.05, 0.9, 300, &err), FA_OK);
        prev = INFINITY;
        for (double d = 1e-12; d < 0.5; d *= 3.0) {
            double eps, back;
            cr_assert_eq(fa_pld_epsilon(&eps, pld, d, &err), FA_OK);
            cr_assert_leq(eps, prev, "delta %g", d);
            /* delta at that epsilon is delta again (the curve is continuous). */
            cr_assert_eq(fa_pld_delta(&back, pld, eps, &err), FA_OK);
            cr_assert(fabs(back - d) <= 1e-9 * d || (eps == 0.0 && back <= d), "delta %g: %g", d,
                      back);
            prev = eps;
        }
        fa_pld_free(pld);
    }
}

/* ------------------------------------------------------------ composition */

typedef struct setting {
    double q, sigma;
    int64_t count;
} setting;

static fa_pld *compose_all(const setting *s, size_t n, int one_by_one, double interval)
{
    fa_pld *pld = NULL;
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_pld_new(&pld, interval, &err), FA_OK);
    for (size_t i = 0; i < n; i++) {
        for (int64_t c = 0; c < (one_by_one ? s[i].count : 1); c++)
            cr_assert_eq(
                fa_pld_compose_sgm(pld, s[i].q, s[i].sigma, one_by_one ? 1 : s[i].count, &err),
                FA_OK, "%s", err.msg);
    }
    return pld;
}

static int rel_close(double a, double b, double tol)
{
    return fabs(a - b) <= tol * fmax(fabs(a), fabs(b));
}

/*
 * The same rounds composed in batches (count > 1), one by one, or in the
 * reverse order give the same epsilon and delta. On a fixed grid only
 * round-off and the 1e-18 tail cuts differ. In auto mode the grid is
 * refined when a round needs a finer one, and rounds composed before that
 * keep their coarser (still pessimistic) discretisation, so orders differ by
 * a little more.
 */
static void assert_same(fa_pld *a, fa_pld *b, double eps_tol, double delta_tol)
{
    static const double DELTAS[] = {1e-9, 1e-5, 1e-3};
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_pld_interval(a), fa_pld_interval(b));
    for (size_t d = 0; d < FA_ARRAY_LEN(DELTAS); d++) {
        double x, y;
        cr_assert_eq(fa_pld_epsilon(&x, a, DELTAS[d], &err), FA_OK);
        cr_assert_eq(fa_pld_epsilon(&y, b, DELTAS[d], &err), FA_OK);
        cr_assert(rel_close(x, y, eps_tol), "delta %g: %.15g %.15g", DELTAS[d], x, y);
    }
    for (double e = 0.0; e < 4.0; e += 0.5) {
        double x, y;
        cr_assert_eq(fa_pld_delta(&x, a, e, &err), FA_OK);
        cr_assert_eq(fa_pld_delta(&y, b, e, &err), FA_OK);
        /* 1e-14 absolute: FFT round-off in the far tails */
        cr_assert(rel_close(x, y, delta_tol) || fabs(x - y) < 1e-14, "eps %g: %g %g", e, x, y);
    }
}

Test(pld, heterogeneous_rounds_compose_one_by_one_or_in_batches_alike)
{
    static const setting RUN[] = {
        {0.01, 1.1, 8}, {0.1, 2.0, 4}, {1.0, 4.0, 1}, {0.005, 1.1, 4}, {0.01, 1.1, 3},
    };
    static const setting REV[] = {
        {0.01, 1.1, 3}, {0.005, 1.1, 4}, {1.0, 4.0, 1}, {0.1, 2.0, 4}, {0.01, 1.1, 8},
    };
    static const double INTERVALS[] = {0x1p-10, FA_PLD_INTERVAL_AUTO};

    for (size_t i = 0; i < FA_ARRAY_LEN(INTERVALS); i++) {
        const int autogrid = INTERVALS[i] == FA_PLD_INTERVAL_AUTO;
        fa_pld *batch = compose_all(RUN, FA_ARRAY_LEN(RUN), 0, INTERVALS[i]);
        fa_pld *single = compose_all(RUN, FA_ARRAY_LEN(RUN), 1, INTERVALS[i]);
        fa_pld *rev = compose_all(REV, FA_ARRAY_LEN(REV), 1, INTERVALS[i]);
        assert_same(batch, single, autogrid ? 1e-4 : 1e-6, autogrid ? 1e-3 : 1e-6);
        assert_same(batch, rev, autogrid ? 1e-4 : 1e-6, autogrid ? 1e-3 : 1e-6);
        fa_pld_free(batch);
        fa_pld_free(single);
        fa_pld_free(rev);
    }
}

/* Composing a copy leaves the original as it was. */
Test(pld, copy_is_independent)
{
    fa_pld *a = NULL, *b = NULL;
    fa_error err = FA_ERROR_INIT;
    double before, after, copy;

    cr_assert_eq(fa_pld_new(&a, FA_PLD_INTERVAL_AUTO, &err), FA_OK);
    cr_assert_eq(fa_pld_compose_sgm(a, 0.02, 1.0, 50, &err), FA_OK);
    cr_assert_eq(fa_pld_epsilon(&before, a, 1e-6, &err), FA_OK);
    cr_assert_eq(fa_pld_copy(&b, a, &err), FA_OK);
    cr_assert_eq(fa_pld_compose_sgm(b, 0.02, 1.0, 1, &err), FA_OK);
    cr_assert_eq(fa_pld_epsilon(&after, a, 1e-6, &err), FA_OK);
    cr_assert_eq(fa_pld_epsilon(&copy, b, 1e-6, &err), FA_OK);
    cr_assert_eq(before, after);
    cr_assert_gt(copy, before);
    fa_pld_free(a);
    fa_pld_free(b);
}

/* ------------------------------------------------------------ discretisation */

/*
 * Nested grids (h, h/2, h/4, ...): each pessimistic PLD dominates the finer
 * one, so epsilon can only shrink as the grid is refined, and every one stays
 * above the truth (the reference bracket of this case).
 */
Test(pld, finer_grids_give_no_larger_epsilon)
{
    static const double REF_LO = 0.54971582123197926; /* pld_reference.txt, first row */
    double prev = INFINITY;

    for (double h = 0.016; h >= 0.000125; h /= 2.0) {
        const double eps = pld_eps(h, 0.01, 1.1, 100, 1e-5);
        cr_assert_leq(eps, prev * (1.0 + 1e-12), "h %g: %.12g > %.12g", h, eps, prev);
        cr_assert_geq(eps, REF_LO, "h %g: %.12g below the truth", h, eps);
        prev = eps;
    }
    cr_assert_leq(prev, REF_LO * 1.001, "%.12g", prev);
}

/* A spacing that would need more than FA_PLD_MAX_POINTS points is doubled, still an upper bound. */
Test(pld, point_cap_coarsens_the_grid)
{
    fa_pld *pld = NULL;
    fa_error err = FA_ERROR_INIT;
    double eps;

    cr_assert_eq(fa_pld_new(&pld, FA_PLD_INTERVAL_MIN, &err), FA_OK);
    cr_assert_eq(fa_pld_compose_sgm(pld, 1.0, 1.0, 1, &err), FA_OK);
    cr_assert_gt(fa_pld_interval(pld), FA_PLD_INTERVAL_MIN);
    cr_assert_leq(fa_pld_points(pld), FA_PLD_MAX_POINTS);
    cr_assert_eq(fa_pld_epsilon(&eps, pld, 1e-5, &err), FA_OK);
    assert_tight(eps, gaussian_eps(1.0, 1e-5), "capped grid");
    fa_pld_free(pld);
}

/* ------------------------------------------------------------ calibration */

Test(pld, calibration_round_trips_and_needs_less_noise_than_rdp)
{
    static const struct {
        double eps, q;
        int64_t rounds;
        double delta;
    } CASES[] = {{1.0, 0.01, 1000, 1e-5}, {3.0, 1.0, 10, 1e-6}, {0.5, 0.05, 100, 1e-9}};
    fa_error err = FA_ERROR_INIT;

    for (size_t c = 0; c < FA_ARRAY_LEN(CASES); c++) {
        double sigma, eps, rdp_sigma, rdp_eps, order;
        cr_assert_eq(fa_pld_calibrate(&sigma, &eps, CASES[c].eps, CASES[c].q, CASES[c].rounds,
                                      CASES[c].delta, &err),
                     FA_OK, "%s", err.msg);
        cr_assert_leq(eps, CASES[c].eps, "case %zu", c);
        cr_assert_eq(
            eps, pld_eps(FA_PLD_INTERVAL_AUTO, CASES[c].q, sigma, CASES[c].rounds, CASES[c].delta));
        cr_assert_gt(pld_eps(FA_PLD_INTERVAL_AUTO, CASES[c].q, sigma / 1.001, CASES[c].rounds,
                             CASES[c].delta),
                     CASES[c].eps, "case %zu: sigma %g is not the smallest", c, sigma);
        cr_assert_eq(fa_rdp_calibrate(&rdp_sigma, &rdp_eps, &order, CASES[c].eps, CASES[c].q,
                                      CASES[c].rounds, CASES[c].delta, &err),
                     FA_OK);
        cr_assert_lt(sigma, rdp_sigma, "case %zu", c);
    }
}

/* ------------------------------------------------------------ edge cases */

Test(pld, nothing_composed_is_epsilon_zero)
{
    fa_pld *pld = NULL;
    fa_error err = FA_ERROR_INIT;
    double eps = -1.0, delta = -1.0;

    cr_assert_eq(fa_pld_new(&pld, FA_PLD_INTERVAL_AUTO, &err), FA_OK);
    cr_assert_eq(fa_pld_epsilon(&eps, pld, 1e-5, &err), FA_OK);
    cr_assert_eq(fa_pld_delta(&delta, pld, 0.0, &err), FA_OK);
    cr_assert_eq(eps, 0.0);
    cr_assert_eq(delta, 0.0);
    cr_assert_eq(fa_pld_interval(pld), 0.0);
    fa_pld_free(pld);
}

Test(pld, bad_inputs_are_rejected_and_change_nothing)
{
    fa_pld *pld = NULL;
    fa_error err = FA_ERROR_INIT;
    double before, after, out;

    cr_assert_eq(fa_pld_new(&pld, -1.0, &err), FA_EINVAL);
    cr_assert_null(pld);
    cr_assert_eq(fa_pld_new(&pld, 2.0, &err), FA_EINVAL);
    cr_assert_eq(fa_pld_new(&pld, NAN, &err), FA_EINVAL);
    cr_assert_eq(fa_pld_new(&pld, 1e-12, &err), FA_EINVAL);
    cr_assert_eq(fa_pld_new(&pld, FA_PLD_INTERVAL_AUTO, &err), FA_OK);
    cr_assert_eq(fa_pld_compose_sgm(pld, 0.01, 1.0, 10, &err), FA_OK);
    cr_assert_eq(fa_pld_epsilon(&before, pld, 1e-5, &err), FA_OK);
    cr_assert_eq(fa_pld_compose_sgm(pld, 0.0, 1.0, 1, &err), FA_EINVAL);
    cr_assert_eq(fa_pld_compose_sgm(pld, 1.5, 1.0, 1, &err), FA_EINVAL);
    cr_assert_eq(fa_pld_compose_sgm(pld, 0.5, 0.1, 1, &err), FA_EINVAL);
    cr_assert_eq(fa_pld_compose_sgm(pld, 0.5, NAN, 1, &err), FA_EINVAL);
    cr_assert_eq(fa_pld_compose_sgm(pld, 0.5, 1.0, 0, &err), FA_EINVAL);
    cr_assert_eq(fa_pld_epsilon(&after, pld, 1e-5, &err), FA_OK);
    cr_assert_eq(before, after);
    cr_assert_eq(fa_pld_epsilon(&out, pld, 0.0, &err), FA_EINVAL);
    cr_assert_eq(fa_pld_epsilon(&out, pld, 1.0, &err), FA_EINVAL);
    cr_assert_eq(fa_pld_epsilon(&out, pld, NAN, &err), FA_EINVAL);
    cr_assert_eq(fa_pld_delta(&out, pld, -0.1, &err), FA_EINVAL);
    cr_assert_eq(fa_pld_delta(&out, pld, NAN, &err), FA_EINVAL);
    cr_assert_eq(fa_pld_calibrate(&out, &before, 0.0, 0.01, 10, 1e-5, &err), FA_EINVAL);
    fa_pld_free(pld);
    fa_pld_free(NULL);
}
