/*
 * fedagg train: the centralized baseline on a dataset. Runs on the main
 * thread only; BLAS threads are set from --threads.
 */
#include "cli/cli.h"
#include "cli/internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "core/error.h"
#include "core/log.h"
#include "core/util.h"
#include "model/central.h"
#include "model/data.h"
#include "model/eval.h"
#include "model/params.h"
#include "model/snapshot.h"
#include "model/train.h"
#include "model/vec.h"

#define MAX_THREADS 256

static const char TRAIN_USAGE[] =
    "usage: fedagg train --data DIR --epochs E --seed S [--batch B] [--lr LR]\n"
    "                    [--optimizer adam|sgd] [--negatives K] [--loss bce|mse] [--threads N]\n"
    "\n"
    "Trains the NCF model on all users of DIR/loo_train.tsv at once and prints one JSON line\n"
    "per epoch with the loss and HR@10 / NDCG@10 on DIR/loo_test.tsv.\n"
    "Defaults: --batch 256 --lr 0.001 --optimizer adam --negatives 4 --loss bce --threads 1\n";

/* ---- fedagg train -------------------------------------------------------------------------- */

void fa_cmd_reexec_for_blas(int argc, char **argv)
{
#ifdef __linux__
    const char *ct = fa_vec_better_coretype();
    char **args;

    if (ct == NULL || getenv("OPENBLAS_CORETYPE") != NULL)
        return;
    args = calloc((size_t)argc + 2, sizeof(char *));
    if (args == NULL || setenv("OPENBLAS_CORETYPE", ct, 1) != 0) {
        free(args);
        return;
    }
    args[0] = "fedagg";
    for (int i = 0; i < argc; i++)
        args[i + 1] = argv[i];
    (void)fflush(stdout);
    (void)execv("/proc/self/exe", args);
    /* exec failed: carry on with the generic kernels */
    (void)unsetenv("OPENBLAS_CORETYPE");
    free(args);
#else
    (void)argc;
    (void)argv;
#endif
}

int fa_cmd_train(int argc, char **argv)
{
    fa_train_opts opts = FA_TRAIN_OPTS_INIT;
    const char *data = NULL;
    int64_t epochs = -1, seed = -1, v64, threads = 1;
    double best_hr = -1.0, best_ndcg = 0.0, total_s = 0.0;
    int best_epoch = 0;
    fa_error err = FA_ERROR_INIT;
    fa_dataset *ds = NULL;
    fa_central *c = NULL;
    int status = 1;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(TRAIN_USAGE, stdout);
            return 0;
        }
    }
    /* Every option takes one value. */
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--data") == 0 && v != NULL) {
            data = v;
        } else if (strcmp(a, "--epochs") == 0) {
            if (fa_cli__opt_i64(&epochs, a, v, 1, 100000) < 0)
                return 2;
        } else if (strcmp(a, "--seed") == 0) {
            if (fa_cli__opt_i64(&seed, a, v, 0, INT64_MAX) < 0)
                return 2;
        } else if (strcmp(a, "--batch") == 0) {
            if (fa_cli__opt_i64(&v64, a, v, 1, 65536) < 0)
                return 2;
            opts.batch = (size_t)v64;
        } else if (strcmp(a, "--lr") == 0) {
            if (fa_cli__opt_double(&opts.lr, a, v) < 0)
                return 2;
        } else if (strcmp(a, "--optimizer") == 0) {
            if (v == NULL || fa_train_optimizer_parse(&opts.optimizer, v) < 0) {
                fprintf(stderr, "fedagg: --optimizer is adam or sgd\n");
                return 2;
            }
        } else if (strcmp(a, "--loss") == 0) {
            if (v == NULL || fa_train_loss_parse(&opts.loss, v) < 0) {
                fprintf(stderr, "fedagg: --loss is bce or mse\n");
                return 2;
            }
        } else if (strcmp(a, "--negatives") == 0) {
            if (fa_cli__opt_i64(&v64, a, v, 0, FA_TRAIN_MAX_NEGATIVES) < 0)
                return 2;
            opts.negatives = (int)v64;
        } else if (strcmp(a, "--threads") == 0) {
            if (fa_cli__opt_i64(&threads, a, v, 1, MAX_THREADS) < 0)
                return 2;
        } else {
            fputs(TRAIN_USAGE, stderr);
            return 2;
        }
    }
    if (data == NULL || epochs < 0 || seed < 0) {
        fputs(TRAIN_USAGE, stderr);
        return 2;
    }
    opts.epochs = (int)epochs;
    opts.seed = (uint64_t)seed;
    if (fa_train_opts_validate(&opts, &err) < 0) {
        fprintf(stderr, "fedagg: %s\n", err.msg);
        return 2;
    }
    fa_cmd_reexec_for_blas(argc, argv);
    fa_vec_set_threads((int)threads);

    if (fa_dataset_load(&ds, data, NULL, &err) < 0 || fa_central_new(&c, ds, &opts, &err) < 0)
        goto cleanup;
    FA_LOG(FA_INFO, "train.start",
           "users=%d items=%d interactions=%zu test_users=%d params=%zu threads=%d blas=%s",
           fa_dataset_num_users(ds), fa_dataset_num_items(ds), fa_dataset_num_interactions(ds),
           fa_dataset_num_test_users(ds), fa_params_len(fa_central_params(c)), (int)threads,
           fa_vec_blas_core());
    for (int e = 1; e <= opts.epochs; e++) {
        fa_eval_result res;
        double loss, secs, eval_secs;
        uint64_t t0 = fa_now_ns(), t1;

        if (fa_central_epoch(&loss, c, &err) < 0)
            goto cleanup;
        t1 = fa_now_ns();
        if (fa_eval_dataset(&res, fa_central_params(c), fa_central_users(c), ds, &err) < 0)
            goto cleanup;
        secs = (double)(t1 - t0) * 1e-9;
        eval_secs = (double)(fa_now_ns() - t1) * 1e-9;
        total_s += secs;
        if (res.hr10 > best_hr) {
            best_hr = res.hr10;
            best_ndcg = res.ndcg10;
            best_epoch = e;
        }
        printf("{\"epoch\":%d,\"loss\":%.6f,\"hr10\":%.4f,\"ndcg10\":%.4f,\"seconds\":%.3f,"
               "\"eval_seconds\":%.3f,\"samples\":%zu}\n",
               e, loss, res.hr10, res.ndcg10, secs, eval_secs, fa_central_samples(c));
        if (fflush(stdout) != 0) {
            fa_fail(&err, FA_EINTERNAL, "cannot write to standard output");
            goto cleanup;
        }
    }
    FA_LOG(FA_INFO, "train.done", "best_hr10=%.4f best_ndcg10=%.4f best_epoch=%d seconds=%.1f",
           best_hr, best_ndcg, best_epoch, total_s);
    status = 0;
cleanup:
    if (status != 0)
        fprintf(stderr, "fedagg: %s\n", err.msg);
    fa_central_free(c);
    fa_dataset_free(ds);
    return status;
}
