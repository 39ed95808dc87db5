/*
 * test_remote.c - MX ordering (RFC 5321 section 5.1: preference first,
 * random among equals) and mapping replies to enhanced status codes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "deliver/dns.h"
#include "deliver/smtp_client.h"

static void
test_mx_order(void **state)
{
	int seen_b_first = 0, seen_c_first = 0;

	for (int round = 0; round < 200; round++) {
		struct dns_mx mx[] = {
			{ "d.example", 30 }, { "b.example", 10 },
			{ "a.example", 5 }, { "c.example", 10 },
		};
		dns_mx_order(mx, 4);
		assert_string_equal(mx[0].host, "a.example");
		assert_string_equal(mx[3].host, "d.example");
		for (int i = 1; i < 4; i++)
			assert_true(mx[i - 1].pref <= mx[i].pref);
		if (strcmp(mx[1].host, "b.example") == 0)
			seen_b_first++;
		else
			seen_c_first++;
	}
	/* Equal preferences share the load: both orders happen. */
	if (seen_b_first < 20 || seen_c_first < 20)
		fail_msg("equal preferences not shuffled: %d/%d", seen_b_first,
		    seen_c_first);
}

static void
test_reply_dsn(void **state)
{
	static const struct { int code; const char *text, *want; } rows[] = {
		{ 250, "2.1.5 Ok", "2.1.5" },
		{ 550, "5.1.1 <x@y>: Recipient address rejected", "5.1.1" },
		{ 550, "User unknown", "5.0.0" },
		{ 451, "4.3.0 Try later", "4.3.0" },
		{ 451, "Try later", "4.0.0" },
		{ 452, "4.5.3 Too many recipients", "4.5.3" },
		{ 550, "4.1.1 class mismatch", "5.0.0" },
		{ 554, "5.7.1", "5.7.1" },
		{ 535, "5.7.8 Authentication credentials invalid", "5.7.8" },
		{ 250, "2.0.0Ok", "2.0.0" },	/* no blank: the class default */
		{ 421, "", "4.0.0" },
		{ 550, "5.", "5.0.0" },
		{ 550, "5.1.10 null MX", "5.1.10" },
	};
	char dsn[16];

	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		smtp_client_dsn(rows[i].code, rows[i].text, dsn, sizeof dsn);
		if (strcmp(dsn, rows[i].want) != 0)
			fail_msg("%d '%s': got '%s', want '%s'", rows[i].code,
			    rows[i].text, dsn, rows[i].want);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mx_order),
		cmocka_unit_test(test_reply_dsn),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
