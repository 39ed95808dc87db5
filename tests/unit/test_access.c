/*
 * test_access.c - the access map (src/policy/access.h, docs/access.md):
 * parsing and its "NAME:LINE: " errors, longest prefix over IPv4 and
 * IPv6, domain suffixes, case, precedence, duplicates and the config
 * check's warnings, the per-role decisions, and a 100,000-rule table
 * whose lookup time is printed (not asserted).
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
#include <time.h>
#include <unistd.h>

#include "policy/access.h"
#include "policy/access_check.h"
#include "smtp/reply.h"
#include "unit_files.h"

static struct access_map *
parse(const char *text, char **errs, int *nerr)
{
	size_t errlen;
	FILE *f = open_memstream(errs, &errlen);
	struct access_map *m;

	assert_non_null(f);
	m = access_map_parse("t.access", text, f, nerr);
	fclose(f);
	return m;
}

static struct access_map *
parse_ok(const char *text)
{
	char *errs = NULL;
	int nerr = -1;
	struct access_map *m = parse(text, &errs, &nerr);

	if (m == NULL || nerr != 0)
		print_error("unexpected errors:\n%s", errs);
	assert_non_null(m);
	assert_int_equal(nerr, 0);
	free(errs);
	return m;
}

static const struct access_rule *
addr(const struct access_map *m, const char *a)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof ss);
	if (strchr(a, ':')) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

		in6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, a, &in6->sin6_addr), 1);
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;

		in->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, a, &in->sin_addr), 1);
	}
	return access_lookup_addr(m, (struct sockaddr *)&ss);
}

/* The line of the matching rule, 0 for none. */
static unsigned
line_of(const struct access_rule *r)
{
	return r ? r->line : 0;
}

static const char addr_map[] =
	"# client addresses\n"
	"0.0.0.0/0          REJECT   everyone else\n"		/* 2 */
	"192.0.2.0/24       TEMPFAIL\n"				/* 3 */
	"192.0.2.128/25     OK\n"				/* 4 */
	"192.0.2.200        RELAY\n"				/* 5 */
	"10.0.0.0/8         HOLD\n"				/* 6 */
	"10.1.0.0/16        DISCARD  spam source\n"		/* 7 */
	"2001:db8::/32      REJECT\n"				/* 8 */
	"2001:db8:1::/48    OK\n"				/* 9 */
	"2001:db8:1::5      RELAY\n"				/* 10 */
	"[2001:db8:2::]/47  TEMPFAIL\n"				/* 11 */
	"::ffff:198.51.100.0/120 REJECT\n"			/* 12 */
	"connect:203.0.113.9 ok\n";				/* 13 */

static void
test_longest_prefix(void **state)
{
	static const struct { const char *a; unsigned line; } rows[] = {
		{ "198.18.0.1", 2 },
		{ "192.0.2.1", 3 },
		{ "192.0.2.127", 3 },
		{ "192.0.2.128", 4 },
		{ "192.0.2.199", 4 },
		{ "192.0.2.200", 5 },
		{ "192.0.2.201", 4 },
		{ "10.200.0.1", 6 },
		{ "10.1.255.255", 7 },
		{ "11.0.0.0", 2 },
		{ "2001:db8::1", 8 },
		{ "2001:db8:1::1", 9 },
		{ "2001:db8:1::5", 10 },
		{ "2001:db8:2::1", 11 },
		{ "2001:db8:3:ffff::1", 11 },
		{ "2001:db8:4::1", 8 },
		{ "2001:db9::1", 0 },		/* no ::/0 rule */
		{ "::1", 0 },
		{ "198.51.100.7", 12 },		/* mapped key -> IPv4 rule */
		{ "::ffff:198.51.100.7", 12 },	/* mapped peer -> IPv4 lookup */
		{ "::ffff:192.0.2.200", 5 },
		{ "203.0.113.9", 13 },
	};
	struct access_map *m = parse_ok(addr_map);

	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		unsigned got = line_of(addr(m, rows[i].a));

		if (got != rows[i].line) {
			print_error("%s: got line %u, want %u\n", rows[i].a, got,
			    rows[i].line);
			fail();
		}
	}
	{
		struct sockaddr_storage un = { .ss_family = AF_UNIX };

		assert_null(access_lookup_addr(m, (struct sockaddr *)&un));
	}
	assert_string_equal(addr(m, "192.0.2.1")->key, "192.0.2.0/24");
	assert_string_equal(addr(m, "192.0.2.200")->key, "192.0.2.200");
	assert_string_equal(addr(m, "198.51.100.1")->key, "198.51.100.0/24");
	assert_string_equal(addr(m, "10.1.0.1")->text, "spam source");
	assert_null(addr(m, "192.0.2.1")->text);
	assert_int_equal(addr(m, "203.0.113.9")->action, ACCESS_OK);
	access_map_unref(m);
	assert_null(access_lookup_addr(NULL, NULL));
}

static const char name_map[] =
	"from:spammer@example.com   REJECT\n"			/* 1 */
	"from:example.com           OK\n"			/* 2 */
	"from:.example.com          TEMPFAIL slow down\n"	/* 3 */
	"from:.sub.example.com      DISCARD\n"			/* 4 */
	"From:Boss@Example.COM      HOLD\n"			/* 5 */
	"to:example.org             RELAY\n"			/* 6 */
	"to:.example.org            REJECT\n"			/* 7 */
	"to:<postmaster@example.org> OK\n"			/* 8 */
	"to:user@[192.0.2.1]        REJECT\n"			/* 9 */
	"helo:localhost             REJECT\n"			/* 10 */
	"helo:.bot.example          TEMPFAIL\n"			/* 11 */
	"to:postmaster              DISCARD\n";			/* 12 */

static void
test_names(void **state)
{
	static const struct {
		enum access_kind kind;
		const char *a;
		unsigned line;
	} rows[] = {
		{ ACCESS_K_FROM, "spammer@example.com", 1 },
		{ ACCESS_K_FROM, "SPAMMER@EXAMPLE.COM", 1 },
		{ ACCESS_K_FROM, "other@example.com", 2 },
		{ ACCESS_K_FROM, "x@a.example.com", 3 },
		{ ACCESS_K_FROM, "x@a.b.example.com", 3 },
		{ ACCESS_K_FROM, "x@sub.example.com", 3 },	/* .sub: below only */
		{ ACCESS_K_FROM, "x@a.sub.example.com", 4 },
		{ ACCESS_K_FROM, "x@b.a.sub.example.com", 4 },
		{ ACCESS_K_FROM, "boss@example.com", 5 },
		{ ACCESS_K_FROM, "x@example.comx", 0 },
		{ ACCESS_K_FROM, "x@xexample.com", 0 },
		{ ACCESS_K_FROM, "", 0 },			/* <> */
		{ ACCESS_K_FROM, "spammer@example.com.evil", 0 },
		{ ACCESS_K_TO, "spammer@example.com", 0 },	/* from: only */
		{ ACCESS_K_TO, "a@example.org", 6 },
		{ ACCESS_K_TO, "a@mx.example.org", 7 },
		{ ACCESS_K_TO, "Postmaster@Example.ORG", 8 },
		{ ACCESS_K_TO, "user@[192.0.2.1]", 9 },
		{ ACCESS_K_TO, "other@[192.0.2.1]", 0 },
		{ ACCESS_K_TO, "postmaster", 12 },
		{ ACCESS_K_TO, "x@example.net", 0 },
	};
	struct access_map *m = parse_ok(name_map);

	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		unsigned got = line_of(access_lookup_mail(m, rows[i].kind,
		    rows[i].a));

		if (got != rows[i].line) {
			print_error("%s%s: got line %u, want %u\n",
			    rows[i].kind == ACCESS_K_FROM ? "from:" : "to:",
			    rows[i].a, got, rows[i].line);
			fail();
		}
	}
	assert_int_equal(line_of(access_lookup_helo(m, "localhost")), 10);
	assert_int_equal(line_of(access_lookup_helo(m, "LocalHost.")), 10);
	assert_int_equal(line_of(access_lookup_helo(m, "pc1.bot.example")), 11);
	assert_int_equal(line_of(access_lookup_helo(m, "bot.example")), 0);
	assert_int_equal(line_of(access_lookup_helo(m, "example.com")), 0);
	assert_int_equal(line_of(access_lookup_helo(m, "")), 0);
	assert_string_equal(access_lookup_mail(m, ACCESS_K_FROM,
	    "boss@example.com")->key, "from:boss@example.com");
	assert_string_equal(access_lookup_mail(m, ACCESS_K_FROM,
	    "x@a.example.com")->text, "slow down");
	access_map_unref(m);
}

static void
test_errors(void **state)
{
	static const struct { const char *text, *want; } rows[] = {
		{ "192.0.2.0/24\n", "t.access:1: '192.0.2.0/24' has no action" },
		{ "\n192.0.2.1 ALLOW\n", "t.access:2: unknown action 'ALLOW'" },
		{ "192.0.2.1/24 REJECT\n", "t.access:1: '192.0.2.1/24' has bits "
		    "set after the prefix length; did you mean 192.0.2.0/24?" },
		{ "192.0.2.0/33 REJECT\n", "t.access:1: '192.0.2.0/33' is neither" },
		{ "host.example REJECT\n", "t.access:1: 'host.example' is neither" },
		{ "connect:host.example REJECT\n", "t.access:1: "
		    "'connect:host.example' is not an address or prefix; host "
		    "names would need reverse DNS" },
		{ "user@example.com REJECT\n", "t.access:1: 'user@example.com' "
		    "is not an address or prefix; sender and recipient keys" },
		{ "192.0.2.1 OK fine\n", "t.access:1: OK takes no text" },
		{ "192.0.2.1 RELAY x\n", "t.access:1: RELAY takes no text" },
		{ "from:example.com RELAY\n", "t.access:1: RELAY on a from: key" },
		{ "helo:x.example RELAY\n", "t.access:1: RELAY on a helo: key" },
		{ "from: REJECT\n", "t.access:1: 'from:' is empty" },
		{ "from:@example.com REJECT\n", "t.access:1: 'from:@example.com' "
		    "has no local part" },
		{ "to:a..b REJECT\n", "t.access:1: 'to:a..b' is not a domain" },
		{ "to:x@a..b REJECT\n", "t.access:1: 'to:x@a..b' is not an address" },
		{ "helo:bad/name REJECT\n", "t.access:1: 'helo:bad/name' is not a "
		    "host name" },
		{ "192.0.2.1 REJECT bad\x01text\n", "t.access:1: text must be "
		    "printable ASCII" },
	};

	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		char *errs = NULL;
		int nerr = 0;
		struct access_map *m = parse(rows[i].text, &errs, &nerr);

		if (m != NULL || nerr != 1 ||
		    strncmp(errs, rows[i].want, strlen(rows[i].want)) != 0) {
			print_error("row %zu: got %d error(s) '%s', want '%s'\n",
			    i, nerr, errs, rows[i].want);
			fail();
		}
		free(errs);
	}
}

/* Comments, blanks, CRLF, case of actions, '#' inside a text. */
static void
test_syntax(void **state)
{
	struct access_map *m = parse_ok(
	    "# comment\n"
	    "\n"
	    "   \t\n"
	    "192.0.2.1 reject see http://example.com/#why  # comment\r\n"
	    "192.0.2.2\tTempFail\t  \n"
	    "192.0.2.3 discard\n");
	const struct access_rule *r = addr(m, "192.0.2.1");

	assert_int_equal(access_map_size(m), 3);
	assert_int_equal(r->action, ACCESS_REJECT);
	assert_int_equal(r->line, 4);
	assert_string_equal(r->text, "see http://example.com/#why");
	assert_int_equal(addr(m, "192.0.2.2")->action, ACCESS_TEMPFAIL);
	assert_null(addr(m, "192.0.2.2")->text);
	assert_int_equal(addr(m, "192.0.2.3")->action, ACCESS_DISCARD);
	access_map_unref(m);

	/* Several errors: all reported, no table. */
	{
		char *errs = NULL;
		int nerr = 0;

		assert_null(parse("a\n192.0.2.1 OK\nb X\n", &errs, &nerr));
		assert_int_equal(nerr, 2);
		assert_non_null(strstr(errs, "t.access:1: "));
		assert_non_null(strstr(errs, "t.access:3: "));
		free(errs);
	}
}

/* Duplicates: the first wins; config check names them.  Other
 * warnings: open relay, rules that never match or change nothing. */
static void
test_lint(void **state)
{
	struct access_map *m = parse_ok(
	    "192.0.2.0/24 REJECT\n"			/* 1 */
	    "192.0.2.0/24 OK\n"				/* 2: duplicate */
	    "192.0.2.7 REJECT\n"			/* 3: changes nothing */
	    "0.0.0.0/0 RELAY\n"				/* 4: open relay */
	    "::/0 RELAY\n"				/* 5: open relay */
	    "198.51.100.0/24 REJECT\n"			/* 6: never matches */
	    "198.51.100.0/25 OK\n"			/* 7 */
	    "198.51.100.128/25 TEMPFAIL\n"		/* 8 */
	    "from:example.com REJECT\n"			/* 9 */
	    "from:a@example.com REJECT\n"		/* 10: changes nothing */
	    "from:A@Example.com OK\n"			/* 11: duplicate */
	    "to:.com RELAY\n");				/* 12: a whole TLD */
	char *out = NULL;
	size_t len;
	FILE *f = open_memstream(&out, &len);
	int n;

	assert_int_equal(addr(m, "192.0.2.1")->line, 1);
	assert_int_equal(access_lookup_mail(m, ACCESS_K_FROM,
	    "a@example.com")->line, 10);
	n = access_map_lint(m, f);
	fclose(f);
	if (n != 8) {
		print_error("got %d warnings, want 8:\n%s", n, out);
		fail();
	}
	assert_non_null(strstr(out, "t.access:2: warning: 192.0.2.0/24 OK: "
	    "duplicate of line 1"));
	assert_non_null(strstr(out, "t.access:3: warning: 192.0.2.7 REJECT: "
	    "changes nothing: line 1"));
	assert_non_null(strstr(out, "t.access:4: warning: 0.0.0.0/0 RELAY: "
	    "an open relay for the whole IPv4 internet"));
	assert_non_null(strstr(out, "t.access:5: warning: ::/0 RELAY: an open "
	    "relay for the whole IPv6 internet"));
	assert_non_null(strstr(out, "t.access:6: warning: 198.51.100.0/24 "
	    "REJECT: never matches"));
	assert_non_null(strstr(out, "t.access:10: warning: from:a@example.com "
	    "REJECT: changes nothing: line 9"));
	assert_non_null(strstr(out, "t.access:11: warning: from:a@example.com "
	    "OK: duplicate of line 10"));
	assert_non_null(strstr(out, "t.access:12: warning: to:.com RELAY: "
	    "relays for everyone to a whole top-level domain"));
	free(out);
	access_map_unref(m);
}

/* What a rule does at each stage on each role. */
static void
test_decide(void **state)
{
	struct access_map *m = parse_ok(
	    "192.0.2.1 RELAY\n"
	    "192.0.2.2 REJECT\n"
	    "192.0.2.3 TEMPFAIL go away\n"
	    "from:x@example.com REJECT no thanks\n");
	struct access_verdict v;
	char line[512];

	access_decide(addr(m, "192.0.2.1"), ACCESS_AT_CONNECT, ROLE_SMTP, &v);
	assert_int_equal(v.action, ACCESS_RELAY);
	access_decide(addr(m, "192.0.2.1"), ACCESS_AT_CONNECT, ROLE_SUBMISSION,
	    &v);
	assert_int_equal(v.action, ACCESS_OK);
	access_decide(addr(m, "192.0.2.1"), ACCESS_AT_CONNECT, ROLE_SUBMISSIONS,
	    &v);
	assert_int_equal(v.action, ACCESS_OK);

	access_decide(addr(m, "192.0.2.2"), ACCESS_AT_CONNECT, ROLE_SUBMISSION,
	    &v);
	assert_int_equal(v.action, ACCESS_REJECT);
	reply_format(line, sizeof line, v.reply, v.text);
	assert_string_equal(line, "554 5.7.1 Client host rejected: Access "
	    "denied\r\n");
	access_decide(addr(m, "192.0.2.3"), ACCESS_AT_CONNECT, ROLE_SMTP, &v);
	reply_format(line, sizeof line, v.reply, v.text);
	assert_string_equal(line, "421 4.7.1 Client host refused: go away, "
	    "closing connection\r\n");
	access_decide(addr(m, "192.0.2.3"), ACCESS_AT_RCPT, ROLE_SMTP, &v);
	reply_format(line, sizeof line, v.reply, v.text);
	assert_string_equal(line, "450 4.7.1 Recipient address rejected: go "
	    "away\r\n");
	access_decide(access_lookup_mail(m, ACCESS_K_FROM, "x@example.com"),
	    ACCESS_AT_MAIL, ROLE_SMTP, &v);
	reply_format(line, sizeof line, v.reply, v.text);
	assert_string_equal(line, "554 5.7.1 Sender address rejected: no "
	    "thanks\r\n");
	access_decide(NULL, ACCESS_AT_MAIL, ROLE_SMTP, &v);
	assert_int_equal(v.action, ACCESS_NONE);
	assert_null(v.rule);
	access_map_unref(m);
}

static void
test_mail_key(void **state)
{
	struct mailaddr a;
	char key[600];

	memset(&a, 0, sizeof a);
	strcpy(a.local, "\"Hoge\"");
	strcpy(a.domain, "Example.COM");
	a.quoted = 1;
	access_mail_key(&a, key, sizeof key);
	assert_string_equal(key, "hoge@example.com");
	memset(&a, 0, sizeof a);
	access_mail_key(&a, key, sizeof key);
	assert_string_equal(key, "");
}

static double
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* 100,000 rules: 50,000 IPv4 (/32 and /24), 25,000 IPv6 /64, 25,000
 * sender domains.  Printed, not asserted: machines differ. */
static void
test_large(void **state)
{
	size_t cap = 8u << 20, o = 0;
	char *text = malloc(cap);
	struct access_map *m;
	double t0, t1, t2;
	unsigned hits = 0;
	const int lookups = 200000;

	assert_non_null(text);
	for (unsigned i = 0; i < 25000; i++)
		o += (size_t)snprintf(text + o, cap - o,
		    "10.%u.%u.0/24 REJECT\n", i >> 8, i & 255);
	for (unsigned i = 0; i < 25000; i++)
		o += (size_t)snprintf(text + o, cap - o,
		    "172.16.%u.%u REJECT\n", i >> 8, i & 255);
	for (unsigned i = 0; i < 25000; i++)
		o += (size_t)snprintf(text + o, cap - o,
		    "2001:db8:%x:%x::/64 TEMPFAIL\n", i >> 8, i & 255);
	for (unsigned i = 0; i < 25000; i++)
		o += (size_t)snprintf(text + o, cap - o,
		    "from:.d%u.example REJECT\n", i);
	t0 = now_us();
	m = parse_ok(text);
	t1 = now_us();
	assert_int_equal(access_map_size(m), 100000);
	for (int i = 0; i < lookups; i++) {
		struct sockaddr_in in = { .sin_family = AF_INET };
		char a[64];

		in.sin_addr.s_addr = htonl(0xac100000u + (uint32_t)(i * 7919));
		hits += addr(m, "198.51.100.1") != NULL;
		hits += access_lookup_addr(m, (struct sockaddr *)&in) != NULL;
		snprintf(a, sizeof a, "u@h.d%d.example", i % 30000);
		hits += access_lookup_mail(m, ACCESS_K_FROM, a) != NULL;
	}
	t2 = now_us();
	print_message("access: 100000 rules parsed and indexed in %.1f ms; "
	    "%.2f us per lookup (%d lookups, %u hits)\n", (t1 - t0) / 1e3,
	    (t2 - t1) / (3.0 * lookups), 3 * lookups, hits);
	access_map_unref(m);
	free(text);
}

/* The worker's table: a changed file is loaded once it has stayed the
 * same from one look to the next (a second apart); errors keep the old
 * table; a file caught half-written is never loaded. */
static void
test_table_reload(void **state)
{
	char dir[] = "/tmp/test_access.XXXXXX", path[256];
	struct access_table t;
	int nerr;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/access", dir);
	unit_write_file(path, "192.0.2.1 REJECT\n");
	assert_int_equal(access_table_load(&t, path, stderr, &nerr), 0);
	assert_non_null(t.map);
	assert_int_equal(addr(t.map, "192.0.2.1")->action, ACCESS_REJECT);

	/* A broken file: the previous table stays. */
	unit_write_file(path, "192.0.2.1 BOGUS\n");
	t.watch.mtime.tv_sec = 0;	/* as if time had passed */
	access_table_refresh(&t, 1);	/* seen */
	access_table_refresh(&t, 2);	/* the same: tried, refused */
	assert_non_null(t.map);
	assert_int_equal(addr(t.map, "192.0.2.1")->action, ACCESS_REJECT);

	/* A good one replaces it; a reference held elsewhere survives. */
	{
		struct access_map *old = access_map_ref(t.map);

		unit_write_file(path, "192.0.2.1 OK\n");
		t.watch.mtime.tv_sec = 0;
		access_table_refresh(&t, 2);	/* same second: not checked */
		assert_ptr_equal(t.map, old);
		access_table_refresh(&t, 3);	/* seen: not loaded yet */
		assert_ptr_equal(t.map, old);
		access_table_refresh(&t, 4);
		assert_int_equal(addr(t.map, "192.0.2.1")->action, ACCESS_OK);
		assert_int_equal(addr(old, "192.0.2.1")->action, ACCESS_REJECT);
		access_map_unref(old);
	}

	/* Caught between an editor's truncation and its write: the empty
	 * file is seen, but it has changed by the next look, so the table
	 * in use stays until the final file has held for one. */
	{
		struct access_map *cur = t.map;

		unit_write_file(path, "");
		t.watch.mtime.tv_sec = 0;
		access_table_refresh(&t, 5);	/* the empty file, seen */
		unit_write_file(path, "192.0.2.1 REJECT\n192.0.2.2 REJECT\n");
		access_table_refresh(&t, 6);	/* changed again: seen anew */
		assert_ptr_equal(t.map, cur);
		access_table_refresh(&t, 7);
		assert_true(t.map != cur);
		assert_non_null(addr(t.map, "192.0.2.2"));
		assert_int_equal(addr(t.map, "192.0.2.2")->action,
		    ACCESS_REJECT);
	}
	access_table_free(&t);
	unlink(path);
	rmdir(dir);

	assert_int_equal(access_table_load(&t, "", stderr, &nerr), 0);
	assert_null(t.map);
	access_table_free(&t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_longest_prefix),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_syntax),
		cmocka_unit_test(test_lint),
		cmocka_unit_test(test_decide),
		cmocka_unit_test(test_mail_key),
		cmocka_unit_test(test_large),
		cmocka_unit_test(test_table_reload),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
