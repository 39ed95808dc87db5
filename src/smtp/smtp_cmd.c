/*
 * smtp_cmd.c - the command table and line splitting.  The session
 * dispatches on def->id; flags say how each command takes part in
 * PIPELINING and in the error count.
 */
#include "smtp/smtp_cmd.h"

#include <string.h>
#include <strings.h>

static const struct smtp_cmd_def smtp_cmd_table[] = {
	{ "HELO",	CMD_HELO,	CMD_F_LAST | CMD_F_PRE_HELO },
	{ "EHLO",	CMD_EHLO,	CMD_F_LAST | CMD_F_PRE_HELO },
	{ "MAIL",	CMD_MAIL,	0 },
	{ "RCPT",	CMD_RCPT,	0 },
	{ "DATA",	CMD_DATA,	CMD_F_LAST },
	{ "RSET",	CMD_RSET,	CMD_F_PRE_HELO | CMD_F_LIMIT },
	{ "NOOP",	CMD_NOOP,	CMD_F_LAST | CMD_F_PRE_HELO | CMD_F_LIMIT },
	{ "QUIT",	CMD_QUIT,	CMD_F_LAST | CMD_F_PRE_HELO },
	{ "VRFY",	CMD_VRFY,	CMD_F_LAST | CMD_F_PRE_HELO | CMD_F_LIMIT },
	{ "HELP",	CMD_HELP,	CMD_F_LAST | CMD_F_PRE_HELO | CMD_F_LIMIT },
	{ "STARTTLS",	CMD_STARTTLS,	CMD_F_LAST },
	{ "AUTH",	CMD_AUTH,	CMD_F_LAST },
	{ "EXPN",	CMD_EXPN,	CMD_F_LAST | CMD_F_PRE_HELO | CMD_F_LIMIT },
	{ "ETRN",	CMD_ETRN,	CMD_F_LAST | CMD_F_LIMIT },
	{ "BDAT",	CMD_BDAT,	CMD_F_LAST },
	{ "TURN",	CMD_TURN,	CMD_F_LAST | CMD_F_LIMIT },
};

const struct smtp_cmd_def *
smtp_cmd_lookup(const char *verb)
{
	for (size_t i = 0; i < sizeof smtp_cmd_table / sizeof smtp_cmd_table[0]; i++)
		if (strcasecmp(verb, smtp_cmd_table[i].verb) == 0)
			return &smtp_cmd_table[i];
	return NULL;
}

int
smtp_cmd_parse(char *line, size_t len, struct smtp_cmd *cmd)
{
	char *sp, *end;

	cmd->def = NULL;
	cmd->arg = line + len;
	if (len == 0 || memchr(line, '\0', len) != NULL)
		return -1;
	/* Trailing blanks are not part of any argument. */
	end = line + len;
	while (end > line && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	if (end == line)
		return -1;
	sp = line;
	while (*sp && *sp != ' ')
		sp++;
	if (*sp == ' ') {
		*sp++ = '\0';
		while (*sp == ' ')
			sp++;
	}
	cmd->arg = sp;
	/* Verbs are short words; a long first word is junk, not a verb. */
	if (strlen(line) <= 8)
		cmd->def = smtp_cmd_lookup(line);
	return 0;
}
