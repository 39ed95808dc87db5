/*
 * test_aliases.c - the aliases(5) parser (src/deliver/aliases.h).
 * Good rows list every entry as "name=t1|t2;name2=..." (sorted by name);
 * bad rows give the exact first "FILE:LINE: what" message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deliver/aliases.h"

/* All entries as one string: "name=t1|t2;name2=t3". */
static void
dump(const struct aliases *al, char *dst, size_t dstsz)
{
	size_t o = 0;

	dst[0] = '\0';
	for (size_t i = 0; i < al->nentries && o < dstsz; i++) {
		const struct alias_entry *e = &al->entries[i];

		o += (size_t)snprintf(dst + o, dstsz - o, "%s%s=", i ? ";" : "",
		    e->name);
		for (size_t j = 0; j < e->ntargets && o < dstsz; j++)
			o += (size_t)snprintf(dst + o, dstsz - o, "%s%s",
			    j ? "|" : "", e->targets[j]);
	}
}

static int
parse(const char *text, struct aliases *al, char **errs)
{
	size_t errlen;
	FILE *f = open_memstream(errs, &errlen);
	int n;

	assert_non_null(f);
	n = aliases_parse("aliases", text, al, f);
	fclose(f);
	return n;
}

struct alias_case {
	const char	*text;
	int		 nerr;
	const char	*want;		/* dump() of what loaded */
	const char	*err;		/* first error line, or "" */
};

static const struct alias_case alias_cases[] = {
	/* Entries. */
	{ "root: alice\n", 0, "root=alice", "" },
	{ "root:alice", 0, "root=alice", "" },
	{ "root : alice\n", 0, "root=alice", "" },
	{ "list: a, b,c ,\td\n", 0, "list=a|b|c|d", "" },
	{ "root: alice\npostmaster: root\nabuse: root\n", 0,
	    "abuse=root;postmaster=root;root=alice", "" },
	{ "info: alice@example.org, bob@other.example\n", 0,
	    "info=alice@example.org|bob@other.example", "" },
	{ "first.last: fl\nx-y_z+1: q\n", 0, "first.last=fl;x-y_z+1=q", "" },

	/* Continuation lines, comments and blank lines. */
	{ "list: a,\n  b,\n\tc\n", 0, "list=a|b|c", "" },
	{ "list: a,\n  b\nother: c\n", 0, "list=a|b;other=c", "" },
	{ "# comment\nroot: alice\n# another\n", 0, "root=alice", "" },
	{ "list: a,\n# inside a list\n  b\n", 0, "list=a|b", "" },
	{ "list: a,\n  # an indented comment\n  b\n", 0, "list=a|b", "" },
	{ "\n\n   \n\t\nroot: alice\n\n", 0, "root=alice", "" },
	{ "root: alice\r\nlist: a,\r\n  b\r\n", 0, "list=a|b;root=alice", "" },
	{ "", 0, "", "" },
	{ "# only a comment\n", 0, "", "" },

	/* Case folding of names (targets keep their case). */
	{ "Root: Alice\n", 0, "root=Alice", "" },
	{ "POSTMASTER: Root@Example.ORG\n", 0, "postmaster=Root@Example.ORG", "" },

	/* :include: and quoted targets. */
	{ "staff: :include:/etc/postern/staff\n", 0,
	    "staff=:include:/etc/postern/staff", "" },
	{ "list: \"a, b\"@example.org, c\n", 0, "list=\"a, b\"@example.org|c", "" },
	{ "list: \"x:y\"@example.org\n", 0, "list=\"x:y\"@example.org", "" },

	/* Errors: the bad entry is skipped, the rest still loads. */
	{ "root: a\nROOT: b\n", 1, "root=a", "aliases:2: duplicate alias 'root'" },
	{ "prog: |/usr/bin/vacation\nok: a\n", 1, "ok=a",
	    "aliases:1: program and file targets ('|/usr/bin/vacation') are "
	    "not supported" },
	{ "ok: a\nlog: a, /var/log/mail\n", 1, "ok=a",
	    "aliases:2: program and file targets ('/var/log/mail') are not "
	    "supported" },
	{ "prog: \"|/bin/sh -c x\"\n", 1, "",
	    "aliases:1: program and file targets ('\"|/bin/sh -c x\"') are not "
	    "supported" },
	{ "f: \"/tmp/x\"\n", 1, "",
	    "aliases:1: program and file targets ('\"/tmp/x\"') are not "
	    "supported" },
	{ "list: a,\n  |cmd\n", 1, "",
	    "aliases:1: program and file targets ('|cmd') are not supported" },
	{ "root alice\nok: a\n", 1, "ok=a",
	    "aliases:1: expected 'name: target, ...'" },
	{ "  alice\nok: a\n", 1, "ok=a",
	    "aliases:1: continuation line without an entry" },
	{ "# c\n\n\talice\n", 1, "", "aliases:3: continuation line without an entry" },
	{ "staff: :include:staff.txt\n", 1, "",
	    "aliases:1: :include: needs an absolute path" },
	{ "root:\n", 1, "", "aliases:1: alias 'root' has no targets" },
	{ "root: a,,b\n", 1, "", "aliases:1: empty target" },
	{ "root: a,\n", 0, "root=a", "" },		/* a trailing comma is harmless */
	{ "list: \"a, b@example.org\n", 1, "", "aliases:1: unterminated quote" },
	{ "ro ot: a\n", 1, "", "aliases:1: bad alias name 'ro ot'" },
	{ "a@b: c\n", 1, "", "aliases:1: bad alias name 'a@b'" },
	{ ": c\n", 1, "", "aliases:1: bad alias name ''" },
	{ "r\xc3\xb6\x62: c\n", 1, "", "aliases:1: bad alias name 'r\xc3\xb6\x62'" },
	{ "root: al\xc3\xaf" "ce\n", 1, "",
	    "aliases:1: control or 8-bit character in target" },
	{ "x: a\n\nbad\n\ny: b\n", 1, "x=a;y=b",
	    "aliases:3: expected 'name: target, ...'" },
	{ "a: |x\nb: /y\nc\n  d\n", 3, "", "aliases:1: program and file targets "
	    "('|x') are not supported" },
};

static void
test_table(void **state)
{
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof alias_cases / sizeof alias_cases[0]; i++) {
		const struct alias_case *tc = &alias_cases[i];
		struct aliases al;
		char got[1024], *errs = NULL, first[512], *nl;
		int n;

		n = parse(tc->text, &al, &errs);
		dump(&al, got, sizeof got);
		snprintf(first, sizeof first, "%s", errs);
		if ((nl = strchr(first, '\n')) != NULL)
			*nl = '\0';
		if (n != tc->nerr || strcmp(got, tc->want) != 0 ||
		    strcmp(first, tc->err) != 0) {
			print_error("case %zu: got %d error(s) '%s', entries '%s'; "
			    "want %d '%s', '%s'\n", i, n, first, got, tc->nerr,
			    tc->err, tc->want);
			failed++;
		}
		free(errs);
		aliases_free(&al);
	}
	if (failed)
		fail_msg("%d aliases case(s) failed", failed);
}

static void
test_lookup(void **state)
{
	static const char text[] =
	    "# system\n"
	    "root: alice\n"
	    "Postmaster: root\n"
	    "staff: alice,\n"
	    "   bob@example.org,\n"
	    "   :include:/etc/postern/staff\n"
	    "zz: z\n";
	static const struct { const char *name; const char *want; int line; }
	    cases[] = {
		{ "root", "alice", 2 }, { "ROOT", "alice", 2 },
		{ "postmaster", "root", 3 }, { "PostMaster", "root", 3 },
		{ "staff", "alice|bob@example.org|:include:/etc/postern/staff", 4 },
		{ "zz", "z", 7 }, { "Zz", "z", 7 },
		{ "alice", NULL, 0 }, { "", NULL, 0 }, { "roo", NULL, 0 },
		{ "roott", NULL, 0 }, { "aa", NULL, 0 }, { "zzz", NULL, 0 },
	};
	struct aliases al;
	char *errs = NULL;
	int failed = 0;

	(void)state;
	assert_int_equal(parse(text, &al, &errs), 0);
	free(errs);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct alias_entry *e = aliases_lookup(&al, cases[i].name);
		char got[256] = "";
		size_t o = 0;

		if (e)
			for (size_t j = 0; j < e->ntargets; j++)
				o += (size_t)snprintf(got + o, sizeof got - o,
				    "%s%s", j ? "|" : "", e->targets[j]);
		if (cases[i].want == NULL ? e != NULL :
		    e == NULL || strcmp(got, cases[i].want) != 0 ||
		    e->line != cases[i].line) {
			print_error("lookup '%s': got '%s' line %d, want '%s' "
			    "line %d\n", cases[i].name, e ? got : "(none)",
			    e ? e->line : 0, cases[i].want ? cases[i].want :
			    "(none)", cases[i].line);
			failed++;
		}
	}
	aliases_free(&al);
	/* An empty map answers NULL. */
	assert_int_equal(parse("", &al, &errs), 0);
	free(errs);
	assert_null(aliases_lookup(&al, "root"));
	aliases_free(&al);
	if (failed)
		fail_msg("%d lookup case(s) failed", failed);
}

/* A large table in reverse order with a name given twice and bad
 * entries around it: every name is found with its own target, the first
 * of the two lines is kept, and the errors come in line order (the
 * duplicate is only found once the whole table is in). */
static void
test_many(void **state)
{
	enum { N = 20000 };
	size_t cap = (size_t)N * 40 + 256, o = 0;
	char *text = malloc(cap), *errs = NULL, name[32], want[32];
	struct aliases al;
	const struct alias_entry *e;

	(void)state;
	assert_non_null(text);
	o += (size_t)snprintf(text + o, cap - o, "first: x\nFIRST: y\n");
	for (int i = N - 1; i >= 0; i--)
		o += (size_t)snprintf(text + o, cap - o, "a%05d: u%d\n", i, i);
	o += (size_t)snprintf(text + o, cap - o, "nocolon\na00009: again\n");
	assert_int_equal(parse(text, &al, &errs), 3);
	assert_string_equal(errs, "aliases:2: duplicate alias 'first'\n"
	    "aliases:20003: expected 'name: target, ...'\n"
	    "aliases:20004: duplicate alias 'a00009'\n");
	free(errs);
	assert_int_equal(al.nentries, N + 1);
	for (int i = 0; i < N; i += 13) {
		snprintf(name, sizeof name, "A%05d", i);
		snprintf(want, sizeof want, "u%d", i);
		assert_non_null(e = aliases_lookup(&al, name));
		assert_int_equal(e->ntargets, 1);
		assert_string_equal(e->targets[0], want);
	}
	assert_string_equal(aliases_lookup(&al, "a00009")->targets[0], "u9");
	assert_string_equal(aliases_lookup(&al, "first")->targets[0], "x");
	assert_null(aliases_lookup(&al, "a20000"));
	aliases_free(&al);
	free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_lookup),
		cmocka_unit_test(test_many),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
