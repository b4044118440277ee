/* Fuzz target: the body of POST /api/federated/update (JSON and base64). */
#include <stddef.h>
#include <stdint.h>

#include "api/request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fa_api_update u;
    const char *code = NULL;
    fa_error err = FA_ERROR_INIT;

    if (fa_api_update_parse(&u, &code, (const char *)data, size, 1u << 20, &err) == FA_OK)
        fa_api_update_done(&u);
    return 0;
}
