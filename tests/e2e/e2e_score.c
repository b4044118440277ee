/*
 * Scores a published snapshot with the C forward pass, for the end-to-end
 * comparison with TensorFlow.js and PyTorch:
 *
 *   e2e_score MODEL.safetensors CASE.json OUT.json
 *
 * CASE.json is {"users": [[64 floats], ...], "items": [row, ...]}; OUT.json
 * gets {"version": v, "scores": [[logit per item] per user]} (floats printed
 * exactly, %.17g). The snapshot goes through the server's strict reader.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/util.h"
#include "model/als.h"
#include "model/ncf.h"
#include "model/params.h"
#include "model/snapshot.h"

#define MAX_FILE_BYTES ((size_t)1 << 30)

/* Reads the item rows and checks them against the model; returns the count or -1. */
static long read_items(int32_t **rows_out, const json_t *items, size_t num_items)
{
    size_t n = json_array_size(items);
    int32_t *rows;

    *rows_out = NULL;
    if (n == 0 || n > FA_NCF_MAX_BATCH || (rows = malloc(n * sizeof(*rows))) == NULL)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(items, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            (size_t)json_integer_value(v) >= num_items) {
            free(rows);
            return -1;
        }
        rows[i] = (int32_t)json_integer_value(v);
    }
    *rows_out = rows;
    return (long)n;
}

/* Copies one user vector of exactly dim numbers; returns 0 or -1. */
static int read_user(float *out, const json_t *user, size_t dim)
{
    if (json_array_size(user) != dim)
        return -1;
    for (size_t j = 0; j < dim; j++) {
        const json_t *v = json_array_get(user, j);
        if (!json_is_number(v))
            return -1;
        out[j] = (float)json_number_value(v);
    }
    return 0;
}

int main(int argc, char **argv)
{
    char *st = NULL, *case_text = NULL, *out_text = NULL;
    size_t st_len = 0, case_len = 0;
    fa_params *p = NULL;
    fa_snapshot_meta meta = FA_SNAPSHOT_META_INIT;
    fa_ncf *ws = NULL;
    fa_error err = FA_ERROR_INIT;
    json_t *c = NULL, *out = NULL, *scores;
    json_error_t jerr;
    int32_t *rows = NULL;
    float *logits = NULL, user[FA_NCF_EMBED_DIM];
    long n_items;
    const json_t *users;
    int status = 1;

    if (argc != 4) {
        fprintf(stderr, "usage: e2e_score MODEL.safetensors CASE.json OUT.json\n");
        return 2;
    }
    if (fa_file_read(&st, &st_len, argv[1], MAX_FILE_BYTES, &err) < 0 ||
        fa_snapshot_safetensors_parse(&p, &meta, (const unsigned char *)st, st_len, 0, &err) < 0 ||
        fa_file_read(&case_text, &case_len, argv[2], MAX_FILE_BYTES, &err) < 0)
        goto cleanup;
    if ((c = json_loadb(case_text, case_len, 0, &jerr)) == NULL) {
        fprintf(stderr, "e2e_score: %s: %s\n", argv[2], jerr.text);
        goto cleanup;
    }
    users = json_object_get(c, "users");
    n_items = read_items(&rows, json_object_get(c, "items"), fa_params_num_items(p));
    if (!json_is_array(users) || n_items < 0) {
        fprintf(stderr, "e2e_score: %s needs users [[64 numbers]...] and valid item rows\n",
                argv[2]);
        goto cleanup;
    }
    if (fa_ncf_new(&ws, (size_t)n_items, &err) < 0 ||
        (logits = malloc((size_t)n_items * sizeof(*logits))) == NULL)
        goto cleanup;
    out = json_pack("{s:I,s:[]}", "version", (json_int_t)meta.version, "scores");
    scores = json_object_get(out, "scores");
    for (size_t u = 0; u < json_array_size(users); u++) {
        json_t *row = json_array();
        /* ALS users are F-vectors scored by dot products (model/als.h). */
        int als = fa_params_kind(p) == FA_MODEL_ALS;
        size_t dim = als ? fa_params_factors(p) : FA_NCF_EMBED_DIM;
        if (read_user(user, json_array_get(users, u), dim) < 0) {
            json_decref(row);
            fprintf(stderr, "e2e_score: user %zu is not %zu numbers\n", u, dim);
            goto cleanup;
        }
        if (als)
            fa_als_scores(logits, p, user, rows, (size_t)n_items);
        else
            fa_ncf_predict(logits, ws, p, user, rows, (size_t)n_items);
        for (long i = 0; i < n_items; i++)
            json_array_append_new(row, json_real((double)logits[i]));
        json_array_append_new(scores, row);
    }
    if ((out_text = json_dumps(out, JSON_COMPACT | JSON_REAL_PRECISION(17))) == NULL ||
        fa_file_write(argv[3], out_text, strlen(out_text), 0644, 0, &err) < 0)
        goto cleanup;
    status = 0;
cleanup:
    if (status != 0 && err.msg[0] != '\0')
        fprintf(stderr, "e2e_score: %s\n", err.msg);
    free(out_text);
    json_decref(out);
    json_decref(c);
    free(logits);
    free(rows);
    fa_ncf_free(ws);
    fa_params_free(p);
    free(case_text);
    free(st);
    return status;
}
