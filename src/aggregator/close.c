/*
 * Round close: the only place that releases anything. One database
 * transaction (fa_store_close_*) covers the decision, the new model version,
 * the ledger entry, the round's end and the next round, so a crash at any
 * point either publishes all of it once or nothing. A round's members are
 * the updates whose receipts are committed when its row is locked at the
 * deadline; each is in exactly one node's committed partial sum, and each
 * partial sum is merged into the release once (docs/privacy.md, "Round
 * membership").
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregator/audit.h"
#include "aggregator/internal.h"
#include "aggregator/round_math.h"
#include "core/log.h"
#include "core/round_state.h"
#include "core/util.h"
#include "model/optim.h"
#include "model/params.h"
#include "model/snapshot.h"
#include "privacy/budget.h"
#include "privacy/keys.h"
#include "privacy/ledger.h"
#include "privacy/noise.h"
#include "store/store.h"

/* Reads one ledger row in the close transaction and checks it on its own. */
static int checked_row(fa_ledger_entry *out, unsigned char hash[32], int *found, fa_aggregator *agg,
                       fa_store_close *cl, int last_release, fa_error *err)
{
    fa_store_ledger_row row;
    fa_ledger_record rec;
    int rc = last_release ? fa_store_close_ledger_last_release(&row, cl, err)
                          : fa_store_close_ledger_last(&row, cl, err);

    *found = 0;
    if (rc == FA_ENOTFOUND)
        return FA_OK;
    if (rc < 0)
        return rc;
    fa_audit_record_of(&rec, &row);
    rc = fa_ledger_record_check(out, &rec, fa_keys_sign_public(agg->keys), err);
    if (rc == FA_OK) {
        memcpy(hash, row.hash, 32);
        *found = 1;
    }
    fa_store_ledger_row_done(&row);
    return rc;
}

/*
 * The ledger this close builds on must be the one that produced round r:
 * its newest entry is signed by us and is round r-1's (every round ends
 * with exactly one entry, and a budget event only ever precedes one), and
 * its newest release published r's base version, whose stored snapshot
 * is the one it names. Dropping the ledger's tail, or rolling the models
 * back, would otherwise let the server spend the budget afresh. On any
 * mismatch nothing is released: FA_EINTERNAL.
 */
static int check_chain(fa_ledger_entry *head, unsigned char head_hash[32], int *have_head,
                       fa_aggregator *agg, fa_store_close *cl, const fa_store_round *r,
                       fa_error *err)
{
    fa_ledger_entry rel;
    unsigned char rel_hash[32];
    int have_rel = 0, rc;

    if ((rc = checked_row(head, head_hash, have_head, agg, cl, 0, err)) < 0 ||
        (rc = checked_row(&rel, rel_hash, &have_rel, agg, cl, 1, err)) < 0)
        return fa_fail(err, rc == FA_EUNAVAIL ? rc : FA_EINTERNAL,
                       "refusing to close round %" PRId64 ": %s", r->id, err->msg);
    if (!*have_head ? r->id != 1 : head->round_id != r->id - 1)
        return fa_fail(err, FA_EINTERNAL,
                       "refusing to close round %" PRId64 ": the ledger's newest entry is for "
                       "round %" PRId64 ", not %" PRId64 " (entries are missing)",
                       r->id, *have_head ? head->round_id : 0, r->id - 1);
    if (have_rel ? rel.model_version != r->base_version : r->base_version != 0)
        return fa_fail(err, FA_EINTERNAL,
                       "refusing to close round %" PRId64 ": it builds on version %" PRId64
                       " but the ledger's newest release is version %" PRId64,
                       r->id, r->base_version, have_rel ? rel.model_version : 0);
    if ((rc = fa_aggregator__load_model(agg, r->base_version, err)) < 0)
        return fa_fail(err, rc == FA_EUNAVAIL ? rc : FA_EINTERNAL,
                       "refusing to close round %" PRId64 ": %s", r->id, err->msg);
    /* v1 entries name no snapshot; v2 entries bind its digest. */
    if (have_rel && rel.format >= 2 &&
        memcmp(rel.snapshot_sha256, agg->model_sha256, sizeof(rel.snapshot_sha256)) != 0)
        return fa_fail(err, FA_EINTERNAL,
                       "refusing to close round %" PRId64 ": model version %" PRId64
                       " is not the snapshot its release entry names",
                       r->id, r->base_version);
    return FA_OK;
}

#define ACCT_PAGE 1024 /* ledger rows read at a time when the accountant catches up */

/*
 * Brings the worker's running accountant to the ledger head (head_seq,
 * head_hash; 0 for an empty ledger) in accountant kind. It normally holds
 * the head already (this worker wrote it), so a close composes only its
 * own release. Otherwise (start-up, another node closed rounds, the kind
 * changed) it composes the releases of the entries it lacks from their
 * signed mechanisms, checking each entry on its own and its link to the
 * one before: epsilon is always recomputed, never read from the database.
 * FA_EINTERNAL when the stored ledger does not hold.
 */
static int catch_up_accountant(fa_aggregator *agg, fa_store_close *cl, int64_t head_seq,
                               const unsigned char head_hash[32], fa_accountant_kind kind,
                               fa_error *err)
{
    fa_store_ledger_row *rows = NULL;
    size_t n = 0;
    int rc = FA_OK;

    if (agg->acct != NULL && fa_accountant_kind_of(agg->acct) == kind &&
        agg->acct_seq == head_seq && memcmp(agg->acct_hash, head_hash, 32) == 0)
        return FA_OK;
    /*
     * The ledger only grows. A head behind what this process has already
     * composed, or a different entry at the same seq, means entries were
     * removed or rewritten: starting the accountant afresh from what is
     * left would spend the removed releases' budget again.
     */
    if (agg->acct != NULL &&
        (agg->acct_seq > head_seq ||
         (agg->acct_seq == head_seq && memcmp(agg->acct_hash, head_hash, 32) != 0)))
        return fa_fail(err, FA_EINTERNAL,
                       "refusing to account: the ledger's newest entry is %" PRId64
                       " but this process already accounted entry %" PRId64
                       " (entries were removed or rewritten)",
                       head_seq, agg->acct_seq);
    if (agg->acct == NULL || fa_accountant_kind_of(agg->acct) != kind) {
        fa_accountant_free(agg->acct);
        agg->acct = NULL;
        agg->acct_seq = 0;
        memset(agg->acct_hash, 0, sizeof(agg->acct_hash));
        if ((rc = fa_accountant_new(&agg->acct, kind, err)) < 0)
            return rc;
    }
    while (agg->acct_seq < head_seq) {
        if ((rc = fa_store_close_ledger_page(&rows, &n, cl, agg->acct_seq, ACCT_PAGE, err)) < 0)
            break;
        if (n == 0) {
            rc = fa_fail(err, FA_EINTERNAL, "the ledger ends at entry %" PRId64 ", before %" PRId64,
                         agg->acct_seq, head_seq);
            break;
        }
        for (size_t i = 0; i < n && rc == FA_OK; i++) {
            fa_ledger_record rec;
            fa_ledger_entry e;
            fa_audit_record_of(&rec, &rows[i]);
            if ((rc = fa_ledger_record_check(&e, &rec, fa_keys_sign_public(agg->keys), err)) < 0)
                break;
            if (e.seq != agg->acct_seq + 1 || memcmp(e.prev_hash, agg->acct_hash, 32) != 0) {
                rc = fa_fail(err, FA_EINTERNAL, "ledger entry %" PRId64 " does not follow %" PRId64,
                             e.seq, agg->acct_seq);
                break;
            }
            if (e.kind == FA_LEDGER_RELEASE &&
                (rc = fa_accountant_compose(agg->acct, e.mech.sampling_rate,
                                            e.mech.noise_multiplier, 1, err)) < 0)
                break;
            agg->acct_seq = e.seq;
            memcpy(agg->acct_hash, rows[i].hash, 32);
        }
        fa_store_ledger_rows_free(rows, n);
        rows = NULL;
        if (rc < 0)
            break;
    }
    if (rc == FA_OK && memcmp(agg->acct_hash, head_hash, 32) != 0)
        rc = fa_fail(err, FA_EINTERNAL, "ledger entry %" PRId64 " is not the head read", head_seq);
    if (rc < 0) {
        /* Half-composed: start afresh next time. */
        fa_accountant_free(agg->acct);
        agg->acct = NULL;
        agg->acct_seq = 0;
        return fa_fail(err, rc == FA_EUNAVAIL || rc == FA_ENOMEM ? rc : FA_EINTERNAL,
                       "refusing to account: %s", err->msg);
    }
    return FA_OK;
}

/*
 * Sums the round's members into agg->sum: every node's committed partial
 * sum, each once, plus the members stored as ciphertexts before partial
 * sums existed (legacy of them), folded here. A partial sum whose count
 * is not the number of receipt rows naming its node, or that does not
 * open for that count, means the record was changed: FA_EINTERNAL, and
 * nothing is released. FA_EINTERNAL too if the sum does not count cohort.
 */
static int sum_members(fa_aggregator *agg, fa_store_close *cl, const fa_store_round *r,
                       const fa_store_partial *parts, size_t np, int64_t legacy, int64_t cohort,
                       fa_error *err)
{
    float *direction = NULL;
    int done = 0, rc = FA_OK;

    fa_round_sum_clear(agg->sum);
    for (size_t i = 0; i < np && rc == FA_OK; i++) {
        char node[33];
        fa_hex_encode(node, parts[i].node, 16);
        if (parts[i].sealed == NULL || parts[i].folded != parts[i].receipts)
            return fa_fail(err, FA_EINTERNAL,
                           "refusing to close round %" PRId64 ": node %s has %" PRId64
                           " receipts but its partial sum holds %" PRId64 " updates",
                           r->id, node, parts[i].receipts, parts[i].folded);
        if ((rc = fa_aggregator__partial_open(agg, agg->scratch, r->id, parts[i].node,
                                              parts[i].folded, parts[i].sealed, parts[i].sealed_len,
                                              err)) == FA_OK)
            rc = fa_round_sum_merge(agg->sum, agg->scratch, parts[i].folded, err);
    }
    if (rc == FA_OK && legacy > 0)
        rc = fa_aggregator__direction(&direction, agg, r->base_version, err);
    while (rc == FA_OK && legacy > 0) {
        fa_store_update u;
        const char *reason = NULL;
        fa_clip_sumsq sq;
        if ((rc = fa_store_close_next_update(&u, &done, cl, err)) < 0 || done)
            break;
        if ((rc = fa_aggregator__open(agg, agg->scratch, &sq, &reason, NULL, u.box, u.box_len,
                                      r->base_version, u.num_samples, err)) == FA_OK)
            rc = fa_round_sum_fold_sumsq(agg->sum, agg->scratch, &sq, u.num_samples, agg->cfg,
                                         direction, err);
        fa_store_update_done(&u);
    }
    free(direction);
    if (rc < 0)
        return rc;
    if (fa_round_sum_folded(agg->sum) != cohort)
        return fa_fail(err, FA_EINTERNAL,
                       "round %" PRId64 " has %" PRId64 " members but its sum holds %" PRId64,
                       r->id, cohort, fa_round_sum_folded(agg->sum));
    return FA_OK;
}

/* Fills a ledger row from a signed entry. */
static void row_of(fa_store_ledger_row *row, const fa_ledger_entry *e, const fa_ledger_signed *sig)
{
    memset(row, 0, sizeof(*row));
    row->seq = e->seq;
    (void)snprintf(row->kind, sizeof(row->kind), "%s", fa_ledger_kind_name(e->kind));
    row->round_id = e->round_id;
    row->model_version = e->model_version;
    row->cumulative_epsilon = e->epsilon;
    row->entry = sig->text;
    memcpy(row->prev_hash, e->prev_hash, 32);
    memcpy(row->hash, sig->hash, 32);
    memcpy(row->signature, sig->signature, 64);
}

/* Applies the noisy mean to the base model: new params, optimizer state, snapshot. */
static int publish(fa_store_model *m, fa_aggregator *agg, const fa_store_round *r,
                   const float *mean, const fa_ledger_entry *e, fa_error *err)
{
    fa_params *next = NULL;
    fa_snapshot_meta meta = FA_SNAPSHOT_META_INIT;
    unsigned char *opt_state = NULL;
    size_t opt_len = 0;
    char metrics[512];
    int rc;

    memset(m, 0, sizeof(*m));
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
    rc = fa_round_step(fa_params_data(next), NULL, opt, fa_params_cdata(agg->params), mean,
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
    meta.ledger_seq = e->seq;
    memcpy(meta.ledger_prev_hash, e->prev_hash, sizeof(meta.ledger_prev_hash));
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
    memcpy(agg->model_sha256, m->sha256, sizeof(agg->model_sha256));
    next = NULL;
    if ((rc = fa_optim_load(agg->opt, m->optimizer_state, m->optimizer_state_len, err)) < 0)
        goto cleanup;
cleanup:
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
    fa_store_ledger_row row, budget_row;
    fa_ledger_entry head, be, e;
    fa_ledger_signed sig = {0}, budget_sig = {0};
    fa_budget budget = {cfg->epsilon_max, cfg->delta};
    fa_accountant_kind kind;
    fa_accountant *acct = NULL; /* the accountant after this close, until it commits */
    fa_noise *noise = NULL;
    fa_store_partial *parts = NULL;
    size_t np = 0;
    int64_t n = 0, legacy = 0;
    const uint64_t t0 = fa_now_ns();
    uint64_t at[6] = {0}; /* when each phase ended, for the debug log */
    unsigned char head_hash[32] = {0};
    int have_head = 0, has_budget_event = 0, rc;
    fa_round_state outcome;
    const double now = fa_aggregator__now(agg);

    memset(&model, 0, sizeof(model));
    if ((rc = fa_store_round_active(&r, agg->store, err)) < 0)
        return rc == FA_ENOTFOUND ? FA_OK : rc;
    /* A round ends at its deadline, or at once when it is full (it is then
     * abandoned): never because enough updates have arrived, which would
     * let one device's arrival push another out of the release. */
    if (now < r.deadline && r.cohort < cfg->max_cohort)
        return FA_OK;
    rc = fa_store_close_begin(&cl, &r, agg->store, r.id, err);
    if (rc == FA_ECONFLICT)
        return FA_OK; /* another process closes it, or already did */
    if (rc < 0)
        return rc;
    /* The members, read after the lock (r.cohort may predate it). */
    at[0] = fa_now_ns(); /* the round row is locked */
    if ((rc = fa_store_close_partials(&parts, &np, &legacy, &n, cl, err)) < 0)
        goto cleanup;
    at[1] = fa_now_ns();
    if (now < r.deadline && n < cfg->max_cohort)
        goto cleanup; /* re-read under the lock: not due after all */
    if ((rc = check_chain(&head, head_hash, &have_head, agg, cl, &r, err)) < 0)
        goto cleanup;
    if (fa_accountant_parse(&kind, cfg->accountant) < 0) {
        rc = fa_fail(err, FA_EINVAL, "accountant '%s' is unknown", cfg->accountant);
        goto cleanup;
    }
    if ((rc = catch_up_accountant(agg, cl, have_head ? head.seq : 0, head_hash, kind, err)) < 0 ||
        (rc = fa_accountant_copy(&acct, agg->acct, err)) < 0)
        goto cleanup;
    if (have_head && (head.epsilon_max != budget.epsilon_max || head.delta != budget.delta ||
                      head.accountant != kind)) {
        /* The operator changed the budget or the accountant: say so in the
         * ledger before the first entry that is decided under it. */
        fa_ledger_entry_next(&be, &head, head_hash);
        be.created_at = (int64_t)now;
        fa_round_mechanism(&be.mech, cfg, r.sampling_rate, 0, r.min_cohort);
        if ((rc = fa_ledger_entry_budget(&be, &budget, acct, err)) < 0 ||
            (rc = fa_ledger_sign(&budget_sig, &be, fa_keys_sign(agg->keys), err)) < 0)
            goto cleanup;
        row_of(&budget_row, &be, &budget_sig);
        head = be;
        memcpy(head_hash, budget_sig.hash, 32);
        has_budget_event = 1;
    }
    fa_ledger_entry_next(&e, have_head ? &head : NULL, head_hash);
    e.round_id = r.id;
    e.created_at = (int64_t)now;
    if ((rc = fa_round_decide(&outcome, &e, acct, cfg, r.sampling_rate, n, r.min_cohort, err)) < 0)
        goto cleanup;
    at[2] = fa_now_ns(); /* chain checked, accountant caught up, outcome decided */
    if (outcome == FA_ROUND_CLOSED) {
        if ((rc = sum_members(agg, cl, &r, parts, np, legacy, n, err)) < 0)
            goto cleanup;
        at[3] = fa_now_ns();
        /* Z ~ N(0, (sigma S)^2 I) added to the weighted SUM, then the
         * public denominator (round_math.h, docs/privacy.md). */
        if ((rc = fa_round_noise(&noise, cfg->noise_seed, r.id, err)) < 0 ||
            (rc = fa_round_sum_release(agg->sum, noise, cfg->noise_multiplier * cfg->clip_norm,
                                       e.mech.denominator, err)) < 0)
            goto cleanup;
        e.model_version = r.base_version + 1;
        if ((rc = publish(&model, agg, &r, fa_round_sum_data(agg->sum), &e, err)) < 0)
            goto cleanup;
        memcpy(e.snapshot_sha256, model.sha256, sizeof(e.snapshot_sha256));
        at[4] = fa_now_ns(); /* noise added, model stepped and rendered */
    }
    if ((rc = fa_ledger_sign(&sig, &e, fa_keys_sign(agg->keys), err)) < 0)
        goto cleanup;
    row_of(&row, &e, &sig);
    memset(&next, 0, sizeof(next));
    next.id = r.id + 1;
    next.state = FA_ROUND_OPEN;
    next.base_version = outcome == FA_ROUND_CLOSED ? r.base_version + 1 : r.base_version;
    next.min_cohort = cfg->min_cohort;
    next.sampling_rate = cfg->sampling_rate;
    /* A fixed schedule: the next deadline follows from this one, not from
     * when this close ran (which other devices' arrivals could shift). A
     * server that was down for longer starts afresh from now. */
    next.deadline = r.deadline + cfg->round_deadline_s;
    if (next.deadline <= now)
        next.deadline = now + cfg->round_deadline_s;
    fa_store_close_result res = {outcome, outcome == FA_ROUND_CLOSED ? &model : NULL,
                                 has_budget_event ? &budget_row : NULL, &row, &next};
    if ((rc = fa_store_close_commit(cl, &res, err)) < 0) {
        /* Nothing was published: forget the model this close computed. */
        agg->model_version = -1;
        goto cleanup;
    }
    at[5] = fa_now_ns();
    /* The accountant now holds the ledger up to this entry. */
    fa_accountant_free(agg->acct);
    agg->acct = acct;
    acct = NULL;
    agg->acct_seq = e.seq;
    memcpy(agg->acct_hash, sig.hash, 32);
    atomic_store(&agg->epsilon, e.epsilon);
    if (outcome == FA_ROUND_CLOSED)
        atomic_fetch_add(&agg->rounds_closed, 1);
    else if (outcome == FA_ROUND_REFUSED)
        atomic_fetch_add(&agg->rounds_refused, 1);
    else
        atomic_fetch_add(&agg->rounds_abandoned, 1);
    FA_LOG(FA_DEBUG, "round.ended",
           "round=%" PRId64 " state=%s cohort=%" PRId64 " version=%" PRId64 " epsilon=%.6g", r.id,
           fa_round_state_name(outcome), n, e.model_version, e.epsilon);
    atomic_store(&agg->last_close_s, (double)(fa_now_ns() - t0) / 1e9);
    if (outcome == FA_ROUND_CLOSED)
        FA_LOG(FA_DEBUG, "round.close_ms",
               "round=%" PRId64 " nodes=%zu lock=%.1f partials=%.1f ledger=%.1f sum=%.1f "
               "release=%.1f commit=%.1f",
               r.id, np, (double)(at[0] - t0) / 1e6, (double)(at[1] - at[0]) / 1e6,
               (double)(at[2] - at[1]) / 1e6, (double)(at[3] - at[2]) / 1e6,
               (double)(at[4] - at[3]) / 1e6, (double)(at[5] - at[4]) / 1e6);
cleanup:
    fa_accountant_free(acct);
    fa_store_close_free(cl);
    fa_ledger_signed_done(&sig);
    fa_ledger_signed_done(&budget_sig);
    fa_store_model_done(&model);
    fa_noise_free(noise);
    fa_store_partials_free(parts, np);
    return rc;
}
