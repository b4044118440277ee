/* `fedagg migrate` as an operator runs it, against a real PostgreSQL. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pgtest.h"
#include "store/migrations_embedded.h"

TestSuite(migrate, .timeout = 120);

static int migrate(char *out, size_t cap, const char *conninfo, const char *dir)
{
    const char *argv[] = {"fedagg", "migrate", "--database-url", conninfo, NULL, NULL, NULL};
    if (dir != NULL) {
        argv[4] = "--dir";
        argv[5] = dir;
    }
    return fa_pgtest_run(out, cap, argv, NULL);
}

static char *scalar(const char *conninfo, const char *sql)
{
    PGconn *pg = fa_pgtest_connect(conninfo);
    char *v = fa_pgtest_query(pg, sql);
    PQfinish(pg);
    return v;
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    (void)snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

/* A decimal count from the database. */
static int atoi_checked(const char *v)
{
    char *end = NULL;
    long n = strtol(v, &end, 10);
    cr_assert(end != v && *end == '\0', "not a number: %s", v);
    return (int)n;
}

Test(migrate, empty_database_then_noop)
{
    char db[1024], out[4096];
    char *v;

    fa_pgtest_create_empty_db(db, sizeof(db));
    cr_assert_eq(migrate(out, sizeof(out), db, NULL), 0, "%s", out);
    cr_assert(strstr(out, "applied 0001_initial.sql") != NULL, "%s", out);
    v = scalar(db, "SELECT count(*) FROM information_schema.tables WHERE table_name IN "
                   "('rounds','updates','model_versions','privacy_ledger','schema_migrations',"
                   "'round_tokens')");
    cr_assert_str_eq(v, "6");
    free(v);
    v = scalar(db, "SELECT max(applied_at)::text FROM schema_migrations");
    cr_assert_eq(migrate(out, sizeof(out), db, NULL), 0, "%s", out);
    cr_assert(strstr(out, "up to date") != NULL, "%s", out);
    char *after = scalar(db, "SELECT max(applied_at)::text FROM schema_migrations");
    cr_assert_str_eq(v, after, "a no-op run must not touch schema_migrations");
    free(v);
    free(after);
    v = scalar(db, "SELECT count(*) FROM schema_migrations");
    cr_assert_eq(atoi_checked(v), FA_MIGRATIONS_COUNT, "%s", v);
    free(v);
}

Test(migrate, edited_applied_migration_is_refused)
{
    char db[1024], out[4096], dir[] = "/tmp/fa-mig-XXXXXX";

    cr_assert_not_null(mkdtemp(dir));
    fa_pgtest_create_empty_db(db, sizeof(db));
    write_file(dir, "0001_a.sql", "CREATE TABLE a (x int);\n");
    cr_assert_eq(migrate(out, sizeof(out), db, dir), 0, "%s", out);
    write_file(dir, "0001_a.sql", "CREATE TABLE a (x bigint);\n");
    write_file(dir, "0002_b.sql", "CREATE TABLE b (x int);\n");
    cr_assert_eq(migrate(out, sizeof(out), db, dir), 1, "%s", out);
    cr_assert(strstr(out, "migration 0001_a.sql was changed after it was applied") != NULL, "%s",
              out);
    char *v = scalar(db, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'b'");
    cr_assert_str_eq(v, "0", "nothing may be applied after a checksum mismatch");
    free(v);
}

Test(migrate, failing_migration_leaves_nothing_behind)
{
    char db[1024], out[4096], dir[] = "/tmp/fa-mig-XXXXXX";

    cr_assert_not_null(mkdtemp(dir));
    fa_pgtest_create_empty_db(db, sizeof(db));
    write_file(dir, "0001_a.sql", "CREATE TABLE a (x int);\n");
    write_file(dir, "0002_b.sql", "CREATE TABLE b (x int);\nSELECT no_such_function();\n");
    cr_assert_eq(migrate(out, sizeof(out), db, dir), 1, "%s", out);
    cr_assert(strstr(out, "migration 0002_b.sql failed and was rolled back") != NULL, "%s", out);
    char *v = scalar(db, "SELECT string_agg(name, ',' ORDER BY name) FROM schema_migrations");
    cr_assert_str_eq(v, "0001_a.sql");
    free(v);
    v = scalar(db, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'b'");
    cr_assert_str_eq(v, "0");
    free(v);
}

Test(migrate, unknown_applied_migration_is_refused)
{
    char db[1024], out[4096];

    fa_pgtest_create_db(db, sizeof(db));
    PGconn *pg = fa_pgtest_connect(db);
    free(fa_pgtest_query(pg, "INSERT INTO schema_migrations (name, sha256) VALUES "
                             "('0999_future.sql', 'x')"));
    PQfinish(pg);
    cr_assert_eq(migrate(out, sizeof(out), db, NULL), 1, "%s", out);
    cr_assert(strstr(out, "0999_future.sql") != NULL, "%s", out);
}

Test(migrate, two_concurrent_runs_apply_once)
{
    char db[1024];
    const char *bin = getenv("FEDAGG_BIN");
    int fds[2][2];
    pid_t pids[2];
    char outs[2][4096];

    cr_assert_not_null(bin);
    fa_pgtest_create_empty_db(db, sizeof(db));
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(pipe(fds[i]), 0);
        pids[i] = fork();
        cr_assert_geq(pids[i], 0);
        if (pids[i] == 0) {
            dup2(fds[i][1], 1);
            dup2(fds[i][1], 2);
            close(fds[i][0]);
            execl(bin, "fedagg", "migrate", "--database-url", db, (char *)NULL);
            _exit(127);
        }
        close(fds[i][1]);
    }
    int applied = 0;
    for (int i = 0; i < 2; i++) {
        ssize_t n, len = 0;
        while ((n = read(fds[i][0], outs[i] + len, sizeof(outs[i]) - 1 - (size_t)len)) > 0)
            len += n;
        outs[i][len] = '\0';
        close(fds[i][0]);
        int status = 0;
        cr_assert_eq(waitpid(pids[i], &status, 0), pids[i]);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "run %d: %s", i, outs[i]);
        applied += strstr(outs[i], "applied 0001_initial.sql") != NULL;
    }
    cr_assert_eq(applied, 1, "exactly one run applies: [%s] [%s]", outs[0], outs[1]);
    char *v = scalar(db, "SELECT count(*) FROM schema_migrations");
    cr_assert_eq(atoi_checked(v), FA_MIGRATIONS_COUNT, "%s", v);
    free(v);
}

Test(migrate, unreachable_database_is_a_clear_error)
{
    char out[4096];
    cr_assert_eq(migrate(out, sizeof(out), "host=127.0.0.1 port=1 connect_timeout=2", NULL), 1);
    cr_assert(strstr(out, "database unavailable") != NULL, "%s", out);
}

Test(migrate, no_database_configured_is_usage_error)
{
    char out[4096];
    const char *argv[] = {"fedagg", "migrate", NULL};
    const char *env[] = {"DATABASE_URL=", NULL};
    cr_assert_eq(fa_pgtest_run(out, sizeof(out), argv, env), 2, "%s", out);
    cr_assert(strstr(out, "DATABASE_URL") != NULL, "%s", out);
}

/*
 * An upgrade from the schema that stored ciphertexts: the stored updates of
 * ended rounds are erased, those of the open round stay (the close folds
 * them) with the identity of their sealed box, so a retry is recognised.
 */
Test(migrate, partial_sums_upgrade_erases_ended_rounds_and_keeps_the_open_one)
{
    const char *src = getenv("FA_SOURCE_ROOT");
    char db[1024], out[4096], dir[] = "/tmp/fa-mig-XXXXXX", cmd[2048];
    char *v;

    cr_assert_not_null(src, "FA_SOURCE_ROOT is not set");
    cr_assert_not_null(mkdtemp(dir));
    (void)snprintf(cmd, sizeof(cmd), "cp %s/migrations/000[1-5]_*.sql %s/", src, dir);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    fa_pgtest_create_empty_db(db, sizeof(db));
    cr_assert_eq(migrate(out, sizeof(out), db, dir), 0, "%s", out);
    PGconn *pg = fa_pgtest_connect(db);
    free(fa_pgtest_query(pg, "INSERT INTO model_versions (version, sha256, snapshot)"
                             " VALUES (0, decode(repeat('00', 32), 'hex'), '\\x00')"));
    free(fa_pgtest_query(pg, "INSERT INTO model_versions (version, parent, sha256, snapshot)"
                             " VALUES (1, 0, decode(repeat('11', 32), 'hex'), '\\x00')"));
    free(fa_pgtest_query(pg, "INSERT INTO rounds (id, base_version, min_cohort, deadline, state,"
                             " ended_at, result_version) VALUES (1, 0, 1, now(), 'closed', now(),"
                             " 1)"));
    free(fa_pgtest_query(pg, "INSERT INTO rounds (id, base_version, min_cohort, deadline)"
                             " VALUES (2, 1, 1, now() + interval '1 hour')"));
    free(fa_pgtest_query(pg, "INSERT INTO updates (round_id, token_hash, receipt, key_id,"
                             " num_samples, box) VALUES"
                             " (1, decode(repeat('01', 32), 'hex'), 'r1', 'k', 1,"
                             "  decode(repeat('aa', 100), 'hex')),"
                             " (2, decode(repeat('02', 32), 'hex'), 'r2', 'k', 1,"
                             "  decode(repeat('bb', 100), 'hex'))"));
    PQfinish(pg);
    (void)snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);

    cr_assert_eq(migrate(out, sizeof(out), db, NULL), 0, "%s", out);
    cr_assert(strstr(out, "applied 0006_partial_sums.sql") != NULL, "%s", out);
    v = scalar(db, "SELECT string_agg(receipt || ':' || octet_length(box), ',' ORDER BY receipt)"
                   " FROM updates");
    cr_assert_str_eq(v, "r1:0,r2:100", "the ended round's ciphertext must go, the open one stay");
    free(v);
    v = scalar(db, "SELECT count(*) FROM updates WHERE receipt = 'r2' AND node IS NULL AND"
                   " seal_id = sha256(decode(repeat('bb', 48), 'hex'))");
    cr_assert_str_eq(v, "1", "the open round's update must keep the identity of its box");
    free(v);
    v = scalar(db, "SELECT count(*) FROM partial_sums");
    cr_assert_str_eq(v, "0");
    free(v);
}
