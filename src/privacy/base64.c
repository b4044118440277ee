#include "privacy/base64.h"

#include <sodium.h>

/*
 * sodium_bin2base64 aborts the process when out is too short, so the
 * length is checked first and a short buffer gets the empty string.
 */
static void encode(char *out, size_t cap, const void *bin, size_t n, int variant)
{
    if (cap == 0)
        return;
    out[0] = '\0';
    if (cap < sodium_base64_encoded_len(n, variant))
        return;
    (void)sodium_bin2base64(out, cap, bin, n, variant);
}

void fa_base64_encode(char *out, size_t cap, const void *bin, size_t n)
{
    encode(out, cap, bin, n, sodium_base64_VARIANT_ORIGINAL);
}

void fa_base64url_encode(char *out, size_t cap, const void *bin, size_t n)
{
    encode(out, cap, bin, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

int fa_base64_decode(unsigned char *out, size_t cap, size_t *len_out, const char *b64, size_t len)
{
    const char *end = NULL;
    size_t n = 0;

    *len_out = 0;
    /* Strict: no ignored characters, and the whole input must be used. */
    if (sodium_base642bin(out, cap, b64, len, NULL, &n, &end, sodium_base64_VARIANT_ORIGINAL) !=
            0 ||
        end != b64 + len)
        return FA_EINVAL;
    *len_out = n;
    return FA_OK;
}
