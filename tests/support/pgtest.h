/*
 * Helpers for tests against a real PostgreSQL. FA_TEST_PG holds a superuser
 * conninfo of the throwaway cluster the test command started; each test
 * makes its own database. FEDAGG_BIN and FA_PG_CLUSTER are set by meson.
 */
#ifndef FA_TESTS_PGTEST_H
#define FA_TESTS_PGTEST_H

#include <libpq-fe.h>
#include <stddef.h>

/* Creates a fresh, migrated database; writes its conninfo. Aborts the test on failure. */
int fa_pgtest_create_db(char *conninfo_out, size_t cap);

/* Same, without running the migrations. */
int fa_pgtest_create_empty_db(char *conninfo_out, size_t cap);

/* Connects (superuser); aborts the test on failure. */
PGconn *fa_pgtest_connect(const char *conninfo);

/* Runs sql (no parameters) and returns the first column of the first row as
 * a new string (or "" for commands); aborts the test on error. */
char *fa_pgtest_query(PGconn *pg, const char *sql);

/* Like fa_pgtest_query, but returns NULL instead of aborting when the SQL fails. */
char *fa_pgtest_try(PGconn *pg, const char *sql, char *errbuf, size_t errcap);

/*
 * Runs argv (argv[0] = "fedagg" is replaced by $FEDAGG_BIN; NULL-terminated)
 * with extra environment "K=V" pairs (NULL-terminated, may be NULL),
 * capturing stdout+stderr into out (NUL-terminated, truncated to cap).
 * Returns the exit status, or -1 if it did not exit normally.
 */
int fa_pgtest_run(char *out, size_t cap, const char *const *argv, const char *const *env);

/* Path of the cluster script (scripts/pg-cluster.sh). */
const char *fa_pgtest_cluster_script(void);

/*
 * How many times slower than a plain build this build runs real work: 2
 * under AddressSanitizer (measured: about 1.9 for simulated devices), else
 * 1; FA_TEST_TIME_SCALE (a number >= 1) overrides it on a slow machine. A
 * round always runs to its deadline, so a test whose devices do real work
 * gives the server a deadline of its base duration times this: long enough
 * under ASan, short in a plain build.
 */
double fa_pgtest_time_scale(void);

/* Writes "FEDAGG_ROUND_DEADLINE_S=<seconds>" into buf (cap bytes); returns buf. */
const char *fa_pgtest_deadline_env(char *buf, size_t cap, double seconds);

#endif
