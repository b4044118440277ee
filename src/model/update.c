#include "model/update.h"

#include <string.h>

#include "core/bytes.h"

void fa_update_encode(unsigned char *out, uint32_t model_version, uint32_t num_samples,
                      const float *delta, size_t dim)
{
    memcpy(out, FA_UPDATE_MAGIC, 4);
    fa_bytes_put_u32(out + 4, model_version);
    fa_bytes_put_u32(out + 8, (uint32_t)dim);
    fa_bytes_put_u32(out + 12, num_samples);
    for (size_t i = 0; i < dim; i++) {
        uint32_t bits;
        memcpy(&bits, &delta[i], sizeof(bits));
        fa_bytes_put_u32(out + FA_UPDATE_HEADER_BYTES + 4 * i, bits);
    }
}
