/*
 * qstore.c - the spool writer.  Durability rules (src/queue/README):
 * the file sealed, linked into queue/ and fsynced (or, where there are
 * no unnamed files, fsynced and renamed into queue/), then queue/
 * fsynced unless the file's fsync already made the entry durable
 * (ext4), and only then does the session answer 250.
 *
 * A message being received is an unnamed file (O_TMPFILE) in incoming/
 * where the file system allows it: no directory entry is made for it
 * until it is whole, so the commit costs one link into queue/ instead
 * of an entry in incoming/ (flushed again by the file's own fdatasync
 * on some file systems) plus a rename across directories, which
 * serialises on the file system's rename lock.  The file is linked
 * before it is on disk, so that one fsync writes its data and its new
 * link count together; its seal (qstore.h) is what tells a file that a
 * crash caught in between.  After a crash an unnamed file has no name
 * to clean up: the file system frees it (the journal's orphan list, or
 * fsck where there is no journal).  Where unnamed files do not work
 * (lib/fsio.h), incoming/QID is a named file.
 */
#include "queue/qstore.h"
#include "queue/qpath.h"
#include "queue/qpool.h"
#include "lib/fsio.h"
#include "lib/log.h"
#include "lib/strutil.h"
#include "lib/xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/*
 * On ext4 without a journal, files are made in turn in incoming/0 ..
 * incoming/QSTORE_SPREAD-1, which qstore_prepare places apart from each
 * other (fsio_spread_subdirs): ext4 takes a new file's inode from its
 * directory's block group, so the files, and the inodes the queue later
 * frees, are spread over that many groups, and the scan past recently
 * freed inodes (fsio_ext4_without_journal) is up to that much shorter.
 * Whether the spool is spread is asked once per process (threads that
 * ask at the same time get the same answer); -1 until then.
 */
static _Atomic int spread_on = -1;
static _Atomic unsigned spread_next;	/* the directory for the next file */

int
qstore_open_spread(const char *spool)
{
	char sub[32], path[PATH_MAX];

	if (spread_on == -1) {
		spread_next = (unsigned)getpid();	/* processes start apart */
		spread_on = fsio_ext4_without_journal(spool, NULL, 0);
	}
	if (!spread_on) {
		errno = EOPNOTSUPP;
		return -1;
	}
	snprintf(sub, sizeof sub, "incoming/%u", spread_next++ % QSTORE_SPREAD);
	if (qpath_make(path, sizeof path, spool, sub, "") == -1)
		return -1;
	return fsio_open_unnamed(path, 0600);
}

/* The pool's maker: in the next spread directory, else in incoming/. */
static int
qstore_make_spare(void *spool)
{
	char path[PATH_MAX];
	int fd;

	if ((fd = qstore_open_spread(spool)) != -1)
		return fd;
	if (qpath_make(path, sizeof path, spool, "incoming", "") == -1)
		return -1;
	return fsio_open_unnamed(path, 0600);
}

int
qstore_spares_start(const char *spool, unsigned n)
{
	static char pool_spool[PATH_MAX];
	char path[PATH_MAX];

	/* The same name qstore_create asks the pool for. */
	if (qpath_make(path, sizeof path, spool, "incoming", "") == -1 ||
	    strlcpy(pool_spool, spool, sizeof pool_spool) >= sizeof pool_spool)
		return -1;
	return qpool_start(path, qstore_make_spare, pool_spool, n);
}

void
qstore_spares_stop(void)
{
	qpool_stop();
}

static void
qstore_flush(struct qfile *qf)
{
	if (qf->buflen && !qf->err && write_full(qf->fd, qf->buf, qf->buflen) == -1)
		qf->err = errno;
	qf->flushed += (off_t)qf->buflen;
	qf->buflen = 0;
}

/* Append octets to the file, through the buffer. */
static void
qstore_put(struct qfile *qf, const void *p, size_t n)
{
	if (qf->err)
		return;
	if (qf->buflen + n > QSTORE_BUFSZ)
		qstore_flush(qf);
	if (n >= QSTORE_BUFSZ) {
		if (!qf->err && write_full(qf->fd, p, n) == -1)
			qf->err = errno;
		qf->flushed += (off_t)n;
		return;
	}
	memcpy(qf->buf + qf->buflen, p, n);
	qf->buflen += n;
}

static void
qstore_seal_format(char seal[QSTORE_SEAL_LEN + 1], uint64_t size,
    uint32_t crc, uint32_t env_crc)
{
	snprintf(seal, QSTORE_SEAL_LEN + 1, QSTORE_SEAL_FMT,
	    (unsigned long long)size, (unsigned long)crc,
	    (unsigned long)env_crc);
}

int
qstore_create(struct qfile *qf, const char *spool, const char *qid,
    const char *head, size_t len)
{
	char path[PATH_MAX], seal[QSTORE_SEAL_LEN + 1];
	const char *envend;
	size_t envlen;
	int saved;

	memset(qf, 0, sizeof *qf);
	qf->fd = -1;
	if ((envend = memmem(head, len, "\n\n", 2)) == NULL) {
		errno = EINVAL;			/* no end of envelope */
		return -1;
	}
	envlen = (size_t)(envend - head) + 2;
	if (strlcpy(qf->spool, spool, sizeof qf->spool) >= sizeof qf->spool ||
	    qpath_make(path, sizeof path, spool, "incoming", "") == -1) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strlcpy(qf->qid, qid, sizeof qf->qid);
	if ((qf->fd = qpool_take(path)) == -1)
		qf->fd = fsio_open_unnamed(path, 0600);
	qf->unnamed = qf->fd != -1;
	if (qf->fd == -1) {
		if (qpath_make(path, sizeof path, spool, "incoming", qid) == -1)
			return -1;
		qf->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		    0600);
	}
	if (qf->fd == -1)
		return -1;
	qf->buf = xmalloc(QSTORE_BUFSZ);
	/* The envelope waits in the buffer with the first octets of the
	 * message: a message that fits is then one write, at commit, on
	 * the commit thread, and the file's times are updated once. */
	qstore_put(qf, head, envlen - 1);
	qf->seal_at = qf->flushed + (off_t)qf->buflen;
	/* Every octet before the seal, so that a block of an older file
	 * in a long envelope tells as one in the content does. */
	qf->env_crc = (uint32_t)crc32_z(0L, (const Bytef *)head, envlen - 1);
	qstore_seal_format(seal, 0, 0, 0);
	qstore_put(qf, seal, QSTORE_SEAL_LEN);
	qstore_put(qf, "\n", 1);
	qstore_write(qf, head + envlen, len - envlen);
	if (qf->err) {
		saved = qf->err;
		qstore_abort(qf);
		errno = saved;
		return -1;
	}
	return 0;
}

void
qstore_write(struct qfile *qf, const void *p, size_t n)
{
	qf->size += n;
	if (qf->err)
		return;
	qf->crc = (uint32_t)crc32_z(qf->crc, p, n);
	qstore_put(qf, p, n);
}

/* Fill in the seal: in the buffer if it is still there, else in the
 * file (it is never split: qstore_put buffers it whole). */
static void
qstore_seal(struct qfile *qf)
{
	char seal[QSTORE_SEAL_LEN + 1];
	ssize_t n;

	if (qf->err)
		return;
	qstore_seal_format(seal, qf->size, qf->crc, qf->env_crc);
	if (qf->seal_at >= qf->flushed) {
		memcpy(qf->buf + (qf->seal_at - qf->flushed), seal,
		    QSTORE_SEAL_LEN);
		return;
	}
	do
		n = pwrite(qf->fd, seal, QSTORE_SEAL_LEN, qf->seal_at);
	while (n == -1 && errno == EINTR);
	if (n != (ssize_t)QSTORE_SEAL_LEN)
		qf->err = n == -1 ? errno : EIO;
}

/*
 * Group commit of the directory flush.  Commits run on several threads;
 * each one, once its rename is done, joins the open batch of its
 * directory.  One member of a batch (whoever finds no flush running)
 * closes it and fsyncs the directory once for all of them; the others
 * wait for that result.  A batch is closed only after all its members
 * have renamed, so the one fsync covers every rename in it, and
 * batches are flushed one after another.  Commits that arrive while a
 * flush runs form the next batch: under load one directory fsync
 * serves many messages instead of each paying its own.
 */
struct dsync_batch {
	int		 done, rc, err;
	unsigned	 refs;
};

static struct dsync_dir {
	char		 path[PATH_MAX];
	int		 fd;		/* kept open: -1 until first used */
	int		 syncing;
	struct dsync_batch *open;
} dsync_dirs[4] = { { .fd = -1 }, { .fd = -1 }, { .fd = -1 }, { .fd = -1 } };

/* The flush itself, by the batch's leader, outside the lock.  The
 * directory stays open for the next batches: a spool directory is never
 * replaced while the process runs. */
static int
dsync_flush(struct dsync_dir *d)
{
	if (d->fd == -1 && (d->fd = open(d->path, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1)
		return -1;
	return fsync(d->fd);
}
static pthread_mutex_t dsync_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t dsync_cond = PTHREAD_COND_INITIALIZER;

static int
qstore_sync_dir(const char *dir)
{
	struct dsync_dir *d = NULL;
	struct dsync_batch *b;
	int rc, err;

	pthread_mutex_lock(&dsync_lock);
	for (size_t i = 0; i < sizeof dsync_dirs / sizeof dsync_dirs[0]; i++)
		if (strcmp(dsync_dirs[i].path, dir) == 0 ||
		    (dsync_dirs[i].path[0] == '\0' &&
		    strlcpy(dsync_dirs[i].path, dir, sizeof dsync_dirs[i].path) <
		    sizeof dsync_dirs[i].path)) {
			d = &dsync_dirs[i];
			break;
		}
	if (d == NULL) {
		/* More directories than slots: flush alone. */
		pthread_mutex_unlock(&dsync_lock);
		return fsync_dir(dir);
	}
	if ((b = d->open) == NULL)
		b = d->open = xcalloc(1, sizeof *b);
	b->refs++;
	while (!b->done) {
		if (!d->syncing && d->open == b) {
			d->syncing = 1;
			d->open = NULL;		/* later arrivals: next batch */
			pthread_mutex_unlock(&dsync_lock);
			rc = dsync_flush(d);
			err = errno;
			pthread_mutex_lock(&dsync_lock);
			b->rc = rc;
			b->err = err;
			b->done = 1;
			d->syncing = 0;
			pthread_cond_broadcast(&dsync_cond);
			break;
		}
		pthread_cond_wait(&dsync_cond, &dsync_lock);
	}
	rc = b->rc;
	err = b->err;
	if (--b->refs == 0)
		free(b);
	pthread_mutex_unlock(&dsync_lock);
	errno = err;
	return rc;
}

int
qstore_commit(struct qfile *qf)
{
	char from[PATH_MAX], to[PATH_MAX], dir[PATH_MAX];
	int fd, saved, dir_synced = 0;

	qstore_seal(qf);
	qstore_flush(qf);
	if (qf->err) {
		errno = qf->err;
		goto tempfail;
	}
	/* A named file is renamed into place, so it must be whole on disk
	 * first; an unnamed one is fsynced after its link (below). */
	if (!qf->unnamed && fdatasync(qf->fd) == -1)
		goto tempfail;
	if (qpath_make(to, sizeof to, qf->spool, qf->hold ? "hold" : "queue",
	    qf->qid) == -1 || qpath_make(dir, sizeof dir, qf->spool,
	    qf->hold ? "hold" : "queue", "") == -1)
		goto tempfail;
	if (qf->unnamed) {
		/* Linked first, then one fsync writes the data and the
		 * new link count together (fsio.h); until it returns, a
		 * crash may leave queue/QID short or with stale blocks,
		 * which its seal tells.  linkat, like the rename below,
		 * never replaces a file.  On ext4 that fsync also makes
		 * the entry durable, and queue/ need not be synced. */
		dir_synced = fsio_file_sync_covers_entry(qf->fd);
		fd = qf->fd;
		qf->fd = -1;
		if (fsio_publish_unnamed(fd, to) == -1)
			goto tempfail_closed;
	} else {
		if (close(qf->fd) == -1) {
			qf->fd = -1;
			goto tempfail;
		}
		qf->fd = -1;
		if (qpath_make(from, sizeof from, qf->spool, "incoming",
		    qf->qid) == -1)
			goto tempfail;
		/* Never replace a queued message, even if ids ever collided. */
		if (renameat2(AT_FDCWD, from, AT_FDCWD, to,
		    RENAME_NOREPLACE) == -1)
			goto tempfail;
	}
	if (!dir_synced && qstore_sync_dir(dir) == -1) {
		/* The rename may or may not survive a crash; the client will
		 * get a 4xx and retry, so take the message back out. */
		saved = errno;
		unlink(to);
		errno = saved;
		goto tempfail_closed;
	}
	free(qf->buf);
	qf->buf = NULL;
	return 0;
tempfail:
	saved = errno;
	qstore_abort(qf);
	errno = saved;
	return -1;
tempfail_closed:
	saved = errno;
	free(qf->buf);
	qf->buf = NULL;
	errno = saved;
	return -1;
}

void
qstore_abort(struct qfile *qf)
{
	char path[PATH_MAX];

	if (qf->fd != -1) {
		close(qf->fd);
		qf->fd = -1;
	}
	/* An unnamed file is gone with its last descriptor. */
	if (!qf->unnamed &&
	    qpath_make(path, sizeof path, qf->spool, "incoming", qf->qid) == 0)
		unlink(path);
	free(qf->buf);
	qf->buf = NULL;
}

/*
 * On ext4 without a journal, incoming/0 .. incoming/QSTORE_SPREAD-1 for
 * the spare files (qpool.h), placed apart: incoming/ is marked first.
 * Only there: with a journal the allocator does not scan, and files in
 * many block groups would make each journal commit write more blocks.
 * Directories made while the file system had no journal stay, unused.
 */
static int
qstore_prepare_spread(const char *spool, uid_t uid, gid_t gid)
{
	char path[PATH_MAX], sub[32];

	if (!fsio_ext4_without_journal(spool, NULL, 0))
		return 0;
	if (qpath_make(path, sizeof path, spool, "incoming", "") == -1)
		return -1;
	if (fsio_spread_subdirs(path) == -1)
		log_warn("queue: cannot mark %s to spread its directories", path);
	for (unsigned k = 0; k < QSTORE_SPREAD; k++) {
		snprintf(sub, sizeof sub, "incoming/%u", k);
		if (qpath_mkdir(spool, sub, uid, gid) == -1)
			return -1;
	}
	return 0;
}

int
qstore_prepare(const char *spool, uid_t uid, gid_t gid)
{
	static const char *dirs[] = { "incoming", "queue" };
	char path[PATH_MAX];
	DIR *d;
	struct dirent *de;

	if (mkdir_p(spool, 0755) == -1) {
		log_warn("queue: mkdir %s", spool);
		return -1;
	}
	for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
		if (qpath_mkdir(spool, dirs[i], uid, gid) == -1)
			return -1;
	}
	if (qstore_prepare_spread(spool, uid, gid) == -1)
		return -1;
	/* S1 files were never acknowledged: a crash leaves them behind.
	 * The spread directories only ever hold unnamed files. */
	if (qpath_make(path, sizeof path, spool, "incoming", "") == -1 ||
	    (d = opendir(path)) == NULL) {
		log_warn("queue: opendir %s", path);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		char file[PATH_MAX];

		if (de->d_name[0] == '.' || de->d_type == DT_DIR)
			continue;
		if (qpath_make(file, sizeof file, spool, "incoming", de->d_name) == 0 &&
		    unlink(file) == 0)
			log_info("queue: removed unfinished incoming/%s",
			    de->d_name);
	}
	closedir(d);
	return 0;
}
