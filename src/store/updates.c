/*
 * Update rows: one per participation token and round. The request path
 * writes them in batches (batch.c); the single-row writer and reader here
 * serve tools and tests, and rows stored as ciphertexts before partial
 * sums existed.
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
