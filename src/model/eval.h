/*
 * Leave-one-out ranking metrics (He et al. 2017, section 4.1): each user's
 * held-out item is ranked against 99 sampled negatives. rank = the number of
 * negatives scoring >= the test item (ties count against it); HR@10 =
 * mean [rank < 10]; NDCG@10 = mean [rank < 10] / log2(rank + 2).
 * Stateless; any thread may call these on data nobody changes.
 */
#ifndef FA_MODEL_EVAL_H
#define FA_MODEL_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct fa_dataset fa_dataset;
typedef struct fa_params fa_params;
typedef struct fa_ncf fa_ncf;

#define FA_EVAL_TOP_K 10

typedef struct fa_eval_result {
    double hr10;   /* hit ratio at 10 */
    double ndcg10; /* NDCG at 10 */
    int32_t users; /* users evaluated (those with a test line) */
} fa_eval_result;

/*
 * The rank of scores[0] among scores[1..n-1]: how many of those are >= it.
 * A NaN test score ranks last; a NaN negative counts against the test item.
 */
size_t fa_eval_rank(const float *scores, size_t n);

/* [rank < 10] and [rank < 10] / log2(rank + 2) of one rank. */
double fa_eval_hit(size_t rank);
double fa_eval_ndcg(size_t rank);

/*
 * Scores of the item rows cand[0..n) for user row `user` of ds under theta:
 * NCF logits with user_vec (64 floats) in workspace ws (at least n rows);
 * for ALS, u . v_i with the vector the user's training items give, as on
 * the device (user_vec and ws unused, may be NULL).
 */
void fa_eval_user_scores(float *scores, fa_ncf *ws, const fa_params *theta, const float *user_vec,
                         const fa_dataset *ds, int32_t user, const int32_t *cand, size_t n);

/*
 * HR@10 and NDCG@10 of theta over every user of ds that has a test line,
 * each scored with their own vector from user_table [num_users, 64] (NCF)
 * or, for ALS, with the vector their training interactions give
 * (user_table unused). The model must cover the dataset's items.
 * FA_EINVAL, FA_ENOMEM.
 */
int fa_eval_dataset(fa_eval_result *out, const fa_params *theta, const float *user_table,
                    const fa_dataset *ds, fa_error *err) FA_MUST_CHECK;

#endif
