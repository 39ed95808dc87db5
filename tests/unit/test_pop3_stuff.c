/*
 * test_pop3_stuff.c - RETR/TOP output (src/pop3/pop3_stuff.h): dots
 * doubled at line starts, CRLF line ends, the terminating ".\r\n", TOP's
 * header-plus-n-lines cut, and the same result whatever the chunking;
 * and the Maildir unique-ids used by UIDL (src/pop3/maildir_read.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "pop3/maildir_read.h"
#include "pop3/pop3_stuff.h"

struct stuff_case {
	const char	*in;
	long		 top;		/* -1: RETR */
	const char	*want;
	size_t		 inlen, wantlen;	/* 0: strlen (cases with NULs) */
};

static const struct stuff_case stuff_cases[] = {
	{ "", -1, ".\r\n", 0, 0 },
	{ "a\r\n", -1, "a\r\n.\r\n", 0, 0 },
	{ "a", -1, "a\r\n.\r\n", 0, 0 },
	{ "a\r", -1, "a\r\n.\r\n", 0, 0 },
	{ ".\r\n", -1, "..\r\n.\r\n", 0, 0 },
	{ ".leading\r\n..two\r\nmid.dle.\r\n.\r\n", -1,
	    "..leading\r\n...two\r\nmid.dle.\r\n..\r\n.\r\n", 0, 0 },
	{ "H: v\r\n\r\n.body\r\n", -1, "H: v\r\n\r\n..body\r\n.\r\n", 0, 0 },
	/* Bare LF in a foreign file: CRLF on the wire. */
	{ "a\nb\n.c\n", -1, "a\r\nb\r\n..c\r\n.\r\n", 0, 0 },
	/* Bare CR too: "a CR . CR LF" must not read as the end. */
	{ "a\r.\r\nb\r\n", -1, "a\r\n..\r\nb\r\n.\r\n", 0, 0 },
	{ "x\r\ry\r\n", -1, "x\r\n\r\ny\r\n.\r\n", 0, 0 },
	/* 8-bit and NUL bytes pass unchanged. */
	{ "\xe3\x81\x82\r\n\xff\x00x\r\n", -1,
	    "\xe3\x81\x82\r\n\xff\x00x\r\n.\r\n", 10, 13 },
	/* TOP: the header, the empty line, n body lines. */
	{ "H: 1\r\nI: 2\r\n\r\nl1\r\n.l2\r\nl3\r\n", 0,
	    "H: 1\r\nI: 2\r\n\r\n.\r\n", 0, 0 },
	{ "H: 1\r\nI: 2\r\n\r\nl1\r\n.l2\r\nl3\r\n", 2,
	    "H: 1\r\nI: 2\r\n\r\nl1\r\n..l2\r\n.\r\n", 0, 0 },
	{ "H: 1\r\n\r\nl1\r\n", 5, "H: 1\r\n\r\nl1\r\n.\r\n", 0, 0 },
	{ "H: 1\r\n\r\nl1", 5, "H: 1\r\n\r\nl1\r\n.\r\n", 0, 0 },
	{ "H: 1\r\nno body\r\n", 0, "H: 1\r\nno body\r\n.\r\n", 0, 0 },
	/* An empty line inside the body is a body line for TOP. */
	{ "H: 1\r\n\r\n\r\nx\r\ny\r\n", 2, "H: 1\r\n\r\n\r\nx\r\n.\r\n", 0, 0 },
};

static void
run_case(const struct stuff_case *tc, size_t inlen, size_t wantlen,
    size_t chunk)
{
	struct pop3_stuff st;
	struct buf out;

	buf_init(&out, 0);
	pop3_stuff_init(&st, tc->top);
	for (size_t off = 0; off < inlen; off += chunk) {
		size_t n = inlen - off < chunk ? inlen - off : chunk;
		assert_int_equal(pop3_stuff_feed(&st, tc->in + off, n, &out), 0);
	}
	assert_int_equal(pop3_stuff_finish(&st, &out), 0);
	if (out.len != wantlen || memcmp(out.data, tc->want, wantlen) != 0) {
		char got[512], want[512];

		snprintf(got, sizeof got, "%.*s", (int)out.len, out.data ? out.data : "");
		snprintf(want, sizeof want, "%.*s", (int)wantlen, tc->want);
		fail_msg("'%s' (top %ld, chunk %zu): got '%s', want '%s'",
		    tc->in, tc->top, chunk, got, want);
	}
	buf_free(&out);
}

static void
test_stuff_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof stuff_cases / sizeof stuff_cases[0]; i++) {
		const struct stuff_case *tc = &stuff_cases[i];
		size_t inlen = tc->inlen ? tc->inlen : strlen(tc->in);
		size_t wantlen = tc->wantlen ? tc->wantlen : strlen(tc->want);

		/* Whole, and byte by byte: a chunk boundary anywhere (after a
		 * CR, before a dot) changes nothing. */
		run_case(tc, inlen, wantlen, inlen ? inlen : 1);
		run_case(tc, inlen, wantlen, 1);
		run_case(tc, inlen, wantlen, 2);
		run_case(tc, inlen, wantlen, 3);
	}
}

/* RETR of a CRLF file: what a client gets back after un-stuffing
 * (RFC 1939 section 3) is the file, byte for byte, so the octet count
 * LIST gives (the file size) is right. */
static void
test_stuff_octets(void **state)
{
	const char *msg = "Subject: x\r\n\r\n.a\r\n..b\r\n.\r\nc\r\n";
	struct pop3_stuff st;
	struct buf out, back;
	const char *p;

	(void)state;
	buf_init(&out, 0);
	buf_init(&back, 0);
	pop3_stuff_init(&st, -1);
	assert_int_equal(pop3_stuff_feed(&st, msg, strlen(msg), &out), 0);
	assert_int_equal(pop3_stuff_finish(&st, &out), 0);
	for (p = out.data; ; ) {
		const char *eol = memchr(p, '\n', (size_t)(out.data + out.len - p));

		assert_non_null(eol);
		if (eol - p == 2 && p[0] == '.')
			break;		/* the terminating ".\r\n" */
		if (p[0] == '.')
			p++;
		buf_append(&back, p, (size_t)(eol + 1 - p));
		p = eol + 1;
	}
	assert_int_equal(p + 3, out.data + out.len);
	assert_int_equal(back.len, strlen(msg));
	assert_memory_equal(back.data, msg, back.len);
	buf_free(&out);
	buf_free(&back);
}

static void
test_stuff_bounded(void **state)
{
	struct pop3_stuff st;
	struct buf out;

	(void)state;
	buf_init(&out, 8);
	pop3_stuff_init(&st, -1);
	assert_int_equal(pop3_stuff_feed(&st, "..........\r\n", 12, &out), -1);
	buf_free(&out);
}

/* pop3_size against what RETR really sends: for random text of CR, LF,
 * letters and dots, fed in random chunks, the size is the stuffed
 * output less ".\r\n" and less one octet per line that starts with a
 * dot (the stuffing). */
static void
test_size_matches_retr(void **state)
{
	static const char alphabet[] = "\r\n\r\n.ab";
	char in[64];
	unsigned seed = 7;

	(void)state;
	for (int round = 0; round < 20000; round++) {
		struct pop3_stuff st;
		struct pop3_size z;
		struct buf out;
		size_t n, dots = 0;

		seed = seed * 1103515245u + 12345u;
		n = (seed >> 16) % sizeof in;
		for (size_t i = 0; i < n; i++) {
			seed = seed * 1103515245u + 12345u;
			in[i] = alphabet[(seed >> 16) % (sizeof alphabet - 1)];
		}
		buf_init(&out, 0);
		pop3_stuff_init(&st, -1);
		pop3_size_init(&z);
		for (size_t off = 0; off < n;) {
			size_t k;

			seed = seed * 1103515245u + 12345u;
			k = 1 + (seed >> 16) % 7;
			if (k > n - off)
				k = n - off;
			assert_int_equal(pop3_stuff_feed(&st, in + off, k, &out), 0);
			pop3_size_feed(&z, in + off, k);
			off += k;
		}
		assert_int_equal(pop3_stuff_finish(&st, &out), 0);
		/* Stuffed dots: a "." right after a line end (or at the start)
		 * in the output is followed by another one. */
		for (size_t i = 0; i + 1 < out.len; i++)
			if (out.data[i] == '.' && out.data[i + 1] == '.' &&
			    (i == 0 || out.data[i - 1] == '\n')) {
				dots++;
				i++;
			}
		if (pop3_size_finish(&z) != out.len - 3 - dots)
			fail_msg("'%.*s': size %llu, RETR sends %zu (%zu stuffed)",
			    (int)n, in, (unsigned long long)pop3_size_finish(&z),
			    out.len - 3, dots);
		buf_free(&out);
	}
}

static void
test_uid(void **state)
{
	char uid[MAILDIR_UID_MAX + 1], uid2[MAILDIR_UID_MAX + 1];
	char longname[200];

	(void)state;
	maildir_uid("1700000000.M1P2Q3.host:2,S", uid);
	assert_string_equal(uid, "1700000000.M1P2Q3.host");
	maildir_uid("1700000000.M1P2Q3.host", uid2);
	assert_string_equal(uid, uid2);
	maildir_uid("1700000000.M1P2Q3.host:2,", uid2);
	assert_string_equal(uid, uid2);
	/* Too long or with a blank: a digest, still stable and legal. */
	memset(longname, 'h', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	maildir_uid(longname, uid);
	assert_true(strlen(uid) >= 1 && strlen(uid) <= MAILDIR_UID_MAX);
	maildir_uid(longname, uid2);
	assert_string_equal(uid, uid2);
	maildir_uid("a b:2,", uid);
	assert_true(strchr(uid, ' ') == NULL && strlen(uid) <= MAILDIR_UID_MAX);
	for (const char *p = uid; *p; p++)
		assert_true(*p > 0x20 && *p < 0x7f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stuff_table),
		cmocka_unit_test(test_stuff_octets),
		cmocka_unit_test(test_stuff_bounded),
		cmocka_unit_test(test_size_matches_retr),
		cmocka_unit_test(test_uid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
