/*
 * The signed ledger through a real PostgreSQL: 50 entries of every kind go
 * in through the store, with the model versions their releases published,
 * `fedagg ledger verify` accepts them, and each kind of tampering a database
 * superuser could do (with the append-only triggers disabled) is named at the
 * right entry, by the library and by the command: edited rows, a cut-off
 * tail, a rewritten snapshot digest. Each test gets its own database.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/digest.h"
#include "core/util.h"
#include "pgtest.h"
#include "aggregator/audit.h"
#include "privacy/accountant.h"
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

/* The digest test version v is published with (and its release names). */
static void snapshot_of(unsigned char out[32], int64_t v)
{
    char text[32];

    (void)snprintf(text, sizeof(text), "snapshot %lld", (long long)v);
    fa_sha256(out, text, strlen(text));
}

/* Runs one SQL command as superuser (triggers on). */
static void sql_exec(const char *sql)
{
    PGconn *pg = fa_pgtest_connect(g_conninfo);

    free(fa_pgtest_query(pg, sql));
    PQfinish(pg);
}

/* Publishes model version v (parent v-1, a one-byte snapshot) with its digest. */
static void publish_version(int64_t v)
{
    unsigned char sha[32];
    char hex[65], parent[24], sql[256];

    snapshot_of(sha, v);
    fa_hex_encode(hex, sha, 32);
    if (v == 0)
        (void)snprintf(parent, sizeof(parent), "NULL");
    else
        (void)snprintf(parent, sizeof(parent), "%lld", (long long)(v - 1));
    (void)snprintf(sql, sizeof(sql),
                   "INSERT INTO model_versions (version, parent, sha256, snapshot)"
                   " VALUES (%lld, %s, decode('%s', 'hex'), '\\x00'::bytea)",
                   (long long)v, parent, hex);
    sql_exec(sql);
}

/* How append_chain_ex builds a chain. */
typedef struct chain_opts {
    double epsilon_max;     /* the budget: past it releases become refusals */
    int seeded_every;       /* every k-th release used seeded noise; 0 none */
    int budget_at;          /* before round index budget_at ... */
    double new_epsilon_max; /* ... this becomes the budget in force; 0 never */
    int skip_budget_entry;  /* change the budget without writing its entry */
} chain_opts;

/* The chain being appended: the last entry, its signature, counters. */
typedef struct appender {
    const fa_crypto_sign_key *key;
    fa_ledger_entry prev;
    fa_ledger_signed sig;
    int64_t seq, version, round;
    int kinds[5];
} appender;

/* Signs e and appends it through the store, as the round close does. */
static void append_entry(appender *a, fa_ledger_entry *e)
{
    fa_store_ledger_row row;
    fa_error err = FA_ERROR_INIT;

    a->kinds[e->kind]++;
    fa_ledger_signed_done(&a->sig);
    cr_assert_eq(fa_ledger_sign(&a->sig, e, a->key, &err), FA_OK, "%s", err.msg);
    memset(&row, 0, sizeof(row));
    row.seq = e->seq;
    (void)snprintf(row.kind, sizeof(row.kind), "%s", fa_ledger_kind_name(e->kind));
    row.round_id = e->round_id;
    row.model_version = e->model_version;
    row.cumulative_epsilon = e->epsilon;
    row.entry = a->sig.text;
    memcpy(row.prev_hash, e->prev_hash, 32);
    memcpy(row.hash, a->sig.hash, 32);
    memcpy(row.signature, a->sig.signature, 64);
    cr_assert_eq(fa_store_ledger_append(g_st, &row, &err), FA_OK, "entry %lld: %s",
                 (long long)e->seq, err.msg);
    a->prev = *e;
    a->seq = e->seq;
}

/* Starts the next entry with the mechanism every test entry uses. */
static void next_entry(fa_ledger_entry *e, const appender *a)
{
    fa_ledger_entry_next(e, a->seq > 0 ? &a->prev : NULL, a->sig.hash);
    e->created_at = 1700000000 + 600 * a->seq;
    e->mech.clip_norm = 1.0;
    e->mech.noise_multiplier = a->seq % 2 ? 1.3 : 2.0;
    e->mech.sampling_rate = a->seq % 3 ? 0.1 : 1.0;
    e->mech.cohort_size = 40;
    e->mech.denominator = 40.0;
    (void)snprintf(e->mech.denominator_rule, sizeof(e->mech.denominator_rule), "%s",
                   "max(cohort,min_cohort)");
    e->mech.weight_bound = 1.0;
    (void)snprintf(e->mech.noise_method, sizeof(e->mech.noise_method), "%s", FA_NOISE_METHOD);
    (void)snprintf(e->mech.trust_policy, sizeof(e->mech.trust_policy), "%s", "cosine");
}

/*
 * Appends n rounds' entries signed with key, as the aggregator would, each
 * release also publishing its model version (version 0 first): releases at
 * q 0.1 or 1, every 7th round abandoned, and refusals once the budget is
 * reached; optionally a budget change before one round.
 */
static void append_chain_ex(int n, const fa_crypto_sign_key *key, const chain_opts *o)
{
    fa_budget b = {o->epsilon_max, 1e-5};
    appender a;
    fa_ledger_entry e;
    fa_accountant *acct = NULL; /* the server's default: the PLD accountant */
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_accountant_new(&acct, FA_ACCOUNTANT_PLD, &err), FA_OK, "%s", err.msg);
    memset(&a, 0, sizeof(a));
    a.key = key;
    a.round = 99;
    publish_version(0);
    for (int i = 0; i < n; i++) {
        int rc;
        if (o->new_epsilon_max > 0 && i == o->budget_at) {
            b.epsilon_max = o->new_epsilon_max;
            if (!o->skip_budget_entry) {
                next_entry(&e, &a);
                e.mech.cohort_size = 0;
                cr_assert_eq(fa_ledger_entry_budget(&e, &b, acct, &err), FA_OK, "%s", err.msg);
                append_entry(&a, &e);
            }
        }
        next_entry(&e, &a);
        e.round_id = ++a.round;
        if (i % 7 == 6) {
            e.mech.cohort_size = 2;
            cr_assert_eq(fa_ledger_entry_abandon(&e, &b, acct, &err), FA_OK, "%s", err.msg);
        } else {
            e.mech.seeded = o->seeded_every > 0 && (a.version + 1) % o->seeded_every == 0;
            rc = fa_ledger_entry_decide(&e, &b, acct, &err);
            cr_assert(rc == FA_OK || rc == FA_EREFUSED, "%s", err.msg);
            if (rc == FA_OK) {
                e.model_version = ++a.version;
                snapshot_of(e.snapshot_sha256, a.version);
                publish_version(a.version);
            }
        }
        append_entry(&a, &e);
    }
    fa_ledger_signed_done(&a.sig);
    fa_accountant_free(acct);
    if (n == N_ENTRIES && o->epsilon_max < 100)
        cr_assert(a.kinds[FA_LEDGER_RELEASE] > 0 && a.kinds[FA_LEDGER_REFUSAL] > 0 &&
                      a.kinds[FA_LEDGER_ABANDONMENT] > 0,
                  "releases %d refusals %d abandonments %d", a.kinds[1], a.kinds[2], a.kinds[3]);
}

/* The chain of most tests: a budget of epsilon 12 that runs out. */
static void append_chain(int n, const fa_crypto_sign_key *key)
{
    const chain_opts o = {12.0, 0, 0, 0.0, 0};

    append_chain_ex(n, key, &o);
}

/*
 * Verifies the stored chain, then the model versions against it, with the
 * library; returns the code, fills rep.
 */
static int verify_stored(fa_ledger_report *rep, char *msg, size_t cap)
{
    fa_error err = FA_ERROR_INIT;
    int rc = fa_audit_ledger(rep, NULL, NULL, g_st, fa_crypto_sign_key_public(g_key), &err);

    (void)snprintf(msg, cap, "%s", err.msg);
    return rc;
}

/* Runs `fedagg ledger verify` against the test database; returns the exit status. */
static int run_verify(char *out, size_t cap)
{
    const char *argv[] = {"fedagg",   "ledger",       "verify", "--database-url",
                          g_conninfo, "--public-key", g_pkfile, NULL};

    return fa_pgtest_run(out, cap, argv, NULL);
}

/* Runs SQL as superuser with table's append-only triggers off. */
static void tamper_table(const char *table, const char *sql)
{
    PGconn *pg = fa_pgtest_connect(g_conninfo);
    char alter[128];

    (void)snprintf(alter, sizeof(alter), "ALTER TABLE %s DISABLE TRIGGER USER", table);
    free(fa_pgtest_query(pg, alter));
    free(fa_pgtest_query(pg, sql));
    (void)snprintf(alter, sizeof(alter), "ALTER TABLE %s ENABLE TRIGGER USER", table);
    free(fa_pgtest_query(pg, alter));
    PQfinish(pg);
}

static void tamper(const char *sql)
{
    tamper_table("privacy_ledger", sql);
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
    cr_assert(strstr(out, "seeded releases: 0\n") != NULL, "%s", out);
    cr_assert(strstr(out, "NOT PRIVATE") == NULL, "%s", out);
    status = fa_pgtest_run(out, 256 * 1024, show, NULL);
    cr_assert_eq(status, 0, "%s", out);
    cr_assert(strstr(out, "abandonment") != NULL && strstr(out, "refusal") != NULL, "%s", out);
    status = fa_pgtest_run(out, 256 * 1024, show_json, NULL);
    cr_assert_eq(status, 0, "%s", out);
    cr_assert(strstr(out, "\"noise_method\": \"gauss-sum4-boxmuller-chacha20\"") != NULL, "%s",
              out);
    cr_assert(strstr(out, "\"text\": \"{\\\"format\\\":\\\"fedagg-ledger-v3\\\"") != NULL, "%s",
              out);

    /* Export: the API's page form, every text exactly what its hash covers. */
    {
        const char *exp_json[] = {"fedagg", "ledger", "export", "--database-url", g_conninfo, NULL};
        const char *exp_csv[] = {"fedagg", "ledger",         "export",   "--format",
                                 "csv",    "--database-url", g_conninfo, NULL};
        const char *exp_bad[] = {"fedagg", "ledger",         "export",   "--format",
                                 "xml",    "--database-url", g_conninfo, NULL};
        json_error_t jerr;
        json_t *doc, *entries;
        size_t lines = 0;

        status = fa_pgtest_run(out, 256 * 1024, exp_json, NULL);
        cr_assert_eq(status, 0, "%s", out);
        doc = json_loads(out, 0, &jerr);
        cr_assert_not_null(doc, "%s", jerr.text);
        entries = json_object_get(doc, "entries");
        cr_assert_eq(json_array_size(entries), N_ENTRIES);
        cr_assert(json_is_null(json_object_get(doc, "next")));
        for (size_t i = 0; i < json_array_size(entries); i++) {
            const json_t *e = json_array_get(entries, i);
            const char *text = json_string_value(json_object_get(e, "text"));
            unsigned char sha[32];
            char hex[65];
            cr_assert_not_null(text);
            fa_sha256(sha, text, strlen(text));
            fa_hex_encode(hex, sha, 32);
            cr_assert_str_eq(hex, json_string_value(json_object_get(e, "hash")));
            cr_assert_eq(json_integer_value(json_object_get(e, "seq")), (json_int_t)i + 1);
        }
        json_decref(doc);
        status = fa_pgtest_run(out, 256 * 1024, exp_csv, NULL);
        cr_assert_eq(status, 0, "%s", out);
        cr_assert(strncmp(out, "seq,kind,round_id,", 18) == 0, "%s", out);
        for (const char *p = out; *p != '\0'; p++)
            lines += *p == '\n';
        cr_assert_eq(lines, N_ENTRIES + 1, "%s", out);
        cr_assert(strstr(out, ",pld-sgm-v1,") != NULL, "%s", out);
        cr_assert_eq(fa_pgtest_run(out, 256 * 1024, exp_bad, NULL), 2, "%s", out);
    }
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

/* ------------------------------------------- the ledger and the versions */

/* The seq of the release that produced version v. */
static int64_t seq_of_version(int64_t v)
{
    PGconn *pg = fa_pgtest_connect(g_conninfo);
    char sql[128];
    char *t;
    int64_t seq;

    (void)snprintf(sql, sizeof(sql),
                   "SELECT seq FROM privacy_ledger WHERE kind = 'release' AND model_version = %lld",
                   (long long)v);
    t = fa_pgtest_query(pg, sql);
    cr_assert_neq(t[0], '\0', "no release of version %lld", (long long)v);
    seq = strtoll(t, NULL, 10);
    free(t);
    PQfinish(pg);
    return seq;
}

Test(ledger_db, a_cut_off_tail_is_caught_by_the_versions)
{
    const chain_opts o = {1000.0, 0, 0, 0.0, 0}; /* every round that is not abandoned releases */
    PGconn *pg;
    char *kinds;

    append_chain_ex(N_ENTRIES, g_key, &o);
    pg = fa_pgtest_connect(g_conninfo);
    kinds = fa_pgtest_query(pg, "SELECT string_agg(kind, ',' ORDER BY seq) FROM privacy_ledger"
                                " WHERE seq > 48");
    cr_assert_str_eq(kinds, "abandonment,release");
    free(kinds);
    PQfinish(pg);
    /* What is left is a valid chain of 48 entries; version 43 has no entry. */
    tamper("DELETE FROM privacy_ledger WHERE seq > 48");
    expect_bad(49, "missing: published version 43 has no release entry");
}

Test(ledger_db, a_rewritten_snapshot_digest_is_caught)
{
    append_chain(N_ENTRIES, g_key);
    tamper_table("model_versions",
                 "UPDATE model_versions SET sha256 = sha256(sha256) WHERE version = 5");
    expect_bad(seq_of_version(5), "snapshot sha256 differs from published version 5");
}

Test(ledger_db, a_deleted_model_version_is_caught)
{
    PGconn *pg;
    char *newest;
    int64_t v;
    char sql[128], why[96];

    append_chain(N_ENTRIES, g_key);
    pg = fa_pgtest_connect(g_conninfo);
    newest = fa_pgtest_query(pg, "SELECT max(version) FROM model_versions");
    PQfinish(pg);
    v = strtoll(newest, NULL, 10);
    free(newest);
    (void)snprintf(sql, sizeof(sql), "DELETE FROM model_versions WHERE version = %lld",
                   (long long)v);
    tamper_table("model_versions", sql);
    (void)snprintf(why, sizeof(why), "release produces version %lld, which is not published",
                   (long long)v);
    expect_bad(seq_of_version(v), why);
}

Test(ledger_db, model_versions_are_append_only)
{
    static const char *const CHANGES[] = {
        "UPDATE model_versions SET sha256 = sha256(sha256) WHERE version = 2",
        "DELETE FROM model_versions WHERE version = (SELECT max(version) FROM model_versions)",
        "TRUNCATE model_versions CASCADE",
    };
    fa_ledger_report rep;
    char errbuf[512], msg[512];
    PGconn *pg;

    append_chain(N_ENTRIES, g_key);
    pg = fa_pgtest_connect(g_conninfo);
    for (size_t i = 0; i < sizeof(CHANGES) / sizeof(CHANGES[0]); i++) {
        errbuf[0] = '\0';
        cr_assert_null(fa_pgtest_try(pg, CHANGES[i], errbuf, sizeof(errbuf)), "%s went through",
                       CHANGES[i]);
        cr_assert(strstr(errbuf, "model_versions is append-only") != NULL, "%s: %s", CHANGES[i],
                  errbuf);
    }
    PQfinish(pg);
    /* Nothing changed. */
    cr_assert_eq(verify_stored(&rep, msg, sizeof(msg)), FA_OK, "%s", msg);
}

Test(ledger_db, seeded_releases_are_reported_not_private)
{
    const chain_opts o = {50.0, 3, 0, 0.0, 0}; /* versions 3, 6, 9, ... seeded */
    const char *strict[] = {"fedagg",   "ledger",       "verify", "--database-url",
                            g_conninfo, "--public-key", g_pkfile, "--require-private",
                            NULL};
    char out[4096];
    int status;

    append_chain_ex(12, g_key, &o);
    status = run_verify(out, sizeof(out));
    cr_assert_eq(status, 0, "exit %d: %s", status, out);
    cr_assert(strstr(out, "seeded releases: 3\n") != NULL, "%s", out);
    cr_assert(strstr(out, "NOT PRIVATE: 3 releases used seeded (deterministic) noise") != NULL,
              "%s", out);
    status = fa_pgtest_run(out, sizeof(out), strict, NULL);
    cr_assert_eq(status, 1, "exit %d: %s", status, out);
    cr_assert(strstr(out, "NOT PRIVATE") != NULL, "%s", out);
}

Test(ledger_db, a_budget_change_is_listed)
{
    const chain_opts o = {3.0, 0, 10, 20.0, 0};
    char out[4096];
    int status;

    append_chain_ex(20, g_key, &o);
    status = run_verify(out, sizeof(out));
    cr_assert_eq(status, 0, "exit %d: %s", status, out);
    cr_assert(strstr(out, "1 budget change)") != NULL, "%s", out);
    cr_assert(
        strstr(out, "budget changed at entry 11: epsilon_max 3 -> 20, delta 1e-05 -> 1e-05\n") !=
            NULL,
        "%s", out);
    cr_assert(strstr(out, "budget in force: epsilon_max 20 at delta 1e-05") != NULL, "%s", out);
}

Test(ledger_db, a_budget_change_without_its_entry_is_caught)
{
    const chain_opts o = {3.0, 0, 10, 20.0, 1};

    append_chain_ex(20, g_key, &o);
    expect_bad(11, "budget changed without a budget entry");
}
