/*
 * A set of stored update ids (row ids of `updates`): which updates a running
 * sum already holds, so that every update is folded into a round's release
 * exactly once whatever the interleaving of accept, queue, rebuild and
 * close. Open addressing with linear probing; O(cohort) memory (16 bytes an
 * update at worst). Owned by one thread (the worker), no locking.
 */
#ifndef FA_AGGREGATOR_IDSET_H
#define FA_AGGREGATOR_IDSET_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct fa_idset {
    int64_t *slots; /* 0 = empty (row ids are positive) */
    size_t cap;     /* slots, a power of two, or 0 before the first insert */
    size_t len;     /* ids held */
} fa_idset;

#define FA_IDSET_INIT                                                                              \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

/* 1 when id is in s, else 0. */
int fa_idset_has(const fa_idset *s, int64_t id);

/*
 * Adds id (> 0). FA_OK (also when it was already there), FA_EINVAL for an
 * id <= 0, FA_ENOMEM (s unchanged).
 */
int fa_idset_add(fa_idset *s, int64_t id, fa_error *err) FA_MUST_CHECK;

/* Empties s, keeping its memory. */
void fa_idset_clear(fa_idset *s);

/* Frees s's memory (the struct is the caller's). NULL-safe. */
void fa_idset_done(fa_idset *s);

#endif
