#include <criterion/criterion.h>
#include <stdlib.h>

#include "aggregator/idset.h"

Test(idset, empty_holds_nothing)
{
    fa_idset s = FA_IDSET_INIT;

    cr_assert_eq(fa_idset_has(&s, 1), 0);
    cr_assert_eq(s.len, 0);
    fa_idset_done(&s);
}

Test(idset, adding_twice_holds_once)
{
    fa_idset s = FA_IDSET_INIT;
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_idset_add(&s, 42, &err), FA_OK);
    cr_assert_eq(fa_idset_add(&s, 42, &err), FA_OK);
    cr_assert_eq(s.len, 1);
    cr_assert(fa_idset_has(&s, 42));
    cr_assert_eq(fa_idset_add(&s, 0, &err), FA_EINVAL);
    cr_assert_eq(fa_idset_add(&s, -3, &err), FA_EINVAL);
    cr_assert_eq(s.len, 1);
    fa_idset_done(&s);
}

/* Against a brute-force membership table, through several growths. */
Test(idset, agrees_with_a_table_through_growth_and_clear)
{
    enum { N = 20000 };
    fa_idset s = FA_IDSET_INIT;
    fa_error err = FA_ERROR_INIT;
    unsigned char *in = calloc(4 * N + 1, 1);
    uint32_t x = 12345;
    size_t want = 0;

    cr_assert(in != NULL);
    for (int i = 0; i < N; i++) {
        x = x * 1664525u + 1013904223u;
        int64_t id = 1 + (int64_t)(x % (4 * N));
        want += !in[id];
        in[id] = 1;
        cr_assert_eq(fa_idset_add(&s, id, &err), FA_OK);
    }
    cr_assert_eq(s.len, want);
    for (int64_t id = 1; id <= 4 * N; id++)
        cr_assert_eq(fa_idset_has(&s, id), in[id], "id %lld", (long long)id);
    fa_idset_clear(&s);
    cr_assert_eq(s.len, 0);
    for (int64_t id = 1; id <= 4 * N; id++)
        cr_assert_eq(fa_idset_has(&s, id), 0);
    free(in);
    fa_idset_done(&s);
}
