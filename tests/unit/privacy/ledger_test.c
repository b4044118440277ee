#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "privacy/crypto.h"
#include "privacy/ledger.h"
#include "privacy/noise.h"
#include "vectors.h"

static void init(void)
{
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_crypto_init(&err), FA_OK);
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
    fa_ledger_signed sig[64];
    fa_ledger_entry entry[64];
    fa_ledger_record rec[64];
} chain;

/*
 * Builds n entries the way the aggregator does: each round a release of
 * (q, sigma), every 5th round an abandonment, and releases past the budget
 * become refusals.
 */
static chain *build_chain(size_t n, const fa_crypto_sign_key *key, double eps_max)
{
    chain *c = calloc(1, sizeof(*c));
    const fa_budget b = {eps_max, 1e-5};
    fa_error err = FA_ERROR_INIT;
    int64_t version = 0;

    cr_assert_not_null(c);
    cr_assert_leq(n, 64);
    for (size_t i = 0; i < n; i++) {
        fa_ledger_entry *e = &c->entry[i];
        int rc;
        fa_ledger_entry_next(e, i > 0 ? &c->entry[i - 1] : NULL, i > 0 ? c->sig[i - 1].hash : NULL);
        e->round_id = (int64_t)i + 1;
        e->created_at = 1700000000 + (int64_t)i * 60;
        mechanism(e, i % 3 == 0 ? 0.1 : 1.0, 2.0 + (double)(i % 2));
        if (i % 5 == 4) {
            e->mech.cohort_size = 3;
            cr_assert_eq(fa_ledger_entry_abandon(e, &b, &err), FA_OK, "%s", err.msg);
        } else {
            rc = fa_ledger_entry_decide(e, &b, &err);
            cr_assert(rc == FA_OK || rc == FA_EREFUSED, "%s", err.msg);
            if (rc == FA_OK)
                e->model_version = ++version;
        }
        cr_assert_eq(fa_ledger_sign(&c->sig[i], e, key, &err), FA_OK, "%s", err.msg);
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
    c->n = n;
    return c;
}

static void free_chain(chain *c)
{
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
    e.round_id = 7;
    e.created_at = 1700000000;
    mechanism(&e, 1.0, 2.0);
    cr_assert_eq(fa_ledger_entry_decide(&e, &b, &err), FA_OK, "%s", err.msg);
    e.model_version = 3;
    cr_assert_eq(fa_ledger_sign(&s, &e, key, &err), FA_OK, "%s", err.msg);
    cr_assert_str_eq(s.text, text);
    cr_assert_eq(memcmp(s.hash, want_hash, 32), 0);
    cr_assert_eq(memcmp(s.signature, want_sig, 64), 0);
    cr_assert_eq(fa_crypto_sign_verify(s.signature, s.hash, 32, fa_crypto_sign_key_public(key)),
                 FA_OK);

    cr_assert_eq(fa_ledger_entry_parse(&back, text, strlen(text), &err), FA_OK, "%s", err.msg);
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
        {"{\"format\":\"fedagg-ledger-v1\"", "{\"format\":\"fedagg-ledger-v2\""},
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
    /* Upper-case hex in prev_hash. */
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
    mechanism(&e, 1.0, 2.0);
    cr_assert_eq(fa_ledger_entry_decide(&e, &b, &err), FA_OK);
    /* A release must name the version it produced. */
    cr_assert_eq(fa_ledger_entry_encode(&text, &len, &e, &err), FA_EINVAL);
    e.model_version = 1;
    cr_assert_eq(fa_ledger_entry_encode(&text, &len, &e, &err), FA_OK, "%s", err.msg);
    free(text);
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
    mechanism(&first, 1.0, 5.0);
    cr_assert_eq(fa_ledger_entry_decide(&first, &b, &err), FA_OK, "%s", err.msg);
    first.model_version = 1;
    fa_ledger_entry_next(&refused, &first, h);
    cr_assert_eq(refused.seq, 2);
    cr_assert_eq(memcmp(refused.prev_hash, h, 32), 0);
    mechanism(&refused, 1.0, 0.5);
    cr_assert_eq(fa_ledger_entry_decide(&refused, &b, &err), FA_EREFUSED);
    cr_assert_eq(refused.kind, FA_LEDGER_REFUSAL);
    cr_assert_eq(refused.model_version, 0);
    cr_assert_eq(memcmp(refused.cumulative_rdp, first.cumulative_rdp, sizeof(first.cumulative_rdp)),
                 0);
    for (size_t i = 0; i < FA_RDP_NUM_ORDERS; i++)
        cr_assert_eq(refused.round_rdp[i], 0.0);
    cr_assert_eq(refused.epsilon, first.epsilon);
    fa_ledger_entry_next(&abandoned, &refused, h);
    mechanism(&abandoned, 1.0, 5.0);
    cr_assert_eq(fa_ledger_entry_abandon(&abandoned, &b, &err), FA_OK);
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
    mechanism(&e, 1.0, 1.0);
    cr_assert_eq(fa_ledger_entry_abandon(&e, &b, &err), FA_OK);
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
    fa_crypto_sha256(c->rec[5].hash, edited, strlen(edited));
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
    c->entry[i].model_version = 1000;
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
    c->rec[i].model_version = 1000;
    c->rec[i].cumulative_epsilon = c->entry[i].epsilon;
    expect_bad(c, pk, (int64_t)i + 1, "over its budget");
    free_chain(c);
    fa_crypto_sign_key_free(key);
}
