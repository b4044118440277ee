/*
 * fedagg model (snapshot tools) and fedagg train (the centralized baseline).
 * Runs on the main thread only; BLAS threads are set from --threads.
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

#define PATH_BYTES         4096
#define MAX_SNAPSHOT_BYTES ((size_t)1 << 30)
#define MAX_THREADS        256

static const char MODEL_USAGE[] =
    "usage: fedagg model init --items N --seed S --out DIR [--version V]\n"
    "       fedagg model inspect FILE.safetensors\n"
    "\n"
    "init     writes DIR/model.safetensors, DIR/model.json and DIR/" FA_SNAPSHOT_TFJS_WEIGHTS "\n"
    "         for a freshly initialised NCF model of N items and prints a JSON summary\n"
    "inspect  checks a safetensors snapshot and prints its metadata and sha256\n";

static const char TRAIN_USAGE[] =
    "usage: fedagg train --data DIR --epochs E --seed S [--batch B] [--lr LR]\n"
    "                    [--optimizer adam|sgd] [--negatives K] [--loss bce|mse] [--threads N]\n"
    "\n"
    "Trains the NCF model on all users of DIR/loo_train.tsv at once and prints one JSON line\n"
    "per epoch with the loss and HR@10 / NDCG@10 on DIR/loo_test.tsv.\n"
    "Defaults: --batch 256 --lr 0.001 --optimizer adam --negatives 4 --loss bce --threads 1\n";

/* ---- helpers ------------------------------------------------------------------------------- */

static int opt_i64(int64_t *out, const char *name, const char *value, int64_t lo, int64_t hi)
{
    if (value == NULL || fa_parse_i64(out, value) < 0 || *out < lo || *out > hi) {
        fprintf(stderr, "fedagg: %s needs an integer in %" PRId64 "..%" PRId64 "\n", name, lo, hi);
        return -1;
    }
    return 0;
}

static int opt_double(double *out, const char *name, const char *value)
{
    if (value == NULL || fa_parse_double(out, value) < 0) {
        fprintf(stderr, "fedagg: %s needs a number\n", name);
        return -1;
    }
    return 0;
}

static int join(char *out, size_t size, const char *dir, const char *file)
{
    return snprintf(out, size, "%s/%s", dir, file) < (int)size ? 0 : -1;
}

static void sha_hex(char hex[2 * FA_SNAPSHOT_SHA256_BYTES + 1],
                    const unsigned char sha[FA_SNAPSHOT_SHA256_BYTES])
{
    fa_hex_encode(hex, sha, FA_SNAPSHOT_SHA256_BYTES);
}

/* ---- fedagg model init --------------------------------------------------------------------- */

static int model_init(int argc, char **argv)
{
    int64_t items = -1, seed = -1, version = 0;
    const char *dir = NULL;
    char p_st[PATH_BYTES], p_json[PATH_BYTES], p_bin[PATH_BYTES];
    char h_st[2 * FA_SNAPSHOT_SHA256_BYTES + 1], h_bin[2 * FA_SNAPSHOT_SHA256_BYTES + 1];
    unsigned char sha[FA_SNAPSHOT_SHA256_BYTES];
    fa_snapshot_meta meta = FA_SNAPSHOT_META_INIT;
    fa_error err = FA_ERROR_INIT;
    fa_params *p = NULL;
    unsigned char *st = NULL, *bin = NULL;
    char *mj = NULL;
    size_t st_len = 0, bin_len = 0, mj_len = 0;
    json_t *summary;
    int status = 1;

    /* Every option takes one value. */
    for (int i = 2; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--items") == 0) {
            if (opt_i64(&items, a, v, 1, FA_PARAMS_MAX_ITEMS) < 0)
                return 2;
        } else if (strcmp(a, "--seed") == 0) {
            if (opt_i64(&seed, a, v, 0, INT64_MAX) < 0)
                return 2;
        } else if (strcmp(a, "--version") == 0) {
            if (opt_i64(&version, a, v, 0, INT64_MAX) < 0)
                return 2;
        } else if (strcmp(a, "--out") == 0 && v != NULL) {
            dir = v;
        } else {
            fputs(MODEL_USAGE, stderr);
            return 2;
        }
    }
    if (items < 0 || seed < 0 || dir == NULL) {
        fputs(MODEL_USAGE, stderr);
        return 2;
    }
    if (join(p_st, sizeof(p_st), dir, "model.safetensors") < 0 ||
        join(p_json, sizeof(p_json), dir, "model.json") < 0 ||
        join(p_bin, sizeof(p_bin), dir, FA_SNAPSHOT_TFJS_WEIGHTS) < 0) {
        fprintf(stderr, "fedagg: output directory path is too long\n");
        return 2;
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "fedagg: cannot create %s: %s\n", dir, strerror(errno));
        return 1;
    }
    meta.version = version;
    if (fa_params_new(&p, (size_t)items, &err) < 0)
        goto cleanup;
    fa_params_init_random(p, (uint64_t)seed);
    if (fa_snapshot_safetensors(&st, &st_len, p, &meta, &err) < 0 ||
        fa_snapshot_tfjs_model_json(&mj, &mj_len, p, &meta, &err) < 0 ||
        fa_snapshot_weights(&bin, &bin_len, p, &err) < 0 ||
        fa_file_write(p_st, st, st_len, 0644, 0, &err) < 0 ||
        fa_file_write(p_bin, bin, bin_len, 0644, 0, &err) < 0 ||
        fa_file_write(p_json, mj, mj_len, 0644, 0, &err) < 0 ||
        fa_snapshot_sha256(sha, st, st_len, &err) < 0)
        goto cleanup;
    sha_hex(h_st, sha);
    if (fa_snapshot_sha256(sha, bin, bin_len, &err) < 0)
        goto cleanup;
    sha_hex(h_bin, sha);
    summary =
        json_pack("{s:I,s:I,s:I,s:I,s:s,s:I,s:s,s:s,s:s,s:s}", "items", (json_int_t)items, "params",
                  (json_int_t)fa_params_len(p), "seed", (json_int_t)seed, "version",
                  (json_int_t)version, "safetensors", p_st, "bytes", (json_int_t)st_len, "sha256",
                  h_st, "tfjs", p_json, "tfjs_weights", p_bin, "tfjs_weights_sha256", h_bin);
    if (summary == NULL ||
        fa_cli__print_json(summary, JSON_COMPACT | JSON_REAL_PRECISION(17)) != 0) {
        fa_fail(&err, FA_ENOMEM, "cannot print the summary");
        goto cleanup;
    }
    status = 0;
cleanup:
    if (status != 0)
        fprintf(stderr, "fedagg: %s\n", err.msg);
    free(st);
    free(bin);
    free(mj);
    fa_params_free(p);
    return status;
}

/* ---- fedagg model inspect ------------------------------------------------------------------ */

static int model_inspect(int argc, char **argv)
{
    fa_error err = FA_ERROR_INIT;
    fa_snapshot_meta meta;
    fa_params *p = NULL;
    char *buf = NULL;
    size_t len = 0;
    unsigned char sha[FA_SNAPSHOT_SHA256_BYTES];
    char hex[2 * FA_SNAPSHOT_SHA256_BYTES + 1];
    json_t *summary;
    int status = 1;

    if (argc != 3 || argv[2][0] == '-') {
        fputs(MODEL_USAGE, stderr);
        return 2;
    }
    if (fa_file_read(&buf, &len, argv[2], MAX_SNAPSHOT_BYTES, &err) < 0 ||
        fa_snapshot_safetensors_parse(&p, &meta, (const unsigned char *)buf, len, 0, &err) < 0 ||
        fa_snapshot_sha256(sha, buf, len, &err) < 0)
        goto cleanup;
    sha_hex(hex, sha);
    summary = json_pack(
        "{s:s,s:I,s:I,s:o,s:f,s:f,s:I,s:I,s:f,s:s}", "file", argv[2], "bytes", (json_int_t)len,
        "version", (json_int_t)meta.version, "parent_version",
        meta.parent_version < 0 ? json_null() : json_integer((json_int_t)meta.parent_version),
        "epsilon", meta.epsilon, "delta", meta.delta, "items", (json_int_t)fa_params_num_items(p),
        "params", (json_int_t)fa_params_len(p), "l2_norm",
        fa_vec_norm2(fa_params_cdata(p), fa_params_len(p)), "sha256", hex);
    if (summary == NULL ||
        fa_cli__print_json(summary, JSON_COMPACT | JSON_REAL_PRECISION(17)) != 0) {
        fa_fail(&err, FA_ENOMEM, "cannot print the summary");
        goto cleanup;
    }
    status = 0;
cleanup:
    if (status != 0)
        fprintf(stderr, "fedagg: %s\n", err.msg);
    free(buf);
    fa_params_free(p);
    return status;
}

int fa_cmd_model(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "init") == 0)
        return model_init(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "inspect") == 0)
        return model_inspect(argc, argv);
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(MODEL_USAGE, stdout);
        return 0;
    }
    fputs(MODEL_USAGE, stderr);
    return 2;
}

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
            if (opt_i64(&epochs, a, v, 1, 100000) < 0)
                return 2;
        } else if (strcmp(a, "--seed") == 0) {
            if (opt_i64(&seed, a, v, 0, INT64_MAX) < 0)
                return 2;
        } else if (strcmp(a, "--batch") == 0) {
            if (opt_i64(&v64, a, v, 1, 65536) < 0)
                return 2;
            opts.batch = (size_t)v64;
        } else if (strcmp(a, "--lr") == 0) {
            if (opt_double(&opts.lr, a, v) < 0)
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
            if (opt_i64(&v64, a, v, 0, FA_TRAIN_MAX_NEGATIVES) < 0)
                return 2;
            opts.negatives = (int)v64;
        } else if (strcmp(a, "--threads") == 0) {
            if (opt_i64(&threads, a, v, 1, MAX_THREADS) < 0)
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
