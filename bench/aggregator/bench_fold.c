/*
 * Fold benchmark: N updates of D floats clipped, trust-weighted and
 * accumulated into the running sum (the server's per-update work after
 * decryption), in GB/s of update bytes, next to a plain read of the same
 * bytes in the same run. Reading N x D x 4 bytes once is the floor of any
 * aggregation, so the ratio says how close the fold gets to it (target
 * >= 0.8). The fold is measured as the server's worker runs it, in
 * pipelined batches of up to 64 queued updates (fa_round_sum_fold_many),
 * and one update at a time (fa_round_sum_fold, an idle server's case).
 * One thread each. Prints one JSON line.
 *
 * usage: bench_fold [--updates N] [--dim D] [--reps R]
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregator/round_math.h"
#include "core/config.h"
#include "core/util.h"
#include "model/vec.h"

/* Updates per pipelined pass, as the server's worker batches its queue. */
#define BATCH 64

/* A plain read of n floats: the sum, so the compiler must load everything. */
static double read_all(const float *x, size_t n)
{
    float acc[16] = {0};
    size_t i = 0;

    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 16; k++)
            acc[k] += x[i + k];
    for (; i < n; i++)
        acc[0] += x[i];
    double s = 0;
    for (int k = 0; k < 16; k++)
        s += acc[k];
    return s;
}

/* Folds the n updates from a cleared sum in batches of batch; GB/s of update bytes. */
static int fold_all(double *gbps_out, fa_round_sum *sum, const float **ptrs, const int64_t *samples,
                    int64_t n, int64_t dim, int64_t batch, const fa_config *cfg, fa_error *err)
{
    fa_round_sum_clear(sum);
    uint64_t t0 = fa_now_ns();
    for (int64_t i = 0; i < n; i += batch) {
        size_t len = (size_t)(n - i < batch ? n - i : batch);
        if (fa_round_sum_fold_many(sum, NULL, ptrs + i, samples + i, len, cfg, NULL, err) < 0)
            return FA_EINVAL;
    }
    double secs = (double)(fa_now_ns() - t0) * 1e-9;
    *gbps_out = (double)n * (double)dim * 4 / secs * 1e-9;
    return FA_OK;
}

int main(int argc, char **argv)
{
    static const struct option OPTS[] = {
        {"updates", required_argument, NULL, 'n'},
        {"dim", required_argument, NULL, 'd'},
        {"reps", required_argument, NULL, 'r'},
        {NULL, 0, NULL, 0},
    };
    int64_t n = 64, dim = 1000000, reps = 5;
    fa_config cfg;
    fa_round_sum *sum = NULL;
    fa_error err = FA_ERROR_INIT;
    int c;

    while ((c = getopt_long(argc, argv, "", OPTS, NULL)) != -1) {
        int64_t *dst = c == 'n' ? &n : c == 'd' ? &dim : c == 'r' ? &reps : NULL;
        if (dst == NULL || fa_parse_i64(dst, optarg) < 0 || *dst < 1) {
            fprintf(stderr, "usage: bench_fold [--updates N] [--dim D] [--reps R]\n");
            return 2;
        }
    }
    fa_vec_set_threads(1);
    fa_config_defaults(&cfg);
    cfg.clip_norm = 1.0;
    size_t total = (size_t)n * (size_t)dim;
    float *data = malloc(total * sizeof(float));
    if (data == NULL || fa_round_sum_new(&sum, (size_t)dim, &err) < 0) {
        fprintf(stderr, "bench_fold: %s\n", err.msg[0] ? err.msg : "out of memory");
        return 1;
    }
    /* Norms around 3 S: every update is really clipped. */
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < total; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        data[i] = ((float)(x % 2001) - 1000.0f) * (float)(3.0 / 577.0 / sqrt((double)dim));
    }
    const float **ptrs = malloc((size_t)n * sizeof(float *));
    int64_t *samples = malloc((size_t)n * sizeof(int64_t));
    if (ptrs == NULL || samples == NULL) {
        fprintf(stderr, "bench_fold: out of memory\n");
        return 1;
    }
    for (int64_t i = 0; i < n; i++) {
        ptrs[i] = data + (size_t)i * (size_t)dim;
        samples[i] = 50;
    }
    double best_read = 0, best_fold = 0, best_single = 0, check = 0;
    for (int64_t r = 0; r < reps; r++) {
        uint64_t t0 = fa_now_ns();
        check += read_all(data, total);
        double secs = (double)(fa_now_ns() - t0) * 1e-9;
        double gbps = (double)total * 4 / secs * 1e-9, single = 0;
        if (gbps > best_read)
            best_read = gbps;

        /* the worker's batches, then one update at a time */
        if (fold_all(&gbps, sum, ptrs, samples, n, dim, BATCH, &cfg, &err) < 0 ||
            fold_all(&single, sum, ptrs, samples, n, dim, 1, &cfg, &err) < 0) {
            fprintf(stderr, "bench_fold: %s\n", err.msg);
            return 1;
        }
        if (gbps > best_fold)
            best_fold = gbps;
        if (single > best_single)
            best_single = single;
        check += fa_round_sum_data(sum)[0];
    }
    printf("{\"bench\":\"fold\",\"updates\":%lld,\"dim\":%lld,\"read_gbps\":%.3f,"
           "\"fold_gbps\":%.3f,\"ratio\":%.3f,\"single_gbps\":%.3f,\"single_ratio\":%.3f,"
           "\"checksum\":%.3g}\n",
           (long long)n, (long long)dim, best_read, best_fold, best_fold / best_read, best_single,
           best_single / best_read, check);
    free(ptrs);
    free(samples);
    fa_round_sum_free(sum);
    free(data);
    return 0;
}
