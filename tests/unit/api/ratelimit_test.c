#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "api/ratelimit.h"

static fa_ratelimit *make(double rate, double burst)
{
    fa_ratelimit *rl = NULL;
    fa_error err = FA_ERROR_INIT;
    cr_assert_eq(fa_ratelimit_new(&rl, 1024, rate, burst, &err), FA_OK, "%s", err.msg);
    return rl;
}

Test(ratelimit, a_key_spends_its_burst_then_waits_for_the_rate)
{
    fa_ratelimit *rl = make(2.0, 5.0);
    int retry = -1;

    for (int i = 0; i < 5; i++)
        cr_assert_eq(fa_ratelimit_take(rl, "10.0.0.1", 8, 100.0, &retry), 1, "request %d", i);
    cr_assert_eq(fa_ratelimit_take(rl, "10.0.0.1", 8, 100.0, &retry), 0);
    cr_assert_eq(retry, 1, "one token at 2/s is earned within 1 s (whole seconds, rounded up)");
    /* 0.4 s earns 0.8 of a token: still refused; 0.5 s earns one. */
    cr_assert_eq(fa_ratelimit_take(rl, "10.0.0.1", 8, 100.4, &retry), 0);
    cr_assert_eq(fa_ratelimit_take(rl, "10.0.0.1", 8, 100.5, &retry), 1);
    /* A long pause refills to the burst, not beyond. */
    for (int i = 0; i < 5; i++)
        cr_assert_eq(fa_ratelimit_take(rl, "10.0.0.1", 8, 1000.0, &retry), 1);
    cr_assert_eq(fa_ratelimit_take(rl, "10.0.0.1", 8, 1000.0, &retry), 0);
    fa_ratelimit_free(rl);
}

Test(ratelimit, retry_after_counts_the_whole_wait)
{
    fa_ratelimit *rl = make(0.1, 1.0); /* one request every 10 s */
    int retry = 0;

    cr_assert_eq(fa_ratelimit_take(rl, "k", 1, 0.0, &retry), 1);
    cr_assert_eq(fa_ratelimit_take(rl, "k", 1, 0.0, &retry), 0);
    cr_assert_eq(retry, 10);
    cr_assert_eq(fa_ratelimit_take(rl, "k", 1, 7.5, &retry), 0);
    cr_assert_eq(retry, 3);
    cr_assert_eq(fa_ratelimit_take(rl, "k", 1, 10.0, &retry), 1);
    fa_ratelimit_free(rl);
}

Test(ratelimit, keys_are_independent_and_long_keys_work)
{
    fa_ratelimit *rl = make(1.0, 2.0);
    char a[100], b[100];
    int retry;

    memset(a, 'a', sizeof(a));
    memcpy(b, a, sizeof(b));
    b[99] = 'b'; /* differs only past FA_RATELIMIT_KEY_MAX */
    cr_assert_eq(fa_ratelimit_take(rl, a, sizeof(a), 0, &retry), 1);
    cr_assert_eq(fa_ratelimit_take(rl, a, sizeof(a), 0, &retry), 1);
    cr_assert_eq(fa_ratelimit_take(rl, a, sizeof(a), 0, &retry), 0);
    cr_assert_eq(fa_ratelimit_take(rl, b, sizeof(b), 0, &retry), 1, "another long key");
    cr_assert_eq(fa_ratelimit_take(rl, "x", 1, 0, &retry), 1);
    cr_assert_eq(fa_ratelimit_take(rl, "y", 1, 0, &retry), 1);
    cr_assert_eq(fa_ratelimit_take(rl, "", 0, 0, &retry), 1);
    fa_ratelimit_free(rl);
}

Test(ratelimit, rejects_bad_settings)
{
    fa_ratelimit *rl = NULL;
    fa_error err = FA_ERROR_INIT;
    cr_assert_eq(fa_ratelimit_new(&rl, 16, 0.0, 10.0, &err), FA_EINVAL);
    cr_assert_eq(fa_ratelimit_new(&rl, 16, 1.0, 0.5, &err), FA_EINVAL);
    cr_assert_null(rl);
}

struct race {
    fa_ratelimit *rl;
    atomic_int allowed;
};

static void *taker(void *arg)
{
    struct race *r = arg;
    int retry;
    for (int i = 0; i < 1000; i++)
        if (fa_ratelimit_take(r->rl, "shared", 6, 5.0, &retry))
            atomic_fetch_add(&r->allowed, 1);
    return NULL;
}

Test(ratelimit, concurrent_takes_never_spend_more_than_the_bucket)
{
    struct race r = {make(1.0, 300.0), 0};
    pthread_t t[8];

    for (int i = 0; i < 8; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, taker, &r), 0);
    for (int i = 0; i < 8; i++)
        (void)pthread_join(t[i], NULL);
    cr_assert_eq(atomic_load(&r.allowed), 300, "time stood still: exactly the burst is allowed");
    fa_ratelimit_free(r.rl);
}
