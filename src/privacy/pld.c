#include "privacy/pld.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "privacy/rdp.h"

/*
 * References (cited beside the code):
 *  [GPLD]   Google differential privacy team. Privacy Loss Distributions:
 *           the notes behind dp_accounting, github.com/google/
 *           differential-privacy, common_docs/Privacy_Loss_Distributions.pdf.
 *  [SMM19]  D. Sommer, S. Meiser, E. Mohammadi. Privacy Loss Classes: The
 *           Central Limit Theorem in Differential Privacy. PoPETs 2019.
 *  [KJH20]  A. Koskela, J. Jalko, A. Honkela. Computing Tight Differential
 *           Privacy Guarantees Using FFT. AISTATS 2020, arXiv:1906.03049.
 *  [KJPH20] A. Koskela, J. Jalko, L. Prediger, A. Honkela. Tight Approximate
 *           Differential Privacy for Discrete-Valued Mechanisms Using FFT.
 *           arXiv:2006.07134, 2020.
 *  [DGKKM22] V. Doroshenko, B. Ghazi, P. Kamath, R. Kumar, P. Manurangsi.
 *           Connect the Dots: Tighter Discrete Approximations of Privacy Loss
 *           Distributions. PoPETs 2022, arXiv:2207.04380.
 *  [ZDW22]  Y. Zhu, J. Dong, Y.-X. Wang. Optimal Accounting of Differential
 *           Privacy via Characteristic Function. AISTATS 2022,
 *           arXiv:2106.08567.
 *  [MTZ19]  I. Mironov, K. Talwar, L. Zhang. Renyi Differential Privacy of
 *           the Sampled Gaussian Mechanism. arXiv:1908.10530, 2019.
 *  [AS64]   M. Abramowitz, I. Stegun. Handbook of Mathematical Functions.
 *
 * Notation. A pair of output distributions (P, Q) has privacy loss
 * L(o) = log(P(o) / Q(o)) and privacy loss distribution (PLD) the law of L
 * under o ~ P ([GPLD] Definition 1). Its hockey-stick divergence is
 *   delta(eps) = E_{o~P}[(1 - exp(eps - L))_+]
 * ([GPLD] Observation 2, from [SMM19] and [KJH20]), where L = +infinity
 * (P > 0 = Q) counts fully. The PLD of a product of pairs is the
 * convolution of their PLDs ([GPLD] Observation 3, from [SMM19]), and
 * dominating pairs compose that way under adaptive composition too
 * ([ZDW22]). Under add/remove adjacency a mechanism with dominating pair
 * (P, Q) is (eps, delta)-DP for delta = max(D_eps(P||Q), D_eps(Q||P))
 * ([GPLD] Sec. 2).
 *
 * One round, sensitivity 1, noise N(0, sigma^2), Poisson rate q: with
 * A = (1 - q) N(0, s^2) + q N(1, s^2) the output with the user and
 * B = N(0, s^2) without ([MTZ19] Sec. 3), the "remove" direction is the PLD
 * of (A, B) and the "add" direction that of (B, A): the dominating pairs of
 * Poisson subsampling ([ZDW22] Theorem 11; [GPLD] Sec. 5.1, whose L^q_rem
 * and L^q_add these are, up to the sign of x). With
 * t(x) = (2x - 1) / (2 sigma^2), the ratio N(1, s^2) / N(0, s^2) at x is
 * exp(t), so
 *   remove: L(x) =  log(1 - q + q exp(t(x))),  x ~ A,
 *   add:    L(x) = -log(1 - q + q exp(t(x))),  x ~ B,
 * both monotone in x. Epsilon is the larger of the two directions'.
 *
 * A direction is held as masses p[i] at losses (lo + i) h plus a mass at
 * +infinity. Every approximation moves P-mass towards larger losses or to
 * infinity, or splits it by connect-the-dots, so each computed delta(eps)
 * is at least the true one.
 */

#define TAIL_SIGMAS 10.0 /* x beyond 10 sigma of either mean: mass 7.6e-24 per tail */
#define PIECE       0.25 /* Gauss-Legendre piece width, in units of sigma */
#define LN_2PI_HALF 0.91893853320467274178 /* log(sqrt(2 pi)) */

enum { REMOVE = 0, ADD = 1, NDIR = 2 };

/* ------------------------------------------------------------ one direction */

/*
 * Chernoff exponents lam_j = 2^(j - 8) per nat. Each direction carries
 * upper bounds on its log moment generating function at +-lam_j, updated
 * exactly under convolution (they add) and pessimistically by every other
 * step. Tail windows are computed from these bounds, never from the masses
 * an FFT returns, whose far tails are round-off noise (~1e-16 of the
 * largest mass) that would otherwise inflate the windows and the mass
 * moved to infinity.
 */
#define NLAM 41

typedef struct dist {
    int64_t lo;         /* grid index of p[0]; p[i] sits at loss (lo + i) * h */
    size_t n;           /* points held */
    double *p;          /* P-mass per point */
    double inf;         /* P-mass at loss +infinity */
    double lm_up[NLAM]; /* >= log sum_i p_i exp(+lam_j l_i) */
    double lm_dn[NLAM]; /* >= log sum_i p_i exp(-lam_j l_i) */
} dist;

struct fa_pld {
    double h;         /* grid spacing, nats (0: auto mode, nothing composed yet) */
    int autogrid;     /* 1: spacing chosen per round */
    dist d[NDIR];     /* remove, add */
    int64_t composed; /* rounds composed so far */
    /*
     * The last round discretised, reused while (q, sigma, h) repeat: a server
     * composes the same setting round after round, and discretising costs
     * more than convolving. memo_h == 0: empty.
     */
    double memo_q, memo_sigma; /* its setting */
    double memo_sd;            /* sd of its privacy loss, nats (the smaller direction's) */
    double memo_h;             /* the spacing memo[] is on, nats */
    dist memo[NDIR];           /* its pessimistic PLD, with log-MGF bounds */
};

static double lam(int j)
{
    return ldexp(1.0, j - 8);
}

static double log_add_exp(double a, double b)
{
    if (a == -INFINITY)
        return b;
    if (b == -INFINITY)
        return a;
    return fmax(a, b) + log1p(exp(-fabs(a - b)));
}

static int nomem(fa_error *err, size_t points)
{
    return fa_fail(err, FA_ENOMEM, "out of memory for a privacy loss distribution of %zu points",
                   points);
}

static void dist_done(dist *d)
{
    free(d->p);
    memset(d, 0, sizeof(*d));
}

static int dist_alloc(dist *d, int64_t lo, size_t n, fa_error *err)
{
    memset(d, 0, sizeof(*d));
    d->lo = lo;
    d->n = n;
    d->p = calloc(n, sizeof(double));
    if (d->p == NULL)
        return nomem(err, n);
    return FA_OK;
}

/* The PLD of releasing nothing: all mass at loss 0 (every log-MGF is 0). */
static int dist_identity(dist *d, fa_error *err)
{
    int rc;

    if ((rc = dist_alloc(d, 0, 1, err)) < 0)
        return rc;
    d->p[0] = 1.0;
    return FA_OK;
}

static int dist_copy(dist *out, const dist *d, fa_error *err)
{
    double *p = malloc(d->n * sizeof(double));

    if (p == NULL)
        return nomem(err, d->n);
    memcpy(p, d->p, d->n * sizeof(double));
    *out = *d;
    out->p = p;
    return FA_OK;
}

/* The log-MGF bounds of d's own masses (summed from the end where terms are largest). */
static void dist_set_lmgf(dist *d, double h)
{
    for (int j = 0; j < NLAM; j++) {
        const double r = exp(-lam(j) * h);
        double up = 0.0, dn = 0.0, w = 1.0;
        for (size_t i = d->n; i-- > 0 && w > 1e-300; w *= r)
            up += d->p[i] * w;
        w = 1.0;
        for (size_t i = 0; i < d->n && w > 1e-300; i++, w *= r)
            dn += d->p[i] * w;
        d->lm_up[j] = lam(j) * (double)(d->lo + (int64_t)d->n - 1) * h + log(up);
        d->lm_dn[j] = -lam(j) * (double)d->lo * h + log(dn);
    }
}

/* Records extra mass, at a loss at most l_up and at least l_dn, in the log-MGF bounds. */
static void dist_lmgf_add(dist *d, double mass, double l_up, double l_dn)
{
    if (!(mass > 0.0))
        return;
    for (int j = 0; j < NLAM; j++) {
        d->lm_up[j] = log_add_exp(d->lm_up[j], log(mass) + lam(j) * l_up);
        d->lm_dn[j] = log_add_exp(d->lm_dn[j], log(mass) - lam(j) * l_dn);
    }
}

/* Drops exact zeros at both ends (keeps at least one point). */
static void dist_trim(dist *d)
{
    size_t a = 0, b = d->n;

    while (a + 1 < b && d->p[a] == 0.0)
        a++;
    while (b > a + 1 && d->p[b - 1] == 0.0)
        b--;
    if (a > 0)
        memmove(d->p, d->p + a, (b - a) * sizeof(double));
    d->lo += (int64_t)a;
    d->n = b - a;
}

static int64_t floor_div2(int64_t u)
{
    return u >= 0 ? u / 2 : -((-u + 1) / 2);
}

/*
 * Spacing h -> 2h. A point at an even index stays; one at an odd index,
 * loss l between the coarse points l - h and l + h, is split by
 * connect-the-dots ([DGKKM22] Algorithm 1 applied to a discrete PLD): the
 * split keeps both its P-mass and its Q-mass p e^(-l),
 *   down = expm1(h) / expm1(2h) = 1 / (1 + e^h),   up = e^h / (1 + e^h),
 * which can only raise delta(eps) for every eps (the hockey-stick curve is
 * convex in e^eps and the split interpolates it linearly). No mass moves by
 * more than h, so each MGF grows by at most a factor e^(lam h).
 */
static int dist_coarsen(dist *d, double h, fa_error *err)
{
    const double down = 1.0 / (1.0 + exp(h)), up = 1.0 - down;
    const int64_t lo2 = floor_div2(d->lo), hi2 = floor_div2(d->lo + (int64_t)d->n - 1) + 1;
    double *p = calloc((size_t)(hi2 - lo2 + 1), sizeof(double));

    if (p == NULL)
        return nomem(err, (size_t)(hi2 - lo2 + 1));
    for (size_t i = 0; i < d->n; i++) {
        const int64_t u = d->lo + (int64_t)i, j = floor_div2(u) - lo2;
        if (u % 2 == 0) {
            p[j] += d->p[i];
        } else {
            p[j] += down * d->p[i];
            p[j + 1] += up * d->p[i];
        }
    }
    free(d->p);
    d->p = p;
    d->lo = lo2;
    d->n = (size_t)(hi2 - lo2 + 1);
    for (int j = 0; j < NLAM; j++) {
        d->lm_up[j] += lam(j) * h;
        d->lm_dn[j] += lam(j) * h;
    }
    dist_trim(d);
    return FA_OK;
}

/* Spacing h -> h / f: exact, the coarse points are points of the fine grid. */
static int dist_refine(dist *d, int64_t f, fa_error *err)
{
    const size_t n = (d->n - 1) * (size_t)f + 1;
    double *p = calloc(n, sizeof(double));

    if (p == NULL)
        return nomem(err, n);
    for (size_t i = 0; i < d->n; i++)
        p[i * (size_t)f] = d->p[i];
    free(d->p);
    d->p = p;
    d->lo *= f;
    d->n = n;
    return FA_OK;
}

/* ------------------------------------------------------ epsilon and delta */

/*
 * delta(eps) of one direction: the hockey-stick divergence of the discrete
 * pair, inf + sum_{l_i > eps} p_i (1 - e^(eps - l_i)) ([GPLD] Observation 2
 * on a discrete PLD), summed from the largest loss down.
 */
static double dist_delta(const dist *d, double h, double eps)
{
    double s = 0.0;

    for (size_t i = d->n; i-- > 0;) {
        const double l = (double)(d->lo + (int64_t)i) * h;
        if (l <= eps)
            break;
        s += d->p[i] * -expm1(eps - l);
    }
    return d->inf + s;
}

/*
 * The smallest eps with delta(eps) <= delta. For eps between two losses,
 * delta(eps) = U - e^eps W with U = inf + sum_{l_i > eps} p_i and
 * W = sum_{l_i > eps} p_i e^(-l_i), so eps = log(U - delta) - log(W); walk
 * down from the largest loss until that solution lies above the next loss.
 * W is kept as a logarithm: losses reach thousands of nats.
 */
static double dist_epsilon(const dist *d, double h, double delta)
{
    double u = d->inf, log_w = -INFINITY;

    if (u > delta)
        return INFINITY;
    for (size_t i = d->n; i-- > 0;) {
        const double l = (double)(d->lo + (int64_t)i) * h;
        if (u > delta && log_w > -INFINITY && log(u - delta) - log_w >= l)
            break;
        u += d->p[i];
        if (d->p[i] > 0.0)
            log_w = log_add_exp(log_w, log(d->p[i]) - l);
    }
    if (u <= delta || log_w == -INFINITY)
        return 0.0;
    return fmax(log(u - delta) - log_w, 0.0);
}

/* ------------------------------------------------------------ the mechanism */

typedef struct sgm {
    double q;     /* sampling rate */
    double sigma; /* noise multiplier */
    int dir;      /* REMOVE or ADD */
} sgm;

/* log(1 - q + q e^t) for any real t ([GPLD] Sec. 5.1, L^q_rem: the mixture's density ratio). */
static double loss_of_t(double q, double t)
{
    if (q == 1.0)
        return t;
    if (t < 700.0)
        return log1p(q * expm1(t));
    return log(q) + t + log1p((1.0 - q) / q * exp(-t));
}

/* Its inverse: the t with log(1 - q + q e^t) = l, -infinity for l <= log(1 - q). */
static double t_of_loss(double q, double l)
{
    if (q == 1.0)
        return l;
    if (l <= log1p(-q))
        return -INFINITY;
    if (l > 1.0)
        return l - log(q) + log1p(-(1.0 - q) * exp(-l)); /* e^l - (1 - q) = e^l (1 - (1-q) e^-l) */
    return log1p(expm1(l) / q);
}

/* Privacy loss at output x, with t(x) = log(N(1, s^2) / N(0, s^2)) = (2x - 1) / (2 s^2). */
static double sgm_loss(const sgm *m, double x)
{
    const double l = loss_of_t(m->q, (2.0 * x - 1.0) / (2.0 * m->sigma * m->sigma));

    return m->dir == REMOVE ? l : -l;
}

/* The output x at which the loss is l (increasing in x for remove, decreasing for add). */
static double sgm_x(const sgm *m, double l)
{
    const double t = t_of_loss(m->q, m->dir == REMOVE ? l : -l);

    return t == -INFINITY ? -INFINITY : m->sigma * m->sigma * t + 0.5;
}

/* Density of the output under P: A = (1-q) N(0,s^2) + q N(1,s^2) (remove) or B = N(0,s^2) (add). */
static double sgm_density(const sgm *m, double x)
{
    const double s = m->sigma, c = -log(s) - LN_2PI_HALF;
    const double l0 = c - x * x / (2.0 * s * s), l1 = c - (x - 1.0) * (x - 1.0) / (2.0 * s * s);

    if (m->dir == ADD)
        return exp(l0);
    if (m->q == 1.0)
        return exp(l1);
    return (1.0 - m->q) * exp(l0) + m->q * exp(l1);
}

/* Standard normal CDF. */
static double ndtr(double z)
{
    return 0.5 * erfc(-z / 1.41421356237309504880);
}

/* P-mass of the outputs below x (or above, when above is set). */
static double sgm_tail(const sgm *m, double x, int above)
{
    const double s = m->sigma, sg = above ? -1.0 : 1.0;

    if (m->dir == ADD)
        return ndtr(sg * x / s);
    return (1.0 - m->q) * ndtr(sg * x / s) + m->q * ndtr(sg * (x - 1.0) / s);
}

/* 8-point Gauss-Legendre rule on [-1, 1] ([AS64] Table 25.4). */
static const double GL_X[4] = {0.18343464249564980494, 0.52553240991632898582,
                               0.79666647741362673959, 0.96028985649753623168};
static const double GL_W[4] = {0.36268378337836198297, 0.31370664587788728734,
                               0.22238103445337447054, 0.10122853629037625915};

/* The outputs that matter: beyond these the P-mass is below 1e-23 per side. */
static void sgm_range(const sgm *m, double *x_lo, double *x_hi)
{
    *x_lo = -TAIL_SIGMAS * m->sigma;
    *x_hi = 1.0 + TAIL_SIGMAS * m->sigma;
}

/* Standard deviation of the privacy loss under P, by Gauss-Legendre over x. */
static double sgm_loss_sd(const sgm *m)
{
    double x_lo, x_hi, mean = 0.0, var = 0.0;
    int pieces;

    sgm_range(m, &x_lo, &x_hi);
    pieces = (int)ceil((x_hi - x_lo) / (PIECE * m->sigma));
    for (int pass = 0; pass < 2; pass++) {
        for (int k = 0; k < pieces; k++) {
            const double a = x_lo + (x_hi - x_lo) * k / pieces;
            const double b = x_lo + (x_hi - x_lo) * (k + 1) / pieces;
            const double mid = 0.5 * (a + b), half = 0.5 * (b - a);
            for (int j = 0; j < 8; j++) {
                const double x = mid + (j < 4 ? -half : half) * GL_X[j % 4];
                const double w = half * GL_W[j % 4] * sgm_density(m, x);
                const double l = sgm_loss(m, x);
                if (pass == 0)
                    mean += w * l;
                else
                    var += w * (l - mean) * (l - mean);
            }
        }
    }
    return sqrt(var);
}

/* Loss range of the outputs that matter, [*l_min, *l_max]. */
static void sgm_loss_range(const sgm *m, double *l_min, double *l_max)
{
    double x_lo, x_hi;

    sgm_range(m, &x_lo, &x_hi);
    *l_min = fmin(sgm_loss(m, x_lo), sgm_loss(m, x_hi));
    *l_max = fmax(sgm_loss(m, x_lo), sgm_loss(m, x_hi));
}

/* Grid points one round of m needs at spacing h. */
static double sgm_points(const sgm *m, double h)
{
    double l_min, l_max;

    sgm_loss_range(m, &l_min, &l_max);
    return (l_max - l_min) / h + 3.0;
}

/*
 * The pessimistic discrete PLD of one round on the grid l_i = i h.
 *
 * Connect-the-dots ([DGKKM22] Algorithm 1): the P-mass of the outputs whose
 * loss falls in [l_i, l_(i+1)] is split between l_i and l_(i+1) so that the
 * pair's P-mass and Q-mass (Q = P e^(-L)) in the interval are both kept:
 *   to l_(i+1): int w_up(L(x)) dP(x),    w_up   = expm1(l_i - L) / expm1(-h),
 *   to l_i:     int w_down(L(x)) dP(x),  w_down = expm1(l_(i+1) - L) / expm1(h),
 * with w_up + w_down = 1. This gives the same masses as Algorithm 1's
 * formula in terms of delta(l_i) (expand delta(l_i) - delta(l_(i+1)) over
 * the interval), but integrates weights in [0, 1] instead of differencing
 * nearly equal deltas, which would lose all precision for small h. The
 * hockey-stick curve of the result equals the true one at every l_i and is
 * its linear interpolation in e^eps between them, hence above it
 * ([DGKKM22]: the pessimistic estimate, and the tightest one on that
 * support; [GPLD] Sec. 2.2).
 *
 * The integrals are 8-point Gauss-Legendre on pieces of at most
 * PIECE sigma in x (relative error far below 1e-12 for these smooth
 * integrands). Outputs beyond TAIL_SIGMAS: those with smaller losses go to
 * the grid point above their largest loss, those with larger ones to
 * infinity (both move mass up).
 */
static int sgm_discretize(dist *out, const sgm *m, double h, fa_error *err)
{
    const double piece = PIECE * m->sigma;
    double x_lo, x_hi, l_min, l_max;
    int64_t i_lo, i_hi;
    double x_prev;
    int rc;

    sgm_range(m, &x_lo, &x_hi);
    sgm_loss_range(m, &l_min, &l_max);
    i_lo = (int64_t)floor(l_min / h);
    i_hi = (int64_t)ceil(l_max / h);
    if (i_hi <= i_lo)
        i_hi = i_lo + 1;
    if ((rc = dist_alloc(out, i_lo, (size_t)(i_hi - i_lo + 1), err)) < 0)
        return rc;

    /* x runs up for remove (loss increasing in x) and down for add. */
    x_prev = m->dir == REMOVE ? fmax(sgm_x(m, (double)i_lo * h), x_lo)
                              : fmin(sgm_x(m, (double)i_lo * h), x_hi);
    for (int64_t i = i_lo; i < i_hi; i++) {
        const double la = (double)i * h, lb = (double)(i + 1) * h;
        const double x_next = m->dir == REMOVE ? fmin(fmax(sgm_x(m, lb), x_lo), x_hi)
                                               : fmax(fmin(sgm_x(m, lb), x_hi), x_lo);
        const double a = fmin(x_prev, x_next), b = fmax(x_prev, x_next);
        const int pieces = b > a ? (int)ceil((b - a) / piece) : 0;
        double down = 0.0, up = 0.0;

        for (int k = 0; k < pieces; k++) {
            const double pa = a + (b - a) * k / pieces, pb = a + (b - a) * (k + 1) / pieces;
            const double mid = 0.5 * (pa + pb), half = 0.5 * (pb - pa);
            for (int j = 0; j < 8; j++) {
                const double x = mid + (j < 4 ? -half : half) * GL_X[j % 4];
                const double w = half * GL_W[j % 4] * sgm_density(m, x);
                const double l = sgm_loss(m, x);
                const double wu = fmin(fmax(expm1(la - l) / expm1(-h), 0.0), 1.0);
                up += w * wu;
                down += w * (1.0 - wu);
            }
        }
        out->p[i - i_lo] += down;
        out->p[i + 1 - i_lo] += up;
        x_prev = x_next;
    }

    /* Tails beyond the range: the low-loss side up to the point at or above l_min. */
    out->p[(int64_t)ceil(l_min / h) - i_lo] +=
        sgm_tail(m, m->dir == REMOVE ? x_lo : x_hi, m->dir == ADD);
    out->inf = sgm_tail(m, m->dir == REMOVE ? x_hi : x_lo, m->dir == REMOVE);
    dist_trim(out);
    return FA_OK;
}

/* ------------------------------------------------------------ convolution */

/*
 * In-place forward radix-2 FFT, X_k = sum_j x_j e^(-2 pi i j k / n), of n (a
 * power of two) complex values interleaved in z. tw holds the kernel of
 * every stage contiguously: for half = 1, 2, 4, ..., n/2, the values
 * e^(-2 pi i k / (2 half)), k < half, from offset half - 1 (n - 1 complex
 * values in all).
 */
static void fft(double *z, size_t n, const double *tw)
{
    for (size_t i = 1, j = 0; i < n; i++) {
        size_t bit = n >> 1;
        for (; j & bit; bit >>= 1)
            j ^= bit;
        j |= bit;
        if (i < j) {
            double t = z[2 * i];
            z[2 * i] = z[2 * j];
            z[2 * j] = t;
            t = z[2 * i + 1];
            z[2 * i + 1] = z[2 * j + 1];
            z[2 * j + 1] = t;
        }
    }
    for (size_t half = 1; half < n; half <<= 1) {
        const double *w = tw + 2 * (half - 1);
        for (size_t s = 0; s < n; s += 2 * half) {
            double *u = z + 2 * s, *v = z + 2 * (s + half);
            for (size_t k = 0; k < half; k++) {
                const double wr = w[2 * k], wi = w[2 * k + 1];
                const double xr = v[2 * k] * wr - v[2 * k + 1] * wi;
                const double xi = v[2 * k] * wi + v[2 * k + 1] * wr;
                v[2 * k] = u[2 * k] - xr;
                v[2 * k + 1] = u[2 * k + 1] - xi;
                u[2 * k] += xr;
                u[2 * k + 1] += xi;
            }
        }
    }
}

/* The inverse transform, unscaled: conj(FFT(conj(z))). */
static void ifft(double *z, size_t n, const double *tw)
{
    for (size_t i = 0; i < n; i++)
        z[2 * i + 1] = -z[2 * i + 1];
    fft(z, n, tw);
    for (size_t i = 0; i < n; i++)
        z[2 * i + 1] = -z[2 * i + 1];
}

/*
 * Workspace of one FFT of size n: z (2n doubles, zeroed) and the stage
 * kernels tw (2n doubles), the largest stage from cos and sin and each
 * smaller one a subsample of it (the same values).
 */
static int fft_alloc(double **z, double **tw, size_t n, fa_error *err)
{
    double *top;

    *z = calloc(2 * n, sizeof(double));
    *tw = malloc(2 * n * sizeof(double));
    if (*z == NULL || *tw == NULL)
        return fa_fail(err, FA_ENOMEM, "out of memory for an fft of %zu points", n);
    top = *tw + 2 * (n / 2 - 1);
    for (size_t k = 0; k < n / 2; k++) {
        const double ang = 6.283185307179586476925 * (double)k / (double)n;
        top[2 * k] = cos(ang);
        top[2 * k + 1] = -sin(ang);
    }
    for (size_t half = 1; half < n / 2; half <<= 1) {
        double *w = *tw + 2 * (half - 1);
        const size_t step = n / (2 * half);
        for (size_t k = 0; k < half; k++) {
            w[2 * k] = top[2 * k * step];
            w[2 * k + 1] = top[2 * k * step + 1];
        }
    }
    return FA_OK;
}

static size_t pow2_ceil(size_t n)
{
    size_t m = 2;

    while (m < n)
        m <<= 1;
    return m;
}

/*
 * The index window [*k_lo, *k_hi] (within [full_lo, full_hi]) of the
 * distribution whose log-MGF bounds are scale * (lm_up, lm_dn), outside
 * which the finite mass is at most FA_PLD_TAIL_MASS per side, by the
 * Chernoff bound, minimised over the lam_j ([GPLD] Sec. 6.2, after
 * [KJPH20]; the MGF of an n-fold convolution is the n-th power, hence
 * `scale`):
 *   P(L >= t) <= e^(-lam t) M(lam),   P(L <= t) <= e^(lam t) M(-lam).
 * *b_up and *b_lo receive the bounds on the mass actually cut off above and
 * below (0 when nothing is cut).
 */
static void tail_window(int64_t *k_lo, int64_t *k_hi, double *b_lo, double *b_up,
                        const double *lm_up, const double *lm_dn, double scale, double h,
                        double full_lo, double full_hi)
{
    const double log_tail = log(FA_PLD_TAIL_MASS);
    double t_hi = INFINITY, t_lo = -INFINITY, lo, hi;

    for (int j = 0; j < NLAM; j++) {
        t_hi = fmin(t_hi, (scale * lm_up[j] - log_tail) / lam(j));
        t_lo = fmax(t_lo, (log_tail - scale * lm_dn[j]) / lam(j));
    }
    hi = fmin(full_hi, ceil(t_hi / h) - 1.0);
    lo = fmax(full_lo, floor(t_lo / h) + 1.0);
    if (!(lo <= hi)) {
        lo = full_lo;
        hi = full_hi;
    }
    *b_up = 0.0;
    *b_lo = 0.0;
    if (hi < full_hi) {
        *b_up = INFINITY;
        for (int j = 0; j < NLAM; j++)
            *b_up = fmin(*b_up, exp(scale * lm_up[j] - lam(j) * (hi + 1.0) * h));
    }
    if (lo > full_lo) {
        *b_lo = INFINITY;
        for (int j = 0; j < NLAM; j++)
            *b_lo = fmin(*b_lo, exp(scale * lm_dn[j] + lam(j) * (lo - 1.0) * h));
    }
    *k_lo = (int64_t)lo;
    *k_hi = (int64_t)hi;
}

/*
 * Finishes a composed direction out whose window holds the computed masses:
 * round-off negatives set to zero, the mass cut above (at most b_up) moved
 * to infinity and the mass cut below (at most b_lo) to the most likely
 * point, both upwards. (Not to the lowest point: an atom there would be
 * carried down by every later convolution and widen the windows round
 * after round.) extra_mass more, misplaced by aliasing somewhere in the
 * window, is recorded in the log-MGF bounds.
 */
static void dist_finish(dist *out, double h, double b_lo, double b_up, double extra_mass)
{
    const double l_lo = (double)out->lo * h, l_hi = (double)(out->lo + (int64_t)out->n - 1) * h;
    size_t mode = 0;

    for (size_t i = 0; i < out->n; i++) {
        out->p[i] = fmax(out->p[i], 0.0);
        if (out->p[i] > out->p[mode])
            mode = i;
    }
    out->p[mode] += b_lo;
    out->inf += b_up;
    dist_lmgf_add(out, b_lo, (double)(out->lo + (int64_t)mode) * h,
                  (double)(out->lo + (int64_t)mode) * h);
    dist_lmgf_add(out, extra_mass, l_hi, l_lo);
    dist_trim(out);
}

/*
 * out = a (+) b on grid h: the PLD of the composition ([GPLD] Observation 3:
 * the convolution of the PLDs; masses at infinity combine as
 * 1 - (1 - inf_a)(1 - inf_b), MGFs multiply). Only the Chernoff window is
 * kept. Directly (exact in all terms, no round-off floor) when that costs
 * less than two FFTs of the full length.
 */
static int conv(dist *out, const dist *a, const dist *b, double h, fa_error *err)
{
    const int64_t full_lo = a->lo + b->lo;
    const size_t nc = a->n + b->n - 1;
    double lm_up[NLAM], lm_dn[NLAM], b_lo, b_up, *z = NULL, *tw = NULL;
    int64_t k_lo, k_hi;
    size_t first, last, n = pow2_ceil(nc);
    int rc;

    for (int j = 0; j < NLAM; j++) {
        lm_up[j] = a->lm_up[j] + b->lm_up[j];
        lm_dn[j] = a->lm_dn[j] + b->lm_dn[j];
    }
    tail_window(&k_lo, &k_hi, &b_lo, &b_up, lm_up, lm_dn, 1.0, h, (double)full_lo,
                (double)(full_lo + (int64_t)nc - 1));
    first = (size_t)(k_lo - full_lo);
    last = (size_t)(k_hi - full_lo);
    if ((rc = dist_alloc(out, k_lo, last - first + 1, err)) < 0)
        return rc;
    memcpy(out->lm_up, lm_up, sizeof(lm_up));
    memcpy(out->lm_dn, lm_dn, sizeof(lm_dn));
    out->inf = a->inf + b->inf - a->inf * b->inf;

    if ((double)a->n * (double)b->n <= 6.0 * (double)n * log2((double)n) + 65536.0) {
        const dist *big = a->n >= b->n ? a : b, *small = a->n >= b->n ? b : a;
        for (size_t j = 0; j < small->n; j++) {
            /* outputs first..last that big[i] + small[j] reaches: i in [i0, i1) */
            const size_t i0 = first > j ? first - j : 0;
            const size_t i1 = last + 1 - j < big->n ? last + 1 - j : big->n;
            const double s = small->p[j];
            double *c = out->p;
            if (s == 0.0 || last + 1 <= j)
                continue;
            for (size_t i = i0; i < i1; i++)
                c[i + j - first] += s * big->p[i];
        }
    } else {
        /*
         * One complex FFT of z = a + i b: with Z = FFT(z), FFT(a) FFT(b) at
         * frequency k is (Z_k^2 - conj(Z_(n-k))^2) / 4i; for a == b it is Z_k^2.
         */
        if ((rc = fft_alloc(&z, &tw, n, err)) < 0)
            goto cleanup;
        for (size_t i = 0; i < a->n; i++)
            z[2 * i] = a->p[i];
        if (a != b)
            for (size_t i = 0; i < b->n; i++)
                z[2 * i + 1] = b->p[i];
        fft(z, n, tw);
        for (size_t k = 0; k <= n / 2; k++) {
            const size_t m = (n - k) % n;
            const double zr = z[2 * k], zi = z[2 * k + 1], yr = z[2 * m], yi = z[2 * m + 1];
            if (a == b) {
                z[2 * k] = zr * zr - zi * zi;
                z[2 * k + 1] = 2.0 * zr * zi;
                z[2 * m] = yr * yr - yi * yi;
                z[2 * m + 1] = 2.0 * yr * yi;
            } else {
                /* (u - v) / 4i = (Im(u - v), -Re(u - v)) / 4 */
                z[2 * k] = (2.0 * zr * zi + 2.0 * yr * yi) / 4.0;
                z[2 * k + 1] = -((zr * zr - zi * zi) - (yr * yr - yi * yi)) / 4.0;
                z[2 * m] = (2.0 * yr * yi + 2.0 * zr * zi) / 4.0;
                z[2 * m + 1] = -((yr * yr - yi * yi) - (zr * zr - zi * zi)) / 4.0;
            }
        }
        ifft(z, n, tw);
        for (size_t i = first; i <= last; i++)
            out->p[i - first] = z[2 * i] / (double)n;
    }
    dist_finish(out, h, b_lo, b_up, 0.0);
cleanup:
    free(z);
    free(tw);
    return rc;
}

/*
 * out = base composed with itself count times: the T-fold convolution,
 * computed as FFT^(-1)(FFT(base)^T) (the FFT accountant of [KJH20]). The power is taken by repeated
 * squaring at each frequency (round-off grows like log2(count), not count). The FFT is cyclic with
 * length L >= the Chernoff window, so the mass outside the window (at most
 * b_lo + b_up) wraps into it; that misplaced mass is extra, never missing,
 * because the cut tails are also added back at the lowest point and at
 * infinity.
 */
static int dist_power(dist *out, const dist *base, int64_t count, double h, fa_error *err)
{
    const double full_lo = (double)count * (double)base->lo;
    const double full_hi = (double)count * (double)(base->lo + (int64_t)base->n - 1);
    double b_lo, b_up, *z = NULL, *tw = NULL;
    int64_t k_lo, k_hi, len;
    size_t n;
    int rc;

    tail_window(&k_lo, &k_hi, &b_lo, &b_up, base->lm_up, base->lm_dn, (double)count, h, full_lo,
                full_hi);
    n = pow2_ceil((size_t)(k_hi - k_lo + 1));
    len = (int64_t)n;
    if ((rc = dist_alloc(out, k_lo, (size_t)(k_hi - k_lo + 1), err)) < 0 ||
        (rc = fft_alloc(&z, &tw, n, err)) < 0)
        goto cleanup;
    for (int j = 0; j < NLAM; j++) {
        out->lm_up[j] = (double)count * base->lm_up[j];
        out->lm_dn[j] = (double)count * base->lm_dn[j];
    }
    out->inf = -expm1((double)count * log1p(-base->inf));
    for (size_t i = 0; i < base->n; i++)
        z[2 * (size_t)((((base->lo + (int64_t)i) % len) + len) % len)] += base->p[i];
    fft(z, n, tw);
    for (size_t k = 0; k < n; k++) {
        double br = z[2 * k], bi = z[2 * k + 1], rr = 1.0, ri = 0.0;
        for (int64_t e = count; e > 0; e >>= 1) {
            double t;
            if (e & 1) {
                t = rr * br - ri * bi;
                ri = rr * bi + ri * br;
                rr = t;
            }
            t = br * br - bi * bi;
            bi = 2.0 * br * bi;
            br = t;
        }
        z[2 * k] = rr;
        z[2 * k + 1] = ri;
    }
    ifft(z, n, tw);
    for (size_t i = 0; i < out->n; i++)
        out->p[i] = z[2 * (size_t)((((k_lo + (int64_t)i) % len) + len) % len)] / (double)n;
    dist_finish(out, h, b_lo, b_up, b_lo + b_up);
cleanup:
    free(z);
    free(tw);
    return rc;
}

/* ------------------------------------------------------------ composition */

/* Largest power of two <= x (x > 0). */
static double pow2_floor(double x)
{
    int e;

    (void)frexp(x, &e); /* x = f 2^e, f in [0.5, 1) */
    return ldexp(1.0, e - 1);
}

int fa_pld_new(fa_pld **out, double discretization_interval, fa_error *err)
{
    fa_pld *pld = NULL;
    int rc;

    *out = NULL;
    if (!(discretization_interval == FA_PLD_INTERVAL_AUTO ||
          (discretization_interval >= FA_PLD_INTERVAL_MIN &&
           discretization_interval <= FA_PLD_INTERVAL_MAX)))
        return fa_fail(err, FA_EINVAL, "discretization interval %g is neither 0 nor in [%g, %g]",
                       discretization_interval, FA_PLD_INTERVAL_MIN, FA_PLD_INTERVAL_MAX);
    pld = calloc(1, sizeof(*pld));
    if (pld == NULL)
        return fa_fail(err, FA_ENOMEM, "out of memory for a privacy loss distribution");
    pld->h = discretization_interval;
    pld->autogrid = discretization_interval == FA_PLD_INTERVAL_AUTO;
    if ((rc = dist_identity(&pld->d[REMOVE], err)) < 0 ||
        (rc = dist_identity(&pld->d[ADD], err)) < 0)
        goto cleanup;
    *out = pld;
    pld = NULL;
cleanup:
    fa_pld_free(pld);
    return rc;
}

int fa_pld_copy(fa_pld **out, const fa_pld *pld, fa_error *err)
{
    fa_pld *c = NULL;
    int rc;

    *out = NULL;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return fa_fail(err, FA_ENOMEM, "out of memory for a privacy loss distribution");
    c->h = pld->h;
    c->autogrid = pld->autogrid;
    c->composed = pld->composed;
    if ((rc = dist_copy(&c->d[REMOVE], &pld->d[REMOVE], err)) < 0 ||
        (rc = dist_copy(&c->d[ADD], &pld->d[ADD], err)) < 0)
        goto cleanup;
    /* The memo too: a trial copy (the close's decide) then composes the
     * same setting without discretising it again. */
    if (pld->memo_h > 0.0) {
        if ((rc = dist_copy(&c->memo[REMOVE], &pld->memo[REMOVE], err)) < 0 ||
            (rc = dist_copy(&c->memo[ADD], &pld->memo[ADD], err)) < 0)
            goto cleanup;
        c->memo_q = pld->memo_q;
        c->memo_sigma = pld->memo_sigma;
        c->memo_sd = pld->memo_sd;
        c->memo_h = pld->memo_h;
    }
    *out = c;
    c = NULL;
cleanup:
    fa_pld_free(c);
    return rc;
}

void fa_pld_free(fa_pld *pld)
{
    if (pld == NULL)
        return;
    for (int d = 0; d < NDIR; d++) {
        dist_done(&pld->d[d]);
        dist_done(&pld->memo[d]);
    }
    free(pld);
}

double fa_pld_interval(const fa_pld *pld)
{
    return pld->h;
}

size_t fa_pld_points(const fa_pld *pld)
{
    return pld->d[REMOVE].n > pld->d[ADD].n ? pld->d[REMOVE].n : pld->d[ADD].n;
}

/* Variance of the finite part of d, in nats^2 on grid h. */
static double dist_var(const dist *d, double h)
{
    double s = 0.0, m1 = 0.0, m2 = 0.0;

    for (size_t i = 0; i < d->n; i++) {
        s += d->p[i];
        m1 += d->p[i] * (double)i;
    }
    if (!(s > 0.0))
        return 0.0;
    m1 /= s;
    for (size_t i = 0; i < d->n; i++)
        m2 += d->p[i] * ((double)i - m1) * ((double)i - m1);
    return m2 / s * h * h;
}

/*
 * The spacing for the next batch of count rounds with loss sd `sd`.
 *
 * Auto mode: the power of two <= the smaller of
 *  - FA_PLD_AUTO_ROUND sd. Connect-the-dots splits each round's loss across
 *    one cell keeping E[e^(-L)], which raises its mean by at most h^2 / 8
 *    and its variance by at most h^2 / 4 (h^2 / 12 and h^2 / 6 on average
 *    over a cell). A round's mean loss, its KL divergence, is about var / 2,
 *    so at h <= sd / 10 both grow by at most 0.25%, however many rounds
 *    are composed.
 *  - FA_PLD_AUTO_TOTAL sd_total, sd_total the loss sd of the composition
 *    after the batch. Between grid points the pessimistic delta(eps) is the
 *    chord of the true curve (in e^eps), so where epsilon is not much larger
 *    than h (few rounds, large delta: eps -> 0 as delta -> delta(0)) its
 *    relative error is about h times the hazard rate of the loss near eps,
 *    ~ h / sd_total.
 * The running PLD is moved to it: refined exactly, or coarsened (a one-time
 * split of cells of width h << sd_total) as rounds accumulate. Fixed mode:
 * the current spacing. Then, either way, doubled while one round or the
 * running PLD would exceed the point cap.
 */
static double batch_spacing(const fa_pld *pld, const sgm m[NDIR], double sd, int64_t count)
{
    double h = pld->h;

    if (pld->autogrid) {
        double var = 0.0, want;
        if (pld->composed > 0)
            var = fmin(dist_var(&pld->d[REMOVE], pld->h), dist_var(&pld->d[ADD], pld->h));
        want =
            fmin(FA_PLD_AUTO_ROUND * sd, FA_PLD_AUTO_TOTAL * sqrt(var + (double)count * sd * sd));
        h = pow2_floor(fmin(fmax(want, 0x1p-40), 1.0));
    }
    for (;;) {
        const double round_pts = fmax(sgm_points(&m[REMOVE], h), sgm_points(&m[ADD], h));
        const double run_pts = pld->h > 0.0 ? (double)fa_pld_points(pld) * pld->h / h : 1.0;
        if (round_pts <= FA_PLD_MAX_POINTS / 2 && run_pts <= FA_PLD_MAX_POINTS)
            break;
        h *= 2.0;
    }
    return h;
}

/* Points of the count-fold composition of d (its Chernoff window). */
static double power_points(const dist *d, int64_t count, double h)
{
    int64_t k_lo, k_hi;
    double b_lo, b_up;

    tail_window(&k_lo, &k_hi, &b_lo, &b_up, d->lm_up, d->lm_dn, (double)count, h,
                (double)count * (double)d->lo, (double)count * (double)(d->lo + (int64_t)d->n - 1));
    return (double)(k_hi - k_lo + 1);
}

/* Moves d from spacing h_from to h_to (both h_from * 2^k). */
static int dist_regrid(dist *d, double h_from, double h_to, fa_error *err)
{
    int rc;

    if (h_to < h_from)
        return dist_refine(d, (int64_t)llround(h_from / h_to), err);
    for (double h = h_from; h < h_to; h *= 2.0)
        if ((rc = dist_coarsen(d, h, err)) < 0)
            return rc;
    return FA_OK;
}

int fa_pld_compose_sgm(fa_pld *pld, double q, double sigma, int64_t count, fa_error *err)
{
    const sgm m[NDIR] = {{q, sigma, REMOVE}, {q, sigma, ADD}};
    dist base[NDIR] = {{0}}, batch[NDIR] = {{0}}, run[NDIR] = {{0}}, res[NDIR] = {{0}};
    dist memo[NDIR] = {{0}};
    int memo_hit, same = pld->memo_h > 0.0 && pld->memo_q == q && pld->memo_sigma == sigma;
    double h, h_round, sd = 0.0;
    int rc;

    if ((rc = fa_rdp_check(q, sigma, err)) < 0)
        return rc;
    if (count < 1 || count > FA_RDP_ROUNDS_MAX)
        return fa_fail(err, FA_EINVAL, "round count %lld is outside [1, %d]", (long long)count,
                       FA_RDP_ROUNDS_MAX);
    if (pld->autogrid)
        sd = same ? pld->memo_sd : fmin(sgm_loss_sd(&m[REMOVE]), sgm_loss_sd(&m[ADD]));
    h = h_round = batch_spacing(pld, m, sd, count);
    memo_hit = same && pld->memo_h == h;

    /* One round, pessimistically discretised (both directions alike without sampling). */
    for (int d = 0; d < NDIR; d++) {
        if (memo_hit)
            rc = dist_copy(&base[d], &pld->memo[d], err);
        else if (d == ADD && q == 1.0)
            rc = dist_copy(&base[ADD], &base[REMOVE], err);
        else
            rc = sgm_discretize(&base[d], &m[d], h, err);
        if (rc < 0)
            goto cleanup;
        if (!memo_hit) {
            dist_set_lmgf(&base[d], h);
            if ((rc = dist_copy(&memo[d], &base[d], err)) < 0)
                goto cleanup;
        }
    }
    /* count rounds at once, on a grid coarse enough for the point cap. */
    while (fmax(power_points(&base[REMOVE], count, h), power_points(&base[ADD], count, h)) >
           FA_PLD_MAX_POINTS) {
        for (int d = 0; d < NDIR; d++) {
            if ((rc = dist_coarsen(&base[d], h, err)) < 0)
                goto cleanup;
            /*
             * One round's masses are exact (no FFT noise), so take their MGF
             * as it is: the generic bound e^(lam h) would grow count-fold.
             */
            dist_set_lmgf(&base[d], 2.0 * h);
        }
        h *= 2.0;
    }
    for (int d = 0; d < NDIR; d++) {
        rc = count == 1 ? dist_copy(&batch[d], &base[d], err)
                        : dist_power(&batch[d], &base[d], count, h, err);
        if (rc < 0)
            goto cleanup;
    }
    /* The running PLD on the batch grid (a copy: pld is unchanged on failure), then composed. */
    for (int d = 0; d < NDIR; d++) {
        if ((rc = dist_copy(&run[d], &pld->d[d], err)) < 0 ||
            (pld->h > 0.0 && (rc = dist_regrid(&run[d], pld->h, h, err)) < 0) ||
            (rc = conv(&res[d], &run[d], &batch[d], h, err)) < 0)
            goto cleanup;
    }
    while (fmax((double)res[REMOVE].n, (double)res[ADD].n) > FA_PLD_MAX_POINTS) {
        for (int d = 0; d < NDIR; d++)
            if ((rc = dist_coarsen(&res[d], h, err)) < 0)
                goto cleanup;
        h *= 2.0;
    }

    for (int d = 0; d < NDIR; d++) {
        dist_done(&pld->d[d]);
        pld->d[d] = res[d];
        memset(&res[d], 0, sizeof(res[d]));
    }
    if (!memo_hit) {
        for (int d = 0; d < NDIR; d++) {
            dist_done(&pld->memo[d]);
            pld->memo[d] = memo[d];
            memset(&memo[d], 0, sizeof(memo[d]));
        }
        pld->memo_q = q;
        pld->memo_sigma = sigma;
        pld->memo_sd = sd;
        pld->memo_h = h_round;
    }
    pld->h = h;
    pld->composed += count;
cleanup:
    for (int d = 0; d < NDIR; d++) {
        dist_done(&memo[d]);
        dist_done(&base[d]);
        dist_done(&batch[d]);
        dist_done(&run[d]);
        dist_done(&res[d]);
    }
    return rc;
}

int fa_pld_epsilon(double *eps_out, const fa_pld *pld, double delta, fa_error *err)
{
    *eps_out = 0.0;
    if (!isfinite(delta) || delta <= 0.0 || delta >= 1.0)
        return fa_fail(err, FA_EINVAL, "delta %g is outside (0, 1)", delta);
    if (pld->composed == 0)
        return FA_OK;
    /* Add/remove adjacency: the guarantee must hold in both directions. */
    *eps_out = fmax(dist_epsilon(&pld->d[REMOVE], pld->h, delta),
                    dist_epsilon(&pld->d[ADD], pld->h, delta));
    return FA_OK;
}

int fa_pld_delta(double *delta_out, const fa_pld *pld, double eps, fa_error *err)
{
    *delta_out = 0.0;
    if (!(eps >= 0.0))
        return fa_fail(err, FA_EINVAL, "epsilon %g is negative", eps);
    if (pld->composed == 0)
        return FA_OK;
    *delta_out = fmin(
        fmax(dist_delta(&pld->d[REMOVE], pld->h, eps), dist_delta(&pld->d[ADD], pld->h, eps)), 1.0);
    return FA_OK;
}

int fa_pld_epsilon_rounds(double *eps_out, double q, double sigma, int64_t rounds, double delta,
                          fa_error *err)
{
    fa_pld *pld = NULL;
    int rc;

    *eps_out = 0.0;
    if (!isfinite(delta) || delta <= 0.0 || delta >= 1.0)
        return fa_fail(err, FA_EINVAL, "delta %g is outside (0, 1)", delta);
    if ((rc = fa_pld_new(&pld, FA_PLD_INTERVAL_AUTO, err)) < 0 ||
        (rc = fa_pld_compose_sgm(pld, q, sigma, rounds, err)) < 0 ||
        (rc = fa_pld_epsilon(eps_out, pld, delta, err)) < 0)
        goto cleanup;
cleanup:
    fa_pld_free(pld);
    return rc;
}

/* ------------------------------------------------------------ calibration */

/* x rounded up to 6 significant digits (x > 0). */
static double round_up_6(double x)
{
    const double scale = pow(10.0, 5.0 - floor(log10(x)));

    return ceil(x * scale) / scale;
}

int fa_pld_calibrate(double *sigma_out, double *eps_out, double target_eps, double q,
                     int64_t rounds, double delta, fa_error *err)
{
    double lo = FA_RDP_SIGMA_MIN, hi = FA_RDP_SIGMA_MAX, eps, sigma;
    int rc;

    *sigma_out = 0.0;
    *eps_out = 0.0;
    if (!isfinite(target_eps) || target_eps <= 0.0)
        return fa_fail(err, FA_EINVAL, "target epsilon %g is not positive", target_eps);
    if ((rc = fa_pld_epsilon_rounds(&eps, q, hi, rounds, delta, err)) < 0)
        return rc;
    if (eps > target_eps)
        return fa_fail(err, FA_EINVAL,
                       "epsilon %g needs a noise multiplier above %g (which gives %g)", target_eps,
                       FA_RDP_SIGMA_MAX, eps);
    if ((rc = fa_pld_epsilon_rounds(&eps, q, lo, rounds, delta, err)) < 0)
        return rc;
    if (eps <= target_eps) {
        *sigma_out = lo;
        *eps_out = eps;
        return FA_OK;
    }
    /* Invariant: eps(lo) > target >= eps(hi). Bisect in log(sigma) to 0.09%. */
    while (hi / lo > 1.0009) {
        const double mid = sqrt(lo * hi);
        if ((rc = fa_pld_epsilon_rounds(&eps, q, mid, rounds, delta, err)) < 0)
            return rc;
        if (eps <= target_eps)
            hi = mid;
        else
            lo = mid;
    }
    sigma = fmin(round_up_6(hi), FA_RDP_SIGMA_MAX);
    if ((rc = fa_pld_epsilon_rounds(&eps, q, sigma, rounds, delta, err)) < 0)
        return rc;
    if (eps > target_eps || sigma < hi) {
        sigma = hi; /* rounding went the wrong way: report hi unrounded */
        if ((rc = fa_pld_epsilon_rounds(&eps, q, sigma, rounds, delta, err)) < 0)
            return rc;
    }
    *sigma_out = sigma;
    *eps_out = eps;
    return FA_OK;
}
