/*
 * Private ALS (model/als.h) against independent computations: the device
 * update's norm and layout, and a cohort's summed statistics followed by
 * the server step against the weighted least-squares problem they stand
 * for, checked through its gradient written pair by pair over the whole
 * 0/1 interaction matrix (Hu, Koren, Volinsky 2008, eq. 4 with uniform
 * confidence), plus a 1-factor closed form.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/als.h"
#include "model/data.h"
#include "model/eval.h"
#include "model/optim.h"
#include "model/params.h"
#include "model/rng.h"

static fa_params *als_model(size_t items, size_t f, uint64_t seed)
{
    fa_params *p = NULL;
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_params_new_model(&p, FA_MODEL_ALS, items, f, &err), FA_OK, "%s", err.msg);
    fa_params_init_random(p, seed);
    return p;
}

Test(als, layout_has_item_factors_then_the_gram)
{
    fa_params *p = als_model(10, 4, 1);
    const fa_tensor_spec *v = fa_params_tensor(p, FA_TENSOR_ALS_ITEM_FACTORS);
    const fa_tensor_spec *g = fa_params_tensor(p, FA_TENSOR_ALS_USER_GRAM);

    cr_assert_eq(fa_params_num_tensors(p), 2);
    cr_assert_str_eq(v->name, "item_factors/embeddings");
    cr_assert_eq(v->shape[0], 10u);
    cr_assert_eq(v->shape[1], 4u);
    cr_assert_str_eq(g->name, "user_gram/embeddings");
    cr_assert_eq(g->offset, 40u);
    cr_assert_eq(fa_params_len(p), 56u);
    cr_assert_eq(fa_params_factors(p), 4u);
    cr_assert_eq(fa_params_layout_of(NULL, NULL, FA_MODEL_ALS, 10, 0), 0u);
    cr_assert_eq(fa_params_layout_of(NULL, NULL, FA_MODEL_ALS, 10, FA_ALS_MAX_FACTORS + 1), 0u);
    fa_params_free(p);
}

Test(als, user_vector_is_the_normalised_sum_of_the_rows)
{
    fa_params *p = als_model(5, 3, 2);
    const float *d = fa_params_cdata(p);
    int32_t items[] = {1, 3, 4};
    float u[3];
    double s[3] = {0}, n = 0;

    cr_assert_eq(fa_als_user_vector(u, p, items, 3), 1);
    for (int k = 0; k < 3; k++)
        for (int j = 0; j < 3; j++)
            s[j] += d[items[k] * 3 + j];
    for (int j = 0; j < 3; j++)
        n += s[j] * s[j];
    for (int j = 0; j < 3; j++)
        cr_assert_float_eq(u[j], s[j] / sqrt(n), 1e-6);
    /* No interactions: no vector. */
    cr_assert_eq(fa_als_user_vector(u, p, items, 0), 0);
    cr_assert_eq(u[0], 0.0f);
    fa_params_free(p);
}

Test(als, device_update_has_norm_one_on_its_rows_and_the_gram)
{
    fa_params *p = als_model(50, 8, 3);
    int32_t items[] = {0, 7, 20, 49};
    float u[8], *upd = malloc(fa_params_len(p) * sizeof(float));
    double n2 = 0, c = 1.0 / sqrt(5.0);
    size_t g = fa_params_tensor(p, FA_TENSOR_ALS_USER_GRAM)->offset;

    cr_assert_eq(fa_als_user_vector(u, p, items, 4), 1);
    fa_als_device_update(upd, p, u, items, 4);
    for (size_t i = 0; i < fa_params_len(p); i++)
        n2 += (double)upd[i] * upd[i];
    cr_assert_float_eq(sqrt(n2), 1.0, 1e-5);
    for (int j = 0; j < 8; j++) {
        cr_assert_float_eq(upd[7 * 8 + j], c * u[j], 1e-7);
        cr_assert_eq(upd[8 + j], 0.0f); /* item row 1: not the device's */
        for (int k = 0; k < 8; k++)
            cr_assert_float_eq(upd[g + (size_t)j * 8 + (size_t)k], c * u[j] * u[k], 1e-7);
    }
    free(upd);
    fa_params_free(p);
}

/* One factor: v_i = b_i / (a + reg * a) by hand. */
Test(als, one_factor_closed_form)
{
    float theta[3] = {0.5f, -0.5f, 0.0f};
    const float mean[3] = {0.2f, -0.1f, 0.4f}; /* b_0, b_1, A */
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_als_step(theta, mean, 2, 1, 0.25, 1.0, &err), FA_OK, "%s", err.msg);
    cr_assert_float_eq(theta[0], 0.2 / 0.5, 1e-6);
    cr_assert_float_eq(theta[1], -0.1 / 0.5, 1e-6);
    cr_assert_float_eq(theta[2], 0.4, 1e-7);
    /* Half a step from 0.5 toward 0.4: 0.45. */
    theta[0] = 0.5f;
    cr_assert_eq(fa_als_step(theta, mean, 2, 1, 0.25, 0.5, &err), FA_OK);
    cr_assert_float_eq(theta[0], 0.45, 1e-6);
}

/*
 * A whole population: each user's update from the model, summed and
 * divided by m, then the step. At the result the gradient of
 *   L(V) = sum_u c_u sum_i (r_ui - u . v_i)^2 / m + lambda sum_i |v_i|^2
 * (over every pair, liked or not) must vanish, with lambda recomputed here
 * from the summed Gram.
 */
Test(als, step_solves_the_weighted_least_squares_of_the_cohort)
{
    enum { USERS = 60, ITEMS = 25, F = 5, PER = 6 };
    fa_params *p = als_model(ITEMS, F, 4);
    size_t len = fa_params_len(p);
    float *sum = calloc(len, sizeof(float)), *upd = malloc(len * sizeof(float));
    static float uv[USERS][F];
    static int32_t liked[USERS][PER];
    static int r[USERS][ITEMS];
    double c[USERS], tr = 0, lambda, worst = 0;
    fa_rng rng;
    fa_optim *opt = NULL;
    fa_optim_config oc = FA_OPTIM_CONFIG_INIT;
    fa_error err = FA_ERROR_INIT;

    fa_rng_init(&rng, 99, 1);
    for (int u = 0; u < USERS; u++) {
        int n = 0;
        while (n < PER) {
            int32_t it = (int32_t)fa_rng_below(&rng, ITEMS);
            if (r[u][it])
                continue;
            r[u][it] = 1;
            n++;
        }
        n = 0;
        for (int32_t it = 0; it < ITEMS; it++)
            if (r[u][it])
                liked[u][n++] = it;
        cr_assert_eq(fa_als_user_vector(uv[u], p, liked[u], PER), 1);
        fa_als_device_update(upd, p, uv[u], liked[u], PER);
        for (size_t k = 0; k < len; k++)
            sum[k] += upd[k] / USERS;
        c[u] = 1.0 / sqrt(1.0 + PER);
    }
    for (int a = 0; a < F; a++)
        for (int u = 0; u < USERS; u++)
            tr += c[u] * uv[u][a] * uv[u][a] / USERS;
    lambda = 0.3 * tr / F;

    oc.kind = FA_OPTIM_ALS;
    oc.lr = 1.0;
    oc.als_factors = F;
    oc.als_reg = 0.3;
    cr_assert_eq(fa_optim_new(&opt, &oc, len, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(fa_optim_step(opt, fa_params_data(p), sum, len, &err), FA_OK, "%s", err.msg);
    for (int i = 0; i < ITEMS; i++) {
        const float *v = fa_params_item_row(p, (size_t)i);
        for (int a = 0; a < F; a++) {
            double g = 2.0 * lambda * v[a];
            for (int u = 0; u < USERS; u++) {
                double dot = 0;
                for (int b = 0; b < F; b++)
                    dot += (double)uv[u][b] * v[b];
                g -= 2.0 * c[u] * (r[u][i] - dot) * uv[u][a] / USERS;
            }
            worst = fmax(worst, fabs(g));
        }
    }
    cr_assert_lt(worst, 1e-6, "gradient %g at the solved rows", worst);
    fa_optim_free(opt);
    free(sum);
    free(upd);
    fa_params_free(p);
}

Test(als, step_refuses_bad_input_and_leaves_theta)
{
    float theta[6] = {1, 2, 3, 4, 5, 6}, mean[6] = {0, 0, 0, 0, NAN, 0};
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_als_step(theta, mean, 2, 2, 0.1, 1.0, &err), FA_EINVAL);
    cr_assert_eq(fa_als_step(theta, mean, 2, 2, 0.1, 1.5, &err), FA_EINVAL);
    cr_assert_eq(theta[0], 1.0f);
    /* An indefinite noised Gram is regularised until it is solvable. */
    {
        float m2[6] = {1, 1, -1, 0, 0, 0.1f};
        cr_assert_eq(fa_als_step(theta, m2, 1, 2, 0.1, 1.0, &err), FA_OK, "%s", err.msg);
        cr_assert(isfinite(theta[0]) && isfinite(theta[1]));
    }
}

/* The structure check: honest updates pass at any scale, crafted ones do not. */
Test(als, structure_check_tells_honest_updates_from_crafted_ones)
{
    fa_params *p = als_model(30, 6, 7);
    size_t len = fa_params_len(p), g = fa_params_tensor(p, FA_TENSOR_ALS_USER_GRAM)->offset;
    float *upd = malloc(len * sizeof(float)), u[6];
    int32_t items[] = {2, 5, 11, 17, 23, 29}, one = 4;

    cr_assert_eq(fa_als_user_vector(u, p, items, 6), 1);
    fa_als_device_update(upd, p, u, items, 6);
    cr_assert_eq(fa_als_structure_ok(upd, 30, 6, 5), 1);
    cr_assert_eq(fa_als_structure_ok(upd, 30, 6, 7), 0); /* too few items */
    for (size_t i = 0; i < len; i++)
        upd[i] *= 10.0f; /* scaled: still the shape (the clip takes care of the norm) */
    cr_assert_eq(fa_als_structure_ok(upd, 30, 6, 5), 1);
    /* More than its share on one row. */
    for (int j = 0; j < 6; j++)
        upd[5 * 6 + j] *= 2.0f;
    cr_assert_eq(fa_als_structure_ok(upd, 30, 6, 5), 0);
    /* The target's row alone, with or without a Gram slot. */
    fa_als_device_update(upd, p, u, &one, 1);
    cr_assert_eq(fa_als_structure_ok(upd, 30, 6, 5), 0);
    cr_assert_eq(fa_als_structure_ok(upd, 30, 6, 1), 1);
    memset(upd + g, 0, 36 * sizeof(float));
    cr_assert_eq(fa_als_structure_ok(upd, 30, 6, 1), 0);
    /* Rows that disagree, a Gram slot with a negative direction, zero. */
    fa_als_device_update(upd, p, u, items, 6);
    upd[11 * 6] += 0.1f;
    cr_assert_eq(fa_als_structure_ok(upd, 30, 6, 5), 0);
    fa_als_device_update(upd, p, u, items, 6);
    for (int j = 0; j < 36; j++)
        upd[g + (size_t)j] = -upd[g + (size_t)j];
    cr_assert_eq(fa_als_structure_ok(upd, 30, 6, 5), 0);
    memset(upd, 0, len * sizeof(float));
    cr_assert_eq(fa_als_structure_ok(upd, 30, 6, 1), 0);
    free(upd);
    fa_params_free(p);
}

/*
 * fa_eval_dataset scores an ALS model with the vector each user's training
 * items give: user 1 likes items 1 and 2, whose rows point along e0; the
 * test item 3 points along e0 too and the 99 negatives along e1, so it
 * ranks first. User 2's history points along e1, so their test item (also
 * 3) ranks behind the negatives.
 */
Test(als, evaluation_builds_user_vectors_from_training_items)
{
    char train[256], test[4096];
    size_t t = 0;
    fa_dataset *ds = NULL;
    fa_params *p = NULL;
    fa_eval_result r;
    fa_error err = FA_ERROR_INIT;
    float *d;

    (void)snprintf(train, sizeof(train), "1\t1\t5\t0\n1\t2\t5\t0\n2\t4\t5\t0\n");
    for (int u = 1; u <= 2; u++) {
        t += (size_t)snprintf(test + t, sizeof(test) - t, "%d\t3", u);
        for (int k = 0; k < 99; k++)
            t += (size_t)snprintf(test + t, sizeof(test) - t, "\t%d", 5 + k);
        t += (size_t)snprintf(test + t, sizeof(test) - t, "\n");
    }
    cr_assert_eq(fa_dataset_parse(&ds, train, strlen(train), test, t, NULL, &err), FA_OK, "%s",
                 err.msg);
    cr_assert_eq(fa_params_new_model(&p, FA_MODEL_ALS, 103, 2, &err), FA_OK);
    d = fa_params_data(p);
    for (int i = 0; i < 103; i++) {
        int along_e0 = i < 3; /* items 1, 2, 3 */
        d[i * 2] = along_e0 ? 1.0f : 0.0f;
        d[i * 2 + 1] = along_e0 ? 0.0f : 0.5f;
    }
    cr_assert_eq(fa_eval_dataset(&r, p, NULL, ds, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(r.users, 2);
    cr_assert_float_eq(r.hr10, 0.5, 1e-12);
    cr_assert_float_eq(r.ndcg10, 0.5, 1e-12); /* rank 0 for user 1: 1 / log2(2) */
    fa_dataset_free(ds);
    fa_params_free(p);
}
