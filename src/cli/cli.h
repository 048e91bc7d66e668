/* The peftc command line: each subcommand parses its arguments (the same
 * --key value names as the config file) and prints; the library does the work. */
#ifndef PC_CLI_CLI_H
#define PC_CLI_CLI_H

#include <stdbool.h>

#include "models/peft_model.h"
#include "text/tokenizer.h"
#include "train/config.h"

/* Splits argv into --key value pairs applied to cfg (keys without a value are booleans),
 * CLI-only flags (--json, --decode...) recorded in *flags, and positional arguments in
 * pos (n_pos). Returns 0, or prints the error and returns 2. */
typedef struct cli_flags { int json, decode, requantize; } cli_flags;
int cli_parse_args(int argc, char **argv, pc_config *cfg, cli_flags *flags, char ***pos, int *n_pos);

/* The shape of every subcommand but train: parse --key value arguments into a fresh config, validate it,
 * refuse positional arguments unless takes_args, require model_name_or_path, then run. */
typedef int (*cli_runner)(pc_config *cfg, const cli_flags *flags, char **args, int n_args);
int cli_command(const char *name, int argc, char **argv, bool takes_args, cli_runner run);
void cli_print_error(const pc_error *err);

/* A model (+ adapter) and its tokenizer for eval / predict / generate. */
typedef struct loaded {
    pc_model *model;
    pc_peft_model *peft;
    pc_tokenizer *tok;
} loaded;
int load_inference(const pc_config *cfg, loaded *l);   /* 0, or an exit code after printing the error */
void unload(loaded *l);

int cmd_train(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_demo(int argc, char **argv);

/* Validates cfg and runs pc_train, printing progress; returns an exit code. */
int cli_run_training(const pc_config *cfg);

#endif
