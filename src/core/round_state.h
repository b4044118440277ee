/*
 * The round lifecycle as a pure state machine: which transitions exist and
 * how states are spelled in the database. The store reads and writes these
 * states, the aggregator decides them. No I/O, no state; any thread.
 *
 *   open -> closed | abandoned | refused
 *
 * A close is one transaction under an advisory lock (store/close.c): a
 * close that fails before it commits leaves the round open, so there is no
 * state in between.
 */
#ifndef FA_CORE_ROUND_STATE_H
#define FA_CORE_ROUND_STATE_H

#include "core/error.h"

typedef enum fa_round_state {
    FA_ROUND_OPEN,
    FA_ROUND_CLOSED,
    FA_ROUND_ABANDONED,
    FA_ROUND_REFUSED,
} fa_round_state;

/* The database spelling ("open", "closed", ...). */
const char *fa_round_state_name(fa_round_state s);

/* Parses a database spelling; FA_EINVAL when unknown. */
int fa_round_state_parse(fa_round_state *out, const char *name) FA_MUST_CHECK;

/* 1 when from -> to is a legal transition, else 0. */
int fa_round_state_can_move(fa_round_state from, fa_round_state to);

/* 1 for the states that end a round (closed, abandoned, refused). */
int fa_round_state_is_final(fa_round_state s);

#endif
