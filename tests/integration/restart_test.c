/* The store survives a PostgreSQL restart without being reopened. This test
 * runs its own cluster so that restarting it disturbs no other test. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgtest.h"
#include "store/migrate.h"
#include "store/store.h"

static char g_dir[] = "/tmp/fa-restart-XXXXXX";

static int cluster(const char *verb, char *out, size_t cap)
{
    const char *argv[] = {fa_pgtest_cluster_script(), verb, g_dir, NULL};
    return fa_pgtest_run(out, cap, argv, NULL);
}

static void setup(void)
{
    char out[1024];
    cr_assert_not_null(mkdtemp(g_dir));
    cr_assert_eq(cluster("start", out, sizeof(out)), 0, "%s", out);
}

static void teardown(void)
{
    char out[1024];
    (void)cluster("destroy", out, sizeof(out));
}

TestSuite(restart, .init = setup, .fini = teardown, .timeout = 180);

Test(restart, store_reconnects_after_database_restart)
{
    char conninfo[1024], out[1024], path[256];
    fa_store *st = NULL;
    fa_error err = FA_ERROR_INIT;
    fa_migrate_opts opts = FA_MIGRATE_OPTS_INIT;
    int applied = 0;

    (void)snprintf(path, sizeof(path), "%s/conninfo", g_dir);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    cr_assert_not_null(fgets(conninfo, sizeof(conninfo), f));
    fclose(f);
    conninfo[strcspn(conninfo, "\n")] = '\0';
    cr_assert_eq(fa_migrate_run(&applied, conninfo, &opts, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(fa_store_open(&st, conninfo, 3, &err), FA_OK, "%s", err.msg);
    /* Use every pooled connection so all of them hold a session to lose. */
    for (int i = 0; i < 3; i++)
        cr_assert_eq(fa_store_ping(st, &err), FA_OK, "%s", err.msg);
    fa_store_ledger_row last;
    cr_assert_eq(fa_store_ledger_last(&last, st, &err), FA_ENOTFOUND, "%s", err.msg);

    cr_assert_eq(cluster("restart", out, sizeof(out)), 0, "%s", out);

    int rc = fa_store_ping(st, &err);
    cr_assert(rc == FA_OK || rc == FA_EUNAVAIL, "first call after restart: %d %s", rc, err.msg);
    cr_assert_eq(fa_store_ping(st, &err), FA_OK, "second call after restart: %s", err.msg);
    cr_assert_eq(fa_store_ledger_last(&last, st, &err), FA_ENOTFOUND, "%s", err.msg);

    /* While the server is down calls fail fast as unavailable ... */
    cr_assert_eq(cluster("stop", out, sizeof(out)), 0, "%s", out);
    cr_assert_eq(fa_store_ping(st, &err), FA_EUNAVAIL);
    cr_assert(strstr(err.msg, "database unavailable") != NULL, "%s", err.msg);
    /* ... and succeed again once it is back, with no reopen of the store. */
    cr_assert_eq(cluster("start", out, sizeof(out)), 0, "%s", out);
    rc = fa_store_ping(st, &err);
    cr_assert(rc == FA_OK || rc == FA_EUNAVAIL, "%d %s", rc, err.msg);
    cr_assert_eq(fa_store_ping(st, &err), FA_OK, "%s", err.msg);
    fa_store_free(st);
}
