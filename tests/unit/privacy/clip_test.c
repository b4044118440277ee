#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "privacy/clip.h"
#include "vectors.h"

/* L2 norm in long double, independent of the module's blocked double sum. */
static double ref_norm(const float *x, size_t n)
{
    long double s = 0.0L;

    for (size_t i = 0; i < n; i++)
        s += (long double)x[i] * (long double)x[i];
    return (double)sqrtl(s);
}

static float *random_vector(fa_testrng *r, size_t n, double scale)
{
    float *x = malloc(n * sizeof(*x) + 1);

    cr_assert_not_null(x);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(scale * fa_testrng_normal(r));
    return x;
}

Test(clip, long_vector_is_clipped_to_the_norm)
{
    fa_testrng r = {42};
    float *x = random_vector(&r, 10000, 0.1); /* norm ~ 10 */
    const double expect = ref_norm(x, 10000);
    double before = 0.0, after = 0.0;
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_clip_l2(&before, x, 10000, 1.5, &err), FA_OK, "%s", err.msg);
    /* float blocks: within 2^-21.96 (clip.c) */
    cr_assert_float_eq(before, expect, 2.5e-7 * expect, "reported norm is the norm before");
    cr_assert_gt(before, 5.0);
    after = ref_norm(x, 10000);
    cr_assert_leq(after, 1.5 * (1.0 + 1e-6), "norm %.17g after clipping", after);
    cr_assert_geq(after, 1.5 * (1.0 - 1e-6), "norm %.17g shrank too far", after);
    free(x);
}

Test(clip, norm_never_exceeds_the_bound)
{
    fa_testrng r = {7};
    fa_error err = FA_ERROR_INIT;

    /* Many sizes and magnitudes, including floats near the top of the range. */
    for (int t = 0; t < 400; t++) {
        const size_t n = 1 + (size_t)(fa_testrng_next(&r) % 3000);
        const double scale = pow(10.0, -6.0 + 40.0 * fa_testrng_uniform(&r));
        const double s = pow(10.0, -3.0 + 6.0 * fa_testrng_uniform(&r));
        float *x = random_vector(&r, n, scale > 1e30 ? 1e30 : scale);
        double norm;
        cr_assert_eq(fa_clip_l2(NULL, x, n, s, &err), FA_OK, "%s", err.msg);
        cr_assert_eq(fa_clip_norm(&norm, x, n, &err), FA_OK);
        cr_assert_leq(ref_norm(x, n), s * (1.0 + 1e-6), "trial %d: %.17g > %.17g", t,
                      ref_norm(x, n), s);
        cr_assert_leq(norm, s, "trial %d: computed norm %.17g over %.17g", t, norm, s);
        free(x);
    }
}

Test(clip, vector_within_the_ball_is_unchanged_bit_for_bit)
{
    fa_testrng r = {3};
    float *x = random_vector(&r, 4096, 0.001); /* norm ~ 0.064 */
    float *copy = malloc(4096 * sizeof(float));
    const float edge[1] = {2.5f};
    float one[1] = {2.5f};
    fa_error err = FA_ERROR_INIT;

    cr_assert_not_null(copy);
    memcpy(copy, x, 4096 * sizeof(float));
    cr_assert_eq(fa_clip_l2(NULL, x, 4096, 1.0, &err), FA_OK);
    cr_assert_eq(memcmp(x, copy, 4096 * sizeof(float)), 0);
    /* Exactly on the sphere counts as inside. */
    cr_assert_eq(fa_clip_l2(NULL, one, 1, 2.5, &err), FA_OK);
    cr_assert_eq(memcmp(one, edge, sizeof(one)), 0);
    free(x);
    free(copy);
}

Test(clip, zero_and_empty_vectors_are_fine)
{
    float z[300] = {0};
    double norm = -1.0;
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_clip_l2(&norm, z, 300, 1.0, &err), FA_OK);
    cr_assert_eq(norm, 0.0);
    for (size_t i = 0; i < 300; i++)
        cr_assert_eq(z[i], 0.0f);
    cr_assert_eq(fa_clip_l2(&norm, z, 0, 1.0, &err), FA_OK);
    cr_assert_eq(norm, 0.0);
}

Test(clip, non_finite_values_are_rejected_and_leave_x_alone)
{
    const float specials[3] = {NAN, INFINITY, -INFINITY};
    fa_error err = FA_ERROR_INIT;

    for (int s = 0; s < 3; s++) {
        float x[37], copy[37];
        for (int i = 0; i < 37; i++)
            x[i] = 100.0f + (float)i;
        x[s * 11 + 3] = specials[s];
        memcpy(copy, x, sizeof(x));
        cr_assert_eq(fa_clip_l2(NULL, x, 37, 1.0, &err), FA_EINVAL);
        cr_assert_eq(memcmp(x, copy, sizeof(x)), 0);
        cr_assert_eq(fa_clip_scale(NULL, x, 37, 1.0, 0.5, &err), FA_EINVAL);
        cr_assert_eq(memcmp(x, copy, sizeof(x)), 0);
    }
    cr_assert_str_eq(err.msg, "update has a non-finite value");
}

Test(clip, bad_clip_norm_or_weight_is_rejected)
{
    float x[4] = {1, 2, 3, 4};
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_clip_l2(NULL, x, 4, 0.0, &err), FA_EINVAL);
    cr_assert_eq(fa_clip_l2(NULL, x, 4, -1.0, &err), FA_EINVAL);
    cr_assert_eq(fa_clip_l2(NULL, x, 4, NAN, &err), FA_EINVAL);
    cr_assert_eq(fa_clip_l2(NULL, x, 4, INFINITY, &err), FA_EINVAL);
    cr_assert_eq(fa_clip_scale(NULL, x, 4, 1.0, 1.5, &err), FA_EINVAL);
    cr_assert_eq(fa_clip_scale(NULL, x, 4, 1.0, -0.1, &err), FA_EINVAL);
    cr_assert_eq(fa_clip_scale(NULL, x, 4, 1.0, NAN, &err), FA_EINVAL);
}

Test(clip, weight_is_trust_times_capped_sample_share)
{
    double w = -1.0;
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_clip_weight(&w, 0.5, 10, 100, &err), FA_OK);
    cr_assert_float_eq(w, 0.05, 1e-15);
    cr_assert_eq(fa_clip_weight(&w, 0.5, 1000, 100, &err), FA_OK);
    cr_assert_eq(w, 0.5);
    cr_assert_eq(fa_clip_weight(&w, 1.0, 100, 100, &err), FA_OK);
    cr_assert_eq(w, 1.0);
    cr_assert_eq(fa_clip_weight(&w, 0.0, 100, 100, &err), FA_OK);
    cr_assert_eq(w, 0.0);
    cr_assert_eq(fa_clip_weight(&w, 1.0, 0, 100, &err), FA_OK);
    cr_assert_eq(w, 0.0);
    cr_assert_eq(fa_clip_weight(&w, 1.01, 10, 100, &err), FA_EINVAL);
    cr_assert_eq(fa_clip_weight(&w, -0.01, 10, 100, &err), FA_EINVAL);
    cr_assert_eq(fa_clip_weight(&w, NAN, 10, 100, &err), FA_EINVAL);
    cr_assert_eq(fa_clip_weight(&w, 0.5, -1, 100, &err), FA_EINVAL);
    cr_assert_eq(fa_clip_weight(&w, 0.5, 10, 0, &err), FA_EINVAL);
}

Test(clip, weighted_contribution_stays_within_weight_times_s)
{
    fa_testrng r = {11};
    fa_error err = FA_ERROR_INIT;

    for (int t = 0; t < 50; t++) {
        const double w = fa_testrng_uniform(&r);
        const double scale = t % 2 ? 1.0 : 1e-4; /* clipped, then within the ball */
        float *x = random_vector(&r, 777, scale);
        cr_assert_eq(fa_clip_scale(NULL, x, 777, 2.0, w, &err), FA_OK, "%s", err.msg);
        cr_assert_leq(ref_norm(x, 777), w * 2.0 * (1.0 + 1e-6));
        free(x);
    }
}

Test(clip, factor_matches_scale_and_bounds_the_norm)
{
    float x[1000], y[1000];
    fa_error err = FA_ERROR_INIT;

    for (size_t i = 0; i < 1000; i++)
        x[i] = (float)((double)((i * 7919) % 1000) - 500.0) * 1e-2f;
    double weights[] = {1.0, 0.5, 0.0};
    double norms[] = {1e-3, 1.0, 1e3}; /* clip norms below, near and above ||x|| */
    for (size_t w = 0; w < 3; w++) {
        for (size_t k = 0; k < 3; k++) {
            double f = -1, norm_f = 0, norm_s = 0, after = 0;
            memcpy(y, x, sizeof(x));
            cr_assert_eq(fa_clip_factor(&f, &norm_f, x, 1000, norms[k], weights[w], &err), FA_OK);
            cr_assert_eq(fa_clip_scale(&norm_s, y, 1000, norms[k], weights[w], &err), FA_OK);
            cr_assert_eq(norm_f, norm_s);
            /* fa_clip_scale multiplies by exactly this factor. */
            for (size_t i = 0; i < 1000; i++)
                cr_assert_eq(y[i], (float)((double)x[i] * f), "i=%zu", i);
            for (size_t i = 0; i < 1000; i++)
                after += (double)((float)f * x[i]) * (double)((float)f * x[i]);
            cr_assert_leq(sqrt(after), norms[k] * weights[w] * (1 + 1e-6) + 1e-30);
        }
    }
    cr_assert_eq(fa_clip_factor(&(double){0}, NULL, x, 1000, 1.0, 1.5, &err), FA_EINVAL);
    x[3] = NAN;
    cr_assert_eq(fa_clip_factor(&(double){0}, NULL, x, 1000, 1.0, 1.0, &err), FA_EINVAL);
}

Test(clip, norm_read_in_pieces_has_the_same_bits)
{
    fa_testrng r = {0x5eed};
    fa_error err = FA_ERROR_INIT;
    size_t sizes[] = {0, 1, 7, 8, 9, 63, 64, 65, 2048, 2049, 10007};

    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        size_t n = sizes[k];
        float *x = random_vector(&r, n, 0.3);
        double whole = -1, pieces = -2, f_whole = -1, f_pieces = -2;
        fa_clip_sumsq st;

        cr_assert_eq(fa_clip_norm(&whole, x, n, &err), FA_OK);
        /* pieces of 64, 128, 192, ... floats (whole blocks), the last one shorter */
        fa_clip_sumsq_init(&st);
        size_t off = 0;
        for (size_t step = FA_CLIP_PIECE; off + step < n; step += FA_CLIP_PIECE) {
            fa_clip_sumsq_add(&st, x + off, step);
            off += step;
        }
        fa_clip_sumsq_add(&st, x + off, n - off);
        cr_assert_eq(fa_clip_factor_of_sumsq(&f_pieces, &pieces, &st, 0.5, 0.75, &err), FA_OK);
        cr_assert_eq(fa_clip_factor(&f_whole, NULL, x, n, 0.5, 0.75, &err), FA_OK);
        cr_assert_eq(pieces, whole, "n=%zu", n);
        cr_assert_eq(f_pieces, f_whole, "n=%zu", n);
        cr_assert_float_eq(whole, ref_norm(x, n), 2.5e-7 * whole + 1e-300);
        free(x);
    }
}

Test(clip, factor_of_a_non_finite_sum_is_refused)
{
    float x[16] = {1, 2, 3};
    fa_clip_sumsq st;
    fa_error err = FA_ERROR_INIT;
    double f = -1;

    fa_clip_sumsq_init(&st);
    fa_clip_sumsq_add(&st, x, 16);
    cr_assert_eq(fa_clip_factor_of_sumsq(&f, NULL, &st, 0.0, 1.0, &err), FA_EINVAL);
    cr_assert_eq(fa_clip_factor_of_sumsq(&f, NULL, &st, 1.0, -0.5, &err), FA_EINVAL);
    x[9] = INFINITY;
    fa_clip_sumsq_add(&st, x, 16);
    cr_assert_eq(fa_clip_factor_of_sumsq(&f, NULL, &st, 1.0, 1.0, &err), FA_EINVAL);
    cr_assert_eq(f, 0.0);
    cr_assert(strstr(err.msg, "non-finite") != NULL, "%s", err.msg);
}

Test(clip, a_long_vector_just_outside_the_ball_is_still_clipped)
{
    /* The float blocks may underestimate the norm by up to 2^-21.96; a
     * vector whose true norm is that little above S must not pass as
     * inside. */
    fa_testrng r = {11};
    fa_error err = FA_ERROR_INIT;
    const double rel[] = {1e-9, 1e-7, 2.4e-7, 1e-6};

    for (size_t k = 0; k < sizeof(rel) / sizeof(rel[0]); k++) {
        for (int t = 0; t < 50; t++) {
            size_t n = 64 + (size_t)(fa_testrng_next(&r) % 5000);
            float *x = random_vector(&r, n, 1.0);
            double target = 0.7 * (1.0 + rel[k]), norm = ref_norm(x, n);
            for (size_t i = 0; i < n; i++)
                x[i] = (float)((double)x[i] * (target / norm));
            double before = ref_norm(x, n);
            cr_assert_eq(fa_clip_l2(NULL, x, n, 0.7, &err), FA_OK, "%s", err.msg);
            if (before > 0.7)
                cr_assert_leq(ref_norm(x, n), 0.7, "n=%zu rel=%g: %.17g", n, rel[k],
                              ref_norm(x, n));
            free(x);
        }
    }
}

Test(clip, huge_finite_values_are_clipped_not_refused)
{
    float x[256];
    double norm = 0;
    fa_error err = FA_ERROR_INIT;

    for (size_t i = 0; i < 256; i++)
        x[i] = (i % 2 ? 3e30f : -2e30f); /* squares overflow a float, not a double */
    cr_assert_eq(fa_clip_norm(&norm, x, 256, &err), FA_OK, "%s", err.msg);
    cr_assert_float_eq(norm, ref_norm(x, 256), 1e-12 * norm);
    cr_assert_eq(fa_clip_l2(NULL, x, 256, 1.0, &err), FA_OK, "%s", err.msg);
    cr_assert_leq(ref_norm(x, 256), 1.0);
    x[100] = INFINITY;
    cr_assert_eq(fa_clip_norm(&norm, x, 256, &err), FA_EINVAL);
}
