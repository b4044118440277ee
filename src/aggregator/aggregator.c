#include "aggregator/aggregator.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aggregator/internal.h"
#include "aggregator/round_math.h"
#include "aggregator/update.h"
#include "core/base64.h"
#include "core/digest.h"
#include "core/log.h"
#include "core/round_state.h"
#include "core/util.h"
#include "model/optim.h"
#include "model/params.h"
#include "model/snapshot.h"
#include "privacy/crypto.h"
#include "privacy/keys.h"
#include "store/store.h"

/* ============================================================ the model */

int fa_aggregator__load_model(fa_aggregator *agg, int64_t version, fa_error *err)
{
    fa_store_model m;
    fa_params *params = NULL;
    fa_optim *opt = NULL;
    fa_snapshot_meta meta = FA_SNAPSHOT_META_INIT;
    int rc;

    if (agg->params != NULL && agg->model_version == version)
        return FA_OK;
    unsigned char digest[32];

    if ((rc = fa_store_model_get(&m, agg->store, version, 1, err)) < 0)
        return rc;
    /* The stored digest is what the ledger binds; a snapshot that does not
     * hash to it was changed behind the server's back. */
    if ((rc = fa_snapshot_sha256(digest, m.snapshot, m.snapshot_len, err)) < 0)
        goto cleanup;
    if (memcmp(digest, m.sha256, sizeof(digest)) != 0) {
        rc = fa_fail(err, FA_EINTERNAL,
                     "model version %" PRId64 " does not match its stored sha256 (tampered)",
                     version);
        goto cleanup;
    }
    if ((rc = fa_snapshot_safetensors_parse(&params, &meta, m.snapshot, m.snapshot_len,
                                            FA_PARAMS_MAX_ITEMS, err)) < 0)
        goto cleanup;
    if (fa_params_len(params) != agg->dim && agg->dim != 0) {
        rc = fa_fail(err, FA_EINTERNAL, "model version %" PRId64 " has %zu parameters, not %zu",
                     version, fa_params_len(params), agg->dim);
        goto cleanup;
    }
    if (strcmp(fa_model_kind_name(fa_params_kind(params)), agg->cfg->model) != 0 ||
        (fa_params_kind(params) == FA_MODEL_ALS &&
         fa_params_factors(params) != (size_t)agg->cfg->factors)) {
        rc = fa_fail(err, FA_EINVAL,
                     "the database's model (version %" PRId64 ") is %s with %zu factors, the "
                     "configuration asks for model = %s, factors = %" PRId64
                     ": set them to match or start a new database",
                     version, fa_model_kind_name(fa_params_kind(params)), fa_params_factors(params),
                     agg->cfg->model, agg->cfg->factors);
        goto cleanup;
    }
    if ((rc = fa_round_optim_new(&opt, agg->cfg, fa_params_len(params), err)) < 0)
        goto cleanup;
    if (m.optimizer_state != NULL) {
        fa_optim_kind saved;
        const fa_optim_kind now = fa_optim_config_of(opt)->kind;
        if ((rc = fa_optim_state_kind(&saved, m.optimizer_state, m.optimizer_state_len, err)) < 0)
            goto cleanup;
        if (saved != now) {
            /* server_optimizer was changed: the model carries on, the new
             * optimizer's moments start from zero (saved with the next
             * version). Only the state's moments are lost, no model. */
            FA_LOG(FA_WARN, "aggregator.optimizer_changed",
                   "version=%" PRId64 " saved=%s configured=%s msg=\"the moments start afresh\"",
                   version, fa_optim_kind_name(saved), fa_optim_kind_name(now));
        } else if ((rc = fa_optim_load(opt, m.optimizer_state, m.optimizer_state_len, err)) < 0) {
            goto cleanup;
        }
    }
    fa_params_free(agg->params);
    fa_optim_free(agg->opt);
    agg->params = params;
    agg->opt = opt;
    /* dim and num_items are set once, by the first load in start-up before
     * any other thread runs; HTTP threads read them without a lock, and
     * every later version has the same layout (checked above). */
    if (agg->dim == 0) {
        agg->dim = fa_params_len(params);
        agg->num_items = fa_params_num_items(params);
    }
    agg->model_version = version;
    memcpy(agg->model_sha256, m.sha256, sizeof(agg->model_sha256));
    params = NULL;
    opt = NULL;
cleanup:
    fa_params_free(params);
    fa_optim_free(opt);
    fa_store_model_done(&m);
    return rc;
}

/* Writes model version 0 and round 1 when the database is new. */
static int bootstrap(fa_aggregator *agg, fa_error *err)
{
    const fa_config *cfg = agg->cfg;
    fa_params *params = NULL;
    fa_optim *opt = NULL;
    fa_snapshot_meta meta = FA_SNAPSHOT_META_INIT;
    fa_store_model m;
    fa_store_round r;
    int rc;

    memset(&m, 0, sizeof(m));
    if ((rc = fa_store_model_get(&m, agg->store, 0, 0, err)) != FA_ENOTFOUND) {
        fa_store_model_done(&m);
        return rc;
    }
    if ((rc = fa_round_params_new(&params, cfg, (size_t)cfg->num_items, err)) < 0)
        goto cleanup;
    fa_params_init_random(params, (uint64_t)cfg->model_seed);
    if ((rc = fa_round_optim_new(&opt, cfg, fa_params_len(params), err)) < 0 ||
        (rc = fa_optim_save(&m.optimizer_state, &m.optimizer_state_len, opt, err)) < 0)
        goto cleanup;
    meta.version = 0;
    meta.parent_version = -1;
    meta.delta = cfg->delta;
    if ((rc = fa_snapshot_safetensors(&m.snapshot, &m.snapshot_len, params, &meta, err)) < 0 ||
        (rc = fa_snapshot_sha256(m.sha256, m.snapshot, m.snapshot_len, err)) < 0)
        goto cleanup;
    m.version = 0;
    m.parent = -1;
    memset(&r, 0, sizeof(r));
    r.id = 1;
    r.base_version = 0;
    r.state = FA_ROUND_OPEN;
    r.min_cohort = cfg->min_cohort;
    r.sampling_rate = cfg->sampling_rate;
    r.deadline = fa_aggregator__now(agg) + (double)cfg->round_deadline_s;
    rc = fa_store_bootstrap(agg->store, &m, &r, err);
cleanup:
    fa_store_model_done(&m);
    fa_params_free(params);
    fa_optim_free(opt);
    return rc;
}

/* ============================================================== folding */

/* Wipes and frees a decoded update: its values are a device's update in the clear. */
static void free_delta(const fa_aggregator *agg, float *delta)
{
    if (delta == NULL)
        return;
    fa_crypto_wipe(delta, agg->dim * sizeof(float));
    free(delta);
}

double fa_aggregator__now(const fa_aggregator *agg)
{
    return agg->clock != NULL ? agg->clock(agg->clock_arg) : fa_wall_seconds();
}

/*
 * Each thread's guarded buffer for opened plaintexts, reused from update to
 * update and wiped after every use: allocating guarded memory per update
 * (mmap, mprotect, mlock, then munmap with its TLB shootdowns across cores)
 * cost more than opening the box. Freed when the thread ends (the key's
 * destructor); the main thread's is released by the OS at exit.
 */
static pthread_key_t g_plain_key;
static pthread_once_t g_plain_once = PTHREAD_ONCE_INIT;
static _Thread_local unsigned char *t_plain;
static _Thread_local size_t t_plain_cap;

static void plain_key_init(void)
{
    (void)pthread_key_create(&g_plain_key, fa_crypto_secure_free);
}

/* This thread's plaintext buffer of at least len bytes, or NULL (out of memory). */
static unsigned char *plain_buffer(size_t len)
{
    (void)pthread_once(&g_plain_once, plain_key_init);
    if (t_plain_cap < len) {
        fa_crypto_secure_free(t_plain);
        t_plain_cap = 0;
        t_plain = fa_crypto_secure_alloc(len);
        (void)pthread_setspecific(g_plain_key, t_plain);
        if (t_plain == NULL)
            return NULL;
        t_plain_cap = len;
    }
    return t_plain;
}

int fa_aggregator__open(fa_aggregator *agg, float *out, fa_clip_sumsq *sumsq_out,
                        const char **reason_out, const fa_crypto_box_key *key,
                        const unsigned char *box, size_t box_len, int64_t model_version,
                        int64_t num_samples, fa_error *err)
{
    unsigned char *plain = NULL;
    size_t plain_len = 0;
    int rc;

    *reason_out = NULL;
    if (box_len < FA_CRYPTO_SEAL_OVERHEAD ||
        box_len != FA_CRYPTO_SEAL_OVERHEAD + FA_UPDATE_HEADER_BYTES + 4 * agg->dim) {
        /* A box of the wrong size cannot hold a valid update; say which
         * size is expected without trying to open it. */
        if (box_len > FA_CRYPTO_SEAL_OVERHEAD + FA_UPDATE_HEADER_BYTES &&
            (box_len - FA_CRYPTO_SEAL_OVERHEAD - FA_UPDATE_HEADER_BYTES) % 4 == 0) {
            *reason_out = "wrong_dimension";
            return fa_fail(err, FA_EINVAL, "update has dimension %zu, model has %zu",
                           (box_len - FA_CRYPTO_SEAL_OVERHEAD - FA_UPDATE_HEADER_BYTES) / 4,
                           agg->dim);
        }
        *reason_out = "bad_box";
        return fa_fail(err, FA_EINVAL, "update did not decrypt");
    }
    plain = plain_buffer(box_len - FA_CRYPTO_SEAL_OVERHEAD);
    if (plain == NULL)
        return fa_fail(err, FA_ENOMEM, "out of memory opening an update");
    if (key != NULL) {
        rc = fa_crypto_box_open(plain, box_len - FA_CRYPTO_SEAL_OVERHEAD, &plain_len, key, box,
                                box_len, err);
    } else {
        /* A stored update: its box opens under one of the loaded keys (the
         * current one, or one a rotation replaced); a wrong key fails fast
         * on the authenticator. */
        rc = FA_EINVAL;
        for (int i = 0; i < fa_keys_box_count(agg->keys) && rc < 0; i++)
            rc = fa_crypto_box_open(plain, box_len - FA_CRYPTO_SEAL_OVERHEAD, &plain_len,
                                    fa_keys_box_at(agg->keys, i), box, box_len, err);
    }
    if (rc < 0) {
        *reason_out = "bad_box";
        goto cleanup;
    }
    rc = fa_update_decode(out, sumsq_out, reason_out, plain, plain_len, model_version, num_samples,
                          agg->dim, err);
cleanup:
    fa_crypto_wipe(plain, box_len - FA_CRYPTO_SEAL_OVERHEAD);
    return rc;
}

/* ================================================================ worker */

int fa_aggregator_tick(fa_aggregator *agg, fa_error *err)
{
    return fa_aggregator__maybe_close(agg, err);
}

static void *worker_main(void *arg)
{
    fa_aggregator *agg = arg;
    uint64_t last_error_ns = 0;

    for (;;) {
        struct timespec until;
        fa_error err = FA_ERROR_INIT;

        fa_realtime_after(&until, 200);
        /* Between ticks: VACUUMs the node asks for, never past the tick. */
        for (;;) {
            int stop, vacuum;
            (void)pthread_mutex_lock(&agg->mu);
            while (!agg->stop && !agg->vacuum_due &&
                   pthread_cond_timedwait(&agg->cv, &agg->mu, &until) == 0) {
            }
            stop = agg->stop;
            vacuum = agg->vacuum_due;
            agg->vacuum_due = 0;
            (void)pthread_mutex_unlock(&agg->mu);
            if (stop)
                return NULL;
            if (!vacuum)
                break;
            fa_aggregator__vacuum_partials(agg);
            if (fa_realtime_passed(&until))
                break;
        }
        if (fa_aggregator_tick(agg, &err) < 0 && fa_now_ns() - last_error_ns > 5000000000ull) {
            /* Logged at most every 5 s: a database outage is not a flood. A
             * round another process is closing is not an error (close.c). */
            FA_LOG(FA_WARN, "aggregator.tick_failed", "code=%s msg=\"%s\"", fa_code_name(err.code),
                   err.msg);
            last_error_ns = fa_now_ns();
        }
    }
    return NULL;
}

int fa_aggregator_start(fa_aggregator **out, const fa_aggregator_opts *opts, fa_error *err)
{
    fa_aggregator *agg = calloc(1, sizeof(*agg));
    fa_error tick_err = FA_ERROR_INIT;
    int rc;

    *out = NULL;
    if (agg == NULL)
        return fa_fail(err, FA_ENOMEM, "out of memory starting the aggregator");
    if (opts->cfg->noise_multiplier == FA_CONFIG_AUTO) {
        free(agg);
        return fa_fail(err, FA_EINVAL,
                       "noise_multiplier = auto was not calibrated (fa_accountant_resolve_config)");
    }
    agg->cfg = opts->cfg;
    agg->store = opts->store;
    agg->keys = opts->keys;
    agg->model_version = -1;
    agg->clock = opts->clock;
    agg->clock_arg = opts->clock_arg;
    (void)pthread_mutex_init(&agg->mu, NULL);
    (void)pthread_cond_init(&agg->cv, NULL);
    if ((rc = bootstrap(agg, err)) < 0 || (rc = fa_aggregator__load_model(agg, 0, err)) < 0)
        goto cleanup;
    if ((rc = fa_round_sum_new(&agg->sum, agg->dim, err)) < 0 ||
        (rc = fa_aggregator__node_init(agg, err)) < 0)
        goto cleanup;
    agg->scratch = calloc(agg->dim, sizeof(float));
    if (agg->scratch == NULL) {
        rc = fa_fail(err, FA_ENOMEM, "out of memory for the running sum");
        goto cleanup;
    }
    /* A round left past its deadline by a crash closes now, from the
     * partial sums every node committed. */
    if ((rc = fa_aggregator_tick(agg, &tick_err)) < 0)
        FA_LOG(FA_WARN, "aggregator.recover_failed", "msg=\"%s\"", tick_err.msg);
    rc = FA_OK;
    if (opts->start_worker) {
        if (pthread_create(&agg->thread, NULL, worker_main, agg) != 0) {
            rc = fa_fail(err, FA_EINTERNAL, "cannot start the aggregation worker");
            goto cleanup;
        }
        agg->has_thread = 1;
        if ((rc = fa_aggregator__committer_start(agg, err)) < 0)
            goto cleanup;
    }
    *out = agg;
    agg = NULL;
cleanup:
    fa_aggregator_stop(agg);
    return rc;
}

void fa_aggregator_stop(fa_aggregator *agg)
{
    if (agg == NULL)
        return;
    /* Commits what is queued, so every queued update is answered. */
    fa_aggregator__committer_stop(agg);
    if (agg->has_thread) {
        (void)pthread_mutex_lock(&agg->mu);
        agg->stop = 1;
        (void)pthread_cond_signal(&agg->cv);
        (void)pthread_mutex_unlock(&agg->mu);
        (void)pthread_join(agg->thread, NULL);
    }
    fa_aggregator__node_done(agg);
    fa_params_free(agg->params);
    fa_optim_free(agg->opt);
    fa_accountant_free(agg->acct);
    fa_round_sum_free(agg->sum);
    free_delta(agg, agg->scratch); /* the last partial sum opened by a close */
    (void)pthread_mutex_destroy(&agg->mu);
    (void)pthread_cond_destroy(&agg->cv);
    free(agg);
}

/* ======================================================= device requests */

static void round_info(fa_round_info *out, const fa_store_round *r)
{
    memset(out, 0, sizeof(*out));
    out->id = r->id;
    out->base_version = r->base_version;
    out->state = r->state;
    out->min_cohort = r->min_cohort;
    out->cohort = r->cohort;
    out->sampling_rate = r->sampling_rate;
    out->deadline = r->deadline;
}

int fa_aggregator_round(fa_round_info *out, fa_aggregator *agg, fa_error *err)
{
    fa_store_round r;
    int rc = fa_store_round_active(&r, agg->store, err);

    if (rc == FA_OK)
        round_info(out, &r);
    return rc;
}

/*
 * Keyed hash of a pseudonym for one purpose (label) and round: the PRF of
 * privacy/crypto.h under the deployment's pseudonym key (privacy/keys.h).
 */
static int keyed_hash(unsigned char out[32], const fa_aggregator *agg, const char *label,
                      int64_t round_id, const char *data, fa_error *err)
{
    return fa_crypto_prf(out, fa_keys_pseudonym(agg->keys), label, (uint64_t)round_id, data,
                         strlen(data), err);
}

int fa_aggregator_checkin(fa_checkin *out, fa_aggregator *agg, const char *pseudonym, fa_error *err)
{
    fa_store_round r;
    unsigned char raw[32], token_hash[32], ph[32];
    int rc;

    memset(out, 0, sizeof(*out));
    if (pseudonym != NULL && strlen(pseudonym) > 256)
        return fa_fail(err, FA_EINVAL, "device pseudonym is longer than 256 bytes");
    if ((rc = fa_store_round_active(&r, agg->store, err)) < 0)
        return rc;
    /* Past its deadline the round takes no more updates; the next one
     * opens as soon as this one is closed. */
    if (fa_aggregator__now(agg) >= r.deadline)
        return fa_fail(err, FA_EUNAVAIL, "round %" PRId64 " is closing; check in again shortly",
                       r.id);
    round_info(&out->round, &r);
    if (r.sampling_rate < 1.0) {
        unsigned char coin[32];
        uint64_t bits = 0;
        if (pseudonym == NULL)
            return fa_fail(err, FA_EINVAL, "this server samples devices: check in with a deviceId");
        /* Poisson sampling: one coin per (pseudonym, round), from a keyed
         * PRF so a device that checks in again gets the same answer. */
        if ((rc = keyed_hash(coin, agg, "coin", r.id, pseudonym, err)) < 0)
            return rc;
        for (int i = 0; i < 7; i++)
            bits = bits << 8 | coin[i];
        double u = (double)(bits >> 3) / 9007199254740992.0; /* 53 bits in [0, 1) */
        if (u >= r.sampling_rate)
            return FA_OK; /* not selected; nothing is stored */
    }
    out->selected = 1;
    fa_crypto_random(raw, sizeof(raw));
    fa_base64url_encode(out->token, sizeof(out->token), raw, sizeof(raw));
    fa_crypto_wipe(raw, sizeof(raw));
    fa_sha256(token_hash, out->token, strlen(out->token));
    if (pseudonym != NULL && (rc = keyed_hash(ph, agg, "pseudonym", 0, pseudonym, err)) < 0) {
        memset(out->token, 0, sizeof(out->token));
        out->selected = 0;
        return rc;
    }
    if ((rc = fa_store_token_insert(agg->store, r.id, token_hash, pseudonym != NULL ? ph : NULL,
                                    err)) < 0) {
        memset(out->token, 0, sizeof(out->token));
        out->selected = 0;
        return rc;
    }
    return FA_OK;
}

/* An opened update between fa_aggregator_accept_open and its result. */
struct fa_update_ticket {
    struct fa_pending p;
    fa_aggregator *agg;
    float *delta; /* dim floats, wiped when freed */
};

void fa_aggregator_ticket_free(fa_update_ticket *t)
{
    if (t == NULL)
        return;
    free_delta(t->agg, t->delta);
    free(t);
}

int fa_aggregator_accept_open(fa_update_ticket **out, const char **reason_out, fa_aggregator *agg,
                              const fa_update_request *req, fa_error *err)
{
    unsigned char token_hash[32], token_ph[32];
    int token_has_ph = 0;
    const fa_crypto_box_key *key;
    fa_update_ticket *t = NULL;
    fa_store_round r;
    int rc;

    *out = NULL;
    *reason_out = NULL;
    if (req->num_samples <= 0 || req->num_samples > FA_UPDATE_MAX_SAMPLES) {
        *reason_out = "bad_num_samples";
        return fa_fail(err, FA_EINVAL, "numSamples must be in 1..%d, got %lld",
                       FA_UPDATE_MAX_SAMPLES, (long long)req->num_samples);
    }
    if ((key = fa_keys_box_for(agg->keys, req->key_id)) == NULL) {
        *reason_out = "unknown_key";
        return fa_fail(err, FA_EINVAL, "unknown key id '%.32s' (GET /api/federated/key)",
                       req->key_id);
    }
    /* The token decides the round; everything else is checked against it. */
    fa_sha256(token_hash, req->round_token, strlen(req->round_token));
    if ((rc = fa_store_token_round(&r, token_ph, &token_has_ph, agg->store, token_hash, err)) < 0) {
        if (rc == FA_ENOTFOUND)
            *reason_out = "unknown_token";
        return rc;
    }
    /* An authenticated device posts only with a token it checked in for
     * itself: one subject, at most one token, at most one update a round. */
    if (req->subject != NULL) {
        unsigned char ph[32];
        if ((rc = keyed_hash(ph, agg, "pseudonym", 0, req->subject, err)) < 0)
            return rc;
        if (!token_has_ph || !fa_crypto_equal(ph, token_ph, 32)) {
            *reason_out = "token_not_yours";
            return fa_fail(err, FA_EINVAL, "the round token was issued to another device");
        }
    }
    if (r.state != FA_ROUND_OPEN) {
        *reason_out = "round_closed";
        return fa_fail(err, FA_ECONFLICT,
                       "round %" PRId64 " is %s: check in again for the open round", r.id,
                       fa_round_state_name(r.state));
    }
    if (req->model_version != r.base_version) {
        *reason_out = "stale_model_version";
        return fa_fail(err, FA_ECONFLICT,
                       "model version %lld is stale (round %" PRId64 " uses %" PRId64 ")",
                       (long long)req->model_version, r.id, r.base_version);
    }
    if ((t = calloc(1, sizeof(*t))) == NULL ||
        (t->delta = malloc(agg->dim * sizeof(float))) == NULL) {
        free(t);
        return fa_fail(err, FA_ENOMEM, "out of memory reading an update");
    }
    t->agg = agg;
    if ((rc = fa_aggregator__open(agg, t->delta, &t->p.sumsq, reason_out, key, req->box,
                                  req->box_len, req->model_version, req->num_samples, err)) < 0) {
        fa_aggregator_ticket_free(t);
        return rc;
    }
    t->p.round_id = r.id;
    t->p.base_version = r.base_version;
    t->p.num_samples = req->num_samples;
    t->p.delta = t->delta;
    memcpy(t->p.item.token_hash, token_hash, 32);
    fa_crypto_box_digest(t->p.item.seal_id, req->box, req->box_len);
    (void)snprintf(t->p.item.key_id, sizeof(t->p.item.key_id), "%s", req->key_id);
    t->p.item.num_samples = req->num_samples;
    *out = t;
    return FA_OK;
}

void fa_aggregator_accept_queue(fa_aggregator *agg, fa_update_ticket *t, void (*done)(void *arg),
                                void *arg)
{
    /* Durable before the answer: the group commit puts the update into this
     * node's partial sum and its receipt row in one transaction. */
    fa_aggregator__queue(agg, &t->p, done, arg);
}

int fa_aggregator_accept_result(fa_update_receipt *out, const char **reason_out,
                                fa_update_ticket *t, fa_error *err)
{
    int rc = t->p.rc;

    memset(out, 0, sizeof(*out));
    *reason_out = NULL;
    if (rc < 0) {
        *reason_out = t->p.reason;
        *err = t->p.err;
    } else {
        (void)snprintf(out->receipt, sizeof(out->receipt), "%s", t->p.item.receipt);
        out->round_id = t->p.round_id;
        out->cohort = t->p.cohort;
        out->duplicate = t->p.duplicate;
    }
    fa_aggregator_ticket_free(t);
    return rc;
}

int fa_aggregator_accept_commit(fa_update_receipt *out, const char **reason_out, fa_aggregator *agg,
                                fa_update_ticket *t, fa_error *err)
{
    fa_aggregator__submit(agg, &t->p);
    return fa_aggregator_accept_result(out, reason_out, t, err);
}

int fa_aggregator_accept(fa_update_receipt *out, const char **reason_out, fa_aggregator *agg,
                         const fa_update_request *req, fa_error *err)
{
    fa_update_ticket *t = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = fa_aggregator_accept_open(&t, reason_out, agg, req, err)) < 0)
        return rc;
    return fa_aggregator_accept_commit(out, reason_out, agg, t, err);
}

void fa_aggregator_stats_get(fa_aggregator_stats *out, fa_aggregator *agg)
{
    out->rounds_closed = atomic_load(&agg->rounds_closed);
    out->rounds_abandoned = atomic_load(&agg->rounds_abandoned);
    out->rounds_refused = atomic_load(&agg->rounds_refused);
    out->updates_folded = atomic_load(&agg->updates_folded);
    out->partial_vacuums = atomic_load(&agg->partial_vacuums);
    out->group_commits = atomic_load(&agg->group_commits);
    out->cumulative_epsilon = atomic_load(&agg->epsilon);
    out->last_close_seconds = atomic_load(&agg->last_close_s);
}
