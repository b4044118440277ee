/*
 * Checking and decoding the plaintext of a device update; the format and
 * its encoder are model/update.h, shared with the device side. Pure
 * functions on caller buffers; any thread.
 */
#ifndef FA_AGGREGATOR_UPDATE_H
#define FA_AGGREGATOR_UPDATE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "model/update.h"
#include "privacy/clip.h"

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

#endif
