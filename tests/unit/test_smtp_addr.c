/*
 * test_smtp_addr.c - RFC 5321 paths and MAIL/RCPT parameters
 * (src/smtp/smtp_addr.h).  Each table row is one argument as it follows
 * the verb, and what the parser must make of it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_addr.h"

#define M	ADDR_MAIL
#define R	ADDR_RCPT
#define BAD	NULL		/* want: the parser must return -1 */

struct addr_case {
	enum addr_kind	 kind;
	const char	*in;
	const char	*addr;		/* smtp_addr_format() of the result */
	int		 quoted;
	int		 literal;
	const char	*params;	/* "KEY=VALUE KEY" as parsed */
};

static const struct addr_case addr_cases[] = {
	/* Plain paths. */
	{ M, "FROM:<user@example.org>", "user@example.org", 0, 0, "" },
	{ R, "TO:<user@example.org>", "user@example.org", 0, 0, "" },
	{ M, "from:<user@example.org>", "user@example.org", 0, 0, "" },
	{ R, "To:<First.Last+tag@Mail.Example.ORG>",
	    "First.Last+tag@Mail.Example.ORG", 0, 0, "" },
	{ M, "FROM: <user@example.org>", "user@example.org", 0, 0, "" },
	{ M, "FROM:<a!#$%&'*+-/=?^_`{|}~@example.org>",
	    "a!#$%&'*+-/=?^_`{|}~@example.org", 0, 0, "" },
	{ R, "TO:<u@x-y.example>", "u@x-y.example", 0, 0, "" },
	{ R, "TO:<u@1.2.3.example>", "u@1.2.3.example", 0, 0, "" },
	{ R, "TO:<u@localhost>", "u@localhost", 0, 0, "" },

	/* The null path and postmaster. */
	{ M, "FROM:<>", "", 0, 0, "" },
	{ R, "TO:<>", BAD, 0, 0, NULL },
	{ R, "TO:<postmaster>", "postmaster", 0, 0, "" },
	{ R, "TO:<PostMaster>", "PostMaster", 0, 0, "" },
	{ M, "FROM:<postmaster>", BAD, 0, 0, NULL },
	{ R, "TO:<\"postmaster\">", BAD, 0, 0, NULL },
	{ R, "TO:<postmistress>", BAD, 0, 0, NULL },
	{ R, "TO:<postmaster@>", BAD, 0, 0, NULL },
	{ R, "TO:<postmaster@example.org>", "postmaster@example.org", 0, 0, "" },

	/* Source routes are dropped. */
	{ R, "TO:<@a,@b:u@c>", "u@c", 0, 0, "" },
	{ R, "TO:<@relay.example:u@c.example>", "u@c.example", 0, 0, "" },
	{ M, "FROM:<@[192.0.2.1],@b:u@c>", "u@c", 0, 0, "" },
	{ R, "TO:<@a,b:u@c>", BAD, 0, 0, NULL },
	{ R, "TO:<@a:@b:u@c>", BAD, 0, 0, NULL },
	{ R, "TO:<@:u@c>", BAD, 0, 0, NULL },
	{ R, "TO:<@a.:u@c>", BAD, 0, 0, NULL },
	{ R, "TO:<@a:>", BAD, 0, 0, NULL },
	{ R, "TO:<@a>", BAD, 0, 0, NULL },
	{ R, "TO:<@a,@b>", BAD, 0, 0, NULL },

	/* Quoted local parts. */
	{ R, "TO:<\"john doe\"@example.org>", "\"john doe\"@example.org", 1, 0, "" },
	{ R, "TO:<\"u@r\"@example.org>", "\"u@r\"@example.org", 1, 0, "" },
	{ R, "TO:<\"a%b\"@example.org>", "\"a%b\"@example.org", 1, 0, "" },
	{ R, "TO:<\"a>b\"@example.org>", "\"a>b\"@example.org", 1, 0, "" },
	{ R, "TO:<\"a\\\"b\"@example.org>", "\"a\\\"b\"@example.org", 1, 0, "" },
	{ R, "TO:<\"a\\\\b\"@example.org>", "\"a\\\\b\"@example.org", 1, 0, "" },
	{ R, "TO:<\"\"@example.org>", "\"\"@example.org", 1, 0, "" },
	{ R, "TO:<\"unterminated@example.org>", BAD, 0, 0, NULL },
	{ R, "TO:<\"a\"b@example.org>", BAD, 0, 0, NULL },
	{ R, "TO:<\"a\"@b@example.org>", BAD, 0, 0, NULL },
	{ R, "TO:<\"a\tb\"@example.org>", BAD, 0, 0, NULL },
	{ R, "TO:<\"a\\\xe9\"@example.org>", BAD, 0, 0, NULL },
	{ R, "TO:<\"\xc3\xa9\"@example.org>", BAD, 0, 0, NULL },
	{ R, "TO:<\"a\\\"@example.org>", BAD, 0, 0, NULL },

	/* Address literals. */
	{ R, "TO:<u@[192.0.2.1]>", "u@[192.0.2.1]", 0, 1, "" },
	{ R, "TO:<u@[IPv6:2001:db8::1]>", "u@[IPv6:2001:db8::1]", 0, 1, "" },
	{ R, "TO:<u@[ipv6:::1]>", "u@[ipv6:::1]", 0, 1, "" },
	{ R, "TO:<u@[IPv6:::ffff:192.0.2.1]>", "u@[IPv6:::ffff:192.0.2.1]", 0, 1, "" },
	{ R, "TO:<u@[2001:db8::1]>", BAD, 0, 0, NULL },
	{ R, "TO:<u@[IPv6:192.0.2.1]>", BAD, 0, 0, NULL },
	{ R, "TO:<u@[IPv6:2001:db8::g]>", BAD, 0, 0, NULL },
	{ R, "TO:<u@[IPv6:fe80::1%eth0]>", BAD, 0, 0, NULL },
	{ R, "TO:<u@[192.0.2.256]>", BAD, 0, 0, NULL },
	{ R, "TO:<u@[192.0.2]>", BAD, 0, 0, NULL },
	{ R, "TO:<u@[192.0.2.1>", BAD, 0, 0, NULL },
	{ R, "TO:<u@192.0.2.1]>", BAD, 0, 0, NULL },
	{ R, "TO:<u@[]>", BAD, 0, 0, NULL },
	{ R, "TO:<u@[ 192.0.2.1]>", BAD, 0, 0, NULL },
	{ R, "TO:<u@[192.0.2.1].example>", BAD, 0, 0, NULL },

	/* Parameters. */
	{ M, "FROM:<u@example.org> SIZE=1000", "u@example.org", 0, 0, "SIZE=1000" },
	{ M, "FROM:<u@example.org> size=1000 body=8bitmime",
	    "u@example.org", 0, 0, "SIZE=1000 BODY=8bitmime" },
	{ M, "FROM:<> BODY=7BIT", "", 0, 0, "BODY=7BIT" },
	{ M, "FROM:<u@example.org>   SMTPUTF8   ", "u@example.org", 0, 0, "SMTPUTF8" },
	{ M, "FROM:<u@example.org> X-A1=b~c", "u@example.org", 0, 0, "X-A1=b~c" },
	{ R, "TO:<u@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;u@example.org",
	    "u@example.org", 0, 0, "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;u@example.org" },
	{ M, "FROM:<u@example.org> A B C D E F G H", "u@example.org", 0, 0,
	    "A B C D E F G H" },
	{ M, "FROM:<u@example.org> A B C D E F G H I", BAD, 0, 0, NULL },
	{ M, "FROM:<u@example.org> SIZE=", BAD, 0, 0, NULL },
	{ M, "FROM:<u@example.org> =1000", BAD, 0, 0, NULL },
	{ M, "FROM:<u@example.org> -SIZE=1", BAD, 0, 0, NULL },
	{ M, "FROM:<u@example.org> SI_ZE=1", BAD, 0, 0, NULL },
	{ M, "FROM:<u@example.org> SIZE==1", BAD, 0, 0, NULL },
	{ M, "FROM:<u@example.org> SIZE=1=2", BAD, 0, 0, NULL },
	{ M, "FROM:<u@example.org> BODY=\xc3\xa9", BAD, 0, 0, NULL },
	{ M, "FROM:<u@example.org> SIZE=\x01", BAD, 0, 0, NULL },
	{ M, "FROM:<u@example.org>\tSIZE=1", BAD, 0, 0, NULL },

	/* Verb argument shape. */
	{ M, "TO:<u@example.org>", BAD, 0, 0, NULL },
	{ R, "FROM:<u@example.org>", BAD, 0, 0, NULL },
	{ M, "FROM<u@example.org>", BAD, 0, 0, NULL },
	{ M, "", BAD, 0, 0, NULL },
	{ M, "FROM:", BAD, 0, 0, NULL },
	{ M, "FROM:u@example.org", BAD, 0, 0, NULL },
	{ M, "FROM:<u@example.org", BAD, 0, 0, NULL },
	{ M, "FROM:<", BAD, 0, 0, NULL },
	{ M, "FROM:u@example.org>", BAD, 0, 0, NULL },
	{ M, "FROM:<u@example.org>x", BAD, 0, 0, NULL },
	{ M, "FROM:<u@example.org>>", BAD, 0, 0, NULL },
	{ M, "FROM:<<u@example.org>>", BAD, 0, 0, NULL },
	{ M, "FROM:<u@example.org><v@example.org>", BAD, 0, 0, NULL },
	{ M, "FROM:\t<u@example.org>", BAD, 0, 0, NULL },

	/* Local parts that are not dot-strings. */
	{ R, "TO:<u@r@example.org>", BAD, 0, 0, NULL },
	{ R, "TO:<.u@example.org>", BAD, 0, 0, NULL },
	{ R, "TO:<u.@example.org>", BAD, 0, 0, NULL },
	{ R, "TO:<u..v@example.org>", BAD, 0, 0, NULL },
	{ R, "TO:<u v@example.org>", BAD, 0, 0, NULL },
	{ R, "TO:< u@example.org>", BAD, 0, 0, NULL },
	{ R, "TO:<u@example.org >", BAD, 0, 0, NULL },
	{ R, "TO:<u(c)@example.org>", BAD, 0, 0, NULL },
	{ R, "TO:<u,v@example.org>", BAD, 0, 0, NULL },
	{ R, "TO:<u\\v@example.org>", BAD, 0, 0, NULL },
	{ R, "TO:<\xc3\xa9@example.org>", BAD, 0, 0, NULL },
	{ R, "TO:<u\x7f@example.org>", BAD, 0, 0, NULL },
	{ R, "TO:<@example.org>", BAD, 0, 0, NULL },
	{ R, "TO:<u@>", BAD, 0, 0, NULL },
	{ R, "TO:<u>", BAD, 0, 0, NULL },

	/* Domains. */
	{ R, "TO:<u@example.org.>", BAD, 0, 0, NULL },
	{ R, "TO:<u@.example.org>", BAD, 0, 0, NULL },
	{ R, "TO:<u@example..org>", BAD, 0, 0, NULL },
	{ R, "TO:<u@-example.org>", BAD, 0, 0, NULL },
	{ R, "TO:<u@example-.org>", BAD, 0, 0, NULL },
	{ R, "TO:<u@example.org->", BAD, 0, 0, NULL },
	{ R, "TO:<u@exa_mple.org>", BAD, 0, 0, NULL },
	{ R, "TO:<u@ex ample.org>", BAD, 0, 0, NULL },
	{ R, "TO:<u@ex\xc3\xa4mple.org>", BAD, 0, 0, NULL },
	{ R, "TO:<u@exa%mple.org>", BAD, 0, 0, NULL },
	{ R, "TO:<u@.>", BAD, 0, 0, NULL },
};

static void
format_params(char *dst, size_t dstsz, const struct smtp_param *p, size_t n)
{
	size_t o = 0;

	dst[0] = '\0';
	for (size_t i = 0; i < n && o < dstsz; i++)
		o += (size_t)snprintf(dst + o, dstsz - o, "%s%s%s%s",
		    i ? " " : "", p[i].key, p[i].value ? "=" : "",
		    p[i].value ? p[i].value : "");
}

static void
test_parse_table(void **state)
{
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof addr_cases / sizeof addr_cases[0]; i++) {
		const struct addr_case *tc = &addr_cases[i];
		char arg[512], got[SMTP_PATH_MAX + 1], gotp[512];
		struct smtp_param params[SMTP_PARAMS_MAX];
		struct mailaddr a;
		size_t np = 99;
		int rc;

		snprintf(arg, sizeof arg, "%s", tc->in);
		rc = smtp_addr_parse(arg, tc->kind, &a, params, &np);
		if (tc->addr == BAD) {
			if (rc != -1) {
				smtp_addr_format(&a, got, sizeof got);
				print_error("%s '%s': got accepted as '%s', want "
				    "rejected\n", tc->kind == M ? "MAIL" : "RCPT",
				    tc->in, got);
				failed++;
			}
			continue;
		}
		if (rc != 0) {
			print_error("%s '%s': got rejected, want '%s'\n",
			    tc->kind == M ? "MAIL" : "RCPT", tc->in, tc->addr);
			failed++;
			continue;
		}
		smtp_addr_format(&a, got, sizeof got);
		format_params(gotp, sizeof gotp, params, np);
		if (strcmp(got, tc->addr) != 0) {
			print_error("'%s': got '%s', want '%s'\n", tc->in, got,
			    tc->addr);
			failed++;
		}
		if (a.quoted != tc->quoted || a.literal != tc->literal) {
			print_error("'%s': got quoted=%d literal=%d, want "
			    "quoted=%d literal=%d\n", tc->in, a.quoted,
			    a.literal, tc->quoted, tc->literal);
			failed++;
		}
		if (strcmp(gotp, tc->params) != 0) {
			print_error("'%s': got params '%s', want '%s'\n", tc->in,
			    gotp, tc->params);
			failed++;
		}
		if (smtp_addr_is_null(&a) != (tc->addr[0] == '\0')) {
			print_error("'%s': got is_null %d, want %d\n", tc->in,
			    smtp_addr_is_null(&a), tc->addr[0] == '\0');
			failed++;
		}
	}
	if (failed)
		fail_msg("%d address case(s) failed", failed);
}

/*
 * Length limits (RFC 5321 4.5.3.1): local part 64, label 63, path 256
 * including the angle brackets.  Rows give the local-part length and the
 * label lengths of the domain.
 */
struct len_case {
	size_t	 local;
	int	 quoted;		/* local part is "xxx" (length with quotes) */
	size_t	 labels[5];		/* 0 ends the list */
	int	 want;			/* 0 or -1 */
};

static const struct len_case len_cases[] = {
	{ 64, 0, { 3 }, 0 },
	{ 65, 0, { 3 }, -1 },
	{ 64, 1, { 3 }, 0 },
	{ 65, 1, { 3 }, -1 },
	{ 1, 0, { 63, 3 }, 0 },
	{ 1, 0, { 64, 3 }, -1 },
	{ 1, 0, { 3, 64 }, -1 },
	{ 1, 0, { 63 }, 0 },
	{ 1, 0, { 64 }, -1 },
	/* 64 + "@" + 63.63.61 = 254 octets, 256 with "<>". */
	{ 64, 0, { 63, 63, 61 }, 0 },
	{ 64, 0, { 63, 63, 62 }, -1 },
	{ 64, 0, { 63, 63, 63, 63 }, -1 },
	{ 64, 1, { 63, 63, 61 }, 0 },
	{ 64, 1, { 63, 63, 62 }, -1 },
};

static void
test_lengths(void **state)
{
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof len_cases / sizeof len_cases[0]; i++) {
		const struct len_case *tc = &len_cases[i];
		char arg[1024], desc[64];
		struct smtp_param params[SMTP_PARAMS_MAX];
		struct mailaddr a;
		size_t o, np, pathlen;
		int rc;

		o = (size_t)snprintf(arg, sizeof arg, "TO:<");
		memset(arg + o, 'x', tc->local);
		if (tc->quoted)
			arg[o] = arg[o + tc->local - 1] = '"';
		o += tc->local;
		arg[o++] = '@';
		for (size_t l = 0; l < 5 && tc->labels[l]; l++) {
			if (l)
				arg[o++] = '.';
			memset(arg + o, 'a' + (char)l, tc->labels[l]);
			o += tc->labels[l];
		}
		pathlen = o - 3 + 1;	/* without "TO:", with "<>" */
		arg[o++] = '>';
		arg[o] = '\0';
		snprintf(desc, sizeof desc, "local %zu%s, path %zu", tc->local,
		    tc->quoted ? " quoted" : "", pathlen);
		rc = smtp_addr_parse(arg, ADDR_RCPT, &a, params, &np);
		if (rc != tc->want) {
			print_error("%s: got %d, want %d\n", desc, rc, tc->want);
			failed++;
		} else if (rc == 0 && (strlen(a.local) != tc->local ||
		    a.quoted != tc->quoted)) {
			print_error("%s: got local length %zu, want %zu\n", desc,
			    strlen(a.local), tc->local);
			failed++;
		}
	}
	if (failed)
		fail_msg("%d length case(s) failed", failed);
}

/* smtp_domain_valid on its own, including the 255-octet limit. */
static void
test_domain_valid(void **state)
{
	static const struct { const char *in; int want; } cases[] = {
		{ "example.org", 1 }, { "a", 1 }, { "a-b.c", 1 },
		{ "a--b.c", 1 }, { "1.2.3.4", 1 }, { "EXAMPLE.org", 1 },
		{ "", 0 }, { ".", 0 }, { "a.", 0 }, { ".a", 0 }, { "a..b", 0 },
		{ "-a", 0 }, { "a-", 0 }, { "a-.b", 0 }, { "a.-b", 0 },
		{ "a_b", 0 }, { "a b", 0 }, { "a\xc3\xa4", 0 }, { "[1.2.3.4]", 0 },
	};
	char big[300];
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int got = smtp_domain_valid(cases[i].in, strlen(cases[i].in));
		if (got != cases[i].want) {
			print_error("'%s': got %d, want %d\n", cases[i].in, got,
			    cases[i].want);
			failed++;
		}
	}
	/* Four 63-octet labels: 255 octets, the most DNS allows. */
	memset(big, 'a', sizeof big);
	for (size_t i = 63; i < sizeof big; i += 64)
		big[i] = '.';
	if (smtp_domain_valid(big, 255) != 1) {
		print_error("255-octet domain: got rejected, want accepted\n");
		failed++;
	}
	big[255] = 'a';
	if (smtp_domain_valid(big, 257) != 0) {
		print_error("257-octet domain: got accepted, want rejected\n");
		failed++;
	}
	/* Only len octets count: a valid prefix of a longer buffer is valid. */
	if (smtp_domain_valid("example.org trailing", 11) != 1) {
		print_error("prefix of buffer: got rejected, want accepted\n");
		failed++;
	}
	if (failed)
		fail_msg("%d domain case(s) failed", failed);
}

/*
 * smtp_addr_parse_path on exactly-sized heap copies: the parser must not
 * look past len (AddressSanitizer reports it if it does).
 */
static void
test_parse_path_bounds(void **state)
{
	static const struct { const char *in; const char *want; } cases[] = {
		{ "u@example.org", "u@example.org" },
		{ "@a:u@b", "u@b" },
		{ "postmaster", "postmaster" },
		{ "@a:", NULL },
		{ "@a,@b:", NULL },
		{ "@a", NULL },
		{ "\"", NULL },
		{ "\"a", NULL },
		{ "\"a\\", NULL },
		{ "u@", NULL },
		{ "u@[", NULL },
		{ "@", NULL },
	};
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t len = strlen(cases[i].in);
		char *copy = malloc(len ? len : 1), got[SMTP_PATH_MAX + 1];
		struct mailaddr a;
		int rc;

		assert_non_null(copy);
		memcpy(copy, cases[i].in, len);
		rc = smtp_addr_parse_path(copy, len, &a);
		free(copy);
		if (cases[i].want == NULL) {
			if (rc != -1) {
				print_error("'%s': got accepted, want rejected\n",
				    cases[i].in);
				failed++;
			}
			continue;
		}
		smtp_addr_format(&a, got, sizeof got);
		if (rc != 0 || strcmp(got, cases[i].want) != 0) {
			print_error("'%s': got %d '%s', want '%s'\n", cases[i].in,
			    rc, got, cases[i].want);
			failed++;
		}
	}
	if (failed)
		fail_msg("%d path case(s) failed", failed);
}

/* The local part as a plain name for mailbox lookup, or -1. */
static void
test_simple_local(void **state)
{
	static const struct { const char *path; const char *want; } cases[] = {
		{ "hoge@example.org", "hoge" },
		{ "First.Last@example.org", "First.Last" },
		{ "\"hoge\"@example.org", "hoge" },
		{ "\"a.b\"@example.org", "a.b" },
		{ "\"a\\b\"@example.org", "ab" },
		{ "\"a\\.b\"@example.org", "a.b" },
		{ "\"a b\"@example.org", NULL },
		{ "\"a@b\"@example.org", NULL },
		{ "\"a%b\"@example.org", NULL },
		{ "\"a!b\"@example.org", NULL },
		{ "a%b@example.org", NULL },
		{ "a!b@example.org", NULL },
		{ "\"a\\\"b\"@example.org", NULL },
		{ "\"a\\\\b\"@example.org", NULL },
		{ "\".a\"@example.org", NULL },
		{ "\"a.\"@example.org", NULL },
		{ "\"a..b\"@example.org", NULL },
		{ "\"\"@example.org", NULL },
		{ "postmaster", "postmaster" },
	};
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct mailaddr a;
		char got[SMTP_LOCAL_MAX + 1];
		int rc;

		if (smtp_addr_parse_path(cases[i].path, strlen(cases[i].path),
		    &a) != 0) {
			print_error("'%s': does not parse\n", cases[i].path);
			failed++;
			continue;
		}
		strcpy(got, "(unset)");
		rc = smtp_addr_simple_local(&a, got, sizeof got);
		if (cases[i].want == NULL && rc != -1) {
			print_error("'%s': got '%s', want -1\n", cases[i].path,
			    got);
			failed++;
		} else if (cases[i].want != NULL &&
		    (rc != 0 || strcmp(got, cases[i].want) != 0)) {
			print_error("'%s': got %d '%s', want '%s'\n",
			    cases[i].path, rc, got, cases[i].want);
			failed++;
		}
	}
	if (failed)
		fail_msg("%d simple_local case(s) failed", failed);
}

static void
test_simple_local_small_dst(void **state)
{
	struct mailaddr a;
	char dst[4];

	(void)state;
	assert_int_equal(smtp_addr_parse_path("abcd@x", 6, &a), 0);
	assert_int_equal(smtp_addr_simple_local(&a, dst, sizeof dst), -1);
	assert_int_equal(smtp_addr_parse_path("\"abcd\"@x", 8, &a), 0);
	assert_int_equal(smtp_addr_simple_local(&a, dst, sizeof dst), -1);
	assert_int_equal(smtp_addr_parse_path("\"abc\"@x", 7, &a), 0);
	assert_int_equal(smtp_addr_simple_local(&a, dst, sizeof dst), 0);
	assert_string_equal(dst, "abc");
}

static void
test_format(void **state)
{
	static const struct {
		const char *local, *domain;
		size_t dstsz;
		const char *want;
	} cases[] = {
		{ "u", "example.org", SMTP_PATH_MAX + 1, "u@example.org" },
		{ "", "", SMTP_PATH_MAX + 1, "" },
		{ "postmaster", "", SMTP_PATH_MAX + 1, "postmaster" },
		{ "\"a b\"", "[192.0.2.1]", SMTP_PATH_MAX + 1, "\"a b\"@[192.0.2.1]" },
		{ "user", "example.org", 8, "user@ex" },
		{ "postmaster", "", 5, "post" },
		{ "u", "x", 1, "" },
	};
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct mailaddr a;
		char got[SMTP_PATH_MAX + 8];

		memset(&a, 0, sizeof a);
		memset(got, 'Z', sizeof got);
		snprintf(a.local, sizeof a.local, "%s", cases[i].local);
		snprintf(a.domain, sizeof a.domain, "%s", cases[i].domain);
		smtp_addr_format(&a, got, cases[i].dstsz);
		if (memchr(got, '\0', cases[i].dstsz) == NULL ||
		    strcmp(got, cases[i].want) != 0) {
			print_error("format %s|%s in %zu: got '%.*s', want '%s'\n",
			    cases[i].local, cases[i].domain, cases[i].dstsz,
			    (int)cases[i].dstsz, got, cases[i].want);
			failed++;
		}
	}
	if (failed)
		fail_msg("%d format case(s) failed", failed);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_table),
		cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_domain_valid),
		cmocka_unit_test(test_parse_path_bounds),
		cmocka_unit_test(test_simple_local),
		cmocka_unit_test(test_simple_local_small_dst),
		cmocka_unit_test(test_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
