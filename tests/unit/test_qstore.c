/*
 * test_qstore.c - the spool writer with its spare unnamed files: spares
 * are made ahead up to the limit, and again once half are used; they
 * have no name; a message written through one appears only as queue/QID
 * with exactly its bytes; stopping the pool leaves nothing behind.  On
 * ext4 without a journal the spares are made in the subdirectories of
 * incoming/ in turn, and incoming/ carries the flag that makes the file
 * system place those apart; elsewhere there are no such subdirectories.
 * The queue manager's status files are made there too where the spool
 * is spread.
 * (Whether a file system has a journal is told right by
 * fsio_ext4_without_journal: the black-box config check test mounts one
 * of each.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/fsio.h"
#include "queue/qstatus.h"
#include "queue/qstore.h"

/* Descriptors of this process that are unnamed files in dir or in a
 * subdirectory of it; *subdirs gets how many of dir/0 .. dir/N-1 have
 * one. */
static int
count_unnamed_in(const char *dir, int *subdirs)
{
	unsigned char seen[QSTORE_SPREAD] = { 0 };
	char prefix[PATH_MAX], link[PATH_MAX + 32], path[300];
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	snprintf(prefix, sizeof prefix, "%s/", dir);
	if (subdirs)
		*subdirs = 0;
	while ((de = readdir(d)) != NULL) {
		const char *rest;
		char *end;
		unsigned long k;
		ssize_t len;

		snprintf(path, sizeof path, "/proc/self/fd/%s", de->d_name);
		if ((len = readlink(path, link, sizeof link - 1)) <= 0)
			continue;
		link[len] = '\0';
		if (strncmp(link, prefix, strlen(prefix)) != 0)
			continue;
		rest = link + strlen(prefix);
		if (rest[0] == '#') {
			n++;
			continue;
		}
		k = strtoul(rest, &end, 10);
		if (end != rest && strncmp(end, "/#", 2) == 0) {
			n++;
			assert_true(k < QSTORE_SPREAD);
			if (subdirs && !seen[k]++)
				(*subdirs)++;
		}
	}
	closedir(d);
	return n;
}

static int
count_unnamed(const char *dir)
{
	return count_unnamed_in(dir, NULL);
}

/* The test's spool, gone. */
static void
remove_spool(const char *spool)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof cmd, "rm -rf %s", spool);
	assert_int_equal(system(cmd), 0);
}

/* Names in dir other than directories. */
static int
count_names(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		char path[PATH_MAX + 256];
		struct stat st;

		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		if (de->d_name[0] != '.' && lstat(path, &st) == 0 &&
		    !S_ISDIR(st.st_mode))
			n++;
	}
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
	char queued[PATH_MAX], got[64];
	static const char env[] = "postern-queue 1\n\n", body[] = "Subject: x\r\n\r\nhi\r\n";
	struct qfile qf;
	int fd, subdirs;
	ssize_t n;

	(void)state;
	assert_non_null(mkdtemp(spool));
	assert_int_equal(qstore_prepare(spool, (uid_t)-1, (gid_t)-1), 0);
	snprintf(incoming, sizeof incoming, "%s/incoming", spool);
	if (qstore_spares_start(spool, 4) == -1) {
		printf("SKIP spare files: %s: %s\n", incoming, strerror(errno));
		remove_spool(spool);
		skip();
	}
	wait_for_spares(incoming, 4);
	assert_int_equal(count_unnamed_in(incoming, &subdirs), 4); /* never more */
	if (fsio_ext4_without_journal(spool, NULL, 0))
		assert_int_equal(subdirs, 4);	/* one in each of 4 */
	else
		assert_int_equal(subdirs, 0);
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

	/* Three of four left: more than half, so none is made yet (the
	 * filler wakes when half are used)... */
	nanosleep(&(struct timespec){ 0, 100 * 1000 * 1000 }, NULL);
	assert_int_equal(count_unnamed(incoming), 3);
	/* ...and taking one more wakes it to make both again. */
	assert_int_equal(qstore_create(&qf, spool, "0123456789ABCDEE", env,
	    sizeof env - 1), 0);
	qstore_abort(&qf);
	wait_for_spares(incoming, 4);
	assert_int_equal(count_unnamed(incoming), 4);
	qstore_spares_stop();
	assert_int_equal(count_unnamed(incoming), 0);
	assert_int_equal(count_names(incoming), 0);
	remove_spool(spool);
}

/* On ext4 without a journal qstore_prepare makes incoming/0 ..
 * incoming/QSTORE_SPREAD-1 after marking incoming/, and a second start-up
 * on the same spool keeps them (the clean-up of unfinished messages skips
 * directories); elsewhere it makes none. */
static void
test_spread_directories(void **state)
{
	char spool[] = "/tmp/postern-qstore-XXXXXX", path[PATH_MAX];
	struct stat st;
	int fd, flags, spread;

	(void)state;
	assert_non_null(mkdtemp(spool));
	spread = fsio_ext4_without_journal(spool, NULL, 0);
	for (int round = 0; round < 2; round++) {
		assert_int_equal(qstore_prepare(spool, (uid_t)-1, (gid_t)-1), 0);
		for (unsigned k = 0; k < QSTORE_SPREAD; k++) {
			snprintf(path, sizeof path, "%s/incoming/%u", spool, k);
			if (!spread) {
				assert_int_equal(stat(path, &st), -1);
				continue;
			}
			assert_int_equal(stat(path, &st), 0);
			assert_true(S_ISDIR(st.st_mode));
			assert_int_equal(st.st_mode & 07777, 0700);
		}
	}
	snprintf(path, sizeof path, "%s/incoming", spool);
	if (!spread) {
		printf("SKIP spread directories: %s is not on ext4 without a "
		    "journal (checked: none made)\n", path);
	} else {
		assert_true((fd = open(path, O_RDONLY | O_DIRECTORY)) != -1);
		assert_int_equal(ioctl(fd, FS_IOC_GETFLAGS, &flags), 0);
		close(fd);
		assert_true(flags & FS_TOPDIR_FL);
	}
	remove_spool(spool);
}

/* A status file: where the spool is spread it is made unnamed in a
 * spread directory (qstore_open_spread) and linked as status/QID; either
 * way it is status/QID, 0600, opened for appending, and a record synced
 * through it reads back, also after reopening. */
static void
test_status_file(void **state)
{
	char spool[] = "/tmp/postern-qstore-XXXXXX", path[PATH_MAX];
	char link[PATH_MAX], self[64];
	static const char qid[] = "0123456789ABCDEF";
	struct qstatus st;
	struct stat sb;
	ssize_t n;
	int fd, spread;

	(void)state;
	assert_non_null(mkdtemp(spool));
	assert_int_equal(qstore_prepare(spool, (uid_t)-1, (gid_t)-1), 0);
	snprintf(path, sizeof path, "%s/status", spool);
	assert_int_equal(mkdir(path, 0700), 0);
	spread = fsio_ext4_without_journal(spool, NULL, 0);

	fd = qstore_open_spread(spool);
	if (!spread) {
		assert_int_equal(fd, -1);
		assert_int_equal(errno, EOPNOTSUPP);
		printf("SKIP spread status files: %s is not on ext4 without a "
		    "journal (checked: no spread file offered)\n", spool);
	} else {
		/* "SPOOL/incoming/K/#INODE (deleted)" */
		assert_true(fd != -1);
		snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
		assert_true((n = readlink(self, link, sizeof link - 1)) > 0);
		link[n] = '\0';
		snprintf(path, sizeof path, "%s/incoming/", spool);
		assert_memory_equal(link, path, strlen(path));
		assert_non_null(strstr(link + strlen(path), "/#"));
		close(fd);
	}

	assert_int_equal(qstatus_open(spool, qid, &st), 0);
	assert_int_equal(st.dir_unsynced, spread);
	assert_true(fcntl(st.fd, F_GETFL) & O_APPEND);
	assert_int_equal(qstatus_append(&st, 1, "retry 100 200"), 0);
	assert_int_equal(st.dir_unsynced, 0);
	qstatus_close(&st);
	snprintf(path, sizeof path, "%s/status/%s", spool, qid);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);
	assert_int_equal(sb.st_nlink, 1);

	assert_int_equal(qstatus_open(spool, qid, &st), 0);
	assert_int_equal(st.retries, 1);
	assert_int_equal(st.dir_unsynced, 0);	/* an existing file */
	assert_int_equal(qstatus_append(&st, 1, "warned 300"), 0);
	qstatus_close(&st);
	assert_int_equal(qstatus_load(spool, qid, &st), 0);
	assert_int_equal(st.retries, 1);
	assert_int_equal(st.next_retry, 200);
	assert_true(st.warned);
	qstatus_close(&st);

	remove_spool(spool);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spares_and_commit),
		cmocka_unit_test(test_spread_directories),
		cmocka_unit_test(test_status_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
