/*
 * Closing a round: one transaction on one pooled connection, under an
 * advisory lock so one process closes at a time, with the round row locked
 * against new batches. The nodes' partial sums are read at once (each is
 * O(model)); ciphertexts stored before partial sums existed are read in
 * keyset pages. The commit writes the new model version, the ledger
 * entries, the round's end, the deletion of its partial sums (and any
 * ciphertexts) and the next round together.
 */
#include "store/store.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "core/round_state.h"
#include "store/internal.h"

/* Advisory lock key of the round closer ("fedaggcl"). */
#define CLOSE_LOCK_KEY 7306916001716300140LL

struct fa_store_close {
    fa_store *st;
    fa_store_conn *c;
    int64_t round_id;
    int64_t last_id; /* keyset cursor over the round's updates */
    PGresult *page;  /* current page of updates */
    int page_pos;
    int exhausted;
};

int fa_store_close_begin(fa_store_close **out, fa_store_round *round_out, fa_store *st,
                         int64_t round_id, fa_error *err)
{
    fa_store_close *cl = calloc(1, sizeof(*cl));
    PGresult *res = NULL;
    fa_store_params p = {0};
    int rc;

    *out = NULL;
    if (cl == NULL)
        return fa_fail(err, FA_ENOMEM, "out of memory closing a round");
    cl->st = st;
    cl->round_id = round_id;
    if ((rc = fa_store__conn_acquire(&cl->c, st, err)) < 0 ||
        (rc = fa_store__tx(st, cl->c, "BEGIN", err)) < 0)
        goto cleanup;
    fa_store__param_i64(&p, CLOSE_LOCK_KEY);
    if ((rc = fa_store__run_in(&res, st, cl->c, FA_STMT_CLOSE_LOCK, &p, err)) < 0)
        goto cleanup;
    if (PQgetvalue(res, 0, 0)[0] != 1) {
        rc = fa_fail(err, FA_ECONFLICT, "another process is closing a round");
        goto cleanup;
    }
    PQclear(res);
    res = NULL;
    memset(&p, 0, sizeof(p));
    fa_store__param_i64(&p, round_id);
    if ((rc = fa_store__run_in(&res, st, cl->c, FA_STMT_ROUND_LOCK, &p, err)) < 0)
        goto cleanup;
    if (PQntuples(res) == 0) {
        rc = fa_fail(err, FA_ENOTFOUND, "round %lld does not exist", (long long)round_id);
        goto cleanup;
    }
    if ((rc = fa_store__round_read(round_out, res, 0, err)) < 0)
        goto cleanup;
    if (round_out->state != FA_ROUND_OPEN) {
        rc = fa_fail(err, FA_ECONFLICT, "round %lld has already ended (%s)", (long long)round_id,
                     fa_round_state_name(round_out->state));
        goto cleanup;
    }
    *out = cl;
    cl = NULL;
cleanup:
    PQclear(res);
    fa_store_close_free(cl);
    return rc;
}

int fa_store_close_next_update(fa_store_update *out, int *done, fa_store_close *cl, fa_error *err)
{
    int rc;

    memset(out, 0, sizeof(*out));
    *done = 0;
    if (cl->page == NULL || cl->page_pos >= PQntuples(cl->page)) {
        fa_store_params p = {0};
        PQclear(cl->page);
        cl->page = NULL;
        cl->page_pos = 0;
        if (cl->exhausted) {
            *done = 1;
            return FA_OK;
        }
        fa_store__param_i64(&p, cl->round_id);
        fa_store__param_i64(&p, cl->last_id);
        if ((rc = fa_store__run_in(&cl->page, cl->st, cl->c, FA_STMT_UPDATES_PAGE, &p, err)) < 0)
            return rc;
        if (PQntuples(cl->page) < FA_STORE_PAGE)
            cl->exhausted = 1;
        if (PQntuples(cl->page) == 0) {
            *done = 1;
            return FA_OK;
        }
    }
    out->round_id = cl->round_id;
    if ((rc = fa_store__update_read(out, cl->page, cl->page_pos, err)) < 0) {
        fa_store_update_done(out);
        return rc;
    }
    cl->last_id = out->id;
    cl->page_pos++;
    return FA_OK;
}

int fa_store_close_partials(fa_store_partial **out, size_t *n_out, int64_t *legacy_out,
                            int64_t *cohort_out, fa_store_close *cl, fa_error *err)
{
    PGresult *res = NULL;
    fa_store_params p = {0};
    fa_store_partial *parts = NULL;
    size_t n = 0;
    int rc;

    *out = NULL;
    *n_out = 0;
    *legacy_out = *cohort_out = 0;
    /* Statements of their own after the round row is locked: under READ
     * COMMITTED each takes a fresh snapshot, so they see every batch whose
     * transaction held the round's share lock before ours was granted. */
    fa_store__param_i64(&p, cl->round_id);
    if ((rc = fa_store__run_in(&res, cl->st, cl->c, FA_STMT_ROUND_MEMBERS, &p, err)) < 0)
        goto cleanup;
    *legacy_out = fa_store__get_i64(res, 0, 0);
    *cohort_out = fa_store__get_i64(res, 0, 1);
    PQclear(res);
    res = NULL;
    if ((rc = fa_store__run_in(&res, cl->st, cl->c, FA_STMT_PARTIALS_OF_ROUND, &p, err)) < 0)
        goto cleanup;
    n = (size_t)PQntuples(res);
    parts = calloc(n > 0 ? n : 1, sizeof(*parts));
    if (parts == NULL) {
        rc = fa_fail(err, FA_ENOMEM, "out of memory reading the round's partial sums");
        goto cleanup;
    }
    for (size_t i = 0; i < n && rc == FA_OK; i++) {
        if ((rc = fa_store__get_fixed(parts[i].node, 16, res, (int)i, 0, err)) < 0)
            break;
        parts[i].folded = fa_store__get_i64(res, (int)i, 1);
        parts[i].receipts = fa_store__get_i64(res, (int)i, 2);
        if (!PQgetisnull(res, (int)i, 3))
            rc = fa_store__get_dup(&parts[i].sealed, &parts[i].sealed_len, res, (int)i, 3, err);
    }
    if (rc < 0)
        goto cleanup;
    *out = parts;
    *n_out = n;
    parts = NULL;
cleanup:
    fa_store_partials_free(parts, n);
    PQclear(res);
    return rc;
}

void fa_store_partials_free(fa_store_partial *p, size_t n)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(p[i].sealed);
    free(p);
}

int fa_store_close_ledger_last_release(fa_store_ledger_row *out, fa_store_close *cl, fa_error *err)
{
    PGresult *res = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = fa_store__run_in(&res, cl->st, cl->c, FA_STMT_LEDGER_LAST_RELEASE, NULL, err)) ==
        FA_OK)
        rc = fa_store__ledger_last_from(out, res, err);
    PQclear(res);
    return rc;
}

int fa_store_close_ledger_page(fa_store_ledger_row **rows_out, size_t *n_out, fa_store_close *cl,
                               int64_t after_seq, int64_t limit, fa_error *err)
{
    fa_store_params p = {0};
    PGresult *res = NULL;
    int rc;

    fa_store__param_i64(&p, after_seq);
    fa_store__param_i64(&p, limit);
    rc = fa_store__run_in(&res, cl->st, cl->c, FA_STMT_LEDGER_PAGE, &p, err);
    return fa_store__ledger_rows_from(rows_out, n_out, rc, res, err);
}

int fa_store_close_ledger_last(fa_store_ledger_row *out, fa_store_close *cl, fa_error *err)
{
    PGresult *res = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = fa_store__run_in(&res, cl->st, cl->c, FA_STMT_LEDGER_LAST, NULL, err)) == FA_OK)
        rc = fa_store__ledger_last_from(out, res, err);
    PQclear(res);
    return rc;
}

int fa_store_close_commit(fa_store_close *cl, const fa_store_close_result *r, fa_error *err)
{
    PGresult *res = NULL;
    fa_store_params p;
    int rc;

    assert(fa_round_state_can_move(FA_ROUND_OPEN, r->final_state));
    PQclear(cl->page);
    cl->page = NULL;
    if (r->model != NULL) {
        fa_store__model_params(&p, r->model);
        if ((rc = fa_store__run_in(&res, cl->st, cl->c, FA_STMT_MODEL_INSERT, &p, err)) < 0)
            goto cleanup;
        if (strcmp(PQcmdTuples(res), "1") != 0) {
            rc = fa_fail(err, FA_ECONFLICT, "model version %lld already exists",
                         (long long)r->model->version);
            goto cleanup;
        }
        PQclear(res);
        res = NULL;
    }
    if (r->budget != NULL) {
        fa_store__ledger_params(&p, r->budget);
        if ((rc = fa_store__run_in(&res, cl->st, cl->c, FA_STMT_LEDGER_APPEND, &p, err)) < 0)
            goto cleanup;
        PQclear(res);
        res = NULL;
    }
    fa_store__ledger_params(&p, r->ledger);
    if ((rc = fa_store__run_in(&res, cl->st, cl->c, FA_STMT_LEDGER_APPEND, &p, err)) < 0)
        goto cleanup;
    PQclear(res);
    res = NULL;
    memset(&p, 0, sizeof(p));
    fa_store__param_i64(&p, cl->round_id);
    fa_store__param_text(&p, fa_round_state_name(r->final_state));
    fa_store__param_i64(&p, r->model != NULL ? r->model->version : 0);
    if ((rc = fa_store__run_in(&res, cl->st, cl->c, FA_STMT_ROUND_END, &p, err)) < 0)
        goto cleanup;
    if (strcmp(PQcmdTuples(res), "1") != 0) {
        rc = fa_fail(err, FA_ECONFLICT, "round %lld has already ended", (long long)cl->round_id);
        goto cleanup;
    }
    PQclear(res);
    res = NULL;
    /* No individual update outlives its round: its partial sums (and any
     * ciphertext stored before partial sums existed) go with the same
     * commit that ends it; receipts and token hashes stay. */
    memset(&p, 0, sizeof(p));
    fa_store__param_i64(&p, cl->round_id);
    if ((rc = fa_store__run_in(&res, cl->st, cl->c, FA_STMT_PARTIALS_DELETE, &p, err)) < 0)
        goto cleanup;
    PQclear(res);
    res = NULL;
    if ((rc = fa_store__run_in(&res, cl->st, cl->c, FA_STMT_UPDATES_ERASE, &p, err)) < 0)
        goto cleanup;
    PQclear(res);
    res = NULL;
    if (r->next != NULL) {
        fa_store__round_params(&p, r->next);
        if ((rc = fa_store__run_in(&res, cl->st, cl->c, FA_STMT_ROUND_INSERT, &p, err)) < 0)
            goto cleanup;
        if (strcmp(PQcmdTuples(res), "1") != 0) {
            rc = fa_fail(err, FA_ECONFLICT, "round %lld already exists", (long long)r->next->id);
            goto cleanup;
        }
    }
    rc = fa_store__tx(cl->st, cl->c, "COMMIT", err);
cleanup:
    PQclear(res);
    return rc;
}

void fa_store_close_free(fa_store_close *cl)
{
    if (cl == NULL)
        return;
    PQclear(cl->page);
    fa_store__conn_release(cl->st, cl->c); /* rolls back anything not committed */
    free(cl);
}
