#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "privacy/rdp.h"
#include "vectors.h"

static int rel_close(double a, double b, double tol)
{
    return fabs(a - b) <= tol * fmax(fabs(a), fabs(b));
}

/* ------------------------------------------------------------------ orders */

Test(rdp, orders_are_the_fixed_set)
{
    cr_assert_eq(FA_RDP_NUM_ORDERS, 156);
    cr_assert_eq(fa_rdp_order(0), 1.1);
    cr_assert_eq(fa_rdp_order(4), 1.5);
    cr_assert_eq(fa_rdp_order(9), 2.0);
    cr_assert_eq(fa_rdp_order(98), 10.9);
    cr_assert_eq(fa_rdp_order(99), 11.0);
    cr_assert_eq(fa_rdp_order(151), 63.0);
    cr_assert_eq(fa_rdp_order(152), 128.0);
    cr_assert_eq(fa_rdp_order(155), 1024.0);
    for (size_t i = 0; i < FA_RDP_NUM_ORDERS; i++) {
        if (i > 0)
            cr_assert_gt(fa_rdp_order(i), fa_rdp_order(i - 1));
        cr_assert_eq(fa_rdp_order_index(fa_rdp_order(i)), (int)i);
    }
    cr_assert_eq(fa_rdp_order_index(1.0), -1);
    cr_assert_eq(fa_rdp_order_index(64.0), -1);
}

/* ------------------------------------------------------------ closed form */

Test(rdp, without_sampling_t_rounds_give_t_alpha_over_2_sigma_squared)
{
    static const double SIGMAS[] = {0.3, 1.0, 1.1, 7.0, 100.0};
    static const size_t ROUNDS[] = {1, 10, 1000, 100000};
    fa_rdp_release *rel = malloc(100000 * sizeof(*rel));
    fa_error err = FA_ERROR_INIT;

    cr_assert_not_null(rel);
    for (size_t s = 0; s < sizeof(SIGMAS) / sizeof(SIGMAS[0]); s++) {
        for (size_t t = 0; t < sizeof(ROUNDS) / sizeof(ROUNDS[0]); t++) {
            double acc[FA_RDP_NUM_ORDERS] = {0};
            for (size_t r = 0; r < ROUNDS[t]; r++)
                rel[r] = (fa_rdp_release){1.0, SIGMAS[s]};
            cr_assert_eq(fa_rdp_compose(acc, rel, ROUNDS[t], &err), FA_OK, "%s", err.msg);
            for (size_t i = 0; i < FA_RDP_NUM_ORDERS; i++) {
                const double a = fa_rdp_order(i);
                const double want = (double)ROUNDS[t] * a / (2.0 * SIGMAS[s] * SIGMAS[s]);
                cr_assert(rel_close(acc[i], want, 1e-10), "sigma %g T %zu order %g: %.17g vs %.17g",
                          SIGMAS[s], ROUNDS[t], a, acc[i], want);
            }
        }
    }
    free(rel);
}

/* ------------------------------------------------------------ integer orders */

Test(rdp, integer_orders_match_exact_decimal_sums)
{
    FILE *f = fa_vectors_open("rdp_integer.txt");
    char line[256];
    int rows = 0;
    fa_error err = FA_ERROR_INIT;

    while (fa_vectors_next(f, line, sizeof(line))) {
        double q, sigma, alpha, want, got;
        cr_assert_eq(sscanf(line, "%lf %lf %lf %lf", &q, &sigma, &alpha, &want), 4);
        cr_assert_eq(fa_rdp_sgm_order(&got, q, sigma, alpha, &err), FA_OK, "%s", err.msg);
        /* Required 1e-6; the log-space expm1 sum achieves ~1e-13. */
        cr_assert(rel_close(got, want, 1e-9), "q %g sigma %g alpha %g: %.17g vs %.17g", q, sigma,
                  alpha, got, want);
        rows++;
    }
    cr_assert_geq(rows, 200);
    fclose(f);
}

/*
 * A second, in-test check of integer orders: the binomial sum of [MTZ19]
 * Sec. 3.3 directly in long double (64-bit mantissa), for cases where A - 1
 * is not tiny, so the direct sum keeps its precision.
 */
Test(rdp, integer_orders_match_a_long_double_binomial_sum)
{
    static const double QS[] = {0.01, 0.1, 0.5, 0.9};
    static const double SIGMAS[] = {0.7, 1.1, 3.0};
    static const int ALPHAS[] = {2, 5, 12, 40};
    fa_error err = FA_ERROR_INIT;

    for (size_t a = 0; a < 4; a++)
        for (size_t b = 0; b < 3; b++)
            for (size_t c = 0; c < 4; c++) {
                const long double q = QS[a], s = SIGMAS[b];
                const int al = ALPHAS[c];
                long double sum = 0.0L, binom = 1.0L;
                double got, want;
                for (int k = 0; k <= al; k++) {
                    if (k > 0)
                        binom = binom * (long double)(al - k + 1) / (long double)k;
                    sum += binom * powl(1.0L - q, (long double)(al - k)) * powl(q, (long double)k) *
                           expl((long double)(k * k - k) / (2.0L * s * s));
                }
                want = (double)(logl(sum) / (long double)(al - 1));
                cr_assert_eq(fa_rdp_sgm_order(&got, QS[a], SIGMAS[b], al, &err), FA_OK);
                cr_assert(rel_close(got, want, 1e-9), "q %g s %g a %d: %.17g vs %.17g", QS[a],
                          SIGMAS[b], al, got, want);
            }
}

/* --------------------------------------------------------- fractional orders */

/*
 * A_alpha = E_{z ~ N(0, s^2)}[((1 - q) + q mu1(z)/mu0(z))^alpha], with
 * mu1/mu0 = exp((2z - 1)/(2 s^2)) ([MTZ19] Sec. 3), by composite Simpson in
 * long double over [-40s - 1, alpha + 40s + 1] (the integrand is a mixture
 * of Gaussians centred at 0 and alpha, width s), log-space integrand.
 */
static double rdp_by_integration(double q, double sigma, double alpha)
{
    const int n = 40000; /* intervals, even */
    const long double s = sigma, lq = logl(q), l1q = log1pl(-q);
    const long double lo = -40.0L * s - 1.0L, hi = alpha + 40.0L * s + 1.0L;
    const long double h = (hi - lo) / n;
    const long double lnorm = -logl(s * sqrtl(2.0L * 3.14159265358979323846264338327950288L));
    long double sum = 0.0L, peak = -INFINITY;

    /* Two passes: the peak of the log-integrand first, so the sum cannot overflow. */
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i <= n; i++) {
            const long double z = lo + h * i;
            const long double t = (2.0L * z - 1.0L) / (2.0L * s * s);
            const long double a = l1q, b = lq + t; /* log(1-q), log(q mu1/mu0) */
            const long double lmix = fmaxl(a, b) + log1pl(expl(-fabsl(a - b)));
            const long double lf = lnorm - z * z / (2.0L * s * s) + alpha * lmix;
            if (pass == 0) {
                peak = fmaxl(peak, lf);
                continue;
            }
            sum += ((i == 0 || i == n) ? 1.0L : (i % 2 ? 4.0L : 2.0L)) * expl(lf - peak);
        }
    }
    return (double)((peak + logl(sum * h / 3.0L)) / (alpha - 1.0L));
}

Test(rdp, fractional_orders_match_numerical_integration, .timeout = 120)
{
    static const double QS[] = {0.01, 0.1, 0.3, 0.5, 0.9};
    static const double SIGMAS[] = {0.3, 0.8, 1.1, 4.0};
    static const double ALPHAS[] = {1.1, 1.5, 2.5, 4.3, 7.7, 10.9};
    fa_error err = FA_ERROR_INIT;

    for (size_t a = 0; a < 5; a++)
        for (size_t b = 0; b < 4; b++)
            for (size_t c = 0; c < 6; c++) {
                double got;
                const double want = rdp_by_integration(QS[a], SIGMAS[b], ALPHAS[c]);
                cr_assert_eq(fa_rdp_sgm_order(&got, QS[a], SIGMAS[b], ALPHAS[c], &err), FA_OK, "%s",
                             err.msg);
                cr_assert(rel_close(got, want, 1e-6),
                          "q %g s %g a %g: series %.17g, integral %.17g", QS[a], SIGMAS[b],
                          ALPHAS[c], got, want);
            }
}

Test(rdp, fractional_orders_match_the_integration_vectors)
{
    FILE *f = fa_vectors_open("rdp_fractional.txt");
    char line[256];
    int rows = 0;
    fa_error err = FA_ERROR_INIT;

    while (fa_vectors_next(f, line, sizeof(line))) {
        double q, sigma, alpha, want, got;
        cr_assert_eq(sscanf(line, "%lf %lf %lf %lf", &q, &sigma, &alpha, &want), 4);
        cr_assert_eq(fa_rdp_sgm_order(&got, q, sigma, alpha, &err), FA_OK, "%s", err.msg);
        cr_assert(rel_close(got, want, 1e-6), "q %g sigma %g alpha %g: %.17g vs %.17g", q, sigma,
                  alpha, got, want);
        rows++;
    }
    cr_assert_geq(rows, 200);
    fclose(f);
}

/*
 * Summing the magnitudes of the alternating terms instead of subtracting the
 * negative ones overstates A_alpha: it gives RDP 0.260 instead of 0.235 at
 * (q 0.5, sigma 1, alpha 1.5) and 0.133 instead of 0.0155 at (0.5, 3, 1.1).
 * The integral pins the signed sum at both.
 */
Test(rdp, negative_terms_are_subtracted)
{
    static const double CASES[2][3] = {{0.5, 1.0, 1.5}, {0.5, 3.0, 1.1}};
    fa_error err = FA_ERROR_INIT;

    for (size_t i = 0; i < 2; i++) {
        double got;
        const double want = rdp_by_integration(CASES[i][0], CASES[i][1], CASES[i][2]);
        cr_assert_eq(fa_rdp_sgm_order(&got, CASES[i][0], CASES[i][1], CASES[i][2], &err), FA_OK);
        cr_assert(rel_close(got, want, 1e-8), "%.17g vs %.17g", got, want);
    }
}

/* ------------------------------------------------------------- stability */

Test(rdp, stable_and_sane_over_the_whole_domain, .timeout = 200)
{
    static const double QS[] = {1e-6, 1e-4, 0.01, 0.1, 0.3, 0.9, 1.0};
    static const double SIGMAS[] = {0.3, 0.5, 1.0, 3.0, 10.0, 30.0, 100.0};
    fa_error err = FA_ERROR_INIT;

    for (size_t a = 0; a < 7; a++)
        for (size_t b = 0; b < 7; b++) {
            double v[FA_RDP_NUM_ORDERS];
            cr_assert_eq(fa_rdp_sgm(v, QS[a], SIGMAS[b], &err), FA_OK, "q %g s %g: %s", QS[a],
                         SIGMAS[b], err.msg);
            for (size_t i = 0; i < FA_RDP_NUM_ORDERS; i++) {
                const double al = fa_rdp_order(i);
                const double full = al / (2.0 * SIGMAS[b] * SIGMAS[b]);
                cr_assert(isfinite(v[i]) && v[i] >= 0.0, "q %g s %g a %g: %g", QS[a], SIGMAS[b], al,
                          v[i]);
                /* Sampling never hurts (quasi-convexity of Renyi divergence). */
                cr_assert_leq(v[i], full * (1.0 + 1e-9), "q %g s %g a %g: %g > %g", QS[a],
                              SIGMAS[b], al, v[i], full);
                /* RDP does not decrease with the order. */
                if (i > 0)
                    cr_assert_geq(v[i], v[i - 1] * (1.0 - 1e-9), "q %g s %g a %g", QS[a], SIGMAS[b],
                                  al);
            }
        }
}

Test(rdp, sampling_rate_one_half_at_large_sigma_converges)
{
    double v;
    fa_error err = FA_ERROR_INIT;

    /* The slowest series of the domain (polynomial decay): must still finish. */
    cr_assert_eq(fa_rdp_sgm_order(&v, 0.5, 100.0, 1.1, &err), FA_OK, "%s", err.msg);
    cr_assert(rel_close(v, 1.1 * 0.25 / (2.0 * 100.0 * 100.0), 0.01), "%g", v);
}

/* ---------------------------------------------------------- composition */

Test(rdp, composition_of_mixed_releases_adds_their_vectors)
{
    const fa_rdp_release rel[5] = {{0.01, 1.1}, {0.01, 1.1}, {1.0, 2.0}, {0.3, 0.8}, {0.01, 1.1}};
    double acc[FA_RDP_NUM_ORDERS] = {0}, want[FA_RDP_NUM_ORDERS] = {0};
    fa_error err = FA_ERROR_INIT;

    for (size_t r = 0; r < 5; r++) {
        double one[FA_RDP_NUM_ORDERS];
        cr_assert_eq(fa_rdp_sgm(one, rel[r].q, rel[r].sigma, &err), FA_OK);
        fa_rdp_add(want, one, 1.0);
    }
    cr_assert_eq(fa_rdp_compose(acc, rel, 5, &err), FA_OK);
    for (size_t i = 0; i < FA_RDP_NUM_ORDERS; i++)
        cr_assert_eq(acc[i], want[i]);
}

Test(rdp, a_hundred_thousand_rounds_of_two_settings)
{
    const size_t n = 100000;
    fa_rdp_release *rel = malloc(n * sizeof(*rel));
    double acc[FA_RDP_NUM_ORDERS] = {0}, a[FA_RDP_NUM_ORDERS], b[FA_RDP_NUM_ORDERS];
    double eps, order;
    fa_error err = FA_ERROR_INIT;

    cr_assert_not_null(rel);
    for (size_t r = 0; r < n; r++)
        rel[r] = r % 4 == 0 ? (fa_rdp_release){1e-4, 0.9} : (fa_rdp_release){1e-3, 2.5};
    cr_assert_eq(fa_rdp_compose(acc, rel, n, &err), FA_OK);
    cr_assert_eq(fa_rdp_sgm(a, 1e-4, 0.9, &err), FA_OK);
    cr_assert_eq(fa_rdp_sgm(b, 1e-3, 2.5, &err), FA_OK);
    for (size_t i = 0; i < FA_RDP_NUM_ORDERS; i++)
        cr_assert(rel_close(acc[i], 25000.0 * a[i] + 75000.0 * b[i], 1e-9));
    cr_assert_eq(fa_rdp_epsilon(&eps, &order, acc, 1e-6, &err), FA_OK);
    cr_assert(isfinite(eps) && eps > 0.0);
    free(rel);
}

/* ------------------------------------------------------------ conversion */

Test(rdp, epsilon_matches_the_independent_vectors)
{
    FILE *f = fa_vectors_open("rdp_epsilon.txt");
    char line[256];
    int rows = 0;
    fa_error err = FA_ERROR_INIT;

    while (fa_vectors_next(f, line, sizeof(line))) {
        double q, sigma, delta, want_eps, want_order, eps, order;
        long long rounds;
        cr_assert_eq(sscanf(line, "%lf %lf %lld %lf %lf %lf", &q, &sigma, &rounds, &delta,
                            &want_eps, &want_order),
                     6);
        cr_assert_eq(fa_rdp_epsilon_rounds(&eps, &order, q, sigma, rounds, delta, &err), FA_OK);
        cr_assert(rel_close(eps, want_eps, 1e-6), "%s: %.17g", line, eps);
        cr_assert_eq(order, want_order, "%s: order %g", line, order);
        rows++;
    }
    cr_assert_eq(rows, 4);
    fclose(f);
}

Test(rdp, dp_sgd_reference_numbers)
{
    double eps, order;
    fa_error err = FA_ERROR_INIT;

    /* MNIST DP-SGD as usually quoted: sigma 1.1, batch 256 of 60000, 60 epochs.
     * The classic conversion gives ~3.0 here; the improved one ~2.6. */
    cr_assert_eq(fa_rdp_epsilon_rounds(&eps, &order, 256.0 / 60000.0, 1.1, 14062, 1e-5, &err),
                 FA_OK);
    cr_assert(eps > 2.55 && eps < 2.65, "%g", eps);
    /* sigma 1.1, q 0.01, 10000 rounds. */
    cr_assert_eq(fa_rdp_epsilon_rounds(&eps, &order, 0.01, 1.1, 10000, 1e-5, &err), FA_OK);
    cr_assert(eps > 5.6 && eps < 5.7, "%g", eps);
}

Test(rdp, epsilon_grows_with_rounds_and_shrinks_with_sigma)
{
    double prev = 0.0, eps, order;
    fa_error err = FA_ERROR_INIT;

    for (int64_t t = 1; t <= 100000; t = t * 3 + 1) {
        cr_assert_eq(fa_rdp_epsilon_rounds(&eps, &order, 0.01, 1.0, t, 1e-5, &err), FA_OK);
        cr_assert_geq(eps, prev, "T %lld", (long long)t);
        prev = eps;
    }
    prev = INFINITY;
    for (double s = 0.3; s <= 100.0; s *= 1.25) {
        cr_assert_eq(fa_rdp_epsilon_rounds(&eps, &order, 0.05, s, 1000, 1e-5, &err), FA_OK);
        cr_assert_leq(eps, prev, "sigma %g", s);
        prev = eps;
    }
}

Test(rdp, nothing_released_is_epsilon_zero)
{
    const double zero[FA_RDP_NUM_ORDERS] = {0};
    double eps = -1.0, order = -1.0;
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_rdp_epsilon(&eps, &order, zero, 1e-5, &err), FA_OK);
    cr_assert_eq(eps, 0.0);
    cr_assert_eq(order, 0.0);
}

Test(rdp, bad_inputs_are_rejected)
{
    double v[FA_RDP_NUM_ORDERS] = {0}, eps, order, out;
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_rdp_sgm(v, 0.0, 1.0, &err), FA_EINVAL);
    cr_assert_eq(fa_rdp_sgm(v, 1e-7, 1.0, &err), FA_EINVAL);
    cr_assert_eq(fa_rdp_sgm(v, 1.5, 1.0, &err), FA_EINVAL);
    cr_assert_eq(fa_rdp_sgm(v, NAN, 1.0, &err), FA_EINVAL);
    cr_assert_eq(fa_rdp_sgm(v, 0.5, 0.29, &err), FA_EINVAL);
    cr_assert_eq(fa_rdp_sgm(v, 0.5, 101.0, &err), FA_EINVAL);
    cr_assert_eq(fa_rdp_sgm(v, 0.5, INFINITY, &err), FA_EINVAL);
    cr_assert_eq(fa_rdp_sgm_order(&out, 0.5, 1.0, 1.0, &err), FA_EINVAL);
    cr_assert_eq(fa_rdp_epsilon(&eps, &order, v, 0.0, &err), FA_EINVAL);
    cr_assert_eq(fa_rdp_epsilon(&eps, &order, v, 1.0, &err), FA_EINVAL);
    v[3] = -1.0;
    cr_assert_eq(fa_rdp_epsilon(&eps, &order, v, 1e-5, &err), FA_EINVAL);
    v[3] = NAN;
    cr_assert_eq(fa_rdp_epsilon(&eps, &order, v, 1e-5, &err), FA_EINVAL);
    cr_assert_eq(fa_rdp_epsilon_rounds(&eps, &order, 0.5, 1.0, 0, 1e-5, &err), FA_EINVAL);
}

/* ------------------------------------------------------------ calibration */

Test(rdp, calibration_round_trips, .timeout = 120)
{
    static const struct {
        double eps, q;
        int64_t rounds;
        double delta;
    } CASES[] = {
        {3.0, 0.01, 10000, 1e-5}, {1.0, 1.0, 1, 1e-6},     {8.0, 0.001, 100000, 1e-6},
        {0.5, 0.05, 100, 1e-5},   {10.0, 1.0, 1000, 1e-5},
    };
    fa_error err = FA_ERROR_INIT;

    for (size_t c = 0; c < sizeof(CASES) / sizeof(CASES[0]); c++) {
        double sigma, eps, order, e2, o2, lower;
        cr_assert_eq(fa_rdp_calibrate(&sigma, &eps, &order, CASES[c].eps, CASES[c].q,
                                      CASES[c].rounds, CASES[c].delta, &err),
                     FA_OK, "%s", err.msg);
        cr_assert_leq(eps, CASES[c].eps, "case %zu", c);
        cr_assert_eq(fa_rdp_epsilon_rounds(&e2, &o2, CASES[c].q, sigma, CASES[c].rounds,
                                           CASES[c].delta, &err),
                     FA_OK);
        cr_assert_eq(e2, eps);
        cr_assert_eq(o2, order);
        /* Smallest to within 0.1%: slightly less noise overshoots the target. */
        cr_assert_eq(fa_rdp_epsilon_rounds(&lower, &o2, CASES[c].q, sigma / 1.001, CASES[c].rounds,
                                           CASES[c].delta, &err),
                     FA_OK);
        cr_assert_gt(lower, CASES[c].eps, "case %zu: sigma %g is not the smallest", c, sigma);
    }
}

Test(rdp, calibration_reports_targets_out_of_reach)
{
    double sigma, eps, order;
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_rdp_calibrate(&sigma, &eps, &order, 1e-6, 1.0, 100, 1e-5, &err), FA_EINVAL);
    cr_assert_eq(fa_rdp_calibrate(&sigma, &eps, &order, 0.0, 1.0, 100, 1e-5, &err), FA_EINVAL);
    /* A target met by the least noise allowed returns that least noise. */
    cr_assert_eq(fa_rdp_calibrate(&sigma, &eps, &order, 1e6, 1e-3, 1, 1e-5, &err), FA_OK);
    cr_assert_eq(sigma, FA_RDP_SIGMA_MIN);
}
