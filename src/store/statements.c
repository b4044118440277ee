/*
 * The statement table: every SQL statement fedagg runs at request time,
 * named and indexed by fa_stmt_id (store/internal.h). Prepared lazily, once
 * per connection (exec.c), so a connection to a database that is not
 * migrated yet can still answer a ping. Parameters carry explicit casts
 * because they are sent in binary.
 */
#include "store/internal.h"

/* The updates a round holds: those in its nodes' partial sums (each sum's
 * count is committed with the receipt rows it holds) plus those stored as
 * ciphertexts before partial sums existed. O(nodes), where counting the
 * receipt rows would read all of them. */
#define ROUND_COHORT                                                                               \
    "((SELECT coalesce(sum(p.folded), 0) FROM partial_sums p WHERE p.round_id = rounds.id)"        \
    " + (SELECT count(*) FROM updates u WHERE u.round_id = rounds.id AND u.node IS NULL))::bigint"
#define ROUND_COLS                                                                                 \
    "id, base_version, state, min_cohort::bigint, sampling_rate,"                                  \
    " extract(epoch FROM opened_at)::float8, extract(epoch FROM deadline)::float8,"                \
    " coalesce(result_version, 0),"                                                                \
    " " ROUND_COHORT
/* ROUND_COLS without the count of its updates (which reads every receipt
 * row of the round): what every update request reads. */
#define ROUND_COLS_BRIEF                                                                           \
    "id, base_version, state, min_cohort::bigint, sampling_rate,"                                  \
    " extract(epoch FROM opened_at)::float8, extract(epoch FROM deadline)::float8,"                \
    " coalesce(result_version, 0), 0::bigint"
#define LEDGER_COLS                                                                                \
    "seq, kind, coalesce(round_id, 0), coalesce(model_version, 0),"                                \
    " cumulative_epsilon, entry, prev_hash, hash, signature"

#define FA_STR_(x) #x
#define FA_STR(x)  FA_STR_(x)

const fa_store_stmt fa_store__stmts[FA_STMT_COUNT] = {
    [FA_STMT_PING] = {"ping", "SELECT 1", 0},
    [FA_STMT_UPDATE_INSERT] =
        {"update_insert",
         "INSERT INTO updates (round_id, token_hash, receipt, key_id, num_samples,"
         " box) VALUES ($1::bigint, $2::bytea, $3::text, $4::text, $5::bigint,"
         " $6::bytea) ON CONFLICT (round_id, token_hash) DO NOTHING"
         " RETURNING id, receipt",
         6},
    [FA_STMT_UPDATE_GET] = {"update_get",
                            "SELECT id, receipt, key_id, num_samples, box FROM updates"
                            " WHERE round_id = $1::bigint AND token_hash = $2::bytea",
                            2},
    [FA_STMT_UPDATES_PAGE] =
        {"updates_page",
         "SELECT id, token_hash, receipt, key_id, num_samples, box FROM updates"
         " WHERE round_id = $1::bigint AND id > $2::bigint AND node IS NULL"
         " ORDER BY id LIMIT " FA_STR(FA_STORE_PAGE),
         2},
    [FA_STMT_LEDGER_APPEND] = {"ledger_append",
                               "INSERT INTO privacy_ledger (seq, kind, round_id, model_version,"
                               " cumulative_epsilon, entry, prev_hash, hash, signature)"
                               " VALUES ($1::bigint, $2::text, NULLIF($3::bigint, 0),"
                               " NULLIF($4::bigint, 0), $5::float8, $6::text, $7::bytea, $8::bytea,"
                               " $9::bytea)",
                               9},
    [FA_STMT_LEDGER_LIST] = {"ledger_list",
                             "SELECT " LEDGER_COLS " FROM privacy_ledger ORDER BY seq", 0},
    [FA_STMT_LEDGER_LAST] = {"ledger_last",
                             "SELECT " LEDGER_COLS " FROM privacy_ledger ORDER BY seq DESC LIMIT 1",
                             0},
    [FA_STMT_MODEL_GET] = {"model_get",
                           "SELECT version, coalesce(parent, -1), sha256,"
                           " extract(epoch FROM created_at)::float8,"
                           " CASE WHEN $2::bool THEN snapshot END,"
                           " CASE WHEN $2::bool THEN optimizer_state END, metrics::text"
                           " FROM model_versions WHERE version = CASE WHEN $1::bigint < 0"
                           " THEN (SELECT max(version) FROM model_versions) ELSE $1::bigint END",
                           2},
    [FA_STMT_MODEL_INSERT] =
        {"model_insert",
         "INSERT INTO model_versions (version, parent, sha256, snapshot,"
         " optimizer_state, metrics) VALUES ($1::bigint, NULLIF($2::bigint, -1),"
         " $3::bytea, $4::bytea, $5::bytea, coalesce($6::text, '{}')::jsonb)"
         " ON CONFLICT DO NOTHING",
         6},
    [FA_STMT_ROUND_INSERT] = {"round_insert",
                              "INSERT INTO rounds (id, base_version, min_cohort, sampling_rate,"
                              " deadline) VALUES ($1::bigint, $2::bigint, $3::bigint, $4::float8,"
                              " to_timestamp($5::float8)) ON CONFLICT DO NOTHING",
                              5},
    [FA_STMT_ROUND_ACTIVE] = {"round_active",
                              "SELECT " ROUND_COLS " FROM rounds WHERE state = 'open'", 0},
    [FA_STMT_ROUND_GET] = {"round_get",
                           "SELECT " ROUND_COLS_BRIEF " FROM rounds WHERE id = $1::bigint", 1},
    [FA_STMT_ROUND_LOCK_SHARE] = {"round_lock_share",
                                  "SELECT state, extract(epoch FROM deadline)::float8,"
                                  " " ROUND_COHORT
                                  " FROM rounds WHERE id = $1::bigint FOR SHARE NOWAIT",
                                  1},
    [FA_STMT_ROUND_LOCK] = {"round_lock",
                            "SELECT " ROUND_COLS " FROM rounds WHERE id = $1::bigint FOR UPDATE",
                            1},
    [FA_STMT_ROUND_END] = {"round_end",
                           "UPDATE rounds SET state = $2::text, ended_at = now(),"
                           " result_version = NULLIF($3::bigint, 0)"
                           " WHERE id = $1::bigint AND state = 'open'",
                           3},
    [FA_STMT_TOKEN_INSERT] = {"token_insert",
                              "INSERT INTO round_tokens (round_id, token_hash, pseudonym_hash)"
                              " SELECT $1::bigint, $2::bytea, $3::bytea WHERE EXISTS"
                              " (SELECT 1 FROM rounds WHERE id = $1::bigint AND state = 'open')",
                              3},
    /* The newest round a token was issued for, as equalities only: one
     * probe of (token_hash, round_id) for the round, one for the row, one
     * for the round row, with any plan. (An ORDER BY round_id DESC LIMIT 1
     * let a planner without statistics scan the primary key backwards and
     * test every token of the round.) */
    [FA_STMT_TOKEN_ROUND] = {"token_round",
                             "SELECT " ROUND_COLS_BRIEF ", t.pseudonym_hash FROM round_tokens t"
                             " JOIN rounds ON rounds.id = t.round_id WHERE t.token_hash = $1::bytea"
                             " AND t.round_id = (SELECT max(round_id) FROM round_tokens"
                             " WHERE token_hash = $1::bytea)",
                             1},
    [FA_STMT_CLOSE_LOCK] = {"close_lock", "SELECT pg_try_advisory_xact_lock($1::bigint)", 1},
    [FA_STMT_MODEL_LIST] = {"model_list",
                            "SELECT version, sha256 FROM model_versions ORDER BY version", 0},
    [FA_STMT_LEDGER_LAST_RELEASE] = {"ledger_last_release",
                                     "SELECT " LEDGER_COLS
                                     " FROM privacy_ledger WHERE kind = 'release'"
                                     " ORDER BY seq DESC LIMIT 1",
                                     0},
    [FA_STMT_LEDGER_PAGE] = {"ledger_page",
                             "SELECT " LEDGER_COLS " FROM privacy_ledger WHERE seq > $1::bigint"
                             " ORDER BY seq LIMIT $2::bigint",
                             2},
    [FA_STMT_UPDATES_ERASE] = {"updates_erase",
                               "UPDATE updates SET box = ''::bytea WHERE round_id = $1::bigint"
                               " AND box <> ''::bytea",
                               1},
    [FA_STMT_UPDATES_SEALED_TO] = {"updates_sealed_to",
                                   "SELECT count(*) FROM updates WHERE key_id = $1::text"
                                   " AND box <> ''::bytea",
                                   1},
    /* A batch's receipt rows: $2 packs the 32-byte token hashes then the
     * 32-byte ciphertext digests of item i at offset 64 i; $3, $4, $5 are
     * comma-separated receipts, key ids and sample counts (hex, [0-9a-z]
     * and digits: no commas inside). */
    [FA_STMT_RECEIPTS_INSERT] =
        {"receipts_insert",
         "INSERT INTO updates (round_id, token_hash, seal_id, receipt, key_id, num_samples,"
         " node, box) SELECT $1::bigint, substring($2::bytea FROM (t.i::int - 1) * 64 + 1 FOR 32),"
         " substring($2::bytea FROM (t.i::int - 1) * 64 + 33 FOR 32), t.receipt, t.key_id, t.ns,"
         " $6::bytea, ''::bytea FROM unnest(string_to_array($3::text, ','),"
         " string_to_array($4::text, ','), string_to_array($5::text, ',')::bigint[])"
         " WITH ORDINALITY AS t(receipt, key_id, ns, i) ORDER BY t.i"
         " ON CONFLICT (round_id, token_hash) DO NOTHING RETURNING token_hash",
         6},
    /* The stored rows of the tokens packed in $2 (32 bytes each): one index
     * lookup per token (the LIMIT keeps the planner from turning this into
     * a scan of the round's rows under a generic plan). */
    [FA_STMT_RECEIPTS_EXISTING] =
        {"receipts_existing",
         "SELECT u.token_hash, u.receipt,"
         " coalesce(u.seal_id, sha256(substring(u.box FROM 1 FOR 48)))"
         " FROM generate_series(0, octet_length($2::bytea) / 32 - 1) AS k, LATERAL"
         " (SELECT token_hash, receipt, seal_id, box FROM updates WHERE round_id = $1::bigint"
         " AND token_hash = substring($2::bytea FROM k * 32 + 1 FOR 32) LIMIT 1) AS u",
         2},
    [FA_STMT_PARTIAL_GET] = {"partial_get",
                             "SELECT folded, sealed FROM partial_sums WHERE round_id = $1::bigint"
                             " AND node = $2::bytea FOR UPDATE",
                             2},
    /* Inserts the row when $3 = 0, replaces it when it holds $3 updates;
     * anything else writes nothing (0 rows). */
    [FA_STMT_PARTIAL_PUT] =
        {"partial_put",
         "WITH upd AS (UPDATE partial_sums SET folded = $4::bigint, sealed = $5::bytea,"
         " updated_at = now() WHERE round_id = $1::bigint AND node = $2::bytea"
         " AND folded = $3::bigint AND $3::bigint > 0 RETURNING 1),"
         " ins AS (INSERT INTO partial_sums (round_id, node, folded, sealed)"
         " SELECT $1::bigint, $2::bytea, $4::bigint, $5::bytea WHERE $3::bigint = 0"
         " ON CONFLICT (round_id, node) DO NOTHING RETURNING 1)"
         " SELECT (SELECT count(*) FROM upd) + (SELECT count(*) FROM ins)",
         5},
    [FA_STMT_PARTIALS_OF_ROUND] =
        {"partials_of_round",
         "SELECT coalesce(p.node, c.node), coalesce(p.folded, 0), coalesce(c.n, 0), p.sealed"
         " FROM (SELECT node, folded, sealed FROM partial_sums WHERE round_id = $1::bigint) p"
         " FULL JOIN (SELECT node, count(*) AS n FROM updates WHERE round_id = $1::bigint"
         " AND node IS NOT NULL GROUP BY node) c ON p.node = c.node ORDER BY 1",
         1},
    [FA_STMT_ROUND_MEMBERS] = {"round_members",
                               "SELECT count(*) FILTER (WHERE node IS NULL), count(*)"
                               " FROM updates WHERE round_id = $1::bigint",
                               1},
    [FA_STMT_PARTIALS_DELETE] = {"partials_delete",
                                 "DELETE FROM partial_sums WHERE round_id = $1::bigint", 1},
};
