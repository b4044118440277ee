/*
 * fedagg privacy: the accountant from the command line (epsilon of a
 * schedule, the noise multiplier for a budget). Exit status: 0 success,
 * 1 failure, 2 bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
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
#include "privacy/crypto.h"
#include "privacy/keys.h"
#include "privacy/ledger.h"
#include "privacy/rdp.h"
#include "store/store.h"

/* Parses a double in [lo, hi] (open ends when lo_open/hi_open). */
static int arg_double(double *out, const char *cmd, const char *name, const char *s, double lo,
                      int lo_open, double hi, int hi_open)
{
    double v;

    if (s == NULL)
        return fa_cli__usage_error(cmd, "--%s is required", name);
    if (fa_parse_double(&v, s) < 0 || (lo_open ? v <= lo : v < lo) || (hi_open ? v >= hi : v > hi))
        return fa_cli__usage_error(cmd, "--%s must be a number in %c%g, %g%c, got '%s'", name,
                                   lo_open ? '(' : '[', lo, hi, hi_open ? ')' : ']', s);
    *out = v;
    return 0;
}

static int arg_rounds(int64_t *out, const char *cmd, const char *s)
{
    int64_t v;

    if (s == NULL)
        return fa_cli__usage_error(cmd, "--rounds is required");
    if (fa_parse_i64(&v, s) < 0 || v < 1 || v > FA_RDP_ROUNDS_MAX)
        return fa_cli__usage_error(cmd, "--rounds must be an integer in [1, %d], got '%s'",
                                   FA_RDP_ROUNDS_MAX, s);
    *out = v;
    return 0;
}

/* ================================================================ privacy */

static void privacy_usage(FILE *f)
{
    fprintf(f,
            "usage: fedagg privacy epsilon --noise-multiplier S --sampling-rate Q --rounds T "
            "--delta D [--accountant pld|rdp]\n"
            "       fedagg privacy noise-multiplier --epsilon E --sampling-rate Q --rounds T "
            "--delta D [--accountant pld|rdp]\n"
            "\n"
            "  epsilon           epsilon spent by T releases of the sampled Gaussian mechanism\n"
            "  noise-multiplier  smallest sigma (to 0.1%%) whose epsilon is at most E\n"
            "\n"
            "  --accountant pld (default): the privacy loss distribution of the Poisson-sampled\n"
            "  Gaussian, discretised pessimistically (Koskela et al. 2020; Doroshenko et al.\n"
            "  2022), an upper bound within 1%% of the true epsilon. --accountant rdp: Renyi DP\n"
            "  (Mironov, Talwar, Zhang 2019) over orders 1.1..10.9, 11..63, 128, 256, 512,\n"
            "  1024, converted with Balle et al. 2020 (looser). Ranges: S in [%g, %g],\n"
            "  Q in [%g, 1], T in [1, %d], D in (0, 1). Prints one JSON object.\n",
            FA_RDP_SIGMA_MIN, FA_RDP_SIGMA_MAX, FA_RDP_Q_MIN, FA_RDP_ROUNDS_MAX);
}

int fa_cmd_privacy(int argc, char **argv)
{
    static const struct option OPTS[] = {
        {"noise-multiplier", required_argument, NULL, 's'},
        {"epsilon", required_argument, NULL, 'e'},
        {"sampling-rate", required_argument, NULL, 'q'},
        {"rounds", required_argument, NULL, 't'},
        {"delta", required_argument, NULL, 'd'},
        {"accountant", required_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *s_arg = NULL, *e_arg = NULL, *q_arg = NULL, *t_arg = NULL, *d_arg = NULL;
    fa_accountant_kind kind = FA_ACCOUNTANT_PLD;
    const char *sub, *cmd;
    double sigma = 0.0, target = 0.0, q = 0.0, delta = 0.0, eps = 0.0, order = 0.0;
    int64_t rounds = 0;
    fa_error err = FA_ERROR_INIT;
    json_t *out = NULL;
    int c, calibrate;

    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        privacy_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    sub = argv[1];
    if (strcmp(sub, "epsilon") == 0) {
        cmd = "privacy epsilon";
        calibrate = 0;
    } else if (strcmp(sub, "noise-multiplier") == 0) {
        cmd = "privacy noise-multiplier";
        calibrate = 1;
    } else {
        return fa_cli__usage_error("privacy", "unknown subcommand '%s'", sub);
    }
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc - 1, argv + 1, ":", OPTS, NULL)) != -1) {
        switch (c) {
        case 's':
            s_arg = optarg;
            break;
        case 'e':
            e_arg = optarg;
            break;
        case 'q':
            q_arg = optarg;
            break;
        case 't':
            t_arg = optarg;
            break;
        case 'd':
            d_arg = optarg;
            break;
        case 'a':
            if (fa_accountant_parse(&kind, optarg) < 0 || strchr(optarg, '-') != NULL)
                return fa_cli__usage_error(cmd, "--accountant must be pld or rdp, got '%s'",
                                           optarg);
            break;
        case 'h':
            privacy_usage(stdout);
            return 0;
        default:
            return fa_cli__bad_option(cmd, c, argv + 1);
        }
    }
    if (optind != argc - 1)
        return fa_cli__usage_error(cmd, "unexpected argument '%s'", argv[1 + optind]);
    if (calibrate ? s_arg != NULL : e_arg != NULL)
        return fa_cli__usage_error(cmd, "--%s does not apply here",
                                   calibrate ? "noise-multiplier" : "epsilon");
    if ((calibrate ? arg_double(&target, cmd, "epsilon", e_arg, 0.0, 1, HUGE_VAL, 1)
                   : arg_double(&sigma, cmd, "noise-multiplier", s_arg, FA_RDP_SIGMA_MIN, 0,
                                FA_RDP_SIGMA_MAX, 0)) != 0 ||
        arg_double(&q, cmd, "sampling-rate", q_arg, FA_RDP_Q_MIN, 0, 1.0, 0) != 0 ||
        arg_rounds(&rounds, cmd, t_arg) != 0 ||
        arg_double(&delta, cmd, "delta", d_arg, 0.0, 1, 1.0, 1) != 0)
        return 2;

    if (!calibrate) {
        if ((kind == FA_ACCOUNTANT_RDP
                 ? fa_rdp_epsilon_rounds(&eps, &order, q, sigma, rounds, delta, &err)
                 : fa_accountant_epsilon_rounds(&eps, kind, q, sigma, rounds, delta, &err)) < 0) {
            fprintf(stderr, "fedagg %s: %s\n", cmd, err.msg);
            return 1;
        }
        out = json_pack("{s:f,s:f,s:s}", "epsilon", eps, "delta", delta, "accountant",
                        fa_accountant_short_name(kind));
    } else {
        if ((kind == FA_ACCOUNTANT_RDP
                 ? fa_rdp_calibrate(&sigma, &eps, &order, target, q, rounds, delta, &err)
                 : fa_accountant_calibrate(&sigma, &eps, kind, target, q, rounds, delta, &err)) <
            0) {
            /* An unreachable target is an out-of-range argument; anything else a failure. */
            fprintf(stderr, "fedagg %s: %s\n", cmd, err.msg);
            return err.code == FA_EINVAL ? 2 : 1;
        }
        out = json_pack("{s:f,s:f,s:f,s:s}", "noise_multiplier", sigma, "epsilon", eps, "delta",
                        delta, "accountant", fa_accountant_short_name(kind));
    }
    /* RDP states the order its epsilon is attained at. */
    if (out != NULL && kind == FA_ACCOUNTANT_RDP)
        (void)json_object_set_new(out, "order", json_real(order));
    return fa_cli__print_json(out, JSON_REAL_PRECISION(FA_CLI_REAL_PRECISION));
}
