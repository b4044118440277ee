/*
 * fedagg simulate: a population of simulated devices, one per user of a
 * dataset, doing the real device flow against a running server over HTTP:
 * fetch the key, check in, download model v, train locally (each device
 * keeps its own user vector across rounds), seal, post. After each round it
 * evaluates HR@10/NDCG@10 of the published model with every device's own
 * user vector and prints one JSON line.
 */
#include <getopt.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd.h"
#include "core/util.h"
#include "device.h"
#include "model/data.h"
#include "model/eval.h"
#include "model/local.h"
#include "model/params.h"
#include "model/synth.h"
#include "model/train.h"
#include "model/vec.h"

struct sim {
    const char *url;
    fa_dataset *ds;
    int32_t users;
    float *user_table; /* users x 64, each device's own vector */
    fa_train_opts opts;
    int parallel;
    /* one round */
    const fa_params *global;
    int64_t version;
    int32_t *chosen; /* device ids of this round */
    int32_t nchosen;
    atomic_int next;
    atomic_int accepted, rejected;
    fa_device_key key;
    char last_error[256];
    pthread_mutex_t mu; /* guards last_error */
};

static void *device_worker(void *arg)
{
    struct sim *s = arg;
    fa_device_client *c = NULL;
    fa_local *lt = NULL;
    float *delta = NULL;
    fa_error err = FA_ERROR_INIT;
    size_t dim = fa_params_len(s->global);

    if (fa_device_client_new(&c, s->url, &err) < 0 ||
        fa_local_new(&lt, fa_params_num_items(s->global), s->opts.batch, &err) < 0 ||
        (delta = malloc(dim * sizeof(float))) == NULL)
        goto fail;
    for (;;) {
        int k = atomic_fetch_add(&s->next, 1);
        if (k >= s->nchosen)
            break;
        int32_t u = s->chosen[k];
        fa_device_data dev = fa_dataset_user(s->ds, u);
        fa_device_round r;
        char device_id[32], receipt[64], code[64];
        long status = 0;
        fa_train_opts o = s->opts;

        if (dev.count == 0)
            continue;
        (void)snprintf(device_id, sizeof(device_id), "sim-%d", (int)u);
        o.seed = s->opts.seed * 1000003u + (uint64_t)u * 7919u + (uint64_t)s->version;
        if (fa_device_checkin(&r, c, device_id, &err) < 0)
            goto fail;
        if (!r.selected)
            continue;
        if (r.model_version != s->version) {
            (void)fa_fail(&err, FA_ECONFLICT, "round moved on to model version %lld",
                          (long long)r.model_version);
            goto fail;
        }
        if (fa_local_train(NULL, delta, lt, s->user_table + (size_t)u * FA_NCF_EMBED_DIM, s->global,
                           &dev, &o, &err) < 0 ||
            fa_device_post_update(&status, receipt, code, sizeof(code), c, &s->key, r.token,
                                  r.model_version, (int64_t)dev.count, delta, dim, &err) < 0)
            goto fail;
        if (status == 202) {
            atomic_fetch_add(&s->accepted, 1);
        } else {
            atomic_fetch_add(&s->rejected, 1);
            (void)pthread_mutex_lock(&s->mu);
            (void)snprintf(s->last_error, sizeof(s->last_error), "update rejected: HTTP %ld %s",
                           status, code);
            (void)pthread_mutex_unlock(&s->mu);
        }
    }
    goto done;
fail:
    atomic_fetch_add(&s->rejected, 1);
    (void)pthread_mutex_lock(&s->mu);
    (void)snprintf(s->last_error, sizeof(s->last_error), "%s", err.msg);
    (void)pthread_mutex_unlock(&s->mu);
done:
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

static void usage(FILE *f)
{
    fprintf(f, "usage: fedagg simulate --server URL [--data DIR | --synthetic] [options]\n"
               "  --rounds N          rounds to take part in (default 3)\n"
               "  --cohort K          devices per round (default: the round's minimum cohort)\n"
               "  --parallel P        devices training and posting at once (default 4)\n"
               "  --epochs E --lr LR --batch B --optimizer adam|sgd --negatives K\n"
               "                      local training (default 1 epoch, Adam 1e-3, batch 64, 4)\n"
               "  --users N --items M --positives P   synthetic population (default 200/400/20)\n"
               "  --seed S            seed of device choice, user vectors and training\n");
}

int fa_cmd_simulate(int argc, char **argv)
{
    static const struct option OPTS[] = {
        {"server", required_argument, NULL, 's'},
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
        {"users", required_argument, NULL, 'U'},
        {"items", required_argument, NULL, 'I'},
        {"positives", required_argument, NULL, 'P'},
        {"seed", required_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct sim s;
    fa_synth_opts so = FA_SYNTH_OPTS_INIT;
    const char *data = NULL;
    int64_t rounds = 3, cohort = 0, parallel = 4, v64 = 0;
    double dv = 0;
    int synthetic = 0, c, idx = 0, status = 1;
    fa_error err = FA_ERROR_INIT;
    fa_device_client *client = NULL;
    fa_params *global = NULL;
    pthread_t *threads = NULL;
    json_t *j = NULL;

    memset(&s, 0, sizeof(s));
    s.opts = (fa_train_opts)FA_TRAIN_OPTS_INIT;
    s.opts.batch = 64;
    s.opts.seed = 1;
    (void)pthread_mutex_init(&s.mu, NULL);
    optind = 1;
    while ((c = getopt_long(argc, argv, "", OPTS, &idx)) != -1) {
        int bad = 0;
        switch (c) {
        case 's':
            s.url = optarg;
            break;
        case 'd':
            data = optarg;
            break;
        case 'y':
            synthetic = 1;
            break;
        case 'r':
            bad = fa_parse_i64(&rounds, optarg) < 0 || rounds < 1 || rounds > 100000;
            break;
        case 'k':
            bad = fa_parse_i64(&cohort, optarg) < 0 || cohort < 1 || cohort > 10000000;
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
        case 'U':
            bad = fa_parse_i64(&v64, optarg) < 0 || v64 < 1 || v64 > 10000000;
            so.num_users = (int32_t)v64;
            break;
        case 'I':
            bad = fa_parse_i64(&v64, optarg) < 0 || v64 < 1 || v64 > 10000000;
            so.num_items = (int32_t)v64;
            break;
        case 'P':
            bad = fa_parse_i64(&v64, optarg) < 0 || v64 < 1 || v64 > 100000;
            so.positives = (int32_t)v64;
            break;
        case 'S':
            bad = fa_parse_i64(&v64, optarg) < 0 || v64 < 0;
            s.opts.seed = (uint64_t)v64;
            so.seed = (uint64_t)v64;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "fedagg simulate: bad value '%s' for --%s\n", optarg, OPTS[idx].name);
            return 2;
        }
    }
    if (s.url == NULL || (data == NULL) == (synthetic == 0)) {
        fprintf(stderr, "fedagg simulate: give --server and one of --data DIR or --synthetic\n");
        return 2;
    }
    s.parallel = (int)parallel;
    fa_vec_set_threads(1);
    if (data != NULL) {
        fa_dataset_limits lim = FA_DATASET_LIMITS_INIT;
        if (fa_dataset_load(&s.ds, data, &lim, &err) < 0)
            goto fail;
    } else if (fa_synth_dataset(&s.ds, &so, &err) < 0) {
        goto fail;
    }
    s.users = fa_dataset_num_users(s.ds);
    s.user_table = malloc((size_t)s.users * FA_NCF_EMBED_DIM * sizeof(float));
    s.chosen = malloc((size_t)s.users * sizeof(int32_t));
    threads = calloc((size_t)s.parallel, sizeof(pthread_t));
    if (s.user_table == NULL || s.chosen == NULL || threads == NULL) {
        (void)fa_fail(&err, FA_ENOMEM, "out of memory");
        goto fail;
    }
    for (int32_t u = 0; u < s.users; u++)
        fa_params_init_user(s.user_table + (size_t)u * FA_NCF_EMBED_DIM, s.opts.seed + (uint64_t)u);
    if (fa_device_client_new(&client, s.url, &err) < 0 ||
        fa_device_fetch_key(&s.key, client, &err) < 0)
        goto fail;

    for (int64_t round = 1; round <= rounds; round++) {
        uint64_t t0 = fa_now_ns();
        json_t *rj = NULL;
        if (get_json(&rj, client, "/api/federated/round", &err) < 0)
            goto fail;
        int64_t round_id = json_integer_value(json_object_get(rj, "roundId"));
        s.version = json_integer_value(json_object_get(rj, "modelVersion"));
        int64_t m = json_integer_value(json_object_get(rj, "minCohort"));
        json_decref(rj);
        fa_params_free(global);
        global = NULL;
        if (fa_device_fetch_model(&global, client, s.version, &err) < 0)
            goto fail;
        if ((int64_t)fa_params_num_items(global) < fa_dataset_num_items(s.ds)) {
            (void)fa_fail(&err, FA_EINVAL, "the server model has %zu items, the data %d",
                          fa_params_num_items(global), (int)fa_dataset_num_items(s.ds));
            goto fail;
        }
        /* Devices of this round: a seeded shuffle, the first K. */
        int64_t k = cohort > 0 ? cohort : m;
        if (k > s.users)
            k = s.users;
        for (int32_t u = 0; u < s.users; u++)
            s.chosen[u] = u;
        uint64_t x = s.opts.seed * 0x9E3779B97F4A7C15ull + (uint64_t)round_id;
        for (int32_t u = s.users - 1; u > 0; u--) {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            int32_t r = (int32_t)((x * 0x2545F4914F6CDD1Dull) % (uint64_t)(u + 1));
            int32_t t = s.chosen[u];
            s.chosen[u] = s.chosen[r];
            s.chosen[r] = t;
        }
        s.nchosen = (int32_t)k;
        s.global = global;
        atomic_store(&s.next, 0);
        atomic_store(&s.accepted, 0);
        atomic_store(&s.rejected, 0);
        for (int i = 0; i < s.parallel; i++)
            if (pthread_create(&threads[i], NULL, device_worker, &s) != 0) {
                (void)fa_fail(&err, FA_EINTERNAL, "cannot start a device thread");
                goto fail;
            }
        for (int i = 0; i < s.parallel; i++)
            (void)pthread_join(threads[i], NULL);
        if (atomic_load(&s.rejected) > 0 && atomic_load(&s.accepted) < m) {
            (void)fa_fail(&err, FA_EINVAL, "round %lld: %s", (long long)round_id, s.last_error);
            goto fail;
        }
        /* Wait for the server to publish the next version. */
        int64_t seen = s.version;
        for (int i = 0; i < 1200 && seen <= s.version; i++) {
            if (get_json(&rj, client, "/api/federated/model/latest", &err) == FA_OK)
                seen = json_integer_value(json_object_get(rj, "version"));
            json_decref(rj);
            rj = NULL;
            if (seen <= s.version)
                sleep_ms(100);
        }
        if (seen <= s.version) {
            (void)fa_fail(&err, FA_EUNAVAIL, "round %lld: no new model version within 120 s",
                          (long long)round_id);
            goto fail;
        }
        fa_params_free(global);
        global = NULL;
        fa_eval_result ev = {0, 0, 0};
        if (fa_device_fetch_model(&global, client, seen, &err) < 0 ||
            fa_eval_dataset(&ev, global, s.user_table, s.ds, &err) < 0 ||
            get_json(&j, client, "/api/privacy/budget", &err) < 0)
            goto fail;
        printf("{\"round\":%lld,\"version\":%lld,\"cohort\":%d,\"hr10\":%.4f,\"ndcg10\":%.4f,"
               "\"epsilon\":%.6g,\"delta\":%.6g,\"seconds\":%.3f}\n",
               (long long)round_id, (long long)seen, atomic_load(&s.accepted), ev.hr10, ev.ndcg10,
               json_real_value(json_object_get(j, "epsilonSpent")),
               json_real_value(json_object_get(j, "delta")), (double)(fa_now_ns() - t0) * 1e-9);
        (void)fflush(stdout);
        json_decref(j);
        j = NULL;
    }
    status = 0;
    goto cleanup;
fail:
    fprintf(stderr, "fedagg simulate: %s\n", err.msg);
cleanup:
    json_decref(j);
    free(threads);
    fa_params_free(global);
    fa_device_client_free(client);
    free(s.user_table);
    free(s.chosen);
    fa_dataset_free(s.ds);
    (void)pthread_mutex_destroy(&s.mu);
    return status;
}
