/*
 * The accountant on the server's real close: noise calibrated from the
 * budget (noise_multiplier = auto) lasts exactly the planned releases, a
 * change of accountant is a ledger event, and a second server process
 * that did not write the entries before its close recomputes the same
 * epsilon from the recorded mechanisms. Every ledger is then verified
 * by fa_ledger_verify, which re-runs the recorded accountant itself.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "pgtest.h"
#include "privacy/accountant.h"
#include "privacy/pld.h"

TestSuite(accounting, .timeout = 300);

static void past_deadline(h_world *w)
{
    h_advance(w, h_until_deadline(w) + 0.5);
}

/* One round with one device through aggregator p, closed at its deadline. */
static void one_round(h_world *w, int p, unsigned dev)
{
    const char *reason = NULL;
    int rc = h_participate(w, p, dev, &reason);

    cr_assert_eq(rc, FA_OK, "device %u: code %d reason %s", dev, rc, reason ? reason : "-");
    past_deadline(w);
    h_tick(w, p);
}

static long kind_count(h_world *w, const char *kind)
{
    char sql[128];

    (void)snprintf(sql, sizeof(sql), "SELECT count(*) FROM privacy_ledger WHERE kind = '%s'", kind);
    return h_sql_long(w, sql);
}

/* The cumulative epsilon of entry seq, in micro-epsilon (h_sql_long reads integers). */
static long micro_epsilon(h_world *w, int seq)
{
    char sql[160];

    (void)snprintf(sql, sizeof(sql),
                   "SELECT round((entry::jsonb->>'epsilon')::float8 * 1e6)::bigint"
                   " FROM privacy_ledger WHERE seq = %d",
                   seq);
    return h_sql_long(w, sql);
}

/* PLD epsilon of `releases` releases at (q, sigma), composed one at a time. */
static double pld_one_by_one(double q, double sigma, int releases, double delta)
{
    fa_pld *pld = NULL;
    fa_error err = FA_ERROR_INIT;
    double eps = 0.0;

    cr_assert_eq(fa_pld_new(&pld, FA_PLD_INTERVAL_AUTO, &err), FA_OK, "%s", err.msg);
    for (int i = 0; i < releases; i++)
        cr_assert_eq(fa_pld_compose_sgm(pld, q, sigma, 1, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(fa_pld_epsilon(&eps, pld, delta, &err), FA_OK, "%s", err.msg);
    fa_pld_free(pld);
    return eps;
}

Test(accounting, auto_noise_lasts_the_planned_releases_and_refuses_the_next)
{
    fa_config cfg;
    fa_error err = FA_ERROR_INIT;
    double planned_eps = 0.0, sigma;
    h_world w;

    h_config(&cfg, 1, 100, 60.0, 1.0);
    cfg.noise_multiplier = FA_CONFIG_AUTO;
    cfg.planned_releases = 3;
    cfg.epsilon_max = 4.0;
    cr_assert_eq(fa_config_validate(&cfg, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(fa_accountant_resolve_config(&cfg, &planned_eps, &err), FA_OK, "%s", err.msg);
    sigma = cfg.noise_multiplier;
    cr_assert(sigma >= FA_RDP_SIGMA_MIN && sigma <= FA_RDP_SIGMA_MAX, "sigma %g", sigma);
    cr_assert_leq(planned_eps, 4.0);
    /* Calibrated, not merely safe: 0.2% less noise would overspend. */
    cr_assert_gt(pld_one_by_one(1.0, sigma * 0.998, 3, cfg.delta), 4.0,
                 "sigma %g is not the smallest that fits", sigma);

    h_world_start(&w, &cfg, 1, 0);
    for (unsigned r = 0; r < 4; r++)
        one_round(&w, 0, r);
    cr_assert_eq(kind_count(&w, "release"), 3, "the planned releases all fit");
    cr_assert_eq(kind_count(&w, "refusal"), 1, "the release after them is refused");
    cr_assert_eq(h_sql_long(&w, "SELECT seq FROM privacy_ledger WHERE kind = 'refusal'"), 4);
    /* The ledger's epsilon is the PLD of the three releases, recomputed here. */
    cr_assert_eq(micro_epsilon(&w, 3), lround(pld_one_by_one(1.0, sigma, 3, cfg.delta) * 1e6));
    cr_assert_eq(micro_epsilon(&w, 4), micro_epsilon(&w, 3), "a refusal spends nothing");
    cr_assert_eq(h_sql_long(&w, "SELECT count(*) FROM privacy_ledger"
                                " WHERE entry::jsonb->>'accountant' = 'pld-sgm-v1'"
                                " AND entry::jsonb->>'format' = 'fedagg-ledger-v3'"),
                 4);
    /* Entries record the mechanism, not the accountant's state. */
    cr_assert_lt(h_sql_long(&w, "SELECT max(octet_length(entry)) FROM privacy_ledger"), 1024);
    h_verify_ledger(&w);
    h_world_stop(&w);
}

Test(accounting, auto_noise_refuses_a_budget_it_cannot_meet)
{
    fa_config cfg;
    fa_error err = FA_ERROR_INIT;
    double eps;

    h_config(&cfg, 1, 100, 60.0, 1.0);
    cfg.noise_multiplier = FA_CONFIG_AUTO;
    cfg.planned_releases = 0;
    cr_assert_eq(fa_config_validate(&cfg, &err), FA_EINVAL);
    cr_assert(strstr(err.msg, "planned_releases") != NULL, "%s", err.msg);
    cfg.planned_releases = 100000;
    cfg.epsilon_max = 0.01; /* needs sigma far above 100 */
    cr_assert_eq(fa_accountant_resolve_config(&cfg, &eps, &err), FA_EINVAL);
    cr_assert_eq(cfg.noise_multiplier, FA_CONFIG_AUTO, "an unmet budget leaves no sigma");
}

Test(accounting, a_changed_accountant_is_a_ledger_event_and_the_mixed_ledger_verifies)
{
    fa_config cfg;
    h_world w;
    long rdp_eps, pld_eps;

    h_config(&cfg, 1, 100, 60.0, 1.0);
    (void)snprintf(cfg.accountant, sizeof(cfg.accountant), "rdp");
    h_world_start(&w, &cfg, 1, 0);
    one_round(&w, 0, 0);
    one_round(&w, 0, 1);
    rdp_eps = micro_epsilon(&w, 2);
    /* The operator switches to the tighter accountant and restarts. */
    (void)snprintf(w.cfg.accountant, sizeof(w.cfg.accountant), "pld");
    h_world_restart(&w, 0);
    one_round(&w, 0, 2);
    cr_assert_eq(h_sql_long(&w, "SELECT count(*) FROM privacy_ledger"), 4);
    cr_assert_eq(h_sql_long(&w, "SELECT seq FROM privacy_ledger WHERE kind = 'budget'"), 3);
    cr_assert_eq(h_sql_long(&w, "SELECT count(*) FROM privacy_ledger WHERE seq = 3"
                                " AND entry::jsonb->>'accountant' = 'pld-sgm-v1'"),
                 1);
    /* The event restates the same two releases in PLD: less, and exactly its PLD. */
    pld_eps = micro_epsilon(&w, 3);
    cr_assert_lt(pld_eps, rdp_eps, "PLD %ld >= RDP %ld micro-epsilon", pld_eps, rdp_eps);
    cr_assert_eq(pld_eps, lround(pld_one_by_one(1.0, 1.0, 2, cfg.delta) * 1e6));
    cr_assert_eq(micro_epsilon(&w, 4), lround(pld_one_by_one(1.0, 1.0, 3, cfg.delta) * 1e6));
    h_verify_ledger(&w);
    h_world_stop(&w);
}

Test(accounting, a_process_that_did_not_write_the_ledger_recomputes_the_same_epsilon)
{
    fa_config cfg;
    h_world w;

    h_config(&cfg, 1, 100, 60.0, 1.5);
    h_world_start(&w, &cfg, 2, 0);
    /* The two processes take turns closing: each close but the first
     * builds on entries the other one wrote. */
    for (unsigned r = 0; r < 6; r++)
        one_round(&w, (int)(r % 2), r);
    cr_assert_eq(kind_count(&w, "release"), 6);
    cr_assert_eq(micro_epsilon(&w, 6), lround(pld_one_by_one(1.0, 1.5, 6, cfg.delta) * 1e6));
    h_verify_ledger(&w);
    h_world_stop(&w);
}
