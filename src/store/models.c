/*
 * Model versions: the published snapshots with their optimizer state and
 * metrics, by version or the newest, and the list of versions with digests.
 */
#include "store/store.h"

#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

int fa_store_model_get(fa_store_model *out, fa_store *st, int64_t version, int with_bytes,
                       fa_error *err)
{
    fa_store_params p = {0};
    PGresult *res = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    fa_store__param_i64(&p, version);
    fa_store__param_bool(&p, with_bytes);
    if ((rc = fa_store__run_read(&res, st, FA_STMT_MODEL_GET, &p, err)) < 0)
        goto cleanup;
    if (PQntuples(res) == 0) {
        rc = version < 0 ? fa_fail(err, FA_ENOTFOUND, "no model version is published yet")
                         : fa_fail(err, FA_ENOTFOUND, "model version %lld does not exist",
                                   (long long)version);
        goto cleanup;
    }
    out->version = fa_store__get_i64(res, 0, 0);
    out->parent = fa_store__get_i64(res, 0, 1);
    out->created_at = fa_store__get_f64(res, 0, 3);
    if ((rc = fa_store__get_fixed(out->sha256, 32, res, 0, 2, err)) < 0)
        goto cleanup;
    if (with_bytes &&
        (rc = fa_store__get_dup(&out->snapshot, &out->snapshot_len, res, 0, 4, err)) < 0)
        goto cleanup;
    if (with_bytes && !PQgetisnull(res, 0, 5) &&
        (rc = fa_store__get_dup(&out->optimizer_state, &out->optimizer_state_len, res, 0, 5, err)) <
            0)
        goto cleanup;
    if (!PQgetisnull(res, 0, 6) &&
        (rc = fa_store__get_dup((unsigned char **)&out->metrics, NULL, res, 0, 6, err)) < 0)
        goto cleanup;
cleanup:
    PQclear(res);
    if (rc < 0)
        fa_store_model_done(out);
    return rc;
}

void fa_store_model_done(fa_store_model *m)
{
    if (m == NULL)
        return;
    free(m->snapshot);
    free(m->optimizer_state);
    free(m->metrics);
    m->snapshot = m->optimizer_state = NULL;
    m->metrics = NULL;
}

int fa_store_model_list(fa_store_version **out, size_t *n_out, fa_store *st, fa_error *err)
{
    PGresult *res = NULL;
    fa_store_version *v = NULL;
    size_t n = 0;
    int rc;

    *out = NULL;
    *n_out = 0;
    if ((rc = fa_store__run_read(&res, st, FA_STMT_MODEL_LIST, NULL, err)) < 0)
        goto cleanup;
    n = (size_t)PQntuples(res);
    v = calloc(n > 0 ? n : 1, sizeof(*v));
    if (v == NULL) {
        rc = fa_fail(err, FA_ENOMEM, "out of memory reading the model versions");
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++) {
        v[i].version = fa_store__get_i64(res, (int)i, 0);
        if ((rc = fa_store__get_fixed(v[i].sha256, 32, res, (int)i, 1, err)) < 0)
            goto cleanup;
    }
    *out = v;
    *n_out = n;
    v = NULL;
cleanup:
    free(v);
    PQclear(res);
    return rc;
}

void fa_store__model_params(fa_store_params *p, const fa_store_model *m)
{
    memset(p, 0, sizeof(*p));
    fa_store__param_i64(p, m->version);
    fa_store__param_i64(p, m->parent);
    fa_store__param_bytes(p, m->sha256, 32);
    fa_store__param_bytes(p, m->snapshot, m->snapshot_len);
    fa_store__param_bytes(p, m->optimizer_state, m->optimizer_state_len);
    fa_store__param_bytes(p, m->metrics, m->metrics != NULL ? strlen(m->metrics) : 0);
}
