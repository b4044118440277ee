/* The median of the timings of a benchmark's repetitions (sorts v in place). */
#ifndef FA_BENCH_MEDIAN_H
#define FA_BENCH_MEDIAN_H

#include <stddef.h>
#include <stdlib.h>

static int fa_bench_cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static inline double fa_bench_median(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), fa_bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#endif
