/*
 * Group commit: one transaction per batch of accepted updates, holding the
 * round row's share lock, that writes the batch's receipt rows and the
 * node's partial sum holding their updates together (store.h).
 */
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/round_state.h"
#include "store/internal.h"

struct fa_store_batch {
    fa_store *st;
    fa_store_conn *c;
    int64_t round_id;
    int64_t cohort; /* receipt rows of the round when the batch began, plus its own */
};

int fa_store_batch_begin(fa_store_batch **out, fa_store_conflict *conflict_out, int64_t *cohort_out,
                         fa_store *st, int64_t round_id, double now, fa_error *err)
{
    fa_store_batch *b = calloc(1, sizeof(*b));
    fa_store_params p = {0};
    PGresult *res = NULL;
    fa_round_state state;
    int rc;

    *out = NULL;
    *conflict_out = FA_STORE_CONFLICT_NONE;
    *cohort_out = 0;
    if (b == NULL)
        return fa_fail(err, FA_ENOMEM, "out of memory for a batch");
    b->st = st;
    b->round_id = round_id;
    /* Generic plans for the batch's statements: a custom plan copies the
     * sealed partial sum (the size of the model) into the plan as a
     * constant, twice, on every commit. The statements are written for
     * generic plans (one index probe per token). */
    if ((rc = fa_store__conn_acquire(&b->c, st, err)) < 0 ||
        (rc = fa_store__tx(st, b->c, "BEGIN; SET LOCAL plan_cache_mode = force_generic_plan",
                           err)) < 0)
        goto cleanup;
    /* A share lock on the round row: batches of every node proceed
     * together, while a closer holding the row exclusively makes us fail
     * fast (NOWAIT) instead of parking HTTP threads behind the close. */
    fa_store__param_i64(&p, round_id);
    rc = fa_store__run_in(&res, st, b->c, FA_STMT_ROUND_LOCK_SHARE, &p, err);
    if (rc < 0) {
        if (rc == FA_EUNAVAIL && PQstatus(b->c->pg) == CONNECTION_OK)
            rc = fa_fail(err, FA_EUNAVAIL, "round %lld is being closed; retry shortly",
                         (long long)round_id);
        goto cleanup;
    }
    if (PQntuples(res) == 0) {
        rc = fa_fail(err, FA_ENOTFOUND, "round %lld does not exist", (long long)round_id);
        goto cleanup;
    }
    if ((rc = fa_store__round_state_read(&state, res, 0, 0, err)) < 0)
        goto cleanup;
    if (state != FA_ROUND_OPEN) {
        *conflict_out = FA_STORE_CONFLICT_ROUND_ENDED;
        rc = fa_fail(err, FA_ECONFLICT, "round %lld is %s and takes no more updates",
                     (long long)round_id, fa_round_state_name(state));
        goto cleanup;
    }
    /* Membership is "delivered by the deadline": checked under the share
     * lock, so an update is either in before the deadline or refused, never
     * decided by which other updates came first. */
    if (now >= fa_store__get_f64(res, 0, 1)) {
        *conflict_out = FA_STORE_CONFLICT_ROUND_ENDED;
        rc = fa_fail(err, FA_ECONFLICT, "round %lld has passed its deadline", (long long)round_id);
        goto cleanup;
    }
    b->cohort = fa_store__get_i64(res, 0, 2);
    *cohort_out = b->cohort;
    *out = b;
    b = NULL;
cleanup:
    PQclear(res);
    fa_store_batch_free(b);
    return rc;
}

/* Appends s and a comma to buf (cap bytes, *len used). FA_EINVAL when s holds a comma. */
static int csv_add(char *buf, size_t cap, size_t *len, const char *s, fa_error *err)
{
    size_t n = strlen(s);

    if (strchr(s, ',') != NULL || n == 0)
        return fa_fail(err, FA_EINVAL, "'%.64s' cannot be stored in a batch", s);
    if (*len + n + 2 > cap)
        return fa_fail(err, FA_EINTERNAL, "batch field list overflows");
    memcpy(buf + *len, s, n);
    *len += n;
    buf[(*len)++] = ',';
    buf[*len] = '\0';
    return FA_OK;
}

/* Finds token among items[0..n) with the given outcome set; -1 if none. */
static long find_token(const fa_store_batch_item *items, size_t n, const unsigned char tok[32])
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(items[i].token_hash, tok, 32) == 0)
            return (long)i;
    return -1;
}

/*
 * Settles the items whose token already has a stored row (another batch,
 * another node, or an earlier request): the same ciphertext is a retry
 * (its stored receipt), another one a reused token.
 */
static int settle_existing(fa_store_batch *b, fa_store_batch_item *items, size_t n,
                           const unsigned char *toks, size_t ntoks, fa_error *err)
{
    fa_store_params p = {0};
    PGresult *res = NULL;
    int rc;

    fa_store__param_i64(&p, b->round_id);
    fa_store__param_bytes(&p, toks, ntoks * 32);
    if ((rc = fa_store__run_in(&res, b->st, b->c, FA_STMT_RECEIPTS_EXISTING, &p, err)) < 0)
        return rc;
    for (int row = 0; row < PQntuples(res) && rc == FA_OK; row++) {
        unsigned char tok[32], digest[32];
        char receipt[40];
        if ((rc = fa_store__get_fixed(tok, 32, res, row, 0, err)) < 0 ||
            (rc = fa_store__get_text(receipt, sizeof(receipt), res, row, 1, err)) < 0 ||
            (rc = fa_store__get_fixed(digest, 32, res, row, 2, err)) < 0)
            break;
        for (size_t i = 0; i < n; i++) {
            if (items[i].outcome != FA_STORE_ITEM_RETRY ||
                memcmp(items[i].token_hash, tok, 32) != 0)
                continue;
            if (memcmp(items[i].seal_id, digest, 32) == 0) {
                items[i].outcome = FA_STORE_ITEM_DUPLICATE;
                (void)snprintf(items[i].receipt, sizeof(items[i].receipt), "%s", receipt);
            } else {
                items[i].outcome = FA_STORE_ITEM_TOKEN_USED;
            }
        }
    }
    PQclear(res);
    return rc;
}

int fa_store_batch_receipts(fa_store_batch *b, size_t *new_out, fa_store_batch_item *items,
                            size_t n, const unsigned char node[16], int64_t max_cohort,
                            fa_error *err)
{
    const size_t cap = n * 80 + 16;
    char *receipts = malloc(cap), *keys = malloc(cap), *counts = malloc(cap);
    unsigned char *packed = malloc(n * 64 + 1), *toks = calloc(n + 1, 32);
    size_t rl = 0, kl = 0, cl = 0, m = 0, ntoks = 0;
    int64_t room = max_cohort - b->cohort;
    fa_store_params p = {0};
    PGresult *res = NULL;
    int rc = FA_OK;

    *new_out = 0;
    if (receipts == NULL || keys == NULL || counts == NULL || packed == NULL || toks == NULL) {
        rc = fa_fail(err, FA_ENOMEM, "out of memory for a batch");
        goto cleanup;
    }
    receipts[0] = keys[0] = counts[0] = '\0';
    /* Tokens that already have a row are retries or reuses, whatever the
     * cap; a token seen earlier in this batch waits for its first one. */
    for (size_t i = 0; i < n; i++) {
        items[i].outcome = FA_STORE_ITEM_RETRY;
        if (find_token(items, i, items[i].token_hash) < 0)
            memcpy(toks + 32 * ntoks++, items[i].token_hash, 32);
    }
    if ((rc = settle_existing(b, items, n, toks, ntoks, err)) < 0)
        goto cleanup;
    /* The rest in order, while the round has room. */
    ntoks = 0;
    for (size_t i = 0; i < n; i++) {
        char num[24];
        if (items[i].outcome != FA_STORE_ITEM_RETRY ||
            find_token(items, i, items[i].token_hash) >= 0)
            continue;
        if ((int64_t)m >= room) {
            items[i].outcome = FA_STORE_ITEM_ROUND_FULL;
            continue;
        }
        (void)snprintf(num, sizeof(num), "%lld", (long long)items[i].num_samples);
        if ((rc = csv_add(receipts, cap, &rl, items[i].receipt, err)) < 0 ||
            (rc = csv_add(keys, cap, &kl, items[i].key_id, err)) < 0 ||
            (rc = csv_add(counts, cap, &cl, num, err)) < 0)
            goto cleanup;
        memcpy(packed + 64 * m, items[i].token_hash, 32);
        memcpy(packed + 64 * m + 32, items[i].seal_id, 32);
        memcpy(toks + 32 * ntoks++, items[i].token_hash, 32);
        m++;
    }
    if (m > 0) {
        receipts[rl - 1] = keys[kl - 1] = counts[cl - 1] = '\0'; /* the trailing commas */
        fa_store__param_i64(&p, b->round_id);
        fa_store__param_bytes(&p, packed, m * 64);
        fa_store__param_text(&p, receipts);
        fa_store__param_text(&p, keys);
        fa_store__param_text(&p, counts);
        fa_store__param_bytes(&p, node, 16);
        if ((rc = fa_store__run_in(&res, b->st, b->c, FA_STMT_RECEIPTS_INSERT, &p, err)) < 0)
            goto cleanup;
        for (int row = 0; row < PQntuples(res); row++) {
            unsigned char tok[32];
            long i;
            if ((rc = fa_store__get_fixed(tok, 32, res, row, 0, err)) < 0)
                goto cleanup;
            if ((i = find_token(items, n, tok)) >= 0 && items[i].outcome == FA_STORE_ITEM_RETRY) {
                items[i].outcome = FA_STORE_ITEM_NEW;
                (*new_out)++;
            }
        }
        /* A row another node committed meanwhile (the insert waited for it
         * and skipped): settled like any stored row. */
        if ((size_t)PQntuples(res) < m && (rc = settle_existing(b, items, n, toks, ntoks, err)) < 0)
            goto cleanup;
    }
    /* A repeat inside the batch follows its first occurrence. */
    for (size_t i = 0; i < n; i++) {
        long first = find_token(items, i, items[i].token_hash);
        if (first < 0 || items[i].outcome != FA_STORE_ITEM_RETRY)
            continue;
        if (items[first].outcome == FA_STORE_ITEM_NEW ||
            items[first].outcome == FA_STORE_ITEM_DUPLICATE) {
            if (memcmp(items[first].seal_id, items[i].seal_id, 32) == 0) {
                items[i].outcome = FA_STORE_ITEM_DUPLICATE;
                memcpy(items[i].receipt, items[first].receipt, sizeof(items[i].receipt));
            } else {
                items[i].outcome = FA_STORE_ITEM_TOKEN_USED;
            }
        } else {
            items[i].outcome = items[first].outcome;
        }
    }
    b->cohort += (int64_t)*new_out;
cleanup:
    PQclear(res);
    free(receipts);
    free(keys);
    free(counts);
    free(packed);
    free(toks);
    return rc;
}

int fa_store_batch_partial_get(unsigned char **sealed_out, size_t *len_out, int64_t *folded_out,
                               fa_store_batch *b, const unsigned char node[16], fa_error *err)
{
    fa_store_params p = {0};
    PGresult *res = NULL;
    int rc;

    *sealed_out = NULL;
    *len_out = 0;
    *folded_out = 0;
    fa_store__param_i64(&p, b->round_id);
    fa_store__param_bytes(&p, node, 16);
    if ((rc = fa_store__run_in(&res, b->st, b->c, FA_STMT_PARTIAL_GET, &p, err)) < 0)
        goto cleanup;
    if (PQntuples(res) == 0) {
        rc = fa_fail(err, FA_ENOTFOUND, "this node has no partial sum of round %lld",
                     (long long)b->round_id);
        goto cleanup;
    }
    *folded_out = fa_store__get_i64(res, 0, 0);
    rc = fa_store__get_dup(sealed_out, len_out, res, 0, 1, err);
cleanup:
    PQclear(res);
    return rc;
}

int fa_store_batch_partial_put(fa_store_batch *b, const unsigned char node[16], int64_t prev_folded,
                               int64_t folded, const unsigned char *sealed, size_t len,
                               fa_error *err)
{
    fa_store_params p = {0};
    PGresult *res = NULL;
    int rc;

    if (len > (size_t)INT32_MAX)
        return fa_fail(err, FA_ETOOBIG, "partial sum of %zu bytes is too large", len);
    fa_store__param_i64(&p, b->round_id);
    fa_store__param_bytes(&p, node, 16);
    fa_store__param_i64(&p, prev_folded);
    fa_store__param_i64(&p, folded);
    fa_store__param_bytes(&p, sealed, len);
    if ((rc = fa_store__run_in(&res, b->st, b->c, FA_STMT_PARTIAL_PUT, &p, err)) == FA_OK &&
        fa_store__get_i64(res, 0, 0) != 1)
        rc = fa_fail(err, FA_ECONFLICT,
                     "this node's partial sum of round %lld no longer holds %lld updates",
                     (long long)b->round_id, (long long)prev_folded);
    PQclear(res);
    return rc;
}

int fa_store_batch_commit(fa_store_batch *b, fa_error *err)
{
    return fa_store__tx(b->st, b->c, "COMMIT", err);
}

void fa_store_batch_free(fa_store_batch *b)
{
    if (b == NULL)
        return;
    fa_store__conn_release(b->st, b->c); /* rolls back an unfinished transaction */
    free(b);
}

/* What VACUUM reported as warnings: a table it skipped (not its owner), or
 * left to another session's VACUUM (SKIP_LOCKED). */
struct vacuum_notices {
    int skipped;
    int locked;
    char msg[160];
};

static void vacuum_notice(void *arg, const PGresult *res)
{
    struct vacuum_notices *vn = arg;
    const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

    if (severity == NULL || strcmp(severity, "WARNING") != 0)
        return;
    /* SKIP_LOCKED: another node's VACUUM of the table is as good as ours. */
    if (state != NULL && strcmp(state, "55P03") == 0) {
        vn->locked = 1;
        return;
    }
    if (!vn->skipped)
        (void)snprintf(vn->msg, sizeof(vn->msg), "%s", msg != NULL ? msg : "a warning");
    vn->skipped = 1;
}

int fa_store_partials_vacuum(fa_store *st, int *ran_out, fa_error *err)
{
    struct vacuum_notices vn = {0, 0, ""};
    PQnoticeReceiver previous;
    fa_store_conn *c = NULL;
    int rc;

    *ran_out = 0;
    if ((rc = fa_store__conn_acquire(&c, st, err)) < 0)
        return rc;
    /* VACUUM does not fail where it cannot work (a role that does not own
     * the table): it warns and skips, so the warnings are read here. The
     * default receiver hands notices to the connection's processor. */
    previous = PQsetNoticeReceiver(c->pg, vacuum_notice, &vn);
    rc = fa_store__tx(st, c, "VACUUM (SKIP_LOCKED) partial_sums", err);
    (void)PQsetNoticeReceiver(c->pg, previous, NULL);
    fa_store__conn_release(st, c);
    if (rc == FA_OK && vn.skipped)
        rc = fa_fail(err, FA_EREFUSED,
                     "VACUUM of partial_sums did nothing: %s (connect as the role that owns the"
                     " table, or set partial_vacuum_commits = 0 and leave it to autovacuum)",
                     vn.msg);
    *ran_out = rc == FA_OK && !vn.locked;
    return rc;
}
