/*
 * test_popbsmtp.c - the file names of POP-before-SMTP grants
 * (src/policy/popbsmtp.h): IPv4 by address, an IPv4-mapped IPv6 peer as
 * IPv4, IPv6 by exact address or by the configured prefix; and a grant
 * written, found, and expired with a fake clock.
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
#include <unistd.h>

#include "lib/log.h"
#include "policy/popbsmtp.h"

static void
make_sa(const char *addr, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof *ss);
	if (strchr(addr, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		s6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, addr, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
		s4->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, addr, &s4->sin_addr), 1);
	}
}

static void
test_key(void **state)
{
	static const struct { const char *addr; unsigned bits; const char *want; } cases[] = {
		{ "192.0.2.7", 128, "192.0.2.7" },
		{ "192.0.2.7", 64, "192.0.2.7" },
		{ "::ffff:192.0.2.7", 128, "192.0.2.7" },
		{ "::ffff:192.0.2.7", 64, "192.0.2.7" },
		{ "2001:db8:1:2:3:4:5:6", 128, "2001:db8:1:2:3:4:5:6" },
		{ "2001:db8:1:2:3:4:5:6", 64, "2001:db8:1:2::_64" },
		{ "2001:db8:1:2:3:4:5:6", 56, "2001:db8:1::_56" },
		{ "2001:db8:1:2ff:3:4:5:6", 60, "2001:db8:1:2f0::_60" },
		{ "::1", 128, "::1" },
	};
	struct conf c;

	(void)state;
	memset(&c, 0, sizeof c);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct sockaddr_storage ss;
		char key[64];

		c.pop_before_smtp_ipv6_prefix = cases[i].bits;
		make_sa(cases[i].addr, &ss);
		assert_int_equal(popbsmtp_key(&c, (struct sockaddr *)&ss, key,
		    sizeof key), 0);
		if (strcmp(key, cases[i].want) != 0)
			fail_msg("%s/%u: got '%s', want '%s'", cases[i].addr,
			    cases[i].bits, key, cases[i].want);
	}
}

static void
test_grant_lifecycle(void **state)
{
	char dir[] = "/tmp/postern-popbsmtp-XXXXXX", path[256], user[65];
	FILE *f;
	struct sockaddr_storage a, b;
	struct conf c;
	time_t now = 1700000000;

	(void)state;
	log_init(LOG_DEST_STDERR, 0);
	assert_non_null(mkdtemp(dir));
	memset(&c, 0, sizeof c);
	strcpy(c.spool, dir);
	c.pop_before_smtp = 900;
	c.pop_before_smtp_ipv6_prefix = 128;
	assert_int_equal(popbsmtp_prepare(&c, (uid_t)-1, (gid_t)-1), 0);
	make_sa("192.0.2.7", &a);
	make_sa("192.0.2.8", &b);
	assert_false(popbsmtp_granted(&c, (struct sockaddr *)&a, now, user,
	    sizeof user));
	assert_int_equal(popbsmtp_grant(&c, (struct sockaddr *)&a, "hoge", 1,
	    now), 0);
	assert_true(popbsmtp_granted(&c, (struct sockaddr *)&a, now, user,
	    sizeof user));
	assert_string_equal(user, "hoge");
	assert_true(popbsmtp_granted(&c, (struct sockaddr *)&a, now + 899,
	    user, sizeof user));
	assert_false(popbsmtp_granted(&c, (struct sockaddr *)&a, now + 900,
	    user, sizeof user));
	assert_string_equal(user, "");
	assert_false(popbsmtp_granted(&c, (struct sockaddr *)&b, now, user,
	    sizeof user));
	/* No grant is made for a name that is not a user's. */
	assert_int_equal(popbsmtp_grant(&c, (struct sockaddr *)&b, "a\nb", 1,
	    now), -1);
	/* A grant written before grants named their user relays nobody,
	 * and is swept at its expiry like any other. */
	snprintf(path, sizeof path, "%s/grants/192.0.2.8", dir);
	assert_non_null(f = fopen(path, "w"));
	fprintf(f, "until %lld\n", (long long)now + 600);
	fclose(f);
	assert_false(popbsmtp_granted(&c, (struct sockaddr *)&b, now, user,
	    sizeof user));
	assert_int_equal(popbsmtp_sweep(&c, now + 10), 0);
	assert_int_equal(popbsmtp_sweep(&c, now + 600), 1);
	/* The sweep keeps a live grant and removes an expired one. */
	assert_int_equal(popbsmtp_sweep(&c, now + 10), 0);
	assert_int_equal(popbsmtp_sweep(&c, now + 900), 1);
	snprintf(path, sizeof path, "%s/grants/192.0.2.7", dir);
	assert_int_equal(access(path, F_OK), -1);
	/* Off: nothing is granted or found. */
	c.pop_before_smtp = 0;
	assert_int_equal(popbsmtp_grant(&c, (struct sockaddr *)&a, "hoge", 1,
	    now), 0);
	assert_false(popbsmtp_granted(&c, (struct sockaddr *)&a, now, user,
	    sizeof user));
	snprintf(path, sizeof path, "%s/grants", dir);
	assert_int_equal(rmdir(path), 0);
	assert_int_equal(rmdir(dir), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key),
		cmocka_unit_test(test_grant_lifecycle),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
