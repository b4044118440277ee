#include "aggregator/audit.h"

#include <stdlib.h>
#include <string.h>

#include "core/util.h"

/*
 * The ledger and the model versions are read by two statements, so a round
 * close committing between them (it adds a version and its release in one
 * transaction) can make a consistent database look inconsistent for one
 * read: a version seen without its release. Reading again settles it; a
 * database that disagrees with itself on every attempt really does.
 */
#define AUDIT_ATTEMPTS 3

void fa_audit_record_of(fa_ledger_record *out, const fa_store_ledger_row *row)
{
    memset(out, 0, sizeof(*out));
    out->seq = row->seq;
    out->kind = row->kind;
    out->round_id = row->round_id;
    out->model_version = row->model_version;
    out->cumulative_epsilon = row->cumulative_epsilon;
    out->entry = row->entry;
    out->entry_len = row->entry != NULL ? strlen(row->entry) : 0;
    memcpy(out->prev_hash, row->prev_hash, sizeof(out->prev_hash));
    memcpy(out->hash, row->hash, sizeof(out->hash));
    memcpy(out->signature, row->signature, sizeof(out->signature));
}

/* Views stored rows as verifier records; the records borrow the rows' text. */
static int records_of(fa_ledger_record **out, const fa_store_ledger_row *rows, size_t n,
                      fa_error *err)
{
    fa_ledger_record *recs = calloc(n > 0 ? n : 1, sizeof(*recs));

    *out = NULL;
    if (recs == NULL)
        return fa_fail(err, FA_ENOMEM, "out of memory reading the ledger");
    for (size_t i = 0; i < n; i++)
        fa_audit_record_of(&recs[i], &rows[i]);
    *out = recs;
    return FA_OK;
}

static int versions_of(fa_ledger_version **out, const fa_store_version *v, size_t n, fa_error *err)
{
    fa_ledger_version *lv = calloc(n > 0 ? n : 1, sizeof(*lv));

    *out = NULL;
    if (lv == NULL)
        return fa_fail(err, FA_ENOMEM, "out of memory reading the model versions");
    for (size_t i = 0; i < n; i++) {
        lv[i].version = v[i].version;
        memcpy(lv[i].sha256, v[i].sha256, sizeof(lv[i].sha256));
    }
    *out = lv;
    return FA_OK;
}

int fa_audit_ledger(fa_ledger_report *out, fa_store_ledger_row **rows_out, size_t *n_out,
                    fa_store *st, const unsigned char sign_pk[FA_LEDGER_PK_BYTES], fa_error *err)
{
    fa_store_ledger_row *rows = NULL;
    fa_store_version *sv = NULL;
    fa_ledger_record *recs = NULL;
    fa_ledger_version *lv = NULL;
    size_t n = 0, nv = 0;
    int rc = FA_OK;

    memset(out, 0, sizeof(*out));
    if (rows_out != NULL) {
        *rows_out = NULL;
        *n_out = 0;
    }
    for (int attempt = 1; attempt <= AUDIT_ATTEMPTS; attempt++) {
        fa_store_ledger_rows_free(rows, n);
        free(sv);
        free(recs);
        free(lv);
        rows = NULL;
        sv = NULL;
        recs = NULL;
        lv = NULL;
        n = nv = 0;
        /* The ledger first: every version it names was committed with its
         * entry, so it is in the versions read afterwards. */
        if ((rc = fa_store_ledger_list(&rows, &n, st, err)) < 0 ||
            (rc = fa_store_model_list(&sv, &nv, st, err)) < 0 ||
            (rc = records_of(&recs, rows, n, err)) < 0 || (rc = versions_of(&lv, sv, nv, err)) < 0)
            goto cleanup;
        /* The chain is one statement's snapshot: a failure there is real. */
        if ((rc = fa_ledger_verify(out, recs, n, sign_pk, err)) < 0)
            goto cleanup;
        rc = fa_ledger_verify_versions(out, recs, n, lv, nv, err);
        if (rc != FA_ECONFLICT)
            break;
    }
cleanup:
    if (rows_out != NULL) {
        *rows_out = rows;
        *n_out = n;
        rows = NULL;
    }
    fa_store_ledger_rows_free(rows, n);
    free(sv);
    free(recs);
    free(lv);
    return rc;
}

json_t *fa_audit_row_json(const fa_store_ledger_row *row)
{
    char prev[65], hash[65], sig[129];
    const char *text = row->entry != NULL ? row->entry : "";
    json_t *entry = json_loads(text, 0, NULL);

    fa_hex_encode(prev, row->prev_hash, 32);
    fa_hex_encode(hash, row->hash, 32);
    fa_hex_encode(sig, row->signature, 64);
    return json_pack("{s:I,s:s,s:I,s:I,s:f,s:o,s:s,s:s,s:s,s:s}", "seq", (json_int_t)row->seq,
                     "kind", row->kind, "roundId", (json_int_t)row->round_id, "modelVersion",
                     (json_int_t)row->model_version, "cumulativeEpsilon", row->cumulative_epsilon,
                     "entry", entry != NULL ? entry : json_string(text), "text", text, "prevHash",
                     prev, "hash", hash, "signature", sig);
}
