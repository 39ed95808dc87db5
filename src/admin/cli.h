/*
 * cli.h - the administrator's subcommands of the one postern binary.
 * Each returns a sysexits(3) code.
 */
#ifndef POSTERN_CLI_H
#define POSTERN_CLI_H

#include <sysexits.h>

int	cli_config(int argc, char **argv, const char *conf_path);
int	cli_user(int argc, char **argv, const char *conf_path);
int	cli_queue(int argc, char **argv, const char *conf_path);
int	cli_aliases(int argc, char **argv, const char *conf_path);

#endif
