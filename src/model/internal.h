/*
 * Shared between the units of the model module only; no other module
 * includes this header. Same thread rules as the callers: one thread per
 * object.
 */
#ifndef FA_MODEL_INTERNAL_H
#define FA_MODEL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/bytes.h"
#include "core/error.h"
#include "model/rng.h"

typedef struct fa_dataset fa_dataset;

/* ---- memory --------------------------------------------------------------------------------- */

/* Zeroed, 64-byte aligned array of n floats (free()); NULL on overflow or out of memory. */
float *fa_model__alloc_floats(size_t n);

/* ---- training helpers (train.c) ------------------------------------------------------------- */

/* Adam step constants for one step t (Kingma and Ba 2015, Algorithm 1). */
typedef struct fa_adam_step {
    float lr_t;         /* lr / (1 - beta1^t) */
    float beta1;        /* first-moment decay */
    float beta2;        /* second-moment decay */
    float inv_sqrt_bc2; /* 1 / sqrt(1 - beta2^t) */
    float eps;          /* added to the bias-corrected sqrt(v) */
} fa_adam_step;

/* Fills the constants of step t (1-based). */
void fa_train__adam_prepare(fa_adam_step *st, double lr, double beta1, double beta2, double eps,
                            uint64_t t);

/* One Adam update of n parameters p from gradient g with moments m and v. */
void fa_train__adam(float *p, float *m, float *v, const float *g, size_t n, const fa_adam_step *st);

/* p -= lr * g over n parameters. */
void fa_train__sgd(float *p, const float *g, size_t n, float lr);

/*
 * A uniform draw from the items 0..num_items-1 that are not in
 * sorted[0..n-1] (strictly increasing), or -1 when there is none. O(log n).
 */
int32_t fa_train__negative(fa_rng *rng, const int32_t *sorted, size_t n, size_t num_items);

/* ---- dataset builder (data.c) --------------------------------------------------------------- */

/* One training interaction before it is grouped by user; line is for error messages. */
typedef struct fa_rating_row {
    int32_t user;  /* 0-based user row */
    int32_t item;  /* 0-based item row */
    float rating;  /* as given */
    uint32_t line; /* 1-based source line, 0 when generated */
} fa_rating_row;

/*
 * Builds a dataset from rows (sorted in place) and n_test test lines of
 * 1 + 1 + 99 ints each (user row, test item, negatives; 0-based). Rejects
 * duplicate pairs and inconsistent test lines with FA_EINVAL naming the line.
 */
int fa_data__build(fa_dataset **out, int32_t num_users, int32_t num_items, fa_rating_row *rows,
                   size_t n_rows, const int32_t *test, const uint32_t *test_lines, size_t n_test,
                   fa_error *err) FA_MUST_CHECK;

/* ---- snapshots (snapshot.c, snapshot_tfjs.c) ------------------------------------------------ */

typedef struct json_t json_t;
typedef struct fa_snapshot_meta fa_snapshot_meta;
typedef struct fa_tensor_spec fa_tensor_spec;

/* How snapshot JSON is dumped (jansson flags): compact, doubles round-trip. */
#define FA_SNAPSHOT__DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(17))

/* FA_EINVAL unless the version, parent version, epsilon and delta of m are sane. */
int fa_snapshot__check_meta(const fa_snapshot_meta *m, fa_error *err) FA_MUST_CHECK;

/* json_object_set_new / json_array_append_new: 0 or -1; the value is taken in every case. */
int fa_snapshot__put(json_t *obj, const char *key, json_t *value);
int fa_snapshot__append(json_t *arr, json_t *value);

/* The shape of s as a JSON array (new reference), or NULL out of memory. */
json_t *fa_snapshot__shape_json(const fa_tensor_spec *s);

#endif
