#include "core/digest.h"

#include <sodium.h>

void fa_sha256(unsigned char out[FA_SHA256_BYTES], const void *data, size_t len)
{
    (void)crypto_hash_sha256(out, data, (unsigned long long)len);
}
