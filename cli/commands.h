/* commands.h - the `vggserve` subcommands. Each takes argv with argv[0] = the subcommand name
 * and returns the process exit status. */
#ifndef COMMANDS_H
#define COMMANDS_H

int cmd_classify(int argc, char **argv);
int cmd_explain(int argc, char **argv);
int cmd_preprocess(int argc, char **argv);
int cmd_gen_weights(int argc, char **argv);
int cmd_calibrate(int argc, char **argv);
int cmd_summary(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_accuracy(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_healthcheck(int argc, char **argv);

#endif
