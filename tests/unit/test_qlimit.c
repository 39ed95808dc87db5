/*
 * test_qlimit.c - the queue manager's in-flight limit (queue/qlimit.c):
 * what the open-file limit leaves once the rest is set aside, shared
 * ceiling, a floor of one; and the raise of the soft open-file limit
 * towards the hard one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "queue/qlimit.h"

static void
test_inflight(void **state)
{
	static const struct {
		unsigned long	nofile;
		unsigned	count, passes, conns;
		unsigned	want;
	} rows[] = {
		/* 32 + 8*8 + 16 DNS + 2*13 connections + 1024/8 = 266 */
		{ 1024, 4, 8, 50, 1024 - 266 },
		/* 32 + 2*8 + 16 + 2*2 + 256/8 = 100 */
		{ 256, 1, 2, 2, 256 - 100 },
		/* the ceiling, shared out (rounded up) */
		{ 65536, 4, 8, 50, 5000 },
		{ 65536, 1, 8, 50, 20000 },
		{ 65536, 3, 8, 50, 6667 },
		{ 65536, 0, 8, 50, 20000 },	/* 0 managers: as one */
		/* too few files for the rest: one still moves the queue */
		{ 64, 1, 8, 50, 1 },
		{ 0, 1, 8, 50, 1 },
		/* remote-connections counts the share of this manager */
		{ 4096, 1, 1, 10000, 1 },
		{ 4096, 8, 1, 10000, 4096 - (32 + 8 + 16 + 2 * 1250 + 512) },
	};

	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		struct conf c;
		unsigned got;

		memset(&c, 0, sizeof c);
		c.queue_passes = rows[i].passes;
		c.remote_connections = rows[i].conns;
		got = qlimit_inflight(&c, rows[i].count, rows[i].nofile);
		if (got != rows[i].want)
			fail_msg("row %zu: nofile %lu count %u: got %u, want %u",
			    i, rows[i].nofile, rows[i].count, got, rows[i].want);
	}
}

/* In a child, with the soft and hard limits set to soft/hard: what the
 * raise returns, and the soft limit in force after it (as one number:
 * returned * 1000000 + in force), or -1. */
static long
raise_in_child(rlim_t soft, rlim_t hard)
{
	int fds[2], status;
	long out = -1;
	pid_t pid;

	if (pipe(fds) == -1)
		return -1;
	if ((pid = fork()) == 0) {
		struct rlimit rl = { soft, hard };
		unsigned long got;
		long r = -1;

		if (setrlimit(RLIMIT_NOFILE, &rl) == 0) {
			got = qlimit_raise_open_files();
			if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
				r = (long)got * 1000000 + (long)rl.rlim_cur;
		}
		(void)write(fds[1], &r, sizeof r);
		_exit(0);
	}
	close(fds[1]);
	if (pid == -1 || read(fds[0], &out, sizeof out) != sizeof out)
		out = -1;
	close(fds[0]);
	if (pid != -1)
		waitpid(pid, &status, 0);
	return out;
}

static void
test_raise_open_files(void **state)
{
	struct rlimit rl;

	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 128)
		skip();
	/* up to the hard limit, and in force */
	assert_int_equal(raise_in_child(64, 128), 128L * 1000000 + 128);
	/* already there: unchanged */
	assert_int_equal(raise_in_child(128, 128), 128L * 1000000 + 128);
	/* never past QLIMIT_OPEN_FILES_MAX, where the hard limit allows more */
	if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max > QLIMIT_OPEN_FILES_MAX)
		assert_int_equal(raise_in_child(64, QLIMIT_OPEN_FILES_MAX + 1),
		    (long)QLIMIT_OPEN_FILES_MAX * 1000000 +
		    QLIMIT_OPEN_FILES_MAX);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_inflight),
		cmocka_unit_test(test_raise_open_files),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
