#include "harness.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregator/audit.h"
#include "aggregator/update.h"
#include "core/util.h"
#include "model/params.h"
#include "model/snapshot.h"
#include "pgtest.h"
#include "privacy/crypto.h"
#include "privacy/keys.h"
#include "privacy/ledger.h"
#include "store/store.h"

static fa_keys *g_keys;

const fa_keys *h_keys(void)
{
    fa_error err = FA_ERROR_INIT;

    if (g_keys == NULL) {
        cr_assert_eq(fa_crypto_init(&err), FA_OK, "%s", err.msg);
        cr_assert_eq(fa_keys_generate(&g_keys, &err), FA_OK, "%s", err.msg);
    }
    return g_keys;
}

/* 1 after h_config_als: updates are ALS-shaped and the model is ALS. */
static int g_als;

size_t h_dim(void)
{
    if (g_als)
        return fa_params_layout_of(NULL, NULL, FA_MODEL_ALS, H_ITEMS, H_FACTORS);
    return fa_params_count(H_ITEMS);
}

int h_is_als(void)
{
    return g_als;
}

void h_config(fa_config *cfg, int64_t min_cohort, int64_t max_cohort, double deadline_s,
              double sigma)
{
    fa_config_defaults(cfg);
    g_als = 0;
    (void)snprintf(cfg->model, sizeof(cfg->model), "ncf");
    cfg->num_items = H_ITEMS;
    cfg->min_cohort = min_cohort;
    cfg->max_cohort = max_cohort;
    cfg->round_deadline_s = deadline_s;
    cfg->clip_norm = 1.0;
    cfg->noise_multiplier = sigma;
    cfg->epsilon_max = 1000.0;
    cfg->weight_cap_samples = 1; /* every device posts 10 samples: weight 1 */
    (void)snprintf(cfg->server_optimizer, sizeof(cfg->server_optimizer), "fedavg");
    cfg->server_lr = 1.0;
    (void)snprintf(cfg->noise_seed, sizeof(cfg->noise_seed), "%s",
                   "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed");
}

void h_config_als(fa_config *cfg, int64_t min_cohort, int64_t max_cohort, double deadline_s,
                  double sigma)
{
    h_config(cfg, min_cohort, max_cohort, deadline_s, sigma);
    g_als = 1;
    (void)snprintf(cfg->model, sizeof(cfg->model), "als");
    cfg->factors = H_FACTORS;
    cfg->als_step = 1.0;
    cfg->als_reg = 10.0;
    cfg->als_min_items = 2;
    (void)snprintf(cfg->trust_policy, sizeof(cfg->trust_policy), "structure");
    cfg->weight_cap_samples = 100; /* not used by ALS: a claim of 10 samples still weighs 1 */
}

static double world_clock(void *arg)
{
    const h_world *w = arg;
    return w->workers ? fa_wall_seconds() : atomic_load(&w->now);
}

static void start_proc(h_world *w, int p)
{
    fa_aggregator_opts opts = FA_AGGREGATOR_OPTS_INIT;
    fa_error err = FA_ERROR_INIT;

    if (w->st[p] == NULL)
        cr_assert_eq(fa_store_open(&w->st[p], w->db, 4, &err), FA_OK, "%s", err.msg);
    opts.cfg = &w->cfg;
    opts.store = w->st[p];
    opts.keys = h_keys();
    opts.start_worker = w->workers;
    opts.clock = world_clock;
    opts.clock_arg = w;
    cr_assert_eq(fa_aggregator_start(&w->agg[p], &opts, &err), FA_OK, "%s", err.msg);
}

void h_world_start(h_world *w, const fa_config *cfg, int nprocs, int workers)
{
    memset(w, 0, sizeof(*w));
    w->cfg = *cfg;
    w->workers = workers;
    atomic_init(&w->now, H_T0);
    fa_pgtest_create_db(w->db, sizeof(w->db));
    for (int p = 0; p < nprocs && p < H_PROCS; p++)
        start_proc(w, p);
}

void h_world_restart(h_world *w, int p)
{
    fa_aggregator_stop(w->agg[p]);
    w->agg[p] = NULL;
    start_proc(w, p);
}

void h_world_stop(h_world *w)
{
    for (int p = 0; p < H_PROCS; p++) {
        fa_aggregator_stop(w->agg[p]);
        fa_store_free(w->st[p]);
        w->agg[p] = NULL;
        w->st[p] = NULL;
    }
}

void h_advance(h_world *w, double dt)
{
    atomic_store(&w->now, atomic_load(&w->now) + dt);
}

double h_until_deadline(h_world *w)
{
    fa_round_info r;
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_aggregator_round(&r, w->agg[0], &err), FA_OK, "%s", err.msg);
    return r.deadline - atomic_load(&w->now);
}

/*
 * An honest-looking ALS update of device d (norm target): a unit vector u
 * from d on 2 or 3 of the item rows, each c u, and c u u^T in the Gram slot.
 */
static void als_delta(float *out, size_t dim, unsigned d, double target)
{
    uint64_t x = 0x9E3779B97F4A7C15ull * (d + 1);
    double u[H_FACTORS], n2 = 0.0, c;
    size_t n = 2 + d % 2, gram = H_ITEMS * H_FACTORS;

    memset(out, 0, dim * sizeof(float));
    for (int j = 0; j < H_FACTORS; j++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        u[j] = (double)(x >> 11) / 9007199254740992.0 - 0.5;
        n2 += u[j] * u[j];
    }
    c = target / sqrt(1.0 + (double)n);
    for (size_t k = 0; k < n; k++)
        for (int j = 0; j < H_FACTORS; j++)
            out[((d + k) % H_ITEMS) * H_FACTORS + (size_t)j] = (float)(c * u[j] / sqrt(n2));
    for (int a = 0; a < H_FACTORS; a++)
        for (int b = 0; b < H_FACTORS; b++)
            out[gram + (size_t)(a * H_FACTORS + b)] = (float)(c * u[a] * u[b] / n2);
}

void h_delta(float *out, size_t dim, unsigned d)
{
    uint64_t x = 0x9E3779B97F4A7C15ull * (d + 1);
    double ss = 0.0, target = d < 1000 ? 2.0 : 5.0;

    if (g_als) {
        als_delta(out, dim, d, target);
        return;
    }
    for (size_t i = 0; i < dim; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out[i] = (float)((double)(x >> 11) / 9007199254740992.0 - 0.5);
        ss += (double)out[i] * out[i];
    }
    for (size_t i = 0; i < dim; i++)
        out[i] = (float)(out[i] * (target / sqrt(ss)));
}

int h_try_prepare(h_post *out, h_world *w, int p, unsigned d)
{
    fa_checkin ci;
    fa_error err = FA_ERROR_INIT;
    const size_t dim = h_dim(), plain_len = FA_UPDATE_HEADER_BYTES + 4 * dim;
    unsigned char *plain = NULL;
    float *delta = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = fa_aggregator_checkin(&ci, w->agg[p], NULL, &err)) < 0)
        return rc;
    plain = malloc(plain_len);
    delta = malloc(dim * sizeof(float));
    out->box_len = plain_len + FA_CRYPTO_SEAL_OVERHEAD;
    out->box = malloc(out->box_len);
    if (plain == NULL || delta == NULL || out->box == NULL || !ci.selected) {
        rc = FA_ENOMEM;
        goto cleanup;
    }
    (void)snprintf(out->token, sizeof(out->token), "%s", ci.token);
    out->round_id = ci.round.id;
    out->model_version = ci.round.base_version;
    h_delta(delta, dim, d);
    fa_update_encode(plain, (uint32_t)out->model_version, 10, delta, dim);
    rc = fa_crypto_box_seal(out->box, out->box_len, fa_keys_box_public(h_keys()), plain, plain_len,
                            &err);
cleanup:
    if (rc < 0)
        h_post_done(out);
    free(plain);
    free(delta);
    return rc;
}

void h_prepare(h_post *out, h_world *w, int p, unsigned d)
{
    cr_assert_eq(h_try_prepare(out, w, p, d), FA_OK, "device %u could not check in and seal", d);
}

int h_send(h_world *w, int p, const h_post *post, const char **reason, fa_update_receipt *rc_out)
{
    fa_update_request req;
    fa_update_receipt receipt;
    fa_error err = FA_ERROR_INIT;
    const char *why = NULL;
    int rc;

    req.model_version = post->model_version;
    req.round_token = post->token;
    req.key_id = fa_keys_key_id(h_keys());
    req.num_samples = 10;
    req.box = post->box;
    req.box_len = post->box_len;
    req.subject = NULL;
    rc = fa_aggregator_accept(&receipt, &why, w->agg[p], &req, &err);
    if (reason != NULL)
        *reason = why;
    if (rc_out != NULL)
        *rc_out = receipt;
    return rc;
}

void h_post_done(h_post *post)
{
    free(post->box);
    post->box = NULL;
}

int h_participate(h_world *w, int p, unsigned d, const char **reason)
{
    h_post post;
    int rc;

    h_prepare(&post, w, p, d);
    rc = h_send(w, p, &post, reason, NULL);
    h_post_done(&post);
    return rc;
}

void h_tick(h_world *w, int p)
{
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_aggregator_tick(w->agg[p], &err), FA_OK, "%s", err.msg);
}

float *h_model(int64_t *version_out, h_world *w, int64_t version)
{
    fa_store_model m;
    fa_params *params = NULL;
    fa_snapshot_meta meta = FA_SNAPSHOT_META_INIT;
    fa_error err = FA_ERROR_INIT;
    float *out;

    cr_assert_eq(fa_store_model_get(&m, w->st[0], version, 1, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(
        fa_snapshot_safetensors_parse(&params, &meta, m.snapshot, m.snapshot_len, H_ITEMS, &err),
        FA_OK, "%s", err.msg);
    out = malloc(fa_params_len(params) * sizeof(float));
    cr_assert(out != NULL);
    memcpy(out, fa_params_data(params), fa_params_len(params) * sizeof(float));
    if (version_out != NULL)
        *version_out = m.version;
    fa_params_free(params);
    fa_store_model_done(&m);
    return out;
}

long h_sql_long(h_world *w, const char *sql)
{
    PGconn *pg = fa_pgtest_connect(w->db);
    char *v = fa_pgtest_query(pg, sql);
    long n = strtol(v, NULL, 10);

    free(v);
    PQfinish(pg);
    return n;
}

double h_dist(const float *a, const float *b, size_t n)
{
    double s = 0.0;

    for (size_t i = 0; i < n; i++) {
        const double d = (double)a[i] - (double)b[i];
        s += d * d;
    }
    return sqrt(s);
}

void h_verify_ledger(h_world *w)
{
    fa_ledger_report rep;
    fa_error err = FA_ERROR_INIT;
    fa_store *st = NULL;

    cr_assert_eq(fa_store_open(&st, w->db, 1, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(fa_audit_ledger(&rep, NULL, NULL, st, fa_keys_sign_public(h_keys()), &err), FA_OK,
                 "%s", err.msg);
    fa_store_free(st);
}
