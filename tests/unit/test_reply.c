/*
 * test_reply.c - the reply table and reply_format (src/smtp/reply.h):
 * every row is a well-formed RFC 5321 reply with an RFC 3463 enhanced
 * status code, and the rows other parts depend on carry the right codes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "smtp/reply.h"

/* "d.ddd.ddd": class, subject and detail of 1-3 digits each. */
static int
esc_valid(const char *s)
{
	int n;

	if (!isdigit((unsigned char)s[0]) || s[1] != '.')
		return 0;
	s += 2;
	for (int part = 0; part < 2; part++) {
		for (n = 0; isdigit((unsigned char)*s); n++, s++)
			;
		if (n < 1 || n > 3)
			return 0;
		if (part == 0 && *s++ != '.')
			return 0;
	}
	return *s == '\0';
}

static void
test_esc_pattern(void **state)
{
	static const struct { const char *in; int want; } cases[] = {
		{ "2.0.0", 1 }, { "5.7.1", 1 }, { "4.123.456", 1 },
		{ "", 0 }, { "2.0", 0 }, { "2..0", 0 }, { "22.0.0", 0 },
		{ "2.0.0.", 0 }, { "2.1234.0", 0 }, { "x.0.0", 0 }, { "2.0.0 ", 0 },
	};

	(void)state;
	/* The checker itself, so a broken checker cannot hide bad rows. */
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		if (esc_valid(cases[i].in) != cases[i].want)
			fail_msg("esc_valid('%s'): got %d, want %d", cases[i].in,
			    esc_valid(cases[i].in), cases[i].want);
}

static void
test_every_row(void **state)
{
	int failed = 0;

	(void)state;
	assert_true(R__COUNT > 30);
	for (int id = 0; id < R__COUNT; id++) {
		const struct smtp_reply_def *d = reply_def((enum smtp_reply_id)id);
		char out[1024], want_head[32];
		size_t n;

		if (d->code < 200 || d->code > 599) {
			print_error("%s: got code %d, want 200..599\n", d->name,
			    d->code);
			failed++;
		}
		if (d->code == 354) {
			if (d->esc[0] != '\0') {
				print_error("%s: got esc '%s', want '' for 354\n",
				    d->name, d->esc);
				failed++;
			}
		} else if (!esc_valid(d->esc) || d->esc[0] != '0' + d->code / 100) {
			print_error("%s: got esc '%s' for %d, want '%d.x.y'\n",
			    d->name, d->esc, d->code, d->code / 100);
			failed++;
		}
		if (d->text == NULL || d->text[0] == '\0' ||
		    strpbrk(d->text, "\r\n") != NULL) {
			print_error("%s: got text '%s', want one non-empty line\n",
			    d->name, d->text ? d->text : "(null)");
			failed++;
		}
		if (d->name == NULL || strncmp(d->name, "R_", 2) != 0) {
			print_error("row %d: got name '%s', want R_...\n", id,
			    d->name ? d->name : "(null)");
			failed++;
		}

		n = reply_format(out, sizeof out, (enum smtp_reply_id)id, "ARG");
		if (d->esc[0])
			snprintf(want_head, sizeof want_head, "%d %s ", d->code,
			    d->esc);
		else
			snprintf(want_head, sizeof want_head, "%d ", d->code);
		if (n != strlen(out) || n < 2 || strcmp(out + n - 2, "\r\n") != 0 ||
		    strncmp(out, want_head, strlen(want_head)) != 0 ||
		    strpbrk(out, "\r\n") != out + n - 2) {
			print_error("%s: got '%s', want '%s...\\r\\n'\n", d->name,
			    out, want_head);
			failed++;
		}
		if ((strstr(d->text, "%s") != NULL) != (strstr(out, "ARG") != NULL)
		    || strstr(out, "%s") != NULL) {
			print_error("%s: got '%s', want %%s replaced by ARG\n",
			    d->name, out);
			failed++;
		}
	}
	if (failed)
		fail_msg("%d reply row check(s) failed", failed);
}

/* Rows whose codes the rest of postern and its tests rely on. */
static void
test_required_rows(void **state)
{
	static const struct {
		enum smtp_reply_id id;
		const char *name;
		const char *want;
	} cases[] = {
		{ R_AUTH_REQUIRED, "R_AUTH_REQUIRED", "530 5.7.0" },
		{ R_RELAY_DENIED, "R_RELAY_DENIED", "554 5.7.1" },
		{ R_UNKNOWN_USER, "R_UNKNOWN_USER", "550 5.1.1" },
		{ R_MSG_TOO_BIG, "R_MSG_TOO_BIG", "552 5.3.4" },
		{ R_TOO_MANY_RCPTS, "R_TOO_MANY_RCPTS", "452 4.5.3" },
		{ R_LINE_TOO_LONG, "R_LINE_TOO_LONG", "500 5.5.2" },
		{ R_NEED_MAIL, "R_NEED_MAIL", "503 5.5.1" },
		{ R_DATA_GO, "R_DATA_GO", "354" },
		{ R_ACTION_OK, "R_ACTION_OK", "250 2.0.0" },
		{ R_BYE, "R_BYE", "221 2.0.0" },
		{ R_BARE_LF, "R_BARE_LF", "521 5.5.2" },
	};
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct smtp_reply_def *d = reply_def(cases[i].id);
		char got[32];

		if (d->esc[0])
			snprintf(got, sizeof got, "%d %s", d->code, d->esc);
		else
			snprintf(got, sizeof got, "%d", d->code);
		if (strcmp(got, cases[i].want) != 0 ||
		    strcmp(d->name, cases[i].name) != 0) {
			print_error("%s: got %s '%s', want '%s'\n", cases[i].name,
			    d->name, got, cases[i].want);
			failed++;
		}
	}
	if (failed)
		fail_msg("%d required row(s) wrong", failed);
}

static void
test_format(void **state)
{
	static const struct {
		enum smtp_reply_id id;
		const char *arg;
		const char *want;
	} cases[] = {
		{ R_ACTION_OK, NULL, "250 2.0.0 Ok\r\n" },
		{ R_ACTION_OK, "ignored", "250 2.0.0 Ok\r\n" },
		{ R_QUEUED, "4Xq1b2c3", "250 2.0.0 Ok: queued as 4Xq1b2c3\r\n" },
		{ R_QUEUED, NULL, "250 2.0.0 Ok: queued as \r\n" },
		{ R_QUEUED, "%s%n", "250 2.0.0 Ok: queued as %s%n\r\n" },
		{ R_BAD_PARAM, "FOO=bar",
		    "555 5.5.4 Unsupported MAIL FROM or RCPT TO parameter: FOO=bar\r\n" },
		{ R_DATA_GO, NULL, "354 End data with <CR><LF>.<CR><LF>\r\n" },
		{ R_AUTH_REQUIRED, NULL, "530 5.7.0 Authentication required\r\n" },
	};
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char got[512];
		size_t n = reply_format(got, sizeof got, cases[i].id,
		    cases[i].arg);

		if (strcmp(got, cases[i].want) != 0 || n != strlen(cases[i].want)) {
			print_error("%s: got '%s' (%zu), want '%s'\n",
			    reply_def(cases[i].id)->name, got, n, cases[i].want);
			failed++;
		}
	}
	if (failed)
		fail_msg("%d format case(s) failed", failed);
}

/* Every buffer size from the smallest usable one up: the output is a
 * prefix of the full reply's text, NUL-terminated, ending in CRLF, and
 * nothing is written past dstsz. */
static void
test_truncation(void **state)
{
	static const enum smtp_reply_id ids[] = { R_QUEUED, R_DATA_GO, R_HELP,
	    R_BAD_PARAM };
	int failed = 0;

	(void)state;
	for (size_t k = 0; k < sizeof ids / sizeof ids[0]; k++) {
		char full[1024];
		size_t fulln = reply_format(full, sizeof full, ids[k], "abcdefgh");

		for (size_t sz = 8; sz <= fulln + 4; sz++) {
			char got[1024 + 16];
			size_t n;

			memset(got, 'Z', sizeof got);
			n = reply_format(got, sz, ids[k], "abcdefgh");
			if (got[sz] != 'Z' || n >= sz || got[n] != '\0' ||
			    n != strlen(got) || n < 2 ||
			    memcmp(got + n - 2, "\r\n", 2) != 0 ||
			    memcmp(got, full, n - 2) != 0 ||
			    (sz > fulln && strcmp(got, full) != 0)) {
				print_error("%s in %zu: got '%.*s' (%zu), want a "
				    "CRLF-ended prefix of '%s'\n",
				    reply_def(ids[k])->name, sz, (int)sz, got, n,
				    full);
				failed++;
			}
		}
	}
	/* Too small for any reply: an empty string, never garbage. */
	for (size_t sz = 1; sz < 8; sz++) {
		char got[16];
		size_t n;

		memset(got, 'Z', sizeof got);
		n = reply_format(got, sz, R_ACTION_OK, NULL);
		if (n != 0 || got[0] != '\0' || got[sz] != 'Z') {
			print_error("R_ACTION_OK in %zu: got %zu '%.*s', want 0 "
			    "''\n", sz, n, (int)sz, got);
			failed++;
		}
	}
	if (failed)
		fail_msg("%d truncation case(s) failed", failed);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_esc_pattern),
		cmocka_unit_test(test_every_row),
		cmocka_unit_test(test_required_rows),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_truncation),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
