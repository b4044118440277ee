/*
 * What the subcommands of cli/ share: one-line usage errors, getopt
 * failures, JSON output and the choice of database. Files of cli/ only;
 * the main thread only.
 */
#ifndef FA_CLI_INTERNAL_H
#define FA_CLI_INTERNAL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/compiler.h"
#include "core/config.h"

/*
 * Reals print with 15 significant digits: every value a user typed (1e-05,
 * 1.1, 0.01) prints back as typed, results are deterministic, and the
 * digits beyond are far below any meaningful precision of epsilon.
 */
#define FA_CLI_REAL_PRECISION 15

/* Prints "fedagg <cmd>: <message> (see 'fedagg <cmd> --help')" on stderr; returns 2. */
int fa_cli__usage_error(const char *cmd, const char *fmt, ...) FA_PRINTF(2, 3);

/* Reports a getopt_long failure (opterr off, optstring ":") as one line; returns 2. */
int fa_cli__bad_option(const char *cmd, int c, char **argv);

/* Prints obj as one JSON line on stdout and releases it (takes obj, may be NULL); 0 or 1. */
int fa_cli__print_json(json_t *obj, size_t flags);

/*
 * The database: given (--database-url) when not NULL, else the
 * configuration's database_url (DATABASE_URL or the config file); NULL
 * when that is empty. Borrowed from given or cfg.
 */
const char *fa_cli__database_url(const char *given, const fa_config *cfg);

/*
 * Parses value (NULL: missing) as an integer in [lo, hi], or as a number,
 * into *out; on failure prints "fedagg: <name> needs ..." and returns -1.
 */
int fa_cli__opt_i64(int64_t *out, const char *name, const char *value, int64_t lo, int64_t hi);
int fa_cli__opt_double(double *out, const char *name, const char *value);

typedef struct fa_synth_opts fa_synth_opts;

/* The population options fa_cli__synth_option parses, for both commands' tables. */
/* clang-format off */
#define FA_CLI_SYNTH_OPTIONS                         \
    {"users", required_argument, NULL, 'U'},         \
    {"items", required_argument, NULL, 'I'},         \
    {"positives", required_argument, NULL, 'P'},     \
    {"latent-dim", required_argument, NULL, 'L'},    \
    {"temperature", required_argument, NULL, 'T'}
/* clang-format on */

/*
 * Option c of FA_CLI_SYNTH_OPTIONS with its argument into so: returns 1
 * when c is one of them (*bad set when arg is out of range), 0 otherwise.
 */
int fa_cli__synth_option(fa_synth_opts *so, int c, const char *arg, int *bad);

#endif
