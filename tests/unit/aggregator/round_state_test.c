#include <criterion/criterion.h>

#include "aggregator/round_state.h"

Test(round_state, names_round_trip)
{
    for (int s = FA_ROUND_OPEN; s <= FA_ROUND_REFUSED; s++) {
        fa_round_state back;
        cr_assert_eq(fa_round_state_parse(&back, fa_round_state_name((fa_round_state)s)), FA_OK);
        cr_assert_eq((int)back, s);
    }
    fa_round_state x;
    cr_assert_eq(fa_round_state_parse(&x, "published"), FA_EINVAL);
}

Test(round_state, only_documented_transitions)
{
    /* open -> closing -> closed | abandoned | refused, closing -> open */
    static const int allowed[5][5] = {
        /* to: open closing closed abandoned refused */
        {0, 1, 0, 0, 0}, /* from open */
        {1, 0, 1, 1, 1}, /* from closing */
        {0, 0, 0, 0, 0}, /* from closed */
        {0, 0, 0, 0, 0}, /* from abandoned */
        {0, 0, 0, 0, 0}, /* from refused */
    };
    for (int a = 0; a < 5; a++)
        for (int b = 0; b < 5; b++)
            cr_assert_eq(fa_round_state_can_move((fa_round_state)a, (fa_round_state)b),
                         allowed[a][b], "%d -> %d", a, b);
}
