/*
 * test_smtp_data.c - the DATA reader (src/smtp/smtp_data.h).
 *
 * Every row is fed whole, in 1-byte chunks, in every split into two
 * chunks and (for short rows) every split into three: the result, the
 * unstuffed output, `used` and `size` must not depend on where the
 * network happened to cut the stream.  Every SMTP smuggling variant
 * (a bare CR or LF anywhere, RFC 5321 section 2.3.8) must end in
 * DATA_BARE_EOL, never in DATA_END.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/strutil.h"
#include "smtp/smtp_data.h"

#define S(s)	s, sizeof(s) - 1	/* a literal with its length (NULs too) */

struct data_case {
	const char	*in;
	size_t		 inlen;
	enum data_result want;
	const char	*out;		/* unstuffed output (END and MORE rows) */
	size_t		 outlen;
	size_t		 used;		/* absolute offset where reading stopped */
};

#define END(in, out, used)	{ S(in), DATA_END, S(out), used }
#define MORE(in, out)		{ S(in), DATA_MORE, S(out), sizeof(in) - 1 }
#define BARE(in, used)		{ S(in), DATA_BARE_EOL, NULL, 0, used }

static const struct data_case data_cases[] = {
	/* Plain messages and the terminator. */
	END(".\r\n", "", 3),
	END("\r\n.\r\n", "\r\n", 5),
	END("hello\r\n.\r\n", "hello\r\n", 10),
	END("a\r\nb\r\n\r\nc\r\n.\r\n", "a\r\nb\r\n\r\nc\r\n", 14),
	END("Subject: x\r\n\r\nbody\r\n.\r\n",
	    "Subject: x\r\n\r\nbody\r\n", 23),

	/* Dot-unstuffing: a leading dot is dropped, and only a leading one. */
	END("..\r\n.\r\n", ".\r\n", 7),
	END("...\r\n.\r\n", "..\r\n", 8),
	END(".x\r\n.\r\n", "x\r\n", 7),
	END("..x\r\n.\r\n", ".x\r\n", 8),
	END("a\r\n..b\r\n.\r\n", "a\r\n.b\r\n", 11),
	END("a.\r\nb..c\r\n.\r\n", "a.\r\nb..c\r\n", 13),
	END("a\r\n.. \r\n.\r\n", "a\r\n. \r\n", 11),
	END("a\r\n..\r\n..\r\n.\r\n", "a\r\n.\r\n.\r\n", 14),
	END("a\r\n. \r\n.\r\n", "a\r\n \r\n", 10),

	/* Bytes after the terminator are left for the command reader. */
	END("x\r\n.\r\nQUIT\r\n", "x\r\n", 6),
	END("x\r\n.\r\n.\r\n", "x\r\n", 6),
	END(".\r\nMAIL FROM:<>\r\n", "", 3),

	/* 8-bit octets and NULs pass through untouched. */
	END("a\0b\r\n.\r\n", "a\0b\r\n", 8),
	END("\0\r\n.\r\n", "\0\r\n", 6),
	END("\xc3\xa9t\xc3\xa9\xff\x80\r\n.\r\n", "\xc3\xa9t\xc3\xa9\xff\x80\r\n", 12),
	END(".\0\r\n.\r\n", "\0\r\n", 7),

	/* Not finished yet: held-back dots and CRs are not output early. */
	MORE("", ""),
	MORE("hello", "hello"),
	MORE("hello\r\n", "hello\r\n"),
	MORE("hello\r", "hello\r"),
	MORE("hello\r\n.", "hello\r\n"),
	MORE("hello\r\n.\r", "hello\r\n"),
	MORE(".", ""),
	MORE("..", "."),
	MORE("a\r\n..b", "a\r\n.b"),
	MORE("a\r\n.\r", "a\r\n"),

	/* SMTP smuggling: every bare CR or LF is fatal. */
	BARE("\n.\n", 1),
	BARE("a\n.\n", 2),
	BARE("a\r\n.\n", 5),
	BARE("a\n.\r\n", 2),
	BARE("a\r.\r\n", 3),
	END("a\r\n.\r\n", "a\r\n", 6),
	BARE("a\r\n.\rX", 6),
	BARE("a\r\n.\r.\r\n", 6),
	BARE("a\r\n.\r\r\n", 6),
	BARE("a\r\n.\rmore\r\n.\r\n", 6),
	BARE("hello\n.\nMAIL FROM:<e@x>\r\n.\r\n", 6),
	BARE("hello\r\n.\nMAIL FROM:<e@x>\r\n.\r\n", 9),
	BARE("hello\n.\r\nMAIL FROM:<e@x>\r\n.\r\n", 6),
	BARE("hello\r.\r\nMAIL FROM:<e@x>\r\n.\r\n", 7),
	BARE("ab\rcd\r\n.\r\n", 4),
	BARE("ab\ncd\r\n.\r\n", 3),
	BARE("ab\r\r\n.\r\n", 4),
	BARE("\r\r\n.\r\n", 2),
	BARE("\n", 1),
	BARE("\r.", 2),
	BARE("\rX", 2),
	BARE("\r\n\n.\r\n", 3),
	BARE(".\n", 2),
	BARE("..\n", 3),
	BARE(".\r.\r\n", 3),
	BARE(".\rX", 3),
	BARE(".\r\r\n", 3),
	BARE("a\r\n.\n.\r\n", 5),
	BARE("a\r\n\r.\r\n", 5),
	BARE("a\r\n\n.\r\n", 4),
	BARE("a\r\nb\nc\r\n.\r\n", 5),
};

struct sink {
	char	 buf[1024];
	size_t	 len;
	int	 overflow;
	int	 empty_calls;
};

static void
sink_out(void *arg, const char *p, size_t n)
{
	struct sink *s = arg;

	if (n == 0)
		s->empty_calls++;
	if (n > sizeof s->buf - s->len) {
		s->overflow = 1;
		return;
	}
	memcpy(s->buf + s->len, p, n);
	s->len += n;
}

struct run {
	enum data_result res;
	size_t		 used;		/* absolute */
	uint64_t	 size;
	struct sink	 out;
	int		 short_more;	/* DATA_MORE with *used != chunk length */
};

/* Feed in[0..n) cut at the given offsets (ascending, each <= n). */
static void
feed_split(const char *in, size_t n, const size_t *cuts, size_t ncuts,
    struct run *r)
{
	struct data_reader dr;
	size_t off = 0;

	memset(r, 0, sizeof *r);
	data_reader_init(&dr);
	r->res = DATA_MORE;
	for (size_t k = 0; k <= ncuts; k++) {
		size_t end = k < ncuts ? cuts[k] : n, used = (size_t)-1;

		r->res = data_reader_feed(&dr, in + off, end - off, &used,
		    sink_out, &r->out);
		if (r->res != DATA_MORE) {
			r->used = off + used;
			break;
		}
		if (used != end - off)
			r->short_more = 1;
		off = end;
		r->used = off;
	}
	r->size = dr.size;
}

static const char *
result_name(enum data_result r)
{
	return r == DATA_MORE ? "DATA_MORE" : r == DATA_END ? "DATA_END" :
	    r == DATA_BARE_EOL ? "DATA_BARE_EOL" : "?";
}

static char *
esc(char *dst, size_t dstsz, const char *s, size_t n)
{
	return str_escape(dst, dstsz, s, n);
}

/* Check one run against a row; returns 1 on failure (after printing). */
static int
check_run(const struct data_case *tc, const struct run *r, const char *how)
{
	char ein[512], egot[512], ewant[512];

	esc(ein, sizeof ein, tc->in, tc->inlen);
	if (r->res != tc->want) {
		print_error("'%s' %s: got %s, want %s\n", ein, how,
		    result_name(r->res), result_name(tc->want));
		return 1;
	}
	if (r->used != tc->used) {
		print_error("'%s' %s: got used %zu, want %zu\n", ein, how,
		    r->used, tc->used);
		return 1;
	}
	if (r->short_more || r->out.overflow) {
		print_error("'%s' %s: got DATA_MORE with a short used, want "
		    "all consumed\n", ein, how);
		return 1;
	}
	if (r->out.empty_calls) {
		print_error("'%s' %s: got %d empty out() calls, want none\n",
		    ein, how, r->out.empty_calls);
		return 1;
	}
	if (tc->want == DATA_BARE_EOL)
		return 0;
	if (r->out.len != tc->outlen || memcmp(r->out.buf, tc->out, tc->outlen)) {
		print_error("'%s' %s: got '%s', want '%s'\n", ein, how,
		    esc(egot, sizeof egot, r->out.buf, r->out.len),
		    esc(ewant, sizeof ewant, tc->out, tc->outlen));
		return 1;
	}
	if (r->size != tc->outlen) {
		print_error("'%s' %s: got size %llu, want %zu\n", ein, how,
		    (unsigned long long)r->size, tc->outlen);
		return 1;
	}
	return 0;
}

static void
check_case(const struct data_case *tc, int *failed)
{
	struct run r;
	size_t cuts[256], n = tc->inlen;
	char how[64];

	/* Whole. */
	feed_split(tc->in, n, NULL, 0, &r);
	*failed += check_run(tc, &r, "whole");

	/* One octet at a time. */
	assert_true(n < sizeof cuts / sizeof cuts[0]);
	for (size_t i = 0; i < n; i++)
		cuts[i] = i + 1;
	feed_split(tc->in, n, cuts, n ? n - 1 : 0, &r);
	*failed += check_run(tc, &r, "1-byte chunks");

	/* Every two-chunk split, including empty first and last chunks. */
	for (size_t a = 0; a <= n; a++) {
		cuts[0] = a;
		feed_split(tc->in, n, cuts, 1, &r);
		snprintf(how, sizeof how, "split at %zu", a);
		*failed += check_run(tc, &r, how);
	}

	/* Every three-chunk split of short rows. */
	if (n <= 40)
		for (size_t a = 0; a <= n; a++)
			for (size_t b = a; b <= n; b++) {
				cuts[0] = a;
				cuts[1] = b;
				feed_split(tc->in, n, cuts, 2, &r);
				snprintf(how, sizeof how, "split at %zu,%zu", a, b);
				*failed += check_run(tc, &r, how);
			}
}

static void
test_table(void **state)
{
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof data_cases / sizeof data_cases[0]; i++) {
		const struct data_case *tc = &data_cases[i];

		check_case(tc, &failed);
		if (failed > 20)
			break;
	}
	if (failed)
		fail_msg("%d DATA reader check(s) failed", failed);
}

/*
 * Round trip: dot-stuff a message with awkward lines, feed it with many
 * chunk sizes, and get the original back octet for octet.
 */
static void
test_round_trip(void **state)
{
	static const struct { const char *s; size_t n; } lines[] = {
		{ S("") }, { S(".") }, { S("..") }, { S("...") }, { S(".x") },
		{ S("x.") }, { S(" .") }, { S(". ") }, { S("\xff.") },
		{ S("\0.") }, { S(".\0") }, { S("From: a@b") }, { S("-- ") },
		{ S("Subject: .\x80") }, { S(".\t.") },
	};
	static char orig[8192], wire[8192 + 1024], got[8192];
	size_t olen = 0, wlen = 0;
	int failed = 0;
	uint32_t seed = 12345;

	(void)state;
	for (int k = 0; k < 400; k++) {
		size_t pick, ll;

		seed = seed * 1103515245u + 12345u;
		pick = (seed >> 16) % (sizeof lines / sizeof lines[0]);
		ll = lines[pick].n;
		assert_true(olen + ll + 2 <= sizeof orig);
		memcpy(orig + olen, lines[pick].s, ll);
		olen += ll;
		memcpy(orig + olen, "\r\n", 2);
		olen += 2;
		if (ll && lines[pick].s[0] == '.')
			wire[wlen++] = '.';
		memcpy(wire + wlen, lines[pick].s, ll);
		wlen += ll;
		memcpy(wire + wlen, "\r\n", 2);
		wlen += 2;
	}
	/* The terminator, then the next command, which must stay unread. */
	memcpy(wire + wlen, ".\r\nQUIT\r\n", 9);

	for (size_t chunk = 1; chunk <= 70; chunk++) {
		struct data_reader dr;
		size_t off = 0, glen = 0, used = 0, total = wlen + 9;
		enum data_result res = DATA_MORE;

		data_reader_init(&dr);
		while (off < total && res == DATA_MORE) {
			size_t n = total - off < chunk ? total - off : chunk;
			struct sink tmp;

			memset(&tmp, 0, sizeof tmp);
			res = data_reader_feed(&dr, wire + off, n, &used,
			    sink_out, &tmp);
			assert_false(tmp.overflow);
			assert_true(glen + tmp.len <= sizeof got);
			memcpy(got + glen, tmp.buf, tmp.len);
			glen += tmp.len;
			off += used;
		}
		if (res != DATA_END || off != wlen + 3 || glen != olen ||
		    memcmp(got, orig, olen) != 0 || dr.size != olen) {
			print_error("chunk %zu: got %s at %zu, %zu octets (size "
			    "%llu), want DATA_END at %zu, %zu octets\n", chunk,
			    result_name(res), off, glen,
			    (unsigned long long)dr.size, wlen + 3, olen);
			failed++;
		}
	}
	if (failed)
		fail_msg("%d round trip(s) failed", failed);
}

/* After DATA_END the reader can be started again for the next message. */
static void
test_reinit(void **state)
{
	static const char in[] = "one\r\n.\r\ntwo\r\n..\r\n.\r\n";
	struct data_reader dr;
	struct sink s;
	size_t used, off;

	(void)state;
	memset(&s, 0, sizeof s);
	data_reader_init(&dr);
	assert_int_equal(data_reader_feed(&dr, in, sizeof in - 1, &used,
	    sink_out, &s), DATA_END);
	assert_int_equal(used, 8);
	assert_int_equal(dr.size, 5);
	assert_memory_equal(s.buf, "one\r\n", 5);
	off = used;
	memset(&s, 0, sizeof s);
	data_reader_init(&dr);
	assert_int_equal(dr.size, 0);
	assert_int_equal(data_reader_feed(&dr, in + off, sizeof in - 1 - off,
	    &used, sink_out, &s), DATA_END);
	assert_int_equal(off + used, sizeof in - 1);
	assert_int_equal(s.len, 8);
	assert_memory_equal(s.buf, "two\r\n.\r\n", 8);
	assert_int_equal(dr.size, 8);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_reinit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
