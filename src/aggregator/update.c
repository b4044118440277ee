#include "aggregator/update.h"

#include <math.h>
#include <string.h>

static uint32_t get_u32le(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_u32le(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

int fa_update_decode(float *out, const char **reason_out, const unsigned char *plain, size_t len,
                     int64_t expect_version, int64_t expect_samples, size_t expect_dim,
                     fa_error *err)
{
    fa_update_header h;

    *reason_out = NULL;
    if (len < FA_UPDATE_HEADER_BYTES || memcmp(plain, FA_UPDATE_MAGIC, 4) != 0) {
        *reason_out = "bad_header";
        return fa_fail(err, FA_EINVAL, "update plaintext does not start with the FAU1 header");
    }
    h.model_version = get_u32le(plain + 4);
    h.dim = get_u32le(plain + 8);
    h.num_samples = get_u32le(plain + 12);
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
    /* Byte-wise decode keeps this correct on any host and any alignment. */
    const unsigned char *p = plain + FA_UPDATE_HEADER_BYTES;
    for (size_t i = 0; i < expect_dim; i++, p += 4) {
        uint32_t bits = get_u32le(p);
        float v;
        memcpy(&v, &bits, sizeof(v));
        if (!isfinite(v)) {
            *reason_out = "non_finite";
            return fa_fail(err, FA_EINVAL, "update value %zu is not finite", i);
        }
        out[i] = v;
    }
    return FA_OK;
}

void fa_update_encode(unsigned char *out, uint32_t model_version, uint32_t num_samples,
                      const float *delta, size_t dim)
{
    memcpy(out, FA_UPDATE_MAGIC, 4);
    put_u32le(out + 4, model_version);
    put_u32le(out + 8, (uint32_t)dim);
    put_u32le(out + 12, num_samples);
    for (size_t i = 0; i < dim; i++) {
        uint32_t bits;
        memcpy(&bits, &delta[i], sizeof(bits));
        put_u32le(out + FA_UPDATE_HEADER_BYTES + 4 * i, bits);
    }
}
