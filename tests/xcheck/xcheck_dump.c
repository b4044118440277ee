/*
 * Writes one model and one batch for the cross-checks against PyTorch and
 * TensorFlow.js: OUTDIR/model.safetensors, OUTDIR/model.json +
 * group1-shard1of1.bin (TF.js file form), OUTDIR/model_single.json (TF.js
 * single-response form) and OUTDIR/case.json with the inputs and C's
 * logits, losses and gradients (floats printed exactly, %.17g).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/util.h"
#include "model/ncf.h"
#include "model/params.h"
#include "model/rng.h"
#include "model/snapshot.h"

#define N_ITEMS 30
#define BATCH   16
#define D       64

static json_t *floats(const float *x, size_t n)
{
    json_t *a = json_array();

    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_real((double)x[i]));
    return a;
}

static int write_file(const char *dir, const char *name, const void *data, size_t len)
{
    char path[4096];
    fa_error err = FA_ERROR_INIT;

    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path) ||
        fa_file_write(path, data, len, 0644, 0, &err) < 0) {
        fprintf(stderr, "xcheck_dump: cannot write %s: %s\n", name, err.msg);
        return -1;
    }
    return 0;
}

/* Forward + loss + backward of the batch; returns a JSON object with everything. */
static json_t *run(fa_ncf *ws, const fa_params *p, const float *users, const int32_t *items,
                   const float *targets, int mse)
{
    size_t len = fa_params_len(p),
           dense_off = fa_params_tensor(p, FA_TENSOR_DENSE_1_KERNEL)->offset;
    float logits[BATCH], dl[BATCH];
    float *g = calloc(len, sizeof(float)), *gu = calloc(BATCH * D, sizeof(float));
    json_t *out = json_object(), *grads = json_object();
    double loss;

    for (int i = 0; i < BATCH; i++) {
        memcpy(fa_ncf_input(ws) + i * 128, users + i * D, D * sizeof(float));
        memcpy(fa_ncf_input(ws) + i * 128 + D, fa_params_item_row(p, (size_t)items[i]),
               D * sizeof(float));
    }
    fa_ncf_forward(logits, ws, fa_params_dense(p), BATCH);
    loss = mse ? fa_ncf_loss_mse(dl, logits, targets, BATCH)
               : fa_ncf_loss_bce(dl, logits, targets, BATCH);
    fa_ncf_backward(g + dense_off, ws, fa_params_dense(p), dl, BATCH);
    for (int i = 0; i < BATCH; i++) {
        const float *dx = fa_ncf_input_grad(ws) + i * 128;
        memcpy(gu + i * D, dx, D * sizeof(float));
        for (int j = 0; j < D; j++)
            g[(size_t)items[i] * D + (size_t)j] += dx[D + j];
    }
    for (int t = 0; t < FA_TENSOR_COUNT; t++) {
        const fa_tensor_spec *s = fa_params_tensor(p, (fa_tensor_id)t);
        json_object_set_new(grads, s->name, floats(g + s->offset, s->count));
    }
    json_object_set_new(grads, "user_vec", floats(gu, BATCH * D));
    json_object_set_new(out, "targets", floats(targets, BATCH));
    json_object_set_new(out, "logits", floats(logits, BATCH));
    json_object_set_new(out, "loss", json_real(loss));
    json_object_set_new(out, "grads", grads);
    free(g);
    free(gu);
    return out;
}

int main(int argc, char **argv)
{
    fa_params *p = NULL;
    fa_ncf *ws = NULL;
    fa_error err = FA_ERROR_INIT;
    fa_snapshot_meta meta = {4, 3, 0.75, 1e-6, 0, {0}};
    float users[BATCH * D], labels[BATCH], ratings[BATCH];
    int32_t items[BATCH];
    unsigned char *st = NULL, *bin = NULL;
    char *mj = NULL, *single = NULL, *case_text = NULL;
    size_t st_len, bin_len, mj_len, single_len;
    json_t *c = NULL, *items_json;
    fa_rng r;
    float *theta;
    int status = 1;

    if (argc != 2) {
        fprintf(stderr, "usage: xcheck_dump OUTDIR\n");
        return 2;
    }
    (void)mkdir(argv[1], 0755);
    if (fa_params_new(&p, N_ITEMS, &err) < 0 || fa_ncf_new(&ws, BATCH, &err) < 0)
        goto cleanup;
    fa_params_init_random(p, 5);
    /* Larger embeddings and non-zero biases than a fresh model, so every unit is exercised. */
    theta = fa_params_data(p);
    fa_rng_init(&r, 17, 0);
    for (size_t i = 0; i < (size_t)N_ITEMS * D; i++)
        theta[i] = (float)(0.5 * fa_rng_normal(&r));
    for (int t = FA_TENSOR_DENSE_1_BIAS; t < FA_TENSOR_COUNT; t += 2) {
        const fa_tensor_spec *s = fa_params_tensor(p, (fa_tensor_id)t);
        for (size_t i = 0; i < s->count; i++)
            theta[s->offset + i] = (float)(0.1 * fa_rng_normal(&r));
    }
    for (int i = 0; i < BATCH * D; i++)
        users[i] = (float)(0.5 * fa_rng_normal(&r));
    items_json = json_array();
    for (int i = 0; i < BATCH; i++) {
        items[i] = (int32_t)fa_rng_below(&r, N_ITEMS / 2); /* repeated rows add up */
        labels[i] = (float)(i % 2);
        ratings[i] = (float)(1 + fa_rng_below(&r, 5));
        json_array_append_new(items_json, json_integer(items[i]));
    }

    c = json_object();
    json_object_set_new(c, "num_items", json_integer(N_ITEMS));
    json_object_set_new(c, "batch", json_integer(BATCH));
    json_object_set_new(c, "items", items_json);
    json_object_set_new(c, "user_vecs", floats(users, BATCH * D));
    json_object_set_new(c, "bce", run(ws, p, users, items, labels, 0));
    json_object_set_new(c, "mse", run(ws, p, users, items, ratings, 1));
    json_object_set_new(c, "meta",
                        json_pack("{s:I,s:I,s:f,s:f}", "version", (json_int_t)4, "parent_version",
                                  (json_int_t)3, "epsilon", 0.75, "delta", 1e-6));
    case_text = json_dumps(c, JSON_COMPACT | JSON_REAL_PRECISION(17));
    if (case_text == NULL)
        goto cleanup;

    if (fa_snapshot_safetensors(&st, &st_len, p, &meta, &err) < 0 ||
        fa_snapshot_tfjs_model_json(&mj, &mj_len, p, &meta, &err) < 0 ||
        fa_snapshot_weights(&bin, &bin_len, p, &err) < 0 ||
        fa_snapshot_tfjs_json(&single, &single_len, p, &meta, &err) < 0)
        goto cleanup;
    if (write_file(argv[1], "model.safetensors", st, st_len) < 0 ||
        write_file(argv[1], "model.json", mj, mj_len) < 0 ||
        write_file(argv[1], FA_SNAPSHOT_TFJS_WEIGHTS, bin, bin_len) < 0 ||
        write_file(argv[1], "model_single.json", single, single_len) < 0 ||
        write_file(argv[1], "case.json", case_text, strlen(case_text)) < 0)
        goto cleanup;
    status = 0;
cleanup:
    if (status != 0 && err.msg[0] != '\0')
        fprintf(stderr, "xcheck_dump: %s\n", err.msg);
    free(st);
    free(bin);
    free(mj);
    free(single);
    free(case_text);
    json_decref(c);
    fa_ncf_free(ws);
    fa_params_free(p);
    return status;
}
