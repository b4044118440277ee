#include <criterion/criterion.h>
#include <math.h>

#include "model/rng.h"

Test(rng, same_seed_same_sequence_other_stream_differs)
{
    fa_rng a, b, c;
    int differ = 0;

    fa_rng_init(&a, 42, 1);
    fa_rng_init(&b, 42, 1);
    fa_rng_init(&c, 42, 2);
    for (int i = 0; i < 100; i++) {
        uint64_t x = fa_rng_next(&a);
        cr_assert_eq(x, fa_rng_next(&b));
        differ += x != fa_rng_next(&c);
    }
    cr_assert_gt(differ, 95);
}

Test(rng, below_stays_in_range_and_covers_it)
{
    fa_rng r;
    int count[7] = {0};

    fa_rng_init(&r, 7, 0);
    for (int i = 0; i < 70000; i++) {
        uint32_t v = fa_rng_below(&r, 7);
        cr_assert_lt(v, 7u);
        count[v]++;
    }
    /* Each bucket expects 10000; 5 standard deviations is about 450. */
    for (int k = 0; k < 7; k++)
        cr_assert(fabs(count[k] - 10000.0) < 500.0, "bucket %d has %d", k, count[k]);
    cr_assert_eq(fa_rng_below(&r, 1), 0u);
}

Test(rng, uniform_and_normal_moments)
{
    fa_rng r;
    double su = 0, sn = 0, sn2 = 0;
    const int n = 200000;

    fa_rng_init(&r, 3, 0);
    for (int i = 0; i < n; i++) {
        double u = fa_rng_uniform(&r), g = fa_rng_normal(&r);
        cr_assert(u >= 0.0 && u < 1.0);
        cr_assert(isfinite(g));
        su += u;
        sn += g;
        sn2 += g * g;
    }
    cr_assert(fabs(su / n - 0.5) < 0.005);
    cr_assert(fabs(sn / n) < 0.01);
    cr_assert(fabs(sn2 / n - 1.0) < 0.02);
}
