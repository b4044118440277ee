#include "model/als.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/params.h"

#define F_MAX FA_ALS_MAX_FACTORS

/* Doublings of lambda tried before the system is declared unsolvable. */
#define MAX_DOUBLINGS 200

int fa_als_user_vector(float *u, const fa_params *v, const int32_t *items, size_t n)
{
    size_t f = fa_params_factors(v), rows = fa_params_num_items(v);
    double acc[F_MAX] = {0}, norm2 = 0.0;

    for (size_t k = 0; k < n; k++) {
        const float *row;
        if (items[k] < 0 || (size_t)items[k] >= rows)
            continue;
        row = fa_params_item_row(v, (size_t)items[k]);
        for (size_t j = 0; j < f; j++)
            acc[j] += row[j];
    }
    for (size_t j = 0; j < f; j++)
        norm2 += acc[j] * acc[j];
    if (!(norm2 > 0.0) || !isfinite(norm2)) {
        memset(u, 0, f * sizeof(float));
        return 0;
    }
    for (size_t j = 0; j < f; j++)
        u[j] = (float)(acc[j] / sqrt(norm2));
    return 1;
}

void fa_als_device_update(float *update, const fa_params *v, const float *u, const int32_t *items,
                          size_t n)
{
    size_t f = fa_params_factors(v);
    const fa_tensor_spec *gram = fa_params_tensor(v, FA_TENSOR_ALS_USER_GRAM);
    double c = 1.0 / sqrt(1.0 + (double)n);

    memset(update, 0, fa_params_len(v) * sizeof(float));
    for (size_t k = 0; k < n; k++) {
        float *row = update + (size_t)items[k] * f;
        for (size_t j = 0; j < f; j++)
            row[j] = (float)(c * u[j]);
    }
    for (size_t a = 0; a < f; a++)
        for (size_t b = 0; b < f; b++)
            update[gram->offset + a * f + b] = (float)(c * u[a] * u[b]);
}

/* In-place Cholesky factor L (lower) of the f x f matrix m; 0 when not positive definite. */
static int cholesky(double *m, size_t f)
{
    for (size_t j = 0; j < f; j++) {
        double d = m[j * f + j];
        for (size_t k = 0; k < j; k++)
            d -= m[j * f + k] * m[j * f + k];
        if (!(d > 0.0) || !isfinite(d))
            return 0;
        d = sqrt(d);
        m[j * f + j] = d;
        for (size_t i = j + 1; i < f; i++) {
            double s = m[i * f + j];
            for (size_t k = 0; k < j; k++)
                s -= m[i * f + k] * m[j * f + k];
            m[i * f + j] = s / d;
        }
    }
    return 1;
}

/* x <- (L L^T)^-1 x for the factor of cholesky(). */
static void chol_solve(const double *l, size_t f, double *x)
{
    for (size_t i = 0; i < f; i++) {
        double s = x[i];
        for (size_t k = 0; k < i; k++)
            s -= l[i * f + k] * x[k];
        x[i] = s / l[i * f + i];
    }
    for (size_t i = f; i-- > 0;) {
        double s = x[i];
        for (size_t k = i + 1; k < f; k++)
            s -= l[k * f + i] * x[k];
        x[i] = s / l[i * f + i];
    }
}

/*
 * l <- the Cholesky factor of sym + lambda I, lambda = reg * |tr sym| / f doubled until it
 * succeeds; 0 when it never does.
 */
static int regularised_factor(double *l, const double *sym, size_t f, double reg)
{
    double trace = 0.0, lambda;

    for (size_t a = 0; a < f; a++)
        trace += sym[a * f + a];
    lambda = reg * fabs(trace) / (double)f;
    if (!(lambda > 0.0))
        lambda = reg * 1e-12;
    for (int tries = 0; tries < MAX_DOUBLINGS; tries++, lambda *= 2.0) {
        memcpy(l, sym, f * f * sizeof(double));
        for (size_t a = 0; a < f; a++)
            l[a * f + a] += lambda;
        if (cholesky(l, f))
            return 1;
    }
    return 0;
}

int fa_als_gram_solve(float *x, const fa_params *v, double reg, fa_error *err)
{
    size_t f = fa_params_factors(v);
    const float *g = fa_params_cdata(v) + fa_params_tensor(v, FA_TENSOR_ALS_USER_GRAM)->offset;
    double sym[F_MAX * F_MAX], l[F_MAX * F_MAX], y[F_MAX];

    for (size_t a = 0; a < f; a++)
        for (size_t b = 0; b < f; b++) {
            sym[a * f + b] = 0.5 * ((double)g[a * f + b] + (double)g[b * f + a]);
            if (!isfinite(sym[a * f + b]))
                return fa_fail(err, FA_EINVAL, "the released Gram matrix is not finite");
        }
    if (!regularised_factor(l, sym, f, reg))
        return fa_fail(err, FA_EINTERNAL, "the released Gram matrix is not solvable");
    for (size_t j = 0; j < f; j++)
        y[j] = x[j];
    chol_solve(l, f, y);
    for (size_t j = 0; j < f; j++)
        x[j] = (float)y[j];
    return FA_OK;
}

int fa_als_step(float *theta, const float *mean, size_t num_items, size_t factors, double reg,
                double step, fa_error *err)
{
    double sym[F_MAX * F_MAX], l[F_MAX * F_MAX], x[F_MAX];
    size_t f = factors, gram_off = num_items * factors;
    float *next = NULL;
    int rc = FA_OK;

    if (f < 1 || f > F_MAX || num_items < 1 || !(reg > 0.0) || !isfinite(reg) || !(step > 0.0) ||
        step > 1.0)
        return fa_fail(err, FA_EINVAL, "bad ALS step arguments");
    for (size_t k = 0; k < gram_off + f * f; k++)
        if (!isfinite(mean[k]))
            return fa_fail(err, FA_EINVAL, "the mean update is not finite");
    for (size_t a = 0; a < f; a++)
        for (size_t b = 0; b < f; b++)
            sym[a * f + b] =
                0.5 * ((double)mean[gram_off + a * f + b] + (double)mean[gram_off + b * f + a]);
    if (!regularised_factor(l, sym, f, reg))
        return fa_fail(err, FA_EINTERNAL, "the ALS normal equations are not solvable");
    next = malloc((gram_off + f * f) * sizeof(float));
    if (next == NULL)
        return fa_fail(err, FA_ENOMEM, "out of memory for the ALS step");
    for (size_t i = 0; i < num_items; i++) {
        for (size_t j = 0; j < f; j++)
            x[j] = mean[i * f + j];
        chol_solve(l, f, x);
        for (size_t j = 0; j < f; j++) {
            double y = (1.0 - step) * theta[i * f + j] + step * x[j];
            next[i * f + j] = (float)y;
            if (!isfinite(next[i * f + j])) {
                rc = fa_fail(err, FA_EINTERNAL, "the ALS step is not finite");
                goto cleanup;
            }
        }
    }
    for (size_t k = 0; k < f * f; k++)
        next[gram_off + k] = (float)sym[k];
    memcpy(theta, next, (gram_off + f * f) * sizeof(float));
cleanup:
    free(next);
    return rc;
}

#define STRUCTURE_TOL 1e-3

int fa_als_structure_ok(const float *x, size_t num_items, size_t f, size_t min_items)
{
    const float *g = x + num_items * f, *r0 = NULL;
    double gf2 = 0.0, tr = 0.0, asym = 0.0, total2, gf, share, d2;
    size_t n = 0;

    if (f < 1 || f > F_MAX)
        return 0;
    for (size_t a = 0; a < f; a++) {
        tr += g[a * f + a];
        for (size_t b = 0; b < f; b++) {
            double d = (double)g[a * f + b] - (double)g[b * f + a];
            gf2 += (double)g[a * f + b] * g[a * f + b];
            asym += d * d;
        }
    }
    gf = sqrt(gf2);
    if (!(gf > 0.0) || !isfinite(gf) || sqrt(asym) > STRUCTURE_TOL * gf ||
        fabs(tr - gf) > STRUCTURE_TOL * gf)
        return 0;
    total2 = gf2;
    for (size_t i = 0; i < num_items; i++) {
        const float *r = x + i * f;
        double rr = 0.0;
        for (size_t j = 0; j < f; j++)
            rr += (double)r[j] * r[j];
        if (rr == 0.0)
            continue;
        if (!isfinite(rr))
            return 0;
        total2 += rr;
        n++;
        if (r0 == NULL) {
            r0 = r;
            continue;
        }
        d2 = 0.0;
        for (size_t j = 0; j < f; j++)
            d2 += ((double)r[j] - r0[j]) * ((double)r[j] - r0[j]);
        if (sqrt(d2) > STRUCTURE_TOL * gf)
            return 0;
    }
    if (n < min_items || n == 0)
        return 0;
    /* The share of the norm each part carries, and the Gram slot is r0 r0^T / (k c). */
    share = sqrt(total2 / (1.0 + (double)n));
    if (fabs(gf - share) > STRUCTURE_TOL * share)
        return 0;
    d2 = 0.0;
    for (size_t a = 0; a < f; a++)
        for (size_t b = 0; b < f; b++) {
            double d = (double)r0[a] * r0[b] / gf - (double)g[a * f + b];
            d2 += d * d;
        }
    return sqrt(d2) <= STRUCTURE_TOL * gf;
}

void fa_als_scores(float *scores, const fa_params *v, const float *u, const int32_t *items,
                   size_t n)
{
    size_t f = fa_params_factors(v);

    for (size_t k = 0; k < n; k++) {
        const float *row = fa_params_item_row(v, (size_t)items[k]);
        double s = 0.0;
        for (size_t j = 0; j < f; j++)
            s += (double)u[j] * row[j];
        scores[k] = (float)s;
    }
}
