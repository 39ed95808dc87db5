/*
 * test_pop3_cmd.c - POP3 command lines split into keyword and argument,
 * the states each command is valid in, message numbers, argument
 * splitting (src/pop3/pop3_cmd.h) and status line formatting
 * (src/pop3/pop3_reply.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "pop3/pop3_cmd.h"
#include "pop3/pop3_reply.h"

struct cmd_case {
	const char	*line;
	size_t		 len;		/* 0: strlen(line) */
	int		 rc;
	const char	*verb;		/* NULL: unknown */
	const char	*arg;
};

static const struct cmd_case cmd_cases[] = {
	{ "USER hoge", 0, 0, "USER", "hoge" },
	{ "user hoge", 0, 0, "USER", "hoge" },
	{ "PASS correct horse 42", 0, 0, "PASS", "correct horse 42" },
	/* PASS keeps every blank of the password, leading and trailing. */
	{ "PASS  two leading", 0, 0, "PASS", " two leading" },
	{ "PASS trailing ", 0, 0, "PASS", "trailing " },
	{ "APOP mrose c4c9334bac560ecc979e58001b3e22fb", 0, 0, "APOP",
	    "mrose c4c9334bac560ecc979e58001b3e22fb" },
	{ "AUTH PLAIN AGhvZ2UAcHc=", 0, 0, "AUTH", "PLAIN AGhvZ2UAcHc=" },
	{ "AUTH", 0, 0, "AUTH", "" },
	{ "CAPA", 0, 0, "CAPA", "" },
	{ "STLS", 0, 0, "STLS", "" },
	{ "QUIT", 0, 0, "QUIT", "" },
	{ "STAT", 0, 0, "STAT", "" },
	{ "LIST", 0, 0, "LIST", "" },
	{ "LIST 2", 0, 0, "LIST", "2" },
	{ "RETR 1", 0, 0, "RETR", "1" },
	{ "DELE 1", 0, 0, "DELE", "1" },
	{ "NOOP", 0, 0, "NOOP", "" },
	{ "RSET", 0, 0, "RSET", "" },
	{ "TOP 1 10", 0, 0, "TOP", "1 10" },
	{ "top 1 0", 0, 0, "TOP", "1 0" },
	{ "UIDL", 0, 0, "UIDL", "" },
	{ "uidl 3", 0, 0, "UIDL", "3" },

	/* Unknown keywords and junk. */
	{ "XTND XMIT", 0, 0, NULL, "XMIT" },
	{ "RETRR 1", 0, 0, NULL, "1" },
	{ "RET 1", 0, 0, NULL, "1" },
	{ "GET / HTTP/1.1", 0, 0, NULL, "/ HTTP/1.1" },
	{ "STARTTLS", 0, 0, NULL, "" },
	{ "EHLO x", 0, 0, NULL, "x" },
	{ " QUIT", 0, 0, NULL, "QUIT" },
	{ "QUIT\tnow", 0, 0, NULL, "" },

	/* Lines that are no command at all. */
	{ "", 0, -1, NULL, NULL },
	{ "QUIT\0", 5, -1, NULL, NULL },
	{ "PASS a\0b", 8, -1, NULL, NULL },
};

static void
test_parse_table(void **state)
{
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof cmd_cases / sizeof cmd_cases[0]; i++) {
		const struct cmd_case *tc = &cmd_cases[i];
		size_t len = tc->len ? tc->len : strlen(tc->line);
		char line[256];
		struct pop3_cmd cmd;
		const char *gotverb;
		int rc;

		memcpy(line, tc->line, len);
		line[len] = '\0';
		cmd.def = (const void *)&cmd;	/* must be reset */
		cmd.arg = NULL;
		rc = pop3_cmd_parse(line, len, &cmd);
		if (rc != tc->rc) {
			print_error("'%s': got rc %d, want %d\n", tc->line, rc,
			    tc->rc);
			failed++;
			continue;
		}
		if (cmd.arg == NULL) {
			print_error("'%s': got arg NULL\n", tc->line);
			failed++;
			continue;
		}
		if (rc == -1) {
			if (cmd.def != NULL) {
				print_error("'%s': got a verb, want none\n",
				    tc->line);
				failed++;
			}
			continue;
		}
		gotverb = cmd.def ? cmd.def->verb : "(unknown)";
		if (strcmp(gotverb, tc->verb ? tc->verb : "(unknown)") != 0) {
			print_error("'%s': got verb '%s', want '%s'\n", tc->line,
			    gotverb, tc->verb ? tc->verb : "(unknown)");
			failed++;
		}
		if (strcmp(cmd.arg, tc->arg) != 0) {
			print_error("'%s': got arg '%s', want '%s'\n", tc->line,
			    cmd.arg, tc->arg);
			failed++;
		}
	}
	if (failed)
		fail_msg("%d command case(s) failed", failed);
}

/* RFC 1939 section 3: which commands each state admits. */
static void
test_states(void **state)
{
	static const struct { const char *verb; int flags; } cases[] = {
		{ "USER", P3_F_AUTHORIZATION }, { "PASS", P3_F_AUTHORIZATION },
		{ "APOP", P3_F_AUTHORIZATION }, { "AUTH", P3_F_AUTHORIZATION },
		{ "STLS", P3_F_AUTHORIZATION },
		{ "CAPA", P3_F_AUTHORIZATION | P3_F_TRANSACTION },
		{ "QUIT", P3_F_AUTHORIZATION | P3_F_TRANSACTION },
		{ "STAT", P3_F_TRANSACTION }, { "LIST", P3_F_TRANSACTION },
		{ "RETR", P3_F_TRANSACTION }, { "DELE", P3_F_TRANSACTION },
		{ "NOOP", P3_F_TRANSACTION }, { "RSET", P3_F_TRANSACTION },
		{ "TOP", P3_F_TRANSACTION }, { "UIDL", P3_F_TRANSACTION },
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct pop3_cmd_def *d = pop3_cmd_lookup(cases[i].verb);

		assert_non_null(d);
		assert_string_equal(pop3_cmd_name(d->id), cases[i].verb);
		if (d->flags != cases[i].flags)
			fail_msg("%s: got flags %d, want %d", cases[i].verb,
			    d->flags, cases[i].flags);
	}
}

static void
test_number(void **state)
{
	static const struct { const char *in; int rc; unsigned long want; } cases[] = {
		{ "1", 0, 1 }, { "0", 0, 0 }, { "42", 0, 42 },
		{ "007", 0, 7 }, { "999999999", 0, 999999999 },
		{ "1000000000", -1, 0 }, { "", -1, 0 }, { "-1", -1, 0 },
		{ "+1", -1, 0 }, { " 1", -1, 0 }, { "1 ", -1, 0 },
		{ "1x", -1, 0 }, { "0x10", -1, 0 },
		{ "99999999999999999999999", -1, 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		unsigned long got = 12345;
		int rc = pop3_cmd_number(cases[i].in, &got);

		if (rc != cases[i].rc || (rc == 0 && got != cases[i].want))
			fail_msg("'%s': got rc %d value %lu, want rc %d value %lu",
			    cases[i].in, rc, got, cases[i].rc, cases[i].want);
	}
}

static void
test_split(void **state)
{
	char a[] = "1 10", b[] = "  1   10  ", c[] = "", d[] = "a b c d e";
	char *av[POP3_ARGS_MAX];

	(void)state;
	assert_int_equal(pop3_cmd_split(a, av, POP3_ARGS_MAX), 2);
	assert_string_equal(av[0], "1");
	assert_string_equal(av[1], "10");
	assert_int_equal(pop3_cmd_split(b, av, POP3_ARGS_MAX), 2);
	assert_string_equal(av[0], "1");
	assert_string_equal(av[1], "10");
	assert_int_equal(pop3_cmd_split(c, av, POP3_ARGS_MAX), 0);
	assert_int_equal(pop3_cmd_split(d, av, POP3_ARGS_MAX), -1);
}

static void
test_reply_format(void **state)
{
	static const struct {
		enum pop3_reply_id id; const char *arg; const char *want;
	} cases[] = {
		{ P_OK, "", "+OK\r\n" },
		{ P_OK, "2 320", "+OK 2 320\r\n" },
		{ P_RETR_FOLLOWS, "120", "+OK 120 octets\r\n" },
		{ P_AUTH_FAILED, NULL, "-ERR [AUTH] Authentication failed\r\n" },
		{ P_IN_USE, NULL,
		    "-ERR [IN-USE] Mailbox is in use by another session\r\n" },
		{ P_AUTH_TEMPFAIL, NULL,
		    "-ERR [SYS/TEMP] Temporary authentication failure\r\n" },
		{ P_NO_SUCH_MSG, NULL, "-ERR No such message\r\n" },
		{ P_MSG_DELETED, "3", "-ERR Message 3 is deleted\r\n" },
	};
	char line[512], small[16];
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		n = pop3_reply_format(line, sizeof line, cases[i].id,
		    cases[i].arg);
		if (strcmp(line, cases[i].want) != 0 || n != strlen(line))
			fail_msg("%s: got '%s', want '%s'",
			    pop3_reply_def(cases[i].id)->name, line, cases[i].want);
	}
	/* Truncated, still one CRLF-terminated line. */
	n = pop3_reply_format(small, sizeof small, P_IN_USE, NULL);
	assert_int_equal(n, strlen(small));
	assert_true(n >= 2 && small[n - 2] == '\r' && small[n - 1] == '\n');
	/* Every status line starts with +OK or -ERR, and codes are RFC
	 * 2449/3206 ones. */
	for (int id = 0; id < P__COUNT; id++) {
		const struct pop3_reply_def *d = pop3_reply_def(id);

		n = pop3_reply_format(line, sizeof line, id, "x");
		assert_true(strncmp(line, d->ok ? "+OK" : "-ERR",
		    d->ok ? 3 : 4) == 0);
		assert_true(d->code[0] == '\0' || strcmp(d->code, "AUTH") == 0 ||
		    strcmp(d->code, "SYS/TEMP") == 0 ||
		    strcmp(d->code, "IN-USE") == 0);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_table),
		cmocka_unit_test(test_states),
		cmocka_unit_test(test_number),
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_reply_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
