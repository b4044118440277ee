#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "privacy/budget.h"

Test(budget, a_release_within_the_budget_is_allowed)
{
    const fa_budget b = {5.0, 1e-5};
    fa_budget_decision d;
    fa_error err = FA_ERROR_INIT;
    double one[FA_RDP_NUM_ORDERS];

    cr_assert_eq(fa_budget_decide(&d, &b, NULL, 1.0, 2.0, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(d.allowed, 1);
    cr_assert_eq(fa_rdp_sgm(one, 1.0, 2.0, &err), FA_OK);
    cr_assert_eq(memcmp(d.round_rdp, one, sizeof(one)), 0);
    cr_assert_eq(memcmp(d.cumulative_rdp, one, sizeof(one)), 0);
    cr_assert_eq(d.epsilon_before, 0.0);
    cr_assert_gt(d.epsilon_after, 0.0);
    cr_assert_leq(d.epsilon_after, 5.0);
    cr_assert_eq(d.epsilon, d.epsilon_after);
    cr_assert_eq(d.order, d.order_after);
}

Test(budget, spending_stops_at_the_budget_and_refusals_spend_nothing)
{
    const fa_budget b = {3.0, 1e-5};
    double cum[FA_RDP_NUM_ORDERS] = {0};
    double last_eps = 0.0;
    int allowed = 0, rc;
    fa_error err = FA_ERROR_INIT;

    for (;;) {
        fa_budget_decision d;
        rc = fa_budget_decide(&d, &b, cum, 0.05, 1.0, &err);
        if (rc == FA_EREFUSED) {
            cr_assert_eq(d.allowed, 0);
            cr_assert_gt(d.epsilon_after, 3.0);
            /* Nothing spent: the vector and epsilon are those before. */
            cr_assert_eq(memcmp(d.cumulative_rdp, cum, sizeof(cum)), 0);
            cr_assert_eq(d.epsilon, d.epsilon_before);
            cr_assert_float_eq(d.epsilon, last_eps, 1e-12);
            cr_assert(strstr(err.msg, "over the budget") != NULL, "%s", err.msg);
            break;
        }
        cr_assert_eq(rc, FA_OK, "%s", err.msg);
        cr_assert_geq(d.epsilon, last_eps);
        cr_assert_leq(d.epsilon, 3.0);
        memcpy(cum, d.cumulative_rdp, sizeof(cum));
        last_eps = d.epsilon;
        allowed++;
        cr_assert_lt(allowed, 100000);
    }
    cr_assert_gt(allowed, 10);
}

Test(budget, bad_budgets_and_parameters_are_rejected)
{
    fa_budget_decision d;
    fa_error err = FA_ERROR_INIT;
    const fa_budget ok = {1.0, 1e-5};
    const fa_budget bad[] = {{0.0, 1e-5}, {-1.0, 1e-5}, {NAN, 1e-5}, {1.0, 0.0}, {1.0, 1.0}};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(fa_budget_decide(&d, &bad[i], NULL, 1.0, 1.0, &err), FA_EINVAL);
    cr_assert_eq(fa_budget_decide(&d, &ok, NULL, 0.0, 1.0, &err), FA_EINVAL);
    cr_assert_eq(fa_budget_decide(&d, &ok, NULL, 1.0, 0.1, &err), FA_EINVAL);
    cr_assert_eq(fa_budget_check(&ok, &err), FA_OK);
}
