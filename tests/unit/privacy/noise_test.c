#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "privacy/crypto.h"
#include "privacy/noise.h"
#include "vectors.h"

#define N_SAMPLES 1000000

static void init(void)
{
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_crypto_init(&err), FA_OK);
}

TestSuite(noise, .init = init);

static const unsigned char SEED[FA_NOISE_SEED_BYTES] = {
    0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
    16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
};

static double *draw(fa_noise *nz, size_t n)
{
    double *z = malloc(n * sizeof(*z));
    fa_error err = FA_ERROR_INIT;

    cr_assert_not_null(z);
    cr_assert_eq(fa_noise_standard(nz, z, n, &err), FA_OK, "%s", err.msg);
    return z;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Kolmogorov-Smirnov statistic of z against N(0, 1) (sorts z). */
static double ks_normal(double *z, size_t n)
{
    double d = 0.0;

    qsort(z, n, sizeof(*z), cmp_double);
    for (size_t i = 0; i < n; i++) {
        const double f = 0.5 * erfc(-z[i] / sqrt(2.0));
        d = fmax(d, fmax((double)(i + 1) / (double)n - f, f - (double)i / (double)n));
    }
    return d;
}

/*
 * Tolerances, n = 1e6 samples of N(0, 1):
 *  - mean: |m| < 5/sqrt(n) = 0.005 (5 standard errors);
 *  - variance: |v - 1| < 5 sqrt(2/n) = 0.0071 (5 standard errors, var of s^2 is 2/n);
 *  - KS: D < 1.949/sqrt(n), the asymptotic critical value at level 0.001.
 * The seeded run is deterministic, so it cannot flake; the unseeded run
 * uses the level-1e-6 value 2.69/sqrt(n) instead.
 */
Test(noise, seeded_samples_have_the_normal_moments_and_pass_ks, .timeout = 120)
{
    fa_noise *nz = NULL;
    fa_error err = FA_ERROR_INIT;
    double *z;
    long double sum = 0.0L, sq = 0.0L;
    double mean, var, d;
    size_t beyond4 = 0;

    cr_assert_eq(fa_noise_new_seeded(&nz, SEED, &err), FA_OK);
    z = draw(nz, N_SAMPLES);
    for (size_t i = 0; i < N_SAMPLES; i++) {
        sum += z[i];
        beyond4 += fabs(z[i]) > 4.0;
    }
    mean = (double)(sum / N_SAMPLES);
    for (size_t i = 0; i < N_SAMPLES; i++)
        sq += ((long double)z[i] - mean) * ((long double)z[i] - mean);
    var = (double)(sq / (N_SAMPLES - 1));
    cr_assert_lt(fabs(mean), 5.0 / sqrt(N_SAMPLES), "mean %g", mean);
    cr_assert_lt(fabs(var - 1.0), 5.0 * sqrt(2.0 / N_SAMPLES), "variance %g", var);
    /* P(|Z| > 4) = 6.334e-5: 63.3 expected, sd 7.96; 5 sd either side. */
    cr_assert(beyond4 >= 24 && beyond4 <= 103, "%zu samples beyond 4 sd", beyond4);
    d = ks_normal(z, N_SAMPLES);
    cr_assert_lt(d, 1.949 / sqrt(N_SAMPLES), "KS statistic %g", d);
    free(z);
    fa_noise_free(nz);
}

Test(noise, unseeded_samples_pass_ks, .timeout = 120)
{
    fa_noise *nz = NULL;
    fa_error err = FA_ERROR_INIT;
    double *z;
    double d;

    cr_assert_eq(fa_noise_new(&nz, &err), FA_OK);
    z = draw(nz, N_SAMPLES);
    d = ks_normal(z, N_SAMPLES);
    cr_assert_lt(d, 2.69 / sqrt(N_SAMPLES), "KS statistic %g", d);
    free(z);
    fa_noise_free(nz);
}

Test(noise, two_unseeded_samplers_differ)
{
    fa_noise *a = NULL, *b = NULL;
    fa_error err = FA_ERROR_INIT;
    double *za, *zb;

    cr_assert_eq(fa_noise_new(&a, &err), FA_OK);
    cr_assert_eq(fa_noise_new(&b, &err), FA_OK);
    cr_assert_eq(fa_noise_seeded(a), 0);
    za = draw(a, 1000);
    zb = draw(b, 1000);
    cr_assert_neq(memcmp(za, zb, 1000 * sizeof(double)), 0);
    free(za);
    free(zb);
    fa_noise_free(a);
    fa_noise_free(b);
}

Test(noise, seeded_samplers_reproduce)
{
    unsigned char other[FA_NOISE_SEED_BYTES];
    fa_noise *a = NULL, *b = NULL, *c = NULL;
    fa_error err = FA_ERROR_INIT;
    double *za, *zb, *zc;

    memcpy(other, SEED, sizeof(other));
    other[31] ^= 1;
    cr_assert_eq(fa_noise_new_seeded(&a, SEED, &err), FA_OK);
    cr_assert_eq(fa_noise_new_seeded(&b, SEED, &err), FA_OK);
    cr_assert_eq(fa_noise_new_seeded(&c, other, &err), FA_OK);
    cr_assert_eq(fa_noise_seeded(a), 1);
    za = draw(a, 5000);
    zb = draw(b, 5000);
    zc = draw(c, 5000);
    cr_assert_eq(memcmp(za, zb, 5000 * sizeof(double)), 0);
    cr_assert_neq(memcmp(za, zc, 5000 * sizeof(double)), 0);
    free(za);
    free(zb);
    free(zc);
    fa_noise_free(a);
    fa_noise_free(b);
    fa_noise_free(c);
}

Test(noise, seeded_stream_matches_an_independent_implementation)
{
    FILE *f = fa_vectors_open("noise_seeded.txt");
    fa_noise *nz = NULL;
    fa_error err = FA_ERROR_INIT;
    char line[128];
    double *z;
    size_t i = 0;

    cr_assert_eq(fa_noise_new_seeded(&nz, SEED, &err), FA_OK);
    z = draw(nz, 512);
    while (fa_vectors_next(f, line, sizeof(line))) {
        const double want = strtod(line, NULL);
        cr_assert_lt(i, 512);
        /* libm's log/cos/sin against the module's kernels: a few ulps of |z| <= 17. */
        cr_assert_float_eq(z[i], want, 1e-12, "sample %zu: %.17g vs %.17g", i, z[i], want);
        i++;
    }
    cr_assert_eq(i, 512);
    fclose(f);
    free(z);
    fa_noise_free(nz);
}

Test(noise, calls_consume_whole_groups)
{
    fa_noise *a = NULL, *b = NULL;
    fa_error err = FA_ERROR_INIT;
    double *whole, part[300];

    cr_assert_eq(fa_noise_new_seeded(&a, SEED, &err), FA_OK);
    cr_assert_eq(fa_noise_new_seeded(&b, SEED, &err), FA_OK);
    whole = draw(a, 3 * FA_NOISE_GROUP);
    /* 300 samples use two groups; the next call starts at the third. */
    cr_assert_eq(fa_noise_standard(b, part, 300, &err), FA_OK);
    cr_assert_eq(memcmp(part, whole, 300 * sizeof(double)), 0);
    cr_assert_eq(fa_noise_standard(b, part, 10, &err), FA_OK);
    cr_assert_eq(memcmp(part, whole + 2 * FA_NOISE_GROUP, 10 * sizeof(double)), 0);
    free(whole);
    fa_noise_free(a);
    fa_noise_free(b);
}

Test(noise, add_scales_by_the_stddev)
{
    const size_t n = 200003; /* not a multiple of the group */
    fa_noise *nz = NULL, *ref = NULL;
    fa_error err = FA_ERROR_INIT;
    float *x = malloc(n * sizeof(*x));
    double *y = malloc(n * sizeof(*y));
    double *z;

    cr_assert(x != NULL && y != NULL);
    for (size_t i = 0; i < n; i++) {
        x[i] = (float)i * 0.25f;
        y[i] = (double)i * 0.25;
    }
    cr_assert_eq(fa_noise_new_seeded(&nz, SEED, &err), FA_OK);
    cr_assert_eq(fa_noise_new_seeded(&ref, SEED, &err), FA_OK);
    z = draw(ref, n);
    cr_assert_eq(fa_noise_add_f32(nz, x, n, 3.0, &err), FA_OK);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(x[i], (float)((double)((float)i * 0.25f) + 3.0 * z[i]), "coordinate %zu", i);
    cr_assert_eq(fa_noise_standard(ref, z, n, &err), FA_OK);
    cr_assert_eq(fa_noise_add_f64(nz, y, n, 0.5, &err), FA_OK);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(y[i], (double)i * 0.25 + 0.5 * z[i], "coordinate %zu", i);
    free(x);
    free(y);
    free(z);
    fa_noise_free(nz);
    fa_noise_free(ref);
}

Test(noise, bad_stddev_is_rejected)
{
    fa_noise *nz = NULL;
    fa_error err = FA_ERROR_INIT;
    float x[4] = {0};
    double y[4] = {0};

    cr_assert_eq(fa_noise_new(&nz, &err), FA_OK);
    cr_assert_eq(fa_noise_add_f32(nz, x, 4, -1.0, &err), FA_EINVAL);
    cr_assert_eq(fa_noise_add_f32(nz, x, 4, NAN, &err), FA_EINVAL);
    cr_assert_eq(fa_noise_add_f64(nz, y, 4, INFINITY, &err), FA_EINVAL);
    cr_assert_eq(fa_noise_add_f64(nz, y, 0, 1.0, &err), FA_OK);
    fa_noise_free(nz);
    fa_noise_free(NULL);
}

Test(noise, method_name_is_a_ledger_name)
{
    cr_assert_str_eq(FA_NOISE_METHOD, "gauss-sum4-boxmuller-chacha20");
}
