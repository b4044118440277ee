/*
 * Rounds and their participation tokens: the first model and round of a
 * fresh database, the open round, a round by id, the tokens handed out at
 * check-in, and how many stored updates are still sealed to a key.
 */
#include "store/store.h"

#include <string.h>

#include "core/round_state.h"
#include "store/internal.h"

int fa_store__round_read(fa_store_round *out, const PGresult *res, int row, fa_error *err)
{
    memset(out, 0, sizeof(*out));
    out->id = fa_store__get_i64(res, row, 0);
    out->base_version = fa_store__get_i64(res, row, 1);
    out->min_cohort = fa_store__get_i64(res, row, 3);
    out->sampling_rate = fa_store__get_f64(res, row, 4);
    out->opened_at = fa_store__get_f64(res, row, 5);
    out->deadline = fa_store__get_f64(res, row, 6);
    out->result_version = fa_store__get_i64(res, row, 7);
    out->cohort = fa_store__get_i64(res, row, 8);
    return fa_store__round_state_read(&out->state, res, row, 2, err);
}

int fa_store__round_state_read(fa_round_state *out, const PGresult *res, int row, int col,
                               fa_error *err)
{
    /* libpq ends every value, binary text included, with a zero byte; the
     * length check rejects a value with a zero byte inside. */
    const char *name = PQgetvalue(res, row, col);

    if (strlen(name) != (size_t)PQgetlength(res, row, col) || fa_round_state_parse(out, name) < 0)
        return fa_fail(err, FA_EINTERNAL, "stored round state '%.32s' is unknown", name);
    return FA_OK;
}

void fa_store__round_params(fa_store_params *p, const fa_store_round *r)
{
    memset(p, 0, sizeof(*p));
    fa_store__param_i64(p, r->id);
    fa_store__param_i64(p, r->base_version);
    fa_store__param_i64(p, r->min_cohort);
    fa_store__param_f64(p, r->sampling_rate);
    fa_store__param_f64(p, r->deadline);
}

int fa_store_bootstrap(fa_store *st, const fa_store_model *initial, const fa_store_round *round,
                       fa_error *err)
{
    fa_store_conn *c = NULL;
    PGresult *res = NULL;
    fa_store_params p;
    int rc;

    if ((rc = fa_store__conn_acquire(&c, st, err)) < 0)
        return rc;
    if ((rc = fa_store__tx(st, c, "BEGIN", err)) < 0)
        goto cleanup;
    /* ON CONFLICT DO NOTHING on both rows: a second process starting at
     * the same moment finds them written and changes nothing. */
    fa_store__model_params(&p, initial);
    if ((rc = fa_store__run_in(&res, st, c, FA_STMT_MODEL_INSERT, &p, err)) < 0)
        goto cleanup;
    int fresh = strcmp(PQcmdTuples(res), "1") == 0;
    PQclear(res);
    res = NULL;
    if (fresh) {
        fa_store__round_params(&p, round);
        if ((rc = fa_store__run_in(&res, st, c, FA_STMT_ROUND_INSERT, &p, err)) < 0)
            goto cleanup;
    }
    rc = fa_store__tx(st, c, "COMMIT", err);
cleanup:
    PQclear(res);
    fa_store__conn_release(st, c);
    return rc;
}

static int round_query(fa_store_round *out, fa_store *st, fa_stmt_id id, const fa_store_params *p,
                       const char *missing, fa_error *err)
{
    PGresult *res = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = fa_store__run_read(&res, st, id, p, err)) < 0)
        goto cleanup;
    if (PQntuples(res) == 0) {
        rc = fa_fail(err, FA_ENOTFOUND, "%s", missing);
        goto cleanup;
    }
    rc = fa_store__round_read(out, res, 0, err);
cleanup:
    PQclear(res);
    return rc;
}

int fa_store_round_active(fa_store_round *out, fa_store *st, fa_error *err)
{
    return round_query(out, st, FA_STMT_ROUND_ACTIVE, NULL, "no round is open", err);
}

int fa_store_round_get(fa_store_round *out, fa_store *st, int64_t id, fa_error *err)
{
    fa_store_params p = {0};
    fa_store__param_i64(&p, id);
    return round_query(out, st, FA_STMT_ROUND_GET, &p, "no such round", err);
}

int fa_store_token_insert(fa_store *st, int64_t round_id, const unsigned char token_hash[32],
                          const unsigned char *pseudonym_hash, fa_error *err)
{
    fa_store_params p = {0};
    PGresult *res = NULL;
    int rc;

    fa_store__param_i64(&p, round_id);
    fa_store__param_bytes(&p, token_hash, 32);
    fa_store__param_bytes(&p, pseudonym_hash, pseudonym_hash != NULL ? 32 : 0);
    rc = fa_store__run_write(&res, st, FA_STMT_TOKEN_INSERT, &p, err);
    if (rc == FA_ECONFLICT)
        rc = fa_fail(err, FA_ECONFLICT, "this device already checked in for round %lld",
                     (long long)round_id);
    else if (rc == FA_OK && strcmp(PQcmdTuples(res), "1") != 0)
        /* The round ended between reading it and this insert: the next
         * one is already open, so the check-in only needs repeating. */
        rc = fa_fail(err, FA_EUNAVAIL, "round %lld has just ended; check in again",
                     (long long)round_id);
    PQclear(res);
    return rc;
}

int fa_store_token_round(fa_store_round *round_out, unsigned char pseudonym_out[32],
                         int *has_pseudonym_out, fa_store *st, const unsigned char token_hash[32],
                         fa_error *err)
{
    fa_store_params p = {0};
    PGresult *res = NULL;
    int rc;

    memset(round_out, 0, sizeof(*round_out));
    *has_pseudonym_out = 0;
    fa_store__param_bytes(&p, token_hash, 32);
    if ((rc = fa_store__run_read(&res, st, FA_STMT_TOKEN_ROUND, &p, err)) < 0)
        goto cleanup;
    if (PQntuples(res) == 0) {
        rc = fa_fail(err, FA_ENOTFOUND, "unknown participation token");
        goto cleanup;
    }
    if ((rc = fa_store__round_read(round_out, res, 0, err)) < 0)
        goto cleanup;
    if (!PQgetisnull(res, 0, 9) && PQgetlength(res, 0, 9) == 32) {
        memcpy(pseudonym_out, PQgetvalue(res, 0, 9), 32);
        *has_pseudonym_out = 1;
    }
cleanup:
    PQclear(res);
    return rc;
}

int fa_store_updates_sealed_to(int64_t *count_out, fa_store *st, const char *key_id, fa_error *err)
{
    fa_store_params p = {0};
    PGresult *res = NULL;
    int rc;

    *count_out = 0;
    fa_store__param_text(&p, key_id);
    if ((rc = fa_store__run_read(&res, st, FA_STMT_UPDATES_SEALED_TO, &p, err)) == FA_OK)
        *count_out = fa_store__get_i64(res, 0, 0);
    PQclear(res);
    return rc;
}
