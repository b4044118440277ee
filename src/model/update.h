/*
 * The plaintext of a device update, as sealed inside encryptedGradients:
 *
 *   offset 0   4 bytes  magic "FAU1"
 *   offset 4   u32 LE   model version the delta was trained on
 *   offset 8   u32 LE   dimension D (floats that follow)
 *   offset 12  u32 LE   num_samples (the device's training examples)
 *   offset 16  D x f32 LE  delta = theta_local - theta_global, canonical order
 *
 * The format and its encoder, shared by the device side (which writes it)
 * and the aggregator (which checks and decodes it, aggregator/update.h).
 * Pure functions on caller buffers; any thread.
 */
#ifndef FA_MODEL_UPDATE_H
#define FA_MODEL_UPDATE_H

#include <stddef.h>
#include <stdint.h>

#define FA_UPDATE_MAGIC        "FAU1"
#define FA_UPDATE_HEADER_BYTES 16
#define FA_UPDATE_MAX_SAMPLES  10000000 /* numSamples above this is absurd */

typedef struct fa_update_header {
    uint32_t model_version;
    uint32_t dim;
    uint32_t num_samples;
} fa_update_header;

/* Writes the header and delta into out (FA_UPDATE_HEADER_BYTES + 4 * dim bytes). */
void fa_update_encode(unsigned char *out, uint32_t model_version, uint32_t num_samples,
                      const float *delta, size_t dim);

#endif
