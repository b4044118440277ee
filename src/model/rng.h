/*
 * A small deterministic pseudo-random generator (xoshiro256**, seeded with
 * splitmix64) for weight initialisation, negative sampling and shuffling. It
 * is for machine learning only, never for keys, tokens or privacy noise. An
 * fa_rng is a plain value owned by its caller; one thread at a time.
 */
#ifndef FA_MODEL_RNG_H
#define FA_MODEL_RNG_H

#include <stdint.h>

/* Generator state; embed it by value and seed it with fa_rng_init(). */
typedef struct fa_rng {
    uint64_t s[4];
} fa_rng;

/*
 * Seeds rng from (seed, stream). Different streams of one seed give
 * independent sequences, so each device or purpose can draw its own.
 */
void fa_rng_init(fa_rng *rng, uint64_t seed, uint64_t stream);

/* Next 64 uniformly distributed bits. */
uint64_t fa_rng_next(fa_rng *rng);

/* Uniform integer in [0, n); n must be at least 1. Unbiased. */
uint32_t fa_rng_below(fa_rng *rng, uint32_t n);

/* Uniform double in [0, 1) with 53 random bits. */
double fa_rng_uniform(fa_rng *rng);

/* Standard normal draw (Box-Muller; two uniforms per draw, nothing cached). */
double fa_rng_normal(fa_rng *rng);

#endif
