/*
 * pop3_cmd.h - the POP3 command table (RFC 1939 sections 4-7, RFC 2449
 * CAPA, RFC 2595 STLS, RFC 5034 AUTH) and the splitting of a command
 * line into keyword and argument.  Pure functions: the unit tests use
 * them without a session.
 */
#ifndef POSTERN_POP3_CMD_H
#define POSTERN_POP3_CMD_H

#include <stddef.h>

enum pop3_cmd_id {
	P3_USER, P3_PASS, P3_APOP, P3_AUTH, P3_CAPA, P3_STLS, P3_QUIT,
	P3_STAT, P3_LIST, P3_RETR, P3_DELE, P3_NOOP, P3_RSET, P3_TOP,
	P3_UIDL,
	P3__COUNT,
};

/* In which states a command is valid (RFC 1939 section 3). */
#define P3_F_AUTHORIZATION	0x01
#define P3_F_TRANSACTION	0x02

struct pop3_cmd_def {
	const char	*verb;
	enum pop3_cmd_id id;
	int		 flags;
};

struct pop3_cmd {
	const struct pop3_cmd_def *def;	/* NULL: unknown keyword */
	char		*arg;		/* after the first space, as sent
					 * (PASS keeps its blanks); never NULL */
};

#define POP3_ARGS_MAX	4	/* TOP msg n is the most any command takes */

/*
 * Split a command line (CRLF removed, NUL-terminated, modified in
 * place).  Returns 0, or -1 for an empty line or one holding a NUL.
 */
int	pop3_cmd_parse(char *line, size_t len, struct pop3_cmd *);
const struct pop3_cmd_def *pop3_cmd_lookup(const char *verb);
const char *pop3_cmd_name(enum pop3_cmd_id);
/* Split arg on blanks into at most max words; returns the count, or -1
 * if there are more. */
int	pop3_cmd_split(char *arg, char **av, size_t max);
/* A message number or line count: decimal digits only, no sign, at most
 * 9 digits.  Returns 0 and sets *out, or -1. */
int	pop3_cmd_number(const char *, unsigned long *out);

#endif
