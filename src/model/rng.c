#include "model/rng.h"

#include <math.h>

/*
 * xoshiro256** and splitmix64 by Blackman and Vigna ("Scrambled linear
 * pseudorandom number generators", ACM TOMS 2021), public domain reference
 * code, restated here.
 */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void fa_rng_init(fa_rng *rng, uint64_t seed, uint64_t stream)
{
    /* Mix the stream through splitmix64 first so that (seed, stream) pairs do not alias. */
    uint64_t x = stream;
    uint64_t sm = seed ^ splitmix64(&x);

    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&sm);
}

uint64_t fa_rng_next(fa_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint32_t fa_rng_below(fa_rng *rng, uint32_t n)
{
    /* Lemire, "Fast random integer generation in an interval" (ACM TOMACS 2019). */
    uint64_t m = (fa_rng_next(rng) >> 32) * (uint64_t)n;
    uint32_t low = (uint32_t)m;

    if (low < n) {
        uint32_t threshold = (uint32_t)(-n) % n;
        while (low < threshold) {
            m = (fa_rng_next(rng) >> 32) * (uint64_t)n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

double fa_rng_uniform(fa_rng *rng)
{
    return (double)(fa_rng_next(rng) >> 11) * 0x1.0p-53;
}

double fa_rng_normal(fa_rng *rng)
{
    /* 1 - u lies in (0, 1], so the logarithm is finite. */
    double u1 = 1.0 - fa_rng_uniform(rng);
    double u2 = fa_rng_uniform(rng);

    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
