#include "model/central.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/data.h"
#include "model/internal.h"
#include "model/ncf.h"
#include "model/params.h"
#include "model/rng.h"

#define D              FA_NCF_EMBED_DIM
#define STREAM_SAMPLES 4u /* RNG stream of negatives and shuffling */

typedef struct sample {
    int32_t user, item; /* rows */
    float label;        /* 1/0 for BCE, the rating for MSE */
} sample;

struct fa_central {
    const fa_dataset *ds; /* borrowed */
    fa_train_opts opts;
    fa_params *params;
    size_t n_params;                       /* floats in the global vector */
    size_t dense_off;                      /* offset of dense_1/kernel */
    size_t n_users_f;                      /* floats in the user table */
    float *users;                          /* [num_users, 64] */
    float *g_params, *m_params, *v_params; /* [n_params] gradient and Adam moments */
    float *g_users, *m_users, *v_users;    /* [num_users, 64] */
    uint64_t *item_stamp;                  /* [num_items] last step with a gradient for the row */
    uint64_t *user_stamp;                  /* [num_users] */
    int32_t *step_items;                   /* [batch] distinct item rows of the current step */
    int32_t *step_users;                   /* [batch] distinct user rows */
    float *labels, *logits, *dlogits;      /* [batch] */
    fa_ncf *ws;
    fa_rng rng;
    uint64_t t;      /* optimizer steps so far */
    sample *samples; /* [samples_cap] */
    size_t samples_cap, n_samples;
};

void fa_central_free(fa_central *c)
{
    if (c == NULL)
        return;
    fa_params_free(c->params);
    free(c->users);
    free(c->g_params);
    free(c->m_params);
    free(c->v_params);
    free(c->g_users);
    free(c->m_users);
    free(c->v_users);
    free(c->item_stamp);
    free(c->user_stamp);
    free(c->step_items);
    free(c->step_users);
    free(c->labels);
    free(c->logits);
    free(c->dlogits);
    fa_ncf_free(c->ws);
    free(c->samples);
    free(c);
}

int fa_central_new(fa_central **out, const fa_dataset *ds, const fa_train_opts *opts, fa_error *err)
{
    fa_central *c = NULL;
    size_t num_users = (size_t)fa_dataset_num_users(ds);
    size_t num_items = (size_t)fa_dataset_num_items(ds);
    size_t k;
    int rc;

    *out = NULL;
    if ((rc = fa_train_opts_validate(opts, err)) < 0)
        return rc;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return fa_fail(err, FA_ENOMEM, "out of memory for the trainer");
    c->ds = ds;
    c->opts = *opts;
    if ((rc = fa_params_new(&c->params, num_items, err)) < 0 ||
        (rc = fa_ncf_new(&c->ws, opts->batch, err)) < 0)
        goto cleanup;
    fa_params_init_random(c->params, opts->seed);
    c->n_params = fa_params_len(c->params);
    c->dense_off = fa_params_tensor(c->params, FA_TENSOR_DENSE_1_KERNEL)->offset;
    c->n_users_f = num_users * D;
    k = opts->loss == FA_LOSS_BCE ? (size_t)opts->negatives : 0;
    c->samples_cap = fa_dataset_num_interactions(ds) * (1 + k);
    c->users = fa_model__alloc_floats(c->n_users_f);
    c->g_params = fa_model__alloc_floats(c->n_params);
    c->m_params = fa_model__alloc_floats(c->n_params);
    c->v_params = fa_model__alloc_floats(c->n_params);
    c->g_users = fa_model__alloc_floats(c->n_users_f);
    c->m_users = fa_model__alloc_floats(c->n_users_f);
    c->v_users = fa_model__alloc_floats(c->n_users_f);
    c->item_stamp = calloc(num_items, sizeof(uint64_t));
    c->user_stamp = calloc(num_users, sizeof(uint64_t));
    c->step_items = malloc(opts->batch * sizeof(int32_t));
    c->step_users = malloc(opts->batch * sizeof(int32_t));
    c->labels = fa_model__alloc_floats(opts->batch);
    c->logits = fa_model__alloc_floats(opts->batch);
    c->dlogits = fa_model__alloc_floats(opts->batch);
    c->samples = malloc((c->samples_cap > 0 ? c->samples_cap : 1) * sizeof(sample));
    if (c->users == NULL || c->g_params == NULL || c->m_params == NULL || c->v_params == NULL ||
        c->g_users == NULL || c->m_users == NULL || c->v_users == NULL || c->item_stamp == NULL ||
        c->user_stamp == NULL || c->step_items == NULL || c->step_users == NULL ||
        c->labels == NULL || c->logits == NULL || c->dlogits == NULL || c->samples == NULL) {
        rc = fa_fail(err, FA_ENOMEM, "out of memory for the trainer");
        goto cleanup;
    }
    for (size_t u = 0; u < num_users; u++)
        fa_params_init_user(c->users + u * D, opts->seed * 1000003u + u);
    fa_rng_init(&c->rng, opts->seed, STREAM_SAMPLES);
    *out = c;
    c = NULL;
cleanup:
    fa_central_free(c);
    return rc;
}

const fa_params *fa_central_params(const fa_central *c)
{
    return c->params;
}

const float *fa_central_users(const fa_central *c)
{
    return c->users;
}

size_t fa_central_samples(const fa_central *c)
{
    return c->n_samples;
}

static void build_epoch(fa_central *c)
{
    const fa_dataset *ds = c->ds;
    size_t num_items = (size_t)fa_dataset_num_items(ds);
    size_t k = c->opts.loss == FA_LOSS_BCE ? (size_t)c->opts.negatives : 0;
    size_t n = 0;

    for (int32_t u = 0; u < fa_dataset_num_users(ds); u++) {
        fa_device_data d = fa_dataset_user(ds, u);
        for (size_t i = 0; i < d.count; i++) {
            c->samples[n].user = u;
            c->samples[n].item = d.items[i];
            c->samples[n].label = c->opts.loss == FA_LOSS_BCE ? 1.0f : d.ratings[i];
            n++;
            for (size_t j = 0; j < k; j++) {
                int32_t neg = fa_train__negative(&c->rng, d.items, d.count, num_items);
                if (neg < 0)
                    break;
                c->samples[n].user = u;
                c->samples[n].item = neg;
                c->samples[n].label = 0.0f;
                n++;
            }
        }
    }
    for (size_t i = n; i > 1; i--) {
        size_t j = fa_rng_below(&c->rng, (uint32_t)i);
        sample tmp = c->samples[i - 1];
        c->samples[i - 1] = c->samples[j];
        c->samples[j] = tmp;
    }
    c->n_samples = n;
}

static double step(fa_central *c, const sample *batch, size_t n)
{
    float *x = fa_ncf_input(c->ws);
    float *params = fa_params_data(c->params);
    const float *dx;
    size_t n_items = 0, n_users = 0;
    uint64_t t = ++c->t;
    double loss;

    for (size_t i = 0; i < n; i++) {
        memcpy(x + i * FA_NCF_INPUT_DIM, c->users + (size_t)batch[i].user * D, D * sizeof(float));
        memcpy(x + i * FA_NCF_INPUT_DIM + D, params + (size_t)batch[i].item * D, D * sizeof(float));
        c->labels[i] = batch[i].label;
    }
    fa_ncf_forward(c->logits, c->ws, params + c->dense_off, n);
    loss = c->opts.loss == FA_LOSS_BCE ? fa_ncf_loss_bce(c->dlogits, c->logits, c->labels, n)
                                       : fa_ncf_loss_mse(c->dlogits, c->logits, c->labels, n);
    fa_ncf_backward(c->g_params + c->dense_off, c->ws, params + c->dense_off, c->dlogits, n);

    /* Scatter the input gradient into the two tables; rows repeat within a batch. */
    dx = fa_ncf_input_grad(c->ws);
    for (size_t i = 0; i < n; i++) {
        const float *dxi = dx + i * FA_NCF_INPUT_DIM;
        int32_t u = batch[i].user, it = batch[i].item;
        float *gu = c->g_users + (size_t)u * D;
        float *gi = c->g_params + (size_t)it * D;

        if (c->user_stamp[u] != t) {
            c->user_stamp[u] = t;
            c->step_users[n_users++] = u;
        }
        if (c->item_stamp[it] != t) {
            c->item_stamp[it] = t;
            c->step_items[n_items++] = it;
        }
        for (int j = 0; j < D; j++) {
            gu[j] += dxi[j];
            gi[j] += dxi[D + j];
        }
    }

    if (c->opts.optimizer == FA_OPTIMIZER_SGD) {
        float lr = (float)c->opts.lr;
        fa_train__sgd(params + c->dense_off, c->g_params + c->dense_off, FA_NCF_DENSE_LEN, lr);
        for (size_t b = 0; b < n_items; b++) {
            size_t off = (size_t)c->step_items[b] * D;
            fa_train__sgd(params + off, c->g_params + off, D, lr);
        }
        for (size_t b = 0; b < n_users; b++) {
            size_t off = (size_t)c->step_users[b] * D;
            fa_train__sgd(c->users + off, c->g_users + off, D, lr);
        }
    } else {
        /* Dense Adam over every parameter, rows without a gradient included (torch semantics). */
        fa_adam_step st;
        fa_train__adam_prepare(&st, c->opts.lr, c->opts.beta1, c->opts.beta2, c->opts.eps, t);
        fa_train__adam(params, c->m_params, c->v_params, c->g_params, c->n_params, &st);
        fa_train__adam(c->users, c->m_users, c->v_users, c->g_users, c->n_users_f, &st);
    }
    /* The table gradients are kept zero between steps; clear only the rows this step used. */
    for (size_t b = 0; b < n_items; b++)
        memset(c->g_params + (size_t)c->step_items[b] * D, 0, D * sizeof(float));
    for (size_t b = 0; b < n_users; b++)
        memset(c->g_users + (size_t)c->step_users[b] * D, 0, D * sizeof(float));
    return loss;
}

int fa_central_epoch(double *loss_out, fa_central *c, fa_error *err)
{
    double sum = 0.0;
    size_t bs = c->opts.batch;

    *loss_out = 0.0;
    build_epoch(c);
    if (c->n_samples == 0)
        return fa_fail(err, FA_EINVAL, "the dataset gives no training samples");
    for (size_t b = 0; b < c->n_samples; b += bs) {
        size_t n = c->n_samples - b < bs ? c->n_samples - b : bs;
        sum += step(c, c->samples + b, n) * (double)n;
    }
    *loss_out = sum / (double)c->n_samples;
    if (!isfinite(*loss_out))
        return fa_fail(err, FA_EINTERNAL, "training diverged (loss is not finite)");
    return FA_OK;
}
