/* The store against a real PostgreSQL: bytea round trips, conflict mapping,
 * the ledger's append-only trigger. Each test gets its own database. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "core/digest.h"
#include "core/util.h"
#include "pgtest.h"
#include "store/internal.h"
#include "store/store.h"

static char g_conninfo[1024];
static fa_store *g_st;

static void setup(void)
{
    fa_error err = FA_ERROR_INIT;
    PGconn *pg;

    fa_pgtest_create_db(g_conninfo, sizeof(g_conninfo));
    cr_assert_eq(fa_store_open(&g_st, g_conninfo, 4, &err), FA_OK, "%s", err.msg);
    /* A round needs a base model version to point at. */
    pg = fa_pgtest_connect(g_conninfo);
    free(fa_pgtest_query(pg, "INSERT INTO model_versions (version, sha256, snapshot)"
                             " VALUES (0, decode(repeat('00', 32), 'hex'), '\\x00')"));
    free(fa_pgtest_query(pg, "INSERT INTO rounds (id, base_version, min_cohort, deadline)"
                             " VALUES (1, 0, 3, now() + interval '1 hour')"));
    PQfinish(pg);
}

static void teardown(void)
{
    fa_store_free(g_st);
    g_st = NULL;
}

TestSuite(store, .init = setup, .fini = teardown, .timeout = 120);

static fa_store_update_in make_update(unsigned char tok, const unsigned char *box, size_t len)
{
    fa_store_update_in u;

    memset(&u, 0, sizeof(u));
    u.round_id = 1;
    memset(u.token_hash, tok, 32);
    (void)snprintf(u.receipt, sizeof(u.receipt), "r-%02x", tok);
    (void)snprintf(u.key_id, sizeof(u.key_id), "k1");
    u.num_samples = 12;
    u.box = box;
    u.box_len = len;
    return u;
}

Test(store, ping)
{
    fa_error err = FA_ERROR_INIT;
    cr_assert_eq(fa_store_ping(g_st, &err), FA_OK, "%s", err.msg);
}

Test(store, four_mib_bytea_round_trips_byte_for_byte)
{
    size_t len = 4u * 1024 * 1024;
    unsigned char *box = malloc(len);
    fa_store_update_in u;
    fa_store_update back;
    fa_error err = FA_ERROR_INIT;
    int64_t id = 0;

    cr_assert_not_null(box);
    /* Every byte value, NULs and backslashes included, in an irregular pattern. */
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        box[i] = (unsigned char)x;
    }
    box[0] = 0;
    box[1] = '\\';
    u = make_update(7, box, len);
    cr_assert_eq(fa_store_update_insert(&id, g_st, &u, &err), FA_OK, "%s", err.msg);
    cr_assert_gt(id, 0);
    cr_assert_eq(fa_store_update_get(&back, g_st, 1, u.token_hash, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(back.box_len, len);
    cr_assert_eq(memcmp(back.box, box, len), 0, "bytes differ");
    cr_assert_eq(back.id, id);
    cr_assert_str_eq(back.receipt, "r-07");
    cr_assert_str_eq(back.key_id, "k1");
    cr_assert_eq(back.num_samples, 12);
    fa_store_update_done(&back);
    free(box);
}

Test(store, duplicate_round_token_is_conflict)
{
    unsigned char box[3] = {1, 2, 3};
    fa_store_update_in u = make_update(9, box, 3);
    fa_error err = FA_ERROR_INIT;
    int64_t id = 0;
    char *count;
    PGconn *pg;

    cr_assert_eq(fa_store_update_insert(&id, g_st, &u, &err), FA_OK, "%s", err.msg);
    (void)snprintf(u.receipt, sizeof(u.receipt), "another");
    cr_assert_eq(fa_store_update_insert(&id, g_st, &u, &err), FA_ECONFLICT, "%s", err.msg);
    cr_assert_eq(err.code, FA_ECONFLICT);
    pg = fa_pgtest_connect(g_conninfo);
    count = fa_pgtest_query(pg, "SELECT count(*) FROM updates");
    cr_assert_str_eq(count, "1");
    free(count);
    PQfinish(pg);
}

Test(store, missing_update_is_not_found)
{
    unsigned char tok[32] = {0};
    fa_store_update back;
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_store_update_get(&back, g_st, 1, tok, &err), FA_ENOTFOUND);
}

Test(store, unknown_round_is_rejected_as_invalid)
{
    unsigned char box[1] = {1};
    fa_store_update_in u = make_update(1, box, 1);
    fa_error err = FA_ERROR_INIT;
    int64_t id = 0;

    u.round_id = 99;
    cr_assert_eq(fa_store_update_insert(&id, g_st, &u, &err), FA_EINVAL, "%s", err.msg);
}

Test(store, round_states_are_read_as_enum_values)
{
    fa_store_round r;
    fa_error err = FA_ERROR_INIT;
    PGconn *pg;

    cr_assert_eq(fa_store_round_get(&r, g_st, 1, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(r.state, FA_ROUND_OPEN);
    pg = fa_pgtest_connect(g_conninfo);
    free(fa_pgtest_query(pg, "UPDATE rounds SET state = 'abandoned', ended_at = now()"
                             " WHERE id = 1"));
    PQfinish(pg);
    cr_assert_eq(fa_store_round_get(&r, g_st, 1, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(r.state, FA_ROUND_ABANDONED);
}

Test(store, unknown_round_state_is_an_internal_error)
{
    /* The schema's check admits only the spellings of core/round_state.h;
     * a row with another is reported by name, never read as some state. */
    fa_store_batch *b = NULL;
    fa_store_conflict conflict;
    int64_t cohort;
    fa_store_round r;
    fa_error err = FA_ERROR_INIT;
    PGconn *pg;

    pg = fa_pgtest_connect(g_conninfo);
    free(fa_pgtest_query(pg, "ALTER TABLE rounds DROP CONSTRAINT rounds_state_check"));
    free(fa_pgtest_query(pg, "UPDATE rounds SET state = 'closing' WHERE id = 1"));
    PQfinish(pg);
    cr_assert_eq(fa_store_round_get(&r, g_st, 1, &err), FA_EINTERNAL, "%s", err.msg);
    cr_assert(strstr(err.msg, "'closing'") != NULL, "%s", err.msg);
    fa_error_clear(&err);
    cr_assert_eq(fa_store_batch_begin(&b, &conflict, &cohort, g_st, 1, 0.0, &err), FA_EINTERNAL,
                 "%s", err.msg);
    cr_assert_null(b);
    cr_assert(strstr(err.msg, "'closing'") != NULL, "%s", err.msg);
}

static void append_row(int64_t seq)
{
    fa_store_ledger_row row;
    fa_error err = FA_ERROR_INIT;

    memset(&row, 0, sizeof(row));
    row.seq = seq;
    (void)snprintf(row.kind, sizeof(row.kind), "release");
    row.round_id = seq;
    row.model_version = seq;
    row.cumulative_epsilon = 0.5 * (double)seq;
    row.entry = "{\"test\":true}";
    memset(row.prev_hash, (int)seq - 1, 32);
    memset(row.hash, (int)seq, 32);
    memset(row.signature, 0xee, 64);
    cr_assert_eq(fa_store_ledger_append(g_st, &row, &err), FA_OK, "%s", err.msg);
}

Test(store, ledger_rows_round_trip)
{
    fa_store_ledger_row *rows = NULL, last;
    size_t n = 0;
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_store_ledger_last(&last, g_st, &err), FA_ENOTFOUND);
    append_row(1);
    append_row(2);
    cr_assert_eq(fa_store_ledger_list(&rows, &n, g_st, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(n, 2);
    cr_assert_eq(rows[1].seq, 2);
    cr_assert_str_eq(rows[1].kind, "release");
    cr_assert_float_eq(rows[1].cumulative_epsilon, 1.0, 0);
    cr_assert_str_eq(rows[0].entry, "{\"test\":true}");
    cr_assert_eq(rows[1].hash[5], 2);
    fa_store_ledger_rows_free(rows, n);
    cr_assert_eq(fa_store_ledger_last(&last, g_st, &err), FA_OK);
    cr_assert_eq(last.seq, 2);
    fa_store_ledger_row_done(&last);
}

Test(store, ledger_seq_taken_is_conflict)
{
    fa_store_ledger_row row;
    fa_error err = FA_ERROR_INIT;

    append_row(1);
    memset(&row, 0, sizeof(row));
    row.seq = 1;
    (void)snprintf(row.kind, sizeof(row.kind), "refusal");
    row.entry = "{}";
    memset(row.hash, 0x55, 32);
    cr_assert_eq(fa_store_ledger_append(g_st, &row, &err), FA_ECONFLICT, "%s", err.msg);
}

Test(store, ledger_update_and_delete_fail)
{
    PGconn *pg;
    char msg[512];

    append_row(1);
    pg = fa_pgtest_connect(g_conninfo);
    cr_assert_null(
        fa_pgtest_try(pg, "UPDATE privacy_ledger SET cumulative_epsilon = 0", msg, sizeof(msg)));
    cr_assert(strstr(msg, "append-only") != NULL, "%s", msg);
    cr_assert_null(fa_pgtest_try(pg, "DELETE FROM privacy_ledger", msg, sizeof(msg)));
    cr_assert(strstr(msg, "append-only") != NULL, "%s", msg);
    cr_assert_null(fa_pgtest_try(pg, "TRUNCATE privacy_ledger", msg, sizeof(msg)));
    char *v = fa_pgtest_query(pg, "SELECT cumulative_epsilon FROM privacy_ledger WHERE seq = 1");
    cr_assert_str_eq(v, "0.5");
    free(v);
    PQfinish(pg);
}

/* ---------------------------------------------------------- group commit */

static fa_store_batch_item item(unsigned char tok, unsigned char seal, const char *receipt)
{
    fa_store_batch_item it;

    memset(&it, 0, sizeof(it));
    memset(it.token_hash, tok, 32);
    memset(it.seal_id, seal, 32);
    (void)snprintf(it.receipt, sizeof(it.receipt), "%s", receipt);
    (void)snprintf(it.key_id, sizeof(it.key_id), "k1");
    it.num_samples = 5;
    return it;
}

static const unsigned char NODE_A[16] = {0xa};
static const unsigned char NODE_B[16] = {0xb};

/* One batch of items for node, committed; returns how many were new. */
static size_t run_batch(fa_store_batch_item *items, size_t n, const unsigned char node[16],
                        int64_t max_cohort)
{
    fa_store_batch *b = NULL;
    fa_store_conflict conflict;
    int64_t cohort;
    size_t fresh = 0;
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_store_batch_begin(&b, &conflict, &cohort, g_st, 1, 0.0, &err), FA_OK, "%s",
                 err.msg);
    cr_assert_eq(fa_store_batch_receipts(b, &fresh, items, n, node, max_cohort, &err), FA_OK, "%s",
                 err.msg);
    /* The node's partial sum holds them, committed with their receipts. */
    unsigned char *sealed = NULL;
    size_t len = 0;
    int64_t held = 0;
    int rc = fa_store_batch_partial_get(&sealed, &len, &held, b, node, &err);
    cr_assert(rc == FA_OK || rc == FA_ENOTFOUND, "%s", err.msg);
    free(sealed);
    if (fresh > 0)
        cr_assert_eq(fa_store_batch_partial_put(b, node, held, held + (int64_t)fresh,
                                                (const unsigned char *)"s", 1, &err),
                     FA_OK, "%s", err.msg);
    cr_assert_eq(fa_store_batch_commit(b, &err), FA_OK, "%s", err.msg);
    fa_store_batch_free(b);
    return fresh;
}

Test(store, a_batch_tells_new_retry_reuse_and_full_apart)
{
    fa_store_batch_item first[3] = {item(1, 1, "aa01"), item(2, 2, "aa02"), item(1, 1, "aa03")};
    cr_assert_eq(run_batch(first, 3, NODE_A, 100), 2);
    cr_assert_eq(first[0].outcome, FA_STORE_ITEM_NEW);
    cr_assert_eq(first[1].outcome, FA_STORE_ITEM_NEW);
    /* The same token and box twice in one batch: the second is a retry. */
    cr_assert_eq(first[2].outcome, FA_STORE_ITEM_DUPLICATE);
    cr_assert_str_eq(first[2].receipt, "aa01");

    /* Later batches (another node too): an identical retry gets the first
     * receipt, a different box under a used token is refused, and past
     * max_cohort the rest are turned away in order. */
    fa_store_batch_item second[4] = {item(2, 2, "bb01"), item(1, 9, "bb02"), item(3, 3, "bb03"),
                                     item(4, 4, "bb04")};
    cr_assert_eq(run_batch(second, 4, NODE_B, 3), 1);
    cr_assert_eq(second[0].outcome, FA_STORE_ITEM_DUPLICATE);
    cr_assert_str_eq(second[0].receipt, "aa02");
    cr_assert_eq(second[1].outcome, FA_STORE_ITEM_TOKEN_USED);
    cr_assert_eq(second[2].outcome, FA_STORE_ITEM_NEW);
    cr_assert_eq(second[3].outcome, FA_STORE_ITEM_ROUND_FULL);

    PGconn *pg = fa_pgtest_connect(g_conninfo);
    char *v = fa_pgtest_query(pg, "SELECT string_agg(receipt || ':' || encode(node, 'hex'), ','"
                                  " ORDER BY receipt) FROM updates WHERE round_id = 1");
    cr_assert_str_eq(v, "aa01:0a000000000000000000000000000000,"
                        "aa02:0a000000000000000000000000000000,"
                        "bb03:0b000000000000000000000000000000");
    free(v);
    v = fa_pgtest_query(pg, "SELECT count(*) FROM updates WHERE octet_length(box) > 0");
    cr_assert_str_eq(v, "0"); /* receipts only: no ciphertext is stored */
    free(v);
    PQfinish(pg);
}

Test(store, a_partial_sum_is_replaced_only_from_the_count_its_writer_holds)
{
    fa_store_batch *b = NULL;
    fa_store_conflict conflict;
    int64_t cohort, folded;
    unsigned char *sealed = NULL;
    size_t len;
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_store_batch_begin(&b, &conflict, &cohort, g_st, 1, 0.0, &err), FA_OK, "%s",
                 err.msg);
    cr_assert_eq(fa_store_batch_partial_get(&sealed, &len, &folded, b, NODE_A, &err), FA_ENOTFOUND);
    cr_assert_eq(fa_store_batch_partial_put(b, NODE_A, 0, 2, (const unsigned char *)"two", 3, &err),
                 FA_OK, "%s", err.msg);
    /* A writer whose view is stale (it thinks the row holds 1 or none) writes nothing. */
    cr_assert_eq(fa_store_batch_partial_put(b, NODE_A, 1, 3, (const unsigned char *)"x", 1, &err),
                 FA_ECONFLICT);
    cr_assert_eq(fa_store_batch_partial_put(b, NODE_A, 0, 3, (const unsigned char *)"x", 1, &err),
                 FA_ECONFLICT);
    cr_assert_eq(
        fa_store_batch_partial_put(b, NODE_A, 2, 5, (const unsigned char *)"five", 4, &err), FA_OK,
        "%s", err.msg);
    cr_assert_eq(fa_store_batch_partial_get(&sealed, &len, &folded, b, NODE_A, &err), FA_OK, "%s",
                 err.msg);
    cr_assert_eq(folded, 5);
    cr_assert_eq(len, 4);
    cr_assert_eq(memcmp(sealed, "five", 4), 0);
    free(sealed);
    cr_assert_eq(fa_store_batch_commit(b, &err), FA_OK, "%s", err.msg);
    fa_store_batch_free(b);
}

Test(store, a_batch_after_the_deadline_or_the_end_is_refused)
{
    fa_store_batch *b = NULL;
    fa_store_conflict conflict;
    int64_t cohort;
    fa_error err = FA_ERROR_INIT;
    PGconn *pg;

    cr_assert_eq(fa_store_batch_begin(&b, &conflict, &cohort, g_st, 1, 4.0e9, &err), FA_ECONFLICT);
    cr_assert_eq(conflict, FA_STORE_CONFLICT_ROUND_ENDED);
    cr_assert_null(b);
    pg = fa_pgtest_connect(g_conninfo);
    free(fa_pgtest_query(pg, "UPDATE rounds SET state = 'abandoned', ended_at = now()"));
    PQfinish(pg);
    cr_assert_eq(fa_store_batch_begin(&b, &conflict, &cohort, g_st, 1, 0.0, &err), FA_ECONFLICT);
    cr_assert_eq(conflict, FA_STORE_CONFLICT_ROUND_ENDED);
    cr_assert_eq(fa_store_batch_begin(&b, &conflict, &cohort, g_st, 99, 0.0, &err), FA_ENOTFOUND);
}

/* Bytes of partial_sums' TOAST relation, where the sealed sums live. */
static long long toast_bytes(PGconn *pg)
{
    char *v = fa_pgtest_query(pg, "SELECT pg_relation_size(reltoastrelid) FROM pg_class"
                                  " WHERE relname = 'partial_sums'");
    int64_t n = -1;
    cr_assert_eq(fa_parse_i64(&n, v), FA_OK, "not a size: %s", v);
    free(v);
    return (long long)n;
}

/* Replaces NODE_A's partial sum in its own committed transaction. */
static void rewrite_sum(int64_t held, const unsigned char *sealed, size_t len)
{
    fa_store_batch *b = NULL;
    fa_store_conflict conflict;
    int64_t cohort;
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_store_batch_begin(&b, &conflict, &cohort, g_st, 1, 0.0, &err), FA_OK, "%s",
                 err.msg);
    cr_assert_eq(fa_store_batch_partial_put(b, NODE_A, held, held + 1, sealed, len, &err), FA_OK,
                 "%s", err.msg);
    cr_assert_eq(fa_store_batch_commit(b, &err), FA_OK, "%s", err.msg);
    fa_store_batch_free(b);
}

/* Shared buffers the plan of an EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) touched. */
static long explain_buffers(PGconn *pg, const char *sql)
{
    char *json = fa_pgtest_query(pg, sql);
    const char *hit = strstr(json, "\"Shared Hit Blocks\": ");
    const char *read = strstr(json, "\"Shared Read Blocks\": ");
    long n;

    /* The first of each is the top plan node's, which includes its children. */
    cr_assert(hit != NULL && read != NULL, "%s", json);
    n = strtol(hit + strlen("\"Shared Hit Blocks\": "), NULL, 10) +
        strtol(read + strlen("\"Shared Read Blocks\": "), NULL, 10);
    free(json);
    return n;
}

/*
 * Every update request looks its token up: the lookup must read a few
 * index pages, not every token of the round, whatever the planner knows. A
 * round's tokens are inserted within seconds of its start and autovacuum
 * analyzes them a minute later, so the lookup is checked with no
 * statistics, under custom and generic plans, in a round of 20,000 tokens
 * (its primary key alone is over a hundred pages) followed by 299 others.
 */
Test(store, a_token_lookup_reads_a_few_pages_not_the_round)
{
    static const char *const modes[] = {"force_custom_plan", "force_generic_plan"};
    PGconn *pg = fa_pgtest_connect(g_conninfo);
    char sql[2048];
    unsigned char tok[32] = {0};
    fa_store_round r;
    unsigned char pseudonym[32];
    int has_pseudonym = 0;
    fa_error err = FA_ERROR_INIT;

    free(fa_pgtest_query(pg, "ALTER TABLE round_tokens SET (autovacuum_enabled = off)"));
    free(fa_pgtest_query(pg, "INSERT INTO round_tokens (round_id, token_hash)"
                             " SELECT 1, sha256(i::text::bytea) FROM generate_series(1, 20000) i"));
    /* Rounds since, so a late device's lookup cannot walk them either. */
    free(fa_pgtest_query(pg, "INSERT INTO rounds (id, base_version, min_cohort, deadline, state,"
                             " ended_at) SELECT i, 0, 3, now(), 'abandoned', now()"
                             " FROM generate_series(2, 300) i"));
    char *stats = fa_pgtest_query(pg, "SELECT count(*) FROM pg_statistic"
                                      " WHERE starelid = 'round_tokens'::regclass");
    cr_assert_str_eq(stats, "0", "the table must have no statistics for this test");
    free(stats);
    for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
        (void)snprintf(sql, sizeof(sql), "SET plan_cache_mode = %s", modes[m]);
        free(fa_pgtest_query(pg, sql));
        (void)snprintf(sql, sizeof(sql), "PREPARE lookup (bytea) AS %s",
                       fa_store__stmts[FA_STMT_TOKEN_ROUND].sql);
        free(fa_pgtest_query(pg, sql));
        long pages = explain_buffers(pg, "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)"
                                         " EXECUTE lookup (sha256('12345'::bytea))");
        cr_assert_leq(pages, 16, "the token lookup read %ld pages with %s", pages, modes[m]);
        free(fa_pgtest_query(pg, "DEALLOCATE lookup"));
    }
    /* And it finds the token, through the store. */
    fa_sha256(tok, "12345", 5);
    cr_assert_eq(fa_store_token_round(&r, pseudonym, &has_pseudonym, g_st, tok, &err), FA_OK, "%s",
                 err.msg);
    cr_assert_eq(r.id, 1);
    PQfinish(pg);
}

/*
 * VACUUM does not fail for a role that does not own the table: it warns and
 * skips it. The store reads the warning and says so, where a silent skip
 * would let superseded sums pile up unnoticed.
 */
Test(store, a_vacuum_the_database_skipped_is_an_error_not_a_success)
{
    char role[128], sql[512], conninfo[1200];
    fa_error err = FA_ERROR_INIT;
    fa_store *other = NULL;
    PGconn *pg = fa_pgtest_connect(g_conninfo);
    char *db = fa_pgtest_query(pg, "SELECT current_database()");

    /* Roles belong to the cluster: one per test database. */
    (void)snprintf(role, sizeof(role), "%s_notowner", db);
    free(db);
    (void)snprintf(
        sql, sizeof(sql),
        "CREATE ROLE %s LOGIN; GRANT SELECT, INSERT, UPDATE, DELETE ON partial_sums TO %s", role,
        role);
    free(fa_pgtest_query(pg, sql));
    (void)snprintf(conninfo, sizeof(conninfo), "%s user=%s", g_conninfo, role);
    cr_assert_eq(fa_store_open(&other, conninfo, 1, &err), FA_OK, "%s", err.msg);
    int ran = 1;
    cr_assert_eq(fa_store_partials_vacuum(other, &ran, &err), FA_EREFUSED,
                 "a skipped VACUUM succeeded");
    cr_assert_eq(ran, 0);
    cr_assert(strstr(err.msg, "partial_sums") != NULL && strstr(err.msg, "owner") != NULL, "%s",
              err.msg);
    /* The owner's VACUUM works, and a VACUUM another session holds the
     * table for (SKIP_LOCKED) is not an error. */
    cr_assert_eq(fa_store_partials_vacuum(g_st, &ran, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(ran, 1);
    free(fa_pgtest_query(pg, "BEGIN; LOCK TABLE partial_sums IN SHARE UPDATE EXCLUSIVE MODE"));
    cr_assert_eq(fa_store_partials_vacuum(g_st, &ran, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(ran, 0, "a VACUUM left to another session counted as run");
    free(fa_pgtest_query(pg, "ROLLBACK"));
    fa_store_free(other);
    (void)snprintf(sql, sizeof(sql), "DROP OWNED BY %s; DROP ROLE %s", role, role);
    free(fa_pgtest_query(pg, sql));
    PQfinish(pg);
}

Test(store, vacuuming_partial_sums_reuses_the_space_of_superseded_ones)
{
    enum { LEN = 256 * 1024, COMMITS = 24 };
    unsigned char *sealed = malloc(LEN);
    fa_error err = FA_ERROR_INIT;
    PGconn *pg = fa_pgtest_connect(g_conninfo);
    int64_t held = 0;

    cr_assert_not_null(sealed);
    for (size_t i = 0; i < LEN; i++)
        sealed[i] = (unsigned char)(i * 2654435761u >> 13); /* incompressible enough */
    /* Only our VACUUM runs here. */
    free(fa_pgtest_query(pg, "ALTER TABLE partial_sums SET (autovacuum_enabled = off,"
                             " toast.autovacuum_enabled = off)"));
    for (int i = 0; i < COMMITS; i++, held++) {
        rewrite_sum(held, sealed, LEN);
        int ran = 0;
        cr_assert_eq(fa_store_partials_vacuum(g_st, &ran, &err), FA_OK, "%s", err.msg);
        cr_assert_eq(ran, 1);
    }
    /* The live sum plus the one superseded last, and slack: not one per commit. */
    long long vacuumed = toast_bytes(pg);
    cr_assert_lt(vacuumed, 4LL * LEN, "TOAST is %lld bytes after %d vacuumed rewrites", vacuumed,
                 COMMITS);
    /* Without it every rewrite takes new space: the measure can tell. */
    for (int i = 0; i < COMMITS; i++, held++)
        rewrite_sum(held, sealed, LEN);
    cr_assert_gt(toast_bytes(pg), vacuumed + (long long)(COMMITS - 4) * LEN);
    PQfinish(pg);
    free(sealed);
}
