/*
 * The privacy budget: a configured (epsilon_max, delta) and the decision
 * whether one more release of the sampled Gaussian mechanism fits, given the
 * cumulative RDP spent so far (the last ledger entry's vector). Pure
 * functions on caller-owned structs; any thread.
 */
#ifndef FA_PRIVACY_BUDGET_H
#define FA_PRIVACY_BUDGET_H

#include "core/error.h"
#include "privacy/rdp.h"

typedef struct fa_budget {
    double epsilon_max; /* total epsilon allowed, > 0 */
    double delta;       /* the delta every epsilon is stated at, in (0, 1) */
} fa_budget;

#define FA_BUDGET_INIT                                                                             \
    {                                                                                              \
        0.0, 0.0                                                                                   \
    }

typedef struct fa_budget_decision {
    int allowed;                              /* 1: the release fits */
    double epsilon_before;                    /* cumulative epsilon without it */
    double order_before;                      /* order attaining epsilon_before (0: none) */
    double epsilon_after;                     /* cumulative epsilon with it */
    double order_after;                       /* order attaining epsilon_after */
    double round_rdp[FA_RDP_NUM_ORDERS];      /* RDP of the proposed release */
    double cumulative_rdp[FA_RDP_NUM_ORDERS]; /* after the decision: + round if allowed */
    double epsilon;                           /* cumulative epsilon after the decision */
    double order;                             /* its order */
} fa_budget_decision;

/* FA_OK when the budget is well formed, FA_EINVAL naming the bad field. */
int fa_budget_check(const fa_budget *b, fa_error *err) FA_MUST_CHECK;

/*
 * Decides a proposed release at sampling rate q and noise multiplier sigma
 * against budget b, given the cumulative RDP so far (NULL: nothing spent).
 * Fills out in every outcome. Returns FA_OK when the release fits
 * (epsilon_after <= epsilon_max), FA_EREFUSED when it would exceed the
 * budget (out->cumulative_rdp then equals the input: a refusal spends
 * nothing), FA_EINVAL for bad parameters, FA_EINTERNAL from the accountant.
 */
int fa_budget_decide(fa_budget_decision *out, const fa_budget *b, const double *cumulative_rdp,
                     double q, double sigma, fa_error *err) FA_MUST_CHECK;

#endif
