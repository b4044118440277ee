/*
 * Fuzz target: an update's encryptedGradients field as the server reads it,
 * base64 (strict) and then a sealed box opened with the server key. Outside
 * input from any device.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/base64.h"
#include "privacy/crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A fixed server key, so seeds sealed to it (corpus) reach the open path. */
static const unsigned char SECRET[FA_CRYPTO_BOX_SK_BYTES] = {
    1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
    17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fa_crypto_box_key *key;
    fa_error err = FA_ERROR_INIT;
    unsigned char *box = NULL, *plain = NULL;
    size_t box_len = 0, plain_len = 0;

    if (key == NULL && (fa_crypto_init(&err) != FA_OK ||
                        fa_crypto_box_key_from_secret(&key, SECRET, &err) != FA_OK))
        abort();
    box = malloc(size / 4 * 3 + 3);
    if (box == NULL)
        return 0;
    if (fa_base64_decode(box, size / 4 * 3 + 3, &box_len, (const char *)data, size) == FA_OK &&
        box_len >= FA_CRYPTO_SEAL_OVERHEAD) {
        plain = fa_crypto_secure_alloc(box_len - FA_CRYPTO_SEAL_OVERHEAD + 1);
        if (plain != NULL &&
            fa_crypto_box_open(plain, box_len - FA_CRYPTO_SEAL_OVERHEAD, &plain_len, key, box,
                               box_len, &err) == FA_OK &&
            plain_len != box_len - FA_CRYPTO_SEAL_OVERHEAD)
            abort();
        fa_crypto_secure_free(plain);
    }
    free(box);
    return 0;
}
