/*
 * fedagg synth: writes the planted latent-factor population of fedagg
 * simulate --synthetic as a dataset in the MovieLens split format; and the
 * population options both commands take.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "cli/internal.h"
#include "core/util.h"
#include "model/data.h"
#include "model/synth.h"

/* An integer option in [1, max] into *dst; *bad set when it is not. */
static int set_count(int32_t *dst, const char *arg, int64_t max, int *bad)
{
    int64_t v = 0;

    *bad = fa_parse_i64(&v, arg) < 0 || v < 1 || v > max;
    *dst = (int32_t)v;
    return 1;
}

int fa_cli__synth_option(fa_synth_opts *so, int c, const char *arg, int *bad)
{
    double d = 0;

    switch (c) {
    case 'U':
        return set_count(&so->num_users, arg, 1000000, bad);
    case 'I':
        return set_count(&so->num_items, arg, 100000, bad);
    case 'P':
        return set_count(&so->positives, arg, 100000, bad);
    case 'L':
        return set_count(&so->latent_dim, arg, 256, bad);
    case 'T':
        *bad = fa_parse_double(&d, arg) < 0 || !(d > 0) || d > 100;
        so->temperature = d;
        return 1;
    default:
        return 0;
    }
}

/* ============================================================ synth */

static void synth_usage(FILE *f)
{
    fprintf(f, "usage: fedagg synth --out DIR [--users N] [--items M] [--positives P]\n"
               "                    [--latent-dim D] [--temperature T] [--seed S]\n"
               "  writes the planted latent-factor population that `fedagg simulate\n"
               "  --synthetic` uses with the same options as DIR/loo_train.tsv and\n"
               "  DIR/loo_test.tsv (1-based ids, 99 negatives per test line); DIR is\n"
               "  created if needed and existing files are not replaced\n");
}

int fa_cmd_synth(int argc, char **argv)
{
    static const struct option OPTS[] = {
        {"out", required_argument, NULL, 'o'},
        FA_CLI_SYNTH_OPTIONS,
        {"seed", required_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    fa_synth_opts so = FA_SYNTH_OPTS_INIT;
    fa_dataset *ds = NULL;
    fa_error err = FA_ERROR_INIT;
    const char *out = NULL;
    int64_t v64 = 0;
    int c, idx = 0;

    optind = 1;
    while ((c = getopt_long(argc, argv, "", OPTS, &idx)) != -1) {
        int bad = 0;
        if (fa_cli__synth_option(&so, c, optarg, &bad)) {
            /* handled */
        } else if (c == 'o') {
            out = optarg;
        } else if (c == 'S') {
            bad = fa_parse_i64(&v64, optarg) < 0 || v64 < 0;
            so.seed = (uint64_t)v64;
        } else if (c == 'h') {
            synth_usage(stdout);
            return 0;
        } else {
            synth_usage(stderr);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "fedagg synth: bad value '%s' for --%s\n", optarg, OPTS[idx].name);
            return 2;
        }
    }
    if (out == NULL || optind < argc) {
        synth_usage(stderr);
        return 2;
    }
    if (fa_synth_dataset(&ds, &so, &err) < 0 || fa_synth_write(ds, out, &err) < 0) {
        fprintf(stderr, "fedagg synth: %s\n", err.msg);
        fa_dataset_free(ds);
        return 1;
    }
    printf("{\"users\":%d,\"items\":%d,\"interactions\":%zu}\n", (int)fa_dataset_num_users(ds),
           (int)fa_dataset_num_items(ds), fa_dataset_num_interactions(ds));
    fa_dataset_free(ds);
    return 0;
}
