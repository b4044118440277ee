/*
 * Runs `fedagg serve` as a child process for end-to-end tests: a fresh key
 * directory, a database, port 0, and the URL it listens on.
 */
#ifndef FA_TESTS_SERVE_H
#define FA_TESTS_SERVE_H

#include <stdint.h>
#include <sys/types.h>

typedef struct fa_test_server {
    pid_t pid;
    int port;
    char url[64];
    char db[1024]; /* conninfo */
    char keydir[256];
} fa_test_server;

/* Creates a key directory with `fedagg keygen`; aborts the test on failure. */
void fa_test_keygen(char *dir_out, size_t cap);

/*
 * Starts fedagg serve on db with keys in keydir and the extra "K=V"
 * environment (NULL-terminated, may be NULL); waits until it listens.
 * An env with a non-empty FEDAGG_NOISE_SEED also gets
 * FEDAGG_INSECURE_SEEDED_NOISE=1 (unless env sets it itself), since serve
 * refuses seeded noise without it. Aborts the test if it does not listen
 * within 60 s.
 */
void fa_test_server_start(fa_test_server *s, const char *db, const char *keydir,
                          const char *const *env);

/* Sends sig (SIGKILL, SIGTERM) and reaps the process. */
void fa_test_server_stop(fa_test_server *s, int sig);

/* Polls GET /api/federated/model/latest until its version is >= v; returns the version seen. */
long fa_test_wait_version(const char *url, long v, int timeout_s);

/* Sleeps ms milliseconds. */
void fa_test_sleep_ms(long ms);

/* Runs sql on db (a new connection) and returns the first value as a long. */
long fa_test_sql_long(const char *db, const char *sql);

/* Round id's deadline as the server stored it (seconds since the epoch). */
double fa_test_round_deadline(const char *db, int64_t id);

/*
 * Waits until the open round has at least left_s seconds before its
 * deadline (rounds keep a fixed schedule, so a test that waited may be
 * just before one) and returns its id. The servers share this clock.
 * Aborts the test when no such round appears within 30 s.
 */
int64_t fa_test_fresh_round(const char *db, double left_s);

#endif
