/*
 * Fuzz target: a sealed update as the server receives it. The input is
 * tried as a sealed box for a fixed server key and, since random bytes
 * never decrypt, also as a plaintext (header plus floats) directly.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aggregator/update.h"
#include "privacy/crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DIM 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fa_crypto_box_key *key;
    float out[DIM];
    fa_clip_sumsq sq;
    const char *reason = NULL;
    fa_error err = FA_ERROR_INIT;
    int rc;

    if (key == NULL) {
        unsigned char sk[32];
        memset(sk, 7, sizeof(sk));
        if (fa_crypto_init(&err) < 0 || fa_crypto_box_key_from_secret(&key, sk, &err) < 0)
            abort();
    }
    if (size >= FA_CRYPTO_SEAL_OVERHEAD && size < (1u << 20)) {
        unsigned char *plain = malloc(size - FA_CRYPTO_SEAL_OVERHEAD + 1);
        size_t plain_len = 0;
        if (plain != NULL && fa_crypto_box_open(plain, size - FA_CRYPTO_SEAL_OVERHEAD, &plain_len,
                                                key, data, size, &err) == FA_OK) {
            rc = fa_update_decode(out, &sq, &reason, plain, plain_len, 1, 1, DIM, &err);
            (void)rc;
        }
        free(plain);
    }
    rc = fa_update_decode(out, &sq, &reason, data, size, 1, 1, DIM, &err);
    (void)rc;
    return 0;
}
