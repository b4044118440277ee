/*
 * The update plaintext's decoder: header checks, the finiteness check and
 * the clip norm's sum of squares it forms in the same pass.
 */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregator/update.h"
#include "privacy/clip.h"

static float *vector(size_t dim)
{
    float *x = malloc(dim * sizeof(float));
    cr_assert_not_null(x);
    for (size_t i = 0; i < dim; i++)
        x[i] = (float)((int)(i % 17) - 8) * 0.01f;
    return x;
}

static unsigned char *wire(const float *x, size_t dim, uint32_t version, uint32_t samples)
{
    unsigned char *w = malloc(FA_UPDATE_HEADER_BYTES + 4 * dim);
    cr_assert_not_null(w);
    fa_update_encode(w, version, samples, x, dim);
    return w;
}

static int decode(float *out, fa_clip_sumsq *sq, const char **reason, const unsigned char *w,
                  size_t len, size_t dim, fa_error *err)
{
    return fa_update_decode(out, sq, reason, w, len, 4, 20, dim, err);
}

Test(update, a_non_finite_value_is_named_wherever_it_sits)
{
    size_t dims[] = {7, 2049};
    float bad[] = {NAN, INFINITY, -INFINITY};

    for (size_t d = 0; d < 2; d++) {
        size_t dim = dims[d];
        size_t at[] = {0, 5, 63, 64, 1023, 1024, 2000, dim - 1};
        float *x = vector(dim), *out = malloc(dim * sizeof(float));
        cr_assert_not_null(out);
        for (size_t a = 0; a < sizeof(at) / sizeof(at[0]); a++) {
            if (at[a] >= dim)
                continue;
            for (size_t b = 0; b < 3; b++) {
                fa_clip_sumsq sq;
                const char *reason = NULL;
                fa_error err = FA_ERROR_INIT;
                char want[64];
                float keep = x[at[a]];
                x[at[a]] = bad[b];
                unsigned char *w = wire(x, dim, 4, 20);
                cr_assert_eq(
                    decode(out, &sq, &reason, w, FA_UPDATE_HEADER_BYTES + 4 * dim, dim, &err),
                    FA_EINVAL);
                cr_assert_str_eq(reason, "non_finite");
                (void)snprintf(want, sizeof(want), "update value %zu is not finite", at[a]);
                cr_assert_str_eq(err.msg, want);
                x[at[a]] = keep;
                free(w);
            }
        }
        free(x);
        free(out);
    }
}

Test(update, huge_finite_values_are_accepted_and_their_norm_is_finite)
{
    /* Float squares of these overflow; the decoder must not call them
     * non-finite (the fold clips them). */
    size_t dim = 300;
    float *x = vector(dim), *out = malloc(dim * sizeof(float));
    fa_clip_sumsq sq;
    const char *reason = NULL;
    fa_error err = FA_ERROR_INIT;
    double norm = 0, f = 0;

    cr_assert_not_null(out);
    x[10] = FLT_MAX;
    x[200] = -3e30f;
    unsigned char *w = wire(x, dim, 4, 20);
    cr_assert_eq(decode(out, &sq, &reason, w, FA_UPDATE_HEADER_BYTES + 4 * dim, dim, &err), FA_OK,
                 "%s", err.msg);
    cr_assert(fa_clip_sumsq_finite(&sq));
    cr_assert_eq(fa_clip_factor_of_sumsq(&f, &norm, &sq, 1.0, 1.0, &err), FA_OK, "%s", err.msg);
    cr_assert(fabs(norm - (double)FLT_MAX) <= 1e-12 * (double)FLT_MAX, "norm %g", norm);
    cr_assert(f > 0.0 && f < 1e-38, "factor %g", f);
    free(w);
    free(x);
    free(out);
}

Test(update, header_and_length_must_agree_with_the_request_and_model)
{
    size_t dim = 40, len = FA_UPDATE_HEADER_BYTES + 4 * dim;
    float *x = vector(dim), *out = malloc(dim * sizeof(float));
    fa_clip_sumsq sq;
    const char *reason = NULL;
    fa_error err = FA_ERROR_INIT;
    unsigned char *w = wire(x, dim, 4, 20);

    cr_assert_not_null(out);
    cr_assert_eq(decode(out, &sq, &reason, w, len, dim, &err), FA_OK, "%s", err.msg);
    cr_assert_null(reason);
    cr_assert_eq(memcmp(out, x, dim * sizeof(float)), 0);

    cr_assert_eq(decode(out, &sq, &reason, w, FA_UPDATE_HEADER_BYTES - 1, dim, &err), FA_EINVAL);
    cr_assert_str_eq(reason, "bad_header");
    w[0] = 'G';
    cr_assert_eq(decode(out, &sq, &reason, w, len, dim, &err), FA_EINVAL);
    cr_assert_str_eq(reason, "bad_header");
    free(w);

    w = wire(x, dim, 5, 20); /* the request says version 4 */
    cr_assert_eq(decode(out, &sq, &reason, w, len, dim, &err), FA_EINVAL);
    cr_assert_str_eq(reason, "header_mismatch");
    free(w);
    w = wire(x, dim, 4, 21); /* and 20 samples */
    cr_assert_eq(decode(out, &sq, &reason, w, len, dim, &err), FA_EINVAL);
    cr_assert_str_eq(reason, "header_mismatch");
    free(w);

    w = wire(x, dim, 4, 20);
    cr_assert_eq(decode(out, &sq, &reason, w, len - 4, dim, &err), FA_EINVAL);
    cr_assert_str_eq(reason, "wrong_dimension");
    cr_assert_eq(decode(out, &sq, &reason, w, len - 1, dim, &err), FA_EINVAL);
    cr_assert_str_eq(reason, "wrong_dimension");
    cr_assert_eq(decode(out, &sq, &reason, w, len - 4, dim - 1, &err), FA_EINVAL);
    cr_assert_str_eq(reason, "wrong_dimension"); /* the header still says 40 */
    free(w);
    free(x);
    free(out);
}
