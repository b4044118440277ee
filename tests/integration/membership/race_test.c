/*
 * Exactly-once folding under real concurrency: threads post updates through
 * two server processes (aggregators with their worker threads, one
 * database) while rounds open and close every fraction of a second, so
 * accepts race the workers' rebuilds, drains and closes. Afterwards every
 * release is recomputed from the updates its round really included (those
 * answered 202 for it) with the same seeded noise: an update folded twice
 * or left out moves the release by S/m, far beyond rounding.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aggregator/round_math.h"
#include "core/util.h"
#include "harness.h"
#include "privacy/noise.h"
#include "store/store.h"

#define M        2    /* min_cohort */
#define POSTERS  4    /* threads */
#define RUN_S    4.0  /* seconds of posting */
#define DEADLINE 0.7  /* seconds per round */
#define MAXPOSTS 4096 /* accepted updates recorded at most */
#define SIGMA    0.5

static h_world g_w;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned g_next_device;
static struct accepted {
    int64_t round_id;
    unsigned device;
} g_acc[MAXPOSTS];
static size_t g_nacc;
static int g_unexpected; /* a post failed in a way no race explains */

static void *poster(void *arg)
{
    const int p = (int)(size_t)arg % 2;
    const double end = fa_wall_seconds() + RUN_S;

    while (fa_wall_seconds() < end) {
        h_post post;
        fa_update_receipt rec;
        const char *reason = NULL;
        unsigned d;
        int rc;

        (void)pthread_mutex_lock(&g_mu);
        d = g_next_device++;
        (void)pthread_mutex_unlock(&g_mu);
        if (h_try_prepare(&post, &g_w, p, d) < 0)
            continue; /* the round ended between reading and joining it */
        rc = h_send(&g_w, p, &post, &reason, &rec);
        h_post_done(&post);
        (void)pthread_mutex_lock(&g_mu);
        if (rc == FA_OK && !rec.duplicate && g_nacc < MAXPOSTS) {
            g_acc[g_nacc].round_id = rec.round_id;
            g_acc[g_nacc].device = d;
            g_nacc++;
        } else if (rc != FA_OK && rc != FA_EUNAVAIL &&
                   !(rc == FA_ECONFLICT && reason != NULL && strcmp(reason, "round_closed") == 0)) {
            g_unexpected = 1; /* only "being closed, retry" and "round over" are expected */
        }
        (void)pthread_mutex_unlock(&g_mu);
    }
    return NULL;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* The release of round r recomputed from the devices it included. */
static float *expected_release(const fa_config *cfg, int64_t r, const float *base,
                               size_t *cohort_out)
{
    const size_t dim = h_dim();
    fa_round_sum *sum = NULL;
    fa_noise *nz = NULL;
    fa_error err = FA_ERROR_INIT;
    float *delta = malloc(dim * sizeof(float)), *out = malloc(dim * sizeof(float));
    size_t n = 0;

    cr_assert(delta != NULL && out != NULL);
    cr_assert_eq(fa_round_sum_new(&sum, dim, &err), FA_OK);
    for (size_t i = 0; i < g_nacc; i++) {
        if (g_acc[i].round_id != r)
            continue;
        h_delta(delta, dim, g_acc[i].device);
        cr_assert_eq(fa_round_sum_fold(sum, delta, 10, cfg, NULL, &err), FA_OK, "%s", err.msg);
        n++;
    }
    cr_assert_eq(fa_round_noise(&nz, cfg->noise_seed, r, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(fa_round_sum_release(sum, nz, cfg->noise_multiplier * cfg->clip_norm,
                                      (double)cfg->min_cohort, &err),
                 FA_OK, "%s", err.msg);
    /* FedAvg at server learning rate 1: next = base + mean. */
    for (size_t i = 0; i < dim; i++)
        out[i] = base[i] + fa_round_sum_data(sum)[i];
    *cohort_out = n;
    fa_noise_free(nz);
    fa_round_sum_free(sum);
    free(delta);
    return out;
}

Test(race, every_release_holds_each_accepted_update_exactly_once, .timeout = 300)
{
    fa_config cfg;
    pthread_t th[POSTERS];
    char q[256];
    long releases = 0, rounds;

    h_config(&cfg, M, 1000000, DEADLINE, SIGMA);
    h_world_start(&g_w, &cfg, 2, 1);
    for (size_t i = 0; i < POSTERS; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, poster, (void *)i), 0);
    for (size_t i = 0; i < POSTERS; i++)
        pthread_join(th[i], NULL);
    sleep_s(2.5 * DEADLINE + 0.5); /* the last round passes its deadline and closes */
    h_world_stop(&g_w);
    cr_assert(!g_unexpected, "a post failed for a reason no race explains");
    cr_assert(g_nacc > 20, "only %zu updates were accepted", g_nacc);

    rounds = h_sql_long(&g_w, "SELECT count(*) FROM rounds WHERE state <> 'open'");
    cr_assert(rounds >= 3, "only %ld rounds ended", rounds);
    for (size_t i = 0; i < g_nacc; i++) {
        (void)snprintf(q, sizeof(q),
                       "SELECT count(*) FROM rounds WHERE id = %lld AND state <> 'open'",
                       (long long)g_acc[i].round_id);
        cr_assert_eq(h_sql_long(&g_w, q), 1, "an accepted update's round %lld never ended",
                     (long long)g_acc[i].round_id);
    }
    for (int64_t r = 1; r <= rounds; r++) {
        size_t n = 0;
        long version, cohort;
        (void)snprintf(q, sizeof(q),
                       "SELECT (entry::jsonb->'mechanism'->>'cohort_size')::bigint"
                       " FROM privacy_ledger WHERE round_id = %lld",
                       (long long)r);
        cohort = h_sql_long(&g_w, q);
        (void)snprintf(q, sizeof(q),
                       "SELECT coalesce(max(model_version), 0) FROM privacy_ledger"
                       " WHERE round_id = %lld AND kind = 'release'",
                       (long long)r);
        version = h_sql_long(&g_w, q);
        for (size_t i = 0; i < g_nacc; i++)
            n += g_acc[i].round_id == r;
        cr_assert_eq((size_t)cohort, n, "round %lld: the ledger counts %ld updates, %zu got 202",
                     (long long)r, cohort, n);
        if (version == 0)
            continue;
        /* Reopen the store for reading the models (the world is stopped). */
        fa_error err = FA_ERROR_INIT;
        cr_assert_eq(fa_store_open(&g_w.st[0], g_w.db, 2, &err), FA_OK, "%s", err.msg);
        float *base = h_model(NULL, &g_w, version - 1);
        float *got = h_model(NULL, &g_w, version);
        float *want = expected_release(&cfg, r, base, &n);
        double d = h_dist(got, want, h_dim());
        cr_assert(d < 1e-4 / M, "round %lld: the release is %.6g S/m from its members' (%zu)",
                  (long long)r, d * M, n);
        free(base);
        free(got);
        free(want);
        fa_store_free(g_w.st[0]);
        g_w.st[0] = NULL;
        releases++;
    }
    cr_assert(releases >= 2, "only %ld releases", releases);
    h_verify_ledger(&g_w);
}
