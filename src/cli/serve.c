/* fedagg serve: the aggregation server. */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aggregator/aggregator.h"
#include "api/server.h"
#include "cli/cli.h"
#include "core/config.h"
#include "core/log.h"
#include "model/vec.h"
#include "privacy/accountant.h"
#include "privacy/keys.h"
#include "store/store.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: fedagg serve [--config FILE] [--database-url URL] [--key-dir DIR] "
               "[--port N]\n"
               "                    [--insecure-seeded-noise]\n"
               "  serves the device API until SIGINT or SIGTERM (SIGHUP re-reads the device\n"
               "  token keys); see config/fedagg.conf.example\n"
               "  --insecure-seeded-noise  allow noise_seed (deterministic noise, NO privacy;\n"
               "                           tests only), as insecure_seeded_noise = true\n");
}

/* Opens the store, waiting up to wait_s seconds for the database to come up. */
static int open_store(fa_store **out, const fa_config *cfg, int wait_s, fa_error *err)
{
    int rc;

    for (int waited = 0;; waited++) {
        rc = fa_store_open(out, cfg->database_url, (int)cfg->db_pool_size, err);
        if (rc != FA_EUNAVAIL || waited >= wait_s)
            return rc;
        if (waited == 0)
            FA_LOG(FA_WARN, "db.waiting", "msg=\"%s\"", err->msg);
        (void)sleep(1);
    }
}

int fa_cmd_serve(int argc, char **argv)
{
    static const struct option OPTS[] = {
        {"config", required_argument, NULL, 'c'},
        {"database-url", required_argument, NULL, 'd'},
        {"key-dir", required_argument, NULL, 'k'},
        {"port", required_argument, NULL, 'p'},
        {"insecure-seeded-noise", no_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL, *url = NULL, *key_dir = NULL, *port = NULL;
    int allow_seeded = 0;
    fa_config cfg;
    fa_error err = FA_ERROR_INIT;
    fa_keys *keys = NULL;
    fa_store *store = NULL;
    fa_aggregator *agg = NULL;
    fa_server *srv = NULL;
    sigset_t sigs;
    int c, status = 1;

    optind = 1;
    while ((c = getopt_long(argc, argv, "", OPTS, NULL)) != -1) {
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
            port = optarg;
            break;
        case 'S':
            allow_seeded = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "fedagg serve: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (fa_config_load(&cfg, config_path, &err) < 0 ||
        (url != NULL && fa_config_set(&cfg, "database_url", url, &err) < 0) ||
        (key_dir != NULL && fa_config_set(&cfg, "key_dir", key_dir, &err) < 0) ||
        (port != NULL && fa_config_set(&cfg, "port", port, &err) < 0) ||
        (allow_seeded && fa_config_set(&cfg, "insecure_seeded_noise", "true", &err) < 0) ||
        fa_config_validate(&cfg, &err) < 0) {
        fprintf(stderr, "fedagg serve: %s\n", err.msg);
        return 2;
    }
    if (cfg.noise_multiplier == FA_CONFIG_AUTO) {
        double planned_eps;
        if (fa_accountant_resolve_config(&cfg, &planned_eps, &err) < 0) {
            fprintf(stderr, "fedagg serve: %s\n", err.msg);
            return 2;
        }
        FA_LOG(FA_INFO, "privacy.calibrated",
               "noise_multiplier=%.6g accountant=%s planned_releases=%lld sampling_rate=%g "
               "epsilon=%.6g epsilon_max=%g delta=%g",
               cfg.noise_multiplier, cfg.accountant, (long long)cfg.planned_releases,
               cfg.sampling_rate, planned_eps, cfg.epsilon_max, cfg.delta);
    }
    if (cfg.database_url[0] == '\0') {
        fprintf(stderr, "fedagg serve: no database: set DATABASE_URL, database_url in the "
                        "config file, or --database-url\n");
        return 2;
    }
    /*
     * Whoever knows the seed can subtract the noise, so a seeded server
     * publishes models with no privacy at all while its ledger still states
     * an epsilon. One forgotten test setting must not do that: serving
     * seeded noise takes a second, explicitly insecure key.
     */
    if (cfg.noise_seed[0] != '\0' && !cfg.insecure_seeded_noise) {
        fprintf(stderr, "fedagg serve: noise_seed is set but insecure_seeded_noise is not: seeded "
                        "noise gives no privacy; unset noise_seed, or for tests only set "
                        "insecure_seeded_noise = true (FEDAGG_INSECURE_SEEDED_NOISE=1, "
                        "--insecure-seeded-noise)\n");
        return 2;
    }
    fa_log_set_level((fa_log_level)fa_log_level_parse(cfg.log_level));
    /* Only the aggregation worker calls BLAS, one thread per call. */
    fa_vec_set_threads(1);
    /* Signals are taken by sigwait below; block them before any thread
     * starts so every thread inherits the mask. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    (void)pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (cfg.noise_seed[0] != '\0')
        FA_LOG(FA_WARN, "privacy.seeded_noise",
               "msg=\"noise_seed is set and allowed by insecure_seeded_noise: noise is "
               "deterministic and gives NO privacy; every ledger entry records it\"");
    if (fa_keys_load(&keys, cfg.key_dir, &err) < 0) {
        FA_LOG(FA_ERROR, "server.keys", "msg=\"%s\"", err.msg);
        fprintf(stderr, "fedagg serve: %s (create keys with: fedagg keygen --out %s)\n", err.msg,
                cfg.key_dir);
        goto cleanup;
    }
    if (open_store(&store, &cfg, 30, &err) < 0) {
        FA_LOG(FA_ERROR, "db.open", "msg=\"%s\"", err.msg);
        goto cleanup;
    }
    fa_aggregator_opts aopts = FA_AGGREGATOR_OPTS_INIT;
    aopts.cfg = &cfg;
    aopts.store = store;
    aopts.keys = keys;
    if (fa_aggregator_start(&agg, &aopts, &err) < 0) {
        FA_LOG(FA_ERROR, "aggregator.start", "msg=\"%s\"", err.msg);
        goto cleanup;
    }
    fa_server_opts sopts = {&cfg, store, agg, keys};
    if (fa_server_start(&srv, &sopts, &err) < 0) {
        FA_LOG(FA_ERROR, "server.start", "msg=\"%s\"", err.msg);
        goto cleanup;
    }
    FA_LOG(FA_INFO, "server.listening",
           "address=%s port=%u threads=%lld key_id=%s min_cohort=%lld noise_multiplier=%g "
           "clip_norm=%g epsilon_max=%g delta=%g accountant=%s",
           cfg.listen_address, (unsigned)fa_server_port(srv), (long long)cfg.http_threads,
           fa_keys_key_id(keys), (long long)cfg.min_cohort, cfg.noise_multiplier, cfg.clip_norm,
           cfg.epsilon_max, cfg.delta, cfg.accountant);
    /* A line scripts can wait for: the server is up on this port. */
    const char *scheme = cfg.tls_cert_file[0] != '\0' ? "https" : "http";
    printf("listening on %s://%s:%u\n", scheme, cfg.listen_address, (unsigned)fa_server_port(srv));
    if (fa_server_metrics_port(srv) != 0)
        printf("metrics on %s://%s:%u/metrics\n", scheme, cfg.metrics_listen_address,
               (unsigned)fa_server_metrics_port(srv));
    (void)fflush(stdout);

    /* Wait for a signal, reporting round outcomes once a second. */
    fa_aggregator_stats last;
    memset(&last, 0, sizeof(last));
    for (;;) {
        struct timespec one = {1, 0};
        int sig = sigtimedwait(&sigs, NULL, &one);
        fa_aggregator_stats now;
        fa_aggregator_stats_get(&now, agg);
        if (now.rounds_closed != last.rounds_closed)
            FA_LOG(FA_INFO, "round.published", "rounds_closed=%llu epsilon=%.6g",
                   (unsigned long long)now.rounds_closed, now.cumulative_epsilon);
        if (now.rounds_abandoned != last.rounds_abandoned)
            FA_LOG(FA_INFO, "round.abandoned", "rounds_abandoned=%llu",
                   (unsigned long long)now.rounds_abandoned);
        if (now.rounds_refused != last.rounds_refused)
            FA_LOG(FA_WARN, "round.refused", "rounds_refused=%llu epsilon_max=%g",
                   (unsigned long long)now.rounds_refused, cfg.epsilon_max);
        last = now;
        if (sig == SIGHUP) {
            fa_error rerr = FA_ERROR_INIT;
            if (fa_server_reload(srv, &rerr) < 0)
                FA_LOG(FA_ERROR, "server.reload_failed", "msg=\"%s\"", rerr.msg);
            else
                FA_LOG(FA_INFO, "server.reloaded", "signal=%d", sig);
        }
        if (sig == SIGINT || sig == SIGTERM) {
            FA_LOG(FA_INFO, "server.stopping", "signal=%d", sig);
            break;
        }
    }
    status = 0;
cleanup:
    fa_server_stop(srv);
    fa_aggregator_stop(agg);
    fa_store_free(store);
    fa_keys_free(keys);
    return status;
}
