/* Fuzz target: request routing and the model download path. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *url = malloc(size + 1);
    const char *method = NULL;
    fa_error err = FA_ERROR_INIT;
    int64_t v;
    int fmt, by_accept;

    if (url == NULL)
        return 0;
    memcpy(url, data, size);
    url[size] = '\0';
    if (fa_api_route_find(url, &method) == FA_ROUTE_MODEL) {
        int rc =
            fa_api_model_path(&v, &fmt, &by_accept, url + strlen("/api/federated/model/"), &err);
        (void)rc;
    }
    free(url);
    return 0;
}
