/* Fuzz target: the configuration file parser (operator input). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    fa_config cfg;
    fa_error err = FA_ERROR_INIT;

    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    fa_config_defaults(&cfg);
    if (fa_config_parse(&cfg, text, "fuzz", &err) == FA_OK) {
        int rc = fa_config_validate(&cfg, &err);
        (void)rc; /* both outcomes are fine; only crashes matter */
    }
    free(text);
    return 0;
}
