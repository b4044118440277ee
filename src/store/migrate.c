#include "store/migrate.h"

#include <dirent.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#include "core/digest.h"
#include "core/util.h"
#include "store/internal.h"
#include "store/migrations_embedded.h"

#define MAX_FILES      1000
#define MAX_FILE_BYTES (16u * 1024 * 1024)

/* pg_advisory_lock key shared by every fedagg migrate run ("fedaggmi"). */
#define MIGRATE_LOCK_KEY "7306916001716300137"

struct mfile {
    char name[256];
    char *sql; /* owned */
    char sha256_hex[65];
};

static int cmp_mfile(const void *a, const void *b)
{
    return strcmp(((const struct mfile *)a)->name, ((const struct mfile *)b)->name);
}

static int sha256_hex(char out[65], const void *data, size_t len, fa_error *err)
{
    unsigned char md[FA_SHA256_BYTES];

    (void)err;
    fa_sha256(md, data, len);
    fa_hex_encode(out, md, sizeof(md));
    return FA_OK;
}

/* A migration file name is four digits, an underscore, a name, ".sql". */
static int valid_name(const char *name)
{
    size_t n = strlen(name);

    if (n < 10 || n >= 256 || strcmp(name + n - 4, ".sql") != 0 || name[4] != '_')
        return 0;
    for (int i = 0; i < 4; i++)
        if (name[i] < '0' || name[i] > '9')
            return 0;
    return 1;
}

static void files_free(struct mfile *files, int n)
{
    if (files == NULL)
        return;
    for (int i = 0; i < n; i++)
        free(files[i].sql);
    free(files);
}

static int files_load(struct mfile **out, int *n_out, const char *dir, fa_error *err)
{
    struct mfile *files = calloc(MAX_FILES, sizeof(*files));
    DIR *d = NULL;
    int n = 0;
    int rc = FA_OK;

    *out = NULL;
    *n_out = 0;
    if (files == NULL)
        return fa_fail(err, FA_ENOMEM, "out of memory loading migrations");
    if (dir == NULL) {
        for (int i = 0; i < FA_MIGRATIONS_COUNT; i++) {
            (void)snprintf(files[n].name, sizeof(files[n].name), "%s", FA_MIGRATIONS[i].name);
            files[n].sql = strdup((const char *)FA_MIGRATIONS[i].data);
            if (files[n].sql == NULL) {
                rc = fa_fail(err, FA_ENOMEM, "out of memory loading migrations");
                goto cleanup;
            }
            n++;
        }
    } else {
        struct dirent *e;
        d = opendir(dir);
        if (d == NULL) {
            rc = fa_fail(err, FA_ENOTFOUND, "cannot open migrations directory %s", dir);
            goto cleanup;
        }
        while ((e = readdir(d)) != NULL) {
            char path[4096];
            if (!valid_name(e->d_name))
                continue;
            if (n == MAX_FILES) {
                rc = fa_fail(err, FA_ETOOBIG, "more than %d migration files in %s", MAX_FILES, dir);
                goto cleanup;
            }
            (void)snprintf(files[n].name, sizeof(files[n].name), "%s", e->d_name);
            (void)snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            if ((rc = fa_file_read(&files[n].sql, NULL, path, MAX_FILE_BYTES, err)) < 0)
                goto cleanup;
            n++;
        }
    }
    qsort(files, (size_t)n, sizeof(*files), cmp_mfile);
    for (int i = 0; i < n; i++) {
        if (i > 0 && strncmp(files[i].name, files[i - 1].name, 4) == 0) {
            rc = fa_fail(err, FA_EINVAL, "migrations %s and %s share a number", files[i - 1].name,
                         files[i].name);
            goto cleanup;
        }
        if ((rc = sha256_hex(files[i].sha256_hex, files[i].sql, strlen(files[i].sql), err)) < 0)
            goto cleanup;
    }
    *out = files;
    *n_out = n;
    files = NULL;
cleanup:
    if (d != NULL)
        (void)closedir(d);
    files_free(files, n);
    return rc;
}

static int apply_one(PGconn *pg, const struct mfile *f, fa_error *err)
{
    const char *values[2] = {f->name, f->sha256_hex};
    PGresult *res = NULL;
    int rc;

    if ((rc = fa_store__exec(pg, "BEGIN", "begin migration", err)) < 0)
        return rc;
    res = PQexec(pg, f->sql);
    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
        fa_error inner = FA_ERROR_INIT;
        rc = fa_store__map_error(res, pg, f->name, &inner);
        rc = fa_fail(err, rc == FA_EUNAVAIL ? FA_EUNAVAIL : FA_EINVAL,
                     "migration %s failed and was rolled back: %s", f->name, inner.msg);
        goto cleanup;
    }
    PQclear(res);
    res = PQexecParams(pg, "INSERT INTO schema_migrations (name, sha256) VALUES ($1, $2)", 2, NULL,
                       values, NULL, NULL, 0);
    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
        rc = fa_store__map_error(res, pg, "recording a migration", err);
        goto cleanup;
    }
    PQclear(res);
    res = NULL;
    rc = fa_store__exec(pg, "COMMIT", "commit migration", err);
cleanup:
    PQclear(res);
    if (rc < 0 && PQtransactionStatus(pg) != PQTRANS_IDLE) {
        PGresult *rb = PQexec(pg, "ROLLBACK");
        PQclear(rb);
    }
    return rc;
}

int fa_migrate_run(int *applied_out, const char *conninfo, const fa_migrate_opts *opts,
                   fa_error *err)
{
    PGconn *pg = NULL;
    PGresult *res = NULL;
    struct mfile *files = NULL;
    int nfiles = 0;
    int rc;

    *applied_out = 0;
    if ((rc = files_load(&files, &nfiles, opts->dir, err)) < 0)
        goto cleanup;
    if ((rc = fa_store__connect(&pg, conninfo, err)) < 0)
        goto cleanup;
    /* The session lock makes concurrent runners wait here; the winner
     * applies, the others then find nothing pending. */
    if ((rc = fa_store__exec(pg, "SET client_min_messages = warning", "session setup", err)) < 0 ||
        (rc = fa_store__exec(pg, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")",
                             "taking the migration lock", err)) < 0 ||
        (rc = fa_store__exec(pg,
                             "CREATE TABLE IF NOT EXISTS schema_migrations ("
                             " name text PRIMARY KEY,"
                             " sha256 text NOT NULL,"
                             " applied_at timestamptz NOT NULL DEFAULT now())",
                             "creating schema_migrations", err)) < 0)
        goto cleanup;
    res = PQexec(pg, "SELECT name, sha256 FROM schema_migrations ORDER BY name");
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = fa_store__map_error(res, pg, "reading schema_migrations", err);
        goto cleanup;
    }
    /* Refuse to touch a database whose history disagrees with ours. */
    for (int r = 0; r < PQntuples(res); r++) {
        const char *name = PQgetvalue(res, r, 0), *sum = PQgetvalue(res, r, 1);
        int found = 0;
        for (int i = 0; i < nfiles && !found; i++) {
            if (strcmp(files[i].name, name) != 0)
                continue;
            found = 1;
            if (strcmp(files[i].sha256_hex, sum) != 0) {
                rc = fa_fail(err, FA_ECONFLICT,
                             "migration %s was changed after it was applied (recorded sha256 "
                             "%.12s, file %.12s): restore the file and add a new migration",
                             name, sum, files[i].sha256_hex);
                goto cleanup;
            }
        }
        if (!found) {
            rc = fa_fail(err, FA_ECONFLICT,
                         "database has migration %s that this fedagg does not know: upgrade fedagg",
                         name);
            goto cleanup;
        }
    }
    for (int i = 0; i < nfiles; i++) {
        int applied = 0;
        for (int r = 0; r < PQntuples(res) && !applied; r++)
            applied = strcmp(files[i].name, PQgetvalue(res, r, 0)) == 0;
        if (applied)
            continue;
        if (!opts->dry_run && (rc = apply_one(pg, &files[i], err)) < 0)
            goto cleanup;
        if (opts->report != NULL)
            fprintf(opts->report, "%s %s\n", opts->dry_run ? "pending" : "applied", files[i].name);
        (*applied_out)++;
    }
cleanup:
    PQclear(res);
    if (pg != NULL)
        PQfinish(pg); /* ends the session and with it the advisory lock */
    files_free(files, nfiles);
    return rc;
}
