#include "core/config.h"

#include <ctype.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

/* ---------------------------------------------------------------- keys */

/* K_DOUBLE_AUTO: a K_DOUBLE that may also be the word "auto" (stored as FA_CONFIG_AUTO). */
enum kind { K_INT, K_DOUBLE, K_DOUBLE_AUTO, K_STRING, K_ENUM, K_BOOL };

struct key {
    const char *name;
    enum kind kind;
    size_t offset;
    size_t size;         /* strings: buffer size */
    double min, max;     /* numbers: inclusive range */
    const char *def;     /* default, in text form */
    const char *allowed; /* enums: '|'-separated values */
};

#define F(field) offsetof(fa_config, field), sizeof(((fa_config *)0)->field)

static const struct key KEYS[] = {
    {"listen_address", K_STRING, F(listen_address), 0, 0, "127.0.0.1", NULL},
    {"port", K_INT, F(port), 0, 65535, "8080", NULL},
    {"http_threads", K_INT, F(http_threads), 1, 256, "4", NULL},
    {"max_body_bytes", K_INT, F(max_body_bytes), 1024, 1073741824, "16777216", NULL},
    {"request_timeout_s", K_INT, F(request_timeout_s), 1, 3600, "30", NULL},
    {"request_max_s", K_INT, F(request_max_s), 1, 86400, "120", NULL},
    {"max_connections", K_INT, F(max_connections), 1, 1000000, "4096", NULL},
    {"max_connections_per_ip", K_INT, F(max_connections_per_ip), 0, 1000000, "512", NULL},
    {"max_header_bytes", K_INT, F(max_header_bytes), 4096, 1048576, "32768", NULL},
    {"rate_limit_per_s", K_DOUBLE, F(rate_limit_per_s), 0, 1e6, "100", NULL},
    {"rate_limit_burst", K_DOUBLE, F(rate_limit_burst), 1, 1e7, "1000", NULL},
    {"device_rate_per_s", K_DOUBLE, F(device_rate_per_s), 0, 1e6, "1", NULL},
    {"device_rate_burst", K_DOUBLE, F(device_rate_burst), 1, 1e7, "10", NULL},
    {"metrics_listen_address", K_STRING, F(metrics_listen_address), 0, 0, "", NULL},
    {"metrics_port", K_INT, F(metrics_port), 0, 65535, "9090", NULL},
    {"metrics_token", K_STRING, F(metrics_token), 0, 0, "", NULL},
    {"auth", K_ENUM, F(auth), 0, 0, "none", "none|jwt"},
    {"auth_issuer", K_STRING, F(auth_issuer), 0, 0, "", NULL},
    {"auth_audience", K_STRING, F(auth_audience), 0, 0, "fedagg", NULL},
    {"auth_jwks_file", K_STRING, F(auth_jwks_file), 0, 0, "", NULL},
    {"auth_leeway_s", K_DOUBLE, F(auth_leeway_s), 0, 3600, "60", NULL},
    {"tls_cert_file", K_STRING, F(tls_cert_file), 0, 0, "", NULL},
    {"tls_key_file", K_STRING, F(tls_key_file), 0, 0, "", NULL},
    {"allow_plain_http", K_BOOL, F(allow_plain_http), 0, 0, "false", NULL},
    {"log_level", K_ENUM, F(log_level), 0, 0, "info", "debug|info|warn|error"},
    {"key_dir", K_STRING, F(key_dir), 0, 0, "keys", NULL},
    {"database_url", K_STRING, F(database_url), 0, 0, "", NULL},
    {"db_pool_size", K_INT, F(db_pool_size), 1, 512, "8", NULL},
    {"min_cohort", K_INT, F(min_cohort), 1, 10000000, "100", NULL},
    {"max_cohort", K_INT, F(max_cohort), 1, 10000000, "100000", NULL},
    {"expected_cohort", K_INT, F(expected_cohort), 0, 10000000, "0", NULL},
    {"commit_batch_max", K_INT, F(commit_batch_max), 1, 4096, "256", NULL},
    {"commit_wait_ms", K_DOUBLE, F(commit_wait_ms), 0, 1000, "0", NULL},
    {"partial_vacuum_commits", K_INT, F(partial_vacuum_commits), 0, 1000000, "10", NULL},
    {"round_deadline_s", K_DOUBLE, F(round_deadline_s), 0.1, 31536000, "600", NULL},
    {"trust_policy", K_ENUM, F(trust_policy), 0, 0, "none", "none|cosine|structure"},
    {"weight_cap_samples", K_INT, F(weight_cap_samples), 1, 1000000000, "100", NULL},
    {"clip_norm", K_DOUBLE, F(clip_norm), 1e-6, 1e6, "0.25", NULL},
    {"noise_multiplier", K_DOUBLE_AUTO, F(noise_multiplier), 0.3, 100, "1.0", NULL},
    {"planned_releases", K_INT, F(planned_releases), 0, 10000000, "0", NULL},
    {"accountant", K_ENUM, F(accountant), 0, 0, "pld", "pld|rdp"},
    {"sampling_rate", K_DOUBLE, F(sampling_rate), 1e-6, 1, "1.0", NULL},
    {"epsilon_max", K_DOUBLE, F(epsilon_max), 1e-3, 1e4, "8.0", NULL},
    {"delta", K_DOUBLE, F(delta), 1e-12, 0.1, "1e-5", NULL},
    {"noise_seed", K_STRING, F(noise_seed), 0, 0, "", NULL},
    {"insecure_seeded_noise", K_BOOL, F(insecure_seeded_noise), 0, 0, "false", NULL},
    {"model", K_ENUM, F(model), 0, 0, "als", "als|ncf"},
    {"factors", K_INT, F(factors), 1, 64, "16", NULL},
    {"als_reg", K_DOUBLE, F(als_reg), 1e-6, 1e6, "0.16", NULL},
    {"als_min_items", K_INT, F(als_min_items), 1, 1000000, "5", NULL},
    {"als_step", K_DOUBLE, F(als_step), 1e-3, 1, "0.25", NULL},
    {"num_items", K_INT, F(num_items), 1, 10000000, "1682", NULL},
    {"server_optimizer", K_ENUM, F(server_optimizer), 0, 0, "fedadam", "fedavg|fedadam|fedyogi"},
    {"server_lr", K_DOUBLE, F(server_lr), 1e-6, 100, "0.003", NULL},
    {"server_tau", K_DOUBLE, F(server_tau), 1e-9, 1, "1e-6", NULL},
    {"model_seed", K_INT, F(model_seed), 0, 2147483647, "42", NULL},
};

static const struct key *key_find(const char *name)
{
    for (size_t i = 0; i < FA_ARRAY_LEN(KEYS); i++)
        if (strcmp(KEYS[i].name, name) == 0)
            return &KEYS[i];
    return NULL;
}

static int enum_allows(const char *allowed, const char *value)
{
    size_t vlen = strlen(value);
    const char *p = allowed;

    while (*p != '\0') {
        const char *bar = strchr(p, '|');
        size_t len = bar != NULL ? (size_t)(bar - p) : strlen(p);
        if (len == vlen && strncmp(p, value, len) == 0)
            return 1;
        if (bar == NULL)
            break;
        p = bar + 1;
    }
    return 0;
}

static int set_key(fa_config *cfg, const struct key *k, const char *value, fa_error *err)
{
    char *field = (char *)cfg + k->offset;

    if (k->kind == K_DOUBLE_AUTO && strcmp(value, "auto") == 0) {
        const double v = FA_CONFIG_AUTO;
        memcpy(field, &v, sizeof(v));
        return FA_OK;
    }
    switch (k->kind) {
    case K_INT: {
        int64_t v;
        if (*value == '\0')
            return fa_fail(err, FA_EINVAL, "config key %s is missing a value (integer %.0f..%.0f)",
                           k->name, k->min, k->max);
        if (fa_parse_i64(&v, value) < 0)
            return fa_fail(err, FA_EINVAL,
                           "config key %s must be an integer in %.0f..%.0f, got '%.40s'", k->name,
                           k->min, k->max, value);
        if ((double)v < k->min || (double)v > k->max)
            return fa_fail(err, FA_EINVAL, "config key %s is %lld, out of range %.0f..%.0f",
                           k->name, (long long)v, k->min, k->max);
        memcpy(field, &v, sizeof(v));
        return FA_OK;
    }
    case K_DOUBLE_AUTO:
    case K_DOUBLE: {
        double v;
        if (*value == '\0')
            return fa_fail(err, FA_EINVAL, "config key %s is missing a value (number %g..%g)",
                           k->name, k->min, k->max);
        if (fa_parse_double(&v, value) < 0)
            return fa_fail(err, FA_EINVAL, "config key %s must be a number in %g..%g, got '%.40s'",
                           k->name, k->min, k->max, value);
        if (v < k->min || v > k->max)
            return fa_fail(err, FA_EINVAL, "config key %s is %g, out of range %g..%g", k->name, v,
                           k->min, k->max);
        memcpy(field, &v, sizeof(v));
        return FA_OK;
    }
    case K_ENUM:
        if (*value == '\0')
            return fa_fail(err, FA_EINVAL, "config key %s is missing a value (one of %s)", k->name,
                           k->allowed);
        if (!enum_allows(k->allowed, value))
            return fa_fail(err, FA_EINVAL, "config key %s must be one of %s, got '%.40s'", k->name,
                           k->allowed, value);
        break;
    case K_BOOL: {
        /* Only the two words and the two digits: a typo such as "ture" must
         * not quietly mean either. */
        int v;
        if (strcmp(value, "true") == 0 || strcmp(value, "1") == 0)
            v = 1;
        else if (strcmp(value, "false") == 0 || strcmp(value, "0") == 0)
            v = 0;
        else
            return fa_fail(err, FA_EINVAL, "config key %s must be true or false, got '%.40s'",
                           k->name, value);
        memcpy(field, &v, sizeof(v));
        return FA_OK;
    }
    case K_STRING:
        break;
    }
    if (strlen(value) >= k->size)
        return fa_fail(err, FA_EINVAL, "config key %s is longer than %zu characters", k->name,
                       k->size - 1);
    memcpy(field, value, strlen(value) + 1);
    return FA_OK;
}

void fa_config_defaults(fa_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < FA_ARRAY_LEN(KEYS); i++) {
        int rc = set_key(cfg, &KEYS[i], KEYS[i].def, NULL);
        (void)rc; /* defaults are in range by construction (a unit test checks) */
    }
}

int fa_config_set(fa_config *cfg, const char *key, const char *value, fa_error *err)
{
    const struct key *k = key_find(key);

    if (k == NULL)
        return fa_fail(err, FA_EINVAL, "unknown config key '%.64s'", key);
    return set_key(cfg, k, value, err);
}

/* ------------------------------------------------------------- parsing */

static char *trim(char *s)
{
    char *end;

    while (isspace((unsigned char)*s))
        s++;
    end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

int fa_config_parse(fa_config *cfg, const char *text, const char *source, fa_error *err)
{
    char *copy = strdup(text);
    char *line, *save = NULL;
    int lineno = 0;
    int rc = FA_OK;

    if (copy == NULL)
        return fa_fail(err, FA_ENOMEM, "out of memory parsing %s", source);
    for (char *p = copy; p != NULL; p = save) {
        char *eq, *key, *value;
        fa_error inner = FA_ERROR_INIT;

        line = p;
        save = strchr(p, '\n');
        if (save != NULL)
            *save++ = '\0';
        lineno++;
        char *hash = strchr(line, '#');
        if (hash != NULL)
            *hash = '\0';
        line = trim(line);
        if (*line == '\0')
            continue;
        eq = strchr(line, '=');
        if (eq == NULL) {
            rc = fa_fail(err, FA_EINVAL, "%s:%d: expected 'key = value'", source, lineno);
            goto cleanup;
        }
        *eq = '\0';
        key = trim(line);
        value = trim(eq + 1);
        /* Values may be quoted to keep spaces or '#'-free strings explicit. */
        size_t vlen = strlen(value);
        if (vlen >= 2 && value[0] == '"' && value[vlen - 1] == '"') {
            value[vlen - 1] = '\0';
            value++;
        }
        if ((rc = fa_config_set(cfg, key, value, &inner)) < 0) {
            rc = fa_fail(err, inner.code, "%s:%d: %s", source, lineno, inner.msg);
            goto cleanup;
        }
    }
cleanup:
    free(copy);
    return rc;
}

int fa_config_apply_env(fa_config *cfg, fa_error *err)
{
    char name[96];
    const char *v;
    int rc;

    v = getenv("DATABASE_URL");
    if (v != NULL && *v != '\0' && (rc = fa_config_set(cfg, "database_url", v, err)) < 0)
        return rc;
    for (size_t i = 0; i < FA_ARRAY_LEN(KEYS); i++) {
        size_t j = 0;
        (void)snprintf(name, sizeof(name), "FEDAGG_%s", KEYS[i].name);
        for (j = 7; name[j] != '\0'; j++)
            name[j] = (char)toupper((unsigned char)name[j]);
        v = getenv(name);
        if (v == NULL)
            continue;
        fa_error inner = FA_ERROR_INIT;
        if ((rc = set_key(cfg, &KEYS[i], v, &inner)) < 0)
            return fa_fail(err, inner.code, "environment %s: %s", name, inner.msg);
    }
    return FA_OK;
}

int fa_config_validate(const fa_config *cfg, fa_error *err)
{
    /* One connection per HTTP thread, the worker's and the commit thread's. */
    if (cfg->db_pool_size < cfg->http_threads + 2)
        return fa_fail(err, FA_EINVAL,
                       "config key db_pool_size must be at least http_threads + 2 (%lld), got %lld",
                       (long long)cfg->http_threads + 2, (long long)cfg->db_pool_size);
    if (cfg->expected_cohort != 0 &&
        (cfg->expected_cohort < cfg->min_cohort || cfg->expected_cohort >= cfg->max_cohort))
        return fa_fail(err, FA_EINVAL,
                       "config key expected_cohort must be 0 or in min_cohort..max_cohort-1"
                       " (%lld..%lld), got %lld",
                       (long long)cfg->min_cohort, (long long)cfg->max_cohort - 1,
                       (long long)cfg->expected_cohort);
    /* A round that reaches max_cohort is abandoned, so it must lie above
     * the smallest cohort that releases. */
    if (cfg->max_cohort <= cfg->min_cohort)
        return fa_fail(err, FA_EINVAL,
                       "config key max_cohort must be above min_cohort (%lld), got %lld",
                       (long long)cfg->min_cohort, (long long)cfg->max_cohort);
    if (cfg->noise_multiplier == FA_CONFIG_AUTO && cfg->planned_releases < 1)
        return fa_fail(err, FA_EINVAL,
                       "config key noise_multiplier = auto needs planned_releases (the number of "
                       "releases the budget epsilon_max must last)");
    if (cfg->noise_seed[0] != '\0') {
        size_t n = strlen(cfg->noise_seed);
        for (size_t i = 0; i < n; i++)
            if (!isxdigit((unsigned char)cfg->noise_seed[i]))
                return fa_fail(err, FA_EINVAL,
                               "config key noise_seed must be 64 hex characters or empty");
        if (n != 64)
            return fa_fail(err, FA_EINVAL,
                           "config key noise_seed must be 64 hex characters or empty");
    }
    return FA_OK;
}

int fa_config_load(fa_config *cfg, const char *path, fa_error *err)
{
    char *text = NULL;
    int rc;

    fa_config_defaults(cfg);
    if (path != NULL) {
        if ((rc = fa_file_read(&text, NULL, path, FA_CONFIG_MAX_BYTES, err)) < 0)
            goto cleanup;
        if ((rc = fa_config_parse(cfg, text, path, err)) < 0)
            goto cleanup;
    }
    if ((rc = fa_config_apply_env(cfg, err)) < 0)
        goto cleanup;
    rc = fa_config_validate(cfg, err);
cleanup:
    free(text);
    return rc;
}
