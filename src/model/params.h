/*
 * The NCF global parameter vector (He et al. 2017, MLP tower): one flat
 * float32 array whose tensors, names and order are shared by every snapshot
 * format and by device updates. An fa_params owns its array; one thread may
 * change it at a time, any number may read an fa_params nobody changes.
 *
 * Order (kernels are [in, out], row-major, as in Keras):
 *   item_embedding/embeddings [num_items, 64]   row r holds the item with id r + 1
 *   dense_1/kernel [128, 128]  dense_1/bias [128]
 *   dense_2/kernel [128, 64]   dense_2/bias [64]
 *   dense_3/kernel [64, 32]    dense_3/bias [32]
 *   out/kernel [32, 1]         out/bias [1]
 * The MLP input is concat(user_vec[64], item_embedding[row]). The user
 * embedding belongs to the device and is never part of this vector.
 *
 * The second kind of model, private alternating least squares (docs/model.md,
 * "ALS"), has two tensors, F = the number of factors (1..64):
 *   item_factors/embeddings [num_items, F]  row r holds the item with id r + 1
 *   user_gram/embeddings [F, F]             the released mean Gram matrix of the
 *                                           user vectors the rows were solved with
 * Its device updates have the same layout (model/local.h).
 */
#ifndef FA_MODEL_PARAMS_H
#define FA_MODEL_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define FA_NCF_EMBED_DIM 64  /* user and item embedding width */
#define FA_NCF_INPUT_DIM 128 /* MLP input: user_vec then item row */
#define FA_NCF_H1        128
#define FA_NCF_H2        64
#define FA_NCF_H3        32

/* Floats of the MLP (dense_1/kernel .. out/bias), which follow the embedding. */
#define FA_NCF_DENSE_LEN                                                                           \
    (FA_NCF_INPUT_DIM * FA_NCF_H1 + FA_NCF_H1 + FA_NCF_H1 * FA_NCF_H2 + FA_NCF_H2 +                \
     FA_NCF_H2 * FA_NCF_H3 + FA_NCF_H3 + FA_NCF_H3 + 1)

/* Largest item embedding accepted anywhere (256 MiB of float32). */
#define FA_PARAMS_MAX_ITEMS 1000000

/* What the parameter vector holds. */
typedef enum fa_model_kind {
    FA_MODEL_NCF = 1, /* the NCF MLP tower above */
    FA_MODEL_ALS = 2, /* item factors solved by private alternating least squares */
} fa_model_kind;

/* Largest factor count of an ALS model (it fits a device's 64-float user vector). */
#define FA_ALS_MAX_FACTORS FA_NCF_EMBED_DIM

/* The tensors of an ALS model, in order. */
#define FA_TENSOR_ALS_ITEM_FACTORS 0
#define FA_TENSOR_ALS_USER_GRAM    1
#define FA_TENSOR_ALS_COUNT        2

typedef enum fa_tensor_id {
    FA_TENSOR_ITEM_EMBEDDING = 0,
    FA_TENSOR_DENSE_1_KERNEL,
    FA_TENSOR_DENSE_1_BIAS,
    FA_TENSOR_DENSE_2_KERNEL,
    FA_TENSOR_DENSE_2_BIAS,
    FA_TENSOR_DENSE_3_KERNEL,
    FA_TENSOR_DENSE_3_BIAS,
    FA_TENSOR_OUT_KERNEL,
    FA_TENSOR_OUT_BIAS,
    FA_TENSOR_COUNT
} fa_tensor_id;

/* One tensor of the layout. */
typedef struct fa_tensor_spec {
    const char *name; /* "dense_1/kernel"; static storage */
    int ndim;         /* 1 (bias) or 2 */
    size_t shape[2];  /* shape[1] is 0 when ndim is 1 */
    size_t offset;    /* floats from the start of the global vector */
    size_t count;     /* floats */
} fa_tensor_spec;

typedef struct fa_params fa_params;

/*
 * Fills specs[FA_TENSOR_COUNT] with the layout for num_items items and
 * returns the total float count, or 0 when num_items is outside
 * 1..FA_PARAMS_MAX_ITEMS.
 */
size_t fa_params_layout(fa_tensor_spec *specs, size_t num_items);

/* Floats of the global vector for num_items items (0 when out of range). */
size_t fa_params_count(size_t num_items);

/*
 * Allocates a zeroed NCF parameter vector for num_items items, owned by the
 * caller (fa_params_free). FA_EINVAL for a bad num_items, FA_ENOMEM.
 */
int fa_params_new(fa_params **out, size_t num_items, fa_error *err) FA_MUST_CHECK;

/*
 * The model a configuration asks for: "ncf" or "als" (FA_EINVAL otherwise),
 * and its lower-case name.
 */
int fa_model_kind_parse(fa_model_kind *out, const char *name) FA_MUST_CHECK;
const char *fa_model_kind_name(fa_model_kind kind);

/*
 * Floats of a model of the given kind (factors is ignored for NCF and must
 * be 1..FA_ALS_MAX_FACTORS for ALS); 0 when out of range. When specs is not
 * NULL it receives the layout (FA_TENSOR_COUNT entries are enough for every
 * kind) and *ntensors_out, when not NULL, the number of tensors.
 */
size_t fa_params_layout_of(fa_tensor_spec *specs, int *ntensors_out, fa_model_kind kind,
                           size_t num_items, size_t factors);

/*
 * Allocates a zeroed parameter vector of the given kind, owned by the caller.
 * FA_EINVAL for a bad kind, num_items or factors; FA_ENOMEM.
 */
int fa_params_new_model(fa_params **out, fa_model_kind kind, size_t num_items, size_t factors,
                        fa_error *err) FA_MUST_CHECK;

/* A copy of src owned by the caller. FA_ENOMEM. */
int fa_params_clone(fa_params **out, const fa_params *src, fa_error *err) FA_MUST_CHECK;

/* Frees p; NULL-safe. */
void fa_params_free(fa_params *p);

size_t fa_params_num_items(const fa_params *p);

fa_model_kind fa_params_kind(const fa_params *p);

/* Width of an item row: 64 for NCF, F for ALS. */
size_t fa_params_factors(const fa_params *p);

/* Tensors of the layout: FA_TENSOR_COUNT for NCF, FA_TENSOR_ALS_COUNT for ALS. */
int fa_params_num_tensors(const fa_params *p);

/* Whether a and b have the same kind, item count and factor count. */
int fa_params_same_shape(const fa_params *a, const fa_params *b);

/* Floats in the global vector. */
size_t fa_params_len(const fa_params *p);

/* The global vector (fa_params_len floats), borrowed from p. */
float *fa_params_data(fa_params *p);
const float *fa_params_cdata(const fa_params *p);

/* The layout entry of tensor id (below fa_params_num_tensors), borrowed from p. */
const fa_tensor_spec *fa_params_tensor(const fa_params *p, fa_tensor_id id);

/* NCF only: the MLP part (FA_NCF_DENSE_LEN floats from dense_1/kernel on), borrowed. */
const float *fa_params_dense(const fa_params *p);

/* The embedding row (fa_params_factors floats) of item row `row` (0-based), borrowed. */
const float *fa_params_item_row(const fa_params *p, size_t row);

/*
 * Deterministic initialisation from seed: Glorot-uniform kernels (Glorot and
 * Bengio 2010, limit sqrt(6 / (fan_in + fan_out))), zero biases and
 * N(0, 0.01^2) item embeddings, drawn in layout order. ALS: N(0, 0.01^2)
 * item factors and a zero Gram matrix.
 */
void fa_params_init_random(fa_params *p, uint64_t seed);

/* A device's initial user vector (64 floats): N(0, 0.01^2) from seed. */
void fa_params_init_user(float *user_vec, uint64_t seed);

#endif
