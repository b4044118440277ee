#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"

static void clear_env(void)
{
    unsetenv("DATABASE_URL");
    unsetenv("FEDAGG_PORT");
    unsetenv("FEDAGG_CLIP_NORM");
    unsetenv("FEDAGG_TRUST_POLICY");
}

TestSuite(config, .init = clear_env);

Test(config, defaults_are_valid)
{
    fa_config cfg;
    fa_error err = FA_ERROR_INIT;

    fa_config_defaults(&cfg);
    cr_assert_eq(fa_config_validate(&cfg, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(cfg.port, 8080);
    cr_assert_float_eq(cfg.clip_norm, 0.25, 0);
    cr_assert_str_eq(cfg.trust_policy, "none");
    cr_assert_str_eq(cfg.database_url, "");
    /* the recipe of docs/results.md */
    cr_assert_eq(cfg.min_cohort, 100);
    cr_assert_str_eq(cfg.server_optimizer, "fedadam");
    cr_assert_float_eq(cfg.server_lr, 0.003, 0);
    cr_assert_float_eq(cfg.server_tau, 1e-6, 0);
}

Test(config, file_values_override_defaults)
{
    fa_config cfg;
    fa_error err = FA_ERROR_INIT;
    const char *text = "# comment\n"
                       "port = 9090   # trailing comment\n"
                       "\n"
                       "  clip_norm=0.5\n"
                       "trust_policy = cosine\n"
                       "key_dir = \"/var/lib/fedagg keys\"\n";

    fa_config_defaults(&cfg);
    cr_assert_eq(fa_config_parse(&cfg, text, "test.conf", &err), FA_OK, "%s", err.msg);
    cr_assert_eq(cfg.port, 9090);
    cr_assert_float_eq(cfg.clip_norm, 0.5, 0);
    cr_assert_str_eq(cfg.trust_policy, "cosine");
    cr_assert_str_eq(cfg.key_dir, "/var/lib/fedagg keys");
}

static void expect_error(const char *text, const char *needle1, const char *needle2)
{
    fa_config cfg;
    fa_error err = FA_ERROR_INIT;

    fa_config_defaults(&cfg);
    cr_assert_eq(fa_config_parse(&cfg, text, "f.conf", &err), FA_EINVAL, "accepted: %s", text);
    cr_assert(strstr(err.msg, needle1) != NULL, "message '%s' lacks '%s'", err.msg, needle1);
    cr_assert(strstr(err.msg, needle2) != NULL, "message '%s' lacks '%s'", err.msg, needle2);
    cr_assert(strchr(err.msg, '\n') == NULL, "message must be one line: %s", err.msg);
}

Test(config, missing_value_names_key_and_range)
{
    expect_error("port =\n", "port", "missing");
    expect_error("trust_policy =\n", "trust_policy", "none|cosine");
}

Test(config, wrong_type_names_key_and_range)
{
    expect_error("port = eighty\n", "port", "0..65535");
    expect_error("clip_norm = 1.0x\n", "clip_norm", "number");
    expect_error("http_threads = 4.5\n", "http_threads", "integer");
}

Test(config, out_of_range_names_key_and_range)
{
    expect_error("port = 70000\n", "port", "0..65535");
    expect_error("noise_multiplier = 0.01\n", "noise_multiplier", "0.3..100");
    expect_error("delta = 0.5\n", "delta", "out of range");
    expect_error("trust_policy = median\n", "trust_policy", "none|cosine");
    expect_error("clip_norm = nan\n", "clip_norm", "number");
}

Test(config, unknown_key_is_rejected)
{
    expect_error("prot = 80\n", "unknown config key", "prot");
}

Test(config, line_without_equals_names_line)
{
    expect_error("port 80\n", "f.conf:1", "key = value");
}

Test(config, error_names_file_and_line)
{
    expect_error("port = 80\n\nport = x\n", "f.conf:3", "port");
}

Test(config, environment_overrides_file)
{
    char path[] = "/tmp/fa-config-XXXXXX";
    int fd = mkstemp(path);
    fa_config cfg;
    fa_error err = FA_ERROR_INIT;

    cr_assert(fd >= 0);
    cr_assert(write(fd, "port = 9090\nclip_norm = 2\n", 26) == 26);
    close(fd);
    setenv("FEDAGG_PORT", "7070", 1);
    setenv("DATABASE_URL", "postgresql://db/fedagg", 1);
    cr_assert_eq(fa_config_load(&cfg, path, &err), FA_OK, "%s", err.msg);
    unlink(path);
    cr_assert_eq(cfg.port, 7070);
    cr_assert_float_eq(cfg.clip_norm, 2.0, 0);
    cr_assert_str_eq(cfg.database_url, "postgresql://db/fedagg");
}

Test(config, bad_environment_value_names_variable)
{
    fa_config cfg;
    fa_error err = FA_ERROR_INIT;

    setenv("FEDAGG_CLIP_NORM", "-1", 1);
    cr_assert_eq(fa_config_load(&cfg, NULL, &err), FA_EINVAL);
    cr_assert(strstr(err.msg, "FEDAGG_CLIP_NORM") != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, "clip_norm") != NULL, "%s", err.msg);
}

Test(config, missing_file_is_not_found)
{
    fa_config cfg;
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_config_load(&cfg, "/nonexistent/fedagg.conf", &err), FA_ENOTFOUND);
    cr_assert(strstr(err.msg, "/nonexistent/fedagg.conf") != NULL, "%s", err.msg);
}

Test(config, cross_key_rules)
{
    fa_config cfg;
    fa_error err = FA_ERROR_INIT;

    fa_config_defaults(&cfg);
    cr_assert_eq(fa_config_set(&cfg, "http_threads", "16", &err), FA_OK);
    cr_assert_eq(fa_config_validate(&cfg, &err), FA_EINVAL);
    cr_assert(strstr(err.msg, "db_pool_size") != NULL, "%s", err.msg);
    fa_config_defaults(&cfg);
    cr_assert_eq(fa_config_set(&cfg, "max_cohort", "100", &err), FA_OK); /* = min_cohort */
    cr_assert_eq(fa_config_validate(&cfg, &err), FA_EINVAL);
    cr_assert(strstr(err.msg, "max_cohort") != NULL, "%s", err.msg);
    fa_config_defaults(&cfg);
    cr_assert_eq(fa_config_set(&cfg, "expected_cohort", "50", &err), FA_OK); /* < min_cohort */
    cr_assert_eq(fa_config_validate(&cfg, &err), FA_EINVAL);
    cr_assert(strstr(err.msg, "expected_cohort") != NULL, "%s", err.msg);
    cr_assert_eq(fa_config_set(&cfg, "expected_cohort", "1000", &err), FA_OK);
    cr_assert_eq(fa_config_validate(&cfg, &err), FA_OK, "%s", err.msg);
    fa_config_defaults(&cfg);
    cr_assert_eq(fa_config_set(&cfg, "noise_seed", "abc", &err), FA_OK);
    cr_assert_eq(fa_config_validate(&cfg, &err), FA_EINVAL);
    cr_assert(strstr(err.msg, "noise_seed") != NULL, "%s", err.msg);
}

Test(config, example_file_parses_and_documents_every_key)
{
    const char *src = getenv("FA_SOURCE_ROOT");
    char path[4096];
    fa_config cfg;
    fa_error err = FA_ERROR_INIT;
    const char *keys[] = {"listen_address",
                          "port",
                          "http_threads",
                          "max_body_bytes",
                          "request_timeout_s",
                          "request_max_s",
                          "max_connections",
                          "max_connections_per_ip",
                          "max_header_bytes",
                          "rate_limit_per_s",
                          "rate_limit_burst",
                          "device_rate_per_s",
                          "device_rate_burst",
                          "metrics_listen_address",
                          "metrics_port",
                          "metrics_token",
                          "auth",
                          "auth_issuer",
                          "auth_audience",
                          "auth_jwks_file",
                          "auth_leeway_s",
                          "tls_cert_file",
                          "tls_key_file",
                          "allow_plain_http",
                          "log_level",
                          "key_dir",
                          "database_url",
                          "db_pool_size",
                          "min_cohort",
                          "max_cohort",
                          "expected_cohort",
                          "round_deadline_s",
                          "trust_policy",
                          "weight_cap_samples",
                          "clip_norm",
                          "noise_multiplier",
                          "planned_releases",
                          "accountant",
                          "sampling_rate",
                          "epsilon_max",
                          "delta",
                          "noise_seed",
                          "insecure_seeded_noise",
                          "num_items",
                          "server_optimizer",
                          "server_lr",
                          "server_tau",
                          "model_seed"};

    cr_assert_not_null(src, "FA_SOURCE_ROOT is not set");
    (void)snprintf(path, sizeof(path), "%s/config/fedagg.conf.example", src);
    cr_assert_eq(fa_config_load(&cfg, path, &err), FA_OK, "%s", err.msg);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    char text[65536];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    text[n] = '\0';
    fclose(f);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char probe[80];
        (void)snprintf(probe, sizeof(probe), "\n# %s ", keys[i]);
        cr_assert(strstr(text, probe) != NULL, "example does not document %s", keys[i]);
        cr_assert_eq(
            fa_config_set(&cfg, keys[i], "", &err) == FA_OK || strstr(err.msg, keys[i]) != NULL, 1);
    }
}

Test(config, insecure_seeded_noise_is_a_strict_boolean)
{
    fa_config cfg;
    fa_error err = FA_ERROR_INIT;

    fa_config_defaults(&cfg);
    cr_assert_eq(cfg.insecure_seeded_noise, 0);
    cr_assert_eq(fa_config_set(&cfg, "insecure_seeded_noise", "true", &err), FA_OK, "%s", err.msg);
    cr_assert_eq(cfg.insecure_seeded_noise, 1);
    cr_assert_eq(fa_config_set(&cfg, "insecure_seeded_noise", "0", &err), FA_OK, "%s", err.msg);
    cr_assert_eq(cfg.insecure_seeded_noise, 0);
    cr_assert_eq(fa_config_set(&cfg, "insecure_seeded_noise", "1", &err), FA_OK, "%s", err.msg);
    cr_assert_eq(cfg.insecure_seeded_noise, 1);
    cr_assert_eq(fa_config_set(&cfg, "insecure_seeded_noise", "false", &err), FA_OK, "%s", err.msg);
    cr_assert_eq(cfg.insecure_seeded_noise, 0);
    cr_assert_eq(fa_config_set(&cfg, "insecure_seeded_noise", "ture", &err), FA_EINVAL);
    cr_assert(strstr(err.msg, "insecure_seeded_noise must be true or false") != NULL, "%s",
              err.msg);
    cr_assert_eq(fa_config_set(&cfg, "insecure_seeded_noise", "yes", &err), FA_EINVAL);
    cr_assert_eq(cfg.insecure_seeded_noise, 0, "a bad value changes nothing");
    setenv("FEDAGG_INSECURE_SEEDED_NOISE", "1", 1);
    cr_assert_eq(fa_config_apply_env(&cfg, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(cfg.insecure_seeded_noise, 1);
    unsetenv("FEDAGG_INSECURE_SEEDED_NOISE");
}

Test(config, noise_multiplier_auto_needs_planned_releases)
{
    fa_config cfg;
    fa_error err = FA_ERROR_INIT;

    fa_config_defaults(&cfg);
    cr_assert_str_eq(cfg.accountant, "pld");
    cr_assert_eq(cfg.planned_releases, 0);
    cr_assert_eq(fa_config_set(&cfg, "noise_multiplier", "auto", &err), FA_OK, "%s", err.msg);
    cr_assert_eq(cfg.noise_multiplier, FA_CONFIG_AUTO);
    cr_assert_eq(fa_config_validate(&cfg, &err), FA_EINVAL);
    cr_assert(strstr(err.msg, "planned_releases") != NULL, "%s", err.msg);
    cr_assert_eq(fa_config_set(&cfg, "planned_releases", "200", &err), FA_OK, "%s", err.msg);
    cr_assert_eq(fa_config_validate(&cfg, &err), FA_OK, "%s", err.msg);
    /* Only noise_multiplier takes "auto"; a number there is range-checked as before. */
    cr_assert_eq(fa_config_set(&cfg, "clip_norm", "auto", &err), FA_EINVAL);
    cr_assert_eq(fa_config_set(&cfg, "noise_multiplier", "0", &err), FA_EINVAL);
    cr_assert_eq(fa_config_set(&cfg, "noise_multiplier", "Auto", &err), FA_EINVAL);
    cr_assert_eq(fa_config_set(&cfg, "accountant", "rdp", &err), FA_OK, "%s", err.msg);
    cr_assert_eq(fa_config_set(&cfg, "accountant", "moments", &err), FA_EINVAL);
    cr_assert(strstr(err.msg, "pld|rdp") != NULL, "%s", err.msg);
}
