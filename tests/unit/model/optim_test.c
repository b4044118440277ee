/*
 * Server optimizers against a double-precision restatement of Reddi et al.
 * 2021, Algorithm 2, and the state format's round trip and length checks.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/optim.h"
#include "model/rng.h"

#define DIM 257

static fa_optim *make(fa_optim_kind kind, size_t dim)
{
    fa_optim_config cfg = FA_OPTIM_CONFIG_INIT;
    fa_optim *o = NULL;
    fa_error err = FA_ERROR_INIT;

    cfg.kind = kind;
    cfg.lr = kind == FA_OPTIM_FEDAVG ? 0.5 : 0.01;
    cr_assert_eq(fa_optim_new(&o, &cfg, dim, &err), FA_OK, "%s", err.msg);
    return o;
}

Test(optim, fedavg_moves_by_lr_times_the_mean_delta)
{
    fa_optim *o = make(FA_OPTIM_FEDAVG, 2);
    float theta[2] = {1.0f, 2.0f}, delta[2] = {0.5f, -1.0f};
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_optim_step(o, theta, delta, 2, &err), FA_OK);
    cr_assert_float_eq(theta[0], 1.25f, 1e-7);
    cr_assert_float_eq(theta[1], 1.5f, 1e-7);
    cr_assert_eq(fa_optim_steps(o), 1u);
    fa_optim_free(o);
}

static void adaptive_matches_reference(fa_optim_kind kind)
{
    fa_optim *o = make(kind, DIM);
    const fa_optim_config *c = fa_optim_config_of(o);
    double m[DIM], v[DIM], x[DIM];
    float theta[DIM], delta[DIM];
    fa_error err = FA_ERROR_INIT;
    fa_rng r;

    fa_rng_init(&r, 8, 0);
    for (int i = 0; i < DIM; i++) {
        theta[i] = (float)fa_rng_normal(&r);
        x[i] = theta[i];
        m[i] = 0.0;
        v[i] = c->tau * c->tau;
    }
    for (int t = 0; t < 6; t++) {
        for (int i = 0; i < DIM; i++) {
            double d;
            delta[i] = (float)(0.01 * fa_rng_normal(&r));
            d = delta[i];
            m[i] = c->beta1 * m[i] + (1 - c->beta1) * d;
            if (kind == FA_OPTIM_FEDADAM)
                v[i] = c->beta2 * v[i] + (1 - c->beta2) * d * d;
            else
                v[i] = v[i] - (1 - c->beta2) * d * d * (v[i] > d * d ? 1 : v[i] < d * d ? -1 : 0);
            x[i] += c->lr * m[i] / (sqrt(v[i]) + c->tau);
        }
        cr_assert_eq(fa_optim_step(o, theta, delta, DIM, &err), FA_OK);
        for (int i = 0; i < DIM; i++)
            cr_assert(fabs(theta[i] - x[i]) < 1e-5 * (1 + fabs(x[i])), "step %d i %d: %g vs %g", t,
                      i, (double)theta[i], x[i]);
    }
    fa_optim_free(o);
}

Test(optim, fedadam_follows_algorithm_2)
{
    adaptive_matches_reference(FA_OPTIM_FEDADAM);
}

Test(optim, fedyogi_follows_algorithm_2)
{
    adaptive_matches_reference(FA_OPTIM_FEDYOGI);
}

Test(optim, state_round_trip_continues_identically)
{
    fa_optim_kind kinds[3] = {FA_OPTIM_FEDAVG, FA_OPTIM_FEDADAM, FA_OPTIM_FEDYOGI};

    for (int k = 0; k < 3; k++) {
        fa_optim *a = make(kinds[k], DIM), *b = make(kinds[k], DIM);
        float ta[DIM], tb[DIM], delta[DIM];
        unsigned char *buf = NULL;
        size_t len = 0;
        fa_error err = FA_ERROR_INIT;
        fa_rng r;

        fa_rng_init(&r, 2, 0);
        for (int i = 0; i < DIM; i++)
            ta[i] = (float)fa_rng_normal(&r);
        for (int t = 0; t < 3; t++) {
            for (int i = 0; i < DIM; i++)
                delta[i] = (float)(0.1 * fa_rng_normal(&r));
            cr_assert_eq(fa_optim_step(a, ta, delta, DIM, &err), FA_OK);
        }
        cr_assert_eq(fa_optim_save(&buf, &len, a, &err), FA_OK);
        cr_assert_eq(len, kinds[k] == FA_OPTIM_FEDAVG ? 64u : 64u + 8u * DIM);
        cr_assert_eq(memcmp(buf, "FAOPTIM", 8), 0);
        cr_assert_eq(fa_optim_load(b, buf, len, &err), FA_OK, "%s", err.msg);
        cr_assert_eq(fa_optim_steps(b), 3u);
        memcpy(tb, ta, sizeof(ta));
        cr_assert_eq(fa_optim_step(a, ta, delta, DIM, &err), FA_OK);
        cr_assert_eq(fa_optim_step(b, tb, delta, DIM, &err), FA_OK);
        cr_assert_eq(memcmp(ta, tb, sizeof(ta)), 0);
        free(buf);
        fa_optim_free(a);
        fa_optim_free(b);
    }
}

Test(optim, load_rejects_damaged_or_foreign_state)
{
    fa_optim *a = make(FA_OPTIM_FEDADAM, DIM), *y = make(FA_OPTIM_FEDYOGI, DIM);
    fa_optim *small = make(FA_OPTIM_FEDADAM, DIM - 1);
    unsigned char *buf = NULL, *copy;
    size_t len = 0;
    fa_error err = FA_ERROR_INIT;
    float nan = NAN, neg = -1.0f;

    cr_assert_eq(fa_optim_save(&buf, &len, a, &err), FA_OK);
    copy = malloc(len);
    cr_assert_not_null(copy);
    cr_assert_eq(fa_optim_load(a, buf, len - 1, &err), FA_EINVAL);
    cr_assert_eq(fa_optim_load(a, buf, 10, &err), FA_EINVAL);
    cr_assert_eq(fa_optim_load(y, buf, len, &err), FA_EINVAL);
    cr_assert_eq(fa_optim_load(small, buf, len, &err), FA_EINVAL);
    memcpy(copy, buf, len);
    copy[0] = 'X';
    cr_assert_eq(fa_optim_load(a, copy, len, &err), FA_EINVAL);
    memcpy(copy, buf, len);
    copy[8] = 2; /* version */
    cr_assert_eq(fa_optim_load(a, copy, len, &err), FA_EINVAL);
    cr_assert_not_null(strstr(err.msg, "version 2"));
    memcpy(copy, buf, len);
    memcpy(copy + 64, &nan, 4); /* m[0] (little-endian host) */
    cr_assert_eq(fa_optim_load(a, copy, len, &err), FA_EINVAL);
    memcpy(copy, buf, len);
    memcpy(copy + 64 + 4 * DIM, &neg, 4); /* v[0] */
    cr_assert_eq(fa_optim_load(a, copy, len, &err), FA_EINVAL);
    cr_assert_eq(fa_optim_steps(a), 0u);
    free(copy);
    free(buf);
    fa_optim_free(a);
    fa_optim_free(y);
    fa_optim_free(small);
}

Test(optim, state_names_the_kind_that_wrote_it)
{
    fa_optim_kind kinds[] = {FA_OPTIM_FEDAVG, FA_OPTIM_FEDADAM, FA_OPTIM_FEDYOGI}, got;
    unsigned char *buf = NULL;
    size_t len = 0;
    fa_error err = FA_ERROR_INIT;

    for (int k = 0; k < 3; k++) {
        fa_optim *o = make(kinds[k], DIM);
        cr_assert_eq(fa_optim_save(&buf, &len, o, &err), FA_OK);
        cr_assert_eq(fa_optim_state_kind(&got, buf, len, &err), FA_OK, "%s", err.msg);
        cr_assert_eq(got, kinds[k]);
        buf[12] = 9; /* kind */
        cr_assert_eq(fa_optim_state_kind(&got, buf, len, &err), FA_EINVAL);
        cr_assert_eq(fa_optim_state_kind(&got, buf, 20, &err), FA_EINVAL, "too short");
        buf[0] = 'X';
        cr_assert_eq(fa_optim_state_kind(&got, buf, len, &err), FA_EINVAL);
        free(buf);
        fa_optim_free(o);
    }
}

Test(optim, step_rejects_bad_deltas_without_changing_anything)
{
    fa_optim *o = make(FA_OPTIM_FEDADAM, 3);
    float theta[3] = {1, 2, 3}, delta[3] = {0.1f, NAN, 0.2f};
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_optim_step(o, theta, delta, 3, &err), FA_EINVAL);
    cr_assert_eq(fa_optim_step(o, theta, delta, 2, &err), FA_EINVAL);
    cr_assert_float_eq(theta[1], 2.0f, 0);
    cr_assert_eq(fa_optim_steps(o), 0u);
    fa_optim_free(o);
}

Test(optim, config_and_names)
{
    fa_optim_config cfg = FA_OPTIM_CONFIG_INIT;
    fa_optim *o = NULL;
    fa_optim_kind k;
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_optim_kind_parse(&k, "fedyogi"), FA_OK);
    cr_assert_eq(k, FA_OPTIM_FEDYOGI);
    cr_assert_str_eq(fa_optim_kind_name(FA_OPTIM_FEDADAM), "fedadam");
    cr_assert_eq(fa_optim_kind_parse(&k, "adam"), FA_EINVAL);
    cfg.lr = 0;
    cr_assert_eq(fa_optim_new(&o, &cfg, 4, &err), FA_EINVAL);
    cfg = (fa_optim_config)FA_OPTIM_CONFIG_INIT;
    cfg.tau = 0;
    cr_assert_eq(fa_optim_new(&o, &cfg, 4, &err), FA_EINVAL);
    cfg.tau = 1e-3;
    cr_assert_eq(fa_optim_new(&o, &cfg, 0, &err), FA_EINVAL);
    cr_assert_null(o);
}
