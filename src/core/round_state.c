#include "core/round_state.h"

#include <string.h>

static const char *const NAMES[] = {"open", "closed", "abandoned", "refused"};

const char *fa_round_state_name(fa_round_state s)
{
    if ((unsigned)s >= FA_ARRAY_LEN(NAMES))
        return "unknown";
    return NAMES[s];
}

int fa_round_state_parse(fa_round_state *out, const char *name)
{
    for (unsigned i = 0; i < FA_ARRAY_LEN(NAMES); i++) {
        if (strcmp(NAMES[i], name) == 0) {
            *out = (fa_round_state)i;
            return FA_OK;
        }
    }
    return FA_EINVAL;
}

int fa_round_state_is_final(fa_round_state s)
{
    return s == FA_ROUND_CLOSED || s == FA_ROUND_ABANDONED || s == FA_ROUND_REFUSED;
}

int fa_round_state_can_move(fa_round_state from, fa_round_state to)
{
    switch (from) {
    case FA_ROUND_OPEN:
        return fa_round_state_is_final(to);
    case FA_ROUND_CLOSED:
    case FA_ROUND_ABANDONED:
    case FA_ROUND_REFUSED:
        return 0;
    }
    return 0;
}
