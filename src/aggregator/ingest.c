/*
 * The ingest node: accepted updates become durable as this process's
 * partial sum of the round, never as stored ciphertexts. HTTP threads open
 * and check their update, then queue it; the node's commit thread (or,
 * in a process without threads, a waiting caller) leads one commit at a
 * time (group commit): it takes the queued updates of one round, and in
 * one transaction writes their receipt rows, adds the new ones to the
 * node's partial sum, seals the sum at rest (XChaCha20-Poly1305 under a key
 * derived from the server's signing seed, bound to round, node and count)
 * and stores it, then commits and settles each update (a waiting thread is
 * woken, a queued ticket's callback called), whose device is answered 202
 * only now. An update is therefore in the database in
 * exactly one committed partial sum, together with its receipt row, or
 * not at all; the close merges the partial sums (close.c).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aggregator/internal.h"
#include "aggregator/round_math.h"
#include "core/bytes.h"
#include "core/log.h"
#include "core/util.h"
#include "model/params.h"
#include "model/snapshot.h"
#include "model/vec.h"
#include "privacy/crypto.h"
#include "privacy/keys.h"

#define PARTIAL_MAGIC  "FAP1"
#define PARTIAL_HEAD   8 /* magic, u32 dim */
#define PARTIAL_AD     "fedagg-partial-v1"
#define PARTIAL_AD_LEN (sizeof(PARTIAL_AD) - 1 + 32) /* label, round, node, count */

/* Bytes of a partial sum's plaintext and of its sealed form. */
static size_t plain_len(const fa_aggregator *agg)
{
    return PARTIAL_HEAD + 4 * agg->dim;
}

/* What a sealed partial sum is bound to: its round, node and count. */
static void partial_ad(unsigned char ad[PARTIAL_AD_LEN], int64_t round_id,
                       const unsigned char node[16], int64_t folded)
{
    memcpy(ad, PARTIAL_AD, sizeof(PARTIAL_AD) - 1);
    fa_bytes_put_u64(ad + sizeof(PARTIAL_AD) - 1, (uint64_t)round_id);
    memcpy(ad + sizeof(PARTIAL_AD) - 1 + 8, node, 16);
    fa_bytes_put_u64(ad + sizeof(PARTIAL_AD) - 1 + 24, (uint64_t)folded);
}

int fa_aggregator__partial_open(fa_aggregator *agg, float *out, int64_t round_id,
                                const unsigned char node[16], int64_t folded,
                                const unsigned char *sealed, size_t len, fa_error *err)
{
    unsigned char ad[PARTIAL_AD_LEN];
    const size_t n = plain_len(agg);
    unsigned char *plain;
    int rc;

    if (len != n + FA_CRYPTO_AEAD_OVERHEAD)
        return fa_fail(err, FA_EINTERNAL,
                       "a partial sum of round %" PRId64 " has %zu bytes, not %zu (another model?)",
                       round_id, len, n + FA_CRYPTO_AEAD_OVERHEAD);
    if ((plain = malloc(n)) == NULL)
        return fa_fail(err, FA_ENOMEM, "out of memory opening a partial sum");
    partial_ad(ad, round_id, node, folded);
    rc =
        fa_crypto_aead_open(plain, n, fa_keys_at_rest(agg->keys), ad, sizeof(ad), sealed, len, err);
    if (rc < 0) {
        rc = fa_fail(err, FA_EINTERNAL,
                     "a partial sum of round %" PRId64 " does not open for %" PRId64
                     " updates (changed, moved or another key)",
                     round_id, folded);
    } else if (memcmp(plain, PARTIAL_MAGIC, 4) != 0 || fa_bytes_get_u32(plain + 4) != agg->dim) {
        rc = fa_fail(err, FA_EINTERNAL, "a partial sum of round %" PRId64 " has a bad header",
                     round_id);
    } else {
        fa_bytes_get_f32s(out, plain + PARTIAL_HEAD, agg->dim);
    }
    fa_crypto_wipe(plain, n);
    free(plain);
    return rc;
}

/* Seals the leader's next sum (folded updates) into node->sealed. */
static int partial_seal(fa_aggregator *agg, int64_t round_id, int64_t folded, fa_error *err)
{
    struct fa_node *nd = &agg->node;
    unsigned char ad[PARTIAL_AD_LEN];
    const size_t n = plain_len(agg);
    int rc;

    memcpy(nd->plain, PARTIAL_MAGIC, 4);
    fa_bytes_put_u32(nd->plain + 4, (uint32_t)agg->dim);
    fa_bytes_put_f32s(nd->plain + PARTIAL_HEAD, fa_round_sum_data(nd->next), agg->dim);
    partial_ad(ad, round_id, nd->id, folded);
    rc = fa_crypto_aead_seal(nd->sealed, n + FA_CRYPTO_AEAD_OVERHEAD, fa_keys_at_rest(agg->keys),
                             ad, sizeof(ad), nd->plain, n, err);
    fa_crypto_wipe(nd->plain, n);
    return rc;
}

int fa_aggregator__direction(float **out, fa_aggregator *agg, int64_t version, fa_error *err)
{
    fa_params *p[2] = {NULL, NULL};
    float *dir = NULL;
    int rc = FA_OK;

    *out = NULL;
    if (strcmp(agg->cfg->trust_policy, "cosine") != 0 || version <= 0)
        return FA_OK;
    for (int k = 0; k < 2 && rc == FA_OK; k++) {
        fa_store_model m;
        fa_snapshot_meta meta = FA_SNAPSHOT_META_INIT;
        if ((rc = fa_store_model_get(&m, agg->store, version - k, 1, err)) < 0)
            break;
        rc = fa_snapshot_safetensors_parse(&p[k], &meta, m.snapshot, m.snapshot_len,
                                           FA_PARAMS_MAX_ITEMS, err);
        fa_store_model_done(&m);
        if (rc == FA_OK && fa_params_len(p[k]) != agg->dim)
            rc = fa_fail(err, FA_EINTERNAL, "model version %" PRId64 " has another layout",
                         version - k);
    }
    if (rc == FA_OK) {
        if ((dir = malloc(agg->dim * sizeof(float))) == NULL) {
            rc = fa_fail(err, FA_ENOMEM, "out of memory for the published direction");
        } else {
            /* New minus old, as fa_round_step forms it: the same bits. */
            fa_vec_copy(dir, fa_params_cdata(p[0]), agg->dim);
            fa_vec_axpy(dir, -1.0f, fa_params_cdata(p[1]), agg->dim);
            *out = dir;
        }
    }
    fa_params_free(p[0]);
    fa_params_free(p[1]);
    return rc;
}

int fa_aggregator__node_init(fa_aggregator *agg, fa_error *err)
{
    struct fa_node *nd = &agg->node;
    int rc;

    fa_crypto_random(nd->id, sizeof(nd->id));
    (void)pthread_mutex_init(&nd->mu, NULL);
    (void)pthread_cond_init(&nd->cv, NULL);
    if ((rc = fa_round_sum_new(&nd->sum, agg->dim, err)) < 0 ||
        (rc = fa_round_sum_new(&nd->next, agg->dim, err)) < 0)
        return rc;
    nd->batch = calloc((size_t)agg->cfg->commit_batch_max, sizeof(*nd->batch));
    nd->plain = malloc(plain_len(agg));
    nd->sealed = malloc(plain_len(agg) + FA_CRYPTO_AEAD_OVERHEAD);
    if (nd->batch == NULL || nd->plain == NULL || nd->sealed == NULL)
        return fa_fail(err, FA_ENOMEM, "out of memory for the partial sum");
    return FA_OK;
}

void fa_aggregator__node_done(fa_aggregator *agg)
{
    struct fa_node *nd = &agg->node;

    if (nd->plain == NULL && nd->sum == NULL)
        return;
    fa_round_sum_free(nd->sum);
    fa_round_sum_free(nd->next);
    free(nd->batch);
    free(nd->plain);
    free(nd->sealed);
    free(nd->direction);
    (void)pthread_mutex_destroy(&nd->mu);
    (void)pthread_cond_destroy(&nd->cv);
    memset(nd, 0, sizeof(*nd));
}

/* Sets every item of the batch to rc with reason and err's message. */
static void fail_all(struct fa_pending **batch, size_t n, int rc, const char *reason,
                     const fa_error *err)
{
    for (size_t i = 0; i < n; i++) {
        batch[i]->rc = rc;
        batch[i]->reason = reason;
        batch[i]->err = *err;
    }
}

/*
 * Moves the leader to round_id (base version base) when it was summing
 * another round: an empty sum, the base version's published direction, and
 * the row to be read (a row of this node for this round can only be ours).
 */
static int node_round(fa_aggregator *agg, int64_t round_id, int64_t base, fa_error *err)
{
    struct fa_node *nd = &agg->node;
    float *dir = NULL;
    int rc;

    if (nd->round_id == round_id)
        return FA_OK;
    if ((rc = fa_aggregator__direction(&dir, agg, base, err)) < 0)
        return rc;
    free(nd->direction);
    nd->direction = dir;
    fa_round_sum_clear(nd->sum);
    nd->round_id = round_id;
    nd->known = 0;
    return FA_OK;
}

/*
 * Makes the leader's sum the committed row of this node for b's round:
 * read back when not known (a new round, or after a failed commit whose
 * outcome may be unknown).
 */
static int node_sync(fa_aggregator *agg, fa_store_batch *b, int64_t round_id, fa_error *err)
{
    struct fa_node *nd = &agg->node;
    unsigned char *sealed = NULL;
    size_t len = 0;
    int64_t folded = 0;
    int rc;

    if (nd->known)
        return FA_OK;
    rc = fa_store_batch_partial_get(&sealed, &len, &folded, b, nd->id, err);
    fa_round_sum_clear(nd->sum);
    if (rc == FA_ENOTFOUND) {
        nd->known = 1;
        return FA_OK;
    }
    if (rc == FA_OK) {
        float *tmp = malloc(agg->dim * sizeof(float));
        if (tmp == NULL)
            rc = fa_fail(err, FA_ENOMEM, "out of memory reading a partial sum");
        if (rc == FA_OK &&
            (rc = fa_aggregator__partial_open(agg, tmp, round_id, nd->id, folded, sealed, len,
                                              err)) == FA_OK &&
            (rc = fa_round_sum_merge(nd->sum, tmp, folded, err)) == FA_OK)
            nd->known = 1;
        if (tmp != NULL)
            fa_crypto_wipe(tmp, agg->dim * sizeof(float));
        free(tmp);
    }
    free(sealed);
    return rc;
}

/*
 * Commits one batch (every item of round batch[0]->round_id): the leader's
 * work, with node.mu not held. Returns 1 when it wrote the partial sum.
 */
static int commit_batch(fa_aggregator *agg, struct fa_pending **batch, size_t n)
{
    struct fa_node *nd = &agg->node;
    const int64_t round_id = batch[0]->round_id, base = batch[0]->base_version;
    fa_store_batch_item *items = calloc(n, sizeof(*items));
    const float **deltas = calloc(n, sizeof(*deltas));
    fa_clip_sumsq *sumsqs = calloc(n, sizeof(*sumsqs));
    int64_t *samples = calloc(n, sizeof(*samples));
    fa_store_batch *b = NULL;
    fa_store_conflict conflict = FA_STORE_CONFLICT_NONE;
    fa_error err = FA_ERROR_INIT;
    int64_t cohort = 0;
    size_t fresh = 0, k = 0, folded = 0;
    int rc, wrote = 0;

    if (items == NULL || deltas == NULL || sumsqs == NULL || samples == NULL) {
        rc = fa_fail(&err, FA_ENOMEM, "out of memory for a batch");
        goto failed;
    }
    if ((rc = node_round(agg, round_id, base, &err)) < 0)
        goto failed;
    if ((rc = fa_store_batch_begin(&b, &conflict, &cohort, agg->store, round_id,
                                   fa_aggregator__now(agg), &err)) < 0) {
        fail_all(batch, n, rc, conflict == FA_STORE_CONFLICT_ROUND_ENDED ? "round_closed" : NULL,
                 &err);
        goto done;
    }
    if ((rc = node_sync(agg, b, round_id, &err)) < 0)
        goto failed;
    for (size_t i = 0; i < n; i++) {
        unsigned char rnd[16];
        items[i] = batch[i]->item;
        fa_crypto_random(rnd, sizeof(rnd));
        fa_hex_encode(items[i].receipt, rnd, sizeof(rnd));
    }
    if ((rc = fa_store_batch_receipts(b, &fresh, items, n, nd->id, agg->cfg->max_cohort, &err)) < 0)
        goto failed;
    if (fresh > 0) {
        for (size_t i = 0; i < n; i++) {
            if (items[i].outcome != FA_STORE_ITEM_NEW)
                continue;
            deltas[k] = batch[i]->delta;
            sumsqs[k] = batch[i]->sumsq;
            samples[k] = batch[i]->num_samples;
            k++;
        }
        fa_round_sum_copy(nd->next, nd->sum);
        if ((rc = fa_round_sum_fold_many(nd->next, &folded, deltas, sumsqs, samples, k, agg->cfg,
                                         nd->direction, &err)) < 0)
            goto failed;
        if (folded != fresh) {
            rc = fa_fail(&err, FA_EINTERNAL, "%zu of %zu updates folded", folded, fresh);
            goto failed;
        }
        if ((rc = partial_seal(agg, round_id, fa_round_sum_folded(nd->next), &err)) < 0 ||
            (rc = fa_store_batch_partial_put(b, nd->id, fa_round_sum_folded(nd->sum),
                                             fa_round_sum_folded(nd->next), nd->sealed,
                                             plain_len(agg) + FA_CRYPTO_AEAD_OVERHEAD, &err)) < 0)
            goto failed;
    }
    if ((rc = fa_store_batch_commit(b, &err)) < 0)
        goto failed;
    fa_store_batch_free(b);
    wrote = fresh > 0;
    if (fresh > 0) {
        fa_round_sum *t = nd->sum;
        nd->sum = nd->next;
        nd->next = t;
        atomic_fetch_add(&agg->updates_folded, (uint_fast64_t)fresh);
    }
    for (size_t i = 0; i < n; i++) {
        struct fa_pending *p = batch[i];
        p->cohort = cohort + (int64_t)fresh;
        memcpy(p->item.receipt, items[i].receipt, sizeof(p->item.receipt));
        switch (items[i].outcome) {
        case FA_STORE_ITEM_NEW:
            p->rc = FA_OK;
            break;
        case FA_STORE_ITEM_DUPLICATE:
            p->rc = FA_OK;
            p->duplicate = 1;
            break;
        case FA_STORE_ITEM_TOKEN_USED:
            p->reason = "token_reused";
            p->rc = fa_fail(&p->err, FA_ECONFLICT, "token was already used for a different update");
            break;
        case FA_STORE_ITEM_ROUND_FULL:
            p->reason = "round_full";
            p->rc =
                fa_fail(&p->err, FA_ECONFLICT, "round %" PRId64 " is full (%" PRId64 " updates)",
                        round_id, agg->cfg->max_cohort);
            break;
        case FA_STORE_ITEM_RETRY:
            p->rc = fa_fail(&p->err, FA_EUNAVAIL,
                            "another request with this token is being stored; retry shortly");
            break;
        }
    }
    goto done;
failed:
    /* Nothing of this batch is acknowledged. The transaction rolled back,
     * or (a lost COMMIT) committed unseen: read the row back next time, and
     * a device's retry then finds its update stored (an identical retry). */
    fa_store_batch_free(b);
    nd->known = 0;
    fail_all(batch, n, rc, NULL, &err);
done:
    free(items);
    free(deltas);
    free(sumsqs);
    free(samples);
    return wrote;
}

/*
 * Each commit leaves the node's previous partial sum behind as a dead row
 * version: VACUUM makes that space reusable before the table (and every
 * later commit's cost of extending it) grows, and drops the superseded
 * sums.
 */
void fa_aggregator__vacuum_partials(fa_aggregator *agg)
{
    fa_error err = FA_ERROR_INIT;
    uint64_t t0 = fa_now_ns();
    uint_fast64_t last = atomic_load(&agg->vacuum_warned_ns);
    int ran = 0;

    if (fa_store_partials_vacuum(agg->store, &ran, &err) < 0) {
        /* Once a minute: a role that cannot vacuum fails every time. */
        if ((last == 0 || t0 - last > 60000000000ull) &&
            atomic_compare_exchange_strong(&agg->vacuum_warned_ns, &last, t0))
            FA_LOG(FA_WARN, "ingest.vacuum_failed", "code=%s msg=\"%s\"", fa_code_name(err.code),
                   err.msg);
        return;
    }
    if (ran)
        atomic_fetch_add(&agg->partial_vacuums, 1);
    FA_LOG(FA_DEBUG, "ingest.vacuum", "ran=%d ms=%.3f", ran, (double)(fa_now_ns() - t0) / 1e6);
}

/*
 * Hands the VACUUM to the worker, off the path of any device's answer; a
 * process without a worker (tests that drive it) runs it here, after the
 * batch is answered.
 */
static void vacuum_soon(fa_aggregator *agg)
{
    if (!agg->has_thread) {
        fa_aggregator__vacuum_partials(agg);
        return;
    }
    (void)pthread_mutex_lock(&agg->mu);
    agg->vacuum_due = 1;
    (void)pthread_cond_signal(&agg->cv);
    (void)pthread_mutex_unlock(&agg->mu);
}

/* Takes up to max queued updates of the first one's round off the queue (under mu). */
static size_t take(struct fa_node *nd, struct fa_pending **batch, size_t max)
{
    struct fa_pending **link = &nd->head;
    size_t n = 0;
    int64_t round_id = nd->head->round_id;

    while (*link != NULL && n < max) {
        struct fa_pending *p = *link;
        if (p->round_id == round_id) {
            *link = p->next;
            p->next = NULL;
            batch[n++] = p;
            nd->queued--;
        } else {
            link = &p->next;
        }
    }
    return n;
}

/*
 * Leads one commit (nd->mu held on entry and on return): gathers for
 * commit_wait_ms when asked, takes a batch of the first queued round,
 * commits it with mu released, then settles every item: a waiting thread
 * is signalled, a queued ticket's on_done called (its last touch here: the
 * owner may free it at once). Returns 1 when a VACUUM is due.
 */
static int lead_one(fa_aggregator *agg)
{
    struct fa_node *nd = &agg->node;
    const size_t max = (size_t)agg->cfg->commit_batch_max;
    struct fa_pending **batch = nd->batch;
    int vacuum = 0;

    nd->leader = 1;
    if (agg->cfg->commit_wait_ms > 0 && nd->queued < max) {
        /* Bounded extra latency for a larger batch. */
        struct timespec until;
        fa_realtime_after(&until, agg->cfg->commit_wait_ms);
        nd->gathering = 1;
        while (nd->queued < max && pthread_cond_timedwait(&nd->cv, &nd->mu, &until) == 0) {
        }
        nd->gathering = 0;
    }
    size_t n = take(nd, batch, max);
    (void)pthread_mutex_unlock(&nd->mu);
    uint64_t t0 = fa_now_ns();
    const int wrote = commit_batch(agg, batch, n);
    atomic_fetch_add(&agg->group_commits, 1);
    FA_LOG(FA_DEBUG, "ingest.commit", "updates=%zu ms=%.3f", n, (double)(fa_now_ns() - t0) / 1e6);
    (void)pthread_mutex_lock(&nd->mu);
    for (size_t i = 0; i < n; i++) {
        struct fa_pending *q = batch[i];
        void (*on_done)(void *) = q->on_done;
        void *arg = q->done_arg;
        q->done = 1;
        if (on_done != NULL)
            on_done(arg);
        else
            (void)pthread_cond_signal(&q->cv);
    }
    nd->leader = 0;
    if (wrote && agg->cfg->partial_vacuum_commits > 0 &&
        ++nd->unvacuumed >= agg->cfg->partial_vacuum_commits) {
        nd->unvacuumed = 0;
        vacuum = 1;
    }
    return vacuum;
}

/* Appends p to the queue (nd->mu held) and wakes whoever takes batches. */
static void enqueue(struct fa_node *nd, struct fa_pending *p)
{
    struct fa_pending **link;

    for (link = &nd->head; *link != NULL; link = &(*link)->next) {
    }
    p->next = NULL;
    p->done = 0;
    *link = p;
    nd->queued++;
    if (nd->gathering || nd->has_committer)
        (void)pthread_cond_signal(&nd->cv);
}

void fa_aggregator__submit(fa_aggregator *agg, struct fa_pending *p)
{
    struct fa_node *nd = &agg->node;
    int vacuum = 0;

    /* Each waiter sleeps on its own condition, so a finished commit wakes
     * exactly its own updates and the next leader, not every waiter. */
    p->on_done = NULL;
    (void)pthread_cond_init(&p->cv, NULL);
    (void)pthread_mutex_lock(&nd->mu);
    enqueue(nd, p);
    while (!p->done) {
        /* The committer thread leads every commit when there is one;
         * otherwise (a process driven by hand) a waiting thread leads. */
        if (nd->has_committer || nd->leader) {
            (void)pthread_cond_wait(&p->cv, &nd->mu);
            continue;
        }
        vacuum |= lead_one(agg);
        if (nd->head != NULL) /* the next leader */
            (void)pthread_cond_signal(&nd->head->cv);
    }
    (void)pthread_mutex_unlock(&nd->mu);
    (void)pthread_cond_destroy(&p->cv);
    if (vacuum)
        vacuum_soon(agg);
}

void fa_aggregator__queue(fa_aggregator *agg, struct fa_pending *p, void (*on_done)(void *),
                          void *arg)
{
    struct fa_node *nd = &agg->node;

    (void)pthread_mutex_lock(&nd->mu);
    if (nd->has_committer) {
        p->on_done = on_done;
        p->done_arg = arg;
        enqueue(nd, p);
        (void)pthread_mutex_unlock(&nd->mu);
        return;
    }
    (void)pthread_mutex_unlock(&nd->mu);
    fa_aggregator__submit(agg, p);
    on_done(arg);
}

/* The committer thread: leads every commit until stopped with the queue empty. */
static void *committer_main(void *arg)
{
    fa_aggregator *agg = arg;
    struct fa_node *nd = &agg->node;

    (void)pthread_mutex_lock(&nd->mu);
    for (;;) {
        while (nd->head == NULL && !nd->stop)
            (void)pthread_cond_wait(&nd->cv, &nd->mu);
        if (nd->head == NULL) {
            /* Stopped, and nothing is left waiting: from now on callers
             * commit for themselves. */
            nd->has_committer = 0;
            break;
        }
        if (lead_one(agg)) {
            (void)pthread_mutex_unlock(&nd->mu);
            vacuum_soon(agg);
            (void)pthread_mutex_lock(&nd->mu);
        }
    }
    (void)pthread_mutex_unlock(&nd->mu);
    return NULL;
}

int fa_aggregator__committer_start(fa_aggregator *agg, fa_error *err)
{
    struct fa_node *nd = &agg->node;
    int e;

    /* Set before the thread runs, so no caller leads a commit meanwhile. */
    (void)pthread_mutex_lock(&nd->mu);
    nd->has_committer = 1;
    (void)pthread_mutex_unlock(&nd->mu);
    if ((e = pthread_create(&nd->committer, NULL, committer_main, agg)) != 0) {
        (void)pthread_mutex_lock(&nd->mu);
        nd->has_committer = 0;
        (void)pthread_mutex_unlock(&nd->mu);
        return fa_fail(err, FA_EINTERNAL, "cannot start the commit thread (error %d)", e);
    }
    nd->committer_started = 1;
    return FA_OK;
}

void fa_aggregator__committer_stop(fa_aggregator *agg)
{
    struct fa_node *nd = &agg->node;

    if (!nd->committer_started)
        return;
    (void)pthread_mutex_lock(&nd->mu);
    nd->stop = 1;
    (void)pthread_cond_broadcast(&nd->cv);
    (void)pthread_mutex_unlock(&nd->mu);
    (void)pthread_join(nd->committer, NULL);
    nd->committer_started = 0;
}
