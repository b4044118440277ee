#include "aggregator/idset.h"

#include <stdlib.h>
#include <string.h>

/* Fibonacci hashing: row ids are sequential, so spread them over the table. */
static size_t slot_of(int64_t id, size_t cap)
{
    return (size_t)(((uint64_t)id * 11400714819323198485ull) >> 17) & (cap - 1);
}

int fa_idset_has(const fa_idset *s, int64_t id)
{
    if (s->cap == 0 || id <= 0)
        return 0;
    for (size_t i = slot_of(id, s->cap);; i = (i + 1) & (s->cap - 1)) {
        if (s->slots[i] == id)
            return 1;
        if (s->slots[i] == 0)
            return 0;
    }
}

static void put(int64_t *slots, size_t cap, int64_t id)
{
    size_t i = slot_of(id, cap);

    while (slots[i] != 0 && slots[i] != id)
        i = (i + 1) & (cap - 1);
    slots[i] = id;
}

int fa_idset_add(fa_idset *s, int64_t id, fa_error *err)
{
    if (id <= 0)
        return fa_fail(err, FA_EINVAL, "update id %lld is not positive", (long long)id);
    if (fa_idset_has(s, id))
        return FA_OK;
    /* Kept at most half full, so a probe ends after a few slots. */
    if (2 * (s->len + 1) > s->cap) {
        size_t cap = s->cap == 0 ? 64 : 2 * s->cap;
        int64_t *slots;
        if (cap > SIZE_MAX / sizeof(int64_t) / 2)
            return fa_fail(err, FA_ENOMEM, "too many updates in one round");
        slots = calloc(cap, sizeof(int64_t));
        if (slots == NULL)
            return fa_fail(err, FA_ENOMEM, "out of memory for the round's update ids");
        for (size_t i = 0; i < s->cap; i++)
            if (s->slots[i] != 0)
                put(slots, cap, s->slots[i]);
        free(s->slots);
        s->slots = slots;
        s->cap = cap;
    }
    put(s->slots, s->cap, id);
    s->len++;
    return FA_OK;
}

void fa_idset_clear(fa_idset *s)
{
    if (s->cap > 0)
        memset(s->slots, 0, s->cap * sizeof(int64_t));
    s->len = 0;
}

void fa_idset_done(fa_idset *s)
{
    if (s == NULL)
        return;
    free(s->slots);
    s->slots = NULL;
    s->cap = s->len = 0;
}
