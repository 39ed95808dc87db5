/*
 * smtp_cmd.h - the SMTP command table (RFC 5321 section 4.1.1) and the
 * splitting of a command line into verb and argument.  Flags follow the
 * PIPELINING rules of RFC 2920 section 3.1.
 */
#ifndef POSTERN_SMTP_CMD_H
#define POSTERN_SMTP_CMD_H

#include <stddef.h>

enum smtp_cmd_id {
	CMD_HELO, CMD_EHLO, CMD_MAIL, CMD_RCPT, CMD_DATA, CMD_RSET,
	CMD_NOOP, CMD_QUIT, CMD_VRFY, CMD_HELP, CMD_STARTTLS, CMD_AUTH,
	CMD_EXPN, CMD_ETRN, CMD_BDAT, CMD_TURN,
	CMD__COUNT,
	CMD_UNKNOWN = -1,
};

#define CMD_F_LAST	0x01	/* must end a pipelined group (RFC 2920) */
#define CMD_F_LIMIT	0x02	/* counts toward the junk-command limit */
#define CMD_F_PRE_HELO	0x04	/* allowed before HELO/EHLO */

struct smtp_cmd_def {
	const char	*verb;
	enum smtp_cmd_id id;
	int		 flags;
};

struct smtp_cmd {
	const struct smtp_cmd_def *def;	/* NULL: unknown verb */
	char		*arg;		/* never NULL; "" when absent */
};

/*
 * Split a command line (CRLF already removed, NUL-terminated, modified
 * in place).  Returns 0, or -1 if the line holds a NUL byte (len tells
 * the true length) or is empty.
 */
int	smtp_cmd_parse(char *line, size_t len, struct smtp_cmd *);
const struct smtp_cmd_def *smtp_cmd_lookup(const char *verb);

#endif
