#include "privacy/budget.h"

#include <math.h>
#include <string.h>

int fa_budget_check(const fa_budget *b, fa_error *err)
{
    if (!isfinite(b->epsilon_max) || b->epsilon_max <= 0.0)
        return fa_fail(err, FA_EINVAL, "budget epsilon %g is not a finite positive number",
                       b->epsilon_max);
    if (!isfinite(b->delta) || b->delta <= 0.0 || b->delta >= 1.0)
        return fa_fail(err, FA_EINVAL, "budget delta %g is outside (0, 1)", b->delta);
    return FA_OK;
}

int fa_budget_decide(fa_budget_decision *out, const fa_budget *b, const double *cumulative_rdp,
                     double q, double sigma, fa_error *err)
{
    double after[FA_RDP_NUM_ORDERS];
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = fa_budget_check(b, err)) < 0 || (rc = fa_rdp_sgm(out->round_rdp, q, sigma, err)) < 0)
        return rc;
    if (cumulative_rdp != NULL)
        memcpy(out->cumulative_rdp, cumulative_rdp, sizeof(out->cumulative_rdp));
    /* Composition: RDP adds up over releases (Mironov 2017, Proposition 1). */
    memcpy(after, out->cumulative_rdp, sizeof(after));
    fa_rdp_add(after, out->round_rdp, 1.0);
    if ((rc = fa_rdp_epsilon(&out->epsilon_before, &out->order_before, out->cumulative_rdp,
                             b->delta, err)) < 0 ||
        (rc = fa_rdp_epsilon(&out->epsilon_after, &out->order_after, after, b->delta, err)) < 0)
        return rc;
    out->allowed = out->epsilon_after <= b->epsilon_max;
    if (!out->allowed) {
        out->epsilon = out->epsilon_before;
        out->order = out->order_before;
        return fa_fail(err, FA_EREFUSED,
                       "release would bring epsilon to %.6g, over the budget of %.6g at delta %g",
                       out->epsilon_after, b->epsilon_max, b->delta);
    }
    memcpy(out->cumulative_rdp, after, sizeof(after));
    out->epsilon = out->epsilon_after;
    out->order = out->order_after;
    return FA_OK;
}
