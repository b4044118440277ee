/*
 * Training throughput of the centralized NCF trainer: runs --epochs epochs
 * (negative sampling, shuffling, forward, backward, Adam) and prints one JSON
 * line with samples per second. Uses DIR/loo_train.tsv when --data is given,
 * otherwise a synthetic dataset of the same size as MovieLens-100K.
 * --suggest-coretype prints the OPENBLAS_CORETYPE this CPU should use (or
 * nothing) so that the driver can give both contenders the same BLAS kernels.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/util.h"
#include "model/central.h"
#include "model/data.h"
#include "model/synth.h"
#include "model/train.h"
#include "model/vec.h"

static int usage(void)
{
    fprintf(stderr, "usage: bench_train [--data DIR] [--epochs E] [--batch B] [--seed S]\n"
                    "       bench_train --suggest-coretype\n");
    return 2;
}

int main(int argc, char **argv)
{
    fa_train_opts opts = FA_TRAIN_OPTS_INIT;
    const char *data = NULL;
    int64_t epochs = 2, v;
    fa_error err = FA_ERROR_INIT;
    fa_dataset *ds = NULL;
    fa_central *c = NULL;
    size_t samples = 0;
    uint64_t ns = 0;
    int status = 1;

    if (argc == 2 && strcmp(argv[1], "--suggest-coretype") == 0) {
        const char *ct = fa_vec_better_coretype();
        printf("%s\n", ct != NULL ? ct : "");
        return 0;
    }
    /* Every option takes one value. */
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (val == NULL)
            return usage();
        if (strcmp(a, "--data") == 0)
            data = val;
        else if (strcmp(a, "--epochs") == 0 && fa_parse_i64(&epochs, val) == 0 && epochs >= 1)
            ;
        else if (strcmp(a, "--batch") == 0 && fa_parse_i64(&v, val) == 0 && v >= 1 && v <= 65536)
            opts.batch = (size_t)v;
        else if (strcmp(a, "--seed") == 0 && fa_parse_i64(&v, val) == 0 && v >= 0)
            opts.seed = (uint64_t)v;
        else
            return usage();
    }
    if (data != NULL) {
        if (fa_dataset_load(&ds, data, NULL, &err) < 0)
            goto cleanup;
    } else {
        fa_synth_opts so = FA_SYNTH_OPTS_INIT;
        so.num_users = 943;
        so.num_items = 1682;
        so.positives = 105; /* 99,015 interactions, as in loo_train.tsv */
        if (fa_synth_dataset(&ds, &so, &err) < 0)
            goto cleanup;
    }
    if (fa_central_new(&c, ds, &opts, &err) < 0)
        goto cleanup;
    for (int64_t e = 0; e < epochs; e++) {
        double loss;
        uint64_t t0 = fa_now_ns();
        if (fa_central_epoch(&loss, c, &err) < 0)
            goto cleanup;
        ns += fa_now_ns() - t0;
        samples += fa_central_samples(c);
    }
    printf("{\"impl\":\"c\",\"samples\":%zu,\"seconds\":%.3f,\"samples_per_s\":%.1f,"
           "\"batch\":%zu,\"epochs\":%" PRId64 ",\"blas_threads\":%d,\"blas_core\":\"%s\","
           "\"data\":\"%s\"}\n",
           samples, (double)ns * 1e-9, (double)samples / ((double)ns * 1e-9), opts.batch, epochs,
           fa_vec_threads(), fa_vec_blas_core(), data != NULL ? "loo_train.tsv" : "synthetic");
    status = 0;
cleanup:
    if (status != 0)
        fprintf(stderr, "bench_train: %s\n", err.msg);
    fa_central_free(c);
    fa_dataset_free(ds);
    return status;
}
