/*
 * test_aliases_expand.c - alias expansion: nesting, loops, :include:
 * files, duplicates, case, depth (src/deliver/aliases_expand.h).
 * Table-driven: each row is an aliases file, a name, and the sorted
 * results as "kind:target" joined by spaces.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "deliver/aliases_expand.h"

static const char *users[] = { "alice", "bob", "carol", "root", NULL };

static const char *
test_user(void *arg, const char *local, const char *domain)
{
	for (size_t i = 0; users[i]; i++)
		if (strcmp(users[i], local) == 0)
			return users[i];
	return NULL;
}

static int
test_is_local(void *arg, const char *domain)
{
	return strcasecmp(domain, "example.test") == 0;
}

static int
str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "kind:target ..." sorted, for comparison with a row's want. */
static void
render(const struct alias_expansion *x, char *dst, size_t dstsz)
{
	static const char *kinds[] = { "user", "remote", "fail", "temp" };
	char *items[64];
	size_t n = x->n < 64 ? x->n : 64, o = 0;

	for (size_t i = 0; i < n; i++) {
		char tmp[600];
		snprintf(tmp, sizeof tmp, "%s:%s", kinds[x->r[i].kind],
		    x->r[i].target);
		items[i] = strdup(tmp);
	}
	qsort(items, n, sizeof *items, str_cmp);
	dst[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		o += (size_t)snprintf(dst + o, dstsz - o, "%s%s", i ? " " : "",
		    items[i]);
		free(items[i]);
	}
}

static void
run(const char *file, const char *name, const char *want, unsigned depth)
{
	struct aliases al;
	struct alias_expansion x;
	struct alias_ctx ctx = { &al, test_user, test_is_local, NULL, depth };
	char got[4096];

	assert_int_equal(aliases_parse("test", file, &al, stderr), 0);
	aliases_expand(&ctx, name, NULL, &x);
	render(&x, got, sizeof got);
	if (strcmp(got, want) != 0)
		fail_msg("%s: got '%s', want '%s'", name, got, want);
	alias_expansion_free(&x);
	aliases_free(&al);
}

static void
test_table(void **state)
{
	static const struct {
		const char *file, *name, *want;
	} rows[] = {
		/* plain user, no alias */
		{ "", "alice", "user:alice" },
		{ "", "nobody", "fail:nobody" },
		/* case-insensitive names and targets */
		{ "Team: Alice, BOB\n", "team", "user:alice user:bob" },
		{ "team: alice\n", "TEAM", "user:alice" },
		/* nesting, and duplicates removed across branches */
		{ "all: team, staff, alice\nteam: alice, bob\nstaff: bob, carol\n",
		  "all", "user:alice user:bob user:carol" },
		/* a user aliased to itself gets the mail in its mailbox */
		{ "alice: alice, bob\n", "alice", "user:alice user:bob" },
		/* a loop through names that are not users fails */
		{ "a: b\nb: a\n", "a", "fail:a" },
		/* a loop that reaches a user stops at the user */
		{ "alice: team\nteam: alice, carol\n", "alice",
		  "user:alice user:carol" },
		/* local and remote addresses; a remote local part keeps
		 * its case (RFC 5321 section 2.4), its domain does not */
		{ "x: bob@example.test, Far@Remote.Example\n", "x",
		  "remote:Far@remote.example user:bob" },
		{ "x: Far@Remote.Example, Far@remote.example, "
		  "far@remote.example\n", "x",
		  "remote:Far@remote.example remote:far@remote.example" },
		/* an unknown member fails alone */
		{ "x: alice, ghost\n", "x", "fail:ghost user:alice" },
		/* quoted names */
		{ "x: \"carol\"\n", "x", "user:carol" },
		/* a loop between users reached from a list: each is met
		 * again from the list, where the other is not above it */
		{ "admins: root, alice\nroot: alice\nalice: root\n", "admins",
		  "user:alice user:root" },
		{ "top: alice, bob\nalice: bob\nbob: alice\n", "top",
		  "user:alice user:bob" },
	};

	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
		run(rows[i].file, rows[i].name, rows[i].want, 0);
}

static void
test_depth(void **state)
{
	/* a0 -> a1 -> ... -> a30 -> alice: deeper than the limit */
	char file[4096];
	size_t o = 0;

	for (int i = 0; i < 30; i++)
		o += (size_t)snprintf(file + o, sizeof file - o, "a%d: a%d\n", i,
		    i + 1);
	snprintf(file + o, sizeof file - o, "a30: alice\n");
	run(file, "a0", "fail:a20", 0);
	run(file, "a25", "user:alice", 0);
	run("a: b\nb: alice\n", "a", "fail:b", 1);
	/* xx is cut under b1, and must not then be skipped whole where it
	 * is met higher up, directly under top */
	run("top: a1, b1, xx\na1: a2\na2: zz\nb1: xx\nxx: zz\nzz: z1\n"
	    "z1: z2\nz2: carol\n", "top", "fail:z2 user:carol", 5);
}

static char *
write_tmp(const char *text)
{
	char *path = strdup("/tmp/test_aliases_expand.XXXXXX");
	int fd = mkstemp(path);

	assert_true(fd != -1);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static void
test_include(void **state)
{
	char *inc = write_tmp("# comment\ncarol, bob\n\n  alice  # trailing\n"
	    "someone@remote.example\n");
	char *self = write_tmp("placeholder\n");
	char file[1024], want[1024];
	FILE *f;

	snprintf(file, sizeof file, "list: :include:%s\n", inc);
	run(file, "list", "remote:someone@remote.example user:alice user:bob "
	    "user:carol", 0);
	/* an include that includes itself */
	f = fopen(self, "w");
	fprintf(f, ":include:%s\nalice\n", self);
	fclose(f);
	snprintf(file, sizeof file, "x: :include:%s\n", self);
	snprintf(want, sizeof want, "fail::include:%s user:alice", self);
	run(file, "x", want, 0);
	/* a missing include file is temporary: retried, not bounced */
	unlink(inc);
	snprintf(file, sizeof file, "list: :include:%s, bob\n", inc);
	snprintf(want, sizeof want, "temp::include:%s user:bob", inc);
	run(file, "list", want, 0);
	unlink(self);
	free(inc);
	free(self);
}

/* 19 levels of ten aliases, each listing all ten of the next level:
 * 10^19 paths to alice, and include files that include the next one ten
 * times each.  Each alias and file is expanded once (the alarm fails a
 * test that would take for ever). */
static void
test_many_paths(void **state)
{
	char *file = malloc(1 << 16), *paths[25], text[8192];
	size_t o = 0;

	alarm(10);
	for (int lv = 0; lv < 19; lv++)
		for (int k = 0; k < 10; k++) {
			o += (size_t)snprintf(file + o, (1 << 16) - o,
			    "x%d_%d:", lv, k);
			for (int j = 0; j < 10; j++)
				o += (size_t)snprintf(file + o, (1 << 16) - o,
				    "%s x%d_%d", j ? "," : "", lv + 1, j);
			o += (size_t)snprintf(file + o, (1 << 16) - o, "\n");
		}
	for (int k = 0; k < 10; k++)
		o += (size_t)snprintf(file + o, (1 << 16) - o, "x19_%d: alice\n",
		    k);
	run(file, "x0_0", "user:alice", 0);

	/* 15 levels fit under the depth limit; 25 do not: cut, and
	 * bounded by ALIAS_STEPS_MAX. */
	for (int levels = 15; levels <= 25; levels += 10) {
		for (int lv = levels - 1; lv >= 0; lv--) {
			size_t t = 0;

			for (int j = 0; j < 10 && lv < levels - 1; j++)
				t += (size_t)snprintf(text + t, sizeof text - t,
				    ":include:%s\n", paths[lv + 1]);
			if (lv == levels - 1)
				snprintf(text, sizeof text, "bob\n");
			paths[lv] = write_tmp(text);
		}
		snprintf(file, 1 << 16, "list: :include:%s\n", paths[0]);
		if (levels == 15)
			run(file, "list", "user:bob", 0);
		else {
			struct aliases al;
			struct alias_expansion x;
			struct alias_ctx ctx = { &al, test_user, test_is_local,
			    NULL, 0 };

			assert_int_equal(aliases_parse("test", file, &al,
			    stderr), 0);
			aliases_expand(&ctx, "list", NULL, &x);
			/* Cut, it is expanded again wherever met (a cut
			 * may hide a loop), until the step bound. */
			assert_int_equal(x.n, 2);
			for (size_t i = 0; i < x.n; i++)
				assert_true((x.r[i].kind == ALIAS_R_FAIL &&
				    strcmp(x.r[i].dsn, "5.4.6") == 0) ||
				    (x.r[i].kind == ALIAS_R_TEMP &&
				    strcmp(x.r[i].dsn, "4.3.0") == 0));
			alias_expansion_free(&x);
			aliases_free(&al);
		}
		for (int lv = 0; lv < levels; lv++) {
			unlink(paths[lv]);
			free(paths[lv]);
		}
	}
	alarm(0);
	free(file);
}

/* Whatever the shape, the work is bounded: two include files of a
 * mebibyte of the same name each end in a temporary failure. */
static void
test_step_bound(void **state)
{
	size_t n = (1 << 20) / 6;
	char *text = malloc(n * 6 + 1), *a, *b, file[512], want[1024];

	for (size_t i = 0; i < n; i++)
		memcpy(text + i * 6, "alice\n", 6);
	text[n * 6] = '\0';
	a = write_tmp(text);
	b = write_tmp(text);
	snprintf(file, sizeof file, "big: :include:%s, :include:%s\n", a, b);
	snprintf(want, sizeof want, "temp:alice user:alice");
	run(file, "big", want, 0);
	unlink(a);
	unlink(b);
	free(a);
	free(b);
	free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_depth),
		cmocka_unit_test(test_include),
		cmocka_unit_test(test_many_paths),
		cmocka_unit_test(test_step_bound),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
