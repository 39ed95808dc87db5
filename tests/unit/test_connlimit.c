/*
 * test_connlimit.c - the per-address connection table's recovery from
 * a worker that died holding its lock (policy/connlimit.c).
 *
 * The table's source is included, not linked, so that the test can
 * stand where a dying worker stands: inside the lock, between the
 * store to its own column and the store to the total.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../src/policy/connlimit.c"

static struct sockaddr_in
v4(const char *s)
{
	struct sockaddr_in a;

	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, s, &a.sin_addr), 1);
	return a;
}

/* Fork a worker that runs fn and exits with its result (0: as
 * expected); returns its pid, reaped. */
static pid_t
run_worker(int (*fn)(const struct sockaddr *), const struct sockaddr *sa)
{
	pid_t pid;
	int st;

	connlimit_before_fork();
	pid = fork();
	if (pid == 0)
		_exit(fn(sa));
	connlimit_after_fork(pid);
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	return pid;
}

/* Two connections counted, then a third stored in the column only:
 * the worker dies there, the lock held, the total one short. */
static int
die_between_the_stores(const struct sockaddr *sa)
{
	uint8_t key[CLIENT_KEY_LEN];
	struct cl_slot *s;

	if (connlimit_acquire(sa, 10) != 1 || connlimit_acquire(sa, 10) != 1)
		return 1;
	if (client_key(sa, key) == -1)
		return 1;
	cl_lock();
	if ((s = cl_find(key, 0)) == NULL)
		return 1;
	cl->count[s - cl->slots][cl_column]++;
	_exit(0);			/* the lock still held */
}

/* Limit 3: the dead worker's three connections are all still open, so
 * a fourth is over it.  With the total left one short it would pass. */
static int
fourth_is_refused(const struct sockaddr *sa)
{
	return connlimit_acquire(sa, 3) == -1 ? 0 : 1;
}

static void
test_totals_rebuilt_after_a_death_in_the_lock(void **state)
{
	struct sockaddr_in a = v4("198.51.100.7");
	const struct sockaddr *sa = (struct sockaddr *)&a;
	pid_t dead;

	(void)state;
	connlimit_init();
	dead = run_worker(die_between_the_stores, sa);
	run_worker(fourth_is_refused, sa);
	/* Its exit then takes away all three, and nothing wraps. */
	connlimit_child_exited(dead);
	{
		uint8_t key[CLIENT_KEY_LEN];
		struct cl_slot *s;

		assert_int_equal(client_key(sa, key), 0);
		cl_lock();
		s = cl_find(key, 0);
		assert_non_null(s);
		assert_int_equal(s->total, 0);
		shm_mutex_unlock(&cl->lock);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_totals_rebuilt_after_a_death_in_the_lock),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
