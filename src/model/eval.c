#include "model/eval.h"

#include <math.h>

#include "model/als.h"
#include "model/data.h"
#include "model/ncf.h"
#include "model/params.h"

size_t fa_eval_rank(const float *scores, size_t n)
{
    size_t rank = 0;

    /* !(s < test) is true for s >= test and for any NaN, so ties and NaNs go against the test. */
    for (size_t i = 1; i < n; i++)
        if (!(scores[i] < scores[0]))
            rank++;
    return rank;
}

double fa_eval_hit(size_t rank)
{
    return rank < FA_EVAL_TOP_K ? 1.0 : 0.0;
}

double fa_eval_ndcg(size_t rank)
{
    return rank < FA_EVAL_TOP_K ? 1.0 / log2((double)rank + 2.0) : 0.0;
}

void fa_eval_user_scores(float *scores, fa_ncf *ws, const fa_params *theta, const float *user_vec,
                         const fa_dataset *ds, int32_t user, const int32_t *cand, size_t n)
{
    if (fa_params_kind(theta) == FA_MODEL_ALS) {
        float u[FA_ALS_MAX_FACTORS];
        fa_device_data dev = fa_dataset_user(ds, user);
        (void)fa_als_user_vector(u, theta, dev.items, dev.count);
        fa_als_scores(scores, theta, u, cand, n);
    } else {
        fa_ncf_predict(scores, ws, theta, user_vec, cand, n);
    }
}

int fa_eval_dataset(fa_eval_result *out, const fa_params *theta, const float *user_table,
                    const fa_dataset *ds, fa_error *err)
{
    fa_ncf *ws = NULL;
    float scores[FA_DATASET_CANDIDATES];
    double hits = 0.0, ndcg = 0.0;
    int32_t users = 0;
    int als = fa_params_kind(theta) == FA_MODEL_ALS, rc;

    out->hr10 = out->ndcg10 = 0.0;
    out->users = 0;
    if ((size_t)fa_dataset_num_items(ds) > fa_params_num_items(theta))
        return fa_fail(err, FA_EINVAL, "the dataset has %d items, the model only %zu",
                       fa_dataset_num_items(ds), fa_params_num_items(theta));
    if (!als && (rc = fa_ncf_new(&ws, FA_DATASET_CANDIDATES, err)) < 0)
        return rc;
    for (int32_t user = 0; user < fa_dataset_num_users(ds); user++) {
        const int32_t *cand = fa_dataset_test(ds, user);
        size_t rank;

        if (cand == NULL)
            continue;
        fa_eval_user_scores(scores, ws, theta,
                            als ? NULL : user_table + (size_t)user * FA_NCF_EMBED_DIM, ds, user,
                            cand, FA_DATASET_CANDIDATES);
        rank = fa_eval_rank(scores, FA_DATASET_CANDIDATES);
        hits += fa_eval_hit(rank);
        ndcg += fa_eval_ndcg(rank);
        users++;
    }
    if (users > 0) {
        out->hr10 = hits / users;
        out->ndcg10 = ndcg / users;
    }
    out->users = users;
    fa_ncf_free(ws);
    return FA_OK;
}
