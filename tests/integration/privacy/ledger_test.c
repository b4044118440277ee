/*
 * The signed ledger through a real PostgreSQL: 50 entries of every kind go
 * in through the store, `fedagg ledger verify` accepts them, and each kind of
 * tampering a database superuser could do (with the append-only trigger
 * disabled) is named at the right entry, by the library and by the command.
 * Each test gets its own database.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/util.h"
#include "pgtest.h"
#include "privacy/crypto.h"
#include "privacy/keys.h"
#include "privacy/ledger.h"
#include "privacy/noise.h"
#include "store/store.h"

#define N_ENTRIES 50

static char g_conninfo[1024];
static char g_keydir[64];
static char g_pkfile[128];
static fa_store *g_st;
static fa_crypto_sign_key *g_key;

static void setup(void)
{
    static const unsigned char SEED[32] = {
        7,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
        16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
    };
    fa_error err = FA_ERROR_INIT;
    char hex[80];
    FILE *f;

    cr_assert_eq(fa_crypto_init(&err), FA_OK);
    fa_pgtest_create_db(g_conninfo, sizeof(g_conninfo));
    cr_assert_eq(fa_store_open(&g_st, g_conninfo, 2, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(fa_crypto_sign_key_from_seed(&g_key, SEED, &err), FA_OK);
    /* The verifier's public key file, as keygen writes it. */
    (void)snprintf(g_keydir, sizeof(g_keydir), "%s", "/tmp/fa-ledger-it-XXXXXX");
    cr_assert_not_null(mkdtemp(g_keydir));
    (void)snprintf(g_pkfile, sizeof(g_pkfile), "%s/%s", g_keydir, FA_KEYS_SIGN_PK);
    fa_hex_encode(hex, fa_crypto_sign_key_public(g_key), 32);
    f = fopen(g_pkfile, "w");
    cr_assert_not_null(f);
    fprintf(f, "%s\n", hex);
    fclose(f);
}

static void teardown(void)
{
    fa_store_free(g_st);
    g_st = NULL;
    fa_crypto_sign_key_free(g_key);
    g_key = NULL;
    (void)unlink(g_pkfile);
    (void)rmdir(g_keydir);
}

TestSuite(ledger_db, .init = setup, .fini = teardown, .timeout = 240);

/*
 * Appends n entries signed with key, as the aggregator would: releases at
 * q 0.1 or 1, every 7th round abandoned, and refusals once the budget of
 * epsilon 12 is reached.
 */
static void append_chain(int n, const fa_crypto_sign_key *key)
{
    const fa_budget b = {12.0, 1e-5};
    fa_ledger_entry prev, e;
    fa_ledger_signed sig = {0};
    fa_error err = FA_ERROR_INIT;
    int64_t version = 0;
    int kinds[4] = {0};

    for (int i = 0; i < n; i++) {
        fa_store_ledger_row row;
        int rc;
        fa_ledger_entry_next(&e, i > 0 ? &prev : NULL, sig.hash);
        e.round_id = 100 + i;
        e.created_at = 1700000000 + 600 * (int64_t)i;
        e.mech.clip_norm = 1.0;
        e.mech.noise_multiplier = i % 2 ? 1.3 : 2.0;
        e.mech.sampling_rate = i % 3 ? 0.1 : 1.0;
        e.mech.cohort_size = 40;
        e.mech.denominator = 40.0;
        (void)snprintf(e.mech.denominator_rule, sizeof(e.mech.denominator_rule), "%s",
                       "max(cohort,min_cohort)");
        e.mech.weight_bound = 1.0;
        (void)snprintf(e.mech.noise_method, sizeof(e.mech.noise_method), "%s", FA_NOISE_METHOD);
        (void)snprintf(e.mech.trust_policy, sizeof(e.mech.trust_policy), "%s", "cosine");
        if (i % 7 == 6) {
            e.mech.cohort_size = 2;
            cr_assert_eq(fa_ledger_entry_abandon(&e, &b, &err), FA_OK, "%s", err.msg);
        } else {
            rc = fa_ledger_entry_decide(&e, &b, &err);
            cr_assert(rc == FA_OK || rc == FA_EREFUSED, "%s", err.msg);
            if (rc == FA_OK)
                e.model_version = ++version;
        }
        kinds[e.kind]++;
        fa_ledger_signed_done(&sig);
        cr_assert_eq(fa_ledger_sign(&sig, &e, key, &err), FA_OK, "%s", err.msg);
        memset(&row, 0, sizeof(row));
        row.seq = e.seq;
        (void)snprintf(row.kind, sizeof(row.kind), "%s", fa_ledger_kind_name(e.kind));
        row.round_id = e.round_id;
        row.model_version = e.model_version;
        row.cumulative_epsilon = e.epsilon;
        row.entry = sig.text;
        memcpy(row.prev_hash, e.prev_hash, 32);
        memcpy(row.hash, sig.hash, 32);
        memcpy(row.signature, sig.signature, 64);
        cr_assert_eq(fa_store_ledger_append(g_st, &row, &err), FA_OK, "entry %d: %s", i + 1,
                     err.msg);
        prev = e;
    }
    fa_ledger_signed_done(&sig);
    if (n == N_ENTRIES)
        cr_assert(kinds[FA_LEDGER_RELEASE] > 0 && kinds[FA_LEDGER_REFUSAL] > 0 &&
                      kinds[FA_LEDGER_ABANDONMENT] > 0,
                  "releases %d refusals %d abandonments %d", kinds[1], kinds[2], kinds[3]);
}

/* Verifies the stored chain with the library; returns the code, fills rep. */
static int verify_stored(fa_ledger_report *rep, char *msg, size_t cap)
{
    fa_store_ledger_row *rows = NULL;
    fa_ledger_record *recs;
    fa_error err = FA_ERROR_INIT;
    size_t n = 0;
    int rc;

    cr_assert_eq(fa_store_ledger_list(&rows, &n, g_st, &err), FA_OK, "%s", err.msg);
    recs = calloc(n + 1, sizeof(*recs));
    cr_assert_not_null(recs);
    for (size_t i = 0; i < n; i++) {
        recs[i].seq = rows[i].seq;
        recs[i].kind = rows[i].kind;
        recs[i].round_id = rows[i].round_id;
        recs[i].model_version = rows[i].model_version;
        recs[i].cumulative_epsilon = rows[i].cumulative_epsilon;
        recs[i].entry = rows[i].entry;
        recs[i].entry_len = strlen(rows[i].entry);
        memcpy(recs[i].prev_hash, rows[i].prev_hash, 32);
        memcpy(recs[i].hash, rows[i].hash, 32);
        memcpy(recs[i].signature, rows[i].signature, 64);
    }
    rc = fa_ledger_verify(rep, recs, n, fa_crypto_sign_key_public(g_key), &err);
    (void)snprintf(msg, cap, "%s", err.msg);
    free(recs);
    fa_store_ledger_rows_free(rows, n);
    return rc;
}

/* Runs `fedagg ledger verify` against the test database; returns the exit status. */
static int run_verify(char *out, size_t cap)
{
    const char *argv[] = {"fedagg",   "ledger",       "verify", "--database-url",
                          g_conninfo, "--public-key", g_pkfile, NULL};

    return fa_pgtest_run(out, cap, argv, NULL);
}

/* Runs SQL as superuser with the append-only triggers off. */
static void tamper(const char *sql)
{
    PGconn *pg = fa_pgtest_connect(g_conninfo);

    free(fa_pgtest_query(pg, "ALTER TABLE privacy_ledger DISABLE TRIGGER USER"));
    free(fa_pgtest_query(pg, sql));
    free(fa_pgtest_query(pg, "ALTER TABLE privacy_ledger ENABLE TRIGGER USER"));
    PQfinish(pg);
}

/* Both the library and the command must name entry seq, for the reason why. */
static void expect_bad(int64_t seq, const char *why)
{
    fa_ledger_report rep;
    char msg[512], out[4096], prefix[64];
    int status;

    cr_assert_eq(verify_stored(&rep, msg, sizeof(msg)), FA_ECONFLICT, "verify passed");
    cr_assert_eq(rep.bad_seq, seq, "%s", msg);
    cr_assert(strstr(rep.reason, why) != NULL, "reason '%s', expected '%s'", rep.reason, why);
    status = run_verify(out, sizeof(out));
    cr_assert_eq(status, 1, "exit %d: %s", status, out);
    (void)snprintf(prefix, sizeof(prefix), "ledger entry %lld: ", (long long)seq);
    cr_assert(strstr(out, prefix) != NULL && strstr(out, why) != NULL, "output: %s", out);
}

static int64_t first_seq_of_kind(const char *kind)
{
    PGconn *pg = fa_pgtest_connect(g_conninfo);
    char sql[128];
    char *v;
    int64_t seq;

    (void)snprintf(sql, sizeof(sql),
                   "SELECT min(seq) FROM privacy_ledger WHERE kind = '%s' AND seq > 10", kind);
    v = fa_pgtest_query(pg, sql);
    cr_assert_neq(v[0], '\0');
    seq = strtoll(v, NULL, 10);
    free(v);
    PQfinish(pg);
    return seq;
}

Test(ledger_db, fifty_honest_entries_verify)
{
    fa_ledger_report rep;
    char msg[512], *out = malloc(256 * 1024);
    const char *show[] = {"fedagg", "ledger", "show", "--database-url", g_conninfo, NULL};
    const char *show_json[] = {"fedagg",         "ledger",   "show", "--json",
                               "--database-url", g_conninfo, NULL};
    int status;

    cr_assert_not_null(out);
    append_chain(N_ENTRIES, g_key);
    cr_assert_eq(verify_stored(&rep, msg, sizeof(msg)), FA_OK, "%s", msg);
    cr_assert_eq(rep.entries, N_ENTRIES);
    cr_assert_leq(rep.epsilon, 12.0);
    status = run_verify(out, 4096);
    cr_assert_eq(status, 0, "exit %d: %s", status, out);
    cr_assert(strstr(out, "ledger ok: 50 entries") != NULL, "%s", out);
    status = fa_pgtest_run(out, 256 * 1024, show, NULL);
    cr_assert_eq(status, 0, "%s", out);
    cr_assert(strstr(out, "abandonment") != NULL && strstr(out, "refusal") != NULL, "%s", out);
    status = fa_pgtest_run(out, 256 * 1024, show_json, NULL);
    cr_assert_eq(status, 0, "%s", out);
    cr_assert(strstr(out, "\"noise_method\": \"gauss-sum4-boxmuller-chacha20\"") != NULL, "%s",
              out);
    /* The trigger keeps the table append-only for everyone else. */
    {
        PGconn *pg = fa_pgtest_connect(g_conninfo);
        char errbuf[256];
        cr_assert_null(
            fa_pgtest_try(pg, "DELETE FROM privacy_ledger WHERE seq = 3", errbuf, sizeof(errbuf)));
        PQfinish(pg);
    }
    free(out);
}

Test(ledger_db, an_edited_entry_text_is_a_hash_mismatch)
{
    append_chain(N_ENTRIES, g_key);
    tamper("UPDATE privacy_ledger SET entry = replace(entry, '\"cohort_size\":40',"
           " '\"cohort_size\":41') WHERE seq = 17");
    expect_bad(17, "hash mismatch");
}

Test(ledger_db, an_edited_column_disagrees_with_the_entry)
{
    int64_t seq;
    char sql[256];

    append_chain(N_ENTRIES, g_key);
    seq = first_seq_of_kind("release");
    (void)snprintf(sql, sizeof(sql),
                   "UPDATE privacy_ledger SET model_version = model_version + 1 WHERE seq = %lld",
                   (long long)seq);
    tamper(sql);
    expect_bad(seq, "model_version column");
}

Test(ledger_db, an_understated_epsilon_column_is_caught)
{
    append_chain(N_ENTRIES, g_key);
    tamper("UPDATE privacy_ledger SET cumulative_epsilon = cumulative_epsilon / 2 WHERE seq = 33");
    expect_bad(33, "cumulative_epsilon column");
}

Test(ledger_db, an_edited_hash_is_a_hash_mismatch)
{
    append_chain(N_ENTRIES, g_key);
    tamper("UPDATE privacy_ledger SET hash = set_byte(hash, 0, (get_byte(hash, 0) + 1) % 256)"
           " WHERE seq = 30");
    expect_bad(30, "hash mismatch");
}

Test(ledger_db, swapped_entries_are_caught)
{
    append_chain(N_ENTRIES, g_key);
    tamper("UPDATE privacy_ledger SET seq = 1000000 WHERE seq = 10;"
           "UPDATE privacy_ledger SET seq = 10 WHERE seq = 11;"
           "UPDATE privacy_ledger SET seq = 11 WHERE seq = 1000000");
    expect_bad(10, "seq column");
}

Test(ledger_db, a_deleted_entry_is_missing)
{
    append_chain(N_ENTRIES, g_key);
    tamper("DELETE FROM privacy_ledger WHERE seq = 25");
    expect_bad(25, "missing");
}

Test(ledger_db, an_entry_signed_with_another_key_is_caught)
{
    fa_crypto_sign_key *other = NULL;
    fa_store_ledger_row *rows = NULL;
    fa_error err = FA_ERROR_INIT;
    unsigned char sig[64];
    char hex[129], sql[512];
    size_t n = 0;

    append_chain(N_ENTRIES, g_key);
    cr_assert_eq(fa_crypto_sign_key_generate(&other, &err), FA_OK);
    cr_assert_eq(fa_store_ledger_list(&rows, &n, g_st, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(n, N_ENTRIES);
    fa_crypto_sign(sig, other, rows[39].hash, 32);
    fa_hex_encode(hex, sig, 64);
    (void)snprintf(sql, sizeof(sql),
                   "UPDATE privacy_ledger SET signature = decode('%s', 'hex') WHERE seq = 40", hex);
    tamper(sql);
    expect_bad(40, "bad signature");
    fa_store_ledger_rows_free(rows, n);
    fa_crypto_sign_key_free(other);
}

Test(ledger_db, a_chain_signed_by_another_key_fails_at_its_first_entry)
{
    fa_crypto_sign_key *other = NULL;
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_crypto_sign_key_generate(&other, &err), FA_OK);
    append_chain(5, other);
    expect_bad(1, "bad signature");
    fa_crypto_sign_key_free(other);
}

Test(ledger_db, an_empty_ledger_verifies)
{
    char out[1024];

    cr_assert_eq(run_verify(out, sizeof(out)), 0, "%s", out);
    cr_assert(strstr(out, "ledger ok: 0 entries") != NULL, "%s", out);
}
