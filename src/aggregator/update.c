#include "aggregator/update.h"

#include <math.h>
#include <string.h>

#include "core/bytes.h"
#include "privacy/clip.h"

/* Floats decoded per step: whole norm blocks, small enough for L1. */
#define DECODE_CHUNK 1024
_Static_assert(DECODE_CHUNK % FA_CLIP_PIECE == 0, "a chunk holds whole norm blocks");

int fa_update_decode(float *out, fa_clip_sumsq *sumsq_out, const char **reason_out,
                     const unsigned char *plain, size_t len, int64_t expect_version,
                     int64_t expect_samples, size_t expect_dim, fa_error *err)
{
    fa_update_header h;

    *reason_out = NULL;
    if (len < FA_UPDATE_HEADER_BYTES || memcmp(plain, FA_UPDATE_MAGIC, 4) != 0) {
        *reason_out = "bad_header";
        return fa_fail(err, FA_EINVAL, "update plaintext does not start with the FAU1 header");
    }
    h.model_version = fa_bytes_get_u32(plain + 4);
    h.dim = fa_bytes_get_u32(plain + 8);
    h.num_samples = fa_bytes_get_u32(plain + 12);
    if ((int64_t)h.model_version != expect_version || (int64_t)h.num_samples != expect_samples) {
        *reason_out = "header_mismatch";
        return fa_fail(err, FA_EINVAL,
                       "sealed header (model version %u, %u samples) disagrees with the request "
                       "(model version %lld, %lld samples)",
                       h.model_version, h.num_samples, (long long)expect_version,
                       (long long)expect_samples);
    }
    if (h.dim != expect_dim || (len - FA_UPDATE_HEADER_BYTES) / 4 != expect_dim ||
        (len - FA_UPDATE_HEADER_BYTES) % 4 != 0) {
        *reason_out = "wrong_dimension";
        return fa_fail(err, FA_EINVAL, "update has dimension %u (%zu payload bytes), model has %zu",
                       h.dim, len - FA_UPDATE_HEADER_BYTES, expect_dim);
    }
    /* In chunks that stay in L1: decoded, then squared into the norm (whole
     * norm blocks, so the sum has fa_clip_norm's bits), then checked, so the
     * plaintext is read once for all three. */
    const unsigned char *p = plain + FA_UPDATE_HEADER_BYTES;
    fa_clip_sumsq_init(sumsq_out);
    for (size_t off = 0; off < expect_dim; off += DECODE_CHUNK) {
        size_t n = expect_dim - off < DECODE_CHUNK ? expect_dim - off : DECODE_CHUNK;
        fa_bytes_get_f32s(out + off, p + 4 * off, n);
        fa_clip_sumsq_add(sumsq_out, out + off, n);
        if (!fa_clip_sumsq_finite(sumsq_out)) {
            size_t i = off;
            while (i < off + n - 1 && isfinite(out[i]))
                i++;
            *reason_out = "non_finite";
            return fa_fail(err, FA_EINVAL, "update value %zu is not finite", i);
        }
    }
    return FA_OK;
}
