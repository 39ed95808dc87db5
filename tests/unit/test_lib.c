/*
 * test_lib.c - the pure helpers in src/lib: the bounded buffer, size and
 * duration syntax, log escaping, and address prefixes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/filewatch.h"
#include "lib/fsio.h"
#include "lib/keyindex.h"
#include "lib/netaddr.h"
#include "lib/strutil.h"
#include "unit_files.h"

/* ---- buf ---------------------------------------------------------- */

enum buf_op { B_APPEND, B_PUTS, B_PUTC, B_PRINTF, B_CONSUME, B_RESET };

struct buf_step {
	enum buf_op	 op;
	const char	*s;		/* APPEND/PUTS text, PRINTF string arg */
	size_t		 n;		/* APPEND length, PUTC byte, CONSUME count,
					 * PRINTF number */
	int		 rc;
	const char	*want;		/* contents after the step */
	size_t		 wantlen;
};

struct buf_case {
	size_t			 max;
	struct buf_step		 steps[8];
};

#define STEP(op, s, n, rc, want)	{ op, s, n, rc, want, sizeof(want) - 1 }

static const struct buf_case buf_cases[] = {
	/* The maximum is enforced to the byte; a refused append changes
	 * nothing. */
	{ 10, {
		STEP(B_APPEND, "0123456789", 10, 0, "0123456789"),
		STEP(B_PUTC, NULL, 'x', -1, "0123456789"),
		STEP(B_APPEND, "", 0, 0, "0123456789"),
		STEP(B_CONSUME, NULL, 3, 0, "3456789"),
		STEP(B_PUTS, "abcd", 0, -1, "3456789"),
		STEP(B_PUTS, "abc", 0, 0, "3456789abc"),
		STEP(B_RESET, NULL, 0, 0, ""),
		STEP(B_PUTS, "0123456789", 0, 0, "0123456789"),
	} },
	{ 5, {
		STEP(B_APPEND, "abcdef", 6, -1, ""),
		STEP(B_PRINTF, "ab", 123, 0, "ab123"),
		STEP(B_PRINTF, "", 1, -1, "ab123"),
		STEP(B_CONSUME, NULL, 99, 0, ""),
		STEP(B_PRINTF, "abcdef", 0, -1, ""),
		STEP(B_PRINTF, "", 12345, 0, "12345"),
	} },
	/* NULs are data; the byte after the data is always NUL. */
	{ 0, {
		STEP(B_APPEND, "a\0b", 3, 0, "a\0b"),
		STEP(B_PUTC, NULL, 0, 0, "a\0b\0"),
		STEP(B_PUTC, NULL, 0x1ff, 0, "a\0b\0\xff"),
		STEP(B_CONSUME, NULL, 0, 0, "a\0b\0\xff"),
		STEP(B_CONSUME, NULL, 4, 0, "\xff"),
		STEP(B_CONSUME, NULL, 1, 0, ""),
		STEP(B_PRINTF, "%s", 7, 0, "%s7"),
	} },
	/* A one-byte buffer. */
	{ 1, {
		STEP(B_PUTC, NULL, 'z', 0, "z"),
		STEP(B_PUTC, NULL, 'z', -1, "z"),
		STEP(B_PRINTF, "", 1, -1, "z"),
		STEP(B_PRINTF, "", 0, -1, "z"),
	} },
};

static const char *
buf_op_name(enum buf_op op)
{
	static const char *names[] = { "append", "puts", "putc", "printf",
	    "consume", "reset" };
	return names[op];
}

static void
test_buf(void **state)
{
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof buf_cases / sizeof buf_cases[0]; i++) {
		struct buf b;

		buf_init(&b, buf_cases[i].max);
		for (size_t k = 0; k < 8; k++) {
			const struct buf_step *st = &buf_cases[i].steps[k];
			char got[128], want[128];
			int rc = 0;

			if (st->want == NULL)
				break;
			switch (st->op) {
			case B_APPEND:
				rc = buf_append(&b, st->s, st->n);
				break;
			case B_PUTS:
				rc = buf_puts(&b, st->s);
				break;
			case B_PUTC:
				rc = buf_putc(&b, (int)st->n);
				break;
			case B_PRINTF:
				rc = buf_printf(&b, "%s%zu", st->s, st->n);
				break;
			case B_CONSUME:
				buf_consume(&b, st->n);
				break;
			case B_RESET:
				buf_reset(&b);
				break;
			}
			if (rc != st->rc || b.len != st->wantlen ||
			    (b.len && memcmp(b.data, st->want, b.len) != 0) ||
			    (b.data != NULL && b.data[b.len] != '\0') ||
			    (b.max && b.len > b.max)) {
				str_escape(got, sizeof got, b.data ? b.data : "",
				    b.len);
				str_escape(want, sizeof want, st->want,
				    st->wantlen);
				print_error("buf max %zu step %zu (%s): got %d '%s', "
				    "want %d '%s'\n", buf_cases[i].max, k,
				    buf_op_name(st->op), rc, got, st->rc, want);
				failed++;
			}
		}
		buf_free(&b);
		assert_null(b.data);
		assert_int_equal(b.len, 0);
	}
	if (failed)
		fail_msg("%d buf step(s) failed", failed);
}

/* A large unbounded buffer keeps every byte and its terminator. */
static void
test_buf_grow(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 0);
	for (int i = 0; i < 10000; i++)
		assert_int_equal(buf_printf(&b, "%04d", i), 0);
	assert_int_equal(b.len, 40000);
	assert_true(b.cap > b.len);
	assert_int_equal(b.data[b.len], '\0');
	assert_memory_equal(b.data + 4 * 9999, "9999", 4);
	assert_memory_equal(b.data + 4 * 1234, "1234", 4);
	buf_free(&b);
}

/* ---- parse_size / parse_duration ----------------------------------- */

struct num_case {
	const char	*in;
	int		 rc;
	uint64_t	 want;
};

static const struct num_case size_cases[] = {
	{ "0", 0, 0 }, { "1", 0, 1 }, { "1024", 0, 1024 },
	{ "10k", 0, 10240 }, { "10K", 0, 10240 },
	{ "10m", 0, 10485760 }, { "10M", 0, 10485760 },
	{ "1g", 0, 1073741824 }, { "1G", 0, 1073741824 },
	{ "007k", 0, 7168 },
	{ "18446744073709551615", 0, UINT64_MAX },
	{ "17179869183G", 0, 17179869183ULL << 30 },
	{ "", -1, 0 }, { "k", -1, 0 }, { "M", -1, 0 }, { "10KB", -1, 0 },
	{ "10 M", -1, 0 }, { " 10", -1, 0 }, { "10 ", -1, 0 }, { "+10", -1, 0 },
	{ "-10", -1, 0 }, { "1.5M", -1, 0 }, { "10T", -1, 0 }, { "10s", -1, 0 },
	{ "0x10", -1, 0 }, { "18446744073709551616", -1, 0 },
	{ "17179869184G", -1, 0 }, { "18014398509481984k", -1, 0 },
};

static const struct num_case duration_cases[] = {
	{ "0", 0, 0 }, { "30", 0, 30 }, { "30s", 0, 30 }, { "15m", 0, 900 },
	{ "2h", 0, 7200 }, { "5d", 0, 432000 }, { "1w", 0, 604800 },
	{ "", -1, 0 }, { "s", -1, 0 }, { "15min", -1, 0 }, { "1M", -1, 0 },
	{ "1H", -1, 0 }, { "1.5h", -1, 0 }, { "-1", -1, 0 }, { " 1", -1, 0 },
	{ "1y", -1, 0 }, { "1k", -1, 0 }, { "30000000000000000000w", -1, 0 },
	{ "30500568904943w", 0, 30500568904943ULL * 604800 },
	{ "30500568904944w", -1, 0 },
};

static int
check_nums(const char *what, int (*fn)(const char *, uint64_t *),
    const struct num_case *cases, size_t n)
{
	int failed = 0;

	for (size_t i = 0; i < n; i++) {
		uint64_t got = 4242;
		int rc = fn(cases[i].in, &got);

		if (rc != cases[i].rc || (rc == 0 && got != cases[i].want)) {
			print_error("%s('%s'): got %d %llu, want %d %llu\n", what,
			    cases[i].in, rc, (unsigned long long)got,
			    cases[i].rc, (unsigned long long)cases[i].want);
			failed++;
		}
	}
	return failed;
}

static void
test_parse_size(void **state)
{
	int failed;

	(void)state;
	failed = check_nums("parse_size", parse_size, size_cases,
	    sizeof size_cases / sizeof size_cases[0]);
	if (failed)
		fail_msg("%d parse_size case(s) failed", failed);
}

static void
test_parse_duration(void **state)
{
	int failed;

	(void)state;
	failed = check_nums("parse_duration", parse_duration, duration_cases,
	    sizeof duration_cases / sizeof duration_cases[0]);
	if (failed)
		fail_msg("%d parse_duration case(s) failed", failed);
}

/* ---- str_escape ---------------------------------------------------- */

static void
test_str_escape(void **state)
{
	static const struct {
		const char *in;
		size_t len, dstsz;
		const char *want;
	} cases[] = {
		{ "abc", 3, 64, "abc" },
		{ "MAIL FROM:<a@b>", 15, 64, "MAIL FROM:<a@b>" },
		{ "a\r\n", 3, 64, "a\\x0d\\x0a" },
		{ "\\", 1, 64, "\\x5c" },
		{ "a\0b", 3, 64, "a\\x00b" },
		{ "\x7f\x80\xff\x1b[0m", 7, 64, "\\x7f\\x80\\xff\\x1b[0m" },
		{ "~ ", 2, 64, "~ " },
		{ "abcdef", 3, 64, "abc" },
		{ "abcdef", 6, 4, "abc" },
		{ "abcdef", 6, 1, "" },
		{ "\x01", 1, 5, "\\x01" },
		{ "\x01", 1, 4, "" },
		{ "a\x01", 2, 5, "a" },
		{ "ab\x01" "c", 4, 7, "ab\\x01" },
		{ "", 0, 8, "" },
	};
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char got[80];
		char *r;

		memset(got, 'Z', sizeof got);
		r = str_escape(got, cases[i].dstsz, cases[i].in, cases[i].len);
		if (r != got || strcmp(got, cases[i].want) != 0 ||
		    got[cases[i].dstsz] != 'Z') {
			print_error("case %zu in %zu: got '%.*s', want '%s'\n", i,
			    cases[i].dstsz, (int)cases[i].dstsz, got,
			    cases[i].want);
			failed++;
		}
	}
	/* dstsz 0 writes nothing at all. */
	{
		char z = 'Z';
		str_escape(&z, 0, "abc", 3);
		if (z != 'Z') {
			print_error("dstsz 0: got a write, want none\n");
			failed++;
		}
	}
	if (failed)
		fail_msg("%d str_escape case(s) failed", failed);
}

/* ---- netprefix ------------------------------------------------------ */

static void
test_netprefix_parse(void **state)
{
	static const struct {
		const char *in;
		int rc, family;
		const char *addr;
		unsigned bits;
	} cases[] = {
		{ "192.0.2.0/24", 0, AF_INET, "192.0.2.0", 24 },
		{ "192.0.2.1", 0, AF_INET, "192.0.2.1", 32 },
		{ "10.0.0.0/8", 0, AF_INET, "10.0.0.0", 8 },
		{ "0.0.0.0/0", 0, AF_INET, "0.0.0.0", 0 },
		{ "127.0.0.1/32", 0, AF_INET, "127.0.0.1", 32 },
		{ "[192.0.2.1]", 0, AF_INET, "192.0.2.1", 32 },
		{ "1.2.3.4/08", 0, AF_INET, "1.2.3.4", 8 },
		{ "::1", 0, AF_INET6, "::1", 128 },
		{ "::/0", 0, AF_INET6, "::", 0 },
		{ "2001:db8::/32", 0, AF_INET6, "2001:db8::", 32 },
		{ "[2001:db8::]/32", 0, AF_INET6, "2001:db8::", 32 },
		{ "[2001:db8::1]", 0, AF_INET6, "2001:db8::1", 128 },
		{ "::ffff:192.0.2.1", 0, AF_INET6, "::ffff:192.0.2.1", 128 },
		{ "fe80::/10", 0, AF_INET6, "fe80::", 10 },
		{ "", -1, 0, NULL, 0 },
		{ "/8", -1, 0, NULL, 0 },
		{ "192.0.2.0/33", -1, 0, NULL, 0 },
		{ "::/129", -1, 0, NULL, 0 },
		{ "192.0.2.0/", -1, 0, NULL, 0 },
		{ "192.0.2.0/-1", -1, 0, NULL, 0 },
		{ "192.0.2.0/+8", -1, 0, NULL, 0 },
		{ "192.0.2.0/ 8", -1, 0, NULL, 0 },
		{ "192.0.2.0/\t8", -1, 0, NULL, 0 },
		{ "192.0.2.0/8x", -1, 0, NULL, 0 },
		{ "192.0.2.0/8/8", -1, 0, NULL, 0 },
		{ "192.0.2.0/4294967304", -1, 0, NULL, 0 },
		{ "192.0.2.0/0x8", -1, 0, NULL, 0 },
		{ "192.0.2", -1, 0, NULL, 0 },
		{ "192.0.2.256", -1, 0, NULL, 0 },
		{ " 192.0.2.1", -1, 0, NULL, 0 },
		{ "example.org", -1, 0, NULL, 0 },
		{ "[::1", -1, 0, NULL, 0 },
		{ "::1]", -1, 0, NULL, 0 },
		{ "[]", -1, 0, NULL, 0 },
		{ "2001:db8::g/32", -1, 0, NULL, 0 },
		{ "fe80::1%eth0", -1, 0, NULL, 0 },
		{ "0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000/1",
		    -1, 0, NULL, 0 },
	};
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct netprefix p;
		char got[64] = "";
		int rc = netprefix_parse(cases[i].in, &p);

		if (rc == 0)
			inet_ntop(p.family, p.addr, got, sizeof got);
		if (rc != cases[i].rc || (rc == 0 && (p.family != cases[i].family
		    || strcmp(got, cases[i].addr) != 0 ||
		    p.bits != cases[i].bits))) {
			print_error("'%s': got %d '%s/%u', want %d '%s/%u'\n",
			    cases[i].in, rc, got, rc == 0 ? p.bits : 0,
			    cases[i].rc, cases[i].addr ? cases[i].addr : "",
			    cases[i].bits);
			failed++;
		}
	}
	if (failed)
		fail_msg("%d netprefix_parse case(s) failed", failed);
}

/* A socket address from text: IPv6 when it holds a colon. */
static void
make_sockaddr(const char *s, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof *ss);
	if (strchr(s, ':') != NULL) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(25);
		assert_int_equal(inet_pton(AF_INET6, s, &in6->sin6_addr), 1);
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;
		in->sin_family = AF_INET;
		in->sin_port = htons(25);
		assert_int_equal(inet_pton(AF_INET, s, &in->sin_addr), 1);
	}
}

static void
test_netprefix_match(void **state)
{
	static const struct {
		const char *prefix, *addr;
		int want;
	} cases[] = {
		{ "192.0.2.0/24", "192.0.2.0", 1 },
		{ "192.0.2.0/24", "192.0.2.255", 1 },
		{ "192.0.2.0/24", "192.0.3.0", 0 },
		{ "192.0.2.0/24", "192.0.1.255", 0 },
		{ "192.0.2.128/25", "192.0.2.200", 1 },
		{ "192.0.2.128/25", "192.0.2.100", 0 },
		{ "10.0.0.0/7", "11.255.0.1", 1 },
		{ "10.0.0.0/7", "12.0.0.1", 0 },
		{ "192.0.2.1", "192.0.2.1", 1 },
		{ "192.0.2.1", "192.0.2.2", 0 },
		{ "192.0.2.1/31", "192.0.2.0", 1 },
		{ "0.0.0.0/0", "203.0.113.9", 1 },
		{ "0.0.0.0/0", "255.255.255.255", 1 },
		{ "0.0.0.0/0", "2001:db8::1", 0 },
		/* IPv4-mapped peers match IPv4 prefixes. */
		{ "0.0.0.0/0", "::ffff:203.0.113.9", 1 },
		{ "192.0.2.0/24", "::ffff:192.0.2.7", 1 },
		{ "192.0.2.0/24", "::ffff:192.0.3.7", 0 },
		{ "127.0.0.0/8", "::ffff:127.0.0.1", 1 },
		{ "192.0.2.0/24", "::192.0.2.7", 0 },
		{ "192.0.2.0/24", "::fffe:192.0.2.7", 0 },
		{ "192.0.2.0/24", "64:ff9b::192.0.2.7", 0 },
		/* IPv6. */
		{ "2001:db8::/32", "2001:db8:ffff::1", 1 },
		{ "2001:db8::/32", "2001:db9::1", 0 },
		{ "2001:db8::/33", "2001:db8:7fff::1", 1 },
		{ "2001:db8::/33", "2001:db8:8000::1", 0 },
		{ "::1", "::1", 1 },
		{ "::1", "::2", 0 },
		{ "::/0", "2001:db8::1", 1 },
		{ "::/0", "::ffff:192.0.2.1", 1 },
		{ "::/0", "192.0.2.1", 0 },
		{ "2001:db8::/32", "192.0.2.1", 0 },
		{ "fe80::/10", "febf::1", 1 },
		{ "fe80::/10", "fec0::1", 0 },
	};
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct netprefix p;
		struct sockaddr_storage ss;
		int got;

		assert_int_equal(netprefix_parse(cases[i].prefix, &p), 0);
		make_sockaddr(cases[i].addr, &ss);
		got = netprefix_match(&p, (struct sockaddr *)&ss);
		if (got != cases[i].want) {
			print_error("%s ~ %s: got %d, want %d\n", cases[i].prefix,
			    cases[i].addr, got, cases[i].want);
			failed++;
		}
	}
	if (failed)
		fail_msg("%d netprefix_match case(s) failed", failed);
}

static void
test_netprefix_list_and_loopback(void **state)
{
	static const struct { const char *addr; int in_list, loopback; } cases[] = {
		{ "127.0.0.1", 1, 1 }, { "127.255.255.254", 1, 1 },
		{ "::1", 1, 1 }, { "::ffff:127.0.0.1", 1, 1 },
		{ "192.0.2.9", 1, 0 }, { "2001:db8::9", 1, 0 },
		{ "128.0.0.1", 0, 0 }, { "::2", 0, 0 }, { "::", 0, 0 },
		{ "198.51.100.1", 0, 0 },
	};
	static const char *list[] = { "127.0.0.0/8", "::1", "192.0.2.0/24",
	    "2001:db8::/32" };
	struct netprefix np[4];
	struct sockaddr_un un;
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(netprefix_parse(list[i], &np[i]), 0);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct sockaddr_storage ss;
		int in, lo;

		make_sockaddr(cases[i].addr, &ss);
		in = netprefix_match_list(np, 4, (struct sockaddr *)&ss);
		if (netprefix_match_list(np, 0, (struct sockaddr *)&ss) != 0) {
			print_error("%s: got a match in an empty list\n",
			    cases[i].addr);
			failed++;
		}
		lo = sockaddr_is_loopback((struct sockaddr *)&ss);
		if (in != cases[i].in_list || lo != cases[i].loopback) {
			print_error("%s: got list %d loopback %d, want %d %d\n",
			    cases[i].addr, in, lo, cases[i].in_list,
			    cases[i].loopback);
			failed++;
		}
	}
	/* Other families match nothing. */
	memset(&un, 0, sizeof un);
	un.sun_family = AF_UNIX;
	assert_int_equal(netprefix_match_list(np, 4, (struct sockaddr *)&un), 0);
	assert_int_equal(sockaddr_is_loopback((struct sockaddr *)&un), 0);
	if (failed)
		fail_msg("%d list/loopback case(s) failed", failed);
}

static void
test_sockaddr_format(void **state)
{
	static const struct { const char *addr; const char *want; } cases[] = {
		{ "192.0.2.1", "192.0.2.1" }, { "2001:db8::1", "2001:db8::1" },
		{ "::ffff:192.0.2.1", "::ffff:192.0.2.1" },
	};
	struct sockaddr_un un;
	char host[64];
	unsigned port = 0;

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct sockaddr_storage ss;

		make_sockaddr(cases[i].addr, &ss);
		port = 0;
		sockaddr_format((struct sockaddr *)&ss, host, sizeof host, &port);
		if (strcmp(host, cases[i].want) != 0 || port != 25)
			fail_msg("%s: got '%s' port %u, want '%s' port 25",
			    cases[i].addr, host, port, cases[i].want);
	}
	memset(&un, 0, sizeof un);
	un.sun_family = AF_UNIX;
	port = 99;
	sockaddr_format((struct sockaddr *)&un, host, sizeof host, &port);
	assert_string_equal(host, "local");
	assert_int_equal(port, 0);
}

static int
count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* An unnamed file is invisible until linked, keeps its data and mode,
 * and its link never replaces a file; the probe leaves nothing behind. */
static void
test_unnamed_file(void **state)
{
	char dir[] = "/tmp/postern-fsio-XXXXXX", path[64], got[16];
	struct stat st;
	int fd, rfd;
	ssize_t n;

	(void)state;
	assert_non_null(mkdtemp(dir));
	if ((fd = fsio_open_unnamed(dir, 0600)) == -1) {
		printf("SKIP unnamed files: %s: %s\n", dir, strerror(errno));
		rmdir(dir);
		skip();
	}
	assert_int_equal(write_full(fd, "queued\n", 7), 0);
	assert_int_equal(count_entries(dir), 0);
	snprintf(path, sizeof path, "%s/QID", dir);
	assert_int_equal(fsio_link_unnamed(fd, path), 0);
	assert_int_equal(count_entries(dir), 1);
	assert_int_equal(fsio_link_unnamed(fd, path), -1);
	assert_int_equal(errno, EEXIST);
	assert_int_equal(close(fd), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_nlink, 1);
	assert_true((rfd = open(path, O_RDONLY)) != -1);
	n = read(rfd, got, sizeof got);
	close(rfd);
	assert_int_equal(n, 7);
	assert_memory_equal(got, "queued\n", 7);
	unlink(path);
	assert_int_equal(rmdir(dir), 0);
}

/* A file whose new name a reader has already taken away (a queue
 * manager that delivered and removed it) between the link and the sync
 * is still synced, through the descriptor, and that is success: failing
 * would have the message sent again.  Any other trouble with the name
 * fails and removes it. */
static void
test_sync_new_link_taken_away(void **state)
{
	char dir[] = "/tmp/postern-fsio-XXXXXX", path[64], other[64];
	int fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	if ((fd = fsio_open_unnamed(dir, 0600)) == -1) {
		printf("SKIP sync of a new link: %s: %s\n", dir,
		    strerror(errno));
		rmdir(dir);
		skip();
	}
	assert_int_equal(write_full(fd, "queued\n", 7), 0);
	snprintf(path, sizeof path, "%s/QID", dir);
	assert_int_equal(fsio_link_unnamed(fd, path), 0);
	assert_int_equal(unlink(path), 0);		/* the reader */
	assert_int_equal(fsio_sync_new_link(fd, path), 0);
	assert_int_equal(fcntl(fd, F_GETFD), -1);	/* closed */
	assert_int_equal(errno, EBADF);
	assert_int_equal(count_entries(dir), 0);

	/* The name replaced by a symbolic link: not the file (the reopen
	 * does not follow it), so a failure, and the name is removed. */
	assert_true((fd = fsio_open_unnamed(dir, 0600)) != -1);
	snprintf(other, sizeof other, "%s/QID2", dir);
	assert_int_equal(fsio_link_unnamed(fd, other), 0);
	assert_int_equal(unlink(other), 0);
	assert_int_equal(symlink("/nonexistent", other), 0);
	assert_int_equal(fsio_sync_new_link(fd, other), -1);
	assert_int_equal(errno, ELOOP);			/* O_NOFOLLOW */
	assert_int_equal(fcntl(fd, F_GETFD), -1);
	assert_int_equal(count_entries(dir), 0);	/* name removed */
	assert_int_equal(rmdir(dir), 0);
}

/* A file opened under other credentials (here: before a fork and a
 * change of user) cannot be linked with AT_EMPTY_PATH without
 * CAP_DAC_READ_SEARCH; fsio_link_unnamed then links it through /proc,
 * and goes on doing so for the next file. */
static void
test_unnamed_link_fallback(void **state)
{
	char dir[] = "/tmp/postern-fsio-XXXXXX", path[64], path2[64];
	struct stat st;
	int fd, fd2, status;
	pid_t pid;

	(void)state;
	if (geteuid() != 0) {
		printf("SKIP unnamed link fallback: needs root to change user\n");
		skip();
	}
	assert_non_null(mkdtemp(dir));
	assert_int_equal(chmod(dir, 0777), 0);
	/* Readable and writable by the other user: the kernel refuses a
	 * hard link to someone else's file otherwise (protected_hardlinks). */
	if ((fd = open(dir, O_TMPFILE | O_RDWR, 0600)) == -1) {
		printf("SKIP unnamed link fallback: %s: %s\n", dir,
		    strerror(errno));
		rmdir(dir);
		skip();
	}
	assert_int_equal(fchmod(fd, 0666), 0);
	assert_true((fd2 = open(dir, O_TMPFILE | O_RDWR, 0600)) != -1);
	assert_int_equal(fchmod(fd2, 0666), 0);
	snprintf(path, sizeof path, "%s/one", dir);
	snprintf(path2, sizeof path2, "%s/two", dir);
	assert_true((pid = fork()) != -1);
	if (pid == 0) {
		/* The child exits with the step that failed. */
		if (setresgid(65534, 65534, 65534) == -1 ||
		    setresuid(65534, 65534, 65534) == -1)
			_exit(10);
		errno = 0;
		if (linkat(fd, "", AT_FDCWD, path, AT_EMPTY_PATH) == 0 ||
		    errno != ENOENT)
			_exit(11);	/* not refused: nothing to fall back from */
		if (fsio_link_unnamed(fd, path) == -1)
			_exit(12);
		if (fsio_link_unnamed(fd2, path2) == -1)
			_exit(13);
		if (fsio_link_unnamed(fd2, path2) != -1 || errno != EEXIST)
			_exit(14);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_nlink, 1);
	assert_int_equal(stat(path2, &st), 0);
	assert_int_equal(st.st_nlink, 1);
	close(fd);
	close(fd2);
	unlink(path);
	unlink(path2);
	assert_int_equal(rmdir(dir), 0);
}

/* The file-system type of the mount that holds path, from
 * /proc/self/mounts (the longest mount point that is a prefix of it). */
static void
mount_type(const char *path, char *type, size_t typesz)
{
	char line[1024], mnt[512], fstype[64];
	size_t best = 0;
	FILE *f = fopen("/proc/self/mounts", "re");

	assert_non_null(f);
	type[0] = '\0';
	while (fgets(line, sizeof line, f) != NULL) {
		size_t len;

		if (sscanf(line, "%*s %511s %63s", mnt, fstype) != 2)
			continue;
		len = strlen(mnt);
		if (strncmp(path, mnt, len) == 0 && (len == 1 ||
		    path[len] == '/' || path[len] == '\0') && len >= best) {
			best = len;
			snprintf(type, typesz, "%s", fstype);
		}
	}
	fclose(f);
}

/* fsio_publish_unnamed gives the file its name, closes the descriptor
 * and leaves exactly one link; it fails with EEXIST rather than replace
 * a file, and closes the descriptor then too.  The file's sync covers
 * its new entry where ext4 has the file system, and never on tmpfs (or
 * anything else); /proc/self/mounts says which, independently. */
static void
test_publish_and_entry_sync(void **state)
{
	static const char *dirs[] = { "/tmp", "/dev/shm", "/var/tmp" };
	char dir[PATH_MAX], path[PATH_MAX + 8], type[64];
	struct stat st;
	int fd, covers;

	(void)state;
	for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
		snprintf(dir, sizeof dir, "%s/postern-fsio-XXXXXX", dirs[i]);
		if (mkdtemp(dir) == NULL) {
			printf("SKIP %s: %s\n", dirs[i], strerror(errno));
			continue;
		}
		mount_type(dir, type, sizeof type);
		if ((fd = fsio_open_unnamed(dir, 0600)) == -1) {
			printf("SKIP unnamed files in %s (%s): %s\n", dir, type,
			    strerror(errno));
			rmdir(dir);
			continue;
		}
		covers = fsio_file_sync_covers_entry(fd);
		/* Asked again: the cached answer, the same. */
		assert_int_equal(fsio_file_sync_covers_entry(fd), covers);
		/* ext2 and ext3 may be driven by ext4 or not: either way. */
		if (strcmp(type, "ext2") != 0 && strcmp(type, "ext3") != 0)
			assert_int_equal(covers, strcmp(type, "ext4") == 0);
		assert_int_equal(write_full(fd, "queued\n", 7), 0);
		snprintf(path, sizeof path, "%s/QID", dir);
		assert_int_equal(fsio_publish_unnamed(fd, path), 0);
		assert_int_equal(fcntl(fd, F_GETFD), -1);	/* closed */
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_nlink, 1);
		assert_int_equal(st.st_size, 7);
		assert_true((fd = fsio_open_unnamed(dir, 0600)) != -1);
		assert_int_equal(fsio_publish_unnamed(fd, path), -1);
		assert_int_equal(errno, EEXIST);
		assert_int_equal(fcntl(fd, F_GETFD), -1);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_size, 7);	/* not replaced */
		printf("# %s is %s: entry synced with the file: %s\n", dir, type,
		    covers ? "yes" : "no");
		unlink(path);
		assert_int_equal(rmdir(dir), 0);
	}
}

/* A file's new version is reported when whole: at once when replaced by
 * rename, after one unchanged look when edited in place, at once at
 * start; a missing file is -1. */
static void
test_filewatch(void **state)
{
	char dir[] = "/tmp/postern-watch-XXXXXX", path[64], tmp[64];
	struct filewatch w;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/map", dir);
	snprintf(tmp, sizeof tmp, "%s/map.new", dir);
	filewatch_reset(&w);
	assert_int_equal(filewatch_changed(&w, path, 0), -1);
	unit_write_file(path, "one\n");
	assert_int_equal(filewatch_changed(&w, path, 1), 1);	/* at start */
	assert_int_equal(filewatch_changed(&w, path, 0), 0);

	/* In place, caught truncated: not before it holds for a look. */
	unit_write_file(path, "");
	w.mtime.tv_sec = 0;		/* as if time had passed */
	assert_int_equal(filewatch_changed(&w, path, 0), 0);
	unit_write_file(path, "two, longer\n");
	assert_int_equal(filewatch_changed(&w, path, 0), 0);
	assert_int_equal(filewatch_changed(&w, path, 0), 1);
	assert_int_equal(filewatch_changed(&w, path, 0), 0);

	/* Replaced by rename: whole, reported at once. */
	unit_write_file(tmp, "three\n");
	assert_int_equal(rename(tmp, path), 0);
	assert_int_equal(filewatch_changed(&w, path, 0), 1);
	assert_int_equal(filewatch_changed(&w, path, 0), 0);

	unlink(path);
	assert_int_equal(rmdir(dir), 0);
}

static const char *
test_key(const void *arr, size_t i)
{
	return ((const char (*)[16])arr)[i];
}

/* Puts and deletions in a random order, checked against a model after
 * each step: an index whose key was deleted is never found, every other
 * one is found where it was put, and the gaps deletion leaves never cut
 * a probe chain (many keys share home slots at this load). */
static void
test_keyindex(void **state)
{
	enum { N = 3000 };
	static char keys[N][16];
	static int present[N];
	struct keyindex ix = { 0 };
	unsigned seed = 12345;

	(void)state;
	for (size_t i = 0; i < N; i++)
		snprintf(keys[i], sizeof keys[i], "k%zu.example", i);
	assert_int_equal(keyindex_find(&ix, "k1.example", test_key, keys),
	    SIZE_MAX);
	keyindex_del(&ix, "k1.example", test_key, keys);	/* empty: no-op */
	for (int step = 0; step < 40000; step++) {
		size_t i;

		seed = seed * 1103515245u + 12345u;
		i = (seed >> 8) % N;
		if (present[i] && (seed & 0x10000)) {
			keyindex_del(&ix, keys[i], test_key, keys);
			present[i] = 0;
		} else if (!present[i]) {
			keyindex_put(&ix, i, test_key, keys);
			present[i] = 1;
		}
		if (step % 997 == 0 || step > 39900) {
			size_t n = 0;

			for (size_t k = 0; k < N; k++) {
				assert_int_equal(keyindex_find(&ix, keys[k],
				    test_key, keys), present[k] ? k : SIZE_MAX);
				n += present[k];
			}
			assert_int_equal(ix.n, n);
		}
	}
	for (size_t k = 0; k < N; k++)
		if (present[k])
			keyindex_del(&ix, keys[k], test_key, keys);
	assert_int_equal(ix.n, 0);
	for (size_t k = 0; k < ix.cap; k++)
		assert_int_equal(ix.slot[k], 0);
	keyindex_free(&ix);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf),
		cmocka_unit_test(test_buf_grow),
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_parse_duration),
		cmocka_unit_test(test_str_escape),
		cmocka_unit_test(test_netprefix_parse),
		cmocka_unit_test(test_netprefix_match),
		cmocka_unit_test(test_netprefix_list_and_loopback),
		cmocka_unit_test(test_sockaddr_format),
		cmocka_unit_test(test_unnamed_file),
		cmocka_unit_test(test_sync_new_link_taken_away),
		cmocka_unit_test(test_unnamed_link_fallback),
		cmocka_unit_test(test_publish_and_entry_sync),
		cmocka_unit_test(test_filewatch),
		cmocka_unit_test(test_keyindex),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
