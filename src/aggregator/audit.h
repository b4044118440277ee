/*
 * The ledger audit: reads the epsilon ledger and the published model
 * versions from the store and checks them with the privacy verifier
 * (fa_ledger_verify, then fa_ledger_verify_versions). Shared by
 * GET /api/privacy/budget and `fedagg ledger verify`, so both answer from
 * the same checks. Keeps no state; any thread (the store is thread-safe).
 */
#ifndef FA_AGGREGATOR_AUDIT_H
#define FA_AGGREGATOR_AUDIT_H

#include <stddef.h>

#include <jansson.h>

#include "core/error.h"
#include "privacy/ledger.h"
#include "store/store.h"

/*
 * Reads every ledger row and every model version of st and verifies them
 * against the ledger signing key sign_pk. *out is the verifier's report.
 * When rows_out is not NULL the rows read are handed to the caller
 * (fa_store_ledger_rows_free(*rows_out, *n_out)), also on FA_ECONFLICT.
 * FA_OK when the ledger holds; FA_ECONFLICT when it does not (out->bad_seq,
 * out->reason; err reads "ledger entry 17: hash mismatch"); FA_EUNAVAIL
 * (database), FA_ENOMEM.
 */
/* Views one stored row as a verifier record; out borrows the row's text. */
void fa_audit_record_of(fa_ledger_record *out, const fa_store_ledger_row *row);

/*
 * One stored row as the ledger's public JSON form, the only one: GET
 * /api/privacy/ledger pages, `fedagg ledger show --json` and
 * `fedagg ledger export --format json` all write it: {"seq", "kind",
 * "roundId", "modelVersion", "cumulativeEpsilon", "entry" (the text
 * parsed), "text" (exactly as signed), "prevHash", "hash", "signature"},
 * digests and signature in hex. A new reference, NULL when out of memory.
 */
json_t *fa_audit_row_json(const fa_store_ledger_row *row);

int fa_audit_ledger(fa_ledger_report *out, fa_store_ledger_row **rows_out, size_t *n_out,
                    fa_store *st, const unsigned char sign_pk[FA_LEDGER_PK_BYTES],
                    fa_error *err) FA_MUST_CHECK;

#endif
