#include "model/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/als.h"
#include "model/internal.h"
#include "model/params.h"
#include "model/vec.h"

#define MAGIC        "FAOPTIM"
#define MAGIC_BYTES  8
#define HEADER_BYTES (MAGIC_BYTES + 4 + 4 + 8 + 8 + 4 * 8)
#define MAX_DIM      ((size_t)1 << 32)

struct fa_optim {
    fa_optim_config cfg;
    size_t dim;     /* floats */
    uint64_t steps; /* steps applied */
    float *m;       /* [dim] first moment (adaptive kinds only) */
    float *v;       /* [dim] second moment */
    float *next;    /* [dim] scratch for the candidate theta */
};

int fa_optim_kind_parse(fa_optim_kind *out, const char *name)
{
    if (strcmp(name, "fedavg") == 0)
        *out = FA_OPTIM_FEDAVG;
    else if (strcmp(name, "fedadam") == 0)
        *out = FA_OPTIM_FEDADAM;
    else if (strcmp(name, "fedyogi") == 0)
        *out = FA_OPTIM_FEDYOGI;
    else if (strcmp(name, "als") == 0)
        *out = FA_OPTIM_ALS;
    else
        return FA_EINVAL;
    return FA_OK;
}

const char *fa_optim_kind_name(fa_optim_kind kind)
{
    switch (kind) {
    case FA_OPTIM_FEDAVG:
        return "fedavg";
    case FA_OPTIM_FEDADAM:
        return "fedadam";
    case FA_OPTIM_FEDYOGI:
        return "fedyogi";
    case FA_OPTIM_ALS:
        return "als";
    }
    return "unknown";
}

static int adaptive(const fa_optim *opt)
{
    return opt->cfg.kind == FA_OPTIM_FEDADAM || opt->cfg.kind == FA_OPTIM_FEDYOGI;
}

static void reset_moments(fa_optim *opt)
{
    float v0 = (float)(opt->cfg.tau * opt->cfg.tau);

    if (!adaptive(opt))
        return;
    memset(opt->m, 0, opt->dim * sizeof(float));
    /* Algorithm 2 asks for v_{-1} >= tau^2. */
    for (size_t i = 0; i < opt->dim; i++)
        opt->v[i] = v0;
}

int fa_optim_new(fa_optim **out, const fa_optim_config *cfg, size_t dim, fa_error *err)
{
    fa_optim *opt = NULL;
    int rc = FA_OK;

    *out = NULL;
    if (cfg->kind != FA_OPTIM_FEDAVG && cfg->kind != FA_OPTIM_FEDADAM &&
        cfg->kind != FA_OPTIM_FEDYOGI && cfg->kind != FA_OPTIM_ALS)
        return fa_fail(err, FA_EINVAL, "server optimizer must be fedavg, fedadam, fedyogi or als");
    if (cfg->kind == FA_OPTIM_ALS) {
        size_t f = cfg->als_factors;
        if (f < 1 || f > FA_ALS_MAX_FACTORS || dim <= f * f || (dim - f * f) % f != 0)
            return fa_fail(err, FA_EINVAL, "ALS needs 1..%d factors and a matching dimension",
                           FA_ALS_MAX_FACTORS);
        if (!(cfg->als_reg > 0.0 && cfg->als_reg <= 1e6) || cfg->lr > 1.0)
            return fa_fail(err, FA_EINVAL, "ALS needs a ridge in (0, 1e6] and a step in (0, 1]");
    }
    if (!(cfg->lr > 0.0 && cfg->lr <= 1e3))
        return fa_fail(err, FA_EINVAL, "server learning rate must be in (0, 1000]");
    if (!(cfg->beta1 >= 0.0 && cfg->beta1 < 1.0) || !(cfg->beta2 >= 0.0 && cfg->beta2 < 1.0))
        return fa_fail(err, FA_EINVAL, "server optimizer betas must be in [0, 1)");
    if (!(cfg->tau > 0.0 && cfg->tau <= 1.0))
        return fa_fail(err, FA_EINVAL, "server optimizer tau must be in (0, 1]");
    if (dim < 1 || dim > MAX_DIM)
        return fa_fail(err, FA_EINVAL, "optimizer dimension %zu is out of range", dim);
    opt = calloc(1, sizeof(*opt));
    if (opt == NULL)
        return fa_fail(err, FA_ENOMEM, "out of memory for the server optimizer");
    opt->cfg = *cfg;
    opt->dim = dim;
    opt->next = fa_model__alloc_floats(dim);
    if (opt->next == NULL) {
        rc = fa_fail(err, FA_ENOMEM, "out of memory for the server optimizer");
        goto cleanup;
    }
    if (adaptive(opt)) {
        opt->m = fa_model__alloc_floats(dim);
        opt->v = fa_model__alloc_floats(dim);
        if (opt->m == NULL || opt->v == NULL) {
            rc = fa_fail(err, FA_ENOMEM, "out of memory for the server optimizer");
            goto cleanup;
        }
        reset_moments(opt);
    }
    *out = opt;
    opt = NULL;
cleanup:
    fa_optim_free(opt);
    return rc;
}

void fa_optim_free(fa_optim *opt)
{
    if (opt == NULL)
        return;
    free(opt->m);
    free(opt->v);
    free(opt->next);
    free(opt);
}

uint64_t fa_optim_steps(const fa_optim *opt)
{
    return opt->steps;
}

const fa_optim_config *fa_optim_config_of(const fa_optim *opt)
{
    return &opt->cfg;
}

int fa_optim_step(fa_optim *opt, float *theta, const float *mean_delta, size_t dim, fa_error *err)
{
    const float b1 = (float)opt->cfg.beta1, b2 = (float)opt->cfg.beta2;
    const float eta = (float)opt->cfg.lr, tau = (float)opt->cfg.tau;
    float *m = opt->m, *v = opt->v, *next = opt->next;

    if (dim != opt->dim)
        return fa_fail(err, FA_EINVAL, "delta has %zu values, the model %zu", dim, opt->dim);
    if (!fa_vec_all_finite(mean_delta, dim))
        return fa_fail(err, FA_EINVAL, "delta has a value that is not finite");
    if (opt->cfg.kind == FA_OPTIM_ALS) {
        size_t f = opt->cfg.als_factors;
        int rc = fa_als_step(theta, mean_delta, (dim - f * f) / f, f, opt->cfg.als_reg, opt->cfg.lr,
                             err);
        if (rc == FA_OK)
            opt->steps++;
        return rc;
    }

    /*
     * The candidate goes to `next` with the moments computed on the fly and only committed when
     * the whole result is finite, so a failed step leaves theta and the state untouched.
     */
    if (opt->cfg.kind == FA_OPTIM_FEDAVG) {
        /* FedAvg with server learning rate: x_{t+1} = x_t + eta * Delta_t. */
        fa_vec_copy(next, theta, dim);
        fa_vec_axpy(next, eta, mean_delta, dim);
        if (!fa_vec_all_finite(next, dim))
            return fa_fail(err, FA_EINTERNAL, "server step produced a value that is not finite");
        fa_vec_copy(theta, next, dim);
        opt->steps++;
        return FA_OK;
    }
    for (size_t i = 0; i < dim; i++) {
        /* Reddi et al. 2021, Algorithm 2: m_t = b1 m_{t-1} + (1 - b1) Delta_t. */
        float d = mean_delta[i], d2 = d * d;
        float mi = b1 * m[i] + (1.0f - b1) * d;
        float vi;
        if (opt->cfg.kind == FA_OPTIM_FEDADAM) {
            /* FedAdam: v_t = b2 v_{t-1} + (1 - b2) Delta_t^2. */
            vi = b2 * v[i] + (1.0f - b2) * d2;
        } else {
            /* FedYogi: v_t = v_{t-1} - (1 - b2) Delta_t^2 sign(v_{t-1} - Delta_t^2). */
            float diff = v[i] - d2;
            float sign = diff > 0.0f ? 1.0f : (diff < 0.0f ? -1.0f : 0.0f);
            vi = v[i] - (1.0f - b2) * d2 * sign;
        }
        /* x_{t+1} = x_t + eta m_t / (sqrt(v_t) + tau). */
        next[i] = theta[i] + eta * mi / (sqrtf(vi) + tau);
    }
    if (!fa_vec_all_finite(next, dim))
        return fa_fail(err, FA_EINTERNAL, "server step produced a value that is not finite");
    for (size_t i = 0; i < dim; i++) {
        float d = mean_delta[i], d2 = d * d;
        m[i] = b1 * m[i] + (1.0f - b1) * d;
        if (opt->cfg.kind == FA_OPTIM_FEDADAM) {
            v[i] = b2 * v[i] + (1.0f - b2) * d2;
        } else {
            float diff = v[i] - d2;
            float sign = diff > 0.0f ? 1.0f : (diff < 0.0f ? -1.0f : 0.0f);
            v[i] = v[i] - (1.0f - b2) * d2 * sign;
        }
    }
    fa_vec_copy(theta, next, dim);
    opt->steps++;
    return FA_OK;
}

int fa_optim_save(unsigned char **out, size_t *len_out, const fa_optim *opt, fa_error *err)
{
    size_t n_vec = adaptive(opt) ? 2 * opt->dim : 0;
    size_t len = HEADER_BYTES + n_vec * 4;
    unsigned char *buf, *p;

    *out = NULL;
    *len_out = 0;
    buf = malloc(len);
    if (buf == NULL)
        return fa_fail(err, FA_ENOMEM, "out of memory saving the server optimizer");
    p = buf;
    memcpy(p, MAGIC, MAGIC_BYTES); /* includes the terminating NUL */
    p += MAGIC_BYTES;
    fa_bytes_put_u32(p, FA_OPTIM_STATE_VERSION);
    fa_bytes_put_u32(p + 4, (uint32_t)opt->cfg.kind);
    fa_bytes_put_u64(p + 8, (uint64_t)opt->dim);
    fa_bytes_put_u64(p + 16, opt->steps);
    fa_bytes_put_f64(p + 24, opt->cfg.lr);
    fa_bytes_put_f64(p + 32, opt->cfg.beta1);
    fa_bytes_put_f64(p + 40, opt->cfg.beta2);
    fa_bytes_put_f64(p + 48, opt->cfg.tau);
    p += 56;
    for (size_t i = 0; n_vec > 0 && i < opt->dim; i++, p += 4)
        fa_bytes_put_f32(p, opt->m[i]);
    for (size_t i = 0; n_vec > 0 && i < opt->dim; i++, p += 4)
        fa_bytes_put_f32(p, opt->v[i]);
    *out = buf;
    *len_out = len;
    return FA_OK;
}

int fa_optim_state_kind(fa_optim_kind *kind_out, const unsigned char *buf, size_t len,
                        fa_error *err)
{
    uint32_t version, kind;

    *kind_out = FA_OPTIM_FEDAVG;
    if (len < HEADER_BYTES || memcmp(buf, MAGIC, MAGIC_BYTES) != 0)
        return fa_fail(err, FA_EINVAL, "optimizer state is not a fedagg optimizer state");
    version = fa_bytes_get_u32(buf + MAGIC_BYTES);
    kind = fa_bytes_get_u32(buf + MAGIC_BYTES + 4);
    if (version != FA_OPTIM_STATE_VERSION)
        return fa_fail(err, FA_EINVAL, "optimizer state version %u is not supported (expected %d)",
                       version, FA_OPTIM_STATE_VERSION);
    if (kind != FA_OPTIM_FEDAVG && kind != FA_OPTIM_FEDADAM && kind != FA_OPTIM_FEDYOGI &&
        kind != FA_OPTIM_ALS)
        return fa_fail(err, FA_EINVAL, "optimizer state has unknown kind %u", kind);
    *kind_out = (fa_optim_kind)kind;
    return FA_OK;
}

int fa_optim_load(fa_optim *opt, const unsigned char *buf, size_t len, fa_error *err)
{
    size_t n_vec = adaptive(opt) ? 2 * opt->dim : 0;
    const unsigned char *p = buf + MAGIC_BYTES;
    uint32_t version, kind;
    uint64_t dim, steps;

    if (len < HEADER_BYTES || memcmp(buf, MAGIC, MAGIC_BYTES) != 0)
        return fa_fail(err, FA_EINVAL, "optimizer state is not a fedagg optimizer state");
    version = fa_bytes_get_u32(p);
    kind = fa_bytes_get_u32(p + 4);
    dim = fa_bytes_get_u64(p + 8);
    steps = fa_bytes_get_u64(p + 16);
    if (version != FA_OPTIM_STATE_VERSION)
        return fa_fail(err, FA_EINVAL, "optimizer state version %u is not supported (expected %d)",
                       version, FA_OPTIM_STATE_VERSION);
    if (kind != (uint32_t)opt->cfg.kind)
        return fa_fail(err, FA_EINVAL, "optimizer state is for kind %u, the server runs %s", kind,
                       fa_optim_kind_name(opt->cfg.kind));
    if (dim != (uint64_t)opt->dim)
        return fa_fail(err, FA_EINVAL, "optimizer state has dimension %llu, the model %zu",
                       (unsigned long long)dim, opt->dim);
    if (len != HEADER_BYTES + n_vec * 4)
        return fa_fail(err, FA_EINVAL, "optimizer state is %zu bytes, expected %zu", len,
                       HEADER_BYTES + n_vec * 4);
    p += 56;
    /* Validate everything before changing opt. */
    for (size_t i = 0; i < n_vec; i++) {
        float f = fa_bytes_get_f32(p + 4 * i);
        if (!isfinite(f) || (i >= opt->dim && f < 0.0f))
            return fa_fail(err, FA_EINVAL, "optimizer state holds an invalid moment");
    }
    for (size_t i = 0; n_vec > 0 && i < opt->dim; i++) {
        opt->m[i] = fa_bytes_get_f32(p + 4 * i);
        opt->v[i] = fa_bytes_get_f32(p + 4 * (opt->dim + i));
    }
    opt->steps = steps;
    return FA_OK;
}
