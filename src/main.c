/*
 * fedagg: the federated aggregation server and its operator tools. main()
 * initialises the libraries that must be set up before any thread starts and
 * dispatches to one subcommand.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/compiler.h"
#include "device/client.h"
#include "privacy/crypto.h"

#ifndef FA_VERSION
#define FA_VERSION "unknown"
#endif

static const struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} COMMANDS[] = {
    {"serve", fa_cmd_serve, "run the aggregation server"},
    {"migrate", fa_cmd_migrate, "apply pending database migrations"},
    {"keygen", fa_cmd_keygen, "create the server's box and signing keys"},
    {"auth", fa_cmd_auth, "test identity provider: issuer keys, device tokens"},
    {"privacy", fa_cmd_privacy, "privacy accountant: epsilon, noise-multiplier"},
    {"ledger", fa_cmd_ledger, "show or verify the epsilon ledger"},
    {"model", fa_cmd_model, "model snapshots: init"},
    {"simulate", fa_cmd_simulate, "simulated devices, over HTTP or in process"},
    {"synth", fa_cmd_synth, "write a synthetic population as a dataset"},
    {"train", fa_cmd_train, "centralized training baseline on a dataset"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: fedagg <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < FA_ARRAY_LEN(COMMANDS); i++)
        fprintf(f, "  %-10s %s\n", COMMANDS[i].name, COMMANDS[i].help);
    fprintf(f, "  %-10s %s\n", "version", "print the version");
    fprintf(f, "\nrun 'fedagg <command> --help' for the options of one command\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("fedagg %s\n", FA_VERSION);
        return 0;
    }
    /* Before any thread exists: libsodium's RNG, jansson's hash seed, libcurl. */
    fa_error err = FA_ERROR_INIT;
    if (fa_crypto_init(&err) < 0 || fa_device_global_init(&err) < 0) {
        fprintf(stderr, "fedagg: %s\n", err.msg);
        return 1;
    }
    json_object_seed(0);
    for (size_t i = 0; i < FA_ARRAY_LEN(COMMANDS); i++)
        if (strcmp(argv[1], COMMANDS[i].name) == 0)
            return COMMANDS[i].run(argc - 1, argv + 1);
    fprintf(stderr, "fedagg: unknown command '%s' (see fedagg --help)\n", argv[1]);
    return 2;
}
