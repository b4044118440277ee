/*
 * Fuzz target: device authentication. The input is tried as the value of
 * an Authorization header against a fixed key set, and as a JWKS document.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char JWKS[] = "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"k1\","
                           "\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"},"
                           "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"k2\","
                           "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
                           "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}]}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fa_auth *a;
    fa_auth *b = NULL;
    fa_error err = FA_ERROR_INIT;
    char subject[FA_AUTH_SUBJECT_MAX + 1], *text;
    const char *code = NULL;

    if (a == NULL && fa_auth_new_from_text(&a, "iss", "aud", JWKS, strlen(JWKS), 60, &err) < 0)
        abort();
    if ((text = malloc(size + 8)) == NULL)
        return 0;
    memcpy(text, "Bearer ", 7);
    memcpy(text + 7, data, size);
    text[size + 7] = '\0';
    if (fa_auth_verify(subject, &code, a, text, 1700000000.0, &err) == FA_OK && subject[0] == 0)
        abort(); /* a verified token always names its subject */
    if (fa_auth_new_from_text(&b, "iss", "aud", (const char *)data, size, 60, &err) == FA_OK)
        fa_auth_free(b);
    free(text);
    return 0;
}
