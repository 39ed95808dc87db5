/*
 * cli_queue.c - `postern queue [-c FILE] list|flush|delete ID|hold ID|
 * release ID` (also `mailq`).  Runs as root or as the spool's owner.
 *
 * It never removes a message or writes a status file: those belong to
 * the queue manager (src/queue/README).  hold, release and delete are
 * renames between queue/, hold/ and delete/, made while holding the
 * message's lock, so the queue manager is never in the middle of
 * delivering a message that moves; it removes what lands in delete/.
 * flush signals every queue manager (SIGUSR2), each found through the
 * lock on its SPOOL/qmgr.I.pid.
 */
#include "admin/cli.h"
#include "conf/conf.h"
#include "lib/fsio.h"
#include "lib/strutil.h"
#include "lib/xalloc.h"
#include "queue/qpath.h"
#include "queue/qenv.h"
#include "queue/qid.h"
#include "queue/qmgr.h"
#include "queue/qstatus.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOCK_WAIT_MS	10000

struct qlist_item {
	char	 qid[QID_LEN + 1];
	int	 held;
};

static int
item_cmp(const void *a, const void *b)
{
	return strcmp(((const struct qlist_item *)a)->qid,
	    ((const struct qlist_item *)b)->qid);
}

static void
collect(const char *spool, const char *sub, int held,
    struct qlist_item **v, size_t *n)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d;

	(void)qpath_make(path, sizeof path, spool, sub, "");
	if ((d = opendir(path)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (!qid_valid(de->d_name))
			continue;
		*v = xreallocarray(*v, *n + 1, sizeof **v);
		(void)strlcpy((*v)[*n].qid, de->d_name, sizeof (*v)[*n].qid);
		(*v)[*n].held = held;
		(*n)++;
	}
	closedir(d);
}

/* One message, mailq style: id (with '!' when held), size, arrival,
 * sender; then each recipient still pending, with its last error. */
static int
list_one(const struct conf *c, const struct qlist_item *it, uint64_t *bytes)
{
	char path[PATH_MAX], why[256], date[32];
	struct qenv env;
	struct qstatus st;
	struct tm tm;
	int fd;

	(void)qpath_make(path, sizeof path, c->spool, it->held ? "hold" : "queue",
	    it->qid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return 0;		/* delivered meanwhile */
	if (qenv_read(fd, &env, why, sizeof why) == -1) {
		printf("%-17s (unreadable: %s)\n", it->qid, why);
		close(fd);
		return 0;
	}
	close(fd);
	if (qstatus_load(c->spool, it->qid, &st) == -1)
		memset(&st, 0, sizeof st);
	localtime_r(&env.arrival, &tm);
	strftime(date, sizeof date, "%a %b %e %H:%M:%S", &tm);
	printf("%s%c %9lld %s  %s\n", it->qid, it->held ? '!' : ' ',
	    (long long)env.size, date, env.from[0] ? env.from : "<>");
	if (it->held)
		printf("%27s(on hold: `postern queue release %s` to deliver)\n",
		    "", it->qid);
	for (size_t i = 0; i < env.nrcpts; i++) {
		const struct qstatus_rcpt *r = qstatus_rcpt(&st, i);

		if (r && r->complete)
			continue;
		if (r && r->why)
			printf("%27s(%s %s)\n", "", r->dsn, r->why);
		printf("%27s%s\n", "", env.rcpts[i]);
	}
	printf("\n");
	*bytes += (uint64_t)env.size;
	qstatus_close(&st);
	qenv_free(&env);
	return 1;
}

static int
queue_list(const struct conf *c)
{
	struct qlist_item *v = NULL;
	size_t n = 0, shown = 0;
	uint64_t bytes = 0;

	collect(c->spool, "queue", 0, &v, &n);
	collect(c->spool, "hold", 1, &v, &n);
	if (n == 0) {
		printf("Mail queue is empty\n");
		free(v);
		return 0;
	}
	qsort(v, n, sizeof *v, item_cmp);
	printf("%-17s %9s %-19s  %s\n", "-Queue ID-", "--Size--",
	    "--Arrival Time--", "-Sender/Recipient-------");
	for (size_t i = 0; i < n; i++)
		shown += (size_t)list_one(c, &v[i], &bytes);
	printf("-- %llu Kbytes in %zu Request%s.\n",
	    (unsigned long long)(bytes + 1023) / 1024, shown,
	    shown == 1 ? "" : "s");
	free(v);
	return 0;
}

/* The pid of the queue manager holding the lock on SPOOL/name, from
 * the kernel's view of the lock; -1 if none does. */
static pid_t
qmgr_pid(const struct conf *c, const char *name)
{
	char path[PATH_MAX];
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	int fd;

	(void)qpath_make(path, sizeof path, c->spool, name, "");
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	/* F_GETLK wants a descriptor open for the lock type asked about
	 * only on some systems; Linux accepts O_RDONLY. */
	if (fcntl(fd, F_GETLK, &fl) == -1 || fl.l_type == F_UNLCK) {
		close(fd);
		return -1;
	}
	close(fd);
	return fl.l_pid;
}

/* Is name "qmgr.I.pid" (QMGR_PIDFILE_FMT)?  Every one found is
 * asked, whatever queue-managers says now: after a reload that lowered
 * it, an old queue manager may still be finishing its work. */
static int
qmgr_pidfile_name(const char *name)
{
	unsigned i;
	char again[32];

	if (sscanf(name, QMGR_PIDFILE_FMT, &i) != 1 || i >= QMGR_MAX)
		return 0;
	snprintf(again, sizeof again, QMGR_PIDFILE_FMT, i);
	return strcmp(again, name) == 0;
}

static int
queue_flush(const struct conf *c)
{
	struct dirent *de;
	DIR *d;
	int signalled = 0, rc = 0;

	if ((d = opendir(c->spool)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			pid_t pid;

			if (!qmgr_pidfile_name(de->d_name) ||
			    (pid = qmgr_pid(c, de->d_name)) <= 0)
				continue;
			if (kill(pid, SIGUSR2) == -1) {
				fprintf(stderr, "postern: cannot signal the "
				    "queue manager (pid %d): %s\n", (int)pid,
				    strerror(errno));
				rc = EX_NOPERM;
				continue;
			}
			printf("postern: queue flush requested (queue manager "
			    "pid %d)\n", (int)pid);
			signalled++;
		}
		closedir(d);
	}
	if (signalled == 0 && rc == 0) {
		fprintf(stderr, "postern: the queue manager is not running "
		    "(spool %s); queued mail is retried when it starts\n",
		    c->spool);
		return EX_UNAVAILABLE;
	}
	return rc;
}

/* Move SPOOL/from/ID to SPOOL/to/ID under the message's lock. */
static int
queue_move(const struct conf *c, const char *qid, const char *from,
    const char *to)
{
	char src[PATH_MAX], dst[PATH_MAX], dir[PATH_MAX];
	int fd, waited = 0;

	(void)qpath_make(src, sizeof src, c->spool, from, qid);
	(void)qpath_make(dst, sizeof dst, c->spool, to, qid);
	if ((fd = open(src, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	/* The queue manager holds it only for one delivery pass. */
	while (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno != EWOULDBLOCK || waited >= LOCK_WAIT_MS) {
			close(fd);
			errno = EBUSY;
			return -1;
		}
		usleep(50 * 1000);
		waited += 50;
	}
	if (renameat2(AT_FDCWD, src, AT_FDCWD, dst, RENAME_NOREPLACE) == -1) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	(void)qpath_make(dir, sizeof dir, c->spool, to, "");
	(void)fsync_dir(dir);
	(void)qpath_make(dir, sizeof dir, c->spool, from, "");
	(void)fsync_dir(dir);
	close(fd);
	return 0;
}

static int
queue_action(const struct conf *c, const char *verb, const char *qid)
{
	int rc;

	if (!qid_valid(qid)) {
		fprintf(stderr, "postern: '%s' is not a queue id (16 upper-case "
		    "hex digits; see `postern queue list`)\n", qid);
		return EX_USAGE;
	}
	if (strcmp(verb, "hold") == 0)
		rc = queue_move(c, qid, "queue", "hold");
	else if (strcmp(verb, "release") == 0)
		rc = queue_move(c, qid, "hold", "queue");
	else {
		rc = queue_move(c, qid, "queue", "delete");
		if (rc == -1 && errno == ENOENT)
			rc = queue_move(c, qid, "hold", "delete");
	}
	if (rc == -1) {
		if (errno == ENOENT)
			fprintf(stderr, "postern: %s: no such message%s\n", qid,
			    strcmp(verb, "release") == 0 ? " on hold" :
			    strcmp(verb, "hold") == 0 ? " in the queue" : "");
		else
			fprintf(stderr, "postern: %s %s: %s\n", verb, qid,
			    errno == EBUSY ? "the message is busy; try again" :
			    strerror(errno));
		return errno == ENOENT ? EX_DATAERR : EX_TEMPFAIL;
	}
	printf("postern: %s %s\n", qid, strcmp(verb, "hold") == 0 ? "on hold" :
	    strcmp(verb, "release") == 0 ? "released" : "deleted");
	return 0;
}

int
cli_queue(int argc, char **argv, const char *conf_path)
{
	struct conf c;
	int rc;

	if (argc < 1 || (strcmp(argv[0], "list") == 0 && argc != 1) ||
	    (strcmp(argv[0], "flush") == 0 && argc != 1) ||
	    ((strcmp(argv[0], "delete") == 0 || strcmp(argv[0], "hold") == 0 ||
	    strcmp(argv[0], "release") == 0) && argc != 2) ||
	    (strcmp(argv[0], "list") && strcmp(argv[0], "flush") &&
	    strcmp(argv[0], "delete") && strcmp(argv[0], "hold") &&
	    strcmp(argv[0], "release"))) {
		fprintf(stderr, "usage: postern queue [-c FILE] list|flush|"
		    "delete ID|hold ID|release ID\n");
		return EX_USAGE;
	}
	if (conf_load(conf_path, &c, stderr) != 0) {
		conf_free(&c);
		return EX_CONFIG;
	}
	if (strcmp(argv[0], "list") == 0)
		rc = queue_list(&c);
	else if (strcmp(argv[0], "flush") == 0)
		rc = queue_flush(&c);
	else
		rc = queue_action(&c, argv[0], argv[1]);
	conf_free(&c);
	return rc;
}
