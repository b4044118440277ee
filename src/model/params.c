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
    size_t num_items;
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

size_t fa_params_layout(fa_tensor_spec *specs, size_t num_items)
{
    size_t off = 0;

    if (num_items < 1 || num_items > FA_PARAMS_MAX_ITEMS)
        return 0;
    for (int i = 0; i < FA_TENSOR_COUNT; i++) {
        fa_tensor_spec *s = &specs[i];
        s->name = LAYOUT[i].name;
        s->shape[0] = LAYOUT[i].rows == 0 ? num_items : LAYOUT[i].rows;
        s->shape[1] = LAYOUT[i].cols;
        s->ndim = LAYOUT[i].cols == 0 ? 1 : 2;
        s->count = s->ndim == 1 ? s->shape[0] : s->shape[0] * s->shape[1];
        s->offset = off;
        off += s->count;
    }
    return off;
}

size_t fa_params_count(size_t num_items)
{
    fa_tensor_spec specs[FA_TENSOR_COUNT];

    return fa_params_layout(specs, num_items);
}

int fa_params_new(fa_params **out, size_t num_items, fa_error *err)
{
    fa_params *p = NULL;
    int rc = FA_OK;

    *out = NULL;
    if (num_items < 1 || num_items > FA_PARAMS_MAX_ITEMS)
        return fa_fail(err, FA_EINVAL, "item count %zu is outside 1..%d", num_items,
                       FA_PARAMS_MAX_ITEMS);
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        rc = fa_fail(err, FA_ENOMEM, "out of memory for model parameters");
        goto cleanup;
    }
    p->num_items = num_items;
    p->len = fa_params_layout(p->specs, num_items);
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

    if ((rc = fa_params_new(out, src->num_items, err)) < 0)
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
    return p->data + row * FA_NCF_EMBED_DIM;
}

void fa_params_init_random(fa_params *p, uint64_t seed)
{
    fa_rng rng;

    fa_rng_init(&rng, seed, STREAM_PARAMS);
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
