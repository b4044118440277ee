#include "api/ratelimit.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define STRIPES 64 /* locks; slot i is guarded by stripe i % STRIPES */

struct bucket {
    unsigned char key[FA_RATELIMIT_KEY_MAX];
    unsigned char len; /* 0: free slot */
    double tokens;
    double at_s; /* when tokens was last brought up to date */
};

struct fa_ratelimit {
    double rate_per_s, burst;
    size_t mask;
    struct bucket *slots;
    pthread_mutex_t stripe[STRIPES];
};

int fa_ratelimit_new(fa_ratelimit **out, size_t slots, double rate_per_s, double burst,
                     fa_error *err)
{
    fa_ratelimit *rl;
    size_t n = 64;

    *out = NULL;
    if (!(rate_per_s > 0) || !(burst >= 1) || !isfinite(rate_per_s) || !isfinite(burst) ||
        slots > ((size_t)1 << 24))
        return fa_fail(err, FA_EINVAL,
                       "rate limit needs a positive rate and a burst of at least 1");
    while (n < slots)
        n *= 2;
    if ((rl = calloc(1, sizeof(*rl))) == NULL ||
        (rl->slots = calloc(n, sizeof(*rl->slots))) == NULL) {
        free(rl);
        return fa_fail(err, FA_ENOMEM, "out of memory for the rate limiter");
    }
    rl->rate_per_s = rate_per_s;
    rl->burst = burst;
    rl->mask = n - 1;
    for (int i = 0; i < STRIPES; i++)
        (void)pthread_mutex_init(&rl->stripe[i], NULL);
    *out = rl;
    return FA_OK;
}

/* FNV-1a, 64 bit: spreads keys over the slots (not a security boundary: a
 * collision only shares or resets a bucket). */
static uint64_t hash(const unsigned char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

int fa_ratelimit_take(fa_ratelimit *rl, const void *key, size_t len, double now_s,
                      int *retry_after_s)
{
    unsigned char k[FA_RATELIMIT_KEY_MAX];
    uint64_t h = hash(key, len);
    size_t i = (size_t)h & rl->mask, klen = len;
    pthread_mutex_t *mu = &rl->stripe[i % STRIPES];
    struct bucket *b = &rl->slots[i];
    int allowed;

    if (len > FA_RATELIMIT_KEY_MAX) { /* a long key: its hash stands for it */
        memcpy(k, &h, sizeof(h));
        klen = sizeof(h);
    } else if (len == 0) { /* the empty key is one key like any other */
        k[0] = 0;
        klen = 1;
    } else {
        memcpy(k, key, len);
    }
    *retry_after_s = 0;
    (void)pthread_mutex_lock(mu);
    if (b->len != klen || memcmp(b->key, k, klen) != 0) {
        memcpy(b->key, k, klen);
        b->len = (unsigned char)klen;
        b->tokens = rl->burst;
        b->at_s = now_s;
    } else if (now_s > b->at_s) {
        b->tokens = fmin(rl->burst, b->tokens + (now_s - b->at_s) * rl->rate_per_s);
        b->at_s = now_s;
    }
    allowed = b->tokens >= 1.0;
    if (allowed)
        b->tokens -= 1.0;
    else
        *retry_after_s = (int)ceil((1.0 - b->tokens) / rl->rate_per_s);
    (void)pthread_mutex_unlock(mu);
    if (!allowed && *retry_after_s < 1)
        *retry_after_s = 1;
    return allowed;
}

void fa_ratelimit_free(fa_ratelimit *rl)
{
    if (rl == NULL)
        return;
    for (int i = 0; i < STRIPES; i++)
        (void)pthread_mutex_destroy(&rl->stripe[i]);
    free(rl->slots);
    free(rl);
}
