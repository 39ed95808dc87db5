/*
 * test_auth.c - password hashes (yescrypt made, sha512-crypt and others
 * verified, as /etc/shadow holds them) and the brute-force throttle.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <crypt.h>
#include <string.h>

#include "auth/pwhash.h"
#include "auth/throttle.h"

static void
test_pwhash_yescrypt(void **state)
{
	char h[256], h2[256];

	assert_int_equal(pwhash_make("s3cret pass", h, sizeof h), 0);
	assert_memory_equal(h, "$y$", 3);
	assert_int_equal(pwhash_verify("s3cret pass", h), 1);
	assert_int_equal(pwhash_verify("s3cret pasS", h), 0);
	assert_int_equal(pwhash_verify("", h), 0);
	/* A fresh salt every time. */
	assert_int_equal(pwhash_make("s3cret pass", h2, sizeof h2), 0);
	assert_string_not_equal(h, h2);
	/* Too small a buffer is an error, not a truncated hash. */
	assert_int_equal(pwhash_make("x", h, 10), -1);
}

static void
test_pwhash_other_methods(void **state)
{
	static const char *settings[] = { "$6$saltsaltsalt$", "$5$abcdefgh$",
	    "$2b$05$abcdefghijklmnopqrstuu" };
	struct crypt_data cd;

	for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++) {
		memset(&cd, 0, sizeof cd);
		const char *h = crypt_r("legacy", settings[i], &cd);
		assert_non_null(h);
		if (h[0] == '*')
			fail_msg("crypt method %s unavailable", settings[i]);
		char copy[256];
		strcpy(copy, h);
		if (pwhash_verify("legacy", copy) != 1)
			fail_msg("%s: right password refused", settings[i]);
		if (pwhash_verify("Legacy", copy) != 0)
			fail_msg("%s: wrong password accepted", settings[i]);
	}
	/* Accounts without a password login never match. */
	static const char *locked[] = { "!", "*", "", "!$6$saltsaltsalt$x",
	    "*LK*" };
	for (size_t i = 0; i < sizeof locked / sizeof locked[0]; i++)
		if (pwhash_verify("", locked[i]) != 0 ||
		    pwhash_verify("legacy", locked[i]) != 0)
			fail_msg("hash '%s' matched", locked[i]);
}

static void
test_throttle(void **state)
{
	time_t t = 1000000;

	throttle_init(3, 60);
	assert_int_equal(throttle_blocked("192.0.2.1", t), 0);
	assert_int_equal(throttle_fail("192.0.2.1", t), 1);
	assert_int_equal(throttle_fail("192.0.2.1", t + 1), 2);
	assert_int_equal(throttle_blocked("192.0.2.1", t + 1), 0);
	/* Another address has its own count. */
	assert_int_equal(throttle_fail("2001:db8::1", t + 1), 1);
	assert_int_equal(throttle_fail("192.0.2.1", t + 2), 3);
	assert_true(throttle_blocked("192.0.2.1", t + 2) > 0);
	assert_int_equal(throttle_blocked("2001:db8::1", t + 2), 0);
	assert_true(throttle_blocked("192.0.2.1", t + 3) > 0);
	/* Time lifts a block (a success forgets nothing: authd.c). */
	assert_int_equal(throttle_blocked("192.0.2.1", t + 63), 0);
	/* Old failures leave the window. */
	assert_int_equal(throttle_fail("198.51.100.9", t), 1);
	assert_int_equal(throttle_fail("198.51.100.9", t + 100), 1);
	assert_int_equal(throttle_fail("198.51.100.9", t + 101), 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pwhash_yescrypt),
		cmocka_unit_test(test_pwhash_other_methods),
		cmocka_unit_test(test_throttle),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
