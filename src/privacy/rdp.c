#include "privacy/rdp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/*
 * References (cited by section and equation beside the code):
 *  [M17]   I. Mironov. Renyi Differential Privacy. CSF 2017.
 *  [MTZ19] I. Mironov, K. Talwar, L. Zhang. Renyi Differential Privacy of the
 *          Sampled Gaussian Mechanism. arXiv:1908.10530, 2019.
 *  [BBG20] B. Balle, G. Barthe, M. Gaboardi, J. Hsu, T. Sato. Hypothesis
 *          Testing Interpretations and Renyi Differential Privacy. AISTATS 2020.
 *  [CKS20] C. Canonne, G. Kamath, T. Steinke. The Discrete Gaussian for
 *          Differential Privacy. NeurIPS 2020.
 *  [AS64]  M. Abramowitz, I. Stegun. Handbook of Mathematical Functions, 1964.
 *
 * Notation of [MTZ19] Sec. 3: mu0 = N(0, sigma^2), mu1 = N(1, sigma^2),
 * mu = (1 - q) mu0 + q mu1 and A_alpha = E_{z ~ mu0}[(mu(z) / mu0(z))^alpha].
 * The RDP of one release at order alpha is log(A_alpha) / (alpha - 1).
 */

#define N_FRAC_ORDERS 99 /* 1.1 .. 10.9 */
#define N_LOW_ORDERS  152

#define LN_HALF    (-0.69314718055994530942)
#define SQRT_2     1.41421356237309504880
#define LN_SQRT_PI 0.57236494292470008707

/* Order above which fa_rdp_sgm_order refuses (bounds its loops). */
#define ALPHA_MAX 10000.0

/* Hard cap on the terms of one fractional-order series (see frac_log_a). */
#define FRAC_MAX_TERMS 20000000L

/* Below this q the fractional series is summed in its "A - 1" form. */
#define Q_MINUS_ONE_FORM 0.25

/* ------------------------------------------------------------- orders */

double fa_rdp_order(size_t i)
{
    static const double HIGH[4] = {128.0, 256.0, 512.0, 1024.0};

    if (i < N_FRAC_ORDERS)
        return (double)(11 + i) / 10.0; /* correctly rounded: the same double everywhere */
    if (i < N_LOW_ORDERS)
        return (double)(i - N_FRAC_ORDERS + 11);
    return HIGH[i - N_LOW_ORDERS];
}

int fa_rdp_order_index(double alpha)
{
    for (size_t i = 0; i < FA_RDP_NUM_ORDERS; i++)
        if (fa_rdp_order(i) == alpha)
            return (int)i;
    return -1;
}

int fa_rdp_check(double q, double sigma, fa_error *err)
{
    if (!isfinite(q) || q < FA_RDP_Q_MIN || q > 1.0)
        return fa_fail(err, FA_EINVAL, "sampling rate %g is outside [%g, 1]", q, FA_RDP_Q_MIN);
    if (!isfinite(sigma) || sigma < FA_RDP_SIGMA_MIN || sigma > FA_RDP_SIGMA_MAX)
        return fa_fail(err, FA_EINVAL, "noise multiplier %g is outside [%g, %g]", sigma,
                       FA_RDP_SIGMA_MIN, FA_RDP_SIGMA_MAX);
    return FA_OK;
}

/* ------------------------------------------------------ special functions */

/*
 * log(erfc(x)) for every finite x. erfc underflows past x ~ 26.5, so beyond
 * x = 25 use the asymptotic expansion [AS64] 7.1.23:
 *   erfc(x) ~ exp(-x^2) / (x sqrt(pi)) * sum_m (-1)^m (2m-1)!! / (2x^2)^m,
 * whose 9 terms are accurate to below 1e-17 relative there.
 */
static double log_erfc(double x)
{
    double y, s = 1.0, t = 1.0;

    if (x < 25.0)
        return log(erfc(x));
    y = 1.0 / (2.0 * x * x);
    for (int m = 1; m <= 8; m++) {
        t *= -(2.0 * m - 1.0) * y;
        s += t;
    }
    return -x * x - log(x) - LN_SQRT_PI + log(s);
}

/* log(Phi(t)), Phi the standard normal CDF; accurate also where Phi ~ 1. */
static double log_ndtr(double t)
{
    if (t > 0.0)
        return log1p(-0.5 * erfc(t / SQRT_2)); /* Phi = 1 - Q(t), Q small */
    return LN_HALF + log_erfc(-t / SQRT_2);
}

/* log(expm1(c)) for c > 0 without overflow. */
static double log_expm1(double c)
{
    if (c > 40.0)
        return c + log1p(-exp(-c));
    return log(expm1(c));
}

/* ------------------------------------------------- scaled signed summation */

/*
 * Sum of signed terms given as (sign, log|term|), kept as S * exp(scale) in
 * long double so terms far beyond the double range (exp(k^2 / 2 sigma^2))
 * neither overflow nor lose the small ones.
 */
typedef struct lsum {
    long double s; /* scaled sum */
    double scale;  /* log of the scale; -INFINITY while empty */
} lsum;

static void lsum_add(lsum *acc, int sign, double log_mag)
{
    if (log_mag == -INFINITY)
        return;
    if (acc->scale == -INFINITY || log_mag > acc->scale + 30.0) {
        /* Rescale so the largest magnitude seen stays near 1. */
        if (acc->scale != -INFINITY)
            acc->s *= expl((long double)(acc->scale - log_mag));
        acc->scale = log_mag;
    }
    acc->s += (long double)sign * expl((long double)(log_mag - acc->scale));
}

/* log(|sum|) and its sign (0 when the sum is zero). */
static double lsum_log(const lsum *acc, int *sign)
{
    if (acc->scale == -INFINITY || acc->s == 0.0L) {
        *sign = 0;
        return -INFINITY;
    }
    *sign = acc->s > 0.0L ? 1 : -1;
    return acc->scale + (double)logl(fabsl(acc->s));
}

/* log(1 + exp(x)): log(A) from log(A - 1). */
static double log1p_exp(double x)
{
    if (x > 40.0)
        return x + log1p(exp(-x));
    return log1p(exp(x));
}

/* --------------------------------------------------------- integer orders */

/*
 * Integer alpha, [MTZ19] Sec. 3.3, binomial expansion of A_alpha:
 *   A_alpha = sum_{k=0}^{alpha} C(alpha, k) (1-q)^(alpha-k) q^k exp((k^2 - k) / (2 sigma^2)).
 * Since sum_k C(alpha, k) (1-q)^(alpha-k) q^k = 1 (binomial theorem), subtract
 * it term by term:
 *   A_alpha - 1 = sum_{k=2}^{alpha} C(alpha, k) (1-q)^(alpha-k) q^k expm1((k^2 - k) / (2 sigma^2)),
 * all terms positive (k = 0, 1 vanish). This keeps full relative precision
 * when A_alpha - 1 is tiny (small q or large sigma), where summing A_alpha
 * itself would cancel. Summed in log space.
 */
static double int_log_a(double q, double sigma, long alpha)
{
    const double lq = log(q), l1q = log1p(-q);
    const double two_s2 = 2.0 * sigma * sigma;
    lsum acc = {0.0L, -INFINITY};
    double lc = log((double)alpha); /* log C(alpha, 1) */
    int sign;

    for (long k = 2; k <= alpha; k++) {
        double c, lt;

        lc += log((double)(alpha - k + 1)) - log((double)k); /* C(a,k) = C(a,k-1) (a-k+1)/k */
        c = (double)(k * k - k) / two_s2;
        lt = lc + (double)k * lq + (double)(alpha - k) * l1q + log_expm1(c);
        lsum_add(&acc, 1, lt);
    }
    return log1p_exp(lsum_log(&acc, &sign));
}

/* ------------------------------------------------------ fractional orders */

/*
 * Fractional alpha, [MTZ19] Sec. 3.3: split the integral at
 *   z0 = sigma^2 log(1/q - 1) + 1/2   (where q mu1/mu0 = 1 - q)
 * and expand each side in a binomial series, A_alpha = A1 + A2, with
 * c(x) = (x^2 - x) / (2 sigma^2), Phi the standard normal CDF, j = alpha - k:
 *   A1 = sum_k C(alpha,k) (1-q)^(alpha-k) q^k exp(c(k)) Phi((z0 - k) / sigma),
 *   A2 = sum_k C(alpha,k) (1-q)^k q^(alpha-k) exp(c(j)) Phi((j - z0) / sigma)
 * (the paper writes Phi(-x) as erfc(x / sqrt2) / 2). For non-integer alpha,
 * C(alpha, k) is positive up to k = ceil(alpha) and then alternates in sign.
 * The series is summed with those signs: the negative terms are subtracted,
 * never added as magnitudes (which overstates A_alpha, by a factor of ten at
 * q 0.5, sigma 3, alpha 1.1).
 *
 * Past k = ceil(alpha) the magnitudes of both series decrease strictly:
 * |C(alpha,k)| does, and with x = (z0 - k) / sigma the derivative in k of
 * (k^2 - 2 k z0) / (2 sigma^2) + log Phi(x) is -(x + phi(x)/Phi(x)) / sigma < 0
 * (likewise for A2). So each is an alternating series whose remainder lies
 * between 0 and its next term. The loop stops right after a term with a
 * positive coefficient once that term is negligible: the truncated sum is
 * then an upper bound of A_alpha, and truncation never understates the
 * privacy loss.
 *
 * For q < 1/2 the plain binomial series sum_k C(alpha,k) (1-q)^(alpha-k) q^k
 * converges to exactly 1. So for q < Q_MINUS_ONE_FORM, where A_alpha - 1 can
 * be tiny and summing A_alpha itself would cancel, A1 - 1 is summed term by
 * term as
 *   sum_k C(alpha,k) (1-q)^(alpha-k) q^k [exp(c(k)) Phi_k - 1],
 * each bracket evaluated as expm1(c(k) + log Phi_k) without cancellation. The
 * stopping rule then also covers the plain binomial tail (its terms decay
 * as (q/(1-q))^k <= 3^-k); cutting that tail is the only error towards a
 * smaller A_alpha, and it is below 1e-14 relative to A_alpha - 1.
 */
static int frac_log_a(double *out, double q, double sigma, double alpha, fa_error *err)
{
    const double lq = log(q), l1q = log1p(-q);
    const double two_s2 = 2.0 * sigma * sigma;
    const double z0 = sigma * sigma * (l1q - lq) + 0.5;
    const int minus_one = q < Q_MINUS_ONE_FORM;
    const long kmin = (long)ceil(alpha) + 1; /* first negative coefficient */
    /* Stop once the next term is below tol times the running sum: the sum is
     * A_alpha - 1 in the "minus one" form, A_alpha >= 1 otherwise. */
    const double tol = minus_one ? 1e-14 : 1e-16;
    lsum acc = {0.0L, -INFINITY};
    double lc = 0.0; /* log |C(alpha, k)| */
    int csign = 1;   /* sign of C(alpha, k) */
    int converged = 0, sign;
    double l;

    for (long k = 0; k < FRAC_MAX_TERMS && !converged; k++) {
        const double kk = (double)k, j = alpha - kk;
        const double lb1 = lc + kk * lq + j * l1q; /* log of |C| (1-q)^(a-k) q^k */
        const double lb2 = lc + kk * l1q + j * lq; /* log of |C| (1-q)^k q^(a-k) */
        const double c1 = (kk * kk - kk) / two_s2;
        const double c2 = (j * j - j) / two_s2;
        const double lphi1 = log_ndtr((z0 - kk) / sigma);
        const double lphi2 = log_ndtr((j - z0) / sigma);
        const double lt1 = lb1 + c1 + lphi1; /* log |A1 term| */
        const double lt2 = lb2 + c2 + lphi2; /* log |A2 term| */
        double bound;                        /* log of the largest piece of this term */

        if (minus_one) {
            const double br = c1 + lphi1; /* bracket = expm1(br) */
            if (br > 0.0)
                lsum_add(&acc, csign, lb1 + log_expm1(br));
            else if (br < 0.0)
                lsum_add(&acc, -csign, lb1 + log(-expm1(br)));
            bound = fmax(fmax(lt1, lb1), lt2);
        } else {
            lsum_add(&acc, csign, lt1);
            bound = fmax(lt1, lt2);
        }
        lsum_add(&acc, csign, lt2);

        if (k >= kmin && csign > 0) {
            l = lsum_log(&acc, &sign);
            converged = sign > 0 && bound < l + log(tol);
        }
        /* C(alpha, k+1) = C(alpha, k) (alpha - k) / (k + 1) */
        lc += log(fabs(alpha - kk)) - log(kk + 1.0);
        if (alpha - kk < 0.0)
            csign = -csign;
    }
    if (!converged)
        return fa_fail(err, FA_EINTERNAL, "rdp series did not converge (q=%g, sigma=%g, alpha=%g)",
                       q, sigma, alpha);
    l = lsum_log(&acc, &sign);
    if (sign <= 0)
        return fa_fail(err, FA_EINTERNAL, "rdp series lost precision (q=%g, sigma=%g, alpha=%g)", q,
                       sigma, alpha);
    *out = minus_one ? log1p_exp(l) : l;
    return FA_OK;
}

/* ------------------------------------------------------------- releases */

int fa_rdp_sgm_order(double *out, double q, double sigma, double alpha, fa_error *err)
{
    double log_a = 0.0;
    int rc;

    *out = 0.0;
    if ((rc = fa_rdp_check(q, sigma, err)) < 0)
        return rc;
    if (!isfinite(alpha) || alpha <= 1.0 || alpha > ALPHA_MAX)
        return fa_fail(err, FA_EINVAL, "order %g is outside (1, %g]", alpha, ALPHA_MAX);
    if (q == 1.0) {
        /* Without sampling: the Gaussian mechanism, [M17] Prop. 7. */
        *out = alpha / (2.0 * sigma * sigma);
        return FA_OK;
    }
    if (alpha == floor(alpha)) {
        log_a = int_log_a(q, sigma, (long)alpha);
    } else if ((rc = frac_log_a(&log_a, q, sigma, alpha, err)) < 0) {
        return rc;
    }
    /* [MTZ19] Sec. 3: RDP at order alpha is log(A_alpha) / (alpha - 1). */
    *out = log_a / (alpha - 1.0);
    if (!(*out >= 0.0) || !isfinite(*out)) {
        *out = 0.0;
        return fa_fail(err, FA_EINTERNAL, "rdp at order %g is not finite (q=%g, sigma=%g)", alpha,
                       q, sigma);
    }
    return FA_OK;
}

int fa_rdp_sgm(double out[FA_RDP_NUM_ORDERS], double q, double sigma, fa_error *err)
{
    int rc;

    for (size_t i = 0; i < FA_RDP_NUM_ORDERS; i++)
        if ((rc = fa_rdp_sgm_order(&out[i], q, sigma, fa_rdp_order(i), err)) < 0)
            return rc;
    return FA_OK;
}

void fa_rdp_add(double acc[FA_RDP_NUM_ORDERS], const double rdp[FA_RDP_NUM_ORDERS], double times)
{
    for (size_t i = 0; i < FA_RDP_NUM_ORDERS; i++)
        acc[i] += times * rdp[i];
}

/* --------------------------------------------------------------- cache */

#define CACHE_SLOTS 8

struct fa_rdp_cache {
    size_t used;               /* slots filled */
    size_t next;               /* slot to replace next (round robin) */
    double q[CACHE_SLOTS];     /* sampling rate of each slot */
    double sigma[CACHE_SLOTS]; /* noise multiplier of each slot */
    double rdp[CACHE_SLOTS][FA_RDP_NUM_ORDERS];
};

int fa_rdp_cache_new(fa_rdp_cache **out, fa_error *err)
{
    *out = calloc(1, sizeof(**out));
    if (*out == NULL)
        return fa_fail(err, FA_ENOMEM, "out of memory for the rdp cache");
    return FA_OK;
}

void fa_rdp_cache_free(fa_rdp_cache *cache)
{
    free(cache);
}

void fa_rdp_cache_assign(fa_rdp_cache *dst, const fa_rdp_cache *src)
{
    *dst = *src;
}

int fa_rdp_sgm_cached(const double **out, fa_rdp_cache *cache, double q, double sigma,
                      fa_error *err)
{
    size_t slot;
    int rc;

    *out = NULL;
    for (size_t i = 0; i < cache->used; i++) {
        if (cache->q[i] == q && cache->sigma[i] == sigma) {
            *out = cache->rdp[i];
            return FA_OK;
        }
    }
    slot = cache->used < CACHE_SLOTS ? cache->used++ : cache->next;
    cache->next = (slot + 1) % CACHE_SLOTS;
    cache->q[slot] = NAN; /* invalid until filled */
    if ((rc = fa_rdp_sgm(cache->rdp[slot], q, sigma, err)) < 0)
        return rc;
    cache->q[slot] = q;
    cache->sigma[slot] = sigma;
    *out = cache->rdp[slot];
    return FA_OK;
}

int fa_rdp_compose(double acc[FA_RDP_NUM_ORDERS], const fa_rdp_release *releases, size_t n,
                   fa_error *err)
{
    fa_rdp_cache *cache = NULL;
    const double *one;
    int rc;

    if ((rc = fa_rdp_cache_new(&cache, err)) < 0)
        return rc;
    for (size_t r = 0; r < n; r++) {
        if ((rc = fa_rdp_sgm_cached(&one, cache, releases[r].q, releases[r].sigma, err)) < 0)
            goto cleanup;
        fa_rdp_add(acc, one, 1.0);
    }
cleanup:
    fa_rdp_cache_free(cache);
    return rc;
}

/* ------------------------------------------------------------ conversion */

int fa_rdp_epsilon(double *eps_out, double *order_out, const double rdp[FA_RDP_NUM_ORDERS],
                   double delta, fa_error *err)
{
    double best = INFINITY, best_order = 0.0;
    int any = 0;

    *eps_out = 0.0;
    *order_out = 0.0;
    if (!isfinite(delta) || delta <= 0.0 || delta >= 1.0)
        return fa_fail(err, FA_EINVAL, "delta %g is outside (0, 1)", delta);
    for (size_t i = 0; i < FA_RDP_NUM_ORDERS; i++) {
        if (!isfinite(rdp[i]) || rdp[i] < 0.0)
            return fa_fail(err, FA_EINVAL, "rdp at order %g is %g", fa_rdp_order(i), rdp[i]);
        any |= rdp[i] > 0.0;
    }
    if (!any)
        return FA_OK; /* nothing released: the output is independent of the data */
    for (size_t i = 0; i < FA_RDP_NUM_ORDERS; i++) {
        const double a = fa_rdp_order(i);
        /*
         * [BBG20] Theorem 21, [CKS20] Proposition 12:
         *   eps = rdp(a) + log((a - 1) / a) - (log(delta) + log(a)) / (a - 1).
         */
        const double eps = rdp[i] + log1p(-1.0 / a) - (log(delta) + log(a)) / (a - 1.0);
        if (eps < best) {
            best = eps;
            best_order = a;
        }
    }
    *eps_out = fmax(best, 0.0);
    *order_out = best_order;
    return FA_OK;
}

int fa_rdp_epsilon_rounds(double *eps_out, double *order_out, double q, double sigma,
                          int64_t rounds, double delta, fa_error *err)
{
    double one[FA_RDP_NUM_ORDERS];
    double acc[FA_RDP_NUM_ORDERS] = {0};
    int rc;

    *eps_out = 0.0;
    *order_out = 0.0;
    if (rounds < 1 || rounds > FA_RDP_ROUNDS_MAX)
        return fa_fail(err, FA_EINVAL, "rounds %lld is outside [1, %d]", (long long)rounds,
                       FA_RDP_ROUNDS_MAX);
    if ((rc = fa_rdp_sgm(one, q, sigma, err)) < 0)
        return rc;
    fa_rdp_add(acc, one, (double)rounds);
    return fa_rdp_epsilon(eps_out, order_out, acc, delta, err);
}

/* ------------------------------------------------------------ calibration */

/* x rounded up to 6 significant digits (x > 0). */
static double round_up_6(double x)
{
    const double scale = pow(10.0, 5.0 - floor(log10(x)));

    return ceil(x * scale) / scale;
}

int fa_rdp_calibrate(double *sigma_out, double *eps_out, double *order_out, double target_eps,
                     double q, int64_t rounds, double delta, fa_error *err)
{
    double lo = FA_RDP_SIGMA_MIN, hi = FA_RDP_SIGMA_MAX;
    double eps, order, sigma;
    int rc;

    *sigma_out = 0.0;
    *eps_out = 0.0;
    *order_out = 0.0;
    if (!isfinite(target_eps) || target_eps <= 0.0)
        return fa_fail(err, FA_EINVAL, "target epsilon %g is not positive", target_eps);
    if ((rc = fa_rdp_check(q, lo, err)) < 0)
        return rc;
    if ((rc = fa_rdp_epsilon_rounds(&eps, &order, q, hi, rounds, delta, err)) < 0)
        return rc;
    if (eps > target_eps)
        return fa_fail(err, FA_EINVAL,
                       "epsilon %g needs a noise multiplier above %g (which gives %g)", target_eps,
                       FA_RDP_SIGMA_MAX, eps);
    if ((rc = fa_rdp_epsilon_rounds(&eps, &order, q, lo, rounds, delta, err)) < 0)
        return rc;
    if (eps <= target_eps) {
        *sigma_out = lo;
        *eps_out = eps;
        *order_out = order;
        return FA_OK;
    }
    /*
     * Invariant: eps(lo) > target >= eps(hi); epsilon does not increase with
     * sigma. Bisect in log(sigma) until hi/lo <= 1.0009, which leaves room for
     * rounding hi up to 6 digits (< 1e-5 relative) within the promised 0.1%.
     */
    while (hi / lo > 1.0009) {
        const double mid = sqrt(lo * hi);
        if ((rc = fa_rdp_epsilon_rounds(&eps, &order, q, mid, rounds, delta, err)) < 0)
            return rc;
        if (eps <= target_eps)
            hi = mid;
        else
            lo = mid;
    }
    sigma = fmin(round_up_6(hi), FA_RDP_SIGMA_MAX);
    if ((rc = fa_rdp_epsilon_rounds(&eps, &order, q, sigma, rounds, delta, err)) < 0)
        return rc;
    if (eps > target_eps || sigma < hi) {
        sigma = hi; /* rounding went the wrong way by an ulp: report hi unrounded */
        if ((rc = fa_rdp_epsilon_rounds(&eps, &order, q, sigma, rounds, delta, err)) < 0)
            return rc;
    }
    *sigma_out = sigma;
    *eps_out = eps;
    *order_out = order;
    return FA_OK;
}
