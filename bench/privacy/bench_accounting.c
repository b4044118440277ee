/*
 * Cost of privacy accounting, as the server pays it.
 *
 * 1. One close's accounting step: fa_accountant_decide (compose one more
 *    release into the running accountant and state its epsilon) after T
 *    releases, for the PLD and the RDP accountant, against the step every
 *    close pays anyway in the same run: encoding, hashing and signing the
 *    ledger entry (fa_ledger_sign). The step must not grow with T the way a
 *    recomputation of all past rounds would.
 * 2. `fedagg ledger verify` on a ledger of N releases (fa_ledger_verify:
 *    parse, hash, signature, chain and the accountant re-run from the
 *    recorded mechanisms), against checking each record's hash, signature
 *    and parse alone (fa_ledger_record_check) in the same run.
 *
 * Prints one JSON line per measurement. Single thread.
 *
 *   bench_accounting [--releases N] [--q Q] [--sigma S] [--reps R]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "median.h"
#include "privacy/accountant.h"
#include "privacy/crypto.h"
#include "privacy/ledger.h"
#include "privacy/noise.h"

#define DELTA 1e-5

typedef struct opts {
    int64_t releases;
    double q, sigma;
    int64_t reps;
} opts;

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

/*
 * Median over o->reps of one decide after t releases (each rep on a fresh
 * copy, so every step sees the same T), in seconds; *eps_out the epsilon.
 */
static int time_decide(double *sec_out, double *eps_out, const fa_accountant *run, const opts *o,
                       fa_error *err)
{
    const fa_budget b = {1e9, DELTA};
    double *t = calloc((size_t)o->reps, sizeof(*t)), before;
    int rc = FA_OK;

    if (t == NULL)
        return fa_fail(err, FA_ENOMEM, "out of memory");
    for (int64_t r = 0; r < o->reps && rc == FA_OK; r++) {
        fa_accountant *a = NULL;
        if ((rc = fa_accountant_copy(&a, run, err)) < 0)
            break;
        const uint64_t t0 = fa_now_ns();
        rc = fa_accountant_decide(a, &before, eps_out, &b, o->q, o->sigma, err);
        t[r] = (double)(fa_now_ns() - t0) * 1e-9;
        fa_accountant_free(a);
    }
    if (rc == FA_OK)
        *sec_out = fa_bench_median(t, (size_t)o->reps);
    free(t);
    return rc;
}

/* Median seconds of signing one (representative) ledger entry. */
static int time_sign(double *sec_out, const fa_crypto_sign_key *key, const opts *o, fa_error *err)
{
    const fa_budget b = {1e9, DELTA};
    double *t = calloc((size_t)o->reps, sizeof(*t));
    fa_accountant *a = NULL;
    fa_ledger_entry e;
    int rc;

    if (t == NULL)
        return fa_fail(err, FA_ENOMEM, "out of memory");
    if ((rc = fa_accountant_new(&a, FA_ACCOUNTANT_RDP, err)) < 0)
        goto done;
    fa_ledger_entry_next(&e, NULL, NULL);
    e.round_id = 1;
    e.created_at = 1700000000;
    mechanism(&e, o->q, o->sigma);
    if ((rc = fa_ledger_entry_decide(&e, &b, a, err)) < 0)
        goto done;
    e.model_version = 1;
    memset(e.snapshot_sha256, 0x5a, sizeof(e.snapshot_sha256));
    for (int64_t r = 0; r < o->reps && rc == FA_OK; r++) {
        fa_ledger_signed s;
        const uint64_t t0 = fa_now_ns();
        rc = fa_ledger_sign(&s, &e, key, err);
        t[r] = (double)(fa_now_ns() - t0) * 1e-9;
        if (rc == FA_OK)
            fa_ledger_signed_done(&s);
    }
    if (rc == FA_OK)
        *sec_out = fa_bench_median(t, (size_t)o->reps);
done:
    fa_accountant_free(a);
    free(t);
    return rc;
}

/* Part 1: the close's step after T = 10^k releases, k = 0.. while T <= releases. */
static int bench_close(const fa_crypto_sign_key *key, const opts *o, fa_error *err)
{
    fa_accountant *run[2] = {NULL, NULL};
    const fa_accountant_kind kinds[2] = {FA_ACCOUNTANT_PLD, FA_ACCOUNTANT_RDP};
    double sign_s = 0.0;
    int64_t have = 0;
    int rc;

    if ((rc = time_sign(&sign_s, key, o, err)) < 0)
        return rc;
    for (int k = 0; k < 2; k++)
        if ((rc = fa_accountant_new(&run[k], kinds[k], err)) < 0)
            goto done;
    for (int64_t t = 1; t <= o->releases; t *= 10) {
        double sec[2], eps[2];
        /* bring the running accountants to t releases, one close at a time */
        for (; have < t; have++)
            for (int k = 0; k < 2; k++)
                if ((rc = fa_accountant_compose(run[k], o->q, o->sigma, 1, err)) < 0)
                    goto done;
        for (int k = 0; k < 2; k++)
            if ((rc = time_decide(&sec[k], &eps[k], run[k], o, err)) < 0)
                goto done;
        printf(
            "{\"bench\":\"accounting_close_step\",\"releases_before\":%lld,\"q\":%g,\"sigma\":%g,"
            "\"delta\":%g,\"pld_ms\":%.4f,\"rdp_ms\":%.4f,\"sign_entry_ms\":%.4f,"
            "\"pld_over_sign\":%.3g,\"rdp_over_sign\":%.3g,\"pld_epsilon\":%.6g,"
            "\"rdp_epsilon\":%.6g}\n",
            (long long)t, o->q, o->sigma, DELTA, sec[0] * 1e3, sec[1] * 1e3, sign_s * 1e3,
            sec[0] / sign_s, sec[1] / sign_s, eps[0], eps[1]);
        fflush(stdout);
    }
done:
    for (int k = 0; k < 2; k++)
        fa_accountant_free(run[k]);
    return rc;
}

/* Part 2: a signed ledger of o->releases releases, as the close writes it, then verified. */
static int bench_verify(const fa_crypto_sign_key *key, fa_accountant_kind kind, const opts *o,
                        fa_error *err)
{
    const size_t n = (size_t)o->releases;
    const fa_budget b = {1e9, DELTA};
    fa_ledger_signed *sig = calloc(n, sizeof(*sig));
    fa_ledger_record *rec = calloc(n, sizeof(*rec));
    fa_accountant *acc = NULL;
    fa_ledger_entry prev, e;
    fa_ledger_report report;
    double build_s, check_s, verify_s;
    size_t built = 0;
    uint64_t t0;
    int rc;

    if (sig == NULL || rec == NULL) {
        rc = fa_fail(err, FA_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = fa_accountant_new(&acc, kind, err)) < 0)
        goto done;
    t0 = fa_now_ns();
    for (size_t i = 0; i < n; i++) {
        fa_ledger_entry_next(&e, i > 0 ? &prev : NULL, i > 0 ? sig[i - 1].hash : NULL);
        e.round_id = (int64_t)i + 1;
        e.created_at = 1700000000 + (int64_t)i * 60;
        mechanism(&e, o->q, o->sigma);
        if ((rc = fa_ledger_entry_decide(&e, &b, acc, err)) < 0)
            goto done;
        e.model_version = (int64_t)i + 1;
        memset(e.snapshot_sha256, 0x5a, sizeof(e.snapshot_sha256));
        if ((rc = fa_ledger_sign(&sig[i], &e, key, err)) < 0)
            goto done;
        built++;
        rec[i].seq = e.seq;
        rec[i].kind = fa_ledger_kind_name(e.kind);
        rec[i].round_id = e.round_id;
        rec[i].model_version = e.model_version;
        rec[i].cumulative_epsilon = e.epsilon;
        rec[i].entry = sig[i].text;
        rec[i].entry_len = sig[i].text_len;
        memcpy(rec[i].prev_hash, e.prev_hash, sizeof(rec[i].prev_hash));
        memcpy(rec[i].hash, sig[i].hash, sizeof(rec[i].hash));
        memcpy(rec[i].signature, sig[i].signature, sizeof(rec[i].signature));
        prev = e;
    }
    build_s = (double)(fa_now_ns() - t0) * 1e-9;

    t0 = fa_now_ns();
    for (size_t i = 0; i < n; i++)
        if ((rc = fa_ledger_record_check(&e, &rec[i], fa_crypto_sign_key_public(key), err)) < 0)
            goto done;
    check_s = (double)(fa_now_ns() - t0) * 1e-9;

    t0 = fa_now_ns();
    if ((rc = fa_ledger_verify(&report, rec, n, fa_crypto_sign_key_public(key), err)) < 0)
        goto done;
    verify_s = (double)(fa_now_ns() - t0) * 1e-9;
    if (report.bad_seq != 0 || report.entries != n) {
        rc = fa_fail(err, FA_EINTERNAL, "the benchmark's ledger does not verify: entry %lld: %s",
                     (long long)report.bad_seq, report.reason);
        goto done;
    }
    printf("{\"bench\":\"ledger_verify\",\"accountant\":\"%s\",\"releases\":%zu,\"q\":%g,"
           "\"sigma\":%g,\"epsilon\":%.6g,\"write_s\":%.3f,\"records_check_s\":%.3f,"
           "\"verify_s\":%.3f,\"verify_over_records_check\":%.3g,\"verify_per_entry_ms\":%.4f}\n",
           fa_accountant_short_name(kind), n, o->q, o->sigma, prev.epsilon, build_s, check_s,
           verify_s, verify_s / check_s, verify_s / (double)n * 1e3);
    fflush(stdout);
done:
    for (size_t i = 0; i < built; i++)
        fa_ledger_signed_done(&sig[i]);
    fa_accountant_free(acc);
    free(sig);
    free(rec);
    return rc;
}

int main(int argc, char **argv)
{
    opts o = {10000, 0.01, 1.1, 9};
    unsigned char seed[32];
    fa_crypto_sign_key *key = NULL;
    fa_error err = FA_ERROR_INIT;
    int rc;

    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--releases") == 0 &&
            fa_parse_i64(&o.releases, argv[i + 1]) == 0 && o.releases > 0 &&
            o.releases <= 1000000) {
            i++;
        } else if (i + 1 < argc && strcmp(argv[i], "--reps") == 0 &&
                   fa_parse_i64(&o.reps, argv[i + 1]) == 0 && o.reps > 0 && o.reps <= 1000) {
            i++;
        } else if (i + 1 < argc && strcmp(argv[i], "--q") == 0 &&
                   fa_parse_double(&o.q, argv[i + 1]) == 0 && o.q > 0.0 && o.q <= 1.0) {
            i++;
        } else if (i + 1 < argc && strcmp(argv[i], "--sigma") == 0 &&
                   fa_parse_double(&o.sigma, argv[i + 1]) == 0 && o.sigma > 0.0) {
            i++;
        } else {
            fprintf(stderr, "usage: bench_accounting [--releases N] [--q Q] [--sigma S] "
                            "[--reps R]\n");
            return 2;
        }
    }
    memset(seed, 7, sizeof(seed));
    if ((rc = fa_crypto_init(&err)) < 0 ||
        (rc = fa_crypto_sign_key_from_seed(&key, seed, &err)) < 0 ||
        (rc = bench_close(key, &o, &err)) < 0 ||
        (rc = bench_verify(key, FA_ACCOUNTANT_PLD, &o, &err)) < 0 ||
        (rc = bench_verify(key, FA_ACCOUNTANT_RDP, &o, &err)) < 0) {
        fprintf(stderr, "bench_accounting: %s\n", err.msg);
        fa_crypto_sign_key_free(key);
        return 1;
    }
    fa_crypto_sign_key_free(key);
    return 0;
}
