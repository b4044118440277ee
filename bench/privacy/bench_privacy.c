/*
 * Throughput of the release path on one update-sized vector: L2 clip, trust
 * weight and secure Gaussian noise on 1M floats, against a plain read (sum)
 * of the same bytes measured in the same run. Prints one JSON line; the
 * ratio is (clip + weight + noise GB/s) / (read GB/s). Single thread.
 *
 *   bench_privacy [--n FLOATS] [--reps R]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "median.h"
#include "privacy/clip.h"
#include "privacy/crypto.h"
#include "privacy/noise.h"

#define LANES 16

/* Plain read: sum of the floats, independent accumulators so it runs at memory speed. */
static double read_sum(const float *x, size_t n)
{
    float part[LANES] = {0};
    double s = 0.0;
    size_t i = 0;

    for (; i + LANES <= n; i += LANES)
        for (size_t l = 0; l < LANES; l++)
            part[l] += x[i + l];
    for (; i < n; i++)
        part[0] += x[i];
    for (size_t l = 0; l < LANES; l++)
        s += part[l];
    return s;
}

int main(int argc, char **argv)
{
    int64_t n = 1000000, reps = 15;
    float *x = NULL, *src = NULL;
    double *t_read = NULL, *t_clip = NULL, *t_noise = NULL, *t_all = NULL;
    volatile double sink = 0.0;
    fa_noise *nz = NULL;
    fa_error err = FA_ERROR_INIT;
    uint64_t s = 0x9E3779B97F4A7C15ull;
    int rc = 1;

    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--n") == 0 && fa_parse_i64(&n, argv[i + 1]) == 0 &&
            n > 0) {
            i++;
        } else if (i + 1 < argc && strcmp(argv[i], "--reps") == 0 &&
                   fa_parse_i64(&reps, argv[i + 1]) == 0 && reps > 0 && reps <= 1000) {
            i++;
        } else {
            fprintf(stderr, "usage: bench_privacy [--n FLOATS] [--reps R]\n");
            return 2;
        }
    }
    x = malloc((size_t)n * sizeof(*x));
    src = malloc((size_t)n * sizeof(*src));
    t_read = calloc((size_t)reps, sizeof(double));
    t_clip = calloc((size_t)reps, sizeof(double));
    t_noise = calloc((size_t)reps, sizeof(double));
    t_all = calloc((size_t)reps, sizeof(double));
    if (x == NULL || src == NULL || t_read == NULL || t_clip == NULL || t_noise == NULL ||
        t_all == NULL) {
        (void)fa_fail(&err, FA_ENOMEM, "out of memory");
        goto cleanup;
    }
    /* An update-like vector: small values, norm well above the clip norm. */
    for (int64_t i = 0; i < n; i++) {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        src[i] = (float)((double)((s * 0x2545F4914F6CDD1Dull) >> 11) * 0x1p-53 - 0.5) * 0.01f;
    }
    if (fa_crypto_init(&err) < 0 || fa_noise_new(&nz, &err) < 0)
        goto cleanup;

    for (int64_t r = 0; r < reps; r++) {
        uint64_t t0, t1, t2, t3;
        memcpy(x, src, (size_t)n * sizeof(*x));
        t0 = fa_now_ns();
        sink += read_sum(x, (size_t)n);
        t1 = fa_now_ns();
        /* Clip to S = 1 and weight 0.8 in one pass, then noise sigma * S = 1.1. */
        if (fa_clip_scale(NULL, x, (size_t)n, 1.0, 0.8, &err) < 0)
            goto cleanup;
        t2 = fa_now_ns();
        if (fa_noise_add_f32(nz, x, (size_t)n, 1.1, &err) < 0)
            goto cleanup;
        t3 = fa_now_ns();
        sink += x[n / 2];
        t_read[r] = (double)(t1 - t0) * 1e-9;
        t_clip[r] = (double)(t2 - t1) * 1e-9;
        t_noise[r] = (double)(t3 - t2) * 1e-9;
        t_all[r] = (double)(t3 - t1) * 1e-9;
    }
    {
        const double bytes = (double)n * sizeof(float);
        const double read = bytes / fa_bench_median(t_read, (size_t)reps) / 1e9;
        const double clip = bytes / fa_bench_median(t_clip, (size_t)reps) / 1e9;
        const double noise = bytes / fa_bench_median(t_noise, (size_t)reps) / 1e9;
        const double all = bytes / fa_bench_median(t_all, (size_t)reps) / 1e9;
        printf("{\"bench\":\"privacy-release\",\"floats\":%lld,\"reps\":%lld,"
               "\"read_gbps\":%.3f,\"clip_weight_gbps\":%.3f,\"noise_gbps\":%.3f,"
               "\"clip_weight_noise_gbps\":%.4f,\"ratio\":%.5f,\"noise_method\":\"%s\","
               "\"checksum\":%.3g}\n",
               (long long)n, (long long)reps, read, clip, noise, all, all / read, FA_NOISE_METHOD,
               (double)sink);
    }
    rc = 0;
cleanup:
    if (rc != 0)
        fprintf(stderr, "bench_privacy: %s\n", err.msg);
    fa_noise_free(nz);
    free(x);
    free(src);
    free(t_read);
    free(t_clip);
    free(t_noise);
    free(t_all);
    return rc;
}
