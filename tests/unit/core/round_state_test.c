#include <criterion/criterion.h>

#include "core/round_state.h"

Test(round_state, names_round_trip)
{
    for (int s = FA_ROUND_OPEN; s <= FA_ROUND_REFUSED; s++) {
        fa_round_state back;
        cr_assert_eq(fa_round_state_parse(&back, fa_round_state_name((fa_round_state)s)), FA_OK);
        cr_assert_eq((int)back, s);
    }
    fa_round_state x;
    cr_assert_eq(fa_round_state_parse(&x, "published"), FA_EINVAL);
    cr_assert_eq(fa_round_state_parse(&x, "closing"), FA_EINVAL,
                 "no state between open and its end");
}

Test(round_state, only_documented_transitions)
{
    /* open -> closed | abandoned | refused; nothing leaves an end state */
    static const int allowed[4][4] = {
        /* to: open closed abandoned refused */
        {0, 1, 1, 1}, /* from open */
        {0, 0, 0, 0}, /* from closed */
        {0, 0, 0, 0}, /* from abandoned */
        {0, 0, 0, 0}, /* from refused */
    };
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++)
            cr_assert_eq(fa_round_state_can_move((fa_round_state)a, (fa_round_state)b),
                         allowed[a][b], "%d -> %d", a, b);
}
