/*
 * Fold benchmark: N updates of D floats clipped, trust-weighted and
 * accumulated into the running sum (the server's per-update work after
 * acceptance), in GB/s of update bytes, next to a plain read of the same
 * bytes in the same run. Reading N x D x 4 bytes once is the floor of any
 * aggregation, so the ratio says how close the fold gets to it (target
 * >= 0.8).
 *
 * The server forms each update's sum of squares (the clip norm) while it
 * decodes the plaintext at acceptance, in the same pass as the finiteness
 * check, so its worker folds in one pass: "fold" as the worker folds its
 * queue (fa_round_sum_fold_many, batches of 64), "fold_one" one update at
 * a time (an idle server's case). The other numbers show where the norm
 * went: "decode" is
 * fa_update_decode (copy out of the plaintext + finiteness + sum of
 * squares) against a memcpy of the same bytes, and "fold_norm" is a fold
 * that reads the update once more for its norm (fa_round_sum_fold). One
 * thread each. Prints one JSON line.
 *
 * usage: bench_fold [--updates N] [--dim D] [--reps R]
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregator/round_math.h"
#include "aggregator/update.h"
#include "core/compiler.h"
#include "core/config.h"
#include "core/util.h"
#include "model/vec.h"
#include "privacy/clip.h"

#define SAMPLES 50
/* Updates per call in "fold", as the server's worker batches its queue. */
#define BATCH 64

typedef float v8f __attribute__((vector_size(32)));

/*
 * A plain read of n floats: their sum, so that every load happens. Written
 * with vector types and compiled for AVX2 like the fold's kernels, so that
 * the baseline reads as fast as the machine allows at any optimisation
 * level (at -O2 the compiler leaves a plain loop scalar).
 */
FA_CLONES_AVX2 static double read_all(const float *x, size_t n)
{
    v8f a0 = {0}, a1 = {0};
    size_t i = 0;
    double s = 0;

    for (; i + 16 <= n; i += 16) {
        v8f v0, v1;
        memcpy(&v0, x + i, sizeof(v0));
        memcpy(&v1, x + i + 8, sizeof(v1));
        a0 += v0;
        a1 += v1;
    }
    for (; i < n; i++)
        s += x[i];
    for (int k = 0; k < 8; k++)
        s += (double)a0[k] + (double)a1[k];
    return s;
}

typedef struct bench {
    int64_t n, dim;
    float *data;          /* n x dim decoded updates */
    unsigned char *plain; /* n plaintexts of plain_len bytes */
    size_t plain_len;
    fa_clip_sumsq *sumsq; /* n, from the decode */
    float **ptrs;         /* n, the updates in data */
    int64_t *samples;     /* n x SAMPLES */
    fa_round_sum *sum;
    fa_config cfg;
} bench;

/* Run in this order: the read and the fold each follow a pass that wrote
 * the updates (the copy, the decode), so both start from the same caches. */
enum { COPY, READ, DECODE, FOLD, FOLD_ONE, FOLD_NORM, NMODES };

/* The timing's end: GB/s of update bytes (N x D x 4) since t0. */
static void finish(double *gbps_out, double *check, const bench *b, uint64_t t0)
{
    double secs = (double)(fa_now_ns() - t0) * 1e-9;
    *gbps_out = (double)b->n * (double)b->dim * 4 / secs * 1e-9;
    *check += fa_round_sum_data(b->sum)[0];
}

/* The worker's way: fa_round_sum_fold_many over batches of BATCH queued updates. */
static int fold_batches(double *gbps_out, double *check, bench *b, uint64_t t0, fa_error *err)
{
    for (int64_t i = 0; i < b->n; i += BATCH) {
        size_t len = (size_t)(b->n - i < BATCH ? b->n - i : BATCH);
        if (fa_round_sum_fold_many(b->sum, NULL, (const float *const *)b->ptrs + i, b->sumsq + i,
                                   b->samples + i, len, &b->cfg, NULL, err) < 0)
            return FA_EINVAL;
    }
    finish(gbps_out, check, b, t0);
    return FA_OK;
}

/* One pass of mode over all n updates; GB/s of update bytes (N x D x 4). */
static int run(double *gbps_out, double *check, bench *b, int mode, fa_error *err)
{
    size_t dim = (size_t)b->dim;

    fa_round_sum_clear(b->sum);
    uint64_t t0 = fa_now_ns();
    if (mode == FOLD)
        return fold_batches(gbps_out, check, b, t0, err);
    for (int64_t i = 0; i < b->n; i++) {
        float *u = b->data + (size_t)i * dim;
        const unsigned char *p = b->plain + (size_t)i * b->plain_len;
        const char *reason = NULL;
        int rc = FA_OK;
        switch (mode) {
        case READ:
            *check += read_all(u, dim);
            break;
        case COPY:
            memcpy(u, p + FA_UPDATE_HEADER_BYTES, dim * sizeof(float));
            break;
        case DECODE:
            rc = fa_update_decode(u, &b->sumsq[i], &reason, p, b->plain_len, 1, SAMPLES, dim, err);
            break;
        case FOLD_ONE:
            rc = fa_round_sum_fold_sumsq(b->sum, u, &b->sumsq[i], SAMPLES, &b->cfg, NULL, err);
            break;
        default:
            rc = fa_round_sum_fold(b->sum, u, SAMPLES, &b->cfg, NULL, err);
            break;
        }
        if (rc < 0)
            return rc;
    }
    finish(gbps_out, check, b, t0);
    return FA_OK;
}

static int setup(bench *b, fa_error *err)
{
    size_t dim = (size_t)b->dim, total = (size_t)b->n * dim;

    fa_config_defaults(&b->cfg);
    b->cfg.clip_norm = 1.0;
    b->plain_len = FA_UPDATE_HEADER_BYTES + 4 * dim;
    b->data = malloc(total * sizeof(float));
    b->plain = malloc((size_t)b->n * b->plain_len);
    b->sumsq = calloc((size_t)b->n, sizeof(fa_clip_sumsq));
    b->ptrs = calloc((size_t)b->n, sizeof(float *));
    b->samples = calloc((size_t)b->n, sizeof(int64_t));
    if (b->data == NULL || b->plain == NULL || b->sumsq == NULL || b->ptrs == NULL ||
        b->samples == NULL)
        return fa_fail(err, FA_ENOMEM, "out of memory");
    if (fa_round_sum_new(&b->sum, dim, err) < 0)
        return FA_ENOMEM;
    /* Norms around 3 S: every update is really clipped. */
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < total; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        b->data[i] = ((float)(x % 2001) - 1000.0f) * (float)(3.0 / 577.0 / sqrt((double)dim));
    }
    for (int64_t i = 0; i < b->n; i++) {
        b->ptrs[i] = b->data + (size_t)i * dim;
        b->samples[i] = SAMPLES;
        fa_update_encode(b->plain + (size_t)i * b->plain_len, 1, SAMPLES, b->ptrs[i], dim);
    }
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
    bench b = {.n = 64, .dim = 1000000};
    int64_t reps = 5;
    double best[NMODES] = {0}, check = 0;
    fa_error err = FA_ERROR_INIT;
    int c;

    while ((c = getopt_long(argc, argv, "", OPTS, NULL)) != -1) {
        int64_t *dst = c == 'n' ? &b.n : c == 'd' ? &b.dim : c == 'r' ? &reps : NULL;
        if (dst == NULL || fa_parse_i64(dst, optarg) < 0 || *dst < 1) {
            fprintf(stderr, "usage: bench_fold [--updates N] [--dim D] [--reps R]\n");
            return 2;
        }
    }
    fa_vec_set_threads(1);
    if (setup(&b, &err) < 0) {
        fprintf(stderr, "bench_fold: %s\n", err.msg);
        return 1;
    }
    /* Each repetition runs every mode in turn; the best of each counts. */
    for (int64_t r = 0; r < reps; r++)
        for (int mode = 0; mode < NMODES; mode++) {
            double gbps = 0;
            if (run(&gbps, &check, &b, mode, &err) < 0) {
                fprintf(stderr, "bench_fold: %s\n", err.msg);
                return 1;
            }
            if (gbps > best[mode])
                best[mode] = gbps;
        }
    printf("{\"bench\":\"fold\",\"updates\":%lld,\"dim\":%lld,\"read_gbps\":%.3f,"
           "\"fold_gbps\":%.3f,\"ratio\":%.3f,\"fold_one_gbps\":%.3f,\"fold_one_ratio\":%.3f,"
           "\"fold_norm_gbps\":%.3f,\"fold_norm_ratio\":%.3f,"
           "\"copy_gbps\":%.3f,\"decode_gbps\":%.3f,\"decode_ratio\":%.3f,\"checksum\":%.3g}\n",
           (long long)b.n, (long long)b.dim, best[READ], best[FOLD], best[FOLD] / best[READ],
           best[FOLD_ONE], best[FOLD_ONE] / best[READ], best[FOLD_NORM],
           best[FOLD_NORM] / best[READ], best[COPY], best[DECODE], best[DECODE] / best[COPY],
           check);
    fa_round_sum_free(b.sum);
    free(b.sumsq);
    free(b.ptrs);
    free(b.samples);
    free(b.plain);
    free(b.data);
    return 0;
}
