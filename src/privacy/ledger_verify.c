/*
 * The verifying half of privacy/ledger.h: one record against its signature
 * and hash, a chain of records against each other and a re-run of the
 * accountant, and the published model versions against their releases.
 */
#include "privacy/ledger.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/digest.h"
#include "core/util.h"
#include "privacy/crypto.h"
#include "privacy/internal.h"

#define REL_TOL 1e-9 /* verification: relative agreement of recomputed numbers */

/* =========================================================== verification */

#define WHY_MAX 160 /* bytes of a reason, as fa_ledger_report.reason */

static int close_rel(double a, double b)
{
    return fabs(a - b) <= REL_TOL * fmax(fabs(a), fabs(b));
}

/* Records the first failure and returns FA_ECONFLICT. */
static int bad(fa_ledger_report *out, fa_error *err, int64_t seq, const char *fmt, ...)
    FA_PRINTF(4, 5);

static int bad(fa_ledger_report *out, fa_error *err, int64_t seq, const char *fmt, ...)
{
    va_list ap;

    out->bad_seq = seq;
    va_start(ap, fmt);
    (void)vsnprintf(out->reason, sizeof(out->reason), fmt, ap);
    va_end(ap);
    return fa_fail(err, FA_ECONFLICT, "ledger entry %lld: %s", (long long)seq, out->reason);
}

/* Writes why a record does not hold into why[WHY_MAX]; returns -1. */
static int not_held(char *why, const char *fmt, ...) FA_PRINTF(2, 3);

static int not_held(char *why, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(why, WHY_MAX, fmt, ap);
    va_end(ap);
    return -1;
}

/*
 * What one stored record must satisfy on its own, cheapest cause first: the
 * text is there, the hash column is its SHA-256, the signature covers that
 * hash, the text parses strictly, and the columns (copies of signed fields,
 * kept for queries) agree with it. The hash is checked before the signature
 * so that an edited text is named "hash mismatch", and the parse comes after
 * the signature so that only signed text reaches the parser's domain
 * checks. 0 with *e the entry, or -1 with why[WHY_MAX] set.
 */
static int record_holds(fa_ledger_entry *e, char *why, const fa_ledger_record *r,
                        const unsigned char sign_pk[FA_LEDGER_PK_BYTES])
{
    unsigned char digest[FA_LEDGER_HASH_BYTES];
    fa_error inner = FA_ERROR_INIT;

    if (r->entry == NULL || r->entry_len > FA_LEDGER_TEXT_MAX)
        return not_held(why, "entry text is missing or too long");
    fa_sha256(digest, r->entry, r->entry_len);
    if (memcmp(digest, r->hash, sizeof(digest)) != 0)
        return not_held(why, "hash mismatch");
    if (fa_crypto_sign_verify(r->signature, r->hash, sizeof(r->hash), sign_pk) < 0)
        return not_held(why, "bad signature");
    if (fa_ledger_entry_parse(e, r->entry, r->entry_len, &inner) < 0)
        return not_held(why, "entry does not parse: %s", inner.msg);
    if (e->seq != r->seq)
        return not_held(why, "seq column disagrees with the entry (entry says %lld)",
                        (long long)e->seq);
    if (r->kind == NULL || strcmp(r->kind, fa_ledger_kind_name(e->kind)) != 0)
        return not_held(why, "kind column disagrees with the entry");
    if (r->round_id != e->round_id)
        return not_held(why, "round_id column disagrees with the entry");
    if (r->model_version != e->model_version)
        return not_held(why, "model_version column disagrees with the entry");
    if (!close_rel(r->cumulative_epsilon, e->epsilon))
        return not_held(why, "cumulative_epsilon column disagrees with the entry");
    if (memcmp(r->prev_hash, e->prev_hash, FA_LEDGER_HASH_BYTES) != 0)
        return not_held(why, "prev_hash column disagrees with the entry");
    return 0;
}

int fa_ledger_record_check(fa_ledger_entry *out, const fa_ledger_record *r,
                           const unsigned char sign_pk[FA_LEDGER_PK_BYTES], fa_error *err)
{
    char why[WHY_MAX];

    if (record_holds(out, why, r, sign_pk) < 0) {
        memset(out, 0, sizeof(*out));
        return fa_fail(err, FA_ECONFLICT, "ledger entry %lld: %s", (long long)r->seq, why);
    }
    return FA_OK;
}

/* What the entries that held so far establish for the next one. */
typedef struct chain_state {
    unsigned char prev[FA_LEDGER_HASH_BYTES]; /* hash of the last entry; zeros before the first */
    fa_accountant *acct[3];        /* [kind]: the releases so far, re-composed by each accountant */
    fa_rdp_release *rel;           /* (q, sigma) of every release so far, in chain order */
    size_t nrel, caprel;           /* releases recorded, capacity of rel */
    double epsilon_max;            /* the budget in force: epsilon */
    double delta;                  /* the budget in force: delta */
    fa_accountant_kind accountant; /* the budget in force: accountant */
    int64_t last_round;            /* highest round id so far; 0 before any */
    int last_format;               /* format of the last entry; 0 before the first */
} chain_state;

static void chain_done(chain_state *st)
{
    for (size_t k = 0; k < 3; k++)
        fa_accountant_free(st->acct[k]);
    free(st->rel);
}

/*
 * The running accountant of kind, holding every release so far. Each kind
 * is built on first use from the recorded mechanisms and then kept up to
 * date one release at a time, so an RDP-only chain never pays for a PLD
 * and a switch of accountant costs one pass over the releases before it.
 */
static int chain_accountant(fa_accountant **out, chain_state *st, fa_accountant_kind kind,
                            fa_error *err)
{
    fa_accountant *a;
    int rc;

    if (st->acct[kind] == NULL && (rc = fa_accountant_new(&st->acct[kind], kind, err)) < 0)
        return rc;
    a = st->acct[kind];
    while ((size_t)fa_accountant_releases(a) < st->nrel) {
        const fa_rdp_release *r = &st->rel[fa_accountant_releases(a)];
        if ((rc = fa_accountant_compose(a, r->q, r->sigma, 1, err)) < 0)
            return rc;
    }
    *out = a;
    return FA_OK;
}

static int chain_add_release(chain_state *st, double q, double sigma, fa_error *err)
{
    if (st->nrel == st->caprel) {
        const size_t cap = st->caprel ? 2 * st->caprel : 64;
        fa_rdp_release *p = realloc(st->rel, cap * sizeof(*p));
        if (p == NULL)
            return fa_fail(err, FA_ENOMEM, "out of memory verifying the ledger");
        st->rel = p;
        st->caprel = cap;
    }
    st->rel[st->nrel].q = q;
    st->rel[st->nrel].sigma = sigma;
    st->nrel++;
    return FA_OK;
}

/*
 * v1/v2 entries record the accountant's state: the release's RDP vector,
 * the cumulative one and the order attaining epsilon. They must be what
 * the RDP accountant computes from the recorded mechanisms.
 */
static int check_rdp_state(fa_ledger_report *out, const fa_ledger_entry *e, int64_t seq,
                           const fa_accountant *acc, fa_rdp_cache *cache, fa_error *err)
{
    const double *cum = fa_accountant_rdp(acc);
    const double *round = NULL;
    double eps, order;
    int rc;

    if (e->kind == FA_LEDGER_RELEASE) {
        if ((rc = fa_rdp_sgm_cached(&round, cache, e->mech.sampling_rate, e->mech.noise_multiplier,
                                    err)) < 0)
            return rc;
        for (size_t i = 0; i < FA_RDP_NUM_ORDERS; i++)
            if (!close_rel(e->round_rdp[i], round[i]))
                return bad(out, err, seq, "round rdp at order %g is %.17g, recomputed %.17g",
                           fa_rdp_order(i), e->round_rdp[i], round[i]);
    }
    for (size_t i = 0; i < FA_RDP_NUM_ORDERS; i++)
        if (!close_rel(e->cumulative_rdp[i], cum[i]))
            return bad(out, err, seq, "cumulative rdp at order %g is %.17g, recomputed %.17g",
                       fa_rdp_order(i), e->cumulative_rdp[i], cum[i]);
    if ((rc = fa_rdp_epsilon(&eps, &order, cum, e->delta, err)) < 0)
        return rc;
    if (e->order != order)
        return bad(out, err, seq, "epsilon is stated at order %g, recomputed at order %g", e->order,
                   order);
    return FA_OK;
}

/*
 * Checks a parsed entry (record_holds passed) against the chain before it:
 * the hash link, the budget in force, the order of versions and rounds, and
 * the accountant. On success st describes the chain including e.
 */
static int chain_step(fa_ledger_report *out, chain_state *st, const fa_ledger_record *r,
                      const fa_ledger_entry *e, fa_rdp_cache *cache, fa_error *err)
{
    const int64_t seq = r->seq;
    fa_accountant *acc = NULL, *would = NULL;
    double eps;
    int rc;

    if (memcmp(e->prev_hash, st->prev, FA_LEDGER_HASH_BYTES) != 0)
        return bad(out, err, seq,
                   seq == 1 ? "prev_hash of the first entry is not zero"
                            : "prev_hash does not link to the previous entry");
    /*
     * Formats only move forward: a chain may continue a v1 prefix in v2 and
     * a v2 prefix in v3, never the reverse, or a writer could fall back to
     * an older format to skip what a newer one binds (the snapshot digest
     * and budget events of v2, the accountant of v3).
     */
    if (e->format < st->last_format)
        return bad(out, err, seq, "a v%d entry follows a v%d entry", e->format, st->last_format);

    /*
     * The budget in force: epsilon_max, delta and the accountant. The first
     * entry establishes it and only a budget event changes it, so a budget
     * raised to make room for more releases, or an accountant swapped for
     * one that states less, shows in the ledger as an event of its own, not
     * as a quietly different number in the next release. v1 had no budget
     * event: each v1 entry states the budget it ran under, and that becomes
     * the budget in force. The values are configuration copied verbatim, so
     * equality is exact.
     */
    if (seq == 1 || e->kind == FA_LEDGER_BUDGET || e->format == FA_LEDGER__FORMAT_V1) {
        st->epsilon_max = e->epsilon_max;
        st->delta = e->delta;
        st->accountant = e->accountant;
    } else if (e->epsilon_max != st->epsilon_max || e->delta != st->delta) {
        return bad(out, err, seq,
                   "budget changed without a budget entry (entry states epsilon %g at delta %g, "
                   "in force %g at %g)",
                   e->epsilon_max, e->delta, st->epsilon_max, st->delta);
    } else if (e->accountant != st->accountant) {
        return bad(out, err, seq, "accountant changed without a budget entry (%s, in force %s)",
                   fa_accountant_name(e->accountant), fa_accountant_name(st->accountant));
    }

    /*
     * Version v+1 is published only by a release on base v, in the same
     * transaction as its entry: releases produce 1, 2, 3, ... in chain
     * order, so a skipped or repeated version means an entry is missing or
     * a version was published twice.
     */
    if (e->kind == FA_LEDGER_RELEASE && e->model_version != (int64_t)st->nrel + 1)
        return bad(out, err, seq, "release produces version %lld, expected %lld",
                   (long long)e->model_version, (long long)(st->nrel + 1));

    /* Rounds open one after another and each ends in exactly one entry. */
    if (e->kind != FA_LEDGER_BUDGET && e->round_id <= st->last_round)
        return bad(out, err, seq, "round id %lld does not follow round id %lld",
                   (long long)e->round_id, (long long)st->last_round);

    /*
     * Re-run the entry's accountant over the recorded mechanism of every
     * release so far, this one included: nothing stored is trusted but the
     * signed (q, sigma) of each release.
     */
    if (e->kind == FA_LEDGER_RELEASE &&
        (rc = chain_add_release(st, e->mech.sampling_rate, e->mech.noise_multiplier, err)) < 0)
        return rc;
    if ((rc = chain_accountant(&acc, st, e->accountant, err)) < 0 ||
        (rc = fa_accountant_epsilon(&eps, acc, e->delta, err)) < 0)
        return rc;
    if (e->format < FA_LEDGER__FORMAT_V3 &&
        (rc = check_rdp_state(out, e, seq, acc, cache, err)) < 0)
        return rc;
    if (!close_rel(e->epsilon, eps))
        return bad(out, err, seq, "epsilon is %.17g, recomputed %.17g", e->epsilon, eps);
    if (e->kind == FA_LEDGER_RELEASE && eps > e->epsilon_max * (1.0 + REL_TOL))
        return bad(out, err, seq, "release brings epsilon to %.6g, over its budget of %.6g", eps,
                   e->epsilon_max);
    if (e->kind == FA_LEDGER_REFUSAL) {
        if ((rc = fa_accountant_copy(&would, acc, err)) < 0)
            return rc;
        rc = fa_accountant_compose(would, e->mech.sampling_rate, e->mech.noise_multiplier, 1, err);
        if (rc == FA_OK)
            rc = fa_accountant_epsilon(&eps, would, e->delta, err);
        fa_accountant_free(would);
        if (rc < 0)
            return rc;
        if (eps <= e->epsilon_max * (1.0 - REL_TOL))
            return bad(out, err, seq,
                       "refused a release that fit the budget (epsilon %.6g <= %.6g)", eps,
                       e->epsilon_max);
    }

    memcpy(st->prev, r->hash, sizeof(st->prev));
    st->last_format = e->format;
    if (e->kind != FA_LEDGER_BUDGET)
        st->last_round = e->round_id;
    return FA_OK;
}

int fa_ledger_verify(fa_ledger_report *out, const fa_ledger_record *records, size_t n,
                     const unsigned char sign_pk[FA_LEDGER_PK_BYTES], fa_error *err)
{
    chain_state st;
    fa_rdp_cache *cache = NULL;
    fa_ledger_entry e;
    char why[WHY_MAX];
    int rc;

    memset(out, 0, sizeof(*out));
    memset(&st, 0, sizeof(st));
    if ((rc = fa_rdp_cache_new(&cache, err)) < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        const fa_ledger_record *r = &records[i];
        const int64_t want = (int64_t)i + 1;

        if (r->seq > want) {
            rc = bad(out, err, want, "missing (the next stored entry is %lld)", (long long)r->seq);
            goto cleanup;
        }
        if (r->seq < want) {
            rc = bad(out, err, r->seq, "out of order or duplicated (expected entry %lld)",
                     (long long)want);
            goto cleanup;
        }
        if (record_holds(&e, why, r, sign_pk) < 0) {
            rc = bad(out, err, want, "%s", why);
            goto cleanup;
        }
        if ((rc = chain_step(out, &st, r, &e, cache, err)) < 0)
            goto cleanup;
        out->entries = i + 1;
        out->releases += e.kind == FA_LEDGER_RELEASE;
        out->refusals += e.kind == FA_LEDGER_REFUSAL;
        out->abandonments += e.kind == FA_LEDGER_ABANDONMENT;
        out->budget_changes += e.kind == FA_LEDGER_BUDGET;
        /* Seeded noise can be subtracted by whoever knows the seed: such a
         * release is not private whatever its epsilon says. */
        out->seeded_releases += e.kind == FA_LEDGER_RELEASE && e.mech.seeded;
        out->epsilon_max = st.epsilon_max;
        out->accountant = st.accountant;
        out->epsilon = e.epsilon;
        out->delta = e.delta;
        out->order = e.order;
        memcpy(out->head, r->hash, sizeof(out->head));
    }
cleanup:
    chain_done(&st);
    fa_rdp_cache_free(cache);
    return rc;
}

/* ============================================ the ledger and the versions */

static int version_cmp(const void *a, const void *b)
{
    const int64_t x = ((const fa_ledger_version *)a)->version;
    const int64_t y = ((const fa_ledger_version *)b)->version;

    return (x > y) - (x < y);
}

/*
 * fa_ledger_verify proves the chain is what the key holder signed, but a
 * chain cut after any entry is still a valid chain. The published model
 * versions are a second record written by the same transaction as each
 * release entry: a version without its release means entries were removed
 * (or never written), a release without its version means a version was
 * removed, and for v2 entries the signed snapshot digest must be the stored
 * one, which binds the entry to the bytes devices and the serving tier
 * download.
 */
int fa_ledger_verify_versions(fa_ledger_report *out, const fa_ledger_record *records, size_t n,
                              const fa_ledger_version *versions, size_t nv, fa_error *err)
{
    fa_ledger_version *sorted = NULL;
    unsigned char *named = NULL; /* named[i]: a release names sorted[i] */
    fa_ledger_entry e;
    fa_error inner = FA_ERROR_INIT;
    int rc = FA_OK;

    out->bad_seq = 0;
    out->reason[0] = '\0';
    sorted = malloc((nv > 0 ? nv : 1) * sizeof(*sorted));
    named = calloc(nv > 0 ? nv : 1, 1);
    if (sorted == NULL || named == NULL) {
        rc = fa_fail(err, FA_ENOMEM, "out of memory checking the model versions");
        goto cleanup;
    }
    if (nv > 0) {
        memcpy(sorted, versions, nv * sizeof(*sorted));
        qsort(sorted, nv, sizeof(*sorted), version_cmp);
    }
    for (size_t i = 0; i < n; i++) {
        const fa_ledger_record *r = &records[i];
        const fa_ledger_version *v;
        fa_ledger_version key;
        size_t at;

        /* The chain was verified, so its kind column is its entry's kind. */
        if (r->kind == NULL || strcmp(r->kind, fa_ledger_kind_name(FA_LEDGER_RELEASE)) != 0)
            continue;
        if (r->entry == NULL || fa_ledger_entry_parse(&e, r->entry, r->entry_len, &inner) < 0) {
            rc = bad(out, err, r->seq, "entry does not parse: %s",
                     r->entry == NULL ? "no text" : inner.msg);
            goto cleanup;
        }
        key.version = e.model_version;
        v = nv > 0 ? bsearch(&key, sorted, nv, sizeof(*sorted), version_cmp) : NULL;
        if (v == NULL) {
            rc = bad(out, err, r->seq, "release produces version %lld, which is not published",
                     (long long)e.model_version);
            goto cleanup;
        }
        at = (size_t)(v - sorted);
        if (named[at]) {
            rc = bad(out, err, r->seq, "version %lld already has a release entry",
                     (long long)e.model_version);
            goto cleanup;
        }
        named[at] = 1;
        if (e.format >= FA_LEDGER__FORMAT_V2 &&
            memcmp(e.snapshot_sha256, v->sha256, FA_LEDGER_HASH_BYTES) != 0) {
            rc = bad(out, err, r->seq, "snapshot sha256 differs from published version %lld",
                     (long long)e.model_version);
            goto cleanup;
        }
    }
    /*
     * Version 0 is the initial model, released by no round. Any other
     * version without a release: the releases of a verified chain produce
     * 1..R in order, so the missing entries come after the last one stored.
     */
    for (size_t i = 0; i < nv; i++) {
        if (sorted[i].version < 1 || named[i])
            continue;
        rc = bad(out, err, (n > 0 ? records[n - 1].seq : 0) + 1,
                 "missing: published version %lld has no release entry",
                 (long long)sorted[i].version);
        goto cleanup;
    }
cleanup:
    free(named);
    free(sorted);
    return rc;
}
