/*
 * What both drivers of fedagg simulate share (sim.h): the choice of
 * devices, the adversarial coins, the evaluation and the per-round output.
 */
#include "sim/sim.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "model/data.h"
#include "model/eval.h"
#include "model/ncf.h"
#include "model/params.h"
#include "model/rng.h"
#include "model/synth.h"
#include "model/vec.h"
#include "privacy/accountant.h"
#include "privacy/crypto.h"

#define STREAM_COIN     11u /* rng stream of the Poisson coins */
#define STREAM_ATTACKER 13u /* rng stream of the coins that make a device adversarial */

/* ============================================================ devices */

int32_t fa_sim_choose(int32_t *out, const fa_sim *s, int64_t round_id, int64_t k)
{
    uint64_t x = s->opts.seed * 0x9E3779B97F4A7C15ull + (uint64_t)round_id;
    int32_t n;

    if (k > s->users)
        k = s->users;
    for (int32_t u = 0; u < s->users; u++)
        out[u] = u;
    /* A seeded Fisher-Yates shuffle (xorshift64*), then the first k. */
    for (int32_t u = s->users - 1; u > 0; u--) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        int32_t r = (int32_t)((x * 0x2545F4914F6CDD1Dull) % (uint64_t)(u + 1));
        int32_t t = out[u];
        out[u] = out[r];
        out[r] = t;
    }
    n = (int32_t)k;
    /* Increasing id order: the order devices post and the sum is folded. */
    for (int32_t i = 1; i < n; i++) {
        int32_t v = out[i], j = i;
        for (; j > 0 && out[j - 1] > v; j--)
            out[j] = out[j - 1];
        out[j] = v;
    }
    return n;
}

int32_t fa_sim_poisson(int32_t *out, const fa_sim *s, int64_t round_id, double q)
{
    int32_t n = 0;

    for (int32_t u = 0; u < s->users; u++) {
        fa_rng r;
        /* One independent coin per (device, round), as at the server's check-in. */
        fa_rng_init(&r, s->opts.seed * 0x9E3779B97F4A7C15ull + (uint64_t)round_id,
                    STREAM_COIN + ((uint64_t)u << 8));
        if (fa_rng_uniform(&r) < q)
            out[n++] = u;
    }
    return n;
}

int fa_sim_attack_parse(fa_sim_attack *out, const char *name)
{
    static const char *const NAMES[] = {"none", "boost", "scale", "noise"};

    for (size_t i = 0; i < sizeof(NAMES) / sizeof(NAMES[0]); i++) {
        if (strcmp(name, NAMES[i]) == 0) {
            *out = (fa_sim_attack)i;
            return FA_OK;
        }
    }
    return FA_EINVAL;
}

int fa_sim_is_attacker(const fa_sim *s, int32_t u)
{
    fa_rng r;

    if (s->attack == FA_SIM_ATTACK_NONE || s->attack_fraction <= 0.0)
        return 0;
    fa_rng_init(&r, s->opts.seed, STREAM_ATTACKER + ((uint64_t)u << 8));
    return fa_rng_uniform(&r) < s->attack_fraction;
}

uint64_t fa_sim_device_seed(const fa_sim *s, int32_t u, int64_t version)
{
    return s->opts.seed * 1000003u + (uint64_t)u * 7919u + (uint64_t)version;
}

/* ========================================================= evaluation */

struct eval_job {
    const fa_sim *s;
    const fa_params *theta;
    double *hit, *ndcg, *target; /* per evaluated user; NaN: an attacker, not counted */
    int part, parts;
    int rc;
    fa_error err;
};

static void *eval_worker(void *arg)
{
    struct eval_job *j = arg;
    fa_ncf *ws = NULL;
    float scores[FA_DATASET_CANDIDATES];

    if ((j->rc = fa_ncf_new(&ws, FA_DATASET_CANDIDATES, &j->err)) < 0)
        return NULL;
    for (int32_t k = j->part; k < j->s->n_eval; k += j->parts) {
        int32_t u = j->s->eval_ids[k];
        const int32_t *cand = fa_dataset_test(j->s->ds, u);
        size_t rank;

        const float *uvec = j->s->user_table + (size_t)u * FA_NCF_EMBED_DIM;

        if (fa_sim_is_attacker(j->s, u)) {
            j->hit[k] = j->ndcg[k] = j->target[k] = NAN;
            continue;
        }
        fa_eval_user_scores(scores, ws, j->theta, uvec, j->s->ds, u, cand, FA_DATASET_CANDIDATES);
        rank = fa_eval_rank(scores, FA_DATASET_CANDIDATES);
        j->hit[k] = fa_eval_hit(rank);
        j->ndcg[k] = fa_eval_ndcg(rank);
        j->target[k] = 0.0;
        if (j->s->attack == FA_SIM_ATTACK_BOOST) {
            /* The target in the test item's place, against the same negatives
             * (when it is one of them, its own score stands in for it). */
            int32_t alt[FA_DATASET_CANDIDATES];
            memcpy(alt, cand, sizeof(alt));
            alt[0] = j->s->attack_target;
            for (size_t i = 1; i < FA_DATASET_CANDIDATES; i++)
                if (alt[i] == j->s->attack_target)
                    alt[i] = cand[0];
            fa_eval_user_scores(scores, ws, j->theta, uvec, j->s->ds, u, alt,
                                FA_DATASET_CANDIDATES);
            j->target[k] = fa_eval_hit(fa_eval_rank(scores, FA_DATASET_CANDIDATES));
        }
    }
    fa_ncf_free(ws);
    return NULL;
}

int fa_sim_eval(double *hr10_out, double *ndcg10_out, double *target_out, const fa_sim *s,
                const fa_params *theta, fa_error *err)
{
    struct eval_job jobs[64];
    pthread_t threads[64];
    int parts = s->parallel < 64 ? s->parallel : 64, started = 0, rc = FA_OK;
    double *hit = NULL, *ndcg = NULL, *target = NULL, hits = 0.0, gains = 0.0, targets = 0.0;
    int64_t honest = 0;

    *hr10_out = *ndcg10_out = 0.0;
    if (target_out != NULL)
        *target_out = 0.0;
    if ((size_t)fa_dataset_num_items(s->ds) > fa_params_num_items(theta))
        return fa_fail(err, FA_EINVAL, "the dataset has %d items, the model only %zu",
                       fa_dataset_num_items(s->ds), fa_params_num_items(theta));
    if (s->n_eval == 0)
        return FA_OK;
    hit = calloc((size_t)s->n_eval, sizeof(double));
    ndcg = calloc((size_t)s->n_eval, sizeof(double));
    target = calloc((size_t)s->n_eval, sizeof(double));
    if (hit == NULL || ndcg == NULL || target == NULL) {
        rc = fa_fail(err, FA_ENOMEM, "out of memory for the evaluation");
        goto cleanup;
    }
    for (int t = 0; t < parts; t++) {
        jobs[t] = (struct eval_job){s, theta, hit, ndcg, target, t, parts, FA_OK, FA_ERROR_INIT};
        if (pthread_create(&threads[t], NULL, eval_worker, &jobs[t]) != 0) {
            rc = fa_fail(err, FA_EINTERNAL, "cannot start an evaluation thread");
            break;
        }
        started++;
    }
    for (int t = 0; t < started; t++) {
        (void)pthread_join(threads[t], NULL);
        if (jobs[t].rc < 0 && rc == FA_OK) {
            *err = jobs[t].err;
            rc = jobs[t].rc;
        }
    }
    if (rc < 0)
        goto cleanup;
    /* Summed in user order, so the result does not depend on the threads. */
    for (int32_t k = 0; k < s->n_eval; k++) {
        if (isnan(hit[k]))
            continue; /* an attacker */
        hits += hit[k];
        gains += ndcg[k];
        targets += target[k];
        honest++;
    }
    if (honest > 0) {
        *hr10_out = hits / (double)honest;
        *ndcg10_out = gains / (double)honest;
        if (target_out != NULL)
            *target_out = targets / (double)honest;
    }
cleanup:
    free(hit);
    free(ndcg);
    free(target);
    return rc;
}

int fa_sim_eval_due(const fa_sim *s, int64_t r)
{
    return r == s->rounds || r % s->eval_every == 0;
}

void fa_sim_print(const fa_sim *s, const fa_sim_line *l)
{
    char hr[32], ndcg[32], eps[32];

    if (l->evaluated) {
        (void)snprintf(hr, sizeof(hr), "%.4f", l->hr10);
        (void)snprintf(ndcg, sizeof(ndcg), "%.4f", l->ndcg10);
    } else {
        (void)snprintf(hr, sizeof(hr), "null");
        (void)snprintf(ndcg, sizeof(ndcg), "null");
    }
    /* JSON has no infinity: the non-private baseline says so as a string. */
    if (isinf(l->epsilon))
        (void)snprintf(eps, sizeof(eps), "\"inf\"");
    else
        (void)snprintf(eps, sizeof(eps), "%.6g", l->epsilon);
    fprintf(s->out,
            "{\"round\":%lld,\"version\":%lld,\"cohort\":%lld,\"hr10\":%s,\"ndcg10\":%s,"
            "\"epsilon\":%s,\"delta\":%.6g,\"seconds\":%.3f",
            (long long)l->round, (long long)l->version, (long long)l->cohort, hr, ndcg, eps,
            l->delta, l->seconds);
    if (s->attack != FA_SIM_ATTACK_NONE) {
        if (l->evaluated && s->attack == FA_SIM_ATTACK_BOOST)
            (void)snprintf(hr, sizeof(hr), "%.4f", l->target_hr10);
        else
            (void)snprintf(hr, sizeof(hr), "null");
        fprintf(s->out, ",\"attackers\":%lld,\"target_hr10\":%s", (long long)l->attackers, hr);
    }
    fprintf(s->out, "}\n");
    (void)fflush(s->out);
}
