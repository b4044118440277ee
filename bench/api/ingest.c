/*
 * Ingest benchmark: sealed updates posted to a running fedagg server over
 * loopback (each answered 202 only after its row is committed), in the
 * binary form (the box as an application/octet-stream body) and in the
 * JSON form (the box in base64), against two baselines measured in the same
 * run with the same number of concurrent clients: raw libpq INSERTs of the
 * same ciphertext bytes into the same database, and opening the same sealed
 * box with the server's key (decrypt only, no HTTP, no database). Check-ins
 * and sealing happen before the clock starts. Prints one JSON line.
 *
 * usage: bench_ingest --server URL --database-url CONNINFO --key-dir DIR
 *                     [--updates N] [--clients C]
 */
#include <getopt.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "baseline.h"
#include "core/util.h"
#include "device/client.h"
#include "model/params.h"
#include "privacy/crypto.h"
#include "privacy/keys.h"

struct job {
    const char *url;
    const char *conninfo;
    const char *content_type; /* of the posted bodies */
    char **bodies;            /* JSON bodies or sealed boxes */
    char **headers;           /* the binary form's header lines, or NULL */
    size_t *lens;
    unsigned char *box; /* one ciphertext for the baselines */
    size_t box_len;
    fa_bench_pool pool; /* n updates; pool.arg is this job */
};

static void *post_worker(void *arg)
{
    fa_bench_pool *p = arg;
    struct job *j = p->arg;
    fa_device_client *c = NULL;
    fa_error err = FA_ERROR_INIT;
    int i;

    if (fa_device_client_new(&c, j->url, &err) < 0) {
        atomic_fetch_add(&p->failed, 1);
        return NULL;
    }
    while ((i = fa_bench_pool_take(p)) >= 0) {
        long status = 0;
        if (fa_device_http(&status, NULL, NULL, c, "POST", "/api/federated/update", j->content_type,
                           j->bodies[i], j->lens[i], j->headers != NULL ? j->headers[i] : NULL,
                           &err) < 0 ||
            status != 202)
            atomic_fetch_add(&p->failed, 1);
    }
    fa_device_client_free(c);
    return NULL;
}

/* n check-ins and n sealed updates in the given form (json: whole bodies; else boxes + headers). */
static int prepare(struct job *j, int json, fa_device_client *c, const fa_device_key *key,
                   float *delta, size_t dim, fa_error *err)
{
    j->content_type = json ? "application/json" : "application/octet-stream";
    j->bodies = calloc((size_t)j->pool.n, sizeof(char *));
    j->lens = calloc((size_t)j->pool.n, sizeof(size_t));
    j->headers = json ? NULL : calloc((size_t)j->pool.n, sizeof(char *));
    if (j->bodies == NULL || j->lens == NULL || (!json && j->headers == NULL))
        return fa_fail(err, FA_ENOMEM, "out of memory");
    for (int i = 0; i < j->pool.n; i++) {
        fa_device_round r;
        int rc;
        if ((rc = fa_device_checkin(&r, c, NULL, err)) < 0)
            return rc;
        if (json) {
            rc = fa_device_update_body(&j->bodies[i], &j->lens[i], key, r.token, r.model_version,
                                       10, delta, dim, err);
        } else {
            unsigned char *box = NULL;
            if ((j->headers[i] = malloc(512)) == NULL)
                return fa_fail(err, FA_ENOMEM, "out of memory");
            if (fa_device_update_headers(j->headers[i], 512, key, r.token, r.model_version, 10) < 0)
                return fa_fail(err, FA_EINVAL, "round token too long");
            rc = fa_device_update_box(&box, &j->lens[i], key, r.model_version, 10, delta, dim, err);
            j->bodies[i] = (char *)box;
        }
        if (rc < 0)
            return rc;
        delta[(size_t)i % dim] += 1e-3f; /* distinct updates */
    }
    return FA_OK;
}

static void release(struct job *j)
{
    for (int i = 0; i < j->pool.n; i++) {
        free(j->bodies[i]);
        if (j->headers != NULL)
            free(j->headers[i]);
    }
    free(j->bodies);
    free(j->headers);
    free(j->lens);
    j->bodies = j->headers = NULL;
    j->lens = NULL;
}

int main(int argc, char **argv)
{
    static const struct option OPTS[] = {
        {"server", required_argument, NULL, 's'},  {"database-url", required_argument, NULL, 'd'},
        {"key-dir", required_argument, NULL, 'k'}, {"updates", required_argument, NULL, 'n'},
        {"clients", required_argument, NULL, 'c'}, {NULL, 0, NULL, 0},
    };
    struct job j;
    int64_t n = 200, clients = 4;
    const char *key_dir = NULL;
    fa_device_client *c = NULL;
    fa_device_key key;
    fa_keys *keys = NULL;
    fa_params *model = NULL;
    fa_error err = FA_ERROR_INIT;
    double rate[2];
    int failed[2], opt;

    memset(&j, 0, sizeof(j));
    j.pool.arg = &j;
    while ((opt = getopt_long(argc, argv, "", OPTS, NULL)) != -1) {
        if (opt == 's')
            j.url = optarg;
        else if (opt == 'd')
            j.conninfo = optarg;
        else if (opt == 'k')
            key_dir = optarg;
        else if (opt == 'n' && fa_parse_i64(&n, optarg) == FA_OK && n > 0 && n <= 100000)
            continue;
        else if (opt == 'c' && fa_parse_i64(&clients, optarg) == FA_OK && clients > 0 &&
                 clients <= 64)
            continue;
        else {
            fprintf(stderr, "usage: bench_ingest --server URL --database-url CONNINFO "
                            "--key-dir DIR [--updates N] [--clients C]\n");
            return 2;
        }
    }
    if (j.url == NULL || j.conninfo == NULL || key_dir == NULL) {
        fprintf(stderr, "bench_ingest: --server, --database-url and --key-dir are required\n");
        return 2;
    }
    if (fa_crypto_init(&err) < 0 || fa_keys_load(&keys, key_dir, &err) < 0 ||
        fa_device_client_new(&c, j.url, &err) < 0 || fa_device_fetch_key(&key, c, &err) < 0 ||
        fa_device_fetch_model(&model, c, 0, &err) < 0)
        goto fail;
    size_t dim = fa_params_len(model);
    float *delta = malloc(dim * sizeof(float));
    if (delta == NULL)
        goto fail;
    for (size_t i = 0; i < dim; i++)
        delta[i] = (float)((double)(i % 97) * 1e-5);
    j.pool.n = (int)n;
    /* Binary first, then JSON, each with its own tokens, into the same round. */
    for (int form = 0; form < 2; form++) {
        if (prepare(&j, form, c, &key, delta, dim, &err) < 0)
            goto fail;
        if (form == 0) { /* the baselines' ciphertext: one binary body */
            j.box_len = j.lens[0];
            if ((j.box = malloc(j.box_len)) == NULL)
                goto fail;
            memcpy(j.box, j.bodies[0], j.box_len);
        }
        atomic_store(&j.pool.failed, 0);
        rate[form] = fa_bench_pool_run(&j.pool, (int)clients, post_worker);
        failed[form] = atomic_load(&j.pool.failed);
        release(&j);
    }
    double pq_rate, open_rate;
    if (fa_bench_insert_rate(&pq_rate, j.conninfo, j.box, j.box_len, j.pool.n, (int)clients, &err) <
            0 ||
        fa_bench_decrypt_rate(&open_rate, fa_keys_box(keys), j.box, j.box_len, j.pool.n,
                              (int)clients, &err) < 0)
        goto fail;
    printf("{\"bench\":\"ingest\",\"updates\":%d,\"clients\":%d,\"update_bytes\":%zu,"
           "\"binary_updates_per_s\":%.1f,\"json_updates_per_s\":%.1f,"
           "\"libpq_inserts_per_s\":%.1f,\"decrypt_only_per_s\":%.1f,"
           "\"binary_vs_libpq\":%.3f,\"binary_vs_decrypt\":%.3f,\"json_vs_decrypt\":%.3f,"
           "\"binary_vs_json\":%.3f,\"failed\":%d}\n",
           j.pool.n, (int)clients, j.box_len, rate[0], rate[1], pq_rate, open_rate,
           rate[0] / pq_rate, rate[0] / open_rate, rate[1] / open_rate, rate[0] / rate[1],
           failed[0] + failed[1]);
    free(delta);
    free(j.box);
    fa_params_free(model);
    fa_device_client_free(c);
    fa_keys_free(keys);
    return failed[0] == 0 && failed[1] == 0 ? 0 : 1;
fail:
    fprintf(stderr, "bench_ingest: %s\n", err.msg[0] ? err.msg : "out of memory");
    return 1;
}
