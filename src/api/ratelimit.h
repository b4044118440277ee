/*
 * Token buckets keyed by a short byte string (a source address, a device
 * pseudonym): each key may spend `burst` requests at once and earns
 * `rate_per_s` more per second. Memory is bounded: a fixed table of slots,
 * where a new key takes the slot of its hash (evicting whoever held it, who
 * then starts again with a full bucket: a collision can only make the limit
 * looser, never refuse an honest key that did not spend its own bucket).
 * Thread-safe (striped locks); any thread.
 */
#ifndef FA_API_RATELIMIT_H
#define FA_API_RATELIMIT_H

#include <stddef.h>

#include "core/compiler.h"
#include "core/error.h"

typedef struct fa_ratelimit fa_ratelimit;

#define FA_RATELIMIT_KEY_MAX 32 /* bytes of a key; longer keys are hashed down */

/* A limiter of `slots` buckets (rounded up to a power of two, at least 64). FA_EINVAL, FA_ENOMEM.
 */
int fa_ratelimit_new(fa_ratelimit **out, size_t slots, double rate_per_s, double burst,
                     fa_error *err) FA_MUST_CHECK;

/*
 * Spends one request of key (len bytes) at time now_s (any monotonic
 * seconds). Returns 1 when allowed; 0 when the bucket is empty, with
 * *retry_after_s the whole seconds (>= 1) until one request is earned.
 */
int fa_ratelimit_take(fa_ratelimit *rl, const void *key, size_t len, double now_s,
                      int *retry_after_s);

void fa_ratelimit_free(fa_ratelimit *rl);

#endif
