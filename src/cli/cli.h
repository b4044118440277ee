/*
 * Subcommands of the fedagg program. Each takes the arguments after its own
 * name (argv[0] is the subcommand) and returns the process exit status:
 * 0 success, 1 failure, 2 bad usage. Called once from main().
 */
#ifndef FA_CLI_CLI_H
#define FA_CLI_CLI_H

#include "core/error.h"

int fa_cmd_migrate(int argc, char **argv);
int fa_cmd_serve(int argc, char **argv);
int fa_cmd_keygen(int argc, char **argv);
int fa_cmd_privacy(int argc, char **argv);
int fa_cmd_ledger(int argc, char **argv);
int fa_cmd_model(int argc, char **argv);
int fa_cmd_train(int argc, char **argv);
int fa_cmd_simulate(int argc, char **argv);
int fa_cmd_synth(int argc, char **argv);
int fa_cmd_auth(int argc, char **argv);

typedef struct fa_crypto_sign_key fa_crypto_sign_key;

/* Loads a test issuer key written by `fedagg auth keygen` and its kid (for simulate). */
int fa_cmd_auth_load_issuer(fa_crypto_sign_key **out, char kid[17], const char *path,
                            fa_error *err);

/*
 * OpenBLAS 0.3.21 falls back to its SSE3 kernels on CPUs newer than its
 * tables, which makes training about three times slower, and it reads
 * OPENBLAS_CORETYPE only when it is loaded. So the training commands (train,
 * simulate) re-execute themselves once, with the same arguments, with the
 * matching value, unless the caller chose one. Returns only when no re-exec
 * is needed or it failed (then the generic kernels are used).
 */
void fa_cmd_reexec_for_blas(int argc, char **argv);

#endif
