/*
 * fedagg ledger: show, export and verify the epsilon ledger. Verification
 * goes through the ledger audit (aggregator/audit.h), the same checks
 * GET /api/privacy/budget answers from. Exit status: 0 success, 1 failure,
 * 2 bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aggregator/audit.h"
#include "cli/cli.h"
#include "cli/internal.h"
#include "core/config.h"
#include "core/util.h"
#include "privacy/accountant.h"
#include "privacy/keys.h"
#include "privacy/ledger.h"
#include "store/store.h"

/* ================================================================= ledger */

static void ledger_usage(FILE *f)
{
    fprintf(f,
            "usage: fedagg ledger verify [--config FILE] [--database-url URL]\n"
            "                            [--key-dir DIR | --public-key FILE] [--require-private]\n"
            "       fedagg ledger show [--config FILE] [--database-url URL] [--json]\n"
            "       fedagg ledger export [--config FILE] [--database-url URL]\n"
            "                            [--format json|csv] [--out FILE]\n"
            "\n"
            "  verify  re-derives every entry's hash, checks its Ed25519 signature, the hash\n"
            "          chain, the columns, the budget in force, the order of versions and\n"
            "          rounds, re-runs the accountant from the recorded mechanism, and checks\n"
            "          every published model version against its release entry; prints a\n"
            "          summary and exits 0, or names the first bad entry and exits 1. The\n"
            "          public key is DIR/%s (DIR from --key-dir, else the key_dir setting)\n"
            "          or FILE. Releases with seeded noise are reported as NOT PRIVATE;\n"
            "          --require-private then exits 1.\n"
            "  show    prints the entries as a table, or with --json as a JSON array of the\n"
            "          entries as GET /api/privacy/ledger serves them (each with its parsed\n"
            "          entry and its exact signed text).\n"
            "  export  writes the whole ledger to FILE (default stdout): json (default) is\n"
            "          {\"entries\": [...], \"next\": null}, the form of GET\n"
            "          /api/privacy/ledger, which independent verifiers read; csv is one row\n"
            "          per entry with its mechanism and epsilon, for spreadsheets.\n"
            "\n"
            "  The database is --database-url, else DATABASE_URL, else database_url of the\n"
            "  configuration.\n",
            FA_KEYS_SIGN_PK);
}

/* Reads every ledger row; the caller frees them with fa_store_ledger_rows_free. */
static int read_rows(fa_store_ledger_row **rows, size_t *n, const char *cmd, const char *url)
{
    fa_store *st = NULL;
    fa_error err = FA_ERROR_INIT;
    int rc = 0;

    *rows = NULL;
    *n = 0;
    if (fa_store_open(&st, url, 1, &err) < 0 || fa_store_ledger_list(rows, n, st, &err) < 0) {
        fprintf(stderr, "fedagg %s: %s\n", cmd, err.msg);
        rc = 1;
    }
    fa_store_free(st);
    return rc;
}

/* "1 release" / "3 releases": the counts read as a sentence. */
static const char *plural(int64_t n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

/*
 * Prints each entry where the stated budget differs from the entry before:
 * a budget event, or in v1 (which had none) a release or refusal under a
 * new budget. The rows verified, so each parses.
 */
static void print_budget_changes(const fa_store_ledger_row *rows, size_t n)
{
    double eps_max = 0.0, delta = 0.0;

    for (size_t i = 0; i < n; i++) {
        fa_ledger_entry e;
        fa_error err = FA_ERROR_INIT;

        if (rows[i].entry == NULL ||
            fa_ledger_entry_parse(&e, rows[i].entry, strlen(rows[i].entry), &err) < 0)
            continue;
        if (i > 0 && (e.epsilon_max != eps_max || e.delta != delta))
            printf("budget changed at entry %" PRId64 ": epsilon_max %g -> %g, delta %g -> %g%s\n",
                   e.seq, eps_max, e.epsilon_max, delta, e.delta,
                   e.kind == FA_LEDGER_BUDGET ? "" : " (v1 entry, no budget event)");
        eps_max = e.epsilon_max;
        delta = e.delta;
    }
}

/*
 * Exit 0 when the ledger and the model versions verify (and, with
 * require_private, no release used seeded noise); 1 otherwise.
 */
static int ledger_verify(const char *url, const char *key_dir, const char *pk_file,
                         int require_private)
{
    const char *cmd = "ledger verify";
    unsigned char pk[FA_KEYS_PK_BYTES];
    char path[4096];
    char head[2 * FA_LEDGER_HASH_BYTES + 1];
    fa_store *st = NULL;
    fa_store_ledger_row *rows = NULL;
    fa_ledger_report rep;
    fa_error err = FA_ERROR_INIT;
    size_t n = 0;
    int rc = 1, vrc;

    if (pk_file == NULL) {
        if (snprintf(path, sizeof(path), "%s/%s", key_dir, FA_KEYS_SIGN_PK) >= (int)sizeof(path))
            return fa_cli__usage_error(cmd, "key directory path is too long");
        pk_file = path;
    }
    if (fa_keys_read_public(pk, pk_file, &err) < 0) {
        fprintf(stderr, "fedagg %s: %s\n", cmd, err.msg);
        return 1;
    }
    if (fa_store_open(&st, url, 1, &err) < 0) {
        fprintf(stderr, "fedagg %s: %s\n", cmd, err.msg);
        return 1;
    }
    /* The chain, then the published versions against it (a cut tail). */
    vrc = fa_audit_ledger(&rep, &rows, &n, st, pk, &err);
    if (vrc == FA_ECONFLICT) {
        printf("%s\n", err.msg); /* "ledger entry 17: hash mismatch" */
        goto cleanup;
    }
    if (vrc < 0) {
        fprintf(stderr, "fedagg %s: %s\n", cmd, err.msg);
        goto cleanup;
    }
    fa_hex_encode(head, rep.head, sizeof(rep.head));
    if (n == 0) {
        printf("ledger ok: 0 entries\n");
    } else {
        printf("ledger ok: %zu entries (%" PRId64 " %s, %" PRId64 " %s, %" PRId64 " %s, %" PRId64
               " %s), epsilon %.6g at delta %g, head %s\n",
               rep.entries, rep.releases, plural(rep.releases, "release", "releases"), rep.refusals,
               plural(rep.refusals, "refusal", "refusals"), rep.abandonments,
               plural(rep.abandonments, "abandonment", "abandonments"), rep.budget_changes,
               plural(rep.budget_changes, "budget change", "budget changes"), rep.epsilon,
               rep.delta, head);
        print_budget_changes(rows, n);
        printf("budget in force: epsilon_max %g at delta %g, accountant %s\n", rep.epsilon_max,
               rep.delta, fa_accountant_name(rep.accountant));
        printf("model versions: %" PRId64 " published, each named by exactly one release\n",
               rep.releases);
    }
    printf("seeded releases: %" PRId64 "\n", rep.seeded_releases);
    if (rep.seeded_releases > 0)
        printf("NOT PRIVATE: %" PRId64 " %s used seeded (deterministic) noise\n",
               rep.seeded_releases, plural(rep.seeded_releases, "release", "releases"));
    rc = require_private && rep.seeded_releases > 0 ? 1 : 0;
cleanup:
    if (fflush(stdout) != 0)
        rc = 1;
    fa_store_ledger_rows_free(rows, n);
    fa_store_free(st);
    return rc;
}

static void utc_time(char out[32], int64_t secs)
{
    const time_t t = (time_t)secs;
    struct tm tm;

    if (gmtime_r(&t, &tm) == NULL || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        (void)snprintf(out, 32, "%" PRId64, secs);
}

static int ledger_show(const char *url, int as_json)
{
    fa_store_ledger_row *rows = NULL;
    json_t *arr = NULL;
    size_t n = 0;
    int rc = 1;

    if (read_rows(&rows, &n, "ledger show", url) != 0)
        return 1;
    if (as_json) {
        arr = json_array();
        for (size_t i = 0; arr != NULL && i < n; i++)
            if (json_array_append_new(arr, fa_audit_row_json(&rows[i])) < 0) {
                json_decref(arr);
                arr = NULL;
            }
        rc = fa_cli__print_json(arr, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
        goto cleanup;
    }
    printf("%5s  %-11s  %7s  %7s  %6s  %9s  %6s  %10s  %-20s  %s\n", "seq", "kind", "round",
           "version", "sigma", "q", "cohort", "epsilon", "created (UTC)", "hash");
    for (size_t i = 0; i < n; i++) {
        fa_ledger_entry e;
        fa_error err = FA_ERROR_INIT;
        char hash[2 * FA_LEDGER_HASH_BYTES + 1], when[32];
        fa_hex_encode(hash, rows[i].hash, sizeof(rows[i].hash));
        hash[16] = '\0';
        if (rows[i].entry == NULL ||
            fa_ledger_entry_parse(&e, rows[i].entry, strlen(rows[i].entry), &err) < 0) {
            printf("%5" PRId64 "  %-11s  %7" PRId64 "  %7" PRId64 "  %6s  %9s  %6s  %10.6g  %-20s  "
                   "%s (entry does not parse)\n",
                   rows[i].seq, rows[i].kind, rows[i].round_id, rows[i].model_version, "-", "-",
                   "-", rows[i].cumulative_epsilon, "-", hash);
            continue;
        }
        utc_time(when, e.created_at);
        printf("%5" PRId64 "  %-11s  %7" PRId64 "  %7" PRId64 "  %6.4g  %9.4g  %6" PRId64
               "  %10.6g  %-20s  %s\n",
               e.seq, fa_ledger_kind_name(e.kind), e.round_id, e.model_version,
               e.mech.noise_multiplier, e.mech.sampling_rate, e.mech.cohort_size, e.epsilon, when,
               hash);
    }
    rc = fflush(stdout) == 0 ? 0 : 1;
cleanup:
    fa_store_ledger_rows_free(rows, n);
    return rc;
}

/* One CSV field: names and numbers never need quoting; an unparsable row's kind might. */
static void csv_text(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s != '\0'; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static int ledger_export_csv(FILE *f, const fa_store_ledger_row *rows, size_t n)
{
    fprintf(f, "seq,kind,round_id,model_version,created_at,accountant,epsilon,epsilon_max,delta,"
               "noise_multiplier,sampling_rate,clip_norm,cohort_size,denominator,seeded,"
               "snapshot_sha256,prev_hash,hash,signature\n");
    for (size_t i = 0; i < n; i++) {
        fa_ledger_entry e;
        fa_error err = FA_ERROR_INIT;
        char hash[65], prev[65], snap[65], sig[129];
        fa_hex_encode(hash, rows[i].hash, 32);
        fa_hex_encode(prev, rows[i].prev_hash, 32);
        fa_hex_encode(sig, rows[i].signature, 64);
        if (rows[i].entry == NULL ||
            fa_ledger_entry_parse(&e, rows[i].entry, strlen(rows[i].entry), &err) < 0) {
            fprintf(f, "%" PRId64 ",", rows[i].seq);
            csv_text(f, rows[i].kind);
            fprintf(f, ",,,,,,,,,,,,,,,,%s,%s,%s\n", prev, hash, sig);
            continue;
        }
        fa_hex_encode(snap, e.snapshot_sha256, 32);
        fprintf(f,
                "%" PRId64 ",%s,%" PRId64 ",%" PRId64 ",%" PRId64 ",%s,%.17g,%.17g,%.17g,%.17g,"
                "%.17g,%.17g,%" PRId64 ",%.17g,%s,%s,%s,%s,%s\n",
                e.seq, fa_ledger_kind_name(e.kind), e.round_id, e.model_version, e.created_at,
                fa_accountant_name(e.accountant), e.epsilon, e.epsilon_max, e.delta,
                e.mech.noise_multiplier, e.mech.sampling_rate, e.mech.clip_norm, e.mech.cohort_size,
                e.mech.denominator, e.mech.seeded ? "true" : "false", e.format >= 2 ? snap : "",
                prev, hash, sig);
    }
    return ferror(f) ? -1 : 0;
}

static int ledger_export(const char *url, const char *format, const char *out_path)
{
    fa_store_ledger_row *rows = NULL;
    size_t n = 0;
    FILE *f = stdout;
    int rc = 1;

    if (read_rows(&rows, &n, "ledger export", url) != 0)
        return 1;
    if (out_path != NULL && (f = fopen(out_path, "w")) == NULL) {
        fprintf(stderr, "fedagg ledger export: cannot write %s: %s\n", out_path, strerror(errno));
        f = NULL;
        goto cleanup;
    }
    if (strcmp(format, "csv") == 0) {
        rc = ledger_export_csv(f, rows, n) == 0 ? 0 : 1;
    } else {
        json_t *arr = json_array(), *doc;
        for (size_t i = 0; arr != NULL && i < n; i++)
            if (json_array_append_new(arr, fa_audit_row_json(&rows[i])) < 0) {
                json_decref(arr);
                arr = NULL;
            }
        doc = arr != NULL ? json_pack("{s:o,s:n}", "entries", arr, "next") : NULL;
        rc = doc != NULL && json_dumpf(doc, f, JSON_COMPACT | JSON_REAL_PRECISION(17)) == 0 &&
                     fputc('\n', f) != EOF
                 ? 0
                 : 1;
        json_decref(doc);
    }
    if (rc != 0)
        fprintf(stderr, "fedagg ledger export: writing the ledger failed\n");
cleanup:
    if (f != NULL && f != stdout && fclose(f) != 0 && rc == 0) {
        fprintf(stderr, "fedagg ledger export: closing %s failed\n", out_path);
        rc = 1;
    }
    if (f == stdout && fflush(stdout) != 0)
        rc = 1;
    fa_store_ledger_rows_free(rows, n);
    return rc;
}

int fa_cmd_ledger(int argc, char **argv)
{
    static const struct option OPTS[] = {
        {"config", required_argument, NULL, 'c'},  {"database-url", required_argument, NULL, 'd'},
        {"key-dir", required_argument, NULL, 'k'}, {"public-key", required_argument, NULL, 'p'},
        {"json", no_argument, NULL, 'j'},          {"require-private", no_argument, NULL, 'r'},
        {"format", required_argument, NULL, 'f'},  {"out", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL, *url = NULL, *key_dir = NULL, *pk_file = NULL;
    const char *format = NULL, *out_path = NULL;
    const char *sub, *cmd;
    fa_config cfg;
    fa_error err = FA_ERROR_INIT;
    int as_json = 0, require_private = 0, verify, export = 0, c;

    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        ledger_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    sub = argv[1];
    if (strcmp(sub, "verify") == 0) {
        cmd = "ledger verify";
        verify = 1;
    } else if (strcmp(sub, "show") == 0) {
        cmd = "ledger show";
        verify = 0;
    } else if (strcmp(sub, "export") == 0) {
        cmd = "ledger export";
        verify = 0;
        export = 1;
    } else {
        return fa_cli__usage_error("ledger", "unknown subcommand '%s'", sub);
    }
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc - 1, argv + 1, ":", OPTS, NULL)) != -1) {
        switch (c) {
        case 'c':
            config_path = optarg;
            break;
        case 'd':
            url = optarg;
            break;
        case 'k':
            key_dir = optarg;
            break;
        case 'p':
            pk_file = optarg;
            break;
        case 'j':
            as_json = 1;
            break;
        case 'r':
            require_private = 1;
            break;
        case 'f':
            format = optarg;
            break;
        case 'o':
            out_path = optarg;
            break;
        case 'h':
            ledger_usage(stdout);
            return 0;
        default:
            return fa_cli__bad_option(cmd, c, argv + 1);
        }
    }
    if (optind != argc - 1)
        return fa_cli__usage_error(cmd, "unexpected argument '%s'", argv[1 + optind]);
    if ((verify || export) && as_json)
        return fa_cli__usage_error(cmd, "--json applies to 'ledger show'");
    if (!export && (format != NULL || out_path != NULL))
        return fa_cli__usage_error(cmd, "--format and --out apply to 'ledger export'");
    if (format == NULL)
        format = "json";
    if (strcmp(format, "json") != 0 && strcmp(format, "csv") != 0)
        return fa_cli__usage_error(cmd, "--format must be json or csv, got '%s'", format);
    if (!verify && require_private)
        return fa_cli__usage_error(cmd, "--require-private applies to 'ledger verify'");
    if (!verify && (key_dir != NULL || pk_file != NULL))
        return fa_cli__usage_error(cmd, "--key-dir and --public-key apply to 'ledger verify'");
    if (key_dir != NULL && pk_file != NULL)
        return fa_cli__usage_error(cmd, "give --key-dir or --public-key, not both");
    if (fa_config_load(&cfg, config_path, &err) < 0)
        return fa_cli__usage_error(cmd, "%s", err.msg);
    if ((url = fa_cli__database_url(url, &cfg)) == NULL)
        return fa_cli__usage_error(
            cmd, "no database: set DATABASE_URL, database_url in the config file, "
                 "or --database-url");
    if (key_dir == NULL)
        key_dir = cfg.key_dir;
    if (export)
        return ledger_export(url, format, out_path);
    return verify ? ledger_verify(url, key_dir, pk_file, require_private)
                  : ledger_show(url, as_json);
}
