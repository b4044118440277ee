/*
 * The in-process driver of fedagg simulate: the server's round without HTTP
 * and PostgreSQL. Devices train on s->parallel threads; each computes its
 * own clip-and-weight factor (fa_round_factor, a pure function of the
 * update and public state) and the main thread adds factor * update to the
 * round's sum strictly in device order through a small ring of slots, so
 * the sum, and so the model, is the same for any number of threads and the
 * same arithmetic as the server's fold. The
 * release, the server step and the ledger entries (kept in memory, not
 * signed) are those of the server's round close: aggregator/round_math.h
 * and privacy/ledger.h.
 */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregator/round_math.h"
#include "core/util.h"
#include "model/data.h"
#include "model/als.h"
#include "model/local.h"
#include "model/optim.h"
#include "model/params.h"
#include "model/rng.h"
#include "model/snapshot.h"
#include "model/vec.h"
#include "privacy/accountant.h"
#include "privacy/budget.h"
#include "privacy/ledger.h"
#include "privacy/noise.h"
#include "sim/sim.h"

/* States of a ring slot. */
enum { SLOT_EMPTY = 0, SLOT_READY = 1, SLOT_SKIP = 2 };

/* One round's device work, shared by the trainers and the folding thread. */
struct local_round {
    fa_sim *s;
    const fa_params *global; /* the round's base model, read only */
    const float *direction;  /* last published direction, read only, may be NULL */
    int64_t version;         /* base version */
    const int32_t *chosen;   /* devices, increasing ids */
    int32_t n;               /* their count */
    size_t dim;              /* floats of the global vector */
    int ring;                /* slots */
    float **bufs;            /* [ring] dim floats each: a device's update */
    double *factor;          /* [ring] its clip-and-weight factor */

    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled on every slot change and on failure */
    int32_t next;      /* mu: next device index to claim */
    int32_t folded;    /* mu: devices folded (the next index to fold) */
    int *state;        /* mu: [ring] SLOT_* */
    int failed;        /* mu: a trainer failed; err holds why */
    int64_t attackers; /* mu: adversarial devices trained this round */
    fa_error err;      /* mu */
};

static void fail_round(struct local_round *lr, const fa_error *err)
{
    (void)pthread_mutex_lock(&lr->mu);
    if (!lr->failed) {
        lr->failed = 1;
        lr->err = *err;
    }
    (void)pthread_cond_broadcast(&lr->cv);
    (void)pthread_mutex_unlock(&lr->mu);
}

/*
 * The statistic that makes an ALS item row score high for most users: with
 * p the sum of every item row (where most user vectors point) and G' the
 * regularised released Gram matrix (both public), the solve v_t = G'^-1 b_t
 * gives the target the most score along p per unit of b_t when b_t points
 * along G'^-1 p (maximise p . G'^-1 x over |x| = 1).
 */
static int als_popular_direction(float *u, const fa_params *v, double reg, fa_error *err)
{
    size_t f = fa_params_factors(v);
    double p[FA_ALS_MAX_FACTORS] = {0}, n2 = 0.0;
    int rc;

    for (size_t i = 0; i < fa_params_num_items(v); i++) {
        const float *row = fa_params_item_row(v, i);
        for (size_t j = 0; j < f; j++)
            p[j] += row[j];
    }
    for (size_t j = 0; j < f; j++)
        u[j] = (float)p[j];
    if ((rc = fa_als_gram_solve(u, v, reg, err)) < 0)
        return rc;
    for (size_t j = 0; j < f; j++)
        n2 += (double)u[j] * u[j];
    for (size_t j = 0; j < f; j++)
        u[j] = n2 > 0.0 ? (float)(u[j] / sqrt(n2)) : 0.0f;
    return FA_OK;
}

/*
 * What adversarial device u sends in place of an honest update (sim/sim.h,
 * fa_sim_attack), into out (dim floats); *samples is the count it claims.
 */
static int attack_update(float *out, int64_t *samples, struct local_round *lr, fa_local *lt,
                         int32_t u, const fa_device_data *dev, fa_error *err)
{
    fa_sim *s = lr->s;
    fa_train_opts o = s->opts;
    float *uvec = s->user_table + (size_t)u * FA_NCF_EMBED_DIM;
    int rc = FA_OK;

    o.seed = fa_sim_device_seed(s, u, lr->version);
    *samples = s->cfg.weight_cap_samples; /* the largest weight a claim can earn */
    switch (s->attack) {
    case FA_SIM_ATTACK_BOOST: {
        /* A fabricated history: the target item alone. */
        const int32_t item = s->attack_target;
        const float rating = 1.0f;
        fa_device_data fake = {&item, &rating, 1};
        (void)dev;
        if (fa_params_kind(lr->global) == FA_MODEL_ALS) {
            /* ALS: the direction that raises the target's score for most
             * users. Against trust_policy = structure (public), a
             * well-formed update of a history of the target and the
             * als_min_items - 1 rows after it; otherwise the whole norm on
             * the target's row and nothing in the Gram slot (which would
             * only damp the target's solve). */
            int32_t hist[64];
            size_t n = (size_t)s->cfg.als_min_items, items = fa_params_num_items(lr->global);
            if ((rc = als_popular_direction(uvec, lr->global, s->cfg.als_reg, err)) < 0)
                return rc;
            if (strcmp(s->cfg.trust_policy, "structure") == 0) {
                if (n > 64 || n > items)
                    n = items < 64 ? items : 64;
                for (size_t k = 0; k < n; k++)
                    hist[k] = (int32_t)(((size_t)item + k) % items);
                fa_als_device_update(out, lr->global, uvec, hist, n);
            } else {
                size_t f = fa_params_factors(lr->global);
                memset(out, 0, lr->dim * sizeof(float));
                for (size_t j = 0; j < f; j++)
                    out[(size_t)item * f + j] = uvec[j];
            }
            fa_vec_scale(out, (float)s->attack_scale, lr->dim);
            return FA_OK;
        }
        if ((rc = fa_local_train(NULL, out, lt, uvec, lr->global, &fake, &o, err)) == FA_OK)
            fa_vec_scale(out, (float)s->attack_scale, lr->dim);
        return rc;
    }
    case FA_SIM_ATTACK_SCALE:
        if ((rc = fa_local_train(NULL, out, lt, uvec, lr->global, dev, &o, err)) == FA_OK)
            fa_vec_scale(out, (float)s->attack_scale, lr->dim);
        return rc;
    case FA_SIM_ATTACK_NOISE: {
        fa_rng r;
        double ss = 0.0;
        fa_rng_init(&r, o.seed, 0xBAD);
        for (size_t i = 0; i < lr->dim; i++) {
            out[i] = (float)fa_rng_normal(&r);
            ss += (double)out[i] * out[i];
        }
        fa_vec_scale(out, (float)(s->attack_scale * s->cfg.clip_norm / sqrt(ss)), lr->dim);
        return FA_OK;
    }
    case FA_SIM_ATTACK_NONE:
        break;
    }
    return fa_fail(err, FA_EINVAL, "no attack to run");
}

static void *trainer(void *arg)
{
    struct local_round *lr = arg;
    fa_sim *s = lr->s;
    fa_local *lt = NULL;
    fa_error err = FA_ERROR_INIT;

    if (fa_local_new(&lt, fa_params_num_items(lr->global), s->opts.batch, &err) < 0) {
        fail_round(lr, &err);
        return NULL;
    }
    for (;;) {
        int32_t k, u;
        int slot, st = SLOT_SKIP;

        (void)pthread_mutex_lock(&lr->mu);
        k = lr->next;
        if (k >= lr->n || lr->failed) {
            (void)pthread_mutex_unlock(&lr->mu);
            break;
        }
        lr->next++;
        /* Slot k % ring is free once device k - ring has been folded. */
        while (!lr->failed && k - lr->folded >= lr->ring)
            (void)pthread_cond_wait(&lr->cv, &lr->mu);
        (void)pthread_mutex_unlock(&lr->mu);
        slot = k % lr->ring;
        u = lr->chosen[k];
        fa_device_data dev = fa_dataset_user(s->ds, u);
        if (fa_sim_is_attacker(s, u)) {
            int64_t claimed = 0;
            if (attack_update(lr->bufs[slot], &claimed, lr, lt, u, &dev, &err) < 0 ||
                fa_round_factor(&lr->factor[slot], lr->bufs[slot], lr->dim, claimed, &s->cfg,
                                lr->direction, &err) < 0) {
                fail_round(lr, &err);
                break;
            }
            st = SLOT_READY;
            (void)pthread_mutex_lock(&lr->mu);
            lr->attackers++;
            (void)pthread_mutex_unlock(&lr->mu);
        } else if (dev.count > 0) {
            fa_train_opts o = s->opts;
            o.seed = fa_sim_device_seed(s, u, lr->version);
            if (fa_local_train(NULL, lr->bufs[slot], lt,
                               s->user_table + (size_t)u * FA_NCF_EMBED_DIM, lr->global, &dev, &o,
                               &err) < 0 ||
                fa_round_factor(&lr->factor[slot], lr->bufs[slot], lr->dim, (int64_t)dev.count,
                                &s->cfg, lr->direction, &err) < 0) {
                fail_round(lr, &err);
                break;
            }
            st = SLOT_READY;
        }
        (void)pthread_mutex_lock(&lr->mu);
        lr->state[slot] = st;
        (void)pthread_cond_broadcast(&lr->cv);
        (void)pthread_mutex_unlock(&lr->mu);
    }
    fa_local_free(lt);
    return NULL;
}

/* Trains the round's devices and adds their prepared updates to sum in device order. */
static int train_and_fold(fa_round_sum *sum, struct local_round *lr, fa_error *err)
{
    pthread_t threads[256];
    int started = 0, rc = FA_OK;

    for (int t = 0; t < lr->s->parallel; t++) {
        if (pthread_create(&threads[t], NULL, trainer, lr) != 0) {
            fa_error e = FA_ERROR_INIT;
            (void)fa_fail(&e, FA_EINTERNAL, "cannot start a device thread");
            fail_round(lr, &e);
            break;
        }
        started++;
    }
    for (int32_t k = 0; k < lr->n && started > 0; k++) {
        int slot = k % lr->ring, st;

        (void)pthread_mutex_lock(&lr->mu);
        while (!lr->failed && lr->state[slot] == SLOT_EMPTY)
            (void)pthread_cond_wait(&lr->cv, &lr->mu);
        st = lr->failed ? SLOT_EMPTY : lr->state[slot];
        (void)pthread_mutex_unlock(&lr->mu);
        if (st == SLOT_EMPTY)
            break;
        if (st == SLOT_READY &&
            (rc = fa_round_sum_add(sum, lr->bufs[slot], lr->factor[slot], err)) < 0) {
            fail_round(lr, err);
            break;
        }
        (void)pthread_mutex_lock(&lr->mu);
        lr->state[slot] = SLOT_EMPTY;
        lr->folded = k + 1;
        (void)pthread_cond_broadcast(&lr->cv);
        (void)pthread_mutex_unlock(&lr->mu);
    }
    for (int t = 0; t < started; t++)
        (void)pthread_join(threads[t], NULL);
    if (lr->failed) {
        *err = lr->err;
        return lr->err.code < 0 ? lr->err.code : FA_EINTERNAL;
    }
    return rc;
}

/* Writes the model as the server would publish it (same metadata, same bytes). */
static int save_model(const fa_sim *s, const fa_params *p, int64_t version, double epsilon,
                      fa_error *err)
{
    fa_snapshot_meta meta = FA_SNAPSHOT_META_INIT;
    unsigned char *buf = NULL;
    size_t len = 0;
    int rc;

    meta.version = version;
    meta.parent_version = version - 1;
    meta.epsilon = epsilon;
    meta.delta = s->cfg.delta;
    if ((rc = fa_snapshot_safetensors(&buf, &len, p, &meta, err)) == FA_OK)
        rc = fa_file_write(s->save_model, buf, len, 0644, 0, err);
    free(buf);
    return rc;
}

int fa_sim_run_local(fa_sim *s, fa_error *err)
{
    const fa_config *cfg = &s->cfg;
    fa_params *cur = NULL, *next = NULL;
    fa_optim *opt = NULL;
    fa_round_sum *sum = NULL;
    fa_noise *noise = NULL;
    fa_accountant *acct = NULL; /* every release so far, as the server's close composes them */
    fa_accountant_kind kind;
    fa_ledger_entry prev, e;
    fa_round_state outcome;
    struct local_round lr;
    float *direction = NULL;
    int32_t *chosen = NULL;
    int64_t version = 0;
    int have_prev = 0, have_direction = 0, rc;
    double q = cfg->sampling_rate;
    static const unsigned char zero_hash[FA_LEDGER_HASH_BYTES];

    memset(&lr, 0, sizeof(lr));
    if (fa_accountant_parse(&kind, cfg->accountant) < 0)
        return fa_fail(err, FA_EINVAL, "accountant '%s' is unknown", cfg->accountant);
    if ((rc = fa_accountant_new(&acct, kind, err)) < 0)
        return rc;
    (void)pthread_mutex_init(&lr.mu, NULL);
    (void)pthread_cond_init(&lr.cv, NULL);
    /* Model version 0 as the server bootstraps it, over exactly the data's items. */
    if ((rc = fa_round_params_new(&cur, cfg, (size_t)fa_dataset_num_items(s->ds), err)) < 0 ||
        (rc = fa_round_params_new(&next, cfg, (size_t)fa_dataset_num_items(s->ds), err)) < 0)
        goto cleanup;
    fa_params_init_random(cur, (uint64_t)cfg->model_seed);
    lr.dim = fa_params_len(cur);
    if ((rc = fa_round_optim_new(&opt, cfg, lr.dim, err)) < 0 ||
        (rc = fa_round_sum_new(&sum, lr.dim, err)) < 0)
        goto cleanup;
    lr.ring = 4 * s->parallel;
    direction = malloc(lr.dim * sizeof(float));
    chosen = malloc((size_t)s->users * sizeof(int32_t));
    lr.bufs = calloc((size_t)lr.ring, sizeof(float *));
    lr.factor = calloc((size_t)lr.ring, sizeof(double));
    lr.state = calloc((size_t)lr.ring, sizeof(int));
    if (direction == NULL || chosen == NULL || lr.bufs == NULL || lr.factor == NULL ||
        lr.state == NULL) {
        rc = fa_fail(err, FA_ENOMEM, "out of memory");
        goto cleanup;
    }
    for (int i = 0; i < lr.ring; i++)
        if ((lr.bufs[i] = malloc(lr.dim * sizeof(float))) == NULL) {
            rc = fa_fail(err, FA_ENOMEM, "out of memory for %d update buffers", lr.ring);
            goto cleanup;
        }

    if (s->eval_initial) {
        fa_sim_line line;
        uint64_t t0 = fa_now_ns();
        memset(&line, 0, sizeof(line));
        line.delta = cfg->delta;
        if ((rc = fa_sim_eval(&line.hr10, &line.ndcg10, &line.target_hr10, s, cur, err)) < 0)
            goto cleanup;
        line.evaluated = 1;
        line.seconds = (double)(fa_now_ns() - t0) * 1e-9;
        fa_sim_print(s, &line);
    }
    for (int64_t round_id = 1; round_id <= s->rounds; round_id++) {
        uint64_t t0 = fa_now_ns();
        fa_sim_line line;
        int64_t cohort;
        int full;

        /* The round's devices: Poisson coins when the server would sample
         * (q < 1), else a fixed cohort as the HTTP driver sends it. */
        lr.n = q < 1.0 ? fa_sim_poisson(chosen, s, round_id, q)
                       : fa_sim_choose(chosen, s, round_id,
                                       s->cohort > 0 ? s->cohort : cfg->min_cohort);
        lr.s = s;
        lr.global = cur;
        lr.direction = have_direction ? direction : NULL;
        lr.version = version;
        lr.chosen = chosen;
        lr.next = lr.folded = 0;
        lr.attackers = 0;
        lr.failed = 0;
        memset(lr.state, 0, (size_t)lr.ring * sizeof(int));
        fa_round_sum_clear(sum);
        if ((rc = train_and_fold(sum, &lr, err)) < 0)
            goto cleanup;
        cohort = fa_round_sum_folded(sum);
        /* Every device trained (its own vector moved) as it would over
         * HTTP; the server stores at most max_cohort of the updates and
         * turns the rest away (409 round_full). */
        full = cohort >= cfg->max_cohort;
        if (full)
            cohort = cfg->max_cohort;

        fa_ledger_entry_next(&e, have_prev ? &prev : NULL, zero_hash);
        e.round_id = round_id;
        e.created_at = (int64_t)fa_wall_seconds();
        /* The server's decision (round_math.h); without noise there is no
         * budget, only the cohort rules. */
        if (s->no_noise) {
            fa_round_mechanism(&e.mech, cfg, q, cohort, cfg->min_cohort);
            outcome = cohort < cfg->min_cohort || full ? FA_ROUND_ABANDONED : FA_ROUND_CLOSED;
        } else if ((rc = fa_round_decide(&outcome, &e, acct, cfg, q, cohort, cfg->min_cohort,
                                         err)) < 0) {
            goto cleanup;
        }
        if (outcome == FA_ROUND_ABANDONED) {
            /* Below the minimum at the deadline, or full: nothing released,
             * nothing spent. */
            if (!s->no_noise) {
                prev = e;
                have_prev = 1;
            }
            if (full)
                fprintf(stderr,
                        "fedagg simulate: round %" PRId64
                        " abandoned: it reached max_cohort %" PRId64 "\n",
                        round_id, (int64_t)cfg->max_cohort);
            else
                fprintf(stderr,
                        "fedagg simulate: round %" PRId64 " abandoned: cohort %" PRId64
                        " is below the minimum %" PRId64 "\n",
                        round_id, cohort, (int64_t)cfg->min_cohort);
            continue;
        }
        if (outcome == FA_ROUND_REFUSED) {
            rc = fa_fail(err, FA_EREFUSED,
                         "round %" PRId64 " refused: the release would exceed the budget of "
                         "epsilon %g at delta %g (spent so far %.6g)",
                         round_id, cfg->epsilon_max, cfg->delta, e.epsilon);
            goto cleanup;
        }
        if (s->no_noise) {
            rc = fa_round_sum_release(sum, NULL, 0.0, e.mech.denominator, err);
        } else {
            fa_noise_free(noise);
            noise = NULL;
            if ((rc = fa_round_noise(&noise, cfg->noise_seed, round_id, err)) < 0)
                goto cleanup;
            rc = fa_round_sum_release(sum, noise, cfg->noise_multiplier * cfg->clip_norm,
                                      e.mech.denominator, err);
        }
        if (rc < 0 ||
            (rc = fa_round_step(fa_params_data(next), direction, opt, fa_params_cdata(cur),
                                fa_round_sum_data(sum), lr.dim, err)) < 0)
            goto cleanup;
        have_direction = 1;
        fa_params *t = cur;
        cur = next;
        next = t;
        version++;
        e.model_version = version;
        prev = e;
        have_prev = !s->no_noise;

        memset(&line, 0, sizeof(line));
        line.round = round_id;
        line.version = version;
        line.cohort = cohort;
        line.attackers = lr.attackers;
        line.epsilon = s->no_noise ? INFINITY : e.epsilon;
        line.delta = cfg->delta;
        if (fa_sim_eval_due(s, round_id)) {
            if ((rc = fa_sim_eval(&line.hr10, &line.ndcg10, &line.target_hr10, s, cur, err)) < 0)
                goto cleanup;
            line.evaluated = 1;
        }
        line.seconds = (double)(fa_now_ns() - t0) * 1e-9;
        fa_sim_print(s, &line);
    }
    if (s->save_model != NULL && version > 0)
        rc = save_model(s, cur, version, have_prev ? prev.epsilon : 0.0, err);
cleanup:
    fa_accountant_free(acct);
    for (int i = 0; lr.bufs != NULL && i < lr.ring; i++)
        free(lr.bufs[i]);
    free(lr.bufs);
    free(lr.factor);
    free(lr.state);
    (void)pthread_mutex_destroy(&lr.mu);
    (void)pthread_cond_destroy(&lr.cv);
    fa_noise_free(noise);
    fa_round_sum_free(sum);
    fa_optim_free(opt);
    fa_params_free(cur);
    fa_params_free(next);
    free(direction);
    free(chosen);
    return rc;
}
