#include "privacy/accountant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "privacy/pld.h"

struct fa_accountant {
    fa_accountant_kind kind;
    int64_t releases;
    double rdp[FA_RDP_NUM_ORDERS]; /* RDP: the cumulative vector (Mironov 2017, Prop. 1) */
    fa_rdp_cache *cache;           /* RDP: per-release vectors of recent settings */
    fa_pld *pld;                   /* PLD: the composed distribution, auto grid */
};

static const struct {
    fa_accountant_kind kind;
    const char *name;
    const char *short_name;
} NAMES[] = {
    {FA_ACCOUNTANT_RDP, FA_ACCOUNTANT_RDP_NAME, "rdp"},
    {FA_ACCOUNTANT_PLD, FA_ACCOUNTANT_PLD_NAME, "pld"},
};

#define NUM_NAMES (sizeof(NAMES) / sizeof(NAMES[0]))

const char *fa_accountant_name(fa_accountant_kind kind)
{
    for (size_t i = 0; i < NUM_NAMES; i++)
        if (NAMES[i].kind == kind)
            return NAMES[i].name;
    return NULL;
}

const char *fa_accountant_short_name(fa_accountant_kind kind)
{
    for (size_t i = 0; i < NUM_NAMES; i++)
        if (NAMES[i].kind == kind)
            return NAMES[i].short_name;
    return NULL;
}

int fa_accountant_parse(fa_accountant_kind *out, const char *name)
{
    for (size_t i = 0; i < NUM_NAMES; i++) {
        if (strcmp(name, NAMES[i].name) == 0 || strcmp(name, NAMES[i].short_name) == 0) {
            *out = NAMES[i].kind;
            return FA_OK;
        }
    }
    return FA_EINVAL;
}

int fa_accountant_new(fa_accountant **out, fa_accountant_kind kind, fa_error *err)
{
    fa_accountant *a;
    int rc;

    *out = NULL;
    if (fa_accountant_name(kind) == NULL)
        return fa_fail(err, FA_EINVAL, "accountant kind %d is unknown", (int)kind);
    a = calloc(1, sizeof(*a));
    if (a == NULL)
        return fa_fail(err, FA_ENOMEM, "out of memory for an accountant");
    a->kind = kind;
    rc = kind == FA_ACCOUNTANT_RDP ? fa_rdp_cache_new(&a->cache, err)
                                   : fa_pld_new(&a->pld, FA_PLD_INTERVAL_AUTO, err);
    if (rc < 0) {
        fa_accountant_free(a);
        return rc;
    }
    *out = a;
    return FA_OK;
}

int fa_accountant_copy(fa_accountant **out, const fa_accountant *a, fa_error *err)
{
    fa_accountant *c;
    int rc;

    if ((rc = fa_accountant_new(&c, a->kind, err)) < 0)
        return rc;
    c->releases = a->releases;
    memcpy(c->rdp, a->rdp, sizeof(c->rdp));
    /* Caches and memos too: a trial copy (the close's decide) composes the
     * running setting without computing its per-release state again. */
    if (a->cache != NULL)
        fa_rdp_cache_assign(c->cache, a->cache);
    if (a->pld != NULL) {
        fa_pld_free(c->pld);
        c->pld = NULL;
        if ((rc = fa_pld_copy(&c->pld, a->pld, err)) < 0) {
            fa_accountant_free(c);
            return rc;
        }
    }
    *out = c;
    return FA_OK;
}

void fa_accountant_free(fa_accountant *a)
{
    if (a == NULL)
        return;
    fa_rdp_cache_free(a->cache);
    fa_pld_free(a->pld);
    free(a);
}

fa_accountant_kind fa_accountant_kind_of(const fa_accountant *a)
{
    return a->kind;
}

int64_t fa_accountant_releases(const fa_accountant *a)
{
    return a->releases;
}

const double *fa_accountant_rdp(const fa_accountant *a)
{
    return a->kind == FA_ACCOUNTANT_RDP ? a->rdp : NULL;
}

int fa_accountant_compose(fa_accountant *a, double q, double sigma, int64_t count, fa_error *err)
{
    const double *round = NULL;
    int rc;

    if (count < 1 || count > FA_RDP_ROUNDS_MAX)
        return fa_fail(err, FA_EINVAL, "release count %lld is outside [1, %d]", (long long)count,
                       FA_RDP_ROUNDS_MAX);
    if (a->kind == FA_ACCOUNTANT_PLD) {
        /* Composition is convolution of the PLDs ([GPLD] Observation 3; pld.c). */
        if ((rc = fa_pld_compose_sgm(a->pld, q, sigma, count, err)) < 0)
            return rc;
    } else {
        /* RDP adds up over releases (Mironov 2017, Proposition 1). */
        if ((rc = fa_rdp_sgm_cached(&round, a->cache, q, sigma, err)) < 0)
            return rc;
        fa_rdp_add(a->rdp, round, (double)count);
    }
    a->releases += count;
    return FA_OK;
}

int fa_accountant_epsilon(double *eps_out, const fa_accountant *a, double delta, fa_error *err)
{
    double order;

    if (a->kind == FA_ACCOUNTANT_PLD)
        return fa_pld_epsilon(eps_out, a->pld, delta, err);
    return fa_rdp_epsilon(eps_out, &order, a->rdp, delta, err);
}

int fa_accountant_decide(fa_accountant *a, double *eps_before, double *eps_after,
                         const fa_budget *b, double q, double sigma, fa_error *err)
{
    fa_accountant *trial = NULL;
    int rc;

    *eps_before = 0.0;
    *eps_after = 0.0;
    if ((rc = fa_budget_check(b, err)) < 0 || (rc = fa_rdp_check(q, sigma, err)) < 0 ||
        (rc = fa_accountant_epsilon(eps_before, a, b->delta, err)) < 0 ||
        (rc = fa_accountant_copy(&trial, a, err)) < 0)
        return rc;
    if ((rc = fa_accountant_compose(trial, q, sigma, 1, err)) < 0 ||
        (rc = fa_accountant_epsilon(eps_after, trial, b->delta, err)) < 0)
        goto cleanup;
    if (!(*eps_after <= b->epsilon_max)) {
        rc = fa_fail(err, FA_EREFUSED,
                     "release would bring epsilon to %.6g, over the budget of %.6g at delta %g",
                     *eps_after, b->epsilon_max, b->delta);
        goto cleanup;
    }
    /* The trial becomes the running state: a keeps its address. */
    {
        fa_accountant tmp = *a;
        *a = *trial;
        *trial = tmp;
    }
cleanup:
    fa_accountant_free(trial);
    return rc;
}

int fa_accountant_epsilon_rounds(double *eps_out, fa_accountant_kind kind, double q, double sigma,
                                 int64_t rounds, double delta, fa_error *err)
{
    double order;

    if (kind == FA_ACCOUNTANT_PLD)
        return fa_pld_epsilon_rounds(eps_out, q, sigma, rounds, delta, err);
    if (kind == FA_ACCOUNTANT_RDP)
        return fa_rdp_epsilon_rounds(eps_out, &order, q, sigma, rounds, delta, err);
    return fa_fail(err, FA_EINVAL, "accountant kind %d is unknown", (int)kind);
}

int fa_accountant_calibrate(double *sigma_out, double *eps_out, fa_accountant_kind kind,
                            double target_eps, double q, int64_t rounds, double delta,
                            fa_error *err)
{
    double order;

    if (kind == FA_ACCOUNTANT_PLD)
        return fa_pld_calibrate(sigma_out, eps_out, target_eps, q, rounds, delta, err);
    if (kind == FA_ACCOUNTANT_RDP)
        return fa_rdp_calibrate(sigma_out, eps_out, &order, target_eps, q, rounds, delta, err);
    return fa_fail(err, FA_EINVAL, "accountant kind %d is unknown", (int)kind);
}

/*
 * The close composes releases one at a time, and in auto-grid mode a PLD
 * composed one round at a time may state a slightly different epsilon
 * than the same rounds composed at once (up to ~3e-4 relative, pld.h). So the
 * calibration aims CALIBRATION_MARGIN below the budget and is then
 * confirmed along the close's own path; sigma grows by that margin until
 * the planned releases fit.
 */
#define CALIBRATION_MARGIN 1e-3

int fa_accountant_resolve_config(fa_config *cfg, double *eps_out, fa_error *err)
{
    fa_accountant_kind kind;
    fa_accountant *a = NULL;
    double sigma, eps;
    int rc;

    *eps_out = 0.0;
    if (cfg->noise_multiplier != FA_CONFIG_AUTO)
        return FA_OK;
    if (fa_accountant_parse(&kind, cfg->accountant) < 0)
        return fa_fail(err, FA_EINVAL, "config key accountant must be pld or rdp, got '%.20s'",
                       cfg->accountant);
    if (cfg->planned_releases < 1)
        return fa_fail(err, FA_EINVAL, "config key noise_multiplier = auto needs planned_releases");
    if ((rc = fa_accountant_calibrate(
             &sigma, &eps, kind, cfg->epsilon_max * (1.0 - CALIBRATION_MARGIN), cfg->sampling_rate,
             cfg->planned_releases, cfg->delta, err)) < 0)
        return fa_fail(err, rc,
                       "noise_multiplier = auto: %lld releases at sampling rate %g cannot fit "
                       "epsilon %g at delta %g: %s",
                       (long long)cfg->planned_releases, cfg->sampling_rate, cfg->epsilon_max,
                       cfg->delta, err->msg);
    for (;;) {
        if ((rc = fa_accountant_new(&a, kind, err)) < 0)
            return rc;
        for (int64_t i = 0; i < cfg->planned_releases && rc == FA_OK; i++)
            rc = fa_accountant_compose(a, cfg->sampling_rate, sigma, 1, err);
        if (rc == FA_OK)
            rc = fa_accountant_epsilon(&eps, a, cfg->delta, err);
        fa_accountant_free(a);
        a = NULL;
        if (rc < 0)
            return rc;
        if (eps <= cfg->epsilon_max)
            break;
        if (sigma >= FA_RDP_SIGMA_MAX)
            return fa_fail(err, FA_EINVAL,
                           "noise_multiplier = auto: the budget needs more noise than %g",
                           FA_RDP_SIGMA_MAX);
        sigma = fmin(sigma * (1.0 + CALIBRATION_MARGIN), FA_RDP_SIGMA_MAX);
    }
    cfg->noise_multiplier = sigma;
    *eps_out = eps;
    return FA_OK;
}
