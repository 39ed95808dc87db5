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
#include <zlib.h>

#include "lib/buf.h"
#include "lib/fsio.h"
#include "queue/qenv.h"
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
	char queued[PATH_MAX], got[128], seal[64];
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
	/* The envelope, its seal before the empty line (with the CRC-32
	 * of what comes before it), the message. */
	snprintf(seal, sizeof seal, "content %020zu %08lx %08lx\n",
	    sizeof body - 1, crc32(0, (const Bytef *)body, sizeof body - 1),
	    crc32(0, (const Bytef *)env, sizeof env - 2));
	assert_int_equal(n, sizeof env - 1 + strlen(seal) + sizeof body - 1);
	assert_memory_equal(got, env, sizeof env - 2);
	assert_memory_equal(got + sizeof env - 2, seal, strlen(seal));
	assert_memory_equal(got + sizeof env - 2 + strlen(seal), "\n", 1);
	assert_memory_equal(got + sizeof env - 1 + strlen(seal), body,
	    sizeof body - 1);

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

static void
assert_same_begin(const struct qstatus *a, const struct qstatus *b,
    const char *key)
{
	const struct qstatus_begin *x, *y;

	if (qstatus_is_done(a, key))
		return;
	x = qstatus_find_begin(a, key);
	y = qstatus_find_begin(b, key);
	assert_non_null(x);
	assert_non_null(y);
	assert_int_equal(x->rcpt, y->rcpt);
	assert_string_equal(x->name, y->name);
}

/* The state two loads share, field by field. */
static void
assert_same_status(const struct qstatus *a, const struct qstatus *b)
{
	assert_int_equal(a->ndone, b->ndone);
	for (size_t i = 0; i < a->ndone; i++)
		assert_true(qstatus_is_done(b, a->done[i]));
	/* Of the begins, what qstatus_find_begin answers: the latest for
	 * each key not done (all that a compacted file keeps). */
	for (size_t i = 0; i < a->nbegins; i++)
		assert_same_begin(a, b, a->begins[i].key);
	for (size_t i = 0; i < b->nbegins; i++)
		assert_same_begin(a, b, b->begins[i].key);
	assert_int_equal(a->nrcpts, b->nrcpts);
	for (size_t i = 0; i < a->nrcpts; i++) {
		assert_int_equal(a->rcpts[i].complete, b->rcpts[i].complete);
		if (a->rcpts[i].complete)
			continue;
		assert_int_equal(a->rcpts[i].dsn == NULL, b->rcpts[i].dsn == NULL);
		if (a->rcpts[i].dsn) {
			assert_string_equal(a->rcpts[i].dsn, b->rcpts[i].dsn);
			assert_string_equal(a->rcpts[i].why, b->rcpts[i].why);
		}
	}
	assert_int_equal(a->retries, b->retries);
	assert_int_equal(a->last_attempt, b->last_attempt);
	assert_int_equal(a->next_retry, b->next_retry);
	assert_int_equal(a->warned, b->warned);
	assert_int_equal(a->nremotes, b->nremotes);
	for (size_t i = 0; i < a->nremotes; i++) {
		const struct qstatus_remote *x = &a->remotes[i];
		const struct qstatus_remote *y = qstatus_find_remote(b, x->key);

		assert_non_null(y);
		assert_int_equal(x->rcpt, y->rcpt);
		assert_string_equal(x->outcome, y->outcome);
		assert_string_equal(x->dsn, y->dsn);
		assert_string_equal(x->relay, y->relay);
		assert_string_equal(x->why, y->why);
	}
}

/* A message with 300 remote recipients deferred over 40 passes: its
 * status file passes QSTATUS_COMPACT_AT; compacted, it is under a tenth
 * of that, loads to the same state, and takes appends as before.  A
 * small file is left alone. */
static void
test_status_compact(void **state)
{
	char spool[] = "/tmp/postern-qstore-XXXXXX", path[PATH_MAX];
	static const char qid[] = "0123456789ABCDE0";
	struct qstatus st, before, after;
	struct stat sb;
	off_t big;

	(void)state;
	assert_non_null(mkdtemp(spool));
	assert_int_equal(qstore_prepare(spool, (uid_t)-1, (gid_t)-1), 0);
	snprintf(path, sizeof path, "%s/status", spool);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof path, "%s/status/%s", spool, qid);

	assert_int_equal(qstatus_open(spool, qid, &st), 0);
	assert_int_equal(qstatus_append(&st, 0, "begin 0 user:bob "
	    "1.M1P1Q1.host,S=10,W=10"), 0);
	assert_int_equal(qstatus_append(&st, 0, "done 0 user:bob 2.0.0 "
	    "delivered 5 delivered to maildir"), 0);
	assert_int_equal(qstatus_append(&st, 0, "complete 0"), 0);
	assert_int_equal(qstatus_compact(&st), 0);	/* small: kept */
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_size, st.valid);
	for (int pass = 1; pass <= 40; pass++) {
		for (int r = 1; r <= 300; r++) {
			assert_int_equal(qstatus_append(&st, 0, "remote %d "
			    "remote:u%d@far.example deferred 4.4.1 %d "
			    "mx.far.example[192.0.2.1]:25 connect to "
			    "mx.far.example[192.0.2.1]:25: Connection refused",
			    r, r, pass), 0);
			assert_int_equal(qstatus_append(&st, 0, "defer %d "
			    "remote:u%d@far.example 4.4.1 %d pass\\x20%d", r, r,
			    pass, pass), 0);
		}
		if (pass == 20)
			assert_int_equal(qstatus_append(&st, 0, "warned 9"), 0);
		assert_int_equal(qstatus_append(&st, 0, "retry %d %d", pass,
		    pass + 60), 0);
	}
	/* Outcomes back after the last pass, not yet acted on. */
	assert_int_equal(qstatus_append(&st, 0, "remote 7 remote:u7@far.example "
	    "sent 2.0.0 1 mx.far.example[192.0.2.1]:25 250 ok"), 0);
	assert_int_equal(qstatus_append(&st, 0, "done 8 remote:u8@far.example "
	    "5.1.1 failed 1 no such user"), 0);
	assert_int_equal(qstatus_append(&st, 0, "complete 8"), 0);
	assert_int_equal(qstatus_sync(&st), 0);
	big = st.valid;
	assert_true(big > QSTATUS_COMPACT_AT);

	assert_int_equal(qstatus_load(spool, qid, &before), 0);
	assert_int_equal(qstatus_compact(&st), 0);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_size, st.valid);
	assert_true(sb.st_size < big / 10);
	assert_int_equal(qstatus_load(spool, qid, &after), 0);
	assert_same_status(&before, &after);
	assert_int_equal(after.retries, 40);
	assert_int_equal(after.nremotes, 1);
	assert_int_equal(after.nbegins, 0);	/* bob's is done */
	qstatus_close(&after);

	/* Appends go to the new file. */
	assert_int_equal(qstatus_append(&st, 1, "complete 7"), 0);
	qstatus_close(&st);
	assert_int_equal(qstatus_load(spool, qid, &after), 0);
	assert_true(qstatus_rcpt(&after, 7)->complete);
	assert_false(qstatus_rcpt(&before, 7)->complete);
	qstatus_close(&after);
	qstatus_close(&before);
	snprintf(path, sizeof path, "%s/status/%s.new", spool, qid);
	assert_int_equal(access(path, F_OK), -1);
	remove_spool(spool);
}

/* Commit a message of len octets as queue/QID without spare files (a
 * pattern that differs from block to block and with the QID's last
 * digit); return the queue file's path in path. */
static void
commit_message(const char *spool, const char *qid, size_t len, char *path,
    size_t pathsz)
{
	char env[256];
	unsigned char *body = malloc(len);
	struct qfile qf;
	int n;

	assert_non_null(body);
	for (size_t i = 0; i < len; i++)
		body[i] = (unsigned char)('a' + (i / 4096 + i + qid[15]) % 26);
	n = snprintf(env, sizeof env, QSTORE_VERSION_LINE "qid %s\n"
	    "from a@b.test\nrcpt c@d.test\n\n", qid);
	assert_int_equal(qstore_create(&qf, spool, qid, env, (size_t)n), 0);
	/* In pieces, as a session writes it. */
	for (size_t off = 0; off < len; off += 1000)
		qstore_write(&qf, body + off, len - off < 1000 ? len - off : 1000);
	assert_int_equal(qstore_commit(&qf), 0);
	free(body);
	snprintf(path, pathsz, "%s/queue/%s", spool, qid);
}

/* 0 if the queue file at path reads and checks, else -1 with why. */
static int
read_and_check(const char *path, char *why, size_t whysz)
{
	struct qenv e;
	int fd, rc;

	assert_true((fd = open(path, O_RDONLY)) != -1);
	rc = qenv_read(fd, &e, why, whysz);
	if (rc == 0) {
		rc = qenv_check_content(fd, &e, why, whysz);
		qenv_free(&e);
	}
	close(fd);
	return rc;
}

#define MANY_TARGETS	10000
#define MANY_PASSES	60
#define MANY_RCPTS	100

/* Target t's Maildir name at a pass. */
static void
many_name(char *dst, size_t dstsz, int pass, int t)
{
	snprintf(dst, dstsz, "%d.M%dP4242Q%d.mail.example.org,S=2048,W=2100",
	    1700000000 + pass, t, pass * MANY_TARGETS + t);
}

/* Aliases to 10,000 mailboxes on a full disk, over 60 passes: each pass
 * writes a begin and a defer for every mailbox (qrun.c, pass_local),
 * and a few get through at pass 10.  Opened and compacted as the queue
 * manager does at each pass, the file stays bounded: it keeps only the
 * latest begin per mailbox still to be done.  Each pass finds that one
 * (the name a crash would have left in new/), and the file reloads to
 * the same state. */
static void
test_status_compact_begins(void **state)
{
	char spool[] = "/tmp/postern-qstore-XXXXXX", path[PATH_MAX];
	char key[64], name[128];
	static const char qid[] = "0123456789ABCDE1";
	static const char why[] = "maildir: write tmp/: No space left on device";
	struct qstatus st, before, after;
	const struct qstatus_begin *b;
	struct stat sb;
	off_t most = 0, start = 0;
	int ndone = 0;

	(void)state;
	assert_non_null(mkdtemp(spool));
	assert_int_equal(qstore_prepare(spool, (uid_t)-1, (gid_t)-1), 0);
	snprintf(path, sizeof path, "%s/status", spool);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof path, "%s/status/%s", spool, qid);

	for (int pass = 1; pass <= MANY_PASSES; pass++) {
		assert_int_equal(qstatus_open(spool, qid, &st), 0);
		assert_int_equal(qstatus_compact(&st), 0);
		assert_int_equal(stat(path, &sb), 0);
		assert_int_equal(sb.st_size, st.valid);
		if (sb.st_size > start)
			start = sb.st_size;
		/* What a pass starts from: one begin per mailbox and one
		 * defer per recipient, never the history of the passes. */
		assert_true(sb.st_size < 2 * QSTATUS_COMPACT_AT);
		for (int t = 0; t < MANY_TARGETS; t++) {
			int rcpt = t % MANY_RCPTS;

			snprintf(key, sizeof key, "user:box%05d", t);
			if (qstatus_is_done(&st, key))
				continue;
			b = qstatus_find_begin(&st, key);
			if (pass == 1)
				assert_null(b);
			else {
				assert_non_null(b);
				many_name(name, sizeof name, pass - 1, t);
				assert_string_equal(b->name, name);
				assert_int_equal(b->rcpt, rcpt);
			}
			many_name(name, sizeof name, pass, t);
			assert_int_equal(qstatus_append(&st, 0, "begin %d %s %s",
			    rcpt, key, name), 0);
			if (pass == 10 && t % 1000 == 0) {
				assert_int_equal(qstatus_append(&st, 0, "done %d "
				    "%s 2.0.0 delivered %d delivered to maildir",
				    rcpt, key, pass), 0);
				ndone++;
			} else
				assert_int_equal(qstatus_append(&st, 0, "defer %d "
				    "%s 4.2.2 %d %s", rcpt, key, pass, why), 0);
		}
		assert_int_equal(qstatus_append(&st, 0, "retry %d %d", pass,
		    pass + 60), 0);
		assert_int_equal(qstatus_sync(&st), 0);
		if (st.valid > most)
			most = st.valid;
		qstatus_close(&st);
	}
	printf("status file of %d mailboxes over %d passes: at most %lld "
	    "octets, %lld after compaction\n", MANY_TARGETS, MANY_PASSES,
	    (long long)most, (long long)start);
	/* A compacted state and one pass's records, at most. */
	assert_true(most < 4 * QSTATUS_COMPACT_AT);

	assert_int_equal(qstatus_load(spool, qid, &before), 0);
	assert_int_equal(qstatus_open(spool, qid, &st), 0);
	assert_int_equal(qstatus_compact(&st), 0);
	assert_true(st.valid < before.valid / 2);
	assert_int_equal(qstatus_load(spool, qid, &after), 0);
	assert_same_status(&before, &after);
	assert_int_equal(after.nbegins, MANY_TARGETS - ndone);
	assert_int_equal(after.ndone, ndone);
	assert_int_equal(after.retries, MANY_PASSES);
	assert_int_equal(after.last_attempt, MANY_PASSES);
	assert_int_equal(after.next_retry, MANY_PASSES + 60);
	for (int r = 0; r < MANY_RCPTS; r++) {
		const struct qstatus_rcpt *x = qstatus_rcpt(&after, (size_t)r);

		assert_non_null(x);
		assert_false(x->complete);
		assert_string_equal(x->dsn, "4.2.2");
		assert_string_equal(x->why, why);
	}
	qstatus_close(&after);
	qstatus_close(&before);
	qstatus_close(&st);
	remove_spool(spool);
}

/* Put the 4 KiB block at off of donor over the same block of victim,
 * as a crash can leave it; what was there goes into was.  Returns the
 * victim open for writing, to put it back or spoil it further. */
static int
graft_block(const char *donor, const char *victim, off_t off,
    unsigned char was[4096])
{
	unsigned char block[4096];
	int fd;

	assert_true((fd = open(donor, O_RDONLY)) != -1);
	assert_int_equal(pread(fd, block, sizeof block, off), sizeof block);
	close(fd);
	assert_true((fd = open(victim, O_RDWR)) != -1);
	assert_int_equal(pread(fd, was, 4096, off), 4096);
	assert_memory_not_equal(block, was, sizeof block);
	assert_int_equal(pwrite(fd, block, sizeof block, off), sizeof block);
	return fd;
}

/* The seal ("content SIZE CRC ENVCRC", qstore.h) is filled in at
 * commit, in the buffer for a small message and in place for one larger
 * than the buffer, and it tells a whole file from one a crash cut short,
 * or with a block of zeros or of another message in it; a file of
 * version 2 (content sealed) is read as before, and one from before
 * seals unchecked; an envelope without its empty line is refused. */
static void
test_seal(void **state)
{
	char spool[] = "/tmp/postern-qstore-XXXXXX", small[PATH_MAX];
	char big[PATH_MAX], other[PATH_MAX], why[256];
	static const char old[] = "postern-queue 1\nqid 0000000000000003\n"
	    "from a@b.test\nrcpt c@d.test\n\nSubject: old\r\n\r\nbody\r\n";
	unsigned char mine[4096], zeros[4096] = { 0 };
	struct qfile qf;
	struct qenv e;
	struct stat st;
	int fd;

	(void)state;
	assert_non_null(mkdtemp(spool));
	assert_int_equal(qstore_prepare(spool, (uid_t)-1, (gid_t)-1), 0);
	commit_message(spool, "0000000000000001", 900, small, sizeof small);
	commit_message(spool, "0000000000000002", 100 * 1024, big, sizeof big);
	commit_message(spool, "0000000000000004", 100 * 1024, other,
	    sizeof other);
	assert_int_equal(read_and_check(small, why, sizeof why), 0);
	assert_int_equal(read_and_check(big, why, sizeof why), 0);
	assert_true((fd = open(big, O_RDONLY)) != -1);
	assert_int_equal(qenv_read(fd, &e, why, sizeof why), 0);
	assert_true(e.sealed);
	assert_int_equal(e.seal_size, 100 * 1024);
	assert_int_equal(e.size, 100 * 1024);
	qenv_free(&e);
	close(fd);

	/* A block of another message (the same offset in a file made the
	 * same way, but with other octets there), then zeros. */
	fd = graft_block(other, big, 8192, mine);
	assert_int_equal(read_and_check(big, why, sizeof why), -1);
	assert_non_null(strstr(why, "CRC-32"));
	assert_int_equal(pwrite(fd, zeros, sizeof zeros, 8192), sizeof zeros);
	assert_int_equal(read_and_check(big, why, sizeof why), -1);
	assert_non_null(strstr(why, "sealed with 102400 and"));
	/* Cut short: qenv_read itself says so, by the length. */
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(ftruncate(fd, st.st_size - 5000), 0);
	assert_int_equal(read_and_check(big, why, sizeof why), -1);
	assert_non_null(strstr(why, "sealed with 102400 (a crash"));
	close(fd);

	/* The placeholder never passes for a seal of a non-empty message. */
	assert_true((fd = open(small, O_RDWR)) != -1);
	assert_int_equal(pwrite(fd, "content 00000000000000000000 00000000 "
	    "00000000", 46, 65), 46);
	assert_int_equal(read_and_check(small, why, sizeof why), -1);
	assert_int_equal(pwrite(fd, "content 0000000000000000000x 00000000",
	    37, 65), 37);
	assert_int_equal(read_and_check(small, why, sizeof why), -1);
	assert_string_equal(why, "bad content record");
	/* Version 3 without its seal: the envelope's block is stale. */
	assert_int_equal(pwrite(fd, "x-stale 00000000000000000000 00000000",
	    37, 65), 37);
	assert_int_equal(read_and_check(small, why, sizeof why), -1);
	assert_non_null(strstr(why, "envelope without its seal"));
	/* Nor is a first line other than the version taken for one. */
	assert_int_equal(pwrite(fd, "qid 0000000000000001\npostern-queue 1\n",
	    37, 0), 37);
	assert_int_equal(read_and_check(small, why, sizeof why), -1);
	assert_string_equal(why, "envelope does not start with its version");
	close(fd);

	/* Version 2: the seal covers the content only, and the envelope is
	 * read as before; a second version record is not. */
	snprintf(small, sizeof small, "%s/queue/0000000000000006", spool);
	assert_true((fd = open(small, O_WRONLY | O_CREAT, 0600)) != -1);
	dprintf(fd, "postern-queue 2\nqid 0000000000000006\nfrom a@b.test\n"
	    "rcpt c@d.test\ncontent %020d %08lx\n\nhi\r\n", 4,
	    crc32(0, (const Bytef *)"hi\r\n", 4));
	close(fd);
	assert_int_equal(read_and_check(small, why, sizeof why), 0);
	assert_true((fd = open(small, O_RDWR)) != -1);
	assert_int_equal(pwrite(fd, "postern-queue 2\n", 16, 16), 16);
	assert_int_equal(read_and_check(small, why, sizeof why), -1);
	assert_string_equal(why, "second version record");
	close(fd);

	/* A queue file from before seals. */
	snprintf(small, sizeof small, "%s/queue/0000000000000003", spool);
	assert_true((fd = open(small, O_WRONLY | O_CREAT, 0600)) != -1);
	assert_int_equal(write(fd, old, sizeof old - 1), sizeof old - 1);
	close(fd);
	assert_int_equal(read_and_check(small, why, sizeof why), 0);

	assert_int_equal(qstore_create(&qf, spool, "0000000000000005",
	    "postern-queue 1\n", 16), -1);
	assert_int_equal(errno, EINVAL);
	remove_spool(spool);
}

/* Commit a message to 500 recipients, rcpt%03d@DOMAIN, with a short
 * content: its envelope spans several 4 KiB blocks. */
static void
commit_many(const char *spool, const char *qid, const char *domain,
    char *path, size_t pathsz)
{
	static const char body[] = "Subject: many\r\n\r\nhi\r\n";
	struct buf env;
	struct qfile qf;

	buf_init(&env, 64 * 1024);
	assert_int_equal(buf_printf(&env, QSTORE_VERSION_LINE "qid %s\n"
	    "from a@b.test\n", qid), 0);
	for (int i = 0; i < 500; i++)
		assert_int_equal(buf_printf(&env, "rcpt rcpt%03d@%s\n", i,
		    domain), 0);
	assert_int_equal(buf_printf(&env, "\n"), 0);
	assert_int_equal(qstore_create(&qf, spool, qid, env.data, env.len), 0);
	qstore_write(&qf, body, sizeof body - 1);
	assert_int_equal(qstore_commit(&qf), 0);
	buf_free(&env);
	snprintf(path, pathsz, "%s/queue/%s", spool, qid);
}

/* A crash can leave a block of an older file anywhere in a file linked
 * but not yet fsynced, the envelope's middle blocks among them: the seal
 * covers the envelope too, and such a file is refused, not read with
 * another message's recipients in it. */
static void
test_seal_envelope(void **state)
{
	char spool[] = "/tmp/postern-qstore-XXXXXX", mine[PATH_MAX];
	char other[PATH_MAX], why[256];
	unsigned char was[4096];
	int fd;

	(void)state;
	assert_non_null(mkdtemp(spool));
	assert_int_equal(qstore_prepare(spool, (uid_t)-1, (gid_t)-1), 0);
	commit_many(spool, "0000000000000011", "one.test", mine, sizeof mine);
	commit_many(spool, "0000000000000012", "two.test", other, sizeof other);
	assert_int_equal(read_and_check(mine, why, sizeof why), 0);
	assert_int_equal(read_and_check(other, why, sizeof why), 0);

	/* The other envelope's second block, at the same offset: whole
	 * records of the same length, each a recipient of the other. */
	fd = graft_block(other, mine, 4096, was);
	assert_int_equal(read_and_check(mine, why, sizeof why), -1);
	assert_non_null(strstr(why, "envelope with CRC-32"));
	/* Put back, it reads again. */
	assert_int_equal(pwrite(fd, was, sizeof was, 4096), sizeof was);
	assert_int_equal(read_and_check(mine, why, sizeof why), 0);
	close(fd);
	remove_spool(spool);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spares_and_commit),
		cmocka_unit_test(test_spread_directories),
		cmocka_unit_test(test_status_file),
		cmocka_unit_test(test_status_compact),
		cmocka_unit_test(test_status_compact_begins),
		cmocka_unit_test(test_seal),
		cmocka_unit_test(test_seal_envelope),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
