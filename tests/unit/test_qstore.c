/*
 * test_qstore.c - the spool writer with its spare unnamed files: spares
 * are made ahead up to the limit and have no name, a message written
 * through one appears only as queue/QID with exactly its bytes, and
 * stopping the pool leaves nothing behind.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "queue/qstore.h"

/* Descriptors of this process that are unnamed files in dir. */
static int
count_unnamed(const char *dir)
{
	char prefix[PATH_MAX], link[PATH_MAX + 32], path[300];
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	snprintf(prefix, sizeof prefix, "%s/#", dir);
	while ((de = readdir(d)) != NULL) {
		ssize_t len;

		snprintf(path, sizeof path, "/proc/self/fd/%s", de->d_name);
		if ((len = readlink(path, link, sizeof link - 1)) <= 0)
			continue;
		link[len] = '\0';
		if (strncmp(link, prefix, strlen(prefix)) == 0)
			n++;
	}
	closedir(d);
	return n;
}

static int
count_names(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void
wait_for_spares(const char *dir, int want)
{
	struct timespec tick = { 0, 10 * 1000 * 1000 };

	for (int i = 0; i < 300 && count_unnamed(dir) < want; i++)
		nanosleep(&tick, NULL);
}

static void
test_spares_and_commit(void **state)
{
	char spool[] = "/tmp/postern-qstore-XXXXXX", incoming[PATH_MAX];
	char queued[PATH_MAX], got[64], cmd[PATH_MAX + 16];
	static const char env[] = "postern-queue 1\n\n", body[] = "Subject: x\r\n\r\nhi\r\n";
	struct qfile qf;
	int fd;
	ssize_t n;

	(void)state;
	assert_non_null(mkdtemp(spool));
	assert_int_equal(qstore_prepare(spool, (uid_t)-1, (gid_t)-1), 0);
	snprintf(incoming, sizeof incoming, "%s/incoming", spool);
	if (qstore_spares_start(spool, 4) == -1) {
		printf("SKIP spare files: %s: %s\n", incoming, strerror(errno));
		snprintf(cmd, sizeof cmd, "rm -rf %s", spool);
		assert_int_equal(system(cmd), 0);
		skip();
	}
	wait_for_spares(incoming, 4);
	assert_int_equal(count_unnamed(incoming), 4);	/* never more */
	assert_int_equal(count_names(incoming), 0);

	assert_int_equal(qstore_create(&qf, spool, "0123456789ABCDEF", env,
	    sizeof env - 1), 0);
	assert_true(qf.unnamed);
	qstore_write(&qf, body, sizeof body - 1);
	assert_int_equal(qstore_commit(&qf), 0);
	assert_int_equal(count_names(incoming), 0);

	snprintf(queued, sizeof queued, "%s/queue/0123456789ABCDEF", spool);
	assert_true((fd = open(queued, O_RDONLY)) != -1);
	n = read(fd, got, sizeof got);
	close(fd);
	assert_int_equal(n, sizeof env - 1 + sizeof body - 1);
	assert_memory_equal(got, env, sizeof env - 1);
	assert_memory_equal(got + sizeof env - 1, body, sizeof body - 1);

	wait_for_spares(incoming, 4);	/* the one taken is made again */
	assert_int_equal(count_unnamed(incoming), 4);
	qstore_spares_stop();
	assert_int_equal(count_unnamed(incoming), 0);
	assert_int_equal(count_names(incoming), 0);
	snprintf(cmd, sizeof cmd, "rm -rf %s", spool);
	assert_int_equal(system(cmd), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spares_and_commit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
