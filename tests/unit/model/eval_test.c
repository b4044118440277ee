#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "model/data.h"
#include "model/eval.h"
#include "model/ncf.h"
#include "model/params.h"
#include "model/synth.h"

Test(eval, rank_counts_ties_and_nans_against_the_test_item)
{
    float s[5] = {0.5f, 0.1f, 0.5f, 0.9f, 0.4f};

    cr_assert_eq(fa_eval_rank(s, 5), 2u);
    s[1] = NAN;
    cr_assert_eq(fa_eval_rank(s, 5), 3u);
    s[0] = NAN;
    cr_assert_eq(fa_eval_rank(s, 5), 4u);
    cr_assert_eq(fa_eval_rank(s, 1), 0u);
}

Test(eval, hit_and_ndcg_of_a_rank)
{
    cr_assert_float_eq(fa_eval_hit(0), 1.0, 1e-12);
    cr_assert_float_eq(fa_eval_ndcg(0), 1.0, 1e-12);
    cr_assert_float_eq(fa_eval_ndcg(1), 1.0 / log2(3.0), 1e-12);
    cr_assert_float_eq(fa_eval_hit(9), 1.0, 1e-12);
    cr_assert_float_eq(fa_eval_ndcg(9), 1.0 / log2(11.0), 1e-12);
    cr_assert_float_eq(fa_eval_hit(10), 0.0, 1e-12);
    cr_assert_float_eq(fa_eval_ndcg(10), 0.0, 1e-12);
}

Test(eval, dataset_metrics_match_a_direct_computation)
{
    fa_synth_opts o = FA_SYNTH_OPTS_INIT;
    fa_dataset *ds = NULL;
    fa_params *p = NULL, *small = NULL;
    fa_ncf *ws = NULL;
    fa_error err = FA_ERROR_INIT;
    fa_eval_result res;
    float *users, scores[FA_DATASET_CANDIDATES];
    double hr = 0, ndcg = 0;

    o.num_users = 40;
    o.num_items = 160;
    cr_assert_eq(fa_synth_dataset(&ds, &o, &err), FA_OK);
    cr_assert_eq(fa_params_new(&p, 160, &err), FA_OK);
    fa_params_init_random(p, 4);
    users = malloc(40 * 64 * sizeof(float));
    cr_assert_not_null(users);
    for (int u = 0; u < 40; u++)
        fa_params_init_user(users + u * 64, (uint64_t)u);
    cr_assert_eq(fa_ncf_new(&ws, FA_DATASET_CANDIDATES, &err), FA_OK);
    for (int u = 0; u < 40; u++) {
        size_t rank;
        fa_ncf_predict(scores, ws, p, users + u * 64, fa_dataset_test(ds, u),
                       FA_DATASET_CANDIDATES);
        rank = fa_eval_rank(scores, FA_DATASET_CANDIDATES);
        hr += rank < 10;
        ndcg += rank < 10 ? 1.0 / log2((double)rank + 2.0) : 0.0;
    }
    cr_assert_eq(fa_eval_dataset(&res, p, users, ds, &err), FA_OK);
    cr_assert_eq(res.users, 40);
    cr_assert_float_eq(res.hr10, hr / 40, 1e-12);
    cr_assert_float_eq(res.ndcg10, ndcg / 40, 1e-12);

    cr_assert_eq(fa_params_new(&small, 100, &err), FA_OK);
    cr_assert_eq(fa_eval_dataset(&res, small, users, ds, &err), FA_EINVAL);
    fa_params_free(small);
    fa_ncf_free(ws);
    free(users);
    fa_params_free(p);
    fa_dataset_free(ds);
}
