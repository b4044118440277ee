/*
 * fedagg simulate: simulated devices, over HTTP against a running server or
 * in process with the server's round arithmetic (sim/sim.h). Also fedagg
 * synth, which writes the planted latent-factor population as a dataset in
 * the MovieLens split format. This file holds the command line only.
 */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/internal.h"
#include "core/util.h"
#include "model/data.h"
#include "model/eval.h"
#include "model/ncf.h"
#include "model/params.h"
#include "model/rng.h"
#include "model/synth.h"
#include "model/vec.h"
#include "privacy/accountant.h"
#include "privacy/crypto.h"
#include "sim/sim.h"

/* ===================================================== command lines */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: fedagg simulate (--server URL | --in-process) (--data DIR | --synthetic) "
            "[options]\n"
            "  --server URL        devices talk to a running fedagg serve over HTTP; each\n"
            "                      round lasts until the server's round_deadline_s\n"
            "  --in-process        the server's round arithmetic and accountant, no HTTP, no "
            "database\n"
            "  --rounds N          rounds (default 3)\n"
            "  --cohort K          devices per round without sampling (default: the minimum "
            "cohort)\n"
            "  --parallel P        devices training at once (default 4)\n"
            "  --epochs E --lr LR --batch B --optimizer adam|sgd --negatives K\n"
            "                      local training (default 2 epochs, SGD lr 1, batch 4096, 4)\n"
            "  --users N --items M --positives P --latent-dim D --temperature T\n"
            "                      synthetic population (default 200/400/20/8/0.5)\n"
            "  --seed S            seed of device choice, user vectors, training and data\n"
            "  --eval-users N      score a fixed seeded sample of N users (default: all)\n"
            "  --eval-every N      evaluate every N rounds and after the last (default 1)\n"
            "  --eval-initial      also score the starting model first (printed as round 0)\n"
            "  --auth-key FILE --auth-issuer ISS [--auth-audience AUD]\n"
            "                      over HTTP to a server with auth = jwt: each device sends\n"
            "                      a token for its own subject, signed with FILE (a test\n"
            "                      issuer key from `fedagg auth keygen`)\n"
            "  --ca-file FILE      an https:// server is verified with the CA certificates\n"
            "                      of FILE (PEM) instead of the system's\n"
            "in-process only:\n"
            "  --config FILE       the server configuration (then FEDAGG_* variables), as serve\n"
            "  --set KEY=VALUE     override one configuration key (repeatable)\n"
            "  --no-noise          non-private baseline: no noise, epsilon reported as \"inf\"\n"
            "  --save-model FILE   write the last model as safetensors\n"
            "  --attack boost|scale|noise  a share of the devices is adversarial:\n"
            "                      boost pushes --attack-target into everyone's top 10,\n"
            "                      scale multiplies honest updates, noise sends noise\n"
            "  --attack-fraction F share of the population that attacks (default 0.05)\n"
            "  --attack-target I   boost: the item id (default 0)\n"
            "  --attack-scale K    boost/scale: update multiple; noise: norm in S (default 10)\n"
            "prints one JSON line per round: round, version, cohort, hr10, ndcg10, epsilon, "
            "delta, seconds (with --attack also attackers, target_hr10; hr10 and ndcg10\n"
            "then count honest users only)\n");
}

/* A seeded sample of n users with a test line, in increasing order. */
static int pick_eval_users(fa_sim *s, int64_t n, fa_error *err)
{
    int32_t m = 0;
    fa_rng r;

    s->eval_ids = malloc((size_t)s->users * sizeof(int32_t));
    if (s->eval_ids == NULL)
        return fa_fail(err, FA_ENOMEM, "out of memory");
    for (int32_t u = 0; u < s->users; u++)
        if (fa_dataset_test(s->ds, u) != NULL)
            s->eval_ids[m++] = u;
    if (n > 0 && n < m) {
        /* Selection sampling (Knuth, TAOCP 3.4.2, Algorithm S): order kept. */
        int32_t kept = 0;
        fa_rng_init(&r, s->opts.seed, FA_SIM_STREAM_EVAL);
        for (int32_t i = 0; i < m && kept < n; i++)
            if ((double)(m - i) * fa_rng_uniform(&r) < (double)(n - kept))
                s->eval_ids[kept++] = s->eval_ids[i];
        m = kept;
    }
    s->n_eval = m;
    return FA_OK;
}

/* Long options without a short letter (the letters are taken). */
enum { OPT_AUTH_KEY = 1000, OPT_AUTH_ISSUER, OPT_AUTH_AUDIENCE, OPT_ATTACK_TARGET, OPT_CA_FILE };

int fa_cmd_simulate(int argc, char **argv)
{
    static const struct option OPTS[] = {
        {"server", required_argument, NULL, 's'},
        {"in-process", no_argument, NULL, 'x'},
        {"data", required_argument, NULL, 'd'},
        {"synthetic", no_argument, NULL, 'y'},
        {"rounds", required_argument, NULL, 'r'},
        {"cohort", required_argument, NULL, 'k'},
        {"parallel", required_argument, NULL, 'p'},
        {"epochs", required_argument, NULL, 'e'},
        {"lr", required_argument, NULL, 'l'},
        {"batch", required_argument, NULL, 'b'},
        {"optimizer", required_argument, NULL, 'o'},
        {"negatives", required_argument, NULL, 'n'},
        FA_CLI_SYNTH_OPTIONS,
        {"seed", required_argument, NULL, 'S'},
        {"eval-users", required_argument, NULL, 'E'},
        {"eval-every", required_argument, NULL, 'v'},
        {"eval-initial", no_argument, NULL, '0'},
        {"config", required_argument, NULL, 'c'},
        {"set", required_argument, NULL, 'K'},
        {"no-noise", no_argument, NULL, 'N'},
        {"save-model", required_argument, NULL, 'm'},
        {"attack", required_argument, NULL, 'A'},
        {"attack-fraction", required_argument, NULL, 'F'},
        {"attack-target", required_argument, NULL, OPT_ATTACK_TARGET},
        {"attack-scale", required_argument, NULL, 'Z'},
        {"auth-key", required_argument, NULL, OPT_AUTH_KEY},
        {"auth-issuer", required_argument, NULL, OPT_AUTH_ISSUER},
        {"auth-audience", required_argument, NULL, OPT_AUTH_AUDIENCE},
        {"ca-file", required_argument, NULL, OPT_CA_FILE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    enum { MAX_SETS = 64 };
    fa_sim s;
    fa_synth_opts so = FA_SYNTH_OPTS_INIT;
    const char *data = NULL, *url = NULL, *config_path = NULL, *sets[MAX_SETS], *auth_key = NULL;
    fa_crypto_sign_key *issuer = NULL;
    int64_t parallel = 4, eval_users = 0, v64 = 0;
    double dv = 0;
    int synthetic = 0, in_process = 0, nsets = 0, c, idx = 0, status = 1, rc;
    fa_error err = FA_ERROR_INIT;

    memset(&s, 0, sizeof(s));
    /* The device recipe of docs/results.md: two full-batch SGD steps (lr 1)
     * on the device's own data (a batch of 4096 holds every sample of any
     * MovieLens-100K user with its negatives). */
    s.opts = (fa_train_opts)FA_TRAIN_OPTS_INIT;
    s.opts.epochs = 2;
    s.opts.lr = 1.0;
    s.opts.batch = 4096;
    s.opts.optimizer = FA_OPTIMIZER_SGD;
    s.opts.seed = 1;
    s.rounds = 3;
    s.eval_every = 1;
    s.out = stdout;
    s.attack_fraction = 0.05;
    s.attack_scale = 10.0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", OPTS, &idx)) != -1) {
        int bad = 0;
        if (fa_cli__synth_option(&so, c, optarg, &bad)) {
            /* handled */
        } else {
            switch (c) {
            case 's':
                url = optarg;
                break;
            case 'x':
                in_process = 1;
                break;
            case 'd':
                data = optarg;
                break;
            case 'y':
                synthetic = 1;
                break;
            case 'r':
                bad = fa_parse_i64(&s.rounds, optarg) < 0 || s.rounds < 1 || s.rounds > 100000;
                break;
            case 'k':
                bad = fa_parse_i64(&s.cohort, optarg) < 0 || s.cohort < 1 || s.cohort > 10000000;
                break;
            case 'p':
                bad = fa_parse_i64(&parallel, optarg) < 0 || parallel < 1 || parallel > 256;
                break;
            case 'e':
                bad = fa_parse_i64(&v64, optarg) < 0 || v64 < 1 || v64 > 1000;
                s.opts.epochs = (int)v64;
                break;
            case 'l':
                bad = fa_parse_double(&dv, optarg) < 0 || dv <= 0 || dv > 10;
                s.opts.lr = dv;
                break;
            case 'b':
                bad = fa_parse_i64(&v64, optarg) < 0 || v64 < 1 || v64 > 65536;
                s.opts.batch = (size_t)v64;
                break;
            case 'o':
                bad = fa_train_optimizer_parse(&s.opts.optimizer, optarg) < 0;
                break;
            case 'n':
                bad = fa_parse_i64(&v64, optarg) < 0 || v64 < 0 || v64 > FA_TRAIN_MAX_NEGATIVES;
                s.opts.negatives = (int)v64;
                break;
            case 'S':
                bad = fa_parse_i64(&v64, optarg) < 0 || v64 < 0;
                s.opts.seed = (uint64_t)v64;
                so.seed = (uint64_t)v64;
                break;
            case 'E':
                bad = fa_parse_i64(&eval_users, optarg) < 0 || eval_users < 1;
                break;
            case 'v':
                bad = fa_parse_i64(&s.eval_every, optarg) < 0 || s.eval_every < 1;
                break;
            case '0':
                s.eval_initial = 1;
                break;
            case 'c':
                config_path = optarg;
                break;
            case 'K':
                bad = nsets >= MAX_SETS || strchr(optarg, '=') == NULL;
                if (!bad)
                    sets[nsets++] = optarg;
                break;
            case 'N':
                s.no_noise = 1;
                break;
            case 'm':
                s.save_model = optarg;
                break;
            case 'A':
                bad = fa_sim_attack_parse(&s.attack, optarg) < 0;
                break;
            case 'F':
                bad = fa_parse_double(&s.attack_fraction, optarg) < 0 ||
                      !(s.attack_fraction >= 0) || s.attack_fraction > 1;
                break;
            case OPT_ATTACK_TARGET:
                bad = fa_parse_i64(&v64, optarg) < 0 || v64 < 0 || v64 > INT32_MAX;
                s.attack_target = (int32_t)v64;
                break;
            case 'Z':
                bad = fa_parse_double(&s.attack_scale, optarg) < 0 || !(s.attack_scale > 0) ||
                      s.attack_scale > 1e6;
                break;
            case OPT_AUTH_KEY:
                auth_key = optarg;
                break;
            case OPT_AUTH_ISSUER:
                s.auth_issuer = optarg;
                break;
            case OPT_AUTH_AUDIENCE:
                s.auth_audience = optarg;
                break;
            case OPT_CA_FILE:
                s.ca_file = optarg;
                break;
            case 'h':
                usage(stdout);
                return 0;
            default:
                usage(stderr);
                return 2;
            }
        }
        if (bad) {
            fprintf(stderr, "fedagg simulate: bad value '%s' for --%s\n", optarg, OPTS[idx].name);
            return 2;
        }
    }
    if (optind < argc || (url == NULL) == (in_process == 0) || (data == NULL) == (synthetic == 0)) {
        fprintf(stderr, "fedagg simulate: give one of --server URL or --in-process, and one of "
                        "--data DIR or --synthetic\n");
        return 2;
    }
    if (!in_process && (config_path != NULL || nsets > 0 || s.no_noise || s.save_model != NULL ||
                        s.attack != FA_SIM_ATTACK_NONE)) {
        fprintf(stderr, "fedagg simulate: --config, --set, --no-noise, --save-model and --attack "
                        "need --in-process (the server has its own configuration)\n");
        return 2;
    }
    if (s.no_noise && s.save_model != NULL) {
        fprintf(stderr, "fedagg simulate: --save-model is refused with --no-noise (a snapshot "
                        "states a finite epsilon)\n");
        return 2;
    }
    if ((auth_key != NULL) != (s.auth_issuer != NULL) ||
        (s.auth_audience != NULL && auth_key == NULL) || (auth_key != NULL && in_process)) {
        fprintf(stderr, "fedagg simulate: --auth-key and --auth-issuer go together, with "
                        "--server (and --auth-audience, default fedagg)\n");
        return 2;
    }
    fa_cmd_reexec_for_blas(argc, argv);
    if (auth_key != NULL) {
        if (fa_crypto_init(&err) < 0 ||
            fa_cmd_auth_load_issuer(&issuer, s.auth_kid, auth_key, &err) < 0) {
            fprintf(stderr, "fedagg simulate: %s\n", err.msg);
            return 1;
        }
        s.auth_key = issuer;
        if (s.auth_audience == NULL)
            s.auth_audience = "fedagg";
    }
    s.parallel = (int)parallel;
    if (in_process) {
        /* The server's configuration, read the way fedagg serve reads it. */
        if (fa_config_load(&s.cfg, config_path, &err) < 0) {
            fprintf(stderr, "fedagg simulate: %s\n", err.msg);
            return 2;
        }
        for (int i = 0; i < nsets; i++) {
            char key[64];
            const char *eq = strchr(sets[i], '=');
            (void)snprintf(key, sizeof(key), "%.*s", (int)(eq - sets[i]), sets[i]);
            if (fa_config_set(&s.cfg, key, eq + 1, &err) < 0) {
                fprintf(stderr, "fedagg simulate: %s\n", err.msg);
                return 2;
            }
        }
        double planned_eps;
        if (fa_config_validate(&s.cfg, &err) < 0 ||
            fa_accountant_resolve_config(&s.cfg, &planned_eps, &err) < 0) {
            fprintf(stderr, "fedagg simulate: %s\n", err.msg);
            return 2;
        }
    }
    fa_vec_set_threads(1);
    if (data != NULL) {
        fa_dataset_limits lim = FA_DATASET_LIMITS_INIT;
        rc = fa_dataset_load(&s.ds, data, &lim, &err);
    } else {
        rc = fa_synth_dataset(&s.ds, &so, &err);
    }
    if (rc < 0)
        goto fail;
    if (s.attack == FA_SIM_ATTACK_BOOST && s.attack_target >= fa_dataset_num_items(s.ds)) {
        (void)fa_fail(&err, FA_EINVAL, "--attack-target %d is not an item (the data has %d)",
                      (int)s.attack_target, (int)fa_dataset_num_items(s.ds));
        goto fail;
    }
    s.users = fa_dataset_num_users(s.ds);
    s.user_table = malloc((size_t)s.users * FA_NCF_EMBED_DIM * sizeof(float));
    if (s.user_table == NULL) {
        (void)fa_fail(&err, FA_ENOMEM, "out of memory");
        goto fail;
    }
    for (int32_t u = 0; u < s.users; u++)
        fa_params_init_user(s.user_table + (size_t)u * FA_NCF_EMBED_DIM, s.opts.seed + (uint64_t)u);
    if (pick_eval_users(&s, eval_users, &err) < 0)
        goto fail;
    rc = in_process ? fa_sim_run_local(&s, &err) : fa_sim_run_http(&s, url, &err);
    if (rc < 0)
        goto fail;
    status = 0;
    goto cleanup;
fail:
    fprintf(stderr, "fedagg simulate: %s\n", err.msg);
cleanup:
    free(s.user_table);
    free(s.eval_ids);
    fa_dataset_free(s.ds);
    fa_crypto_sign_key_free(issuer);
    return status;
}
