/*
 * fedagg configuration: defaults, then a `key = value` file, then environment
 * overrides (DATABASE_URL and FEDAGG_<KEY>). Every key is described in one
 * table in config.c and documented in config/fedagg.conf.example. A loaded
 * fa_config is immutable and may be read by any thread.
 */
#ifndef FA_CORE_CONFIG_H
#define FA_CORE_CONFIG_H

#include <stdint.h>

#include "core/error.h"

#define FA_CONFIG_MAX_BYTES (1024 * 1024)
#define FA_CONFIG_STR_MAX   1024
#define FA_CONFIG_AUTO      0.0 /* a number key set to "auto" (noise_multiplier) */

typedef struct fa_config {
    /* server */
    char listen_address[64];         /* IPv4 or IPv6 literal */
    int64_t port;                    /* TCP port, 0 = any free port */
    int64_t http_threads;            /* libmicrohttpd thread pool size */
    int64_t max_body_bytes;          /* bytes; update bodies above are 413 */
    int64_t request_timeout_s;       /* seconds a client may stay idle */
    int64_t request_max_s;           /* seconds one request may take, headers to last byte */
    int64_t max_connections;         /* open connections at once */
    int64_t max_connections_per_ip;  /* open connections from one address, 0 = no limit */
    int64_t max_header_bytes;        /* per-connection buffer: request line + headers fit in it */
    double rate_limit_per_s;         /* check-ins and updates per second per address, 0 = off */
    double rate_limit_burst;         /* ... that may come at once */
    double device_rate_per_s;        /* check-ins per second per deviceId, 0 = off */
    double device_rate_burst;        /* ... that may come at once */
    char metrics_listen_address[64]; /* operator port for /metrics, "" = none */
    int64_t metrics_port;            /* its TCP port, 0 = any free port */
    char metrics_token[FA_CONFIG_STR_MAX];  /* bearer token /metrics requires, "" = none */
    char auth[16];                          /* none | jwt: how devices prove who they are */
    char auth_issuer[FA_CONFIG_STR_MAX];    /* jwt: the "iss" tokens must carry */
    char auth_audience[FA_CONFIG_STR_MAX];  /* jwt: the "aud" tokens must include */
    char auth_jwks_file[FA_CONFIG_STR_MAX]; /* jwt: the issuer's keys (re-read on SIGHUP) */
    double auth_leeway_s;                   /* jwt: clock skew allowed on exp / nbf / iat */
    char tls_cert_file[FA_CONFIG_STR_MAX];  /* PEM certificate chain: serve HTTPS, "" = plain */
    char tls_key_file[FA_CONFIG_STR_MAX];   /* its PEM private key */
    int allow_plain_http;                   /* 1: plain HTTP on a non-loopback address */
    char log_level[16];                     /* debug | info | warn | error */
    char key_dir[FA_CONFIG_STR_MAX];        /* directory of the server key files */
    /* database */
    char database_url[FA_CONFIG_STR_MAX]; /* libpq conninfo or URI */
    int64_t db_pool_size;                 /* connections; >= http_threads + 2 */
    /* rounds */
    int64_t min_cohort;             /* updates needed to close a round */
    int64_t max_cohort;             /* a round that reaches it is abandoned */
    int64_t commit_batch_max;       /* updates per group commit at most */
    double commit_wait_ms;          /* how long a group commit waits for more updates */
    int64_t partial_vacuum_commits; /* VACUUM partial_sums after this many commits; 0 never */
    int64_t expected_cohort;        /* public denominator of the mean; 0 = min_cohort */
    double round_deadline_s;        /* seconds from open to deadline */
    char trust_policy[16];          /* none | cosine | structure */
    int64_t weight_cap_samples;     /* n_cap: weight = t * min(1, n / n_cap) */
    /* privacy */
    double clip_norm;          /* S, L2 norm of one clipped update */
    double noise_multiplier;   /* sigma; noise stddev = sigma * S; FA_CONFIG_AUTO until
                                  calibrated from the budget (fa_accountant_resolve_config) */
    int64_t planned_releases;  /* releases epsilon_max must last (noise_multiplier = auto) */
    char accountant[8];        /* pld | rdp */
    double sampling_rate;      /* q of Poisson sampling at check-in; 1 = off */
    double epsilon_max;        /* privacy budget epsilon */
    double delta;              /* privacy budget delta */
    char noise_seed[80];       /* hex seed: deterministic noise, tests only */
    int insecure_seeded_noise; /* 1: serve may run with noise_seed (no privacy) */
    /* model */
    char model[8];             /* als | ncf */
    int64_t factors;           /* ALS: factors per item row */
    double als_reg;            /* ALS: ridge, a share of the mean Gram's trace / factors */
    double als_step;           /* ALS: how far item rows move to the solved ones, (0, 1] */
    int64_t als_min_items;     /* ALS, trust_policy structure: least items an update covers */
    int64_t num_items;         /* rows of the item embedding */
    char server_optimizer[16]; /* fedavg | fedadam | fedyogi */
    double server_lr;          /* server learning rate */
    double server_tau;         /* FedAdam/FedYogi adaptivity tau */
    int64_t model_seed;        /* seed of the initial model weights */
} fa_config;

/* Fills cfg with the documented defaults. */
void fa_config_defaults(fa_config *cfg);

/*
 * Loads defaults, then the file at path (skipped when path is NULL), then the
 * environment. Fails with FA_EINVAL (message names the key and the allowed
 * values) or FA_ENOTFOUND when path does not exist.
 */
int fa_config_load(fa_config *cfg, const char *path, fa_error *err) FA_MUST_CHECK;

/* Parses config text (the file format) over cfg; source names it in errors. */
int fa_config_parse(fa_config *cfg, const char *text, const char *source,
                    fa_error *err) FA_MUST_CHECK;

/* Sets one key from its text form, checking type and range. */
int fa_config_set(fa_config *cfg, const char *key, const char *value, fa_error *err) FA_MUST_CHECK;

/* Applies DATABASE_URL and FEDAGG_<KEY> variables from the environment. */
int fa_config_apply_env(fa_config *cfg, fa_error *err) FA_MUST_CHECK;

/* Checks relations between keys (e.g. pool size against threads). */
int fa_config_validate(const fa_config *cfg, fa_error *err) FA_MUST_CHECK;

#endif
