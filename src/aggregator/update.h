/*
 * The plaintext of a device update, as sealed inside encryptedGradients:
 *
 *   offset 0   4 bytes  magic "FAU1"
 *   offset 4   u32 LE   model version the delta was trained on
 *   offset 8   u32 LE   dimension D (floats that follow)
 *   offset 12  u32 LE   num_samples (the device's training examples)
 *   offset 16  D x f32 LE  delta = theta_local - theta_global, canonical order
 *
 * Pure functions on caller buffers; any thread.
 */
#ifndef FA_AGGREGATOR_UPDATE_H
#define FA_AGGREGATOR_UPDATE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "privacy/clip.h"

#define FA_UPDATE_MAGIC        "FAU1"
#define FA_UPDATE_HEADER_BYTES 16
#define FA_UPDATE_MAX_SAMPLES  10000000 /* numSamples above this is absurd */

typedef struct fa_update_header {
    uint32_t model_version;
    uint32_t dim;
    uint32_t num_samples;
} fa_update_header;

/*
 * Checks plain (len bytes) and decodes its delta into out (dim floats,
 * caller-allocated). expect_* come from the request and the model; each
 * disagreement fails with FA_EINVAL and *reason_out set to the client
 * code: "bad_header", "header_mismatch", "wrong_dimension", "non_finite".
 * In the same pass *sumsq_out gets the delta's sum of squares for the clip
 * norm, bit for bit what fa_clip_norm would form from out, so folding the
 * update needs one more pass over it instead of two.
 */
int fa_update_decode(float *out, fa_clip_sumsq *sumsq_out, const char **reason_out,
                     const unsigned char *plain, size_t len, int64_t expect_version,
                     int64_t expect_samples, size_t expect_dim, fa_error *err) FA_MUST_CHECK;

/* Writes the header and delta into out (FA_UPDATE_HEADER_BYTES + 4 * dim bytes). */
void fa_update_encode(unsigned char *out, uint32_t model_version, uint32_t num_samples,
                      const float *delta, size_t dim);

#endif
