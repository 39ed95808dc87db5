/*
 * test_userdb.c - the users file (src/auth/userdb.h): good lines, the
 * "NAME:LINE: what" errors for bad ones, lookups, and writing an entry
 * back with userdb_format.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/userdb.h"

static int
parse(const char *text, struct userdb *db, char **errs)
{
	size_t errlen;
	FILE *f = open_memstream(errs, &errlen);
	int n;

	assert_non_null(f);
	n = userdb_parse("users", text, db, f);
	fclose(f);
	return n;
}

/* One good line and every field it must yield. */
struct good_case {
	const char	*line;
	const char	*name;
	const char	*hash;
	long long	 expires;
	int		 locked;
	const char	*addresses;	/* joined with "," */
	const char	*secrets;
};

static const struct good_case good_cases[] = {
	{ "alice:$y$j9T$salt$hash:2030-12-31:locked:alice@example.org,"
	    "a.smith@example.org:totp=ABC",
	    "alice", "$y$j9T$salt$hash", 1924992000, 1,
	    "alice@example.org,a.smith@example.org", "totp=ABC" },
	{ "bob:!::::", "bob", "!", 0, 0, "", "" },
	{ "carol.x_y-z:$6$r$h:::carol@example.net:", "carol.x_y-z", "$6$r$h", 0,
	    0, "carol@example.net", "" },
	/* The day named is still valid: expiry is the next midnight UTC. */
	{ "dave:h:2024-02-29:::", "dave", "h", 1709251200, 0, "", "" },
	{ "erin:h:1970-01-01:::", "erin", "h", 86400, 0, "", "" },
	{ "frank:h:::a@x,,b@y,:", "frank", "h", 0, 0, "a@x,b@y", "" },
	{ "gina:h::::k1 k2,k3", "gina", "h", 0, 0, "", "k1 k2,k3" },
	{ "hal:h::::\r", "hal", "h", 0, 0, "", "" },
	{ "Ivy:h::::", "Ivy", "h", 0, 0, "", "" },
};

static void
test_good_lines(void **state)
{
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof good_cases / sizeof good_cases[0]; i++) {
		const struct good_case *tc = &good_cases[i];
		const struct user_entry *u;
		struct userdb db;
		char *errs = NULL, addrs[256] = "";
		size_t o = 0;
		int n;

		n = parse(tc->line, &db, &errs);
		if (n != 0 || db.nusers != 1) {
			print_error("'%s': got %d errors '%s', %zu users; want 0, "
			    "1\n", tc->line, n, errs, db.nusers);
			failed++;
			goto next;
		}
		u = &db.users[0];
		for (size_t j = 0; j < u->naddresses; j++)
			o += (size_t)snprintf(addrs + o, sizeof addrs - o, "%s%s",
			    j ? "," : "", u->addresses[j]);
		if (strcmp(u->name, tc->name) || strcmp(u->hash, tc->hash) ||
		    (long long)u->expires != tc->expires ||
		    u->locked != tc->locked || strcmp(addrs, tc->addresses) ||
		    strcmp(u->secrets, tc->secrets) || u->line != 1) {
			print_error("'%s': got '%s' '%s' %lld %d '%s' '%s' line %d, "
			    "want '%s' '%s' %lld %d '%s' '%s' line 1\n", tc->line,
			    u->name, u->hash, (long long)u->expires, u->locked,
			    addrs, u->secrets, u->line, tc->name, tc->hash,
			    tc->expires, tc->locked, tc->addresses, tc->secrets);
			failed++;
		}
next:
		free(errs);
		userdb_free(&db);
	}
	if (failed)
		fail_msg("%d good line(s) failed", failed);
}

struct bad_case {
	const char	*text;
	int		 nerr;
	size_t		 nusers;	/* what still loaded */
	const char	*err;		/* first error line */
};

#define FIELDS	"expected 6 fields name:hash:expires:flags:addresses:secrets"
#define NAME	"user name must be 1-64 letters, digits, '.', '_' or '-', not starting with '.'"
#define DATE	"expiry date must be YYYY-MM-DD or empty"
#define FLAG	"flags must be empty or 'locked'"

static const struct bad_case bad_cases[] = {
	{ "a:h:::\n", 1, 0, "users:1: " FIELDS },
	{ "a:h:::x:y:z\n", 1, 0, "users:1: " FIELDS },
	{ "a\n", 1, 0, "users:1: " FIELDS },
	{ "# c\n\nok:h::::\nbad:h:::\n", 1, 1, "users:4: " FIELDS },
	{ ":h::::\n", 1, 0, "users:1: " NAME },
	{ "a b:h::::\n", 1, 0, "users:1: " NAME },
	{ "a@b:h::::\n", 1, 0, "users:1: " NAME },
	{ ".:h::::\n", 1, 0, "users:1: " NAME },	/* names are directories */
	{ "..:h::::\n", 1, 0, "users:1: " NAME },
	{ ".hidden:h::::\n", 1, 0, "users:1: " NAME },
	{ "r\xc3\xa9mi:h::::\n", 1, 0, "users:1: " NAME },
	{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    ":h::::\n", 1, 0, "users:1: " NAME },
	{ "a:h:2024-13-01:::\n", 1, 0, "users:1: " DATE },
	{ "a:h:2024-00-10:::\n", 1, 0, "users:1: " DATE },
	{ "a:h:2024-02-30:::\n", 1, 0, "users:1: " DATE },
	{ "a:h:2023-02-29:::\n", 1, 0, "users:1: " DATE },
	{ "a:h:2024-04-31:::\n", 1, 0, "users:1: " DATE },
	{ "a:h:2024-01-32:::\n", 1, 0, "users:1: " DATE },
	{ "a:h:2024-1-1:::\n", 1, 0, "users:1: " DATE },
	{ "a:h: 2024-01-01:::\n", 1, 0, "users:1: " DATE },
	{ "a:h:2024-01-01x:::\n", 1, 0, "users:1: " DATE },
	{ "a:h:tomorrow:::\n", 1, 0, "users:1: " DATE },
	{ "a:h:2024/01/01:::\n", 1, 0, "users:1: " DATE },
	{ "a:h::disabled::\n", 1, 0, "users:1: " FLAG },
	{ "a:h::LOCKED::\n", 1, 0, "users:1: " FLAG },
	{ "a:h::locked,x::\n", 1, 0, "users:1: " FLAG },
	{ "a:h::::\nb:h::::\na:h2::::\n", 1, 2, "users:3: duplicate user name" },
	{ "alice:h::::\nALICE:h::::\n", 1, 1, "users:2: duplicate user name" },
	{ "x\ny:h::::\nz\n", 2, 1, "users:1: " FIELDS },
};

static void
test_bad_lines(void **state)
{
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
		const struct bad_case *tc = &bad_cases[i];
		struct userdb db;
		char *errs = NULL, first[512], *nl;
		int n, lines = 0;

		n = parse(tc->text, &db, &errs);
		snprintf(first, sizeof first, "%s", errs);
		if ((nl = strchr(first, '\n')) != NULL)
			*nl = '\0';
		for (const char *p = errs; (p = strchr(p, '\n')) != NULL; p++)
			lines++;
		if (n != tc->nerr || lines != tc->nerr ||
		    db.nusers != tc->nusers || strcmp(first, tc->err) != 0) {
			print_error("case %zu: got %d error(s) '%s', %zu users; "
			    "want %d '%s', %zu users\n", i, n, first, db.nusers,
			    tc->nerr, tc->err, tc->nusers);
			failed++;
		}
		free(errs);
		userdb_free(&db);
	}
	if (failed)
		fail_msg("%d bad line case(s) failed", failed);
}

static void
test_lookup(void **state)
{
	static const char text[] =
	    "# users\n"
	    "zed:h:::zed@example.org:\n"
	    "alice:h:::alice@example.org,Postmaster@Example.ORG:\n"
	    "\n"
	    "Bob:h::locked:bob@example.net:\n"
	    "carol:h::::\n";
	static const struct { const char *by; const char *key; const char *want; }
	    cases[] = {
		{ "name", "alice", "alice" }, { "name", "ALICE", "alice" },
		{ "name", "bob", "Bob" }, { "name", "Bob", "Bob" },
		{ "name", "zed", "zed" }, { "name", "carol", "carol" },
		{ "name", "dave", NULL }, { "name", "", NULL },
		{ "name", "alic", NULL }, { "name", "alice@example.org", NULL },
		{ "addr", "alice@example.org", "alice" },
		{ "addr", "ALICE@EXAMPLE.ORG", "alice" },
		{ "addr", "postmaster@example.org", "alice" },
		{ "addr", "bob@example.net", "Bob" },
		{ "addr", "zed@example.org", "zed" },
		{ "addr", "alice", NULL }, { "addr", "alice@example.org.", NULL },
		{ "addr", "carol@example.org", NULL }, { "addr", "", NULL },
	};
	struct userdb db;
	char *errs = NULL;
	int failed = 0;

	(void)state;
	assert_int_equal(parse(text, &db, &errs), 0);
	free(errs);
	assert_int_equal(db.nusers, 4);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct user_entry *u = strcmp(cases[i].by, "name") == 0 ?
		    userdb_lookup(&db, cases[i].key) :
		    userdb_lookup_address(&db, cases[i].key);
		const char *got = u ? u->name : "(none)";
		const char *want = cases[i].want ? cases[i].want : "(none)";

		if (strcmp(got, want) != 0) {
			print_error("lookup by %s '%s': got '%s', want '%s'\n",
			    cases[i].by, cases[i].key, got, want);
			failed++;
		}
	}
	assert_int_equal(userdb_lookup(&db, "Bob")->locked, 1);
	assert_int_equal(userdb_lookup(&db, "Bob")->line, 5);
	userdb_free(&db);
	if (failed)
		fail_msg("%d lookup case(s) failed", failed);
}

/* A table of an ISP's size, in reverse name order, with an address two
 * users list and a name given twice: every user and address is found,
 * the shared address goes to the first user by name (as a scan in name
 * order found it), the later line of the name is dropped, and the
 * errors come in line order.  Then the same lookups without the index
 * (a table built by hand) agree. */
static void
test_many_users(void **state)
{
	enum { N = 20000 };
	size_t cap = (size_t)N * 80 + 256, o = 0;
	char *text = malloc(cap), *errs = NULL, want[64], addr[64];
	struct userdb db;
	const struct user_entry *u;
	int n;

	(void)state;
	assert_non_null(text);
	o += (size_t)snprintf(text + o, cap - o, "bad line\n");
	for (int i = N - 1; i >= 0; i--)
		o += (size_t)snprintf(text + o, cap - o,
		    "u%05d:h:::u%05d@example.org,Alias%d@Example.NET%s:\n", i,
		    i, i, i == 7 || i == 3 ? ",shared@example.org" : "");
	o += (size_t)snprintf(text + o, cap - o, "U00042:h2::::\nx:y\n");
	n = parse(text, &db, &errs);
	assert_int_equal(n, 3);
	assert_string_equal(errs, "users:1: expected 6 fields "
	    "name:hash:expires:flags:addresses:secrets\n"
	    "users:20002: duplicate user name\n"
	    "users:20003: expected 6 fields "
	    "name:hash:expires:flags:addresses:secrets\n");
	free(errs);
	assert_int_equal(db.nusers, N);
	assert_string_equal(userdb_lookup(&db, "u00042")->hash, "h");
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < N; i += 7) {
			snprintf(want, sizeof want, "u%05d", i);
			snprintf(addr, sizeof addr, "alias%d@example.net", i);
			u = userdb_lookup_address(&db, addr);
			assert_non_null(u);
			assert_string_equal(u->name, want);
			snprintf(addr, sizeof addr, "U%05d@EXAMPLE.ORG", i);
			u = userdb_lookup_address(&db, addr);
			assert_non_null(u);
			assert_string_equal(u->name, want);
		}
		u = userdb_lookup_address(&db, "Shared@example.org");
		assert_non_null(u);
		assert_string_equal(u->name, "u00003");
		assert_null(userdb_lookup_address(&db, "alias20000@example.net"));
		assert_null(userdb_lookup_address(&db, "alias1@example.ne"));
		assert_null(userdb_lookup_address(&db, "a"));
		assert_null(userdb_lookup_address(&db, ""));
		/* The second pass: the scan of a table nobody indexed. */
		free(db.by_address);
		db.by_address = NULL;
		db.naddresses = 0;
	}
	userdb_free(&db);
	free(text);
}

/* A canonical line comes back unchanged from parse + format. */
static void
test_format_round_trip(void **state)
{
	static const char *lines[] = {
		"alice:$y$j9T$salt$hash:2030-12-31:locked:alice@example.org,"
		    "a.smith@example.org:totp=ABC",
		"bob:!::::",
		"carol:$6$r$h:2024-02-29::carol@example.net:",
		"dave:h:1970-01-01:locked::",
		"erin:h:2099-12-31:::s",
	};
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
		struct userdb db;
		char *errs = NULL, got[512];
		int rc;

		if (parse(lines[i], &db, &errs) != 0 || db.nusers != 1) {
			print_error("'%s': got errors '%s', want none\n", lines[i],
			    errs);
			failed++;
		} else if ((rc = userdb_format(&db.users[0], got, sizeof got)) != 0 ||
		    strcmp(got, lines[i]) != 0) {
			print_error("format: got %d '%s', want '%s'\n", rc, got,
			    lines[i]);
			failed++;
		} else {
			/* Every shorter buffer is refused, never overrun. */
			size_t full = strlen(got);
			for (size_t sz = 1; sz <= full; sz++) {
				char *small = malloc(sz);
				assert_non_null(small);
				if (userdb_format(&db.users[0], small, sz) != -1) {
					print_error("format '%s' in %zu: got 0, want "
					    "-1\n", lines[i], sz);
					failed++;
				}
				free(small);
			}
		}
		free(errs);
		userdb_free(&db);
	}
	if (failed)
		fail_msg("%d round trip(s) failed", failed);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_lines),
		cmocka_unit_test(test_bad_lines),
		cmocka_unit_test(test_lookup),
		cmocka_unit_test(test_many_users),
		cmocka_unit_test(test_format_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
