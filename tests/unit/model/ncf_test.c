/*
 * Forward/backward of the NCF tower against an independent double-precision
 * reference written here: central finite differences of the reference loss
 * check the analytic gradient of every parameter group and of the user
 * vectors.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/ncf.h"
#include "model/params.h"
#include "model/rng.h"

#define D       64
#define N_ITEMS 12
#define N_USERS 3
#define BATCH   8

/* ---- double reference ---------------------------------------------------------------------- */

static double relu(double x)
{
    return x > 0.0 ? x : 0.0;
}

/* One dense layer out[cols] = in[k] W[k, cols] + b, optionally ReLU. */
static void ref_dense(double *out, const double *in, const double *w, const double *b, int k,
                      int cols, int act)
{
    for (int j = 0; j < cols; j++) {
        double s = b[j];
        for (int i = 0; i < k; i++)
            s += in[i] * w[(size_t)i * (size_t)cols + (size_t)j];
        out[j] = act ? relu(s) : s;
    }
}

static double ref_logit(const double *theta, size_t num_items, const double *user, int item)
{
    const double *dense = theta + num_items * D;
    const double *w1 = dense, *b1 = w1 + 128 * 128, *w2 = b1 + 128, *b2 = w2 + 128 * 64;
    const double *w3 = b2 + 64, *b3 = w3 + 64 * 32, *wo = b3 + 32, *bo = wo + 32;
    double x[128], h1[128], h2[64], h3[32], z;

    memcpy(x, user, D * sizeof(double));
    memcpy(x + D, theta + (size_t)item * D, D * sizeof(double));
    ref_dense(h1, x, w1, b1, 128, 128, 1);
    ref_dense(h2, h1, w2, b2, 128, 64, 1);
    ref_dense(h3, h2, w3, b3, 64, 32, 1);
    ref_dense(&z, h3, wo, bo, 32, 1, 0);
    return z;
}

typedef struct batch {
    int user[BATCH], item[BATCH];
    double label[BATCH];
} batch;

static double ref_loss(const double *theta, const double *users, const batch *b, int mse)
{
    double sum = 0.0;

    for (int i = 0; i < BATCH; i++) {
        double z = ref_logit(theta, N_ITEMS, users + b->user[i] * D, b->item[i]);
        double y = b->label[i];
        sum += mse ? (z - y) * (z - y) : log(1.0 + exp(z)) - y * z;
    }
    return sum / BATCH;
}

/* ---- fixture ------------------------------------------------------------------------------- */

typedef struct fixture {
    fa_params *p;
    float users[N_USERS * D];
    batch b;
    float *g_theta; /* analytic gradient over the global vector */
    float g_users[N_USERS * D];
    float logits[BATCH];
} fixture;

static void setup(fixture *f, int mse)
{
    fa_error err = FA_ERROR_INIT;
    fa_ncf *ws = NULL;
    fa_rng r;
    float labels[BATCH], dlogits[BATCH];
    float *theta;
    size_t dense_off;

    memset(f, 0, sizeof(*f));
    cr_assert_eq(fa_params_new(&f->p, N_ITEMS, &err), FA_OK);
    fa_params_init_random(f->p, 3);
    theta = fa_params_data(f->p);
    dense_off = fa_params_tensor(f->p, FA_TENSOR_DENSE_1_KERNEL)->offset;
    fa_rng_init(&r, 11, 0);
    /* Larger embeddings and non-zero biases so that every layer is exercised. */
    for (size_t i = 0; i < dense_off; i++)
        theta[i] = (float)(0.5 * fa_rng_normal(&r));
    for (int t = FA_TENSOR_DENSE_1_BIAS; t < FA_TENSOR_COUNT; t += 2) {
        const fa_tensor_spec *s = fa_params_tensor(f->p, (fa_tensor_id)t);
        for (size_t i = 0; i < s->count; i++)
            theta[s->offset + i] = (float)(0.1 * fa_rng_normal(&r));
    }
    for (int i = 0; i < N_USERS * D; i++)
        f->users[i] = (float)(0.5 * fa_rng_normal(&r));
    for (int i = 0; i < BATCH; i++) {
        f->b.user[i] = i % N_USERS;
        f->b.item[i] = (int)fa_rng_below(&r, N_ITEMS / 2); /* repeats: gradients must add up */
        f->b.label[i] = mse ? 1.0 + fa_rng_below(&r, 5) : (double)(i % 2);
        labels[i] = (float)f->b.label[i];
    }

    cr_assert_eq(fa_ncf_new(&ws, BATCH, &err), FA_OK);
    for (int i = 0; i < BATCH; i++) {
        memcpy(fa_ncf_input(ws) + i * 128, f->users + f->b.user[i] * D, D * sizeof(float));
        memcpy(fa_ncf_input(ws) + i * 128 + D, fa_params_item_row(f->p, (size_t)f->b.item[i]),
               D * sizeof(float));
    }
    fa_ncf_forward(f->logits, ws, fa_params_dense(f->p), BATCH);
    if (mse)
        (void)fa_ncf_loss_mse(dlogits, f->logits, labels, BATCH);
    else
        (void)fa_ncf_loss_bce(dlogits, f->logits, labels, BATCH);
    f->g_theta = calloc(fa_params_len(f->p), sizeof(float));
    cr_assert_not_null(f->g_theta);
    fa_ncf_backward(f->g_theta + dense_off, ws, fa_params_dense(f->p), dlogits, BATCH);
    for (int i = 0; i < BATCH; i++) {
        const float *dx = fa_ncf_input_grad(ws) + i * 128;
        for (int j = 0; j < D; j++) {
            f->g_users[f->b.user[i] * D + j] += dx[j];
            f->g_theta[(size_t)f->b.item[i] * D + (size_t)j] += dx[D + j];
        }
    }
    fa_ncf_free(ws);
}

static void teardown(fixture *f)
{
    free(f->g_theta);
    fa_params_free(f->p);
}

/*
 * Compares analytic gradients with central differences of the double reference at up to 48
 * coordinates of one group; returns the norm-wise relative error.
 */
static double check_group(double *theta, double *users, const batch *b, int mse, double *group,
                          size_t count, const float *analytic, fa_rng *r)
{
    const double h = 1e-5;
    double diff2 = 0.0, ref2 = 0.0;
    size_t n = count <= 48 ? count : 48;

    for (size_t k = 0; k < n; k++) {
        size_t i = count <= 48 ? k : fa_rng_below(r, (uint32_t)count);
        double keep = group[i], lp, lm, num;
        group[i] = keep + h;
        lp = ref_loss(theta, users, b, mse);
        group[i] = keep - h;
        lm = ref_loss(theta, users, b, mse);
        group[i] = keep;
        num = (lp - lm) / (2.0 * h);
        diff2 += (num - analytic[i]) * (num - analytic[i]);
        ref2 += num * num;
        cr_assert(fabs(num - analytic[i]) <= 1e-5 + 1e-2 * fabs(num), "coordinate %zu: %g vs %g", i,
                  num, (double)analytic[i]);
    }
    return sqrt(diff2) / fmax(sqrt(ref2), 1e-9);
}

static void gradient_check(int mse)
{
    fixture f;
    double *theta, *users;
    size_t len;
    fa_rng r;

    setup(&f, mse);
    len = fa_params_len(f.p);
    theta = malloc(len * sizeof(double));
    users = malloc(N_USERS * D * sizeof(double));
    cr_assert(theta != NULL && users != NULL);
    for (size_t i = 0; i < len; i++)
        theta[i] = fa_params_cdata(f.p)[i];
    for (int i = 0; i < N_USERS * D; i++)
        users[i] = f.users[i];
    /* The float forward agrees with the reference. */
    for (int i = 0; i < BATCH; i++)
        cr_assert(fabs(f.logits[i] -
                       ref_logit(theta, N_ITEMS, users + f.b.user[i] * D, f.b.item[i])) < 1e-4);

    fa_rng_init(&r, 5, 0);
    for (int t = 0; t < FA_TENSOR_COUNT; t++) {
        const fa_tensor_spec *s = fa_params_tensor(f.p, (fa_tensor_id)t);
        double rel = check_group(theta, users, &f.b, mse, theta + s->offset, s->count,
                                 f.g_theta + s->offset, &r);
        cr_assert(rel < 1e-3, "%s: relative error %g", s->name, rel);
    }
    {
        double rel = check_group(theta, users, &f.b, mse, users, N_USERS * D, f.g_users, &r);
        cr_assert(rel < 1e-3, "user embedding: relative error %g", rel);
    }
    /* Rows of items outside the batch get exactly zero gradient. */
    for (size_t i = (size_t)(N_ITEMS / 2) * D; i < (size_t)N_ITEMS * D; i++)
        cr_assert_eq(f.g_theta[i], 0.0f);
    free(theta);
    free(users);
    teardown(&f);
}

Test(ncf, gradient_check_bce_every_group)
{
    gradient_check(0);
}

Test(ncf, gradient_check_mse_every_group)
{
    gradient_check(1);
}

Test(ncf, bce_is_stable_and_its_gradient_is_scaled)
{
    float z[4] = {0.0f, 100.0f, -100.0f, 2.0f}, y[4] = {1, 0, 1, 1}, d[4];
    double loss = fa_ncf_loss_bce(d, z, y, 4);
    double expect = (log(2.0) + 100.0 + 100.0 + log1p(exp(-2.0))) / 4.0;

    cr_assert(fabs(loss - expect) < 1e-9);
    cr_assert(fabs(d[0] - (0.5 - 1.0) / 4.0) < 1e-7);
    cr_assert(fabs(d[1] - 0.25) < 1e-7);
    cr_assert(fabs(d[2] + 0.25) < 1e-7);
    cr_assert(fabs(fa_ncf_loss_mse(d, z, y, 1) - 1.0) < 1e-12);
    cr_assert(fabs(d[0] + 2.0) < 1e-7);
}

Test(ncf, predict_matches_forward_and_batch_rows_are_independent)
{
    fa_params *p = NULL;
    fa_ncf *ws = NULL;
    fa_error err = FA_ERROR_INIT;
    float user[D], all[5], one;
    int32_t items[5] = {0, 4, 2, 9, 4};

    cr_assert_eq(fa_params_new(&p, 10, &err), FA_OK);
    fa_params_init_random(p, 1);
    fa_params_init_user(user, 2);
    cr_assert_eq(fa_ncf_new(&ws, 5, &err), FA_OK);
    cr_assert_eq(fa_ncf_max_batch(ws), 5u);
    fa_ncf_predict(all, ws, p, user, items, 5);
    for (int i = 0; i < 5; i++) {
        fa_ncf_predict(&one, ws, p, user, &items[i], 1);
        cr_assert(fabsf(one - all[i]) < 1e-6f);
    }
    cr_assert(fabsf(all[1] - all[4]) < 1e-7f);
    fa_ncf_free(ws);
    fa_params_free(p);
    cr_assert_eq(fa_ncf_new(&ws, 0, &err), FA_EINVAL);
    cr_assert_eq(fa_ncf_new(&ws, FA_NCF_MAX_BATCH + 1, &err), FA_EINVAL);
}
