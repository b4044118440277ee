/*
 * The accountant interface over RDP and PLD: decisions compose only what is
 * released, copies are independent, and a noise multiplier calibrated from
 * the budget lasts exactly the planned releases.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/config.h"
#include "privacy/accountant.h"
#include "privacy/pld.h"

static const fa_accountant_kind KINDS[] = {FA_ACCOUNTANT_RDP, FA_ACCOUNTANT_PLD};

Test(accountant, names_parse_both_ways)
{
    fa_accountant_kind k;

    cr_assert_eq(fa_accountant_parse(&k, "pld-sgm-v1"), FA_OK);
    cr_assert_eq(k, FA_ACCOUNTANT_PLD);
    cr_assert_eq(fa_accountant_parse(&k, "rdp"), FA_OK);
    cr_assert_eq(k, FA_ACCOUNTANT_RDP);
    cr_assert_str_eq(fa_accountant_name(FA_ACCOUNTANT_RDP), "rdp-sgm-v1");
    cr_assert_str_eq(fa_accountant_short_name(FA_ACCOUNTANT_PLD), "pld");
    cr_assert_eq(fa_accountant_parse(&k, "pld-sgm-v2"), FA_EINVAL);
    cr_assert_eq(fa_accountant_parse(&k, ""), FA_EINVAL);
    cr_assert_null(fa_accountant_name((fa_accountant_kind)7));
}

Test(accountant, a_refusal_composes_nothing_and_a_release_composes_once)
{
    for (size_t k = 0; k < 2; k++) {
        fa_accountant *a = NULL, *ref = NULL;
        fa_error err = FA_ERROR_INIT;
        const fa_budget b = {1.0, 1e-5};
        double before, after, eps, want;

        cr_assert_eq(fa_accountant_new(&a, KINDS[k], &err), FA_OK);
        cr_assert_eq(fa_accountant_new(&ref, KINDS[k], &err), FA_OK);
        cr_assert_eq(fa_accountant_epsilon(&eps, a, 1e-5, &err), FA_OK);
        cr_assert_eq(eps, 0.0, "nothing composed states epsilon 0");
        cr_assert_eq(fa_accountant_decide(a, &before, &after, &b, 1.0, 8.0, &err), FA_OK, "%s",
                     err.msg);
        cr_assert_eq(before, 0.0);
        cr_assert_eq(fa_accountant_compose(ref, 1.0, 8.0, 1, &err), FA_OK);
        cr_assert_eq(fa_accountant_epsilon(&want, ref, 1e-5, &err), FA_OK);
        cr_assert_eq(after, want);
        cr_assert_eq(fa_accountant_releases(a), 1);
        /* A release at sigma 0.5 and q = 1 is far over the budget. */
        cr_assert_eq(fa_accountant_decide(a, &before, &after, &b, 1.0, 0.5, &err), FA_EREFUSED);
        cr_assert(strstr(err.msg, "over the budget") != NULL, "%s", err.msg);
        cr_assert_eq(before, want);
        cr_assert_gt(after, 1.0);
        cr_assert_eq(fa_accountant_releases(a), 1);
        cr_assert_eq(fa_accountant_epsilon(&eps, a, 1e-5, &err), FA_OK);
        cr_assert_eq(eps, want, "a refusal left the state as it was");
        /* Out of domain: nothing changes either. */
        cr_assert_eq(fa_accountant_decide(a, &before, &after, &b, 1.0, 0.01, &err), FA_EINVAL);
        cr_assert_eq(fa_accountant_releases(a), 1);
        fa_accountant_free(a);
        fa_accountant_free(ref);
    }
}

/*
 * The close decides on a trial copy that keeps the running accountant's
 * memo (the last setting's discretisation); deciding round after round
 * must state exactly what composing the same rounds one at a time states,
 * through a change of setting and back.
 */
Test(accountant, deciding_round_after_round_equals_composing_one_at_a_time)
{
    for (size_t k = 0; k < 2; k++) {
        fa_accountant *a = NULL, *ref = NULL;
        fa_error err = FA_ERROR_INIT;
        const fa_budget b = {1e6, 1e-5};
        double before, after, want;

        cr_assert_eq(fa_accountant_new(&a, KINDS[k], &err), FA_OK);
        cr_assert_eq(fa_accountant_new(&ref, KINDS[k], &err), FA_OK);
        for (int i = 0; i < 12; i++) {
            const double q = i >= 5 && i < 8 ? 0.05 : 0.01, sigma = i >= 5 && i < 8 ? 1.3 : 1.1;
            cr_assert_eq(fa_accountant_decide(a, &before, &after, &b, q, sigma, &err), FA_OK, "%s",
                         err.msg);
            cr_assert_eq(fa_accountant_compose(ref, q, sigma, 1, &err), FA_OK, "%s", err.msg);
            cr_assert_eq(fa_accountant_epsilon(&want, ref, 1e-5, &err), FA_OK);
            cr_assert_eq(after, want, "%s round %d: decided %.17g, composed %.17g",
                         fa_accountant_name(KINDS[k]), i, after, want);
        }
        cr_assert_eq(fa_accountant_releases(a), 12);
        fa_accountant_free(a);
        fa_accountant_free(ref);
    }
}

Test(accountant, a_copy_is_independent)
{
    for (size_t k = 0; k < 2; k++) {
        fa_accountant *a = NULL, *c = NULL;
        fa_error err = FA_ERROR_INIT;
        double ea, ec;

        cr_assert_eq(fa_accountant_new(&a, KINDS[k], &err), FA_OK);
        cr_assert_eq(fa_accountant_compose(a, 0.1, 1.1, 3, &err), FA_OK);
        cr_assert_eq(fa_accountant_copy(&c, a, &err), FA_OK);
        cr_assert_eq(fa_accountant_kind_of(c), KINDS[k]);
        cr_assert_eq(fa_accountant_compose(c, 0.1, 1.1, 1, &err), FA_OK);
        cr_assert_eq(fa_accountant_epsilon(&ea, a, 1e-5, &err), FA_OK);
        cr_assert_eq(fa_accountant_epsilon(&ec, c, 1e-5, &err), FA_OK);
        cr_assert_gt(ec, ea);
        cr_assert_eq(fa_accountant_releases(a), 3);
        cr_assert_eq(fa_accountant_releases(c), 4);
        fa_accountant_free(a);
        fa_accountant_free(c);
    }
}

/*
 * The running accountant agrees with the one-shot computation: RDP
 * exactly (composition adds), PLD to the auto grid's batch-versus-single
 * difference (pld.h: up to ~3e-4 relative), and PLD never states more than RDP.
 */
Test(accountant, running_and_one_shot_agree_and_pld_is_tighter)
{
    static const struct {
        double q, sigma;
        int64_t t;
    } CASES[] = {{1.0, 2.0, 10}, {0.01, 1.1, 100}, {0.2, 1.0, 50}};

    for (size_t i = 0; i < sizeof(CASES) / sizeof(CASES[0]); i++) {
        double eps[2], once;
        for (size_t k = 0; k < 2; k++) {
            fa_accountant *a = NULL;
            fa_error err = FA_ERROR_INIT;
            cr_assert_eq(fa_accountant_new(&a, KINDS[k], &err), FA_OK);
            for (int64_t r = 0; r < CASES[i].t; r++)
                cr_assert_eq(fa_accountant_compose(a, CASES[i].q, CASES[i].sigma, 1, &err), FA_OK);
            cr_assert_eq(fa_accountant_epsilon(&eps[k], a, 1e-5, &err), FA_OK);
            cr_assert_eq(fa_accountant_epsilon_rounds(&once, KINDS[k], CASES[i].q, CASES[i].sigma,
                                                      CASES[i].t, 1e-5, &err),
                         FA_OK);
            cr_assert(fabs(eps[k] - once) <= (k == 0 ? 1e-12 : 1e-3) * once,
                      "case %zu kind %d: running %.17g, one shot %.17g", i, (int)KINDS[k], eps[k],
                      once);
            fa_accountant_free(a);
        }
        cr_assert_lt(eps[1], eps[0], "case %zu: PLD %g, RDP %g", i, eps[1], eps[0]);
    }
}

/* At the recipe's q = 0.2 and T = 200 PLD needs several percent less noise than RDP. */
Test(accountant, pld_calibrates_less_noise_than_rdp)
{
    double s_rdp, s_pld, e_rdp, e_pld;
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(
        fa_accountant_calibrate(&s_rdp, &e_rdp, FA_ACCOUNTANT_RDP, 8.0, 0.2, 200, 1e-5, &err),
        FA_OK, "%s", err.msg);
    cr_assert_eq(
        fa_accountant_calibrate(&s_pld, &e_pld, FA_ACCOUNTANT_PLD, 8.0, 0.2, 200, 1e-5, &err),
        FA_OK, "%s", err.msg);
    cr_assert_leq(e_rdp, 8.0);
    cr_assert_leq(e_pld, 8.0);
    cr_assert_lt(s_pld, 0.97 * s_rdp, "PLD sigma %g, RDP sigma %g", s_pld, s_rdp);
}

static void auto_config(fa_config *cfg, const char *accountant, int64_t planned, double q)
{
    fa_error err = FA_ERROR_INIT;

    fa_config_defaults(cfg);
    cr_assert_eq(fa_config_set(cfg, "noise_multiplier", "auto", &err), FA_OK, "%s", err.msg);
    cr_assert_eq(cfg->noise_multiplier, FA_CONFIG_AUTO);
    cfg->planned_releases = planned;
    cfg->sampling_rate = q;
    cfg->epsilon_max = 3.0;
    cfg->delta = 1e-6;
    (void)snprintf(cfg->accountant, sizeof(cfg->accountant), "%s", accountant);
}

/*
 * noise_multiplier = auto: the planned releases, decided one at a time as
 * the close decides them, all fit; the next one is refused; and 0.2% less
 * noise would not have lasted (the calibration is tight).
 */
Test(accountant, auto_noise_lasts_the_planned_releases_then_refuses)
{
    static const char *const ACC[] = {"rdp", "pld"};
    static const struct {
        int64_t planned;
        double q;
    } PLANS[] = {{1, 1.0}, {20, 1.0}, {200, 0.05}};

    for (size_t k = 0; k < 2; k++) {
        for (size_t p = 0; p < sizeof(PLANS) / sizeof(PLANS[0]); p++) {
            fa_config cfg;
            fa_accountant *a = NULL, *tight = NULL;
            fa_error err = FA_ERROR_INIT;
            const fa_budget b = {3.0, 1e-6};
            double eps, before, after, sigma;

            auto_config(&cfg, ACC[k], PLANS[p].planned, PLANS[p].q);
            cr_assert_eq(fa_accountant_resolve_config(&cfg, &eps, &err), FA_OK, "%s", err.msg);
            sigma = cfg.noise_multiplier;
            cr_assert_leq(eps, 3.0);
            cr_assert_eq(fa_accountant_new(&a, KINDS[k], &err), FA_OK);
            cr_assert_eq(fa_accountant_new(&tight, KINDS[k], &err), FA_OK);
            for (int64_t r = 0; r < PLANS[p].planned; r++) {
                cr_assert_eq(fa_accountant_decide(a, &before, &after, &b, PLANS[p].q, sigma, &err),
                             FA_OK, "%s plan %zu: release %lld of %lld refused: %s", ACC[k], p,
                             (long long)r + 1, (long long)PLANS[p].planned, err.msg);
                cr_assert_eq(fa_accountant_compose(tight, PLANS[p].q, sigma * 0.998, 1, &err),
                             FA_OK);
            }
            cr_assert_eq(after, eps, "the start-up log states the epsilon the close reaches");
            cr_assert_eq(fa_accountant_decide(a, &before, &after, &b, PLANS[p].q, sigma, &err),
                         FA_EREFUSED, "%s plan %zu: the release after the plan fit", ACC[k], p);
            cr_assert_eq(fa_accountant_epsilon(&eps, tight, 1e-6, &err), FA_OK);
            cr_assert_gt(eps, 3.0, "%s plan %zu: sigma %g is not the smallest that lasts", ACC[k],
                         p, sigma);
            fa_accountant_free(a);
            fa_accountant_free(tight);
        }
    }
}

Test(accountant, a_fixed_noise_multiplier_is_left_alone)
{
    fa_config cfg;
    fa_error err = FA_ERROR_INIT;
    double eps = -1.0;

    fa_config_defaults(&cfg);
    cfg.noise_multiplier = 1.3;
    cr_assert_eq(fa_accountant_resolve_config(&cfg, &eps, &err), FA_OK);
    cr_assert_eq(cfg.noise_multiplier, 1.3);
    cr_assert_eq(eps, 0.0);
}
