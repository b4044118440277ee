/* fedagg migrate: apply the schema migrations to the configured database. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/internal.h"
#include "core/config.h"
#include "store/migrate.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: fedagg migrate [--config FILE] [--database-url URL] [--dir DIR] "
               "[--dry-run]\n"
               "  applies pending migrations (the set built into fedagg, or DIR's NNNN_*.sql)\n"
               "  in order, each in its own transaction; concurrent runs are safe\n");
}

int fa_cmd_migrate(int argc, char **argv)
{
    static const struct option OPTS[] = {
        {"config", required_argument, NULL, 'c'}, {"database-url", required_argument, NULL, 'd'},
        {"dir", required_argument, NULL, 'm'},    {"dry-run", no_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL, *url = NULL;
    fa_migrate_opts opts = FA_MIGRATE_OPTS_INIT;
    fa_config cfg;
    fa_error err = FA_ERROR_INIT;
    int applied = 0, c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "", OPTS, NULL)) != -1) {
        switch (c) {
        case 'c':
            config_path = optarg;
            break;
        case 'd':
            url = optarg;
            break;
        case 'm':
            opts.dir = optarg;
            break;
        case 'n':
            opts.dry_run = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "fedagg migrate: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (fa_config_load(&cfg, config_path, &err) < 0) {
        fprintf(stderr, "fedagg migrate: %s\n", err.msg);
        return 2;
    }
    if ((url = fa_cli__database_url(url, &cfg)) == NULL) {
        fprintf(stderr, "fedagg migrate: no database: set DATABASE_URL, database_url in the "
                        "config file, or --database-url\n");
        return 2;
    }
    opts.report = stdout;
    if (fa_migrate_run(&applied, url, &opts, &err) < 0) {
        fprintf(stderr, "fedagg migrate: %s\n", err.msg);
        return 1;
    }
    if (applied == 0)
        printf("database schema is up to date\n");
    else
        printf("%s %d migration%s\n", opts.dry_run ? "pending:" : "applied", applied,
               applied == 1 ? "" : "s");
    return 0;
}
