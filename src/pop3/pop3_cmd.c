/*
 * pop3_cmd.c - the command table and line splitting (see pop3_cmd.h).
 * RFC 1939 section 3: keywords are three or four characters,
 * case-insensitive, separated from their arguments by a single space.
 */
#include "pop3/pop3_cmd.h"

#include <string.h>
#include <strings.h>

#define A	P3_F_AUTHORIZATION
#define T	P3_F_TRANSACTION

static const struct pop3_cmd_def pop3_cmd_table[] = {
	{ "USER",	P3_USER,	A },
	{ "PASS",	P3_PASS,	A },
	{ "APOP",	P3_APOP,	A },
	{ "AUTH",	P3_AUTH,	A },
	{ "CAPA",	P3_CAPA,	A | T },
	{ "STLS",	P3_STLS,	A },
	{ "QUIT",	P3_QUIT,	A | T },
	{ "STAT",	P3_STAT,	T },
	{ "LIST",	P3_LIST,	T },
	{ "RETR",	P3_RETR,	T },
	{ "DELE",	P3_DELE,	T },
	{ "NOOP",	P3_NOOP,	T },
	{ "RSET",	P3_RSET,	T },
	{ "TOP",	P3_TOP,		T },
	{ "UIDL",	P3_UIDL,	T },
};

#undef A
#undef T

const struct pop3_cmd_def *
pop3_cmd_lookup(const char *verb)
{
	for (size_t i = 0; i < sizeof pop3_cmd_table / sizeof pop3_cmd_table[0];
	    i++)
		if (strcasecmp(verb, pop3_cmd_table[i].verb) == 0)
			return &pop3_cmd_table[i];
	return NULL;
}

const char *
pop3_cmd_name(enum pop3_cmd_id id)
{
	for (size_t i = 0; i < sizeof pop3_cmd_table / sizeof pop3_cmd_table[0];
	    i++)
		if (pop3_cmd_table[i].id == id)
			return pop3_cmd_table[i].verb;
	return "?";
}

int
pop3_cmd_parse(char *line, size_t len, struct pop3_cmd *cmd)
{
	char *sp;

	cmd->def = NULL;
	cmd->arg = line + len;
	if (len == 0 || memchr(line, '\0', len) != NULL)
		return -1;
	sp = strchr(line, ' ');
	if (sp != NULL) {
		*sp = '\0';
		cmd->arg = sp + 1;
	}
	/* A long first word is junk, not a keyword. */
	if (strlen(line) <= 4)
		cmd->def = pop3_cmd_lookup(line);
	return 0;
}

int
pop3_cmd_split(char *arg, char **av, size_t max)
{
	size_t n = 0;
	char *p = arg;

	for (;;) {
		while (*p == ' ' || *p == '\t')
			*p++ = '\0';
		if (*p == '\0')
			return (int)n;
		if (n == max)
			return -1;
		av[n++] = p;
		while (*p && *p != ' ' && *p != '\t')
			p++;
	}
}

int
pop3_cmd_number(const char *s, unsigned long *out)
{
	unsigned long v = 0;
	size_t n = 0;

	for (; s[n]; n++) {
		if (s[n] < '0' || s[n] > '9' || n >= 9)
			return -1;
		v = v * 10 + (unsigned long)(s[n] - '0');
	}
	if (n == 0)
		return -1;
	*out = v;
	return 0;
}
