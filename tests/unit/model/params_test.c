#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "model/params.h"

Test(params, layout_matches_the_contract)
{
    static const char *const NAMES[FA_TENSOR_COUNT] = {"item_embedding/embeddings",
                                                       "dense_1/kernel",
                                                       "dense_1/bias",
                                                       "dense_2/kernel",
                                                       "dense_2/bias",
                                                       "dense_3/kernel",
                                                       "dense_3/bias",
                                                       "out/kernel",
                                                       "out/bias"};
    static const size_t COUNTS[FA_TENSOR_COUNT] = {1682 * 64, 128 * 128, 128, 128 * 64, 64,
                                                   64 * 32,   32,        32,  1};
    fa_tensor_spec s[FA_TENSOR_COUNT];
    size_t off = 0;

    cr_assert_eq(fa_params_layout(s, 1682), 134529u);
    cr_assert_eq(fa_params_count(1682), 134529u);
    cr_assert_eq(FA_NCF_DENSE_LEN, 134529 - 1682 * 64);
    for (int i = 0; i < FA_TENSOR_COUNT; i++) {
        cr_assert_str_eq(s[i].name, NAMES[i]);
        cr_assert_eq(s[i].count, COUNTS[i]);
        cr_assert_eq(s[i].offset, off);
        off += s[i].count;
    }
    cr_assert_eq(s[FA_TENSOR_DENSE_2_KERNEL].shape[0], 128u);
    cr_assert_eq(s[FA_TENSOR_DENSE_2_KERNEL].shape[1], 64u);
    cr_assert_eq(s[FA_TENSOR_OUT_BIAS].ndim, 1);
    cr_assert_eq(fa_params_count(0), 0u);
    cr_assert_eq(fa_params_count(FA_PARAMS_MAX_ITEMS + 1), 0u);
}

Test(params, rejects_bad_item_counts)
{
    fa_params *p = (fa_params *)1;
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_params_new(&p, 0, &err), FA_EINVAL);
    cr_assert_null(p);
    cr_assert_eq(fa_params_new(&p, FA_PARAMS_MAX_ITEMS + 1, &err), FA_EINVAL);
}

Test(params, init_is_deterministic_glorot_and_zero_bias)
{
    fa_params *a = NULL, *b = NULL, *c = NULL;
    fa_error err = FA_ERROR_INIT;
    const fa_tensor_spec *k1, *b1, *emb;
    double limit = sqrt(6.0 / (128 + 128)), sum2 = 0.0;
    float maxabs = 0.0f;

    cr_assert_eq(fa_params_new(&a, 50, &err), FA_OK);
    cr_assert_eq(fa_params_new(&b, 50, &err), FA_OK);
    fa_params_init_random(a, 9);
    fa_params_init_random(b, 9);
    cr_assert_eq(memcmp(fa_params_cdata(a), fa_params_cdata(b), fa_params_len(a) * 4), 0);
    fa_params_init_random(b, 10);
    cr_assert_neq(memcmp(fa_params_cdata(a), fa_params_cdata(b), fa_params_len(a) * 4), 0);

    k1 = fa_params_tensor(a, FA_TENSOR_DENSE_1_KERNEL);
    b1 = fa_params_tensor(a, FA_TENSOR_DENSE_1_BIAS);
    emb = fa_params_tensor(a, FA_TENSOR_ITEM_EMBEDDING);
    for (size_t i = 0; i < k1->count; i++) {
        float w = fa_params_cdata(a)[k1->offset + i];
        maxabs = fabsf(w) > maxabs ? fabsf(w) : maxabs;
    }
    cr_assert(maxabs <= limit && maxabs > 0.9 * limit);
    for (size_t i = 0; i < b1->count; i++)
        cr_assert_eq(fa_params_cdata(a)[b1->offset + i], 0.0f);
    for (size_t i = 0; i < emb->count; i++)
        sum2 += (double)fa_params_cdata(a)[emb->offset + i] * fa_params_cdata(a)[emb->offset + i];
    cr_assert(fabs(sqrt(sum2 / (double)emb->count) - 0.01) < 0.001);
    cr_assert_eq(fa_params_item_row(a, 3), fa_params_cdata(a) + 3 * 64);
    cr_assert_eq(fa_params_dense(a), fa_params_cdata(a) + 50 * 64);

    cr_assert_eq(fa_params_clone(&c, a, &err), FA_OK);
    cr_assert_eq(memcmp(fa_params_cdata(a), fa_params_cdata(c), fa_params_len(a) * 4), 0);
    fa_params_free(a);
    fa_params_free(b);
    fa_params_free(c);
    fa_params_free(NULL);
}

Test(params, user_init_is_small_and_seeded)
{
    float u[64], v[64];

    fa_params_init_user(u, 5);
    fa_params_init_user(v, 5);
    cr_assert_eq(memcmp(u, v, sizeof(u)), 0);
    for (int i = 0; i < 64; i++)
        cr_assert(fabsf(u[i]) < 0.06f);
}
