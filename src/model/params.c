#include "model/params.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/internal.h"
#include "model/rng.h"

/* Standard deviation of the initial embeddings (user and item). */
#define EMBED_INIT_STD 0.01

/* RNG streams, so that item and user initialisation never share draws. */
#define STREAM_PARAMS 1u
#define STREAM_USER   2u

struct fa_params {
    fa_model_kind kind;
    size_t num_items;
    size_t factors; /* item row width */
    int ntensors;
    size_t len; /* floats */
    fa_tensor_spec specs[FA_TENSOR_COUNT];
    float *data; /* [len], 64-byte aligned */
};

static const struct {
    const char *name;
    size_t rows, cols; /* cols 0: 1-D; rows 0: num_items */
} LAYOUT[FA_TENSOR_COUNT] = {
    {"item_embedding/embeddings", 0, FA_NCF_EMBED_DIM},
    {"dense_1/kernel", FA_NCF_INPUT_DIM, FA_NCF_H1},
    {"dense_1/bias", FA_NCF_H1, 0},
    {"dense_2/kernel", FA_NCF_H1, FA_NCF_H2},
    {"dense_2/bias", FA_NCF_H2, 0},
    {"dense_3/kernel", FA_NCF_H2, FA_NCF_H3},
    {"dense_3/bias", FA_NCF_H3, 0},
    {"out/kernel", FA_NCF_H3, 1},
    {"out/bias", 1, 0},
};

static void set_spec(fa_tensor_spec *s, size_t *off, const char *name, size_t rows, size_t cols)
{
    s->name = name;
    s->shape[0] = rows;
    s->shape[1] = cols;
    s->ndim = cols == 0 ? 1 : 2;
    s->count = s->ndim == 1 ? rows : rows * cols;
    s->offset = *off;
    *off += s->count;
}

size_t fa_params_layout_of(fa_tensor_spec *specs, int *ntensors_out, fa_model_kind kind,
                           size_t num_items, size_t factors)
{
    fa_tensor_spec local[FA_TENSOR_COUNT];
    size_t off = 0;
    int n = 0;

    if (specs == NULL)
        specs = local;
    if (num_items < 1 || num_items > FA_PARAMS_MAX_ITEMS)
        return 0;
    if (kind == FA_MODEL_NCF) {
        for (n = 0; n < FA_TENSOR_COUNT; n++)
            set_spec(&specs[n], &off, LAYOUT[n].name,
                     LAYOUT[n].rows == 0 ? num_items : LAYOUT[n].rows, LAYOUT[n].cols);
    } else if (kind == FA_MODEL_ALS) {
        if (factors < 1 || factors > FA_ALS_MAX_FACTORS)
            return 0;
        set_spec(&specs[n++], &off, "item_factors/embeddings", num_items, factors);
        set_spec(&specs[n++], &off, "user_gram/embeddings", factors, factors);
    } else {
        return 0;
    }
    if (ntensors_out != NULL)
        *ntensors_out = n;
    return off;
}

size_t fa_params_layout(fa_tensor_spec *specs, size_t num_items)
{
    return fa_params_layout_of(specs, NULL, FA_MODEL_NCF, num_items, 0);
}

size_t fa_params_count(size_t num_items)
{
    return fa_params_layout_of(NULL, NULL, FA_MODEL_NCF, num_items, 0);
}

int fa_model_kind_parse(fa_model_kind *out, const char *name)
{
    if (strcmp(name, "ncf") == 0)
        *out = FA_MODEL_NCF;
    else if (strcmp(name, "als") == 0)
        *out = FA_MODEL_ALS;
    else
        return FA_EINVAL;
    return FA_OK;
}

const char *fa_model_kind_name(fa_model_kind kind)
{
    return kind == FA_MODEL_ALS ? "als" : "ncf";
}

int fa_params_new(fa_params **out, size_t num_items, fa_error *err)
{
    return fa_params_new_model(out, FA_MODEL_NCF, num_items, FA_NCF_EMBED_DIM, err);
}

int fa_params_new_model(fa_params **out, fa_model_kind kind, size_t num_items, size_t factors,
                        fa_error *err)
{
    fa_params *p = NULL;
    int rc = FA_OK;

    *out = NULL;
    if (num_items < 1 || num_items > FA_PARAMS_MAX_ITEMS)
        return fa_fail(err, FA_EINVAL, "item count %zu is outside 1..%d", num_items,
                       FA_PARAMS_MAX_ITEMS);
    if (kind == FA_MODEL_NCF)
        factors = FA_NCF_EMBED_DIM;
    else if (kind != FA_MODEL_ALS)
        return fa_fail(err, FA_EINVAL, "unknown model kind %d", (int)kind);
    else if (factors < 1 || factors > FA_ALS_MAX_FACTORS)
        return fa_fail(err, FA_EINVAL, "factor count %zu is outside 1..%d", factors,
                       FA_ALS_MAX_FACTORS);
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        rc = fa_fail(err, FA_ENOMEM, "out of memory for model parameters");
        goto cleanup;
    }
    p->kind = kind;
    p->num_items = num_items;
    p->factors = factors;
    p->len = fa_params_layout_of(p->specs, &p->ntensors, kind, num_items, factors);
    p->data = fa_model__alloc_floats(p->len);
    if (p->data == NULL) {
        rc = fa_fail(err, FA_ENOMEM, "out of memory for %zu model parameters", p->len);
        goto cleanup;
    }
    *out = p;
    p = NULL;
cleanup:
    fa_params_free(p);
    return rc;
}

int fa_params_clone(fa_params **out, const fa_params *src, fa_error *err)
{
    int rc;

    if ((rc = fa_params_new_model(out, src->kind, src->num_items, src->factors, err)) < 0)
        return rc;
    memcpy((*out)->data, src->data, src->len * sizeof(float));
    return FA_OK;
}

void fa_params_free(fa_params *p)
{
    if (p == NULL)
        return;
    free(p->data);
    free(p);
}

size_t fa_params_num_items(const fa_params *p)
{
    return p->num_items;
}

fa_model_kind fa_params_kind(const fa_params *p)
{
    return p->kind;
}

size_t fa_params_factors(const fa_params *p)
{
    return p->factors;
}

int fa_params_num_tensors(const fa_params *p)
{
    return p->ntensors;
}

int fa_params_same_shape(const fa_params *a, const fa_params *b)
{
    return a->kind == b->kind && a->num_items == b->num_items && a->factors == b->factors;
}

size_t fa_params_len(const fa_params *p)
{
    return p->len;
}

float *fa_params_data(fa_params *p)
{
    return p->data;
}

const float *fa_params_cdata(const fa_params *p)
{
    return p->data;
}

const fa_tensor_spec *fa_params_tensor(const fa_params *p, fa_tensor_id id)
{
    return &p->specs[id];
}

const float *fa_params_dense(const fa_params *p)
{
    return p->data + p->specs[FA_TENSOR_DENSE_1_KERNEL].offset;
}

const float *fa_params_item_row(const fa_params *p, size_t row)
{
    return p->data + row * p->factors;
}

void fa_params_init_random(fa_params *p, uint64_t seed)
{
    fa_rng rng;

    fa_rng_init(&rng, seed, STREAM_PARAMS);
    if (p->kind == FA_MODEL_ALS) {
        const fa_tensor_spec *s = &p->specs[FA_TENSOR_ALS_ITEM_FACTORS];
        for (size_t j = 0; j < s->count; j++)
            p->data[s->offset + j] = (float)(EMBED_INIT_STD * fa_rng_normal(&rng));
        s = &p->specs[FA_TENSOR_ALS_USER_GRAM];
        memset(p->data + s->offset, 0, s->count * sizeof(float));
        return;
    }
    for (int i = 0; i < FA_TENSOR_COUNT; i++) {
        const fa_tensor_spec *s = &p->specs[i];
        float *w = p->data + s->offset;

        if (i == FA_TENSOR_ITEM_EMBEDDING) {
            for (size_t j = 0; j < s->count; j++)
                w[j] = (float)(EMBED_INIT_STD * fa_rng_normal(&rng));
        } else if (s->ndim == 2) {
            /* Glorot and Bengio 2010, eq. 16: U[-l, l] with l = sqrt(6 / (fan_in + fan_out)). */
            double limit = sqrt(6.0 / (double)(s->shape[0] + s->shape[1]));
            for (size_t j = 0; j < s->count; j++)
                w[j] = (float)(limit * (2.0 * fa_rng_uniform(&rng) - 1.0));
        } else {
            memset(w, 0, s->count * sizeof(float));
        }
    }
}

void fa_params_init_user(float *user_vec, uint64_t seed)
{
    fa_rng rng;

    fa_rng_init(&rng, seed, STREAM_USER);
    for (int j = 0; j < FA_NCF_EMBED_DIM; j++)
        user_vec[j] = (float)(EMBED_INIT_STD * fa_rng_normal(&rng));
}

float *fa_model__alloc_floats(size_t n)
{
    void *p = NULL;
    size_t bytes;

    if (n == 0)
        n = 1;
    if (n > SIZE_MAX / sizeof(float) - 64)
        return NULL;
    /* Round up so that the aligned size is a multiple of the alignment, as C11 asks. */
    bytes = (n * sizeof(float) + 63) & ~(size_t)63;
    if (posix_memalign(&p, 64, bytes) != 0)
        return NULL;
    memset(p, 0, bytes);
    return p;
}
