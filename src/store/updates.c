/*
 * Updates: one sealed update per participation token and round, written
 * under the round row's share lock, and read back by id pages.
 */
#include "store/store.h"

#include <stdlib.h>
#include <string.h>

#include "core/round_state.h"
#include "store/internal.h"

static int update_params(fa_store_params *p, const fa_store_update_in *u, fa_error *err)
{
    if (u->box_len > (size_t)INT32_MAX)
        return fa_fail(err, FA_ETOOBIG, "sealed update of %zu bytes is too large", u->box_len);
    memset(p, 0, sizeof(*p));
    fa_store__param_i64(p, u->round_id);
    fa_store__param_bytes(p, u->token_hash, 32);
    fa_store__param_text(p, u->receipt);
    fa_store__param_text(p, u->key_id);
    fa_store__param_i64(p, u->num_samples);
    fa_store__param_bytes(p, u->box, u->box_len);
    return FA_OK;
}

int fa_store_update_insert(int64_t *id_out, fa_store *st, const fa_store_update_in *u,
                           fa_error *err)
{
    fa_store_params p;
    PGresult *res = NULL;
    int rc;

    *id_out = 0;
    if ((rc = update_params(&p, u, err)) < 0 ||
        (rc = fa_store__run_write(&res, st, FA_STMT_UPDATE_INSERT, &p, err)) < 0)
        goto cleanup;
    if (PQntuples(res) == 0) {
        rc = fa_fail(err, FA_ECONFLICT, "round %lld already has an update for this token",
                     (long long)u->round_id);
        goto cleanup;
    }
    *id_out = fa_store__get_i64(res, 0, 0);
cleanup:
    PQclear(res);
    return rc;
}

int fa_store__update_read(fa_store_update *out, const PGresult *res, int row, fa_error *err)
{
    int rc;

    out->id = fa_store__get_i64(res, row, 0);
    out->num_samples = fa_store__get_i64(res, row, 4);
    if ((rc = fa_store__get_fixed(out->token_hash, 32, res, row, 1, err)) < 0 ||
        (rc = fa_store__get_text(out->receipt, sizeof(out->receipt), res, row, 2, err)) < 0 ||
        (rc = fa_store__get_text(out->key_id, sizeof(out->key_id), res, row, 3, err)) < 0 ||
        (rc = fa_store__get_dup(&out->box, &out->box_len, res, row, 5, err)) < 0)
        return rc;
    return FA_OK;
}

int fa_store_update_get(fa_store_update *out, fa_store *st, int64_t round_id,
                        const unsigned char token_hash[32], fa_error *err)
{
    fa_store_params p = {0};
    PGresult *res = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    fa_store__param_i64(&p, round_id);
    fa_store__param_bytes(&p, token_hash, 32);
    if ((rc = fa_store__run_read(&res, st, FA_STMT_UPDATE_GET, &p, err)) < 0)
        goto cleanup;
    if (PQntuples(res) == 0) {
        rc = fa_fail(err, FA_ENOTFOUND, "no update for this token in round %lld",
                     (long long)round_id);
        goto cleanup;
    }
    out->id = fa_store__get_i64(res, 0, 0);
    out->round_id = round_id;
    memcpy(out->token_hash, token_hash, 32);
    out->num_samples = fa_store__get_i64(res, 0, 3);
    if ((rc = fa_store__get_text(out->receipt, sizeof(out->receipt), res, 0, 1, err)) < 0 ||
        (rc = fa_store__get_text(out->key_id, sizeof(out->key_id), res, 0, 2, err)) < 0 ||
        (rc = fa_store__get_dup(&out->box, &out->box_len, res, 0, 4, err)) < 0)
        goto cleanup;
cleanup:
    PQclear(res);
    if (rc < 0)
        fa_store_update_done(out);
    return rc;
}

void fa_store_update_done(fa_store_update *u)
{
    if (u == NULL)
        return;
    free(u->box);
    u->box = NULL;
    u->box_len = 0;
}

int fa_store_update_accept(fa_store_accept *out, fa_store *st, const fa_store_update_in *u,
                           int64_t max_cohort, double now, fa_error *err)
{
    fa_store_conn *c = NULL;
    PGresult *res = NULL;
    fa_store_params p = {0}, up;
    fa_round_state state;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = update_params(&up, u, err)) < 0 || (rc = fa_store__conn_acquire(&c, st, err)) < 0)
        return rc;
    if ((rc = fa_store__tx(st, c, "BEGIN", err)) < 0)
        goto cleanup;
    /* A share lock on the round row: many updates proceed together, while
     * a closer holding the row exclusively makes us fail fast (NOWAIT)
     * instead of parking an HTTP thread behind the close. */
    fa_store__param_i64(&p, u->round_id);
    rc = fa_store__run_in(&res, st, c, FA_STMT_ROUND_LOCK_SHARE, &p, err);
    if (rc < 0) {
        if (rc == FA_EUNAVAIL && PQstatus(c->pg) == CONNECTION_OK)
            rc = fa_fail(err, FA_EUNAVAIL, "round %lld is being closed; retry shortly",
                         (long long)u->round_id);
        goto cleanup;
    }
    if (PQntuples(res) == 0) {
        rc = fa_fail(err, FA_ENOTFOUND, "round %lld does not exist", (long long)u->round_id);
        goto cleanup;
    }
    if ((rc = fa_store__round_state_read(&state, res, 0, 0, err)) < 0)
        goto cleanup;
    if (state != FA_ROUND_OPEN) {
        out->conflict = FA_STORE_CONFLICT_ROUND_ENDED;
        rc = fa_fail(err, FA_ECONFLICT, "round %lld is %s and takes no more updates",
                     (long long)u->round_id, fa_round_state_name(state));
        goto cleanup;
    }
    /* Membership is "delivered by the deadline": checked under the share
     * lock, so an update is either in before the deadline or refused, never
     * decided by which other updates came first. */
    if (now >= fa_store__get_f64(res, 0, 1)) {
        out->conflict = FA_STORE_CONFLICT_ROUND_ENDED;
        rc = fa_fail(err, FA_ECONFLICT, "round %lld has passed its deadline",
                     (long long)u->round_id);
        goto cleanup;
    }
    PQclear(res);
    res = NULL;
    memset(&p, 0, sizeof(p));
    fa_store__param_i64(&p, u->round_id);
    fa_store__param_bytes(&p, u->token_hash, 32);
    if ((rc = fa_store__run_in(&res, st, c, FA_STMT_TOKEN_CHECK, &p, err)) < 0)
        goto cleanup;
    if (PQntuples(res) == 0) {
        rc = fa_fail(err, FA_ENOTFOUND, "token was not issued for round %lld",
                     (long long)u->round_id);
        goto cleanup;
    }
    PQclear(res);
    res = NULL;
    /* The common case sends the box once: insert, and only when the token
     * already has an update compare the boxes (a retry or a reuse). */
    if ((rc = fa_store__run_in(&res, st, c, FA_STMT_UPDATE_INSERT, &up, err)) < 0)
        goto cleanup;
    if (PQntuples(res) == 1) {
        out->id = fa_store__get_i64(res, 0, 0);
        if ((rc = fa_store__get_text(out->receipt, sizeof(out->receipt), res, 0, 1, err)) < 0)
            goto cleanup;
    } else {
        PQclear(res);
        res = NULL;
        memset(&p, 0, sizeof(p));
        fa_store__param_i64(&p, u->round_id);
        fa_store__param_bytes(&p, u->token_hash, 32);
        fa_store__param_bytes(&p, u->box, u->box_len);
        if ((rc = fa_store__run_in(&res, st, c, FA_STMT_UPDATE_SAME, &p, err)) < 0)
            goto cleanup;
        if (PQntuples(res) != 1 || PQgetvalue(res, 0, 2)[0] != 1) {
            out->conflict = FA_STORE_CONFLICT_TOKEN_USED;
            rc = fa_fail(err, FA_ECONFLICT, "token was already used for a different update");
            goto cleanup;
        }
        out->duplicate = 1;
        out->id = fa_store__get_i64(res, 0, 0);
        if ((rc = fa_store__get_text(out->receipt, sizeof(out->receipt), res, 0, 1, err)) < 0)
            goto cleanup;
    }
    PQclear(res);
    res = NULL;
    memset(&p, 0, sizeof(p));
    fa_store__param_i64(&p, u->round_id);
    if ((rc = fa_store__run_in(&res, st, c, FA_STMT_ROUND_COUNT, &p, err)) < 0)
        goto cleanup;
    /* Counted after the insert, inside the transaction: over the cap, the
     * rollback in cleanup takes this update back out. */
    if (!out->duplicate && fa_store__get_i64(res, 0, 0) > max_cohort) {
        out->conflict = FA_STORE_CONFLICT_ROUND_FULL;
        rc = fa_fail(err, FA_ECONFLICT, "round %lld is full (%lld updates)", (long long)u->round_id,
                     (long long)max_cohort);
        goto cleanup;
    }
    out->cohort = fa_store__get_i64(res, 0, 0);
    rc = fa_store__tx(st, c, "COMMIT", err);
cleanup:
    PQclear(res);
    fa_store__conn_release(st, c); /* rolls back an unfinished transaction */
    return rc;
}

int fa_store_updates_page(fa_store_update *out, size_t *n_out, fa_store *st, int64_t round_id,
                          int64_t after_id, fa_error *err)
{
    fa_store_params p = {0};
    PGresult *res = NULL;
    size_t n = 0;
    int rc;

    *n_out = 0;
    memset(out, 0, FA_STORE_PAGE * sizeof(*out));
    fa_store__param_i64(&p, round_id);
    fa_store__param_i64(&p, after_id);
    if ((rc = fa_store__run_read(&res, st, FA_STMT_UPDATES_PAGE, &p, err)) < 0)
        goto cleanup;
    for (; n < (size_t)PQntuples(res) && n < FA_STORE_PAGE; n++) {
        out[n].round_id = round_id;
        if ((rc = fa_store__update_read(&out[n], res, (int)n, err)) < 0) {
            for (size_t i = 0; i <= n; i++)
                fa_store_update_done(&out[i]);
            goto cleanup;
        }
    }
    *n_out = n;
cleanup:
    PQclear(res);
    return rc;
}

int fa_store_round_cohort(int64_t *out, fa_store *st, int64_t round_id, fa_error *err)
{
    fa_store_params p = {0};
    PGresult *res = NULL;
    int rc;

    *out = 0;
    fa_store__param_i64(&p, round_id);
    if ((rc = fa_store__run_read(&res, st, FA_STMT_ROUND_COUNT, &p, err)) == FA_OK)
        *out = fa_store__get_i64(res, 0, 0);
    PQclear(res);
    return rc;
}
