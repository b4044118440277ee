/*
 * Private alternating least squares (docs/model.md, "ALS"): the model half
 * of user-level DP matrix factorisation in the style of Chien et al. 2021
 * ("Private Alternating Least Squares", ICML) and Singhal et al. 2021
 * ("Federated Reconstruction", NeurIPS). The item factors V [num_items, F]
 * are public; each device's user vector never leaves it.
 *
 * Device step: u = normalize(sum of the rows of V the device interacted
 * with) (the limit of the ridge solve (V^T V + l I)^-1 V^T r as l grows,
 * which measured no worse), then its sufficient statistics, scaled by
 * c = 1 / sqrt(1 + n) for n interactions so that the update has norm
 * exactly 1 (0 when u is 0):
 *   row i of item_factors = c u   for each item i of the device,
 *   user_gram             = c u u^T.
 * Summed over a cohort these are b_i = sum_u c_u u and A = sum_u c_u u u^T,
 * the normal equations of the item half of weighted least squares on the
 * 0/1 interaction matrix (every (user, item) pair weighted c_u; Hu, Koren,
 * Volinsky 2008 with uniform confidence).
 *
 * Server step (on the noised mean, so pure post-processing of the DP
 * release): A' = (A + A^T) / 2 + lambda I with lambda = reg * |tr A'| / F,
 * doubled until A' is positive definite; each row v_i <- (1 - step) v_i +
 * step * A'^-1 b_i; user_gram <- (A + A^T) / 2.
 * Stateless; any thread may call these on data nobody else changes.
 */
#ifndef FA_MODEL_ALS_H
#define FA_MODEL_ALS_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct fa_params fa_params;

/*
 * The user vector (fa_params_factors(v) floats) of a device whose
 * interactions are the item rows items[0..n) of the ALS model v: the
 * normalised sum of their rows; all zero when that sum is 0. Rows outside
 * the model are skipped. Returns 1 when u is not zero, 0 otherwise.
 */
int fa_als_user_vector(float *u, const fa_params *v, const int32_t *items, size_t n);

/*
 * The device update (fa_params_len(v) floats, overwritten) of a device with
 * user vector u and interaction rows items[0..n) (each < num_items, no
 * repeats): see above. Its L2 norm is 1, or 0 when u is zero.
 */
void fa_als_device_update(float *update, const fa_params *v, const float *u, const int32_t *items,
                          size_t n);

/*
 * One server step on theta (an ALS vector of num_items x factors) from the
 * mean update `mean` of the same layout. reg > 0, 0 < step <= 1. FA_EINVAL
 * for bad arguments or a non-finite input, FA_EINTERNAL when no
 * regularisation makes the system solvable or the result is not finite
 * (theta unchanged in every failure).
 */
int fa_als_step(float *theta, const float *mean, size_t num_items, size_t factors, double reg,
                double step, fa_error *err) FA_MUST_CHECK;

/*
 * x <- (G + lambda I)^-1 x for the released Gram matrix G of the ALS model v
 * (its user_gram tensor) with lambda as in the server step (reg relative
 * to the trace; doubled until solvable). x has fa_params_factors(v)
 * floats. FA_EINVAL when G is not finite, FA_EINTERNAL when no lambda
 * works (x unchanged in both).
 */
int fa_als_gram_solve(float *x, const fa_params *v, double reg, fa_error *err) FA_MUST_CHECK;

/*
 * Whether update x (num_items x f item rows, then the f x f Gram slot) has
 * the form every honest ALS device sends, up to a positive scale k: the
 * Gram slot is k c u u^T for a unit u (symmetric, one positive eigenvalue:
 * trace = Frobenius norm), every nonzero item row is the same k c u, there
 * are n >= min_items of them, and k c = |x| / sqrt(1 + n) (so no row
 * carries more than its share of the norm). 1 if so, within a relative
 * tolerance of 1e-3 for float rounding, 0 otherwise (also for x = 0). It
 * reads only x, so as a trust weight it keeps each device's move of the
 * sum within S (docs/privacy.md).
 */
int fa_als_structure_ok(const float *x, size_t num_items, size_t f, size_t min_items);

/* Scores (u . v_i) of the item rows items[0..n) for user vector u. */
void fa_als_scores(float *scores, const fa_params *v, const float *u, const int32_t *items,
                   size_t n);

#endif
