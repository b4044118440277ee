/*
 * Fuzz target: the dataset parser (loo_train.tsv / loo_test.tsv are outside
 * input). The bytes before the first NUL are the training file, the rest the
 * test file. An accepted dataset must satisfy the invariants the trainers
 * rely on.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const fa_dataset *ds)
{
    int32_t items = fa_dataset_num_items(ds);
    size_t total = 0;

    for (int32_t u = 0; u < fa_dataset_num_users(ds); u++) {
        fa_device_data d = fa_dataset_user(ds, u);
        const int32_t *t = fa_dataset_test(ds, u);
        for (size_t i = 0; i < d.count; i++)
            if (d.items[i] < 0 || d.items[i] >= items || (i > 0 && d.items[i] <= d.items[i - 1]))
                abort();
        for (int i = 0; t != NULL && i < FA_DATASET_CANDIDATES; i++)
            if (t[i] < 0 || t[i] >= items)
                abort();
        total += d.count;
    }
    if (total != fa_dataset_num_interactions(ds))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fa_dataset_limits lim = FA_DATASET_LIMITS_INIT;
    fa_dataset *ds = NULL;
    fa_error err = FA_ERROR_INIT;
    const uint8_t *nul = memchr(data, 0, size);
    size_t train_len = nul != NULL ? (size_t)(nul - data) : size;
    const char *test = nul != NULL ? (const char *)nul + 1 : "";
    size_t test_len = nul != NULL ? size - train_len - 1 : 0;

    /* Ids bound the allocations; keep them small so that each input is fast. */
    lim.max_users = 5000;
    lim.max_items = 5000;
    lim.max_file_bytes = 1 << 20;
    if (fa_dataset_parse(&ds, (const char *)data, train_len, test, test_len, &lim, &err) == FA_OK)
        check(ds);
    fa_dataset_free(ds);
    return 0;
}
