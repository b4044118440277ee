/*
 * Schema migrations: numbered SQL files applied in order, each in its own
 * transaction, recorded with their SHA-256 in schema_migrations. A session
 * advisory lock serialises concurrent runners. One call at a time per
 * process is expected (it opens its own connection).
 */
#ifndef FA_STORE_MIGRATE_H
#define FA_STORE_MIGRATE_H

#include <stdio.h>

#include "core/error.h"

typedef struct fa_migrate_opts {
    const char *dir; /* directory of NNNN_name.sql files; NULL = the embedded set */
    int dry_run;     /* report pending files without applying them */
    FILE *report;    /* where one line per applied file goes; NULL = silent */
} fa_migrate_opts;

#define FA_MIGRATE_OPTS_INIT                                                                       \
    {                                                                                              \
        NULL, 0, NULL                                                                              \
    }

/*
 * Applies pending migrations to the database at conninfo. *applied_out gets
 * the number applied (or pending, with dry_run). Fails with FA_ECONFLICT when
 * an applied file's checksum changed or the database has a migration this
 * binary does not know, FA_EUNAVAIL when the database is unreachable, and
 * FA_EINVAL when a file fails to apply (nothing of it is kept).
 */
int fa_migrate_run(int *applied_out, const char *conninfo, const fa_migrate_opts *opts,
                   fa_error *err) FA_MUST_CHECK;

#endif
