/*
 * The round arithmetic shared by the server's close and the in-process
 * simulator, against direct restatements of docs/privacy.md.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/digest.h"
#include "aggregator/round_math.h"
#include "aggregator/update.h"
#include "core/config.h"
#include "model/optim.h"
#include "privacy/accountant.h"
#include "privacy/clip.h"
#include "privacy/crypto.h"
#include "privacy/ledger.h"
#include "privacy/noise.h"

#define DIM 300

static fa_config cfg_with(double clip, int64_t cap, const char *trust)
{
    fa_config c;
    fa_config_defaults(&c);
    (void)snprintf(c.model, sizeof(c.model), "ncf");
    c.clip_norm = clip;
    c.weight_cap_samples = cap;
    (void)snprintf(c.trust_policy, sizeof(c.trust_policy), "%s", trust);
    return c;
}

static void fill(float *x, unsigned seed, float scale)
{
    uint32_t v = 2463534242u ^ (seed * 2654435761u);
    for (size_t i = 0; i < DIM; i++) {
        v ^= v << 13;
        v ^= v >> 17;
        v ^= v << 5;
        x[i] = scale * ((float)(v % 2001) - 1000.0f) / 1000.0f;
    }
}

static double norm(const float *x)
{
    double s = 0;
    for (size_t i = 0; i < DIM; i++)
        s += (double)x[i] * x[i];
    return sqrt(s);
}

Test(round_math, fold_clips_weights_and_adds_without_touching_the_update)
{
    fa_config cfg = cfg_with(1.0, 100, "none");
    fa_round_sum *s = NULL;
    fa_error err = FA_ERROR_INIT;
    float a[DIM], b[DIM], a0[DIM], b0[DIM];
    double fa = 0, fb = 0;

    cr_assert_eq(fa_round_sum_new(&s, DIM, &err), FA_OK);
    fill(a, 1, 1.0f); /* norm about 10: clipped to 1, then weight 50/100 */
    fill(b, 2, 1e-3f);
    memcpy(a0, a, sizeof(a));
    memcpy(b0, b, sizeof(b));
    cr_assert_eq(fa_round_factor(&fa, a, DIM, 50, &cfg, NULL, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(fa_round_factor(&fb, b, DIM, 500, &cfg, NULL, &err), FA_OK, "%s", err.msg);
    /* f = w min(1, S / ||u||), shaded by at most 2^-20 below */
    cr_assert(fa <= 0.5 / norm(a0) && fa > 0.5 / norm(a0) * (1 - 1e-6), "factor %g", fa);
    cr_assert_eq(fb, 1.0, "a short update with full weight is not scaled");
    cr_assert_eq(fa_round_sum_fold(s, a, 50, &cfg, NULL, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(fa_round_sum_fold(s, b, 500, &cfg, NULL, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(fa_round_sum_folded(s), 2);
    cr_assert_eq(memcmp(a, a0, sizeof(a)), 0, "the update is only read");
    cr_assert_eq(memcmp(b, b0, sizeof(b)), 0, "the update is only read");
    for (size_t i = 0; i < DIM; i++) {
        float expect = (float)fa * a0[i] + b0[i];
        cr_assert_float_eq(fa_round_sum_data(s)[i], expect, 1e-7);
    }
    fa_round_sum_free(s);
}

Test(round_math, factor_then_add_is_the_fold)
{
    fa_config cfg = cfg_with(0.5, 10, "cosine");
    fa_round_sum *x = NULL, *y = NULL;
    fa_error err = FA_ERROR_INIT;
    float dir[DIM], u[DIM];

    fill(dir, 9, 1.0f);
    cr_assert_eq(fa_round_sum_new(&x, DIM, &err), FA_OK);
    cr_assert_eq(fa_round_sum_new(&y, DIM, &err), FA_OK);
    for (unsigned k = 0; k < 5; k++) {
        double f = 0;
        fill(u, 20 + k, 0.3f);
        for (size_t i = 0; i < DIM; i++)
            u[i] += 0.2f * dir[i]; /* some agreement with the direction */
        cr_assert_eq(fa_round_sum_fold(x, u, 3 + k, &cfg, dir, &err), FA_OK, "%s", err.msg);
        cr_assert_eq(fa_round_factor(&f, u, DIM, 3 + k, &cfg, dir, &err), FA_OK, "%s", err.msg);
        cr_assert(f > 0 && f < 1);
        cr_assert_eq(fa_round_sum_add(y, u, f, &err), FA_OK);
    }
    /* The simulator's split gives the server's bits. */
    cr_assert_eq(memcmp(fa_round_sum_data(x), fa_round_sum_data(y), DIM * sizeof(float)), 0);
    fa_round_sum_free(x);
    fa_round_sum_free(y);
}

/* n updates of dim floats with varied norms, some inside the ball. */
static float **updates(size_t n, size_t dim, const float *dir)
{
    float **u = calloc(n, sizeof(float *));
    cr_assert_not_null(u);
    for (size_t k = 0; k < n; k++) {
        u[k] = malloc(dim * sizeof(float));
        cr_assert_not_null(u[k]);
        uint32_t v = 2463534242u ^ (uint32_t)(k * 2654435761u);
        float scale = (float)(k % 3 == 0 ? 1e-4 : 0.05) / (float)(1 + k % 4);
        for (size_t i = 0; i < dim; i++) {
            v ^= v << 13;
            v ^= v >> 17;
            v ^= v << 5;
            u[k][i] = scale * ((float)(v % 2001) - 1000.0f) / 1000.0f;
            if (dir != NULL)
                u[k][i] += 0.01f * dir[i];
        }
    }
    return u;
}

static void free_updates(float **u, size_t n)
{
    for (size_t k = 0; k < n; k++)
        free(u[k]);
    free(u);
}

Test(round_math, fold_with_the_decoded_sum_of_squares_is_the_fold)
{
    /* around the decoder's 1024-float chunks and the 64-float norm blocks */
    size_t dims[] = {1, 7, 64, 1023, 1024, 1025, 2049, 6151};
    const char *policies[] = {"none", "cosine"};

    for (size_t p = 0; p < 2; p++) {
        for (size_t d = 0; d < sizeof(dims) / sizeof(dims[0]); d++) {
            size_t dim = dims[d], n = 9;
            fa_config cfg = cfg_with(0.5, 40, policies[p]);
            fa_round_sum *plain = NULL, *known = NULL;
            fa_error err = FA_ERROR_INIT;
            float *dir = malloc(dim * sizeof(float)), *out = malloc(dim * sizeof(float));
            unsigned char *wire = malloc(FA_UPDATE_HEADER_BYTES + 4 * dim);

            cr_assert(dir != NULL && out != NULL && wire != NULL);
            for (size_t i = 0; i < dim; i++)
                dir[i] = (float)((i % 5) + 1) * 0.01f;
            float **u = updates(n, dim, dir);
            cr_assert_eq(fa_round_sum_new(&plain, dim, &err), FA_OK);
            cr_assert_eq(fa_round_sum_new(&known, dim, &err), FA_OK);
            for (size_t k = 0; k < n; k++) {
                int64_t samples = (int64_t)(5 + 10 * k);
                fa_clip_sumsq sq, whole;
                const char *reason = NULL;
                double f1 = 0, f2 = 0;

                cr_assert_eq(fa_round_sum_fold(plain, u[k], samples, &cfg, dir, &err), FA_OK, "%s",
                             err.msg);
                /* the server's path: encode, decode (forms the sum of squares), fold */
                fa_update_encode(wire, 3, (uint32_t)samples, u[k], dim);
                cr_assert_eq(fa_update_decode(out, &sq, &reason, wire,
                                              FA_UPDATE_HEADER_BYTES + 4 * dim, 3, samples, dim,
                                              &err),
                             FA_OK, "%s", err.msg);
                cr_assert_eq(memcmp(out, u[k], dim * sizeof(float)), 0);
                fa_clip_sumsq_init(&whole);
                fa_clip_sumsq_add(&whole, u[k], dim);
                /* field by field: the struct has padding */
                cr_assert_eq(memcmp(sq.part, whole.part, sizeof(sq.part)), 0, "dim %zu", dim);
                cr_assert_eq(sq.blocked, whole.blocked);
                cr_assert_eq(fa_round_factor_of_sumsq(&f1, &sq, out, dim, samples, &cfg, dir, &err),
                             FA_OK);
                cr_assert_eq(fa_round_factor(&f2, u[k], dim, samples, &cfg, dir, &err), FA_OK);
                cr_assert_eq(f1, f2);
                cr_assert_eq(fa_round_sum_fold_sumsq(known, out, &sq, samples, &cfg, dir, &err),
                             FA_OK, "%s", err.msg);
            }
            cr_assert_eq(fa_round_sum_folded(known), (int64_t)n);
            cr_assert_eq(
                memcmp(fa_round_sum_data(plain), fa_round_sum_data(known), dim * sizeof(float)), 0,
                "policy %s, dim %zu", policies[p], dim);

            /* a non-finite sum of squares is refused; nothing after the release */
            fa_clip_sumsq bad;
            fa_clip_sumsq_init(&bad);
            bad.part[3] = NAN;
            cr_assert_eq(fa_round_sum_fold_sumsq(known, out, &bad, 5, &cfg, dir, &err), FA_EINVAL);
            cr_assert_eq(fa_round_sum_folded(known), (int64_t)n);
            cr_assert_eq(fa_round_sum_release(known, NULL, 0.0, 1.0, &err), FA_OK, "%s", err.msg);
            fa_clip_sumsq_init(&bad);
            cr_assert_eq(fa_round_sum_fold_sumsq(known, out, &bad, 5, &cfg, dir, &err), FA_EINVAL);
            free_updates(u, n);
            free(dir);
            free(out);
            free(wire);
            fa_round_sum_free(plain);
            fa_round_sum_free(known);
        }
    }
}

Test(round_math, batched_fold_has_the_bits_of_one_fold_after_another)
{
    /* around the 4096-float tiles, groups of 8 and a partial last group */
    size_t dims[] = {1, 4095, 4096, 4097, 9001};
    const char *policies[] = {"none", "cosine"};

    for (size_t p = 0; p < 2; p++) {
        for (size_t d = 0; d < sizeof(dims) / sizeof(dims[0]); d++) {
            size_t dim = dims[d], n = 19, folded = 99;
            fa_config cfg = cfg_with(0.5, 40, policies[p]);
            fa_round_sum *one = NULL, *many = NULL;
            fa_error err = FA_ERROR_INIT;
            float *dir = malloc(dim * sizeof(float));
            fa_clip_sumsq sq[19];
            int64_t samples[19];

            cr_assert_not_null(dir);
            for (size_t i = 0; i < dim; i++)
                dir[i] = (float)((i % 5) + 1) * 0.01f;
            float **u = updates(n, dim, dir);
            cr_assert_eq(fa_round_sum_new(&one, dim, &err), FA_OK);
            cr_assert_eq(fa_round_sum_new(&many, dim, &err), FA_OK);
            for (size_t k = 0; k < n; k++) {
                samples[k] = (int64_t)(5 + 10 * k);
                fa_clip_sumsq_init(&sq[k]);
                fa_clip_sumsq_add(&sq[k], u[k], dim);
            }
            sq[2].part[5] = NAN; /* a non-finite update, refused by its factor */
            samples[9] = -1;     /* refused by its weight */
            for (size_t k = 0; k < n; k++)
                if (k != 2 && k != 9)
                    cr_assert_eq(
                        fa_round_sum_fold_sumsq(one, u[k], &sq[k], samples[k], &cfg, dir, &err),
                        FA_OK, "%s", err.msg);
            /* in two batches, as two passes of the worker would */
            cr_assert_eq(fa_round_sum_fold_many(many, &folded, (const float *const *)u, sq, samples,
                                                11, &cfg, dir, &err),
                         FA_EINVAL);
            cr_assert(strstr(err.msg, "update 3 of 11") != NULL, "the first error: %s", err.msg);
            cr_assert_eq(folded, 9);
            cr_assert_eq(fa_round_sum_fold_many(many, &folded, (const float *const *)u + 11,
                                                sq + 11, samples + 11, n - 11, &cfg, dir, &err),
                         FA_OK, "%s", err.msg);
            cr_assert_eq(folded, n - 11);
            cr_assert_eq(fa_round_sum_folded(many), (int64_t)n - 2);
            cr_assert_eq(
                memcmp(fa_round_sum_data(one), fa_round_sum_data(many), dim * sizeof(float)), 0,
                "policy %s, dim %zu", policies[p], dim);

            /* nothing after the release */
            cr_assert_eq(fa_round_sum_release(many, NULL, 0.0, 1.0, &err), FA_OK, "%s", err.msg);
            cr_assert_eq(fa_round_sum_fold_many(many, &folded, (const float *const *)u, sq, samples,
                                                1, &cfg, dir, &err),
                         FA_EINVAL);
            cr_assert_eq(folded, 0);
            free_updates(u, n);
            free(dir);
            fa_round_sum_free(one);
            fa_round_sum_free(many);
        }
    }
}

Test(round_math, cosine_trust_uses_only_the_update_and_the_direction)
{
    fa_config cfg = cfg_with(1.0, 1, "cosine");
    float g[DIM], u[DIM];

    fill(g, 3, 1.0f);
    for (size_t i = 0; i < DIM; i++)
        u[i] = -g[i];
    cr_assert_float_eq(fa_round_trust(&cfg, g, g, DIM), 1.0, 1e-12);
    cr_assert_eq(fa_round_trust(&cfg, u, g, DIM), 0.0, "opposite directions get no weight");
    cr_assert_eq(fa_round_trust(&cfg, u, NULL, DIM), 1.0, "no direction yet: full trust");
    fa_config none = cfg_with(1.0, 1, "none");
    cr_assert_eq(fa_round_trust(&none, u, g, DIM), 1.0);
}

Test(round_math, release_adds_the_noise_to_the_sum_then_divides)
{
    fa_config cfg = cfg_with(2.0, 1, "none");
    static const char SEED[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    fa_round_sum *s = NULL;
    fa_noise *nz = NULL, *again = NULL;
    fa_error err = FA_ERROR_INIT;
    float u[DIM], sum[DIM];
    double z[DIM];
    unsigned char material[40], seed[32];

    cr_assert_eq(fa_crypto_init(&err), FA_OK);
    cr_assert_eq(fa_round_sum_new(&s, DIM, &err), FA_OK);
    fill(u, 4, 0.01f);
    cr_assert_eq(fa_round_sum_fold(s, u, 1, &cfg, NULL, &err), FA_OK);
    memcpy(sum, fa_round_sum_data(s), sizeof(sum));
    cr_assert_eq(fa_round_noise(&nz, SEED, 7, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(fa_noise_seeded(nz), 1);
    cr_assert_eq(fa_round_sum_release(s, nz, 1.5 * cfg.clip_norm, 10.0, &err), FA_OK);
    cr_assert_eq(fa_round_sum_released(s), 1);

    /* The stream of round 7 is keyed by SHA-256(seed || 7 as u64 LE). */
    for (int i = 0; i < 32; i++) {
        unsigned hi, lo;
        cr_assert_eq(sscanf(SEED + 2 * i, "%1x%1x", &hi, &lo), 2);
        material[i] = (unsigned char)(hi << 4 | lo);
    }
    memcpy(material + 32, "\x07\0\0\0\0\0\0\0", 8);
    fa_sha256(seed, material, sizeof(material));
    cr_assert_eq(fa_noise_new_seeded(&again, seed, &err), FA_OK);
    cr_assert_eq(fa_noise_standard(again, z, DIM, &err), FA_OK);
    for (size_t i = 0; i < DIM; i++) {
        /* x <- fl32(x + sigma S z) in double, then the public denominator. */
        float noisy = (float)((double)sum[i] + 3.0 * z[i]);
        float expect = noisy * (float)(1.0 / 10.0);
        cr_assert_eq(fa_round_sum_data(s)[i], expect, "coordinate %zu", i);
    }
    /* A released sum takes no more updates until cleared. */
    fill(u, 5, 0.01f);
    cr_assert_eq(fa_round_sum_fold(s, u, 1, &cfg, NULL, &err), FA_EINVAL);
    cr_assert_eq(fa_round_sum_release(s, nz, 1.0, 10.0, &err), FA_EINVAL);
    fa_round_sum_clear(s);
    cr_assert_eq(fa_round_sum_folded(s), 0);
    cr_assert_eq(fa_round_sum_fold(s, u, 1, &cfg, NULL, &err), FA_OK);
    cr_assert_eq(fa_round_sum_release(s, nz, 1.0, 0.0, &err), FA_EINVAL, "denominator 0");
    fa_noise_free(nz);
    fa_noise_free(again);
    fa_round_sum_free(s);
}

Test(round_math, step_moves_a_copy_and_reports_the_direction)
{
    fa_optim_config oc = FA_OPTIM_CONFIG_INIT;
    fa_optim *opt = NULL;
    fa_error err = FA_ERROR_INIT;
    float base[DIM], mean[DIM], next[DIM], dir[DIM], keep[DIM];

    oc.lr = 0.5;
    cr_assert_eq(fa_optim_new(&opt, &oc, DIM, &err), FA_OK);
    fill(base, 6, 1.0f);
    fill(mean, 7, 0.1f);
    memcpy(keep, base, sizeof(base));
    cr_assert_eq(fa_round_step(next, dir, opt, base, mean, DIM, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(memcmp(base, keep, sizeof(base)), 0, "the base model is not changed");
    for (size_t i = 0; i < DIM; i++) {
        cr_assert_eq(next[i], base[i] + 0.5f * mean[i]); /* FedAvg: x + lr * mean */
        cr_assert_eq(dir[i], next[i] - base[i]);
    }
    mean[3] = NAN;
    cr_assert_eq(fa_round_step(next, dir, opt, base, mean, DIM, &err), FA_EINVAL);
    fa_optim_free(opt);
}

Test(round_math, server_optimizer_follows_the_configuration)
{
    fa_config cfg;
    fa_optim *opt = NULL;
    fa_error err = FA_ERROR_INIT;

    fa_config_defaults(&cfg);
    /* ALS, the default model, takes its own item solve whatever server_optimizer says. */
    cr_assert_str_eq(cfg.model, "als");
    cr_assert_eq(fa_round_optim_new(&opt, &cfg, 10 * 16 + 16 * 16, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(fa_optim_config_of(opt)->kind, FA_OPTIM_ALS);
    cr_assert_float_eq(fa_optim_config_of(opt)->lr, cfg.als_step, 0);
    cr_assert_eq(fa_optim_config_of(opt)->als_factors, 16u);
    fa_optim_free(opt);
    opt = NULL;
    (void)snprintf(cfg.model, sizeof(cfg.model), "ncf");
    cr_assert_eq(fa_round_optim_new(&opt, &cfg, DIM, &err), FA_OK, "%s", err.msg);
    const fa_optim_config *oc = fa_optim_config_of(opt);
    cr_assert_eq(oc->kind, FA_OPTIM_FEDADAM);
    cr_assert_float_eq(oc->lr, cfg.server_lr, 0);
    cr_assert_float_eq(oc->tau, cfg.server_tau, 0);
    fa_optim_free(opt);

    (void)snprintf(cfg.server_optimizer, sizeof(cfg.server_optimizer), "fedyogi");
    cfg.server_lr = 0.02;
    cfg.server_tau = 1e-4;
    cr_assert_eq(fa_round_optim_new(&opt, &cfg, DIM, &err), FA_OK, "%s", err.msg);
    oc = fa_optim_config_of(opt);
    cr_assert_eq(oc->kind, FA_OPTIM_FEDYOGI);
    cr_assert_float_eq(oc->lr, 0.02, 0);
    cr_assert_float_eq(oc->tau, 1e-4, 0);
    fa_optim_free(opt);

    (void)snprintf(cfg.server_optimizer, sizeof(cfg.server_optimizer), "sgd");
    cr_assert_eq(fa_round_optim_new(&opt, &cfg, DIM, &err), FA_EINVAL);
    cr_assert_null(opt);
    cr_assert(strstr(err.msg, "sgd") != NULL, "%s", err.msg);
}

Test(round_math, mechanism_names_the_denominator_rule)
{
    fa_config cfg = cfg_with(0.7, 1, "cosine");
    fa_ledger_mechanism m;

    cfg.noise_multiplier = 1.3;
    fa_round_mechanism(&m, &cfg, 0.25, 140, 120);
    cr_assert_eq(m.clip_norm, 0.7);
    cr_assert_eq(m.noise_multiplier, 1.3);
    cr_assert_eq(m.sampling_rate, 0.25);
    cr_assert_eq(m.cohort_size, 140);
    cr_assert_eq(m.denominator, 120.0);
    cr_assert_str_eq(m.denominator_rule, "min_cohort");
    cr_assert_eq(m.weight_bound, 1.0);
    cr_assert_str_eq(m.noise_method, FA_NOISE_METHOD);
    cr_assert_eq(m.seeded, 0);
    cr_assert_str_eq(m.trust_policy, "cosine");
    cfg.expected_cohort = 150;
    fa_round_mechanism(&m, &cfg, 0.25, 140, 120);
    cr_assert_eq(m.denominator, 150.0);
    cr_assert_str_eq(m.denominator_rule, "expected_cohort");
    cfg.expected_cohort = 100; /* below this round's minimum: the minimum */
    fa_round_mechanism(&m, &cfg, 0.25, 140, 120);
    cr_assert_eq(m.denominator, 120.0);
    cr_assert_str_eq(m.denominator_rule, "min_cohort");
}

Test(round_math, unseeded_noise_needs_no_explicit_crypto_init)
{
    /* Each test runs in its own process: libsodium is not initialised here,
     * and guarded memory used to abort the process. */
    fa_noise *nz = NULL;
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_round_noise(&nz, "", 1, &err), FA_OK, "%s", err.msg);
    cr_assert_not_null(nz);
    fa_noise_free(nz);
}

/* The one round decision: cohort rules first, then the budget, composing only a release. */
Test(round_math, the_round_decision_abandons_refuses_or_releases)
{
    static const struct {
        int64_t cohort;
        double epsilon_max;
        fa_round_state want;
        fa_ledger_kind kind;
    } CASES[] = {
        {2, 100.0, FA_ROUND_ABANDONED, FA_LEDGER_ABANDONMENT},  /* below min_cohort 3 */
        {10, 100.0, FA_ROUND_ABANDONED, FA_LEDGER_ABANDONMENT}, /* full: max_cohort 10 */
        {3, 100.0, FA_ROUND_CLOSED, FA_LEDGER_RELEASE},
        {9, 100.0, FA_ROUND_CLOSED, FA_LEDGER_RELEASE},
        {5, 0.5, FA_ROUND_REFUSED, FA_LEDGER_REFUSAL}, /* sigma 1, q 1: epsilon ~4 > 0.5 */
    };

    for (size_t i = 0; i < sizeof(CASES) / sizeof(CASES[0]); i++) {
        fa_config cfg;
        fa_accountant *acct = NULL;
        fa_ledger_entry e;
        fa_round_state out;
        fa_error err = FA_ERROR_INIT;
        double eps;

        fa_config_defaults(&cfg);
        (void)snprintf(cfg.model, sizeof(cfg.model), "ncf");
        cfg.min_cohort = 3;
        cfg.max_cohort = 10;
        cfg.noise_multiplier = 1.0;
        cfg.epsilon_max = CASES[i].epsilon_max;
        cr_assert_eq(fa_accountant_new(&acct, FA_ACCOUNTANT_PLD, &err), FA_OK);
        fa_ledger_entry_next(&e, NULL, NULL);
        e.round_id = 1;
        cr_assert_eq(fa_round_decide(&out, &e, acct, &cfg, 1.0, CASES[i].cohort, 3, &err), FA_OK,
                     "%s", err.msg);
        cr_assert_eq(out, CASES[i].want, "case %zu", i);
        cr_assert_eq(e.kind, CASES[i].kind, "case %zu", i);
        cr_assert_eq(e.mech.cohort_size, CASES[i].cohort);
        cr_assert_eq(e.accountant, FA_ACCOUNTANT_PLD);
        cr_assert_eq(fa_accountant_releases(acct), out == FA_ROUND_CLOSED ? 1 : 0,
                     "only a release is composed (case %zu)", i);
        cr_assert_eq(fa_accountant_epsilon(&eps, acct, cfg.delta, &err), FA_OK);
        cr_assert_eq(e.epsilon, eps, "the entry states the accountant's epsilon (case %zu)", i);
        fa_accountant_free(acct);
    }
}
