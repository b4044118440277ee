#include "aggregator/round_math.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/digest.h"
#include "core/compiler.h"
#include "core/util.h"
#include "model/als.h"
#include "model/optim.h"
#include "model/params.h"
#include "model/vec.h"
#include "privacy/accountant.h"
#include "privacy/clip.h"
#include "privacy/crypto.h"
#include "privacy/ledger.h"
#include "privacy/noise.h"

struct fa_round_sum {
    size_t dim;     /* floats */
    int64_t folded; /* updates added since the last clear */
    int released;   /* 1: sum holds the released mean */
    float *sum;     /* dim floats: sum of w_i * clip(u_i), then the released mean */
};

/* ============================================================ the sum */

int fa_round_sum_new(fa_round_sum **out, size_t dim, fa_error *err)
{
    fa_round_sum *s;

    *out = NULL;
    if (dim == 0)
        return fa_fail(err, FA_EINVAL, "a round sum needs a positive dimension");
    s = calloc(1, sizeof(*s));
    if (s == NULL || (s->sum = calloc(dim, sizeof(float))) == NULL) {
        free(s);
        return fa_fail(err, FA_ENOMEM, "out of memory for the running sum");
    }
    s->dim = dim;
    *out = s;
    return FA_OK;
}

void fa_round_sum_free(fa_round_sum *s)
{
    if (s == NULL)
        return;
    /* Before the noise the sum is a function of the members' updates (one
     * device's clipped update when the cohort is 1): wipe it. */
    fa_crypto_wipe(s->sum, s->dim * sizeof(*s->sum));
    free(s->sum);
    free(s);
}

void fa_round_sum_clear(fa_round_sum *s)
{
    fa_vec_zero(s->sum, s->dim);
    s->folded = 0;
    s->released = 0;
}

int64_t fa_round_sum_folded(const fa_round_sum *s)
{
    return s->folded;
}

int fa_round_sum_released(const fa_round_sum *s)
{
    return s->released;
}

const float *fa_round_sum_data(const fa_round_sum *s)
{
    return s->sum;
}

/* ============================================================= folding */

double fa_round_trust(const fa_config *cfg, const float *delta, const float *direction, size_t dim)
{
    double nu, ng, c;

    if (strcmp(cfg->trust_policy, "structure") == 0 && strcmp(cfg->model, "als") == 0) {
        /* The shape of an honest ALS update, read from this update alone. */
        size_t f = (size_t)cfg->factors;
        if (dim <= f * f || (dim - f * f) % f != 0)
            return 0.0;
        return fa_als_structure_ok(delta, (dim - f * f) / f, f, (size_t)cfg->als_min_items);
    }
    if (strcmp(cfg->trust_policy, "cosine") != 0 || direction == NULL)
        return 1.0;
    /* cos(u, g) clamped to [0, 1], g the last published direction (public).
     * Scale-free, so it is the same before and after clipping; an update
     * with no direction gets no weight. */
    nu = fa_vec_norm2(delta, dim);
    ng = fa_vec_norm2(direction, dim);
    if (nu == 0.0 || ng == 0.0)
        return ng == 0.0 ? 1.0 : 0.0;
    c = fa_vec_dot(delta, direction, dim) / (nu * ng);
    return c < 0.0 ? 0.0 : c > 1.0 ? 1.0 : c;
}

/*
 * w = t * min(1, n / n_cap) with t in [0, 1] from this update and the
 * public direction only; the factor f = w * min(1, S / ||u||) then keeps
 * one device's move of the sum within S (docs/privacy.md).
 */
static int round_weight(double *w_out, const float *delta, size_t dim, int64_t num_samples,
                        const fa_config *cfg, const float *direction, fa_error *err)
{
    /* An ALS update weights its own pairs (model/als.h): the claimed count does not apply. */
    if (strcmp(cfg->model, "als") == 0)
        num_samples = cfg->weight_cap_samples;
    return fa_clip_weight(w_out, fa_round_trust(cfg, delta, direction, dim), num_samples,
                          cfg->weight_cap_samples, err);
}

int fa_round_factor_of_sumsq(double *f_out, const fa_clip_sumsq *sumsq, const float *delta,
                             size_t dim, int64_t num_samples, const fa_config *cfg,
                             const float *direction, fa_error *err)
{
    double w = 0;
    int rc;

    *f_out = 0.0;
    if ((rc = round_weight(&w, delta, dim, num_samples, cfg, direction, err)) < 0)
        return rc;
    return fa_clip_factor_of_sumsq(f_out, NULL, sumsq, cfg->clip_norm, w, err);
}

int fa_round_factor(double *f_out, const float *delta, size_t dim, int64_t num_samples,
                    const fa_config *cfg, const float *direction, fa_error *err)
{
    fa_clip_sumsq st;

    fa_clip_sumsq_init(&st);
    fa_clip_sumsq_add(&st, delta, dim);
    return fa_round_factor_of_sumsq(f_out, &st, delta, dim, num_samples, cfg, direction, err);
}

/*
 * y += a * x, the accumulation of the fold. Plain C rather than the BLAS so
 * that it is compiled for AVX2 as well (OpenBLAS may not know the CPU and
 * fall back to SSE kernels) and gives the same bits in the server and the
 * simulator on every CPU: no FMA, one product and one addition per element.
 */
FA_CLONES_AVX2 static void accumulate(float *restrict y, float a, const float *restrict x, size_t n)
{
    size_t i = 0;

    /* Groups of 16 that the compiler turns into vector operations (it does
     * not vectorise a plain loop of unknown length at -O2). */
    for (; i + 16 <= n; i += 16)
        for (size_t l = 0; l < 16; l++)
            y[i + l] += a * x[i + l];
    for (; i < n; i++)
        y[i] += a * x[i];
}

int fa_round_sum_add(fa_round_sum *s, const float *delta, double f, fa_error *err)
{
    if (s->released)
        return fa_fail(err, FA_EINVAL, "the round's sum was already released");
    /* f * delta goes straight into the sum and delta is never rewritten. */
    accumulate(s->sum, (float)f, delta, s->dim);
    s->folded++;
    return FA_OK;
}

int fa_round_sum_merge(fa_round_sum *s, const float *partial, int64_t count, fa_error *err)
{
    if (s->released)
        return fa_fail(err, FA_EINVAL, "the round's sum was already released");
    if (count < 0 || s->folded > INT64_MAX - count)
        return fa_fail(err, FA_EINVAL, "a partial sum of %lld updates cannot be merged",
                       (long long)count);
    fa_vec_axpy(s->sum, 1.0f, partial, s->dim);
    s->folded += count;
    return FA_OK;
}

void fa_round_sum_copy(fa_round_sum *dst, const fa_round_sum *src)
{
    memcpy(dst->sum, src->sum, dst->dim * sizeof(float));
    dst->folded = src->folded;
    dst->released = src->released;
}

/*
 * Updates added per tile, and floats per tile: the tile of the sum (16 KB)
 * stays in L1 while a group's updates stream through it from memory, so a
 * sum larger than L2 is not read and written back once per update.
 */
#define FOLD_GROUP 8
#define FOLD_TILE  4096

int fa_round_sum_fold_many(fa_round_sum *s, size_t *folded_out, const float *const *deltas,
                           const fa_clip_sumsq *sumsqs, const int64_t *num_samples, size_t n,
                           const fa_config *cfg, const float *direction, fa_error *err)
{
    size_t folded = 0;
    int rc = FA_OK;

    if (folded_out != NULL)
        *folded_out = 0;
    if (s->released)
        return fa_fail(err, FA_EINVAL, "the round's sum was already released");
    for (size_t g = 0; g < n; g += FOLD_GROUP) {
        const float *x[FOLD_GROUP];
        float f[FOLD_GROUP];
        size_t m = 0;

        for (size_t i = g; i < n && i < g + FOLD_GROUP; i++) {
            double fi = 0.0;
            fa_error e = FA_ERROR_INIT;
            if (fa_round_factor_of_sumsq(&fi, &sumsqs[i], deltas[i], s->dim, num_samples[i], cfg,
                                         direction, &e) < 0) {
                /* skipped; the first error is the one reported */
                if (rc == FA_OK)
                    rc = n == 1 ? fa_fail(err, e.code, "%s", e.msg)
                                : fa_fail(err, e.code, "update %zu of %zu: %s", i + 1, n, e.msg);
                continue;
            }
            x[m] = deltas[i];
            f[m++] = (float)fi;
        }
        /* Element by element the additions keep the updates' order, so the
         * bits are those of one fa_round_sum_add after another. */
        for (size_t off = 0; off < s->dim; off += FOLD_TILE) {
            size_t len = s->dim - off < FOLD_TILE ? s->dim - off : FOLD_TILE;
            for (size_t k = 0; k < m; k++)
                accumulate(s->sum + off, f[k], x[k] + off, len);
        }
        s->folded += (int64_t)m;
        folded += m;
    }
    if (folded_out != NULL)
        *folded_out = folded;
    return rc;
}

int fa_round_sum_fold_sumsq(fa_round_sum *s, const float *delta, const fa_clip_sumsq *sumsq,
                            int64_t num_samples, const fa_config *cfg, const float *direction,
                            fa_error *err)
{
    return fa_round_sum_fold_many(s, NULL, &delta, sumsq, &num_samples, 1, cfg, direction, err);
}

int fa_round_sum_fold(fa_round_sum *s, const float *delta, int64_t num_samples,
                      const fa_config *cfg, const float *direction, fa_error *err)
{
    fa_clip_sumsq st;

    fa_clip_sumsq_init(&st);
    fa_clip_sumsq_add(&st, delta, s->dim);
    return fa_round_sum_fold_sumsq(s, delta, &st, num_samples, cfg, direction, err);
}

/* ============================================================= release */

int fa_round_noise(fa_noise **out, const char *noise_seed, int64_t round_id, fa_error *err)
{
    unsigned char material[40], seed[32];
    int rc;

    *out = NULL;
    if (noise_seed == NULL || noise_seed[0] == '\0')
        return fa_noise_new(out, err);
    if (fa_hex_decode(material, 32, noise_seed) < 0)
        return fa_fail(err, FA_EINVAL, "config key noise_seed must be 64 hex characters");
    /* SHA-256(seed || round id, u64 little-endian): one stream per round. */
    for (int i = 0; i < 8; i++)
        material[32 + i] = (unsigned char)((uint64_t)round_id >> (8 * i));
    fa_sha256(seed, material, sizeof(material));
    rc = fa_noise_new_seeded(out, seed, err);
    fa_crypto_wipe(seed, sizeof(seed));
    fa_crypto_wipe(material, sizeof(material));
    return rc;
}

int fa_round_sum_release(fa_round_sum *s, fa_noise *nz, double stddev, double denominator,
                         fa_error *err)
{
    int rc;

    if (s->released)
        return fa_fail(err, FA_EINVAL, "the round's sum was already released");
    if (!isfinite(denominator) || denominator <= 0.0)
        return fa_fail(err, FA_EINVAL, "denominator %g is not a finite positive number",
                       denominator);
    /* Z ~ N(0, (sigma S)^2 I) on the weighted SUM, whose sensitivity is S;
     * dividing by a public constant afterwards is post-processing
     * (McMahan et al. 2018, Sec. 3, the fixed-denominator estimator). */
    if (nz != NULL && (rc = fa_noise_add_f32(nz, s->sum, s->dim, stddev, err)) < 0)
        return rc;
    s->released = 1; /* the sum now holds noise: never fold into it again */
    fa_vec_scale(s->sum, (float)(1.0 / denominator), s->dim);
    return FA_OK;
}

/* ======================================================== server step */

int fa_round_optim_new(fa_optim **out, const fa_config *cfg, size_t dim, fa_error *err)
{
    fa_optim_config ocfg = FA_OPTIM_CONFIG_INIT;

    *out = NULL;
    if (strcmp(cfg->model, "als") == 0) {
        /* The ALS item solve is the only step that fits its statistics. */
        ocfg.kind = FA_OPTIM_ALS;
        ocfg.lr = cfg->als_step;
        ocfg.als_factors = (size_t)cfg->factors;
        ocfg.als_reg = cfg->als_reg;
        return fa_optim_new(out, &ocfg, dim, err);
    }
    if (fa_optim_kind_parse(&ocfg.kind, cfg->server_optimizer) < 0)
        return fa_fail(err, FA_EINVAL, "unknown server optimizer %s", cfg->server_optimizer);
    ocfg.lr = cfg->server_lr;
    ocfg.tau = cfg->server_tau;
    return fa_optim_new(out, &ocfg, dim, err);
}

int fa_round_params_new(fa_params **out, const fa_config *cfg, size_t num_items, fa_error *err)
{
    fa_model_kind kind;

    *out = NULL;
    if (fa_model_kind_parse(&kind, cfg->model) < 0)
        return fa_fail(err, FA_EINVAL, "unknown model %s", cfg->model);
    return fa_params_new_model(out, kind, num_items, (size_t)cfg->factors, err);
}

int fa_round_step(float *next, float *direction, fa_optim *opt, const float *base,
                  const float *mean, size_t dim, fa_error *err)
{
    int rc;

    fa_vec_copy(next, base, dim);
    if ((rc = fa_optim_step(opt, next, mean, dim, err)) < 0)
        return rc;
    if (!fa_vec_all_finite(next, dim))
        return fa_fail(err, FA_EINTERNAL, "the server step produced non-finite parameters");
    if (direction != NULL) {
        /* The published direction, new minus old parameters: public state
         * the cosine trust policy may read in the next round. */
        fa_vec_copy(direction, next, dim);
        fa_vec_axpy(direction, -1.0f, base, dim);
    }
    return FA_OK;
}

/* ========================================================== mechanism */

void fa_round_mechanism(fa_ledger_mechanism *out, const fa_config *cfg, double sampling_rate,
                        int64_t cohort, int64_t min_cohort)
{
    memset(out, 0, sizeof(*out));
    out->clip_norm = cfg->clip_norm;
    out->noise_multiplier = cfg->noise_multiplier;
    out->sampling_rate = sampling_rate;
    out->cohort_size = cohort;
    /* Both are public constants fixed before the round, so dividing by
     * either is post-processing (McMahan et al. 2018, Sec. 3). Every round
     * runs to its deadline, so its cohort is whatever its devices deliver:
     * the expected cohort keeps the released step near the true mean. */
    if (cfg->expected_cohort > min_cohort) {
        out->denominator = (double)cfg->expected_cohort;
        (void)snprintf(out->denominator_rule, sizeof(out->denominator_rule), "%s",
                       FA_ROUND_DENOMINATOR_RULE_EXPECTED);
    } else {
        out->denominator = (double)min_cohort;
        (void)snprintf(out->denominator_rule, sizeof(out->denominator_rule), "%s",
                       FA_ROUND_DENOMINATOR_RULE);
    }
    out->weight_bound = 1.0;
    (void)snprintf(out->noise_method, sizeof(out->noise_method), "%s", FA_NOISE_METHOD);
    out->seeded = cfg->noise_seed[0] != '\0';
    (void)snprintf(out->trust_policy, sizeof(out->trust_policy), "%s", cfg->trust_policy);
}

int fa_round_decide(fa_round_state *out, fa_ledger_entry *e, fa_accountant *acct,
                    const fa_config *cfg, double q, int64_t cohort, int64_t min_cohort,
                    fa_error *err)
{
    const fa_budget budget = {cfg->epsilon_max, cfg->delta};
    int rc;

    *out = FA_ROUND_ABANDONED;
    fa_round_mechanism(&e->mech, cfg, q, cohort, min_cohort);
    if (cohort < min_cohort || cohort >= cfg->max_cohort)
        return fa_ledger_entry_abandon(e, &budget, acct, err);
    rc = fa_ledger_entry_decide(e, &budget, acct, err);
    if (rc == FA_EREFUSED) {
        *out = FA_ROUND_REFUSED;
        return FA_OK;
    }
    if (rc == FA_OK)
        *out = FA_ROUND_CLOSED;
    return rc;
}
