/*
 * Fuzz target: POST /api/federated/update in both forms. The whole input is
 * the JSON body; it is also read as the binary form: four header values
 * and the body, separated by newlines (a value may be missing).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fa_api_update u;
    const char *code = NULL;
    fa_error err = FA_ERROR_INIT;
    char *copy, *field[4] = {NULL, NULL, NULL, NULL}, *p;
    unsigned char *box;
    size_t rest;

    if (fa_api_update_parse(&u, &code, (const char *)data, size, 1u << 20, &err) == FA_OK)
        fa_api_update_done(&u);

    if ((copy = malloc(size + 1)) == NULL)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    p = copy;
    for (int i = 0; i < 4 && p != NULL; i++) {
        char *nl = memchr(p, '\n', size - (size_t)(p - copy));
        field[i] = p;
        if (nl == NULL) {
            p = NULL;
            break;
        }
        *nl = '\0';
        p = nl + 1;
    }
    rest = p != NULL ? size - (size_t)(p - copy) : 0;
    box = rest > 0 ? malloc(rest) : NULL;
    if (box != NULL)
        memcpy(box, p, rest);
    if (fa_api_update_binary(&u, &code, field[0], field[1], field[2], field[3], &box, rest, 4096,
                             &err) == FA_OK)
        fa_api_update_done(&u);
    free(copy);
    return 0;
}
