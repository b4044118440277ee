/*
 * What the subcommands share (cli/internal.h): one-line usage errors,
 * getopt failures, JSON output and the choice of database.
 */
#include "cli/internal.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/util.h"

/* One-line usage error: "fedagg <cmd>: <message>", exit status 2. */
int fa_cli__usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "fedagg %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see 'fedagg %s --help')\n", cmd);
    return 2;
}

/* Reports a getopt_long failure (opterr off, optstring ":") as one line. */
int fa_cli__bad_option(const char *cmd, int c, char **argv)
{
    const char *arg = optind > 0 ? argv[optind - 1] : "?";

    if (c == ':')
        return fa_cli__usage_error(cmd, "option '%s' needs a value", arg);
    return fa_cli__usage_error(cmd, "unknown option '%s'", arg);
}

/* Prints obj as one JSON line on stdout and releases it. */
int fa_cli__print_json(json_t *obj, size_t flags)
{
    char *text = obj != NULL ? json_dumps(obj, flags) : NULL;
    int rc = 1;

    if (text != NULL) {
        printf("%s\n", text);
        rc = fflush(stdout) == 0 ? 0 : 1;
    } else {
        fprintf(stderr, "fedagg: out of memory writing JSON\n");
    }
    free(text);
    json_decref(obj);
    return rc;
}

const char *fa_cli__database_url(const char *given, const fa_config *cfg)
{
    const char *url = given != NULL ? given : cfg->database_url;

    return *url != '\0' ? url : NULL;
}

int fa_cli__opt_i64(int64_t *out, const char *name, const char *value, int64_t lo, int64_t hi)
{
    if (value == NULL || fa_parse_i64(out, value) < 0 || *out < lo || *out > hi) {
        fprintf(stderr, "fedagg: %s needs an integer in %" PRId64 "..%" PRId64 "\n", name, lo, hi);
        return -1;
    }
    return 0;
}

int fa_cli__opt_double(double *out, const char *name, const char *value)
{
    if (value == NULL || fa_parse_double(out, value) < 0) {
        fprintf(stderr, "fedagg: %s needs a number\n", name);
        return -1;
    }
    return 0;
}
