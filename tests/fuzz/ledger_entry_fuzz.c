/*
 * Fuzz target: the ledger entry parser (outside input: rows of the
 * database, which verification must survive whatever their content).
 * Whatever parses must re-encode to exactly the same bytes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "privacy/ledger.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fa_ledger_entry e;
    fa_error err = FA_ERROR_INIT;
    char *text = NULL;
    size_t len = 0;

    if (fa_ledger_entry_parse(&e, (const char *)data, size, &err) != FA_OK)
        return 0;
    if (fa_ledger_entry_encode(&text, &len, &e, &err) != FA_OK || len != size ||
        memcmp(text, data, size) != 0)
        abort(); /* a parsed entry must be canonical */
    free(text);
    return 0;
}
