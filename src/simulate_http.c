/*
 * The HTTP driver of fedagg simulate: the real device flow against a
 * running server. Each round: read the open round, download model v, and
 * let s->parallel threads take the chosen devices in increasing id order
 * (check in, train locally, seal, post); then wait for the server to
 * publish v+1, download it and evaluate it with every device's own vector.
 */
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/util.h"
#include "device.h"
#include "model/data.h"
#include "model/local.h"
#include "model/params.h"
#include "simulate.h"

#define WAIT_POLL_MS 100  /* between polls for the next version */
#define WAIT_MAX_S   1200 /* longest wait for a round to publish */

struct round_run {
    fa_sim *s;
    const char *url;
    const fa_params *global;
    int64_t version;
    const int32_t *chosen;
    int32_t nchosen;
    atomic_int next;
    atomic_int accepted, rejected;
    const fa_device_key *key;
    char last_error[256];
    pthread_mutex_t mu; /* guards last_error */
};

static void note_error(struct round_run *rr, const char *msg)
{
    atomic_fetch_add(&rr->rejected, 1);
    (void)pthread_mutex_lock(&rr->mu);
    (void)snprintf(rr->last_error, sizeof(rr->last_error), "%s", msg);
    (void)pthread_mutex_unlock(&rr->mu);
}

static void *device_worker(void *arg)
{
    struct round_run *rr = arg;
    fa_sim *s = rr->s;
    fa_device_client *c = NULL;
    fa_local *lt = NULL;
    float *delta = NULL;
    fa_error err = FA_ERROR_INIT;
    size_t dim = fa_params_len(rr->global);

    if (fa_device_client_new(&c, rr->url, &err) < 0 ||
        fa_local_new(&lt, fa_params_num_items(rr->global), s->opts.batch, &err) < 0 ||
        (delta = malloc(dim * sizeof(float))) == NULL) {
        note_error(rr, err.msg[0] != '\0' ? err.msg : "out of memory");
        goto cleanup;
    }
    for (;;) {
        int k = atomic_fetch_add(&rr->next, 1);
        if (k >= rr->nchosen)
            break;
        int32_t u = rr->chosen[k];
        fa_device_data dev = fa_dataset_user(s->ds, u);
        fa_device_round r;
        char device_id[32], receipt[64], code[64], msg[256];
        long status = 0;
        fa_train_opts o = s->opts;

        if (dev.count == 0)
            continue;
        (void)snprintf(device_id, sizeof(device_id), "sim-%d", (int)u);
        o.seed = fa_sim_device_seed(s, u, rr->version);
        if (fa_device_checkin(&r, c, device_id, &err) < 0) {
            note_error(rr, err.msg);
            break;
        }
        if (!r.selected)
            continue;
        if (r.model_version != rr->version) {
            (void)snprintf(msg, sizeof(msg), "round moved on to model version %lld",
                           (long long)r.model_version);
            note_error(rr, msg);
            break;
        }
        if (fa_local_train(NULL, delta, lt, s->user_table + (size_t)u * FA_NCF_EMBED_DIM,
                           rr->global, &dev, &o, &err) < 0 ||
            fa_device_post_update(&status, receipt, code, sizeof(code), c, rr->key, r.token,
                                  r.model_version, (int64_t)dev.count, delta, dim, &err) < 0) {
            note_error(rr, err.msg);
            break;
        }
        if (status == 202) {
            atomic_fetch_add(&rr->accepted, 1);
        } else {
            (void)snprintf(msg, sizeof(msg), "update rejected: HTTP %ld %s", status, code);
            note_error(rr, msg);
        }
    }
cleanup:
    free(delta);
    fa_local_free(lt);
    fa_device_client_free(c);
    return NULL;
}

static int get_json(json_t **out, fa_device_client *c, const char *path, fa_error *err)
{
    char *body = NULL;
    long status = 0;
    int rc;

    *out = NULL;
    if ((rc = fa_device_http(&status, &body, NULL, c, "GET", path, NULL, NULL, 0, NULL, err)) < 0)
        return rc;
    if (status != 200)
        rc = fa_fail(err, FA_EUNAVAIL, "GET %s: HTTP %ld", path, status);
    else if ((*out = json_loads(body, 0, NULL)) == NULL)
        rc = fa_fail(err, FA_EINVAL, "GET %s: malformed JSON", path);
    free(body);
    return rc;
}

static void sleep_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* The newest published version, or -1 when it cannot be read. */
static int64_t latest_version(fa_device_client *c)
{
    fa_error err = FA_ERROR_INIT;
    json_t *j = NULL;
    int64_t v = -1;

    if (get_json(&j, c, "/api/federated/model/latest", &err) == FA_OK)
        v = json_integer_value(json_object_get(j, "version"));
    json_decref(j);
    return v;
}

/*
 * Waits until the server publishes a version after `version`. A round that
 * ends without one (refused by the budget, or abandoned below its minimum
 * cohort) shows as a newer open round while the latest version stays put:
 * the close commits the version and opens the next round in one
 * transaction, so reading the round first and the version second is exact.
 */
static int wait_published(int64_t *seen_out, fa_device_client *c, int64_t round_id, int64_t version,
                          fa_error *err)
{
    for (int i = 0; i < WAIT_MAX_S * 1000 / WAIT_POLL_MS; i++) {
        json_t *rj = NULL;
        fa_error e2 = FA_ERROR_INIT;
        int64_t open_id = 0, seen;

        if (get_json(&rj, c, "/api/federated/round", &e2) == FA_OK)
            open_id = json_integer_value(json_object_get(rj, "roundId"));
        json_decref(rj);
        seen = latest_version(c);
        if (seen > version) {
            *seen_out = seen;
            return FA_OK;
        }
        if (open_id > round_id)
            return fa_fail(err, FA_EREFUSED,
                           "round %lld ended without a new model (refused by the privacy budget "
                           "or abandoned: see fedagg ledger show)",
                           (long long)round_id);
        sleep_ms(WAIT_POLL_MS);
    }
    return fa_fail(err, FA_EUNAVAIL, "round %lld: no new model version within %d s",
                   (long long)round_id, WAIT_MAX_S);
}

/* The ledger's cumulative spend, as the budget endpoint reports it, into line. */
static int read_budget(fa_sim_line *line, fa_device_client *client, fa_error *err)
{
    json_t *j = NULL;
    int rc;

    if ((rc = get_json(&j, client, "/api/privacy/budget", err)) < 0)
        return rc;
    line->epsilon = json_real_value(json_object_get(j, "epsilonSpent"));
    line->delta = json_real_value(json_object_get(j, "delta"));
    json_decref(j);
    return FA_OK;
}

int fa_sim_run_http(fa_sim *s, const char *url, fa_error *err)
{
    fa_device_client *client = NULL;
    fa_device_key key;
    fa_params *global = NULL;
    pthread_t *threads = NULL;
    int32_t *chosen = NULL;
    json_t *j = NULL;
    int rc = FA_OK;

    threads = calloc((size_t)s->parallel, sizeof(pthread_t));
    chosen = malloc((size_t)s->users * sizeof(int32_t));
    if (threads == NULL || chosen == NULL) {
        rc = fa_fail(err, FA_ENOMEM, "out of memory");
        goto cleanup;
    }
    if ((rc = fa_device_client_new(&client, url, err)) < 0 ||
        (rc = fa_device_fetch_key(&key, client, err)) < 0)
        goto cleanup;

    if (s->eval_initial) {
        fa_sim_line line;
        uint64_t t0 = fa_now_ns();
        memset(&line, 0, sizeof(line));
        if ((rc = get_json(&j, client, "/api/federated/round", err)) < 0)
            goto cleanup;
        line.version = json_integer_value(json_object_get(j, "modelVersion"));
        json_decref(j);
        j = NULL;
        if ((rc = fa_device_fetch_model(&global, client, line.version, err)) < 0 ||
            (rc = fa_sim_eval(&line.hr10, &line.ndcg10, s, global, err)) < 0 ||
            (rc = read_budget(&line, client, err)) < 0)
            goto cleanup;
        line.evaluated = 1;
        line.seconds = (double)(fa_now_ns() - t0) * 1e-9;
        fa_sim_print(s, &line);
    }
    for (int64_t round = 1; round <= s->rounds; round++) {
        uint64_t t0 = fa_now_ns();
        struct round_run rr;
        fa_sim_line line;
        int64_t seen = 0;
        int started = 0;

        if ((rc = get_json(&j, client, "/api/federated/round", err)) < 0)
            goto cleanup;
        int64_t round_id = json_integer_value(json_object_get(j, "roundId"));
        int64_t version = json_integer_value(json_object_get(j, "modelVersion"));
        int64_t m = json_integer_value(json_object_get(j, "minCohort"));
        json_decref(j);
        j = NULL;
        fa_params_free(global);
        global = NULL;
        if ((rc = fa_device_fetch_model(&global, client, version, err)) < 0)
            goto cleanup;
        if ((int64_t)fa_params_num_items(global) < fa_dataset_num_items(s->ds)) {
            rc = fa_fail(err, FA_EINVAL, "the server model has %zu items, the data %d",
                         fa_params_num_items(global), (int)fa_dataset_num_items(s->ds));
            goto cleanup;
        }
        memset(&rr, 0, sizeof(rr));
        rr.s = s;
        rr.url = url;
        rr.global = global;
        rr.version = version;
        rr.key = &key;
        rr.chosen = chosen;
        rr.nchosen = fa_sim_choose(chosen, s, round_id, s->cohort > 0 ? s->cohort : m);
        (void)pthread_mutex_init(&rr.mu, NULL);
        for (int i = 0; i < s->parallel; i++) {
            if (pthread_create(&threads[i], NULL, device_worker, &rr) != 0) {
                note_error(&rr, "cannot start a device thread");
                break;
            }
            started++;
        }
        for (int i = 0; i < started; i++)
            (void)pthread_join(threads[i], NULL);
        (void)pthread_mutex_destroy(&rr.mu);
        if (atomic_load(&rr.rejected) > 0 && atomic_load(&rr.accepted) < m) {
            rc = fa_fail(err, FA_EINVAL, "round %lld: %s", (long long)round_id, rr.last_error);
            goto cleanup;
        }
        if ((rc = wait_published(&seen, client, round_id, version, err)) < 0)
            goto cleanup;
        memset(&line, 0, sizeof(line));
        line.round = round_id;
        line.version = seen;
        line.cohort = atomic_load(&rr.accepted);
        fa_params_free(global);
        global = NULL;
        if ((rc = fa_device_fetch_model(&global, client, seen, err)) < 0)
            goto cleanup;
        if (fa_sim_eval_due(s, round)) {
            if ((rc = fa_sim_eval(&line.hr10, &line.ndcg10, s, global, err)) < 0)
                goto cleanup;
            line.evaluated = 1;
        }
        if ((rc = read_budget(&line, client, err)) < 0)
            goto cleanup;
        line.seconds = (double)(fa_now_ns() - t0) * 1e-9;
        fa_sim_print(s, &line);
    }
cleanup:
    json_decref(j);
    free(threads);
    free(chosen);
    fa_params_free(global);
    fa_device_client_free(client);
    return rc;
}
