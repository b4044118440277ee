/*
 * The epsilon ledger's rows: appended one at a time, read whole, by page
 * or the newest. The store keeps the rows; their meaning and verification
 * belong to privacy/ledger.h.
 */
#include "store/store.h"

#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

void fa_store__ledger_params(fa_store_params *p, const fa_store_ledger_row *row)
{
    memset(p, 0, sizeof(*p));
    fa_store__param_i64(p, row->seq);
    fa_store__param_text(p, row->kind);
    fa_store__param_i64(p, row->round_id);
    fa_store__param_i64(p, row->model_version);
    fa_store__param_f64(p, row->cumulative_epsilon);
    fa_store__param_text(p, row->entry);
    fa_store__param_bytes(p, row->prev_hash, 32);
    fa_store__param_bytes(p, row->hash, 32);
    fa_store__param_bytes(p, row->signature, 64);
}

int fa_store_ledger_append(fa_store *st, const fa_store_ledger_row *row, fa_error *err)
{
    fa_store_params p;
    PGresult *res = NULL;
    int rc;

    if (row->entry == NULL || strlen(row->entry) > 16u * 1024 * 1024)
        return fa_fail(err, FA_EINVAL, "ledger entry text is missing or too large");
    fa_store__ledger_params(&p, row);
    rc = fa_store__run_write(&res, st, FA_STMT_LEDGER_APPEND, &p, err);
    PQclear(res);
    return rc;
}

static int ledger_row_read(fa_store_ledger_row *out, const PGresult *res, int row, fa_error *err)
{
    int rc;

    memset(out, 0, sizeof(*out));
    out->seq = fa_store__get_i64(res, row, 0);
    out->round_id = fa_store__get_i64(res, row, 2);
    out->model_version = fa_store__get_i64(res, row, 3);
    out->cumulative_epsilon = fa_store__get_f64(res, row, 4);
    if ((rc = fa_store__get_text(out->kind, sizeof(out->kind), res, row, 1, err)) < 0 ||
        (rc = fa_store__get_dup((unsigned char **)&out->entry, NULL, res, row, 5, err)) < 0 ||
        (rc = fa_store__get_fixed(out->prev_hash, 32, res, row, 6, err)) < 0 ||
        (rc = fa_store__get_fixed(out->hash, 32, res, row, 7, err)) < 0 ||
        (rc = fa_store__get_fixed(out->signature, 64, res, row, 8, err)) < 0) {
        fa_store_ledger_row_done(out);
        return rc;
    }
    return FA_OK;
}

/* Every row of a ledger query result into a new array (rc: the query's). */
int fa_store__ledger_rows_from(fa_store_ledger_row **rows_out, size_t *n_out, int rc, PGresult *res,
                               fa_error *err)
{
    fa_store_ledger_row *rows = NULL;
    size_t n = 0;

    *rows_out = NULL;
    *n_out = 0;
    if (rc < 0)
        goto cleanup;
    n = (size_t)PQntuples(res);
    rows = calloc(n > 0 ? n : 1, sizeof(*rows));
    if (rows == NULL) {
        rc = fa_fail(err, FA_ENOMEM, "out of memory reading the ledger");
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++)
        if ((rc = ledger_row_read(&rows[i], res, (int)i, err)) < 0)
            goto cleanup;
    *rows_out = rows;
    *n_out = n;
    rows = NULL;
cleanup:
    fa_store_ledger_rows_free(rows, n);
    PQclear(res);
    return rc;
}

int fa_store_ledger_list(fa_store_ledger_row **rows_out, size_t *n_out, fa_store *st, fa_error *err)
{
    PGresult *res = NULL;
    const int rc = fa_store__run_read(&res, st, FA_STMT_LEDGER_LIST, NULL, err);

    return fa_store__ledger_rows_from(rows_out, n_out, rc, res, err);
}

int fa_store_ledger_page(fa_store_ledger_row **rows_out, size_t *n_out, fa_store *st,
                         int64_t after_seq, int64_t limit, fa_error *err)
{
    fa_store_params p = {0};
    PGresult *res = NULL;
    int rc;

    fa_store__param_i64(&p, after_seq);
    fa_store__param_i64(&p, limit);
    rc = fa_store__run_read(&res, st, FA_STMT_LEDGER_PAGE, &p, err);
    return fa_store__ledger_rows_from(rows_out, n_out, rc, res, err);
}

int fa_store__ledger_last_from(fa_store_ledger_row *out, const PGresult *res, fa_error *err)
{
    memset(out, 0, sizeof(*out));
    if (PQntuples(res) == 0)
        return fa_fail(err, FA_ENOTFOUND, "the ledger is empty");
    return ledger_row_read(out, res, 0, err);
}

int fa_store_ledger_last(fa_store_ledger_row *out, fa_store *st, fa_error *err)
{
    PGresult *res = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = fa_store__run_read(&res, st, FA_STMT_LEDGER_LAST, NULL, err)) == FA_OK)
        rc = fa_store__ledger_last_from(out, res, err);
    PQclear(res);
    return rc;
}

void fa_store_ledger_row_done(fa_store_ledger_row *row)
{
    if (row == NULL)
        return;
    free(row->entry);
    row->entry = NULL;
}

void fa_store_ledger_rows_free(fa_store_ledger_row *rows, size_t n)
{
    if (rows == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        fa_store_ledger_row_done(&rows[i]);
    free(rows);
}
