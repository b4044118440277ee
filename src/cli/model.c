/*
 * fedagg model: snapshot tools (init, inspect). Runs on the main thread only.
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

static const char MODEL_USAGE[] =
    "usage: fedagg model init --items N --seed S --out DIR [--version V]\n"
    "                         [--model ncf|als] [--factors F]\n"
    "       fedagg model inspect FILE.safetensors\n"
    "\n"
    "init     writes DIR/model.safetensors, DIR/model.json and DIR/" FA_SNAPSHOT_TFJS_WEIGHTS "\n"
    "         for a freshly initialised model of N items (NCF unless --model als, with F\n"
    "         factors, default 16) and prints a JSON summary\n"
    "inspect  checks a safetensors snapshot and prints its metadata and sha256\n";

/* ---- helpers ------------------------------------------------------------------------------- */

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
    int64_t items = -1, seed = -1, version = 0, factors = 16;
    fa_model_kind kind = FA_MODEL_NCF;
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
            if (fa_cli__opt_i64(&items, a, v, 1, FA_PARAMS_MAX_ITEMS) < 0)
                return 2;
        } else if (strcmp(a, "--seed") == 0) {
            if (fa_cli__opt_i64(&seed, a, v, 0, INT64_MAX) < 0)
                return 2;
        } else if (strcmp(a, "--version") == 0) {
            if (fa_cli__opt_i64(&version, a, v, 0, INT64_MAX) < 0)
                return 2;
        } else if (strcmp(a, "--factors") == 0) {
            if (fa_cli__opt_i64(&factors, a, v, 1, FA_ALS_MAX_FACTORS) < 0)
                return 2;
        } else if (strcmp(a, "--model") == 0 && v != NULL && fa_model_kind_parse(&kind, v) == 0) {
            continue;
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
    if (fa_params_new_model(&p, kind, (size_t)items, (size_t)factors, &err) < 0)
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
