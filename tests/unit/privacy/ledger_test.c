#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/digest.h"
#include "core/util.h"
#include "privacy/accountant.h"
#include "privacy/crypto.h"
#include "privacy/ledger.h"
#include "privacy/noise.h"
#include "vectors.h"

/* The running RDP accountant of the single-entry tests (each test runs in its own process). */
static fa_accountant *T_ACCT;

static void init(void)
{
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_crypto_init(&err), FA_OK);
    cr_assert_eq(fa_accountant_new(&T_ACCT, FA_ACCOUNTANT_RDP, &err), FA_OK);
}

TestSuite(ledger, .init = init);

/* The RFC 8032 TEST 1 key, also used by ledger_entry_v1.txt. */
static fa_crypto_sign_key *test_key(void)
{
    unsigned char seed[32];
    fa_crypto_sign_key *k = NULL;
    fa_error err = FA_ERROR_INIT;

    fa_vectors_hex(seed, 32, "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
    cr_assert_eq(fa_crypto_sign_key_from_seed(&k, seed, &err), FA_OK);
    return k;
}

static void mechanism(fa_ledger_entry *e, double q, double sigma)
{
    e->mech.clip_norm = 1.0;
    e->mech.noise_multiplier = sigma;
    e->mech.sampling_rate = q;
    e->mech.cohort_size = 100;
    e->mech.denominator = 100.0;
    (void)snprintf(e->mech.denominator_rule, sizeof(e->mech.denominator_rule), "%s",
                   "max(cohort,min_cohort)");
    e->mech.weight_bound = 1.0;
    (void)snprintf(e->mech.noise_method, sizeof(e->mech.noise_method), "%s", FA_NOISE_METHOD);
    e->mech.seeded = 0;
    (void)snprintf(e->mech.trust_policy, sizeof(e->mech.trust_policy), "%s", "none");
}

/* ----------------------------------------------------------- a test chain */

typedef struct chain {
    size_t n;
    int64_t rounds;   /* round ids handed out so far */
    int64_t versions; /* versions released so far */
    fa_ledger_signed sig[64];
    fa_ledger_entry entry[64];
    fa_ledger_record rec[64];
    fa_accountant_kind kind; /* the accountant the next entries are written with */
    fa_accountant *acct;     /* every release so far, in kind */
    double rel_q[64], rel_sigma[64];
    size_t nrel;
} chain;

/* c->acct in c->kind holding every release so far (rebuilt when the kind changed). */
static fa_accountant *chain_acct(chain *c)
{
    fa_error err = FA_ERROR_INIT;

    if (c->kind == 0)
        c->kind = FA_ACCOUNTANT_RDP;
    if (c->acct != NULL && fa_accountant_kind_of(c->acct) == c->kind)
        return c->acct;
    fa_accountant_free(c->acct);
    cr_assert_eq(fa_accountant_new(&c->acct, c->kind, &err), FA_OK, "%s", err.msg);
    for (size_t i = 0; i < c->nrel; i++)
        cr_assert_eq(fa_accountant_compose(c->acct, c->rel_q[i], c->rel_sigma[i], 1, &err), FA_OK,
                     "%s", err.msg);
    return c->acct;
}

/* The snapshot digest a test release of version v names (and publishes). */
static void snapshot_of(unsigned char out[32], int64_t v)
{
    char text[32];

    (void)snprintf(text, sizeof(text), "snapshot %lld", (long long)v);
    fa_sha256(out, text, strlen(text));
}

/* Points record i at its signed entry, with columns as the store keeps them. */
static void fill_record(chain *c, size_t i)
{
    const fa_ledger_entry *e = &c->entry[i];

    c->rec[i].seq = e->seq;
    c->rec[i].kind = fa_ledger_kind_name(e->kind);
    c->rec[i].round_id = e->round_id;
    c->rec[i].model_version = e->model_version;
    c->rec[i].cumulative_epsilon = e->epsilon;
    c->rec[i].entry = c->sig[i].text;
    c->rec[i].entry_len = c->sig[i].text_len;
    memcpy(c->rec[i].prev_hash, e->prev_hash, 32);
    memcpy(c->rec[i].hash, c->sig[i].hash, 32);
    memcpy(c->rec[i].signature, c->sig[i].signature, 64);
}

enum step { STEP_ROUND, STEP_ABANDON, STEP_BUDGET };

/*
 * Appends one entry in format fmt the way the aggregator does: a round is a
 * release of (q, sigma) depending on its position, or a refusal past the
 * budget b; an abandonment spends nothing; a budget event makes b the
 * budget in force.
 */
static void chain_push(chain *c, const fa_crypto_sign_key *key, int fmt, enum step what,
                       const fa_budget *b)
{
    const size_t i = c->n;
    fa_ledger_entry *e = &c->entry[i];
    fa_error err = FA_ERROR_INIT;
    int rc;

    cr_assert_lt(i, 64);
    fa_ledger_entry_next(e, i > 0 ? &c->entry[i - 1] : NULL, i > 0 ? c->sig[i - 1].hash : NULL);
    cr_assert_eq(e->format, 3, "new entries are v3");
    e->format = fmt;
    e->created_at = 1700000000 + (int64_t)i * 60;
    mechanism(e, i % 3 == 0 ? 0.1 : 1.0, 2.0 + (double)(i % 2));
    if (what == STEP_BUDGET) {
        e->mech.cohort_size = 0;
        cr_assert_eq(fa_ledger_entry_budget(e, b, chain_acct(c), &err), FA_OK, "%s", err.msg);
    } else if (what == STEP_ABANDON) {
        e->round_id = ++c->rounds;
        e->mech.cohort_size = 3;
        cr_assert_eq(fa_ledger_entry_abandon(e, b, chain_acct(c), &err), FA_OK, "%s", err.msg);
    } else {
        e->round_id = ++c->rounds;
        rc = fa_ledger_entry_decide(e, b, chain_acct(c), &err);
        cr_assert(rc == FA_OK || rc == FA_EREFUSED, "%s", err.msg);
        if (rc == FA_OK) {
            c->rel_q[c->nrel] = e->mech.sampling_rate;
            c->rel_sigma[c->nrel] = e->mech.noise_multiplier;
            c->nrel++;
            e->model_version = ++c->versions;
            if (fmt >= 2)
                snapshot_of(e->snapshot_sha256, e->model_version);
        }
    }
    cr_assert_eq(fa_ledger_sign(&c->sig[i], e, key, &err), FA_OK, "%s", err.msg);
    fill_record(c, i);
    c->n = i + 1;
}

/*
 * Builds n entries: each round a release of (q, sigma), every 5th round an
 * abandonment, and releases past the budget become refusals. The first
 * n_v1 entries are in format v1 (as written before v2), the rest in v2.
 */
static chain *build_chain_v1(size_t n, const fa_crypto_sign_key *key, double eps_max, size_t n_v1)
{
    chain *c = calloc(1, sizeof(*c));
    const fa_budget b = {eps_max, 1e-5};

    cr_assert_not_null(c);
    for (size_t i = 0; i < n; i++)
        chain_push(c, key, i < n_v1 ? 1 : 2, i % 5 == 4 ? STEP_ABANDON : STEP_ROUND, &b);
    return c;
}

static chain *build_chain(size_t n, const fa_crypto_sign_key *key, double eps_max)
{
    return build_chain_v1(n, key, eps_max, 0);
}

/* The published versions of c's releases (and version 0), as model_versions lists them. */
static size_t chain_versions(fa_ledger_version *out, const chain *c)
{
    size_t nv = 0;

    out[nv].version = 0;
    memset(out[nv].sha256, 0xab, 32);
    nv++;
    for (size_t i = 0; i < c->n; i++) {
        if (c->entry[i].kind != FA_LEDGER_RELEASE)
            continue;
        out[nv].version = c->entry[i].model_version;
        snapshot_of(out[nv].sha256, out[nv].version);
        nv++;
    }
    return nv;
}

static void free_chain(chain *c)
{
    fa_accountant_free(c->acct);
    for (size_t i = 0; i < c->n; i++)
        fa_ledger_signed_done(&c->sig[i]);
    free(c);
}

/* Verifies and expects failure at bad_seq with a reason containing why. */
static void expect_bad(chain *c, const unsigned char *pk, int64_t bad_seq, const char *why)
{
    fa_ledger_report rep;
    fa_error err = FA_ERROR_INIT;
    char prefix[64];

    cr_assert_eq(fa_ledger_verify(&rep, c->rec, c->n, pk, &err), FA_ECONFLICT,
                 "verify passed, expected entry %lld: %s", (long long)bad_seq, why);
    cr_assert_eq(rep.bad_seq, bad_seq, "%s", err.msg);
    cr_assert(strstr(rep.reason, why) != NULL, "reason '%s', expected '%s'", rep.reason, why);
    (void)snprintf(prefix, sizeof(prefix), "ledger entry %lld: ", (long long)bad_seq);
    cr_assert_eq(strncmp(err.msg, prefix, strlen(prefix)), 0, "%s", err.msg);
}

/* Re-signs entry i after a change to c->entry[i] (as a key holder could). */
static void resign(chain *c, size_t i, const fa_crypto_sign_key *key)
{
    fa_error err = FA_ERROR_INIT;

    fa_ledger_signed_done(&c->sig[i]);
    cr_assert_eq(fa_ledger_sign(&c->sig[i], &c->entry[i], key, &err), FA_OK, "%s", err.msg);
    c->rec[i].entry = c->sig[i].text;
    c->rec[i].entry_len = c->sig[i].text_len;
    memcpy(c->rec[i].hash, c->sig[i].hash, 32);
    memcpy(c->rec[i].signature, c->sig[i].signature, 64);
}

/* Re-signs entry i and every later one, re-linking the chain (a key holder rewriting history). */
static void resign_from(chain *c, size_t i, const fa_crypto_sign_key *key)
{
    for (size_t k = i; k < c->n; k++) {
        if (k > 0)
            memcpy(c->entry[k].prev_hash, c->sig[k - 1].hash, 32);
        resign(c, k, key);
        fill_record(c, k);
    }
}

/* -------------------------------------------------------------- encoding */

Test(ledger, canonical_encoding_matches_the_independent_vector)
{
    FILE *f = fa_vectors_open("ledger_entry_v1.txt");
    char *text = malloc(FA_LEDGER_TEXT_MAX + 2);
    char hash_hex[80], sig_hex[160];
    unsigned char want_hash[32], want_sig[64];
    fa_crypto_sign_key *key = test_key();
    const fa_budget b = {50.0, 1e-5};
    fa_ledger_entry e, back;
    fa_ledger_signed s;
    fa_error err = FA_ERROR_INIT;

    cr_assert_not_null(text);
    cr_assert(fa_vectors_next(f, text, FA_LEDGER_TEXT_MAX + 2));
    cr_assert(fa_vectors_next(f, hash_hex, sizeof(hash_hex)));
    cr_assert(fa_vectors_next(f, sig_hex, sizeof(sig_hex)));
    fclose(f);
    fa_vectors_hex(want_hash, 32, hash_hex);
    fa_vectors_hex(want_sig, 64, sig_hex);

    fa_ledger_entry_next(&e, NULL, NULL);
    e.format = 1; /* the vector is a v1 entry */
    e.round_id = 7;
    e.created_at = 1700000000;
    mechanism(&e, 1.0, 2.0);
    cr_assert_eq(fa_ledger_entry_decide(&e, &b, T_ACCT, &err), FA_OK, "%s", err.msg);
    e.model_version = 3;
    cr_assert_eq(fa_ledger_sign(&s, &e, key, &err), FA_OK, "%s", err.msg);
    cr_assert_str_eq(s.text, text);
    cr_assert_eq(memcmp(s.hash, want_hash, 32), 0);
    cr_assert_eq(memcmp(s.signature, want_sig, 64), 0);
    cr_assert_eq(fa_crypto_sign_verify(s.signature, s.hash, 32, fa_crypto_sign_key_public(key)),
                 FA_OK);

    cr_assert_eq(fa_ledger_entry_parse(&back, text, strlen(text), &err), FA_OK, "%s", err.msg);
    cr_assert_eq(back.format, 1);
    cr_assert_eq(back.seq, 1);
    cr_assert_eq(back.kind, FA_LEDGER_RELEASE);
    cr_assert_eq(back.model_version, 3);
    cr_assert_eq(memcmp(back.round_rdp, e.round_rdp, sizeof(e.round_rdp)), 0);
    cr_assert_eq(back.epsilon, e.epsilon);
    cr_assert_str_eq(back.mech.denominator_rule, "max(cohort,min_cohort)");
    fa_ledger_signed_done(&s);
    fa_crypto_sign_key_free(key);
    free(text);
}

Test(ledger, every_kind_round_trips_through_the_text)
{
    fa_crypto_sign_key *key = test_key();
    chain *c = build_chain(20, key, 4.0);
    fa_error err = FA_ERROR_INIT;
    int kinds[4] = {0};

    for (size_t i = 0; i < c->n; i++) {
        fa_ledger_entry back;
        cr_assert_eq(fa_ledger_entry_parse(&back, c->sig[i].text, c->sig[i].text_len, &err), FA_OK,
                     "%s", err.msg);
        cr_assert_eq(memcmp(&back.mech, &c->entry[i].mech, sizeof(back.mech)), 0);
        cr_assert_eq(back.kind, c->entry[i].kind);
        cr_assert_eq(
            memcmp(back.cumulative_rdp, c->entry[i].cumulative_rdp, sizeof(back.cumulative_rdp)),
            0);
        cr_assert_eq(memcmp(back.prev_hash, c->entry[i].prev_hash, 32), 0);
        kinds[back.kind]++;
    }
    cr_assert(kinds[FA_LEDGER_RELEASE] > 0 && kinds[FA_LEDGER_REFUSAL] > 0 &&
                  kinds[FA_LEDGER_ABANDONMENT] > 0,
              "releases %d refusals %d abandonments %d", kinds[1], kinds[2], kinds[3]);
    free_chain(c);
    fa_crypto_sign_key_free(key);
}

/* Replaces the first occurrence of from in text by to; returns a new string. */
static char *replace(const char *text, const char *from, const char *to)
{
    const char *at = strstr(text, from);
    const size_t n = strlen(text) - strlen(from) + strlen(to);
    char *out = malloc(n + 1);

    cr_assert_not_null(at, "'%s' not in the entry", from);
    cr_assert_not_null(out);
    memcpy(out, text, (size_t)(at - text));
    memcpy(out + (at - text), to, strlen(to));
    memcpy(out + (at - text) + strlen(to), at + strlen(from), strlen(at + strlen(from)) + 1);
    return out;
}

Test(ledger, parser_rejects_everything_but_the_canonical_text)
{
    fa_crypto_sign_key *key = test_key();
    chain *c = build_chain(2, key, 50.0);
    const char *text = c->sig[1].text;
    const size_t len = c->sig[1].text_len;
    static const char *const EDITS[][2] = {
        {"\"seq\":2", "\"seq\": 2"},              /* whitespace */
        {"\"seq\":2", "\"seq\":02"},              /* leading zero */
        {"\"seq\":2", "\"seq\":2.0"},             /* not an integer */
        {"\"clip_norm\":1", "\"clip_norm\":1.0"}, /* not %.17g */
        {"\"clip_norm\":1", "\"clip_norm\":1e0"},
        {"\"kind\":\"release\"", "\"kind\":\"Release\""},
        {"\"kind\":\"release\"", "\"kind\":\"grant\""},
        {"\"seeded\":false", "\"seeded\":0"},
        {"\"trust_policy\":\"none\"", "\"trust_policy\":\"no ne\""},
        {"\"trust_policy\":\"none\"", "\"trust_policy\":\"\""},
        {"\"clip_norm\":1", "\"clip_norm\":-1"},
        {"\"clip_norm\":1", "\"clip_norm\":inf"},
        {"\"clip_norm\":1", "\"clip_norm\":nan"},
        {"\"delta\":", "\"delta\":-"},
        {"{\"format\":\"fedagg-ledger-v2\"", "{\"format\":\"fedagg-ledger-v1\""},
        {"{\"format\":\"fedagg-ledger-v2\"", "{\"format\":\"fedagg-ledger-v3\""},
        {"\"snapshot_sha256\":\"", "\"snapshot_sha256\":\"0"}, /* 65 digits */
        {"\"snapshot_sha256\":", "\"snapshot_sha\":"},
        {"\"kind\":\"release\"", "\"kind\":\"budget\""}, /* a budget names no version */
        {"\"accountant\":\"rdp-sgm-v1\"", "\"accountant\":\"rdp\""},
        {"\"round_id\":2,\"model_version\"", "\"model_version\""}, /* missing key */
        {"\"prev_hash\":\"", "\"prev_hash\":\"A"},
    };
    fa_ledger_entry e;
    fa_error err = FA_ERROR_INIT;
    char *upper = strdup(text), *longer = malloc(len + 2);

    cr_assert_eq(fa_ledger_entry_parse(&e, text, len, &err), FA_OK, "%s", err.msg);
    for (size_t i = 0; i < sizeof(EDITS) / sizeof(EDITS[0]); i++) {
        char *bad = replace(text, EDITS[i][0], EDITS[i][1]);
        cr_assert_eq(fa_ledger_entry_parse(&e, bad, strlen(bad), &err), FA_EINVAL,
                     "accepted edit %zu: %s -> %s", i, EDITS[i][0], EDITS[i][1]);
        free(bad);
    }
    /* Every proper prefix, and trailing bytes. */
    for (size_t n = 0; n < len; n++)
        cr_assert_eq(fa_ledger_entry_parse(&e, text, n, &err), FA_EINVAL, "prefix %zu", n);
    memcpy(longer, text, len);
    longer[len] = ' ';
    cr_assert_eq(fa_ledger_entry_parse(&e, longer, len + 1, &err), FA_EINVAL);
    longer[len] = '\0';
    cr_assert_eq(fa_ledger_entry_parse(&e, longer, len + 1, &err), FA_EINVAL);
    /* Upper-case hex in the snapshot digest, then in prev_hash. */
    {
        char *up = strdup(text);
        char *p = strstr(up, "\"snapshot_sha256\":\"") + strlen("\"snapshot_sha256\":\"");
        for (; *p != '"'; p++)
            if (*p >= 'a' && *p <= 'f')
                *p = (char)(*p - 'a' + 'A');
        cr_assert_eq(fa_ledger_entry_parse(&e, up, len, &err), FA_EINVAL);
        free(up);
    }
    for (char *p = strstr(upper, "\"prev_hash\""); *p != '\0'; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    cr_assert_eq(fa_ledger_entry_parse(&e, upper, len, &err), FA_EINVAL);
    /* Over the length limit. */
    cr_assert_eq(fa_ledger_entry_parse(&e, text, FA_LEDGER_TEXT_MAX + 1, &err), FA_EINVAL);
    free(upper);
    free(longer);
    free_chain(c);
    fa_crypto_sign_key_free(key);
}

Test(ledger, encoder_refuses_out_of_domain_entries)
{
    fa_ledger_entry e;
    const fa_budget b = {10.0, 1e-5};
    fa_error err = FA_ERROR_INIT;
    char *text = NULL;
    size_t len = 0;

    fa_ledger_entry_next(&e, NULL, NULL);
    e.format = 2; /* a v2 entry: it records the RDP state */
    e.round_id = 1;
    mechanism(&e, 1.0, 2.0);
    cr_assert_eq(fa_ledger_entry_decide(&e, &b, T_ACCT, &err), FA_OK);
    snapshot_of(e.snapshot_sha256, 1);
    /* A release must name the version it produced. */
    cr_assert_eq(fa_ledger_entry_encode(&text, &len, &e, &err), FA_EINVAL);
    e.model_version = 1;
    cr_assert_eq(fa_ledger_entry_encode(&text, &len, &e, &err), FA_OK, "%s", err.msg);
    free(text);
    /* v2: a release names its snapshot, and only a release does. */
    memset(e.snapshot_sha256, 0, 32);
    cr_assert_eq(fa_ledger_entry_encode(&text, &len, &e, &err), FA_EINVAL);
    cr_assert(strstr(err.msg, "snapshot") != NULL, "%s", err.msg);
    /* v1 has no snapshot digest: a v1 release without one encodes, with one does not. */
    e.format = 1;
    cr_assert_eq(fa_ledger_entry_encode(&text, &len, &e, &err), FA_OK, "%s", err.msg);
    cr_assert(strstr(text, "snapshot_sha256") == NULL, "%s", text);
    free(text);
    snapshot_of(e.snapshot_sha256, 1);
    cr_assert_eq(fa_ledger_entry_encode(&text, &len, &e, &err), FA_EINVAL);
    e.format = 4; /* unknown */
    cr_assert_eq(fa_ledger_entry_encode(&text, &len, &e, &err), FA_EINVAL);
    e.format = 2;
    /* v2: every round-bearing entry names its round. */
    e.round_id = 0;
    cr_assert_eq(fa_ledger_entry_encode(&text, &len, &e, &err), FA_EINVAL);
    e.round_id = 1;
    e.mech.trust_policy[0] = '\0';
    cr_assert_eq(fa_ledger_entry_encode(&text, &len, &e, &err), FA_EINVAL);
    mechanism(&e, 1.0, 2.0);
    (void)snprintf(e.mech.trust_policy, sizeof(e.mech.trust_policy), "%s", "a\"b");
    cr_assert_eq(fa_ledger_entry_encode(&text, &len, &e, &err), FA_EINVAL);
    mechanism(&e, 1.0, 2.0);
    e.cumulative_rdp[5] = NAN;
    cr_assert_eq(fa_ledger_entry_encode(&text, &len, &e, &err), FA_EINVAL);
    e.cumulative_rdp[5] = -0.0;
    cr_assert_eq(fa_ledger_entry_encode(&text, &len, &e, &err), FA_EINVAL);
    e.cumulative_rdp[5] = 1.0;
    e.order = 1.25;
    cr_assert_eq(fa_ledger_entry_encode(&text, &len, &e, &err), FA_EINVAL);
    cr_assert_null(text);
}

/* ------------------------------------------------------------ decisions */

Test(ledger, refusal_and_abandonment_spend_nothing)
{
    const fa_budget b = {1.0, 1e-5};
    fa_ledger_entry first, refused, abandoned;
    unsigned char h[32] = {1};
    fa_error err = FA_ERROR_INIT;

    fa_ledger_entry_next(&first, NULL, NULL);
    first.format = 2; /* a v2 entry: it records the RDP state */
    mechanism(&first, 1.0, 5.0);
    cr_assert_eq(fa_ledger_entry_decide(&first, &b, T_ACCT, &err), FA_OK, "%s", err.msg);
    first.model_version = 1;
    fa_ledger_entry_next(&refused, &first, h);
    refused.format = 2; /* a v2 entry: it records the RDP state */
    cr_assert_eq(refused.seq, 2);
    cr_assert_eq(memcmp(refused.prev_hash, h, 32), 0);
    mechanism(&refused, 1.0, 0.5);
    cr_assert_eq(fa_ledger_entry_decide(&refused, &b, T_ACCT, &err), FA_EREFUSED);
    cr_assert_eq(refused.kind, FA_LEDGER_REFUSAL);
    cr_assert_eq(refused.model_version, 0);
    cr_assert_eq(memcmp(refused.cumulative_rdp, first.cumulative_rdp, sizeof(first.cumulative_rdp)),
                 0);
    for (size_t i = 0; i < FA_RDP_NUM_ORDERS; i++)
        cr_assert_eq(refused.round_rdp[i], 0.0);
    cr_assert_eq(refused.epsilon, first.epsilon);
    fa_ledger_entry_next(&abandoned, &refused, h);
    abandoned.format = 2; /* a v2 entry: it records the RDP state */
    mechanism(&abandoned, 1.0, 5.0);
    cr_assert_eq(fa_ledger_entry_abandon(&abandoned, &b, T_ACCT, &err), FA_OK);
    cr_assert_eq(abandoned.kind, FA_LEDGER_ABANDONMENT);
    cr_assert_eq(abandoned.seq, 3);
    cr_assert_eq(abandoned.epsilon, first.epsilon);
    cr_assert_eq(
        memcmp(abandoned.cumulative_rdp, first.cumulative_rdp, sizeof(first.cumulative_rdp)), 0);
}

Test(ledger, an_abandoned_first_round_states_epsilon_zero)
{
    const fa_budget b = {1.0, 1e-5};
    fa_ledger_entry e;
    fa_error err = FA_ERROR_INIT;

    fa_ledger_entry_next(&e, NULL, NULL);
    e.format = 2; /* a v2 entry: it records the RDP state */
    mechanism(&e, 1.0, 1.0);
    cr_assert_eq(fa_ledger_entry_abandon(&e, &b, T_ACCT, &err), FA_OK);
    cr_assert_eq(e.epsilon, 0.0);
    cr_assert_eq(e.order, 0.0);
}

/* ---------------------------------------------------------- verification */

Test(ledger, an_honest_chain_verifies)
{
    fa_crypto_sign_key *key = test_key();
    chain *c = build_chain(50, key, 6.0);
    fa_ledger_report rep;
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_ledger_verify(&rep, c->rec, c->n, fa_crypto_sign_key_public(key), &err), FA_OK,
                 "%s", err.msg);
    cr_assert_eq(rep.entries, 50);
    cr_assert_eq(rep.bad_seq, 0);
    cr_assert_eq(rep.releases + rep.refusals + rep.abandonments, 50);
    cr_assert_gt(rep.refusals, 0);
    cr_assert_eq(rep.epsilon, c->entry[49].epsilon);
    cr_assert_leq(rep.epsilon, 6.0);
    cr_assert_eq(memcmp(rep.head, c->sig[49].hash, 32), 0);
    cr_assert_eq(fa_ledger_verify(&rep, c->rec, 0, fa_crypto_sign_key_public(key), &err), FA_OK);
    free_chain(c);
    fa_crypto_sign_key_free(key);
}

Test(ledger, tampering_is_caught_at_the_right_entry)
{
    fa_crypto_sign_key *key = test_key(), *other = NULL;
    const unsigned char *pk = fa_crypto_sign_key_public(key);
    fa_error err = FA_ERROR_INIT;
    chain *c;
    char *edited;

    /* The entry text changed, hash column left alone. */
    c = build_chain(30, key, 6.0);
    edited = replace(c->rec[11].entry, "\"cohort_size\":100", "\"cohort_size\":101");
    c->rec[11].entry = edited;
    c->rec[11].entry_len = strlen(edited);
    expect_bad(c, pk, 12, "hash mismatch");
    free(edited);
    free_chain(c);

    /* A hash column changed. */
    c = build_chain(30, key, 6.0);
    c->rec[20].hash[0] ^= 1;
    expect_bad(c, pk, 21, "hash mismatch");
    free_chain(c);

    /* Text and hash changed together: the signature no longer covers them. */
    c = build_chain(30, key, 6.0);
    edited = replace(c->rec[5].entry, "\"cohort_size\":100", "\"cohort_size\":101");
    c->rec[5].entry = edited;
    c->rec[5].entry_len = strlen(edited);
    fa_sha256(c->rec[5].hash, edited, strlen(edited));
    expect_bad(c, pk, 6, "bad signature");
    free(edited);
    free_chain(c);

    /* Columns that disagree with the signed text. */
    c = build_chain(30, key, 6.0);
    c->rec[7].model_version += 1;
    expect_bad(c, pk, 8, "model_version column");
    c->rec[7].model_version -= 1;
    c->rec[7].cumulative_epsilon *= 1.5;
    expect_bad(c, pk, 8, "cumulative_epsilon column");
    c->rec[7].cumulative_epsilon = c->entry[7].epsilon;
    c->rec[7].kind = c->entry[7].kind == FA_LEDGER_REFUSAL ? "release" : "refusal";
    expect_bad(c, pk, 8, "kind column");
    c->rec[7].kind = fa_ledger_kind_name(c->entry[7].kind);
    c->rec[7].round_id = 99;
    expect_bad(c, pk, 8, "round_id column");
    c->rec[7].round_id = c->entry[7].round_id;
    c->rec[7].prev_hash[3] ^= 4;
    expect_bad(c, pk, 8, "prev_hash column");
    free_chain(c);

    /* Two entries swapped (each keeps its own text and seq column order). */
    c = build_chain(30, key, 6.0);
    {
        fa_ledger_record t = c->rec[9];
        c->rec[9] = c->rec[10];
        c->rec[10] = t;
        c->rec[9].seq = 10;
        c->rec[10].seq = 11;
    }
    expect_bad(c, pk, 10, "seq column");
    free_chain(c);

    /* One entry deleted. */
    c = build_chain(30, key, 6.0);
    memmove(&c->rec[14], &c->rec[15], (c->n - 15) * sizeof(c->rec[0]));
    c->n--;
    expect_bad(c, pk, 15, "missing");
    c->n++; /* free_chain frees every signed text */
    free_chain(c);

    /* Signed with another key: every entry fails, the first is named. */
    cr_assert_eq(fa_crypto_sign_key_generate(&other, &err), FA_OK);
    c = build_chain(30, other, 6.0);
    expect_bad(c, pk, 1, "bad signature");
    free_chain(c);
    /* One entry re-signed by another key. */
    c = build_chain(30, key, 6.0);
    resign(c, 17, other);
    expect_bad(c, pk, 18, "bad signature");
    free_chain(c);
    fa_crypto_sign_key_free(other);
    fa_crypto_sign_key_free(key);
}

Test(ledger, a_key_holder_cannot_understate_the_spend)
{
    fa_crypto_sign_key *key = test_key();
    const unsigned char *pk = fa_crypto_sign_key_public(key);
    chain *c;
    size_t i;

    /* A release whose recorded RDP is smaller than its (q, sigma) implies. */
    c = build_chain(30, key, 6.0);
    for (i = 0; c->entry[i].kind != FA_LEDGER_RELEASE || i < 3; i++)
        ;
    c->entry[i].round_rdp[50] *= 0.5;
    resign(c, i, key);
    expect_bad(c, pk, (int64_t)i + 1, "round rdp at order");
    free_chain(c);

    /* A cumulative vector that forgot earlier rounds. */
    c = build_chain(30, key, 6.0);
    memcpy(c->entry[12].cumulative_rdp, c->entry[12].round_rdp,
           sizeof(c->entry[12].cumulative_rdp));
    resign(c, 12, key);
    expect_bad(c, pk, 13, "cumulative rdp at order");
    free_chain(c);

    /* A smaller epsilon than the vector gives. */
    c = build_chain(30, key, 6.0);
    c->entry[8].epsilon *= 0.9;
    resign(c, 8, key);
    c->rec[8].cumulative_epsilon = c->entry[8].epsilon;
    expect_bad(c, pk, 9, "epsilon is");
    free_chain(c);

    /* A release recorded past its budget. */
    c = build_chain(30, key, 6.0);
    for (i = 0; c->entry[i].kind != FA_LEDGER_REFUSAL; i++)
        ;
    c->entry[i].kind = FA_LEDGER_RELEASE;
    {
        int64_t before = 0; /* releases before entry i: it must produce the next version */
        for (size_t k = 0; k < i; k++)
            before += c->entry[k].kind == FA_LEDGER_RELEASE;
        c->entry[i].model_version = before + 1;
        snapshot_of(c->entry[i].snapshot_sha256, before + 1);
    }
    {
        double one[FA_RDP_NUM_ORDERS];
        fa_error err = FA_ERROR_INIT;
        cr_assert_eq(fa_rdp_sgm(one, c->entry[i].mech.sampling_rate,
                                c->entry[i].mech.noise_multiplier, &err),
                     FA_OK);
        memcpy(c->entry[i].round_rdp, one, sizeof(one));
        fa_rdp_add(c->entry[i].cumulative_rdp, one, 1.0);
        cr_assert_eq(fa_rdp_epsilon(&c->entry[i].epsilon, &c->entry[i].order,
                                    c->entry[i].cumulative_rdp, c->entry[i].delta, &err),
                     FA_OK);
    }
    resign(c, i, key);
    c->rec[i].kind = "release";
    c->rec[i].model_version = c->entry[i].model_version;
    c->rec[i].cumulative_epsilon = c->entry[i].epsilon;
    expect_bad(c, pk, (int64_t)i + 1, "over its budget");
    free_chain(c);
    fa_crypto_sign_key_free(key);
}

/* --------------------------------------------------------- format v2 */

Test(ledger, a_v2_entry_names_its_snapshot_and_round_trips)
{
    fa_crypto_sign_key *key = test_key();
    chain *c = build_chain(12, key, 50.0);
    fa_error err = FA_ERROR_INIT;
    char want[120], hex[65];

    for (size_t i = 0; i < c->n; i++) {
        const fa_ledger_entry *e = &c->entry[i];
        fa_ledger_entry back;
        char *again = NULL;
        size_t again_len = 0;

        /* The digest sits right after model_version, zeros unless a release. */
        fa_hex_encode(hex, e->snapshot_sha256, 32);
        (void)snprintf(want, sizeof(want), "\"model_version\":%lld,\"snapshot_sha256\":\"%s\",",
                       (long long)e->model_version, hex);
        cr_assert(strncmp(c->sig[i].text, "{\"format\":\"fedagg-ledger-v2\",", 29) == 0, "%s",
                  c->sig[i].text);
        cr_assert(strstr(c->sig[i].text, want) != NULL, "%s not in %s", want, c->sig[i].text);
        cr_assert_eq(fa_ledger_entry_parse(&back, c->sig[i].text, c->sig[i].text_len, &err), FA_OK,
                     "%s", err.msg);
        cr_assert_eq(back.format, 2);
        cr_assert_eq(memcmp(back.snapshot_sha256, e->snapshot_sha256, 32), 0);
        cr_assert_eq(fa_ledger_entry_encode(&again, &again_len, &back, &err), FA_OK, "%s", err.msg);
        cr_assert_eq(again_len, c->sig[i].text_len);
        cr_assert_eq(memcmp(again, c->sig[i].text, again_len), 0);
        free(again);
    }
    free_chain(c);
    fa_crypto_sign_key_free(key);
}

/* Reads the n-th (text, hash, signature) triple of a ledger vector file. */
static void vector_entry(char *text, unsigned char hash[32], unsigned char sig[64],
                         const char *file, int nth)
{
    FILE *f = fa_vectors_open(file);
    char hash_hex[80], sig_hex[160];

    for (int k = 0; k <= nth; k++) {
        cr_assert(fa_vectors_next(f, text, FA_LEDGER_TEXT_MAX + 2));
        cr_assert(fa_vectors_next(f, hash_hex, sizeof(hash_hex)));
        cr_assert(fa_vectors_next(f, sig_hex, sizeof(sig_hex)));
    }
    fclose(f);
    fa_vectors_hex(hash, 32, hash_hex);
    fa_vectors_hex(sig, 64, sig_hex);
}

Test(ledger, v2_encoding_matches_the_independent_vector)
{
    char *text = malloc(FA_LEDGER_TEXT_MAX + 2), *budget_text = malloc(FA_LEDGER_TEXT_MAX + 2);
    unsigned char want_hash[32], want_sig[64], budget_hash[32], budget_sig[64];
    fa_crypto_sign_key *key = test_key();
    const unsigned char *pk = fa_crypto_sign_key_public(key);
    const fa_budget b = {50.0, 1e-5}, b2 = {60.0, 1e-6};
    fa_ledger_entry e, budget, back;
    fa_ledger_signed s;
    fa_ledger_record rec[2];
    fa_ledger_report rep;
    fa_error err = FA_ERROR_INIT;

    cr_assert_not_null(text);
    cr_assert_not_null(budget_text);
    vector_entry(text, want_hash, want_sig, "ledger_entry_v2.txt", 0);
    vector_entry(budget_text, budget_hash, budget_sig, "ledger_entry_v2.txt", 1);

    /* The release, built here, is the vector's bytes. */
    fa_ledger_entry_next(&e, NULL, NULL);
    e.format = 2; /* a v2 entry: it records the RDP state */
    e.round_id = 1;
    e.created_at = 1700000000;
    mechanism(&e, 1.0, 2.0);
    cr_assert_eq(fa_ledger_entry_decide(&e, &b, T_ACCT, &err), FA_OK, "%s", err.msg);
    e.model_version = 1;
    fa_sha256(e.snapshot_sha256, "fedagg snapshot 1", strlen("fedagg snapshot 1"));
    cr_assert_eq(fa_ledger_sign(&s, &e, key, &err), FA_OK, "%s", err.msg);
    cr_assert_str_eq(s.text, text);
    cr_assert_eq(memcmp(s.hash, want_hash, 32), 0);
    cr_assert_eq(memcmp(s.signature, want_sig, 64), 0);
    fa_ledger_signed_done(&s);

    /* The budget event: same fields; its epsilon, restated at delta 1e-6 by
     * Python's conversion, agrees with ours to the verifier's tolerance. */
    fa_ledger_entry_next(&budget, &e, want_hash);
    budget.format = 2; /* a v2 entry: it records the RDP state */
    budget.created_at = 1700000600;
    mechanism(&budget, 1.0, 2.0);
    budget.mech.cohort_size = 0;
    cr_assert_eq(fa_ledger_entry_budget(&budget, &b2, T_ACCT, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(fa_ledger_entry_parse(&back, budget_text, strlen(budget_text), &err), FA_OK, "%s",
                 err.msg);
    cr_assert_eq(back.kind, FA_LEDGER_BUDGET);
    cr_assert_eq(back.format, 2);
    cr_assert_eq(back.round_id, 0);
    cr_assert_eq(back.epsilon_max, 60.0);
    cr_assert_eq(back.delta, 1e-6);
    cr_assert_eq(back.order, budget.order);
    cr_assert(fabs(back.epsilon - budget.epsilon) <= 1e-12 * budget.epsilon, "%.17g vs %.17g",
              back.epsilon, budget.epsilon);
    cr_assert_eq(memcmp(back.prev_hash, want_hash, 32), 0);

    /* The two vector entries verify as a chain under the RFC 8032 key. */
    memset(rec, 0, sizeof(rec));
    rec[0] = (fa_ledger_record){1, "release", 1, 1, e.epsilon, text, strlen(text), {0}, {0}, {0}};
    memcpy(rec[0].hash, want_hash, 32);
    memcpy(rec[0].signature, want_sig, 64);
    rec[1] = (fa_ledger_record){
        2, "budget", 0, 0, back.epsilon, budget_text, strlen(budget_text), {0}, {0}, {0}};
    memcpy(rec[1].prev_hash, want_hash, 32);
    memcpy(rec[1].hash, budget_hash, 32);
    memcpy(rec[1].signature, budget_sig, 64);
    cr_assert_eq(fa_ledger_verify(&rep, rec, 2, pk, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(rep.budget_changes, 1);
    cr_assert_eq(rep.epsilon_max, 60.0);
    cr_assert_eq(rep.delta, 1e-6);
    fa_crypto_sign_key_free(key);
    free(text);
    free(budget_text);
}

Test(ledger, a_v1_entry_still_parses_and_reencodes_byte_for_byte)
{
    char *text = malloc(FA_LEDGER_TEXT_MAX + 2);
    unsigned char hash[32], sig[64], digest[32];
    fa_crypto_sign_key *key = test_key();
    fa_ledger_entry e, rec_e;
    fa_ledger_record rec;
    fa_error err = FA_ERROR_INIT;
    char *again = NULL;
    size_t again_len = 0;

    cr_assert_not_null(text);
    vector_entry(text, hash, sig, "ledger_entry_v1.txt", 0);
    cr_assert_eq(fa_ledger_entry_parse(&e, text, strlen(text), &err), FA_OK, "%s", err.msg);
    cr_assert_eq(e.format, 1);
    for (size_t i = 0; i < 32; i++)
        cr_assert_eq(e.snapshot_sha256[i], 0);
    cr_assert_eq(fa_ledger_entry_encode(&again, &again_len, &e, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(again_len, strlen(text));
    cr_assert_eq(memcmp(again, text, again_len), 0);
    fa_sha256(digest, again, again_len);
    cr_assert_eq(memcmp(digest, hash, 32), 0);
    free(again);

    /* As a stored record it passes the record check under the vector's key. */
    memset(&rec, 0, sizeof(rec));
    rec.seq = 1;
    rec.kind = "release";
    rec.round_id = 7;
    rec.model_version = 3;
    rec.cumulative_epsilon = e.epsilon;
    rec.entry = text;
    rec.entry_len = strlen(text);
    memcpy(rec.hash, hash, 32);
    memcpy(rec.signature, sig, 64);
    cr_assert_eq(fa_ledger_record_check(&rec_e, &rec, fa_crypto_sign_key_public(key), &err), FA_OK,
                 "%s", err.msg);
    cr_assert_eq(rec_e.format, 1);

    /* A budget entry cannot be written in v1. */
    fa_ledger_entry_next(&e, NULL, NULL);
    mechanism(&e, 1.0, 2.0);
    {
        const fa_budget b = {10.0, 1e-5};
        cr_assert_eq(fa_ledger_entry_budget(&e, &b, T_ACCT, &err), FA_OK, "%s", err.msg);
    }
    e.format = 1;
    cr_assert_eq(fa_ledger_entry_encode(&again, &again_len, &e, &err), FA_EINVAL);
    cr_assert(strstr(err.msg, "v2") != NULL, "%s", err.msg);
    fa_crypto_sign_key_free(key);
    free(text);
}

Test(ledger, a_chain_started_in_v1_and_continued_in_v2_verifies)
{
    fa_crypto_sign_key *key = test_key();
    chain *c = build_chain_v1(40, key, 6.0, 17);
    fa_ledger_version versions[64];
    fa_ledger_report rep;
    fa_error err = FA_ERROR_INIT;
    size_t nv;

    cr_assert(strncmp(c->sig[16].text, "{\"format\":\"fedagg-ledger-v1\"", 28) == 0);
    cr_assert(strncmp(c->sig[17].text, "{\"format\":\"fedagg-ledger-v2\"", 28) == 0);
    cr_assert_eq(fa_ledger_verify(&rep, c->rec, c->n, fa_crypto_sign_key_public(key), &err), FA_OK,
                 "%s", err.msg);
    cr_assert_eq(rep.entries, 40);
    cr_assert_gt(rep.refusals, 0);
    cr_assert_eq(rep.budget_changes, 0);
    cr_assert_eq(rep.epsilon_max, 6.0);
    /* v1 releases name no digest: only the v2 ones are compared. */
    nv = chain_versions(versions, c);
    for (size_t i = 0; i < nv; i++)
        if (versions[i].version >= 1 && versions[i].version <= 3)
            memset(versions[i].sha256, 0x5a, 32);
    cr_assert_eq(fa_ledger_verify_versions(&rep, c->rec, c->n, versions, nv, &err), FA_OK, "%s",
                 err.msg);
    free_chain(c);
    fa_crypto_sign_key_free(key);
}

Test(ledger, a_v1_entry_after_a_v2_entry_is_refused)
{
    fa_crypto_sign_key *key = test_key();
    const fa_budget b = {50.0, 1e-5};
    chain *c = build_chain_v1(6, key, 50.0, 3);

    /* Falling back to v1 would drop the snapshot digest and the budget rule. */
    chain_push(c, key, 1, STEP_ROUND, &b);
    expect_bad(c, fa_crypto_sign_key_public(key), 7, "a v1 entry follows a v2 entry");
    free_chain(c);
    fa_crypto_sign_key_free(key);
}

/* ------------------------------------------------------------- budget */

Test(ledger, a_budget_entry_changes_the_budget_in_force)
{
    fa_crypto_sign_key *key = test_key();
    const unsigned char *pk = fa_crypto_sign_key_public(key);
    const fa_budget b1 = {3.0, 1e-5}, b2 = {6.0, 1e-6};
    chain *c = calloc(1, sizeof(*c));
    fa_ledger_report rep;
    fa_error err = FA_ERROR_INIT;
    size_t at;

    cr_assert_not_null(c);
    for (int i = 0; i < 12; i++)
        chain_push(c, key, 2, STEP_ROUND, &b1);
    cr_assert_eq(c->entry[c->n - 1].kind, FA_LEDGER_REFUSAL, "the small budget runs out");
    at = c->n;
    chain_push(c, key, 2, STEP_BUDGET, &b2);
    cr_assert_eq(c->entry[at].kind, FA_LEDGER_BUDGET);
    cr_assert_eq(c->entry[at].round_id, 0);
    cr_assert_eq(memcmp(c->entry[at].cumulative_rdp, c->entry[at - 1].cumulative_rdp,
                        sizeof(c->entry[at].cumulative_rdp)),
                 0, "a budget event spends nothing");
    cr_assert_gt(c->entry[at].epsilon, c->entry[at - 1].epsilon, "restated at a smaller delta");
    for (int i = 0; i < 8; i++)
        chain_push(c, key, 2, i == 3 ? STEP_ABANDON : STEP_ROUND, &b2);
    cr_assert_eq(c->entry[at + 1].kind, FA_LEDGER_RELEASE, "the larger budget releases again");

    cr_assert_eq(fa_ledger_verify(&rep, c->rec, c->n, pk, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(rep.budget_changes, 1);
    cr_assert_eq(rep.epsilon_max, 6.0);
    cr_assert_eq(rep.delta, 1e-6);
    cr_assert_eq(rep.entries, c->n);

    /* The same change without the budget event is caught where it shows. */
    memmove(&c->entry[at], &c->entry[at + 1], (c->n - at - 1) * sizeof(c->entry[0]));
    fa_ledger_signed_done(&c->sig[at]);
    memmove(&c->sig[at], &c->sig[at + 1], (c->n - at - 1) * sizeof(c->sig[0]));
    c->n--;
    for (size_t k = at; k < c->n; k++)
        c->entry[k].seq = (int64_t)k + 1;
    resign_from(c, at, key);
    expect_bad(c, pk, (int64_t)at + 1, "budget changed without a budget entry");
    free_chain(c);
    fa_crypto_sign_key_free(key);
}

Test(ledger, a_v1_entry_may_state_a_new_budget)
{
    fa_crypto_sign_key *key = test_key();
    const fa_budget b1 = {5.0, 1e-5}, b2 = {9.0, 1e-5};
    chain *c = calloc(1, sizeof(*c));
    fa_ledger_report rep;
    fa_error err = FA_ERROR_INIT;

    /* Before v2 there was no budget event: each v1 entry stated its budget. */
    cr_assert_not_null(c);
    for (int i = 0; i < 6; i++)
        chain_push(c, key, 1, STEP_ROUND, i < 3 ? &b1 : &b2);
    for (int i = 0; i < 4; i++)
        chain_push(c, key, 2, STEP_ROUND, &b2);
    cr_assert_eq(fa_ledger_verify(&rep, c->rec, c->n, fa_crypto_sign_key_public(key), &err), FA_OK,
                 "%s", err.msg);
    cr_assert_eq(rep.epsilon_max, 9.0);
    free_chain(c);
    fa_crypto_sign_key_free(key);
}

/* ------------------------------------------------ versions, rounds, seeds */

Test(ledger, releases_must_produce_versions_in_order)
{
    fa_crypto_sign_key *key = test_key();
    const unsigned char *pk = fa_crypto_sign_key_public(key);
    chain *c = build_chain(20, key, 50.0);
    size_t i = 6;

    cr_assert_eq(c->entry[i].kind, FA_LEDGER_RELEASE);
    cr_assert_eq(c->entry[i].model_version, 6);
    /* Version 7 where 6 was due: as if the release of 6 had been removed. */
    c->entry[i].model_version = 7;
    snapshot_of(c->entry[i].snapshot_sha256, 7);
    c->rec[i].model_version = 7;
    resign_from(c, i, key);
    expect_bad(c, pk, 7, "release produces version 7, expected 6");
    free_chain(c);

    /* A version produced twice. */
    c = build_chain(20, key, 50.0);
    c->entry[i].model_version = 5;
    snapshot_of(c->entry[i].snapshot_sha256, 5);
    resign_from(c, i, key);
    expect_bad(c, pk, 7, "release produces version 5, expected 6");
    free_chain(c);
    fa_crypto_sign_key_free(key);
}

Test(ledger, round_ids_must_increase)
{
    fa_crypto_sign_key *key = test_key();
    const unsigned char *pk = fa_crypto_sign_key_public(key);
    chain *c = build_chain(20, key, 50.0);

    /* Entry 9 repeats round 8 (an abandonment can repeat a round as well). */
    c->entry[8].round_id = 8;
    resign_from(c, 8, key);
    expect_bad(c, pk, 9, "round id 8 does not follow round id 8");
    free_chain(c);

    c = build_chain(20, key, 50.0);
    c->entry[4].round_id = 2;
    resign_from(c, 4, key);
    expect_bad(c, pk, 5, "round id 2 does not follow round id 4");
    free_chain(c);
    fa_crypto_sign_key_free(key);
}

Test(ledger, seeded_releases_are_counted)
{
    fa_crypto_sign_key *key = test_key();
    const fa_budget b = {50.0, 1e-5};
    chain *c = calloc(1, sizeof(*c));
    fa_ledger_report rep;
    fa_error err = FA_ERROR_INIT;
    int64_t seeded = 0;

    cr_assert_not_null(c);
    for (int i = 0; i < 10; i++)
        chain_push(c, key, 2, i == 4 ? STEP_ABANDON : STEP_ROUND, &b);
    cr_assert_eq(fa_ledger_verify(&rep, c->rec, c->n, fa_crypto_sign_key_public(key), &err), FA_OK,
                 "%s", err.msg);
    cr_assert_eq(rep.seeded_releases, 0);
    /* Rounds 3, 5 (an abandonment: not a release) and 8 ran on seeded noise. */
    c->entry[2].mech.seeded = 1;
    c->entry[4].mech.seeded = 1;
    c->entry[7].mech.seeded = 1;
    resign_from(c, 2, key);
    for (size_t i = 0; i < c->n; i++)
        seeded += c->entry[i].kind == FA_LEDGER_RELEASE && c->entry[i].mech.seeded;
    cr_assert_eq(seeded, 2);
    cr_assert_eq(fa_ledger_verify(&rep, c->rec, c->n, fa_crypto_sign_key_public(key), &err), FA_OK,
                 "%s", err.msg);
    cr_assert_eq(rep.seeded_releases, 2);
    free_chain(c);
    fa_crypto_sign_key_free(key);
}

/* ------------------------------------------------------ one record alone */

Test(ledger, record_check_passes_a_good_record_and_names_a_bad_one)
{
    fa_crypto_sign_key *key = test_key(), *other = NULL;
    const unsigned char *pk = fa_crypto_sign_key_public(key);
    chain *c = build_chain(10, key, 50.0);
    fa_ledger_record r;
    fa_ledger_entry e;
    fa_error err = FA_ERROR_INIT;
    unsigned char sig[64];

    cr_assert_eq(fa_ledger_record_check(&e, &c->rec[5], pk, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(e.seq, 6);
    cr_assert_eq(memcmp(&e, &c->entry[5], sizeof(e)), 0);

    r = c->rec[5];
    r.hash[7] ^= 1;
    cr_assert_eq(fa_ledger_record_check(&e, &r, pk, &err), FA_ECONFLICT);
    cr_assert_str_eq(err.msg, "ledger entry 6: hash mismatch");

    cr_assert_eq(fa_crypto_sign_key_generate(&other, &err), FA_OK);
    r = c->rec[5];
    fa_crypto_sign(sig, other, r.hash, 32);
    memcpy(r.signature, sig, 64);
    cr_assert_eq(fa_ledger_record_check(&e, &r, pk, &err), FA_ECONFLICT);
    cr_assert_str_eq(err.msg, "ledger entry 6: bad signature");

    r = c->rec[5];
    r.cumulative_epsilon /= 2;
    cr_assert_eq(fa_ledger_record_check(&e, &r, pk, &err), FA_ECONFLICT);
    cr_assert(strstr(err.msg, "ledger entry 6: cumulative_epsilon column") == err.msg, "%s",
              err.msg);
    r = c->rec[5];
    r.seq = 7;
    cr_assert_eq(fa_ledger_record_check(&e, &r, pk, &err), FA_ECONFLICT);
    cr_assert(strstr(err.msg, "seq column") != NULL, "%s", err.msg);
    r = c->rec[5];
    r.entry_len--;
    cr_assert_eq(fa_ledger_record_check(&e, &r, pk, &err), FA_ECONFLICT);
    cr_assert_str_eq(err.msg, "ledger entry 6: hash mismatch");
    fa_crypto_sign_key_free(other);
    free_chain(c);
    fa_crypto_sign_key_free(key);
}

/* ---------------------------------------------- the ledger and the versions */

Test(ledger, versions_and_releases_must_match)
{
    fa_crypto_sign_key *key = test_key();
    const unsigned char *pk = fa_crypto_sign_key_public(key);
    chain *c = build_chain(30, key, 50.0);
    fa_ledger_version versions[64], swapped;
    fa_ledger_report rep;
    fa_error err = FA_ERROR_INIT;
    size_t nv = chain_versions(versions, c), cut;

    cr_assert_eq(fa_ledger_verify(&rep, c->rec, c->n, pk, &err), FA_OK, "%s", err.msg);
    /* Any order. */
    swapped = versions[1];
    versions[1] = versions[nv - 1];
    versions[nv - 1] = swapped;
    cr_assert_eq(fa_ledger_verify_versions(&rep, c->rec, c->n, versions, nv, &err), FA_OK, "%s",
                 err.msg);
    cr_assert_eq(rep.bad_seq, 0);
    nv = chain_versions(versions, c);

    /* The tail cut off: the last two entries (a release among them) are gone,
     * the chain that is left verifies, but a published version has no entry. */
    cut = c->n - 2;
    cr_assert(c->entry[cut].kind == FA_LEDGER_RELEASE ||
              c->entry[cut + 1].kind == FA_LEDGER_RELEASE);
    cr_assert_eq(fa_ledger_verify(&rep, c->rec, cut, pk, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(fa_ledger_verify_versions(&rep, c->rec, cut, versions, nv, &err), FA_ECONFLICT);
    cr_assert_eq(rep.bad_seq, (int64_t)cut + 1);
    cr_assert(strstr(rep.reason, "missing: published version") != NULL, "%s", rep.reason);
    cr_assert(strstr(err.msg, "has no release entry") != NULL, "%s", err.msg);

    /* A release whose version is not published (its row deleted). */
    versions[5] = versions[nv - 1];
    cr_assert_eq(fa_ledger_verify_versions(&rep, c->rec, c->n, versions, nv - 1, &err),
                 FA_ECONFLICT);
    cr_assert(strstr(err.msg, "release produces version 5, which is not published") != NULL, "%s",
              err.msg);
    nv = chain_versions(versions, c);

    /* A published snapshot that is not the one the release signed. */
    versions[3].sha256[0] ^= 0x80;
    cr_assert_eq(fa_ledger_verify_versions(&rep, c->rec, c->n, versions, nv, &err), FA_ECONFLICT);
    cr_assert(strstr(err.msg, "snapshot sha256 differs from published version 3") != NULL, "%s",
              err.msg);
    free_chain(c);

    /* An empty ledger with only the initial model holds; with version 1 it does not. */
    versions[0].version = 0;
    versions[1].version = 1;
    cr_assert_eq(fa_ledger_verify_versions(&rep, NULL, 0, versions, 1, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(fa_ledger_verify_versions(&rep, NULL, 0, versions, 2, &err), FA_ECONFLICT);
    cr_assert_eq(rep.bad_seq, 1);
    fa_crypto_sign_key_free(key);
}

/* --------------------------------------------------------- format v3 */

/* n entries in format 3 accounted by kind (every 5th round abandoned, refusals past eps_max). */
static chain *build_chain_v3(size_t n, const fa_crypto_sign_key *key, double eps_max,
                             fa_accountant_kind kind)
{
    chain *c = calloc(1, sizeof(*c));
    const fa_budget b = {eps_max, 1e-5};

    cr_assert_not_null(c);
    c->kind = kind;
    for (size_t i = 0; i < n; i++)
        chain_push(c, key, 3, i % 5 == 4 ? STEP_ABANDON : STEP_ROUND, &b);
    return c;
}

/* Epsilon of c's first `upto` entries' releases, composed one by one by kind from scratch. */
static double releases_epsilon(const chain *c, size_t upto, fa_accountant_kind kind, double delta)
{
    fa_accountant *a = NULL;
    fa_error err = FA_ERROR_INIT;
    double eps = 0.0;

    cr_assert_eq(fa_accountant_new(&a, kind, &err), FA_OK, "%s", err.msg);
    for (size_t i = 0; i < upto; i++)
        if (c->entry[i].kind == FA_LEDGER_RELEASE)
            cr_assert_eq(fa_accountant_compose(a, c->entry[i].mech.sampling_rate,
                                               c->entry[i].mech.noise_multiplier, 1, &err),
                         FA_OK, "%s", err.msg);
    cr_assert_eq(fa_accountant_epsilon(&eps, a, delta, &err), FA_OK, "%s", err.msg);
    fa_accountant_free(a);
    return eps;
}

/* Re-signs entry i of c after its epsilon changed, keeping the column in step. */
static void resign_eps(chain *c, size_t i, const fa_crypto_sign_key *key)
{
    resign(c, i, key);
    c->rec[i].cumulative_epsilon = c->entry[i].epsilon;
}

Test(ledger, a_v3_entry_records_the_mechanism_and_verifies_by_recomputation)
{
    fa_crypto_sign_key *key = test_key();
    chain *c = build_chain_v3(30, key, 6.0, FA_ACCOUNTANT_PLD);
    fa_ledger_report rep;
    fa_error err = FA_ERROR_INIT;
    int64_t refusals = 0;

    for (size_t i = 0; i < c->n; i++) {
        fa_ledger_entry back;
        cr_assert(strncmp(c->sig[i].text, "{\"format\":\"fedagg-ledger-v3\",", 29) == 0, "%s",
                  c->sig[i].text);
        cr_assert_lt(c->sig[i].text_len, 1024, "entry %zu is %zu bytes", i, c->sig[i].text_len);
        cr_assert(strstr(c->sig[i].text, ",\"accountant\":\"pld-sgm-v1\",\"epsilon\":") != NULL,
                  "%s", c->sig[i].text);
        cr_assert(strstr(c->sig[i].text, "rdp\"") == NULL &&
                      strstr(c->sig[i].text, "order") == NULL,
                  "%s", c->sig[i].text);
        cr_assert_eq(fa_ledger_entry_parse(&back, c->sig[i].text, c->sig[i].text_len, &err), FA_OK,
                     "%s", err.msg);
        cr_assert_eq(back.format, 3);
        cr_assert_eq(back.accountant, FA_ACCOUNTANT_PLD);
        cr_assert_eq(back.epsilon, c->entry[i].epsilon);
        /* Each epsilon is the PLD of the releases so far, composed afresh. */
        cr_assert_eq(c->entry[i].epsilon,
                     releases_epsilon(c, i + 1, FA_ACCOUNTANT_PLD, c->entry[i].delta), "entry %zu",
                     i);
        refusals += c->entry[i].kind == FA_LEDGER_REFUSAL;
    }
    cr_assert_gt(refusals, 0, "the budget of 6 runs out within 30 rounds");
    cr_assert_eq(fa_ledger_verify(&rep, c->rec, c->n, fa_crypto_sign_key_public(key), &err), FA_OK,
                 "%s", err.msg);
    cr_assert_eq(rep.accountant, FA_ACCOUNTANT_PLD);
    cr_assert_eq(rep.refusals, refusals);
    cr_assert_leq(rep.epsilon, 6.0);
    /* PLD states less than RDP for the same releases. */
    cr_assert_lt(rep.epsilon, releases_epsilon(c, c->n, FA_ACCOUNTANT_RDP, 1e-5));
    free_chain(c);

    /* The RDP accountant in v3: the same shape, verified the same way. */
    c = build_chain_v3(20, key, 6.0, FA_ACCOUNTANT_RDP);
    cr_assert(strstr(c->sig[0].text, ",\"accountant\":\"rdp-sgm-v1\",\"epsilon\":") != NULL, "%s",
              c->sig[0].text);
    cr_assert_eq(fa_ledger_verify(&rep, c->rec, c->n, fa_crypto_sign_key_public(key), &err), FA_OK,
                 "%s", err.msg);
    cr_assert_eq(rep.accountant, FA_ACCOUNTANT_RDP);
    cr_assert_eq(rep.epsilon, releases_epsilon(c, c->n, FA_ACCOUNTANT_RDP, 1e-5));
    free_chain(c);
    fa_crypto_sign_key_free(key);
}

Test(ledger, a_ledger_from_v1_through_v2_rdp_to_v3_pld_verifies)
{
    fa_crypto_sign_key *key = test_key();
    const fa_budget b = {50.0, 1e-5};
    chain *c = calloc(1, sizeof(*c));
    fa_ledger_report rep;
    fa_error err = FA_ERROR_INIT;

    cr_assert_not_null(c);
    for (size_t i = 0; i < 12; i++)
        chain_push(c, key, i < 4 ? 1 : 2, STEP_ROUND, &b);
    /* The upgrade: a budget event in v3 names the new accountant and
     * restates the same releases in it. */
    c->kind = FA_ACCOUNTANT_PLD;
    chain_push(c, key, 3, STEP_BUDGET, &b);
    cr_assert_eq(c->entry[12].kind, FA_LEDGER_BUDGET);
    cr_assert_lt(c->entry[12].epsilon, c->entry[11].epsilon, "PLD %g, RDP %g", c->entry[12].epsilon,
                 c->entry[11].epsilon);
    cr_assert_eq(c->entry[12].epsilon, releases_epsilon(c, 12, FA_ACCOUNTANT_PLD, 1e-5));
    for (size_t i = 0; i < 10; i++)
        chain_push(c, key, 3, i % 5 == 4 ? STEP_ABANDON : STEP_ROUND, &b);
    cr_assert_eq(fa_ledger_verify(&rep, c->rec, c->n, fa_crypto_sign_key_public(key), &err), FA_OK,
                 "%s", err.msg);
    cr_assert_eq(rep.entries, 23);
    cr_assert_eq(rep.budget_changes, 1);
    cr_assert_eq(rep.accountant, FA_ACCOUNTANT_PLD);
    cr_assert_eq(rep.epsilon, releases_epsilon(c, c->n, FA_ACCOUNTANT_PLD, 1e-5));
    free_chain(c);
    fa_crypto_sign_key_free(key);
}

Test(ledger, v3_tampering_with_a_recorded_mechanism_is_caught)
{
    fa_crypto_sign_key *key = test_key();
    const unsigned char *pk = fa_crypto_sign_key_public(key);
    chain *c;
    size_t i;

    /* A release's sigma raised after the fact (re-signed by the key holder):
     * its stated epsilon no longer follows from the mechanisms. */
    c = build_chain_v3(20, key, 50.0, FA_ACCOUNTANT_PLD);
    c->entry[6].mech.noise_multiplier *= 1.01;
    resign(c, 6, key);
    expect_bad(c, pk, 7, "epsilon is");
    free_chain(c);

    /* Its sampling rate lowered. */
    c = build_chain_v3(20, key, 50.0, FA_ACCOUNTANT_PLD);
    cr_assert_eq(c->entry[8].kind, FA_LEDGER_RELEASE);
    c->entry[8].mech.sampling_rate *= 0.5;
    resign(c, 8, key);
    expect_bad(c, pk, 9, "epsilon is");
    free_chain(c);

    /* An epsilon understated by 1%. */
    c = build_chain_v3(20, key, 50.0, FA_ACCOUNTANT_PLD);
    c->entry[13].epsilon *= 0.99;
    resign_eps(c, 13, key);
    expect_bad(c, pk, 14, "epsilon is");
    free_chain(c);

    /* The accountant swapped without a budget event, its epsilon made consistent. */
    c = build_chain_v3(20, key, 50.0, FA_ACCOUNTANT_RDP);
    c->entry[8].accountant = FA_ACCOUNTANT_PLD;
    c->entry[8].epsilon = releases_epsilon(c, 9, FA_ACCOUNTANT_PLD, 1e-5);
    resign_eps(c, 8, key);
    expect_bad(c, pk, 9, "accountant changed without a budget entry");
    free_chain(c);

    /* Falling back to v2 after v3. */
    c = build_chain_v3(6, key, 50.0, FA_ACCOUNTANT_RDP);
    {
        const fa_budget b = {50.0, 1e-5};
        chain_push(c, key, 2, STEP_ROUND, &b);
    }
    expect_bad(c, pk, 7, "a v2 entry follows a v3 entry");
    free_chain(c);

    /* A release recorded as a refusal (it fit the budget). */
    c = build_chain_v3(20, key, 50.0, FA_ACCOUNTANT_PLD);
    for (i = 3; c->entry[i].kind != FA_LEDGER_RELEASE; i++)
        ;
    c->entry[i].kind = FA_LEDGER_REFUSAL;
    c->entry[i].model_version = 0;
    memset(c->entry[i].snapshot_sha256, 0, 32);
    c->entry[i].epsilon = c->entry[i - 1].epsilon;
    resign_eps(c, i, key);
    c->rec[i].kind = "refusal";
    c->rec[i].model_version = 0;
    expect_bad(c, pk, (int64_t)i + 1, "refused a release that fit");
    free_chain(c);

    /* A refusal recorded as a release (it did not fit). */
    c = build_chain_v3(30, key, 6.0, FA_ACCOUNTANT_PLD);
    for (i = 0; c->entry[i].kind != FA_LEDGER_REFUSAL; i++)
        ;
    {
        int64_t before = 0;
        fa_accountant *a = NULL;
        fa_error err = FA_ERROR_INIT;
        for (size_t k = 0; k < i; k++)
            before += c->entry[k].kind == FA_LEDGER_RELEASE;
        c->entry[i].kind = FA_LEDGER_RELEASE;
        c->entry[i].model_version = before + 1;
        snapshot_of(c->entry[i].snapshot_sha256, before + 1);
        cr_assert_eq(fa_accountant_new(&a, FA_ACCOUNTANT_PLD, &err), FA_OK);
        for (size_t k = 0; k <= i; k++)
            if (c->entry[k].kind == FA_LEDGER_RELEASE)
                cr_assert_eq(fa_accountant_compose(a, c->entry[k].mech.sampling_rate,
                                                   c->entry[k].mech.noise_multiplier, 1, &err),
                             FA_OK);
        cr_assert_eq(fa_accountant_epsilon(&c->entry[i].epsilon, a, 1e-5, &err), FA_OK);
        fa_accountant_free(a);
    }
    resign_eps(c, i, key);
    c->rec[i].kind = "release";
    c->rec[i].model_version = c->entry[i].model_version;
    expect_bad(c, pk, (int64_t)i + 1, "over its budget");
    free_chain(c);
    fa_crypto_sign_key_free(key);
}
