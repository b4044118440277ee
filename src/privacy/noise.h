/*
 * Gaussian noise for the released sum, drawn from a ChaCha20 keystream keyed
 * from the operating system's CSPRNG (or, for tests and simulation only, from
 * a 32-byte seed) and hardened against floating-point attacks by summing
 * four Box-Muller samples per coordinate. An fa_noise owns its stream state
 * and is used by one thread at a time (the aggregation worker).
 */
#ifndef FA_PRIVACY_NOISE_H
#define FA_PRIVACY_NOISE_H

#include <stddef.h>

#include "core/error.h"

#define FA_NOISE_SEED_BYTES 32
/* Coordinates drawn per keystream block group; calls consume whole groups. */
#define FA_NOISE_GROUP 256
/* Name of the construction, recorded in ledger entries. */
#define FA_NOISE_METHOD "gauss-sum4-boxmuller-chacha20"

typedef struct fa_noise fa_noise;

/* A sampler keyed from the OS CSPRNG (randombytes_buf). FA_ENOMEM. */
int fa_noise_new(fa_noise **out, fa_error *err) FA_MUST_CHECK;

/*
 * A deterministic sampler keyed by seed: the same seed and the same sequence
 * of calls give the same noise. For tests and simulation only; entries made
 * with it record seeded = true. FA_ENOMEM.
 */
int fa_noise_new_seeded(fa_noise **out, const unsigned char seed[FA_NOISE_SEED_BYTES],
                        fa_error *err) FA_MUST_CHECK;

/* Wipes the key and frees the sampler. NULL-safe. */
void fa_noise_free(fa_noise *nz);

/* 1 when the sampler was made by fa_noise_new_seeded, else 0. */
int fa_noise_seeded(const fa_noise *nz);

/*
 * Writes n independent N(0, 1) samples to out. Consumes ceil(n / FA_NOISE_GROUP)
 * groups of the stream (unused samples of the last group are discarded).
 * FA_EINTERNAL if the cipher fails (the adders below likewise).
 */
int fa_noise_standard(fa_noise *nz, double *out, size_t n, fa_error *err) FA_MUST_CHECK;

/*
 * Adds N(0, stddev^2) independently to each of the n coordinates of x (the
 * sum is formed in double and rounded once). stddev must be finite and
 * non-negative (FA_EINVAL); stddev 0 still consumes the stream.
 */
int fa_noise_add_f32(fa_noise *nz, float *x, size_t n, double stddev, fa_error *err) FA_MUST_CHECK;
int fa_noise_add_f64(fa_noise *nz, double *x, size_t n, double stddev, fa_error *err) FA_MUST_CHECK;

#endif
