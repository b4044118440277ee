#include "core/base64.h"

#include <openssl/evp.h>
#include <sodium.h>
#include <stdint.h>
#include <string.h>

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

/* 1 for the 64 characters of the standard alphabet. */
static int in_alphabet(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

int fa_base64_decode(unsigned char *out, size_t cap, size_t *len_out, const char *b64, size_t len)
{
    const unsigned char *in = (const unsigned char *)b64;
    size_t pad = 0, n;

    *len_out = 0;
    /* Strict RFC 4648 base64: whole quads, the standard alphabet, at most
     * two '=' at the very end, nothing ignored. The check is ours; the
     * decoding is OpenSSL's EVP_DecodeBlock, several times faster than
     * libsodium's constant-time decoder, which buys nothing here: the
     * input is ciphertext or a public key, not a secret. */
    if (len == 0 || len % 4 != 0 || len / 4 > (size_t)INT32_MAX / 3)
        return FA_EINVAL;
    if (in[len - 1] == '=')
        pad = in[len - 2] == '=' ? 2 : 1;
    for (size_t i = 0; i < len - pad; i++)
        if (!in_alphabet(in[i]))
            return FA_EINVAL;
    n = len / 4 * 3 - pad;
    if (n > cap)
        return FA_EINVAL;
    /* EVP_DecodeBlock writes whole triples, padding included: decode the
     * last quad into a scratch buffer so out never needs more than n. */
    if (len > 4 && EVP_DecodeBlock(out, in, (int)(len - 4)) != (int)((len - 4) / 4 * 3))
        return FA_EINVAL;
    unsigned char last[3];
    if (EVP_DecodeBlock(last, in + len - 4, 4) != 3)
        return FA_EINVAL;
    /* Non-canonical encodings (padding bits set) are rejected too. */
    if ((pad == 1 && (last[2] != 0)) || (pad == 2 && (last[1] != 0 || last[2] != 0)))
        return FA_EINVAL;
    memcpy(out + (len - 4) / 4 * 3, last, 3 - pad);
    *len_out = n;
    return FA_OK;
}

int fa_base64url_decode(unsigned char *out, size_t cap, size_t *len_out, const char *b64,
                        size_t len)
{
    const char *end = NULL;

    *len_out = 0;
    /* libsodium's decoder rejects padding, foreign characters and
     * non-zero trailing bits for this variant; nothing is ignored. */
    if (len % 4 == 1 ||
        sodium_base642bin(out, cap, b64, len, NULL, len_out, &end,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        end != b64 + len) {
        *len_out = 0;
        return FA_EINVAL;
    }
    return FA_OK;
}
