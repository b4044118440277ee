/*
 * The HTTP driver of fedagg simulate: the real device flow against a
 * running server. Each round: read the open round, download model v, and
 * let s->parallel threads take the chosen devices in increasing id order
 * (check in, train locally, seal, post) before the round's deadline; then
 * wait for the deadline, when the server releases the round (or abandons
 * it), download the new version and evaluate it with every device's own
 * vector. A device that misses the deadline is late, not an error: the
 * round releases whatever arrived in time, as it would for real devices.
 */
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/util.h"
#include "device/client.h"
#include "model/data.h"
#include "model/local.h"
#include "model/params.h"
#include "sim/sim.h"

#define WAIT_POLL_MS   100 /* between polls for the round's end */
#define WAIT_CLOSE_S   600 /* longest wait for a close after the deadline */
#define RETRY_PAUSE_MS 200 /* between retries of a 503 answer */
#define RETRY_MAX      50  /* retries of a 503 answer (10 s) */

struct round_run {
    fa_sim *s;
    const char *url;
    const fa_params *global;
    int64_t round_id;
    int64_t version;
    double deadline; /* the round's, seconds since the epoch */
    const int32_t *chosen;
    int32_t nchosen;
    atomic_int next;
    atomic_int accepted, rejected;
    atomic_int late; /* devices that came after the deadline (or a full round) */
    atomic_int full; /* 1: the server answered round_full */
    atomic_int over; /* 1: the round takes no more updates; stop posting */
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

static void sleep_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
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

/* The open round's id, or 0 when it cannot be read (database down). */
static int64_t open_round_id(fa_device_client *c)
{
    fa_error err = FA_ERROR_INIT;
    json_t *j = NULL;
    int64_t id = 0;

    if (get_json(&j, c, "/api/federated/round", &err) == FA_OK)
        id = json_integer_value(json_object_get(j, "roundId"));
    json_decref(j);
    return id;
}

/* The device came too late for the round: it and every later one sit it out. */
static void missed(struct round_run *rr)
{
    atomic_fetch_add(&rr->late, 1);
    atomic_store(&rr->over, 1);
}

/*
 * Checks in for rr's round. 1: checked in (r filled); 0: the round is past
 * its deadline (the server answers 503 while it closes the round, and then
 * opens the next one); -1: an error, noted.
 */
static int checkin(fa_device_round *r, struct round_run *rr, fa_device_client *c,
                   const char *device_id)
{
    fa_error err = FA_ERROR_INIT;
    char msg[256];

    if (fa_device_checkin(r, c, device_id, &err) < 0) {
        /* 503 is "database down" or "round closing". While the database
         * answers GET /round the round is closing: this device is late.
         * Checking in again would join the next round, spending the
         * device's sampling coin of that round. */
        if (err.code == FA_EUNAVAIL && strstr(err.msg, "HTTP 503") != NULL && open_round_id(c) != 0)
            return 0;
        note_error(rr, err.msg);
        return -1;
    }
    if (r->round_id != rr->round_id) {
        if (r->round_id > rr->round_id)
            return 0; /* the round ended before this device checked in */
        (void)snprintf(msg, sizeof(msg), "checked in to round %lld, not %lld",
                       (long long)r->round_id, (long long)rr->round_id);
        note_error(rr, msg);
        return -1;
    }
    if (r->model_version != rr->version) {
        (void)snprintf(msg, sizeof(msg), "round %lld moved on to model version %lld",
                       (long long)rr->round_id, (long long)r->model_version);
        note_error(rr, msg);
        return -1;
    }
    return 1;
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
        fa_device_client_set_ca(c, s->ca_file, &err) < 0 ||
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
        int ck;

        if (dev.count == 0)
            continue;
        /* Past the deadline (this machine's clock is taken to agree with
         * the server's) a check-in would join the next round and hold this
         * device's token there: it sits this round out instead. */
        if (atomic_load(&rr->over) || fa_wall_seconds() >= rr->deadline) {
            missed(rr);
            continue;
        }
        (void)snprintf(device_id, sizeof(device_id), "sim-%d", (int)u);
        o.seed = fa_sim_device_seed(s, u, rr->version);
        if (s->auth_key != NULL) {
            /* The device's own token, as its identity provider would issue it. */
            char *tok = NULL;
            if (fa_device_mint_token(&tok, s->auth_key, s->auth_kid, s->auth_issuer,
                                     s->auth_audience, device_id, (int64_t)fa_wall_seconds() + 3600,
                                     &err) < 0 ||
                fa_device_client_set_token(c, tok, &err) < 0) {
                free(tok);
                note_error(rr, err.msg);
                break;
            }
            free(tok);
        }
        if ((ck = checkin(&r, rr, c, device_id)) < 0)
            break;
        if (ck == 0) {
            missed(rr);
            continue;
        }
        if (!r.selected)
            continue;
        if (fa_local_train(NULL, delta, lt, s->user_table + (size_t)u * FA_NCF_EMBED_DIM,
                           rr->global, &dev, &o, &err) < 0) {
            note_error(rr, err.msg);
            break;
        }
        /* 503 is retried as the API asks (nothing was stored): the
         * database is down, or the round is being closed right now and
         * the retry then meets round_closed. */
        for (int tries = 0;; tries++) {
            if (fa_device_post_update(&status, receipt, code, sizeof(code), c, rr->key, r.token,
                                      r.model_version, (int64_t)dev.count, delta, dim, &err) < 0)
                status = 0;
            if (status != 503 || tries == RETRY_MAX)
                break;
            sleep_ms(RETRY_PAUSE_MS);
        }
        if (status == 0) {
            note_error(rr, err.msg);
            break;
        }
        if (status == 202) {
            atomic_fetch_add(&rr->accepted, 1);
        } else if (status == 409 && strcmp(code, "round_closed") == 0) {
            missed(rr); /* posted at or after the deadline */
        } else if (status == 409 && strcmp(code, "round_full") == 0) {
            atomic_store(&rr->full, 1); /* max_cohort reached: abandoned at once */
            missed(rr);
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
 * Waits until round_id has ended: its deadline (seconds since the epoch)
 * has passed and the server has closed it, which shows as a newer open
 * round; a full round ends before its deadline. The deadline only decides
 * how often to look, so a clock that disagrees with the server's costs
 * time, not correctness. *published_out is the newest version after that:
 * the close commits the version and opens the next round in one
 * transaction, so reading the round first and the version second is exact.
 */
static int wait_round_end(int64_t *published_out, fa_device_client *c, int64_t round_id,
                          double deadline, fa_error *err)
{
    *published_out = -1;
    for (;;) {
        double left = deadline - fa_wall_seconds();
        if (open_round_id(c) > round_id)
            break;
        if (-left > WAIT_CLOSE_S)
            return fa_fail(err, FA_EUNAVAIL, "round %lld did not end within %d s of its deadline",
                           (long long)round_id, WAIT_CLOSE_S);
        /* Until shortly before the deadline, look once a second (a full
         * round may end early); then poll. */
        sleep_ms(left > 1.2 ? 1000 : left > 0.3 ? (long)((left - 0.2) * 1000) : WAIT_POLL_MS);
    }
    *published_out = latest_version(c);
    return *published_out >= 0 ? FA_OK
                               : fa_fail(err, FA_EUNAVAIL, "cannot read the newest model version");
}

/*
 * The ledger's cumulative spend, as the budget endpoint reports it, into
 * line, and the number of rounds the budget refused so far.
 */
static int read_budget(fa_sim_line *line, int64_t *refusals_out, fa_device_client *client,
                       fa_error *err)
{
    json_t *j = NULL;
    int rc;

    if ((rc = get_json(&j, client, "/api/privacy/budget", err)) < 0)
        return rc;
    line->epsilon = json_real_value(json_object_get(j, "epsilonSpent"));
    line->delta = json_real_value(json_object_get(j, "delta"));
    *refusals_out = json_integer_value(json_object_get(j, "refusals"));
    json_decref(j);
    return FA_OK;
}

/*
 * The open round to join: id, base version, minimum cohort and deadline.
 * A round already past its deadline (by this machine's clock) is waited
 * out: no device could join it in time.
 */
static int open_round(int64_t *id_out, int64_t *version_out, int64_t *min_out, double *deadline_out,
                      fa_device_client *client, fa_error *err)
{
    int64_t published;
    int rc;

    for (;;) {
        json_t *j = NULL;
        if ((rc = get_json(&j, client, "/api/federated/round", err)) < 0)
            return rc;
        *id_out = json_integer_value(json_object_get(j, "roundId"));
        *version_out = json_integer_value(json_object_get(j, "modelVersion"));
        *min_out = json_integer_value(json_object_get(j, "minCohort"));
        *deadline_out = json_number_value(json_object_get(j, "deadline"));
        json_decref(j);
        if (fa_wall_seconds() < *deadline_out)
            return FA_OK;
        if ((rc = wait_round_end(&published, client, *id_out, *deadline_out, err)) < 0)
            return rc;
    }
}

int fa_sim_run_http(fa_sim *s, const char *url, fa_error *err)
{
    fa_device_client *client = NULL;
    fa_device_key key;
    fa_params *global = NULL;
    pthread_t *threads = NULL;
    int32_t *chosen = NULL;
    json_t *j = NULL;
    int64_t refusals = 0;
    fa_sim_line budget_line;
    int rc = FA_OK;

    threads = calloc((size_t)s->parallel, sizeof(pthread_t));
    chosen = malloc((size_t)s->users * sizeof(int32_t));
    if (threads == NULL || chosen == NULL) {
        rc = fa_fail(err, FA_ENOMEM, "out of memory");
        goto cleanup;
    }
    if ((rc = fa_device_client_new(&client, url, err)) < 0 ||
        (rc = fa_device_client_set_ca(client, s->ca_file, err)) < 0 ||
        (rc = fa_device_fetch_key(&key, client, err)) < 0 ||
        (rc = read_budget(&budget_line, &refusals, client, err)) < 0)
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
            (rc = fa_sim_eval(&line.hr10, &line.ndcg10, &line.target_hr10, s, global, err)) < 0 ||
            (rc = read_budget(&line, &refusals, client, err)) < 0)
            goto cleanup;
        line.evaluated = 1;
        line.seconds = (double)(fa_now_ns() - t0) * 1e-9;
        fa_sim_print(s, &line);
    }
    for (int64_t round = 1; round <= s->rounds; round++) {
        uint64_t t0 = fa_now_ns();
        struct round_run rr;
        fa_sim_line line;
        int64_t seen = 0, round_id = 0, version = 0, m = 0, refused = 0;
        double deadline = 0;
        int started = 0, late;

        if ((rc = open_round(&round_id, &version, &m, &deadline, client, err)) < 0)
            goto cleanup;
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
        rr.round_id = round_id;
        rr.version = version;
        rr.deadline = deadline;
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
        late = atomic_load(&rr.late);
        if ((rc = wait_round_end(&seen, client, round_id, deadline, err)) < 0)
            goto cleanup;
        memset(&line, 0, sizeof(line));
        if ((rc = read_budget(&line, &refused, client, err)) < 0)
            goto cleanup;
        if (seen <= version) {
            /* Ended without a release: refused by the budget (the run
             * stops, as in process), or abandoned (the next round goes on
             * from the same model, as in process). */
            if (refused > refusals) {
                rc = fa_fail(err, FA_EREFUSED,
                             "round %lld refused: the release would exceed the privacy budget "
                             "(see fedagg ledger show)",
                             (long long)round_id);
                goto cleanup;
            }
            /* Not below the minimum: the round filled up. Devices racing
             * the cap may meet the round closed rather than full. */
            if (atomic_load(&rr.full) || atomic_load(&rr.accepted) >= m)
                fprintf(stderr,
                        "fedagg simulate: round %lld abandoned: it reached the server's "
                        "max_cohort\n",
                        (long long)round_id);
            else
                fprintf(stderr,
                        "fedagg simulate: round %lld abandoned: cohort %d is below the minimum "
                        "%lld (%d devices missed the deadline)\n",
                        (long long)round_id, atomic_load(&rr.accepted), (long long)m, late);
            continue;
        }
        refusals = refused;
        if (late > 0)
            fprintf(stderr, "fedagg simulate: round %lld: %d devices missed the deadline\n",
                    (long long)round_id, late);
        line.round = round_id;
        line.version = seen;
        line.cohort = atomic_load(&rr.accepted);
        fa_params_free(global);
        global = NULL;
        if ((rc = fa_device_fetch_model(&global, client, seen, err)) < 0)
            goto cleanup;
        if (fa_sim_eval_due(s, round)) {
            if ((rc = fa_sim_eval(&line.hr10, &line.ndcg10, &line.target_hr10, s, global, err)) < 0)
                goto cleanup;
            line.evaluated = 1;
        }
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
