/*
 * cli.h - the administrator's subcommands of the one postern binary.
 * Each returns a sysexits(3) code.
 */
#ifndef POSTERN_CLI_H
#define POSTERN_CLI_H

#include <sysexits.h>

int	cli_access(int argc, char **argv, const char *conf_path);
int	cli_config(int argc, char **argv, const char *conf_path);
int	cli_user(int argc, char **argv, const char *conf_path);
int	cli_queue(int argc, char **argv, const char *conf_path);
int	cli_aliases(int argc, char **argv, const char *conf_path);
/* Tools for the OP25B world (cli_check.c, cli_probe.c, cli_op25b.c). */
int	cli_check(int argc, char **argv);
int	cli_probe(int argc, char **argv, const char *conf_path);
int	cli_op25b_rules(int argc, char **argv);

#endif
