/*
 * Subcommands of the fedagg program. Each takes the arguments after its own
 * name (argv[0] is the subcommand) and returns the process exit status:
 * 0 success, 1 failure, 2 bad usage. Called once from main().
 */
#ifndef FA_CMD_H
#define FA_CMD_H

int fa_cmd_migrate(int argc, char **argv);
int fa_cmd_serve(int argc, char **argv);
int fa_cmd_keygen(int argc, char **argv);
int fa_cmd_privacy(int argc, char **argv);
int fa_cmd_ledger(int argc, char **argv);
int fa_cmd_model(int argc, char **argv);
int fa_cmd_train(int argc, char **argv);
int fa_cmd_simulate(int argc, char **argv);
int fa_cmd_synth(int argc, char **argv);

#endif
