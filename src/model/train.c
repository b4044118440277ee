#include "model/train.h"

#include <math.h>
#include <string.h>

#include "model/internal.h"
#include "model/ncf.h"

int fa_train_opts_validate(const fa_train_opts *opts, fa_error *err)
{
    if (opts->epochs < 1 || opts->epochs > 100000)
        return fa_fail(err, FA_EINVAL, "epochs must be in 1..100000");
    if (opts->batch < 1 || opts->batch > FA_NCF_MAX_BATCH)
        return fa_fail(err, FA_EINVAL, "batch must be in 1..%d", FA_NCF_MAX_BATCH);
    if (!(opts->lr > 0.0 && opts->lr <= 100.0))
        return fa_fail(err, FA_EINVAL, "learning rate must be in (0, 100]");
    if (opts->optimizer != FA_OPTIMIZER_ADAM && opts->optimizer != FA_OPTIMIZER_SGD)
        return fa_fail(err, FA_EINVAL, "optimizer must be adam or sgd");
    if (opts->loss != FA_LOSS_BCE && opts->loss != FA_LOSS_MSE)
        return fa_fail(err, FA_EINVAL, "loss must be bce or mse");
    if (opts->negatives < 0 || opts->negatives > FA_TRAIN_MAX_NEGATIVES)
        return fa_fail(err, FA_EINVAL, "negatives must be in 0..%d", FA_TRAIN_MAX_NEGATIVES);
    if (!(opts->beta1 >= 0.0 && opts->beta1 < 1.0) || !(opts->beta2 >= 0.0 && opts->beta2 < 1.0))
        return fa_fail(err, FA_EINVAL, "adam betas must be in [0, 1)");
    if (!(opts->eps > 0.0 && opts->eps < 1.0))
        return fa_fail(err, FA_EINVAL, "adam epsilon must be in (0, 1)");
    return FA_OK;
}

int fa_train_optimizer_parse(fa_optimizer *out, const char *name)
{
    if (strcmp(name, "adam") == 0)
        *out = FA_OPTIMIZER_ADAM;
    else if (strcmp(name, "sgd") == 0)
        *out = FA_OPTIMIZER_SGD;
    else
        return FA_EINVAL;
    return FA_OK;
}

int fa_train_loss_parse(fa_loss *out, const char *name)
{
    if (strcmp(name, "bce") == 0)
        *out = FA_LOSS_BCE;
    else if (strcmp(name, "mse") == 0)
        *out = FA_LOSS_MSE;
    else
        return FA_EINVAL;
    return FA_OK;
}

void fa_train__adam_prepare(fa_adam_step *st, double lr, double beta1, double beta2, double eps,
                            uint64_t t)
{
    double bc1 = 1.0 - pow(beta1, (double)t);
    double bc2 = 1.0 - pow(beta2, (double)t);

    st->lr_t = (float)(lr / bc1);
    st->beta1 = (float)beta1;
    st->beta2 = (float)beta2;
    st->inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2));
    st->eps = (float)eps;
}

void fa_train__adam(float *restrict p, float *restrict m, float *restrict v,
                    const float *restrict g, size_t n, const fa_adam_step *st)
{
    const float b1 = st->beta1, b2 = st->beta2, lr_t = st->lr_t, ibc2 = st->inv_sqrt_bc2;
    const float eps = st->eps, c1 = 1.0f - b1, c2 = 1.0f - b2;

    /*
     * Kingma and Ba 2015, Algorithm 1, in the form PyTorch uses:
     * m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
     * p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
     * Over a whole model this loop is bound by memory bandwidth, not by vector width.
     */
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        float mi = b1 * m[i] + c1 * gi;
        float vi = b2 * v[i] + c2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] -= lr_t * mi / (sqrtf(vi) * ibc2 + eps);
    }
}

void fa_train__sgd(float *restrict p, const float *restrict g, size_t n, float lr)
{
    for (size_t i = 0; i < n; i++)
        p[i] -= lr * g[i];
}

int32_t fa_train__negative(fa_rng *rng, const int32_t *sorted, size_t n, size_t num_items)
{
    uint32_t r;
    size_t lo = 0, hi = n;

    if (n >= num_items)
        return -1;
    /*
     * The r-th item (0-based) outside the sorted set is r + #{j : sorted[j] - j <= r}, because
     * sorted[j] - j counts the non-members below sorted[j] and never decreases.
     */
    r = fa_rng_below(rng, (uint32_t)(num_items - n));
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if ((int64_t)sorted[mid] - (int64_t)mid <= (int64_t)r)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (int32_t)(r + lo);
}
