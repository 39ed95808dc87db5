/*
 * test_apop.c - the APOP digest against RFC 1939 section 7's example,
 * and the users-file secret it is computed from (src/auth/apop.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "auth/apop.h"

static void
test_rfc1939_example(void **state)
{
	const char *stamp = "<1896.697170952@dbc.mtview.ca.us>";
	char secret[64], digest[APOP_DIGEST_LEN + 1];

	(void)state;
	assert_int_equal(apop_make_secret("tanstaaf", secret, sizeof secret), 0);
	assert_string_equal(secret, "74616e7374616166");
	assert_int_equal(apop_digest(stamp, secret, digest), 0);
	assert_string_equal(digest, "c4c9334bac560ecc979e58001b3e22fb");
	assert_true(apop_check(stamp, secret, "c4c9334bac560ecc979e58001b3e22fb"));
	assert_true(apop_check(stamp, secret, "C4C9334BAC560ECC979E58001B3E22FB"));
	assert_false(apop_check(stamp, secret, "c4c9334bac560ecc979e58001b3e22fa"));
	assert_false(apop_check(stamp, secret, "c4c9334bac560ecc979e58001b3e22f"));
	assert_false(apop_check("<other@host>", secret,
	    "c4c9334bac560ecc979e58001b3e22fb"));
}

static void
test_bad_secrets(void **state)
{
	char digest[APOP_DIGEST_LEN + 1], small[4];

	(void)state;
	assert_int_equal(apop_digest("<a@b>", "", digest), -1);
	assert_int_equal(apop_digest("<a@b>", "abc", digest), -1);
	assert_int_equal(apop_digest("<a@b>", "zz", digest), -1);
	assert_int_equal(apop_make_secret("", small, sizeof small), -1);
	assert_int_equal(apop_make_secret("long", small, sizeof small), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc1939_example),
		cmocka_unit_test(test_bad_secrets),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
