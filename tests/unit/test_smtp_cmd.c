/*
 * test_smtp_cmd.c - command lines split into verb and argument, and the
 * command table's flags (src/smtp/smtp_cmd.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "smtp/smtp_cmd.h"

struct cmd_case {
	const char	*line;
	size_t		 len;		/* 0: strlen(line) */
	int		 rc;
	const char	*verb;		/* NULL: unknown */
	const char	*arg;
};

static const struct cmd_case cmd_cases[] = {
	{ "HELO client.example", 0, 0, "HELO", "client.example" },
	{ "ehlo client.example", 0, 0, "EHLO", "client.example" },
	{ "EhLo client.example", 0, 0, "EHLO", "client.example" },
	{ "MAIL FROM:<a@b.example>", 0, 0, "MAIL", "FROM:<a@b.example>" },
	{ "mail FROM:<a@b.example> SIZE=10", 0, 0, "MAIL",
	    "FROM:<a@b.example> SIZE=10" },
	{ "RCPT TO:<a@b.example>", 0, 0, "RCPT", "TO:<a@b.example>" },
	{ "DATA", 0, 0, "DATA", "" },
	{ "data", 0, 0, "DATA", "" },
	{ "RSET", 0, 0, "RSET", "" },
	{ "NOOP", 0, 0, "NOOP", "" },
	{ "NOOP anything at all", 0, 0, "NOOP", "anything at all" },
	{ "QUIT", 0, 0, "QUIT", "" },
	{ "VRFY user", 0, 0, "VRFY", "user" },
	{ "HELP", 0, 0, "HELP", "" },
	{ "starttls", 0, 0, "STARTTLS", "" },
	{ "AUTH PLAIN AGFsaWNlAHNlY3JldA==", 0, 0, "AUTH",
	    "PLAIN AGFsaWNlAHNlY3JldA==" },
	{ "EXPN list", 0, 0, "EXPN", "list" },
	{ "ETRN example.org", 0, 0, "ETRN", "example.org" },
	{ "BDAT 100 LAST", 0, 0, "BDAT", "100 LAST" },
	{ "TURN", 0, 0, "TURN", "" },

	/* Blanks: several between verb and argument, trailing ones dropped,
	 * inner ones kept. */
	{ "MAIL   FROM:<a@b.example>", 0, 0, "MAIL", "FROM:<a@b.example>" },
	{ "QUIT   ", 0, 0, "QUIT", "" },
	{ "QUIT \t \t", 0, 0, "QUIT", "" },
	{ "HELO  host  ", 0, 0, "HELO", "host" },
	{ "NOOP a  b", 0, 0, "NOOP", "a  b" },

	/* Unknown verbs and junk. */
	{ "FOO bar", 0, 0, NULL, "bar" },
	{ "QUITX", 0, 0, NULL, "" },
	{ "QUI", 0, 0, NULL, "" },
	{ "MAIL:FROM:<a@b>", 0, 0, NULL, "" },
	{ "GET / HTTP/1.1", 0, 0, NULL, "/ HTTP/1.1" },
	{ "STARTTLSX", 0, 0, NULL, "" },
	{ "MAILMAILMAILMAILMAILMAILMAILMAILMAILMAIL FROM:<a@b>", 0, 0,
	    NULL, "FROM:<a@b>" },
	{ "MAIL\tFROM:<a@b>", 0, 0, NULL, "" },
	{ " QUIT", 0, 0, NULL, "QUIT" },
	{ "\xc3\x9cUIT", 0, 0, NULL, "" },

	/* Lines that are no command at all. */
	{ "", 0, -1, NULL, NULL },
	{ "   ", 0, -1, NULL, NULL },
	{ "\t", 0, -1, NULL, NULL },
	{ "QUIT\0", 5, -1, NULL, NULL },
	{ "MAIL\0FROM:<a@b>", 15, -1, NULL, NULL },
	{ "\0QUIT", 5, -1, NULL, NULL },
};

static void
test_parse_table(void **state)
{
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof cmd_cases / sizeof cmd_cases[0]; i++) {
		const struct cmd_case *tc = &cmd_cases[i];
		size_t len = tc->len ? tc->len : strlen(tc->line);
		char line[256], shown[300];
		struct smtp_cmd cmd;
		const char *gotverb;
		int rc;

		memcpy(line, tc->line, len);
		line[len] = '\0';
		snprintf(shown, sizeof shown, "%s%s", tc->line,
		    tc->len ? " (with NUL)" : "");
		cmd.def = (const void *)&cmd;	/* must be reset */
		cmd.arg = NULL;
		rc = smtp_cmd_parse(line, len, &cmd);
		if (rc != tc->rc) {
			print_error("'%s': got rc %d, want %d\n", shown, rc,
			    tc->rc);
			failed++;
			continue;
		}
		if (cmd.arg == NULL) {
			print_error("'%s': got arg NULL, want non-NULL\n", shown);
			failed++;
			continue;
		}
		if (rc == -1) {
			if (cmd.def != NULL) {
				print_error("'%s': got verb '%s', want none\n",
				    shown, cmd.def->verb);
				failed++;
			}
			continue;
		}
		gotverb = cmd.def ? cmd.def->verb : "(unknown)";
		if (strcmp(gotverb, tc->verb ? tc->verb : "(unknown)") != 0) {
			print_error("'%s': got verb '%s', want '%s'\n", shown,
			    gotverb, tc->verb ? tc->verb : "(unknown)");
			failed++;
		}
		if (strcmp(cmd.arg, tc->arg) != 0) {
			print_error("'%s': got arg '%s', want '%s'\n", shown,
			    cmd.arg, tc->arg);
			failed++;
		}
	}
	if (failed)
		fail_msg("%d command case(s) failed", failed);
}

/* Every verb by name, in three spellings, finds its own table entry. */
static void
test_lookup(void **state)
{
	static const struct { const char *verb; enum smtp_cmd_id id; } cases[] = {
		{ "HELO", CMD_HELO }, { "EHLO", CMD_EHLO }, { "MAIL", CMD_MAIL },
		{ "RCPT", CMD_RCPT }, { "DATA", CMD_DATA }, { "RSET", CMD_RSET },
		{ "NOOP", CMD_NOOP }, { "QUIT", CMD_QUIT }, { "VRFY", CMD_VRFY },
		{ "HELP", CMD_HELP }, { "STARTTLS", CMD_STARTTLS },
		{ "AUTH", CMD_AUTH }, { "EXPN", CMD_EXPN }, { "ETRN", CMD_ETRN },
		{ "BDAT", CMD_BDAT }, { "TURN", CMD_TURN },
	};
	static const char *unknown[] = { "", "X", "HEL", "HELOO", "MAIL ",
	    "STARTTL", "QUIT\r", "RCPT:" };
	int failed = 0;

	(void)state;
	assert_int_equal(sizeof cases / sizeof cases[0], CMD__COUNT);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char lower[16], mixed[16];
		const char *spell[3] = { cases[i].verb, lower, mixed };

		size_t j;

		for (j = 0; cases[i].verb[j] != '\0'; j++) {
			lower[j] = (char)tolower((unsigned char)cases[i].verb[j]);
			mixed[j] = j % 2 ? lower[j] : cases[i].verb[j];
		}
		lower[j] = mixed[j] = '\0';
		for (size_t s = 0; s < 3; s++) {
			const struct smtp_cmd_def *d = smtp_cmd_lookup(spell[s]);
			if (d == NULL || d->id != cases[i].id ||
			    strcmp(d->verb, cases[i].verb) != 0) {
				print_error("lookup '%s': got '%s', want '%s'\n",
				    spell[s], d ? d->verb : "(none)",
				    cases[i].verb);
				failed++;
			}
		}
	}
	for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
		if (smtp_cmd_lookup(unknown[i]) != NULL) {
			print_error("lookup '%s': got a verb, want none\n",
			    unknown[i]);
			failed++;
		}
	if (failed)
		fail_msg("%d lookup case(s) failed", failed);
}

/* RFC 2920 3.1: commands that change state or need a round trip end a
 * pipelined group; MAIL and RCPT do not. */
static void
test_flags(void **state)
{
	static const struct {
		const char *verb;
		int set, clear;
	} cases[] = {
		{ "DATA", CMD_F_LAST, CMD_F_PRE_HELO | CMD_F_LIMIT },
		{ "EHLO", CMD_F_LAST | CMD_F_PRE_HELO, CMD_F_LIMIT },
		{ "HELO", CMD_F_LAST | CMD_F_PRE_HELO, CMD_F_LIMIT },
		{ "QUIT", CMD_F_LAST | CMD_F_PRE_HELO, CMD_F_LIMIT },
		{ "STARTTLS", CMD_F_LAST, CMD_F_PRE_HELO },
		{ "AUTH", CMD_F_LAST, CMD_F_PRE_HELO },
		{ "NOOP", CMD_F_LAST | CMD_F_LIMIT | CMD_F_PRE_HELO, 0 },
		{ "VRFY", CMD_F_LAST | CMD_F_LIMIT, 0 },
		{ "MAIL", 0, CMD_F_LAST | CMD_F_PRE_HELO | CMD_F_LIMIT },
		{ "RCPT", 0, CMD_F_LAST | CMD_F_PRE_HELO | CMD_F_LIMIT },
		/* Counted like NOOP: alone it moves nothing on.  HELO and
		 * EHLO count only when repeated (smtp_dispatch). */
		{ "RSET", CMD_F_PRE_HELO | CMD_F_LIMIT, CMD_F_LAST },
	};
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct smtp_cmd_def *d = smtp_cmd_lookup(cases[i].verb);

		if (d == NULL) {
			print_error("%s: got no entry, want one\n", cases[i].verb);
			failed++;
			continue;
		}
		if ((d->flags & cases[i].set) != cases[i].set ||
		    (d->flags & cases[i].clear) != 0) {
			print_error("%s: got flags 0x%x, want 0x%x set and 0x%x "
			    "clear\n", cases[i].verb, (unsigned)d->flags,
			    (unsigned)cases[i].set, (unsigned)cases[i].clear);
			failed++;
		}
	}
	if (failed)
		fail_msg("%d flag case(s) failed", failed);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_table),
		cmocka_unit_test(test_lookup),
		cmocka_unit_test(test_flags),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
