#include "model/local.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/als.h"
#include "model/internal.h"
#include "model/ncf.h"
#include "model/params.h"
#include "model/rng.h"

#define D              FA_NCF_EMBED_DIM
#define STREAM_SAMPLES 3u /* RNG stream of negatives and shuffling */

typedef struct sample {
    int32_t slot; /* local row slot */
    float label;  /* 1/0 for BCE, the rating for MSE */
} sample;

struct fa_local {
    size_t num_items;
    size_t max_batch;
    fa_ncf *ws;
    int32_t *slot_of;     /* [num_items] slot of a touched item row, -1 otherwise */
    int32_t *slot_item;   /* [cap] item row held by each slot */
    uint64_t *slot_stamp; /* [cap] last step in which the slot got a gradient */
    float *rows;          /* [cap, 64] local copies of touched rows */
    float *rows_g;        /* [cap, 64] gradient of the current step */
    float *rows_m;        /* [cap, 64] Adam first moments */
    float *rows_v;        /* [cap, 64] Adam second moments */
    size_t n_slots, cap;  /* slots in use, allocated */
    float *dense;         /* [FA_NCF_DENSE_LEN] local MLP weights */
    float *dense_g, *dense_m, *dense_v;
    float user_g[D], user_m[D], user_v[D];
    sample *samples; /* [samples_cap] one epoch */
    size_t samples_cap;
    int32_t *batch_slots;             /* [max_batch] distinct slots of the current step */
    float *labels, *logits, *dlogits; /* [max_batch] */
};

int fa_local_new(fa_local **out, size_t num_items, size_t max_batch, fa_error *err)
{
    fa_local *lt = NULL;
    int rc = FA_OK;

    *out = NULL;
    if (num_items < 1 || num_items > FA_PARAMS_MAX_ITEMS)
        return fa_fail(err, FA_EINVAL, "item count %zu is outside 1..%d", num_items,
                       FA_PARAMS_MAX_ITEMS);
    lt = calloc(1, sizeof(*lt));
    if (lt == NULL)
        return fa_fail(err, FA_ENOMEM, "out of memory for local training");
    lt->num_items = num_items;
    lt->max_batch = max_batch;
    if ((rc = fa_ncf_new(&lt->ws, max_batch, err)) < 0)
        goto cleanup;
    lt->slot_of = malloc(num_items * sizeof(int32_t));
    lt->dense = fa_model__alloc_floats(FA_NCF_DENSE_LEN);
    lt->dense_g = fa_model__alloc_floats(FA_NCF_DENSE_LEN);
    lt->dense_m = fa_model__alloc_floats(FA_NCF_DENSE_LEN);
    lt->dense_v = fa_model__alloc_floats(FA_NCF_DENSE_LEN);
    lt->batch_slots = malloc(max_batch * sizeof(int32_t));
    lt->labels = fa_model__alloc_floats(max_batch);
    lt->logits = fa_model__alloc_floats(max_batch);
    lt->dlogits = fa_model__alloc_floats(max_batch);
    if (lt->slot_of == NULL || lt->dense == NULL || lt->dense_g == NULL || lt->dense_m == NULL ||
        lt->dense_v == NULL || lt->batch_slots == NULL || lt->labels == NULL ||
        lt->logits == NULL || lt->dlogits == NULL) {
        rc = fa_fail(err, FA_ENOMEM, "out of memory for local training");
        goto cleanup;
    }
    /* Every entry is -1 between runs; a run resets only the entries it set. */
    for (size_t i = 0; i < num_items; i++)
        lt->slot_of[i] = -1;
    *out = lt;
    lt = NULL;
cleanup:
    fa_local_free(lt);
    return rc;
}

void fa_local_free(fa_local *lt)
{
    if (lt == NULL)
        return;
    fa_ncf_free(lt->ws);
    free(lt->slot_of);
    free(lt->slot_item);
    free(lt->slot_stamp);
    free(lt->rows);
    free(lt->rows_g);
    free(lt->rows_m);
    free(lt->rows_v);
    free(lt->dense);
    free(lt->dense_g);
    free(lt->dense_m);
    free(lt->dense_v);
    free(lt->samples);
    free(lt->batch_slots);
    free(lt->labels);
    free(lt->logits);
    free(lt->dlogits);
    free(lt);
}

const int32_t *fa_local_touched(const fa_local *lt, size_t *n_out)
{
    *n_out = lt->n_slots;
    return lt->slot_item;
}

static int grow_slots(fa_local *lt)
{
    size_t ncap = lt->cap == 0 ? 256 : lt->cap * 2;
    void *p;

    if (ncap > lt->num_items)
        ncap = lt->num_items;
#define GROW(field, elem)                                                                          \
    do {                                                                                           \
        p = realloc(lt->field, ncap * (elem));                                                     \
        if (p == NULL)                                                                             \
            return -1;                                                                             \
        lt->field = p;                                                                             \
    } while (0)
    GROW(slot_item, sizeof(int32_t));
    GROW(slot_stamp, sizeof(uint64_t));
    GROW(rows, D * sizeof(float));
    GROW(rows_g, D * sizeof(float));
    GROW(rows_m, D * sizeof(float));
    GROW(rows_v, D * sizeof(float));
#undef GROW
    lt->cap = ncap;
    return 0;
}

/* The slot of item row `item`, copying the row from the global model on first use; -1 on ENOMEM. */
static int32_t touch(fa_local *lt, const fa_params *global, int32_t item)
{
    int32_t s = lt->slot_of[item];

    if (s >= 0)
        return s;
    if (lt->n_slots == lt->cap && grow_slots(lt) < 0)
        return -1;
    s = (int32_t)lt->n_slots++;
    lt->slot_of[item] = s;
    lt->slot_item[s] = item;
    lt->slot_stamp[s] = 0;
    memcpy(lt->rows + (size_t)s * D, fa_params_item_row(global, (size_t)item), D * sizeof(float));
    memset(lt->rows_m + (size_t)s * D, 0, D * sizeof(float));
    memset(lt->rows_v + (size_t)s * D, 0, D * sizeof(float));
    return s;
}

static int check_device(const fa_local *lt, const fa_device_data *dev, const fa_train_opts *opts,
                        fa_error *err)
{
    if (dev->count == 0)
        return fa_fail(err, FA_EINVAL, "the device has no interactions");
    for (size_t i = 0; i < dev->count; i++) {
        if (dev->items[i] < 0 || (size_t)dev->items[i] >= lt->num_items)
            return fa_fail(err, FA_EINVAL, "device item row %d is outside 0..%zu", dev->items[i],
                           lt->num_items - 1);
        if (i > 0 && dev->items[i] <= dev->items[i - 1])
            return fa_fail(err, FA_EINVAL, "device items are not strictly increasing");
        if (opts->loss == FA_LOSS_MSE && !isfinite(dev->ratings[i]))
            return fa_fail(err, FA_EINVAL, "device rating %zu is not finite", i);
    }
    return FA_OK;
}

/* Fills one epoch of samples (positives, then their negatives) and shuffles them. */
static int build_epoch(size_t *n_out, fa_local *lt, const fa_params *global,
                       const fa_device_data *dev, const fa_train_opts *opts, fa_rng *rng)
{
    size_t k = opts->loss == FA_LOSS_BCE ? (size_t)opts->negatives : 0;
    size_t need = dev->count * (1 + k);
    size_t n = 0;

    if (need > lt->samples_cap) {
        void *p = realloc(lt->samples, need * sizeof(sample));
        if (p == NULL)
            return -1;
        lt->samples = p;
        lt->samples_cap = need;
    }
    for (size_t i = 0; i < dev->count; i++) {
        int32_t s = touch(lt, global, dev->items[i]);
        if (s < 0)
            return -1;
        lt->samples[n].slot = s;
        lt->samples[n].label = opts->loss == FA_LOSS_BCE ? 1.0f : dev->ratings[i];
        n++;
        for (size_t j = 0; j < k; j++) {
            int32_t neg = fa_train__negative(rng, dev->items, dev->count, lt->num_items);
            if (neg < 0)
                break; /* the device has every item: nothing to contrast with */
            if ((s = touch(lt, global, neg)) < 0)
                return -1;
            lt->samples[n].slot = s;
            lt->samples[n].label = 0.0f;
            n++;
        }
    }
    for (size_t i = n; i > 1; i--) {
        size_t j = fa_rng_below(rng, (uint32_t)i);
        sample t = lt->samples[i - 1];
        lt->samples[i - 1] = lt->samples[j];
        lt->samples[j] = t;
    }
    *n_out = n;
    return 0;
}

/* One optimizer step on samples[0..n-1]; returns the batch's mean loss. */
static double step(fa_local *lt, float *user_vec, const sample *batch, size_t n,
                   const fa_train_opts *opts, uint64_t t)
{
    float *x = fa_ncf_input(lt->ws);
    const float *dx;
    size_t nb = 0;
    double loss;

    for (size_t i = 0; i < n; i++) {
        memcpy(x + i * FA_NCF_INPUT_DIM, user_vec, D * sizeof(float));
        memcpy(x + i * FA_NCF_INPUT_DIM + D, lt->rows + (size_t)batch[i].slot * D,
               D * sizeof(float));
        lt->labels[i] = batch[i].label;
    }
    fa_ncf_forward(lt->logits, lt->ws, lt->dense, n);
    loss = opts->loss == FA_LOSS_BCE ? fa_ncf_loss_bce(lt->dlogits, lt->logits, lt->labels, n)
                                     : fa_ncf_loss_mse(lt->dlogits, lt->logits, lt->labels, n);
    fa_ncf_backward(lt->dense_g, lt->ws, lt->dense, lt->dlogits, n);

    /* Gather the input gradient: every row shares the user vector; item rows may repeat. */
    dx = fa_ncf_input_grad(lt->ws);
    memset(lt->user_g, 0, sizeof(lt->user_g));
    for (size_t i = 0; i < n; i++) {
        const float *dxi = dx + i * FA_NCF_INPUT_DIM;
        int32_t s = batch[i].slot;
        float *gr = lt->rows_g + (size_t)s * D;

        for (int j = 0; j < D; j++)
            lt->user_g[j] += dxi[j];
        if (lt->slot_stamp[s] != t) {
            lt->slot_stamp[s] = t;
            lt->batch_slots[nb++] = s;
            memset(gr, 0, D * sizeof(float));
        }
        for (int j = 0; j < D; j++)
            gr[j] += dxi[D + j];
    }

    if (opts->optimizer == FA_OPTIMIZER_SGD) {
        float lr = (float)opts->lr;
        fa_train__sgd(lt->dense, lt->dense_g, FA_NCF_DENSE_LEN, lr);
        fa_train__sgd(user_vec, lt->user_g, D, lr);
        for (size_t b = 0; b < nb; b++) {
            size_t off = (size_t)lt->batch_slots[b] * D;
            fa_train__sgd(lt->rows + off, lt->rows_g + off, D, lr);
        }
    } else {
        fa_adam_step st;
        fa_train__adam_prepare(&st, opts->lr, opts->beta1, opts->beta2, opts->eps, t);
        fa_train__adam(lt->dense, lt->dense_m, lt->dense_v, lt->dense_g, FA_NCF_DENSE_LEN, &st);
        fa_train__adam(user_vec, lt->user_m, lt->user_v, lt->user_g, D, &st);
        /* Lazy Adam: rows without a gradient in this step keep their value and moments. */
        for (size_t b = 0; b < nb; b++) {
            size_t off = (size_t)lt->batch_slots[b] * D;
            fa_train__adam(lt->rows + off, lt->rows_m + off, lt->rows_v + off, lt->rows_g + off, D,
                           &st);
        }
    }
    return loss;
}

int fa_local_train(fa_local_stats *stats_out, float *delta_out, fa_local *lt, float *user_vec,
                   const fa_params *global, const fa_device_data *dev, const fa_train_opts *opts,
                   fa_error *err)
{
    fa_local_stats stats = {0};
    fa_rng rng;
    uint64_t t = 0;
    size_t dense_off;
    int rc;

    lt->n_slots = 0;
    if ((rc = fa_train_opts_validate(opts, err)) < 0)
        return rc;
    if (fa_params_num_items(global) != lt->num_items)
        return fa_fail(err, FA_EINVAL, "model has %zu items, the workspace %zu",
                       fa_params_num_items(global), lt->num_items);
    if (opts->batch > lt->max_batch)
        return fa_fail(err, FA_EINVAL, "batch %zu is over the workspace limit %zu", opts->batch,
                       lt->max_batch);
    if ((rc = check_device(lt, dev, opts, err)) < 0)
        return rc;
    if (fa_params_kind(global) == FA_MODEL_ALS) {
        /* The device half of private ALS: no epochs, its vector is recomputed each round. */
        (void)fa_als_user_vector(user_vec, global, dev->items, dev->count);
        fa_als_device_update(delta_out, global, user_vec, dev->items, dev->count);
        stats.samples = dev->count;
        stats.touched_rows = dev->count;
        if (stats_out != NULL)
            *stats_out = stats;
        return FA_OK;
    }

    dense_off = fa_params_tensor(global, FA_TENSOR_DENSE_1_KERNEL)->offset;
    fa_rng_init(&rng, opts->seed, STREAM_SAMPLES);
    memcpy(lt->dense, fa_params_dense(global), FA_NCF_DENSE_LEN * sizeof(float));
    memset(lt->dense_m, 0, FA_NCF_DENSE_LEN * sizeof(float));
    memset(lt->dense_v, 0, FA_NCF_DENSE_LEN * sizeof(float));
    memset(lt->user_m, 0, sizeof(lt->user_m));
    memset(lt->user_v, 0, sizeof(lt->user_v));

    for (int e = 0; e < opts->epochs; e++) {
        size_t n = 0;
        double loss_sum = 0.0;

        if (build_epoch(&n, lt, global, dev, opts, &rng) < 0) {
            rc = fa_fail(err, FA_ENOMEM, "out of memory in local training");
            goto cleanup;
        }
        for (size_t b = 0; b < n; b += opts->batch) {
            size_t nb = n - b < opts->batch ? n - b : opts->batch;
            loss_sum += step(lt, user_vec, lt->samples + b, nb, opts, ++t) * (double)nb;
        }
        stats.loss = loss_sum / (double)n;
        stats.samples = n;
        if (!isfinite(stats.loss)) {
            rc = fa_fail(err, FA_EINTERNAL, "local training diverged (loss is not finite)");
            goto cleanup;
        }
    }

    /* The delta: zero, then the MLP and the touched rows (the only O(num_items) work). */
    memset(delta_out, 0, fa_params_len(global) * sizeof(float));
    {
        const float *gd = fa_params_dense(global);
        for (size_t j = 0; j < FA_NCF_DENSE_LEN; j++)
            delta_out[dense_off + j] = lt->dense[j] - gd[j];
    }
    for (size_t s = 0; s < lt->n_slots; s++) {
        size_t item = (size_t)lt->slot_item[s];
        const float *g = fa_params_item_row(global, item);
        for (int j = 0; j < D; j++)
            delta_out[item * D + (size_t)j] = lt->rows[s * D + (size_t)j] - g[j];
    }
    stats.touched_rows = lt->n_slots;
    if (stats_out != NULL)
        *stats_out = stats;
cleanup:
    for (size_t s = 0; s < lt->n_slots; s++)
        lt->slot_of[lt->slot_item[s]] = -1;
    return rc;
}
