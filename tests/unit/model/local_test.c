#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/internal.h"
#include "model/local.h"
#include "model/ncf.h"
#include "model/params.h"
#include "model/vec.h"

#define N_ITEMS 200

static const int32_t ITEMS[] = {3, 17, 50, 120, 121, 199};
static const float RATINGS[] = {5, 4, 3, 4, 2, 1};

static fa_device_data device(void)
{
    fa_device_data d = {ITEMS, RATINGS, sizeof(ITEMS) / sizeof(ITEMS[0])};
    return d;
}

static fa_params *global_model(void)
{
    fa_params *p = NULL;
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_params_new(&p, N_ITEMS, &err), FA_OK);
    fa_params_init_random(p, 21);
    return p;
}

Test(local, delta_touches_only_the_device_rows_and_negatives)
{
    fa_params *g = global_model();
    fa_local *lt = NULL;
    fa_error err = FA_ERROR_INIT;
    fa_train_opts o = FA_TRAIN_OPTS_INIT;
    fa_device_data d = device();
    fa_local_stats st;
    float user[64], user0[64];
    float *delta = malloc(fa_params_len(g) * sizeof(float));
    unsigned char touched[N_ITEMS] = {0};
    const int32_t *rows;
    size_t n_rows, dense_off = fa_params_tensor(g, FA_TENSOR_DENSE_1_KERNEL)->offset;

    cr_assert_not_null(delta);
    o.epochs = 3;
    o.batch = 8;
    o.optimizer = FA_OPTIMIZER_SGD;
    o.lr = 0.1;
    o.seed = 7;
    fa_params_init_user(user, 1);
    memcpy(user0, user, sizeof(user));
    cr_assert_eq(fa_local_new(&lt, N_ITEMS, 64, &err), FA_OK);
    cr_assert_eq(fa_local_train(&st, delta, lt, user, g, &d, &o, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(st.samples, d.count * 5);
    rows = fa_local_touched(lt, &n_rows);
    cr_assert_eq(n_rows, st.touched_rows);
    cr_assert(n_rows >= d.count && n_rows <= d.count * (1 + 4 * 3));
    for (size_t i = 0; i < n_rows; i++)
        touched[rows[i]] = 1;
    for (size_t i = 0; i < d.count; i++) {
        double norm = fa_vec_norm2(delta + (size_t)d.items[i] * 64, 64);
        cr_assert(touched[d.items[i]]);
        cr_assert_gt(norm, 0.0);
    }
    for (int it = 0; it < N_ITEMS; it++)
        if (!touched[it])
            for (int j = 0; j < 64; j++)
                cr_assert_eq(delta[it * 64 + j], 0.0f, "untouched row %d moved", it);
    cr_assert_gt(fa_vec_norm2(delta + dense_off, FA_NCF_DENSE_LEN), 0.0);
    cr_assert(fa_vec_all_finite(delta, fa_params_len(g)));
    cr_assert_neq(memcmp(user, user0, sizeof(user)), 0);
    free(delta);
    fa_local_free(lt);
    fa_params_free(g);
}

Test(local, one_full_batch_sgd_step_is_minus_lr_times_the_gradient)
{
    fa_params *g = global_model();
    fa_local *lt = NULL;
    fa_ncf *ws = NULL;
    fa_error err = FA_ERROR_INIT;
    fa_train_opts o = FA_TRAIN_OPTS_INIT;
    fa_device_data d = device();
    float user[64], user0[64], labels[6], logits[6], dl[6], ug[64] = {0};
    float *delta = malloc(fa_params_len(g) * sizeof(float));
    float *gd = malloc(FA_NCF_DENSE_LEN * sizeof(float));
    size_t dense_off = fa_params_tensor(g, FA_TENSOR_DENSE_1_KERNEL)->offset;
    const float lr = 0.05f;

    cr_assert(delta != NULL && gd != NULL);
    o.epochs = 1;
    o.batch = 64;
    o.negatives = 0;
    o.optimizer = FA_OPTIMIZER_SGD;
    o.lr = lr;
    fa_params_init_user(user, 3);
    memcpy(user0, user, sizeof(user));
    cr_assert_eq(fa_local_new(&lt, N_ITEMS, 64, &err), FA_OK);
    cr_assert_eq(fa_local_train(NULL, delta, lt, user, g, &d, &o, &err), FA_OK, "%s", err.msg);

    /* The same gradient straight from the tower (sample order does not change sums much). */
    cr_assert_eq(fa_ncf_new(&ws, 6, &err), FA_OK);
    for (size_t i = 0; i < d.count; i++) {
        memcpy(fa_ncf_input(ws) + i * 128, user0, sizeof(user0));
        memcpy(fa_ncf_input(ws) + i * 128 + 64, fa_params_item_row(g, (size_t)d.items[i]),
               64 * sizeof(float));
        labels[i] = 1.0f;
    }
    fa_ncf_forward(logits, ws, fa_params_dense(g), d.count);
    (void)fa_ncf_loss_bce(dl, logits, labels, d.count);
    fa_ncf_backward(gd, ws, fa_params_dense(g), dl, d.count);
    for (size_t j = 0; j < FA_NCF_DENSE_LEN; j++)
        cr_assert(fabsf(delta[dense_off + j] + lr * gd[j]) < 1e-6f, "dense %zu", j);
    for (size_t i = 0; i < d.count; i++) {
        const float *dx = fa_ncf_input_grad(ws) + i * 128;
        for (int j = 0; j < 64; j++) {
            cr_assert(fabsf(delta[(size_t)d.items[i] * 64 + (size_t)j] + lr * dx[64 + j]) < 1e-6f);
            ug[j] += dx[j];
        }
    }
    for (int j = 0; j < 64; j++)
        cr_assert(fabsf(user[j] - (user0[j] - lr * ug[j])) < 1e-6f);
    fa_ncf_free(ws);
    free(gd);
    free(delta);
    fa_local_free(lt);
    fa_params_free(g);
}

Test(local, deterministic_reusable_and_adam_lowers_the_loss)
{
    fa_params *g = global_model();
    fa_local *lt = NULL, *fresh = NULL;
    fa_error err = FA_ERROR_INIT;
    fa_train_opts o = FA_TRAIN_OPTS_INIT;
    fa_device_data d = device(), other = {ITEMS + 1, RATINGS + 1, 3};
    fa_local_stats first, last;
    float u1[64], u2[64];
    size_t len = fa_params_len(g);
    float *d1 = malloc(len * sizeof(float)), *d2 = malloc(len * sizeof(float));

    cr_assert(d1 != NULL && d2 != NULL);
    o.batch = 16;
    o.lr = 0.01;
    o.seed = 99;
    cr_assert_eq(fa_local_new(&lt, N_ITEMS, 32, &err), FA_OK);
    cr_assert_eq(fa_local_new(&fresh, N_ITEMS, 32, &err), FA_OK);
    /* Train another device first so that the workspace is reused. */
    fa_params_init_user(u1, 5);
    cr_assert_eq(fa_local_train(NULL, d1, lt, u1, g, &other, &o, &err), FA_OK);
    fa_params_init_user(u1, 4);
    fa_params_init_user(u2, 4);
    cr_assert_eq(fa_local_train(&first, d1, lt, u1, g, &d, &o, &err), FA_OK);
    cr_assert_eq(fa_local_train(NULL, d2, fresh, u2, g, &d, &o, &err), FA_OK);
    cr_assert_eq(memcmp(d1, d2, len * sizeof(float)), 0);
    cr_assert_eq(memcmp(u1, u2, sizeof(u1)), 0);

    o.epochs = 40;
    fa_params_init_user(u1, 4);
    cr_assert_eq(fa_local_train(&last, d1, lt, u1, g, &d, &o, &err), FA_OK);
    cr_assert_lt(last.loss, 0.5 * first.loss, "loss %g -> %g", first.loss, last.loss);
    free(d1);
    free(d2);
    fa_local_free(lt);
    fa_local_free(fresh);
    fa_params_free(g);
}

Test(local, rejects_bad_devices_and_options)
{
    fa_params *g = global_model(), *other = NULL;
    fa_local *lt = NULL;
    fa_error err = FA_ERROR_INIT;
    fa_train_opts o = FA_TRAIN_OPTS_INIT;
    int32_t unsorted[] = {5, 3}, outside[] = {3, N_ITEMS};
    float r[2] = {1, 1}, user[64] = {0};
    fa_device_data d1 = {unsorted, r, 2}, d2 = {outside, r, 2}, d3 = {outside, r, 0};
    fa_device_data ok = device();
    float *delta = malloc(fa_params_len(g) * sizeof(float));

    cr_assert_not_null(delta);
    o.batch = 16;
    cr_assert_eq(fa_local_new(&lt, N_ITEMS, 16, &err), FA_OK);
    cr_assert_eq(fa_local_train(NULL, delta, lt, user, g, &d1, &o, &err), FA_EINVAL);
    cr_assert_eq(fa_local_train(NULL, delta, lt, user, g, &d2, &o, &err), FA_EINVAL);
    cr_assert_eq(fa_local_train(NULL, delta, lt, user, g, &d3, &o, &err), FA_EINVAL);
    o.batch = 17;
    cr_assert_eq(fa_local_train(NULL, delta, lt, user, g, &ok, &o, &err), FA_EINVAL);
    o.batch = 16;
    o.lr = -1;
    cr_assert_eq(fa_local_train(NULL, delta, lt, user, g, &ok, &o, &err), FA_EINVAL);
    o.lr = 0.01;
    cr_assert_eq(fa_params_new(&other, N_ITEMS + 1, &err), FA_OK);
    cr_assert_eq(fa_local_train(NULL, delta, lt, user, other, &ok, &o, &err), FA_EINVAL);
    cr_assert_eq(fa_local_train(NULL, delta, lt, user, g, &ok, &o, &err), FA_OK);
    free(delta);
    fa_params_free(other);
    fa_local_free(lt);
    fa_params_free(g);
}

Test(local, negatives_are_uniform_over_the_complement)
{
    const int32_t set[] = {0, 2, 3, 7};
    int count[10] = {0};
    fa_rng r;

    fa_rng_init(&r, 1, 0);
    for (int i = 0; i < 60000; i++) {
        int32_t x = fa_train__negative(&r, set, 4, 10);
        cr_assert(x >= 0 && x < 10);
        count[x]++;
    }
    cr_assert_eq(count[0] + count[2] + count[3] + count[7], 0);
    /* 6 free items, 10000 draws each expected. */
    for (int x = 0; x < 10; x++)
        if (x != 0 && x != 2 && x != 3 && x != 7)
            cr_assert(fabs(count[x] - 10000.0) < 500.0, "item %d: %d", x, count[x]);
    {
        const int32_t all[] = {0, 1, 2};
        cr_assert_eq(fa_train__negative(&r, all, 3, 3), -1);
    }
}
