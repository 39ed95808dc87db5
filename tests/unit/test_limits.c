/*
 * test_limits.c - the shared abuse-limit tables: sending rates
 * (policy/ratelimit.c) and per-address connection counts
 * (policy/connlimit.c), driven with a fixed clock.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "policy/client_key.h"
#include "policy/connlimit.h"
#include "policy/ratelimit.h"

#define HOUR	3600
#define T0	((time_t)1700000000 - 1700000000 % HOUR)	/* an hour's start */

static void
test_rate_fixed_window(void **state)
{
	ratelimit_init();
	for (int i = 0; i < 3; i++)
		assert_int_equal(ratelimit_take("user:a", RL_MESSAGES, 1, 3,
		    T0 + 10), 1);
	assert_int_equal(ratelimit_take("user:a", RL_MESSAGES, 1, 3, T0 + 20), 0);
	/* the refused one was not counted, and kinds are apart */
	assert_int_equal(ratelimit_rate("user:a", RL_MESSAGES, T0 + 20), 3);
	assert_int_equal(ratelimit_take("user:a", RL_RECIPIENTS, 5, 5, T0 + 20), 1);
	assert_int_equal(ratelimit_take("user:a", RL_RECIPIENTS, 1, 5, T0 + 20), 0);
	/* other keys have their own count; 0 is no limit */
	assert_int_equal(ratelimit_take("user:b", RL_MESSAGES, 1, 3, T0 + 20), 1);
	assert_int_equal(ratelimit_take("user:a", RL_MESSAGES, 100, 0, T0 + 20), 1);
}

static void
test_rate_sliding(void **state)
{
	ratelimit_init();
	for (int i = 0; i < 10; i++)
		assert_int_equal(ratelimit_take("ip:192.0.2.1", RL_MESSAGES, 1,
		    10, T0 + HOUR - 1), 1);
	/* a new clock hour does not forget the last one at once: a
	 * quarter into it, three quarters of the old count remain */
	assert_int_equal(ratelimit_rate("ip:192.0.2.1", RL_MESSAGES,
	    T0 + HOUR + HOUR / 4), 7);
	assert_int_equal(ratelimit_take("ip:192.0.2.1", RL_MESSAGES, 4, 10,
	    T0 + HOUR + HOUR / 4), 0);
	assert_int_equal(ratelimit_take("ip:192.0.2.1", RL_MESSAGES, 3, 10,
	    T0 + HOUR + HOUR / 4), 1);
	/* two hours of quiet: all forgotten */
	assert_int_equal(ratelimit_rate("ip:192.0.2.1", RL_MESSAGES,
	    T0 + 3 * HOUR + 1), 0);
}

static void
test_rate_table_full(void **state)
{
	char key[64];

	ratelimit_init();
	/* far more keys than slots: every take still answers, and a key
	 * in use right now keeps its count against idle ones */
	for (int i = 0; i < 40000; i++) {
		snprintf(key, sizeof key, "ip:10.%d.%d.%d", i >> 16,
		    (i >> 8) & 255, i & 255);
		assert_int_equal(ratelimit_take(key, RL_MESSAGES, 1, 5,
		    T0 + 5 * HOUR), 1);
	}
	assert_int_equal(ratelimit_take("user:long-enough-to-be-kept-but-"
	    "not-truncated-by-the-table-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	    RL_MESSAGES, 1, 1, T0), 1);
}

static void
test_rate_flood_keeps_the_heavy_sender(void **state)
{
	const time_t now = T0 + 20 * HOUR + 10;	/* the tests above idle */
	char key[64];

	ratelimit_init();
	assert_int_equal(ratelimit_take("ip:203.0.113.9", RL_MESSAGES, 900,
	    1000, now), 1);
	/* a flood of new addresses, twelve times the table, one message
	 * each: they push each other out, never the sender with 900 */
	for (int i = 0; i < 200000; i++) {
		snprintf(key, sizeof key, "ip:10.%d.%d.%d", i >> 16,
		    (i >> 8) & 255, i & 255);
		assert_int_equal(ratelimit_take(key, RL_MESSAGES, 1, 1000,
		    now), 1);
	}
	assert_int_equal(ratelimit_rate("ip:203.0.113.9", RL_MESSAGES, now),
	    900);
	assert_int_equal(ratelimit_take("ip:203.0.113.9", RL_MESSAGES, 200,
	    1000, now), 0);
	/* an hour on, the count still weighs (a sliding hour) */
	assert_int_equal(ratelimit_take("ip:203.0.113.9", RL_MESSAGES, 200,
	    1000, now + HOUR), 0);
}

static void
test_rate_clock_back(void **state)
{
	const time_t h = T0 + 30 * HOUR;	/* after the tests above */

	ratelimit_init();
	/* Ten sent just after an hour's start... */
	assert_int_equal(ratelimit_take("user:back", RL_MESSAGES, 10, 10,
	    h + 1), 1);
	/* ...then the clock steps back two seconds, into the hour before:
	 * the ten still count, and nothing more goes */
	assert_int_equal(ratelimit_rate("user:back", RL_MESSAGES, h - 1), 10);
	assert_int_equal(ratelimit_take("user:back", RL_MESSAGES, 1, 10,
	    h - 1), 0);
	/* and once the clock is past the hour again, they weigh as the
	 * previous hour's */
	assert_int_equal(ratelimit_rate("user:back", RL_MESSAGES, h + 2), 9);

	/* The previous hour's count is kept too, in full. */
	assert_int_equal(ratelimit_take("user:back2", RL_MESSAGES, 6, 10,
	    h - 1), 1);
	assert_int_equal(ratelimit_take("user:back2", RL_MESSAGES, 3, 10,
	    h + 1), 1);
	assert_int_equal(ratelimit_rate("user:back2", RL_MESSAGES, h + 1), 8);
	assert_int_equal(ratelimit_take("user:back2", RL_MESSAGES, 2, 10,
	    h - 1), 0);
	assert_int_equal(ratelimit_rate("user:back2", RL_MESSAGES, h - 1), 9);
	assert_int_equal(ratelimit_take("user:back2", RL_MESSAGES, 1, 10,
	    h - 1), 1);

	/* A step back of a day forgets nothing either. */
	assert_int_equal(ratelimit_take("user:back3", RL_MESSAGES, 5, 5,
	    h + 1), 1);
	assert_int_equal(ratelimit_take("user:back3", RL_MESSAGES, 1, 5,
	    h - 24 * HOUR), 0);
}

static struct sockaddr_in
v4(const char *a)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, a, &sin.sin_addr);
	return sin;
}

static void
test_client_key(void **state)
{
	struct sockaddr_in6 a, b;
	struct sockaddr_in c = v4("192.0.2.7");
	uint8_t ka[CLIENT_KEY_LEN], kb[CLIENT_KEY_LEN], kc[CLIENT_KEY_LEN];
	char text[64];

	memset(&a, 0, sizeof a);
	a.sin6_family = AF_INET6;
	b = a;
	inet_pton(AF_INET6, "2001:db8:1:2::1", &a.sin6_addr);
	inet_pton(AF_INET6, "2001:db8:1:2:ffff::9", &b.sin6_addr);
	assert_int_equal(client_key((struct sockaddr *)&a, ka), 0);
	assert_int_equal(client_key((struct sockaddr *)&b, kb), 0);
	assert_memory_equal(ka, kb, CLIENT_KEY_LEN);	/* one /64 */
	assert_int_equal(client_key_format((struct sockaddr *)&a, text,
	    sizeof text), 0);
	assert_string_equal(text, "2001:db8:1:2::/64");
	/* v4-mapped is the IPv4 address */
	inet_pton(AF_INET6, "::ffff:192.0.2.7", &a.sin6_addr);
	client_key((struct sockaddr *)&a, ka);
	client_key((struct sockaddr *)&c, kc);
	assert_memory_equal(ka, kc, CLIENT_KEY_LEN);
	client_key_format((struct sockaddr *)&a, text, sizeof text);
	assert_string_equal(text, "192.0.2.7");
}

static void
test_connlimit(void **state)
{
	struct sockaddr_in a = v4("198.51.100.1"), b = v4("198.51.100.2");
	const struct sockaddr *sa = (struct sockaddr *)&a;
	pid_t pid;
	int st;

	/* without a table nothing is counted */
	assert_int_equal(connlimit_acquire(sa, 2), 0);
	connlimit_init();
	connlimit_before_fork();
	pid = fork();
	if (pid == 0) {
		/* the "worker": counts in its column */
		int ok = connlimit_acquire(sa, 2) == 1 &&
		    connlimit_acquire(sa, 2) == 1 &&
		    connlimit_acquire(sa, 2) == -1 &&
		    connlimit_acquire((struct sockaddr *)&b, 2) == 1;
		connlimit_release(sa);
		ok = ok && connlimit_acquire(sa, 2) == 1 &&
		    connlimit_acquire(sa, 2) == -1;
		_exit(ok ? 0 : 1);
	}
	connlimit_after_fork(pid);
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	/* the child left two connections counted; its exit clears them */
	connlimit_child_exited(pid);
	connlimit_before_fork();
	pid = fork();
	if (pid == 0)
		_exit(connlimit_acquire(sa, 2) == 1 &&
		    connlimit_acquire(sa, 2) == 1 ? 0 : 1);
	connlimit_after_fork(pid);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	connlimit_child_exited(pid);
}

/* Two generations of the largest `workers` (256 each: a reload keeps
 * the old ones while they drain) must all get a column: one without is
 * let through uncounted. */
static void
test_connlimit_two_generations_of_256(void **state)
{
	struct sockaddr_in a = v4("198.51.100.9");
	const struct sockaddr *sa = (struct sockaddr *)&a;
	pid_t pid, fake = 4000000;	/* above pid_max: never a real child */
	int st;

	connlimit_init();
	for (int i = 0; i < 2 * 256 - 1; i++) {
		connlimit_before_fork();
		connlimit_after_fork(fake + i);
	}
	connlimit_before_fork();
	pid = fork();
	if (pid == 0)
		_exit(connlimit_acquire(sa, 1) == 1 &&
		    connlimit_acquire(sa, 1) == -1 ? 0 : 1);
	connlimit_after_fork(pid);
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	connlimit_child_exited(pid);
	for (int i = 0; i < 2 * 256 - 1; i++)
		connlimit_child_exited(fake + i);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rate_fixed_window),
		cmocka_unit_test(test_rate_sliding),
		cmocka_unit_test(test_rate_table_full),
		cmocka_unit_test(test_rate_flood_keeps_the_heavy_sender),
		cmocka_unit_test(test_rate_clock_back),
		cmocka_unit_test(test_client_key),
		cmocka_unit_test(test_connlimit),
		cmocka_unit_test(test_connlimit_two_generations_of_256),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
