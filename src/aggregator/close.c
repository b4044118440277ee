/*
 * Round close: the only place that releases anything. One database
 * transaction (fa_store_close_*) covers the decision, the new model version,
 * the ledger entry, the round's end and the next round, so a crash at any
 * point either publishes all of it once or nothing.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregator/internal.h"
#include "aggregator/round_math.h"
#include "core/log.h"
#include "core/util.h"
#include "model/optim.h"
#include "model/params.h"
#include "model/snapshot.h"
#include "privacy/budget.h"
#include "privacy/keys.h"
#include "privacy/ledger.h"
#include "privacy/noise.h"
#include "store/store.h"

/* Parses the ledger head read inside the close transaction. */
static int ledger_head(fa_ledger_entry *prev, int *have_prev, unsigned char prev_hash[32],
                       fa_store_close *cl, fa_error *err)
{
    fa_store_ledger_row last;
    int rc = fa_store_close_ledger_last(&last, cl, err);

    *have_prev = 0;
    if (rc == FA_ENOTFOUND)
        return FA_OK;
    if (rc < 0)
        return rc;
    rc = fa_ledger_entry_parse(prev, last.entry, strlen(last.entry), err);
    memcpy(prev_hash, last.hash, 32);
    fa_store_ledger_row_done(&last);
    if (rc == FA_OK)
        *have_prev = 1;
    return rc;
}

/* Sums the round from its stored ciphertexts (inside the close transaction). */
static int sum_from_store(fa_aggregator *agg, fa_round_sum *sum, fa_store_close *cl,
                          int64_t base_version, fa_error *err)
{
    int done = 0, rc = FA_OK;

    fa_round_sum_clear(sum);
    while (rc == FA_OK) {
        fa_store_update u;
        const char *reason = NULL;
        fa_clip_sumsq sq;
        if ((rc = fa_store_close_next_update(&u, &done, cl, err)) < 0 || done)
            break;
        rc = fa_aggregator__open(agg, agg->scratch, &sq, &reason, u.box, u.box_len, base_version,
                                 u.num_samples, err);
        if (rc == FA_OK)
            rc = fa_aggregator__fold(agg, sum, agg->scratch, &sq, u.num_samples, err);
        fa_store_update_done(&u);
    }
    return rc;
}

/* Applies the noisy mean to the base model: new params, optimizer state, snapshot. */
static int publish(fa_store_model *m, float **direction_out, fa_aggregator *agg,
                   const fa_store_round *r, const float *mean, const fa_ledger_entry *e,
                   fa_error *err)
{
    fa_params *next = NULL;
    fa_snapshot_meta meta = FA_SNAPSHOT_META_INIT;
    unsigned char *opt_state = NULL;
    size_t opt_len = 0;
    float *direction = NULL;
    char metrics[512];
    int rc;

    memset(m, 0, sizeof(*m));
    *direction_out = NULL;
    if ((rc = fa_aggregator__load_model(agg, r->base_version, err)) < 0 ||
        (rc = fa_params_clone(&next, agg->params, err)) < 0)
        goto cleanup;
    /* The optimizer steps a copy of its state: if the commit fails, the
     * worker's model and state stay those of the base version. */
    fa_optim *opt = NULL;
    if ((rc = fa_optim_save(&opt_state, &opt_len, agg->opt, err)) < 0 ||
        (rc = fa_optim_new(&opt, fa_optim_config_of(agg->opt), agg->dim, err)) < 0 ||
        (rc = fa_optim_load(opt, opt_state, opt_len, err)) < 0) {
        fa_optim_free(opt);
        goto cleanup;
    }
    free(opt_state);
    opt_state = NULL;
    direction = malloc(agg->dim * sizeof(float));
    if (direction == NULL) {
        fa_optim_free(opt);
        rc = fa_fail(err, FA_ENOMEM, "out of memory publishing a model");
        goto cleanup;
    }
    rc = fa_round_step(fa_params_data(next), direction, opt, fa_params_cdata(agg->params), mean,
                       agg->dim, err);
    if (rc == FA_OK)
        rc = fa_optim_save(&opt_state, &opt_len, opt, err);
    fa_optim_free(opt);
    if (rc == FA_EINTERNAL)
        rc = fa_fail(err, FA_EINTERNAL, "round %" PRId64 " produced non-finite parameters", r->id);
    if (rc < 0)
        goto cleanup;
    meta.version = r->base_version + 1;
    meta.parent_version = r->base_version;
    meta.epsilon = e->epsilon;
    meta.delta = e->delta;
    if ((rc = fa_snapshot_safetensors(&m->snapshot, &m->snapshot_len, next, &meta, err)) < 0 ||
        (rc = fa_snapshot_sha256(m->sha256, m->snapshot, m->snapshot_len, err)) < 0)
        goto cleanup;
    m->version = meta.version;
    m->parent = r->base_version;
    m->optimizer_state = opt_state;
    m->optimizer_state_len = opt_len;
    opt_state = NULL;
    (void)snprintf(metrics, sizeof(metrics),
                   "{\"round\": %" PRId64 ", \"cohort\": %" PRId64
                   ", \"epsilon\": %.17g, \"delta\": %.17g, \"noise_multiplier\": %.17g,"
                   " \"clip_norm\": %.17g, \"denominator\": %.17g, \"seeded_noise\": %s}",
                   r->id, e->mech.cohort_size, e->epsilon, e->delta, e->mech.noise_multiplier,
                   e->mech.clip_norm, e->mech.denominator, e->mech.seeded ? "true" : "false");
    m->metrics = strdup(metrics);
    if (m->metrics == NULL) {
        rc = fa_fail(err, FA_ENOMEM, "out of memory publishing a model");
        goto cleanup;
    }
    /* Swap in the new model only now; the caller undoes nothing on failure
     * because load_model reloads by version when they disagree. */
    fa_params_free(agg->params);
    agg->params = next;
    agg->model_version = meta.version;
    next = NULL;
    if ((rc = fa_optim_load(agg->opt, m->optimizer_state, m->optimizer_state_len, err)) < 0)
        goto cleanup;
    *direction_out = direction;
    direction = NULL;
cleanup:
    free(direction);
    free(opt_state);
    fa_params_free(next);
    if (rc < 0)
        fa_store_model_done(m);
    return rc;
}

int fa_aggregator__maybe_close(fa_aggregator *agg, fa_error *err)
{
    const fa_config *cfg = agg->cfg;
    fa_store_close *cl = NULL;
    fa_store_round r, next;
    fa_store_model model;
    fa_store_ledger_row row;
    fa_ledger_entry prev, e;
    fa_ledger_signed sig = {0};
    fa_budget budget = {cfg->epsilon_max, cfg->delta};
    fa_noise *noise = NULL;
    float *direction = NULL;
    unsigned char prev_hash[32] = {0};
    int have_prev = 0, rc;
    const char *final_state;
    double now = fa_wall_seconds();

    memset(&model, 0, sizeof(model));
    if ((rc = fa_store_round_active(&r, agg->store, err)) < 0)
        return rc == FA_ENOTFOUND ? FA_OK : rc;
    if (r.cohort < r.min_cohort && now < r.deadline)
        return FA_OK; /* neither complete nor due */
    rc = fa_store_close_begin(&cl, &r, agg->store, r.id, err);
    if (rc == FA_ECONFLICT)
        return FA_OK; /* another process closes it, or already did */
    if (rc < 0)
        return rc;
    if (r.cohort < r.min_cohort && now < r.deadline)
        goto cleanup; /* re-read under the lock: not due after all */
    if ((rc = ledger_head(&prev, &have_prev, prev_hash, cl, err)) < 0)
        goto cleanup;
    fa_ledger_entry_next(&e, have_prev ? &prev : NULL, prev_hash);
    e.round_id = r.id;
    e.created_at = (int64_t)now;
    fa_round_mechanism(&e.mech, cfg, r.sampling_rate, r.cohort, r.min_cohort);

    if (r.cohort < r.min_cohort) {
        /* Deadline below the minimum cohort: nothing is released. */
        if ((rc = fa_ledger_entry_abandon(&e, &budget, err)) < 0)
            goto cleanup;
        final_state = "abandoned";
    } else {
        rc = fa_ledger_entry_decide(&e, &budget, err);
        if (rc == FA_EREFUSED) {
            final_state = "refused";
        } else if (rc < 0) {
            goto cleanup;
        } else {
            final_state = "closed";
            /* The running sum is used only when it covers exactly the
             * stored set (it is a subset that only grows, so equal counts
             * mean equal sets); otherwise sum from the store. */
            if (agg->acc.round_id != r.id || fa_round_sum_folded(agg->acc.sum) != r.cohort) {
                agg->acc.round_id = 0;
                if ((rc = fa_aggregator__load_model(agg, r.base_version, err)) < 0 ||
                    (rc = sum_from_store(agg, agg->acc.sum, cl, r.base_version, err)) < 0)
                    goto cleanup;
                agg->acc.round_id = r.id;
            }
            /* Z ~ N(0, (sigma S)^2 I) added to the weighted SUM, then the
             * public denominator (round_math.h, docs/privacy.md). */
            agg->acc.round_id = 0; /* the sum will hold noise: never reuse it */
            if ((rc = fa_round_noise(&noise, cfg->noise_seed, r.id, err)) < 0 ||
                (rc = fa_round_sum_release(agg->acc.sum, noise,
                                           cfg->noise_multiplier * cfg->clip_norm,
                                           e.mech.denominator, err)) < 0)
                goto cleanup;
            e.model_version = r.base_version + 1;
            if ((rc = publish(&model, &direction, agg, &r, fa_round_sum_data(agg->acc.sum), &e,
                              err)) < 0)
                goto cleanup;
        }
    }
    if ((rc = fa_ledger_sign(&sig, &e, fa_keys_sign(agg->keys), err)) < 0)
        goto cleanup;
    memset(&row, 0, sizeof(row));
    row.seq = e.seq;
    (void)snprintf(row.kind, sizeof(row.kind), "%s", fa_ledger_kind_name(e.kind));
    row.round_id = r.id;
    row.model_version = e.model_version;
    row.cumulative_epsilon = e.epsilon;
    row.entry = sig.text;
    memcpy(row.prev_hash, e.prev_hash, 32);
    memcpy(row.hash, sig.hash, 32);
    memcpy(row.signature, sig.signature, 64);
    memset(&next, 0, sizeof(next));
    next.id = r.id + 1;
    next.base_version = strcmp(final_state, "closed") == 0 ? r.base_version + 1 : r.base_version;
    next.min_cohort = cfg->min_cohort;
    next.sampling_rate = cfg->sampling_rate;
    next.deadline = now + (double)cfg->round_deadline_s;
    fa_store_close_result res = {final_state, strcmp(final_state, "closed") == 0 ? &model : NULL,
                                 &row, &next};
    if ((rc = fa_store_close_commit(cl, &res, err)) < 0) {
        /* Nothing was published: forget the model this close computed. */
        agg->model_version = -1;
        goto cleanup;
    }
    if (direction != NULL) {
        free(agg->direction);
        agg->direction = direction;
        direction = NULL;
    }
    atomic_store(&agg->epsilon, e.epsilon);
    if (strcmp(final_state, "closed") == 0)
        atomic_fetch_add(&agg->rounds_closed, 1);
    else if (strcmp(final_state, "refused") == 0)
        atomic_fetch_add(&agg->rounds_refused, 1);
    else
        atomic_fetch_add(&agg->rounds_abandoned, 1);
    FA_LOG(FA_DEBUG, "round.ended",
           "round=%" PRId64 " state=%s cohort=%" PRId64 " version=%" PRId64 " epsilon=%.6g", r.id,
           final_state, r.cohort, e.model_version, e.epsilon);
cleanup:
    fa_store_close_free(cl);
    fa_ledger_signed_done(&sig);
    fa_store_model_done(&model);
    fa_noise_free(noise);
    free(direction);
    return rc;
}
