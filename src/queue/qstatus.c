/*
 * qstatus.c - per-message delivery records (see qstatus.h).  Runs in
 * the queue manager (read and write) and in `postern queue` (read).
 */
#include "queue/qstatus.h"
#include "queue/qstore.h"
#include "lib/buf.h"
#include "lib/fsio.h"
#include "lib/keyindex.h"
#include "lib/log.h"
#include "lib/strutil.h"
#include "lib/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define QSTATUS_RCPT_MAX	1000000

void
qstatus_key(char *dst, size_t dstsz, const char *kind, const char *target)
{
	size_t o = (size_t)snprintf(dst, dstsz, "%s:", kind);

	for (const char *p = target; *p && o + 5 < dstsz; p++) {
		unsigned char c = (unsigned char)*p;

		if (c <= 0x20 || c >= 0x7f || c == '\\')
			o += (size_t)snprintf(dst + o, dstsz - o, "\\x%02x", c);
		else
			dst[o++] = (char)c;
	}
	if (o < dstsz)
		dst[o] = '\0';
}

static struct qstatus_rcpt *
rcpt_slot(struct qstatus *st, unsigned long n)
{
	if (n >= QSTATUS_RCPT_MAX)
		return NULL;
	if (n >= st->nrcpts) {
		/* Allocated to the power of two at or above nrcpts: records
		 * come one recipient after another. */
		size_t have = st->nrcpts ? st->nrcpts : 1, cap = 1;

		while (cap < have)
			cap *= 2;
		if (n + 1 > cap || st->nrcpts == 0) {
			while (cap < n + 1)
				cap *= 2;
			st->rcpts = xreallocarray(st->rcpts, cap,
			    sizeof *st->rcpts);
		}
		memset(st->rcpts + st->nrcpts, 0,
		    (n + 1 - st->nrcpts) * sizeof *st->rcpts);
		st->nrcpts = n + 1;
	}
	return &st->rcpts[n];
}

/* Split off the next space-separated word; the rest stays in *p. */
static char *
word(char **p)
{
	char *w = *p, *sp;

	if (w == NULL)
		return NULL;
	if ((sp = strchr(w, ' ')) != NULL) {
		*sp = '\0';
		*p = sp + 1;
	} else
		*p = NULL;
	return w;
}

static const char *
done_key(const void *st, size_t i)
{
	return ((const struct qstatus *)st)->done[i];
}

static const char *
begin_key(const void *st, size_t i)
{
	return ((const struct qstatus *)st)->begins[i].key;
}

static const char *
remote_key(const void *st, size_t i)
{
	return ((const struct qstatus *)st)->remotes[i].key;
}

static void
remotes_clear(struct qstatus *st)
{
	for (size_t i = 0; i < st->nremotes; i++) {
		free(st->remotes[i].key);
		free(st->remotes[i].outcome);
		free(st->remotes[i].dsn);
		free(st->remotes[i].relay);
		free(st->remotes[i].why);
	}
	free(st->remotes);
	st->remotes = NULL;
	st->nremotes = 0;
	keyindex_free(&st->remote_index);
}

static void
apply_record(struct qstatus *st, char *line)
{
	char *p = line, *kind = word(&p), *n, *key;
	struct qstatus_rcpt *r;

	if (kind == NULL)
		return;
	if (strcmp(kind, "begin") == 0) {
		char *name;
		if ((n = word(&p)) == NULL || (key = word(&p)) == NULL ||
		    (name = word(&p)) == NULL)
			return;
		st->begins = xgrowarray(st->begins, st->nbegins,
		    sizeof *st->begins);
		st->begins[st->nbegins].rcpt = (unsigned)strtoul(n, NULL, 10);
		st->begins[st->nbegins].key = xstrdup(key);
		st->begins[st->nbegins].name = xstrdup(name);
		keyindex_put(&st->begin_index, st->nbegins++, begin_key, st);
	} else if (strcmp(kind, "done") == 0) {
		if ((n = word(&p)) == NULL || (key = word(&p)) == NULL)
			return;
		if (!qstatus_is_done(st, key)) {
			st->done = xgrowarray(st->done, st->ndone,
			    sizeof *st->done);
			st->done[st->ndone] = xstrdup(key);
			keyindex_put(&st->done_index, st->ndone++, done_key, st);
		}
	} else if (strcmp(kind, "complete") == 0) {
		if ((n = word(&p)) != NULL &&
		    (r = rcpt_slot(st, strtoul(n, NULL, 10))) != NULL)
			r->complete = 1;
	} else if (strcmp(kind, "defer") == 0) {
		char *dsn;
		if ((n = word(&p)) == NULL || (key = word(&p)) == NULL ||
		    (dsn = word(&p)) == NULL || word(&p) == NULL ||
		    (r = rcpt_slot(st, strtoul(n, NULL, 10))) == NULL)
			return;
		free(r->dsn);
		free(r->why);
		r->dsn = xstrdup(dsn);
		r->why = xstrdup(p ? p : "");
	} else if (strcmp(kind, "remote") == 0) {
		struct qstatus_remote *x;
		char *outcome, *dsn, *relay;
		if ((n = word(&p)) == NULL || (key = word(&p)) == NULL ||
		    (outcome = word(&p)) == NULL || (dsn = word(&p)) == NULL ||
		    word(&p) == NULL || (relay = word(&p)) == NULL)
			return;
		st->remotes = xgrowarray(st->remotes, st->nremotes,
		    sizeof *st->remotes);
		x = &st->remotes[st->nremotes++];
		x->rcpt = (unsigned)strtoul(n, NULL, 10);
		x->key = xstrdup(key);
		x->outcome = xstrdup(outcome);
		x->dsn = xstrdup(dsn);
		x->relay = xstrdup(relay);
		x->why = xstrdup(p ? p : "");
		keyindex_put(&st->remote_index, st->nremotes - 1, remote_key, st);
		st->nremote_records++;
	} else if (strcmp(kind, "retry") == 0) {
		char *t = word(&p), *next = word(&p);
		if (t == NULL || next == NULL)
			return;
		/* The pass that wrote it acted on every remote outcome. */
		remotes_clear(st);
		st->retries++;
		st->last_attempt = (time_t)strtoll(t, NULL, 10);
		st->next_retry = (time_t)strtoll(next, NULL, 10);
	} else if (strcmp(kind, "warned") == 0)
		st->warned = 1;
}

int
qstatus_load(const char *spool, const char *qid, struct qstatus *st)
{
	char *text, *line, *nl, *end;
	size_t len;

	memset(st, 0, sizeof *st);
	st->fd = -1;
	if ((size_t)snprintf(st->path, sizeof st->path, "%s/status/%s", spool,
	    qid) >= sizeof st->path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((text = read_file(st->path, QSTATUS_MAX, &len, NULL)) == NULL)
		return errno == ENOENT ? 0 : -1;
	/* Only whole records count: a torn last line was never synced, and
	 * on a file system without a journal a crash may leave a block of
	 * zeros where an append was (qstatus_open cuts both off). */
	if ((end = memchr(text, '\0', len)) != NULL)
		*end = '\0';
	for (line = text; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
		*nl = '\0';
		apply_record(st, line);
	}
	st->valid = line - text;
	free(text);
	return 0;
}

/*
 * A new status file.  Where the spool is spread (ext4 without a journal,
 * qstore.h) it is made unnamed in one of the spread directories and
 * linked as status/QID, so that its inode does not come from status/'s
 * block group, which holds every status file the queue has removed in
 * the last minutes and would make each create scan past them.  A file
 * made with O_CREAT gets its directory entry flushed by its first
 * fdatasync on that file system (ext4 marks it a new entry); a linked
 * one gets the directory ext4 finds through the file's names in the
 * dentry cache, which may be the unnamed one it was made as while that
 * descriptor is open (lib/fsio.h), so dir_unsynced asks the first sync
 * (or the close, if no record was synced) to flush status/.
 */
static int
qstatus_create(const char *spool, struct qstatus *st)
{
	int fd;

	/* Linked before anything is written: the first record's fdatasync
	 * writes the inode with its link count (fsio_publish_unnamed says
	 * why that matters), and the directory's entry follows it. */
	if ((fd = qstore_open_spread(spool)) != -1) {
		if (fsio_link_unnamed(fd, st->path) == 0 &&
		    fcntl(fd, F_SETFL, O_APPEND) == 0) {
			st->dir_unsynced = 1;
			return fd;
		}
		close(fd);
	}
	/* O_CREAT: on ext4 the first fdatasync writes the new entry too;
	 * elsewhere status/ must be fsynced (lib/fsio.h). */
	fd = open(st->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd != -1)
		st->dir_unsynced = !fsio_file_sync_covers_entry(fd);
	return fd;
}

/* After a successful fdatasync: the entry of a linked file, once. */
static int
qstatus_sync_dir(struct qstatus *st)
{
	char dir[PATH_MAX], *slash;

	if (!st->dir_unsynced)
		return 0;
	strlcpy(dir, st->path, sizeof dir);
	if ((slash = strrchr(dir, '/')) != NULL)
		*slash = '\0';
	if (fsync_dir(dir) == -1)
		return -1;
	st->dir_unsynced = 0;
	return 0;
}

int
qstatus_open(const char *spool, const char *qid, struct qstatus *st)
{
	struct stat sb;

	if (qstatus_load(spool, qid, st) == -1)
		return -1;
	if ((st->fd = open(st->path, O_WRONLY | O_APPEND | O_CLOEXEC)) == -1 &&
	    (errno != ENOENT || (st->fd = qstatus_create(spool, st)) == -1))
		return -1;
	/* A torn line, or zeros, after the last whole record: cut them
	 * off, or the next record would be read with them, a torn
	 * "complete 12" as "complete 1". */
	if (fstat(st->fd, &sb) == 0 && sb.st_size > st->valid &&
	    ftruncate(st->fd, st->valid) == -1) {
		int saved = errno;

		close(st->fd);
		st->fd = -1;
		errno = saved;
		return -1;
	}
	return 0;
}

int
qstatus_append(struct qstatus *st, int sync, const char *fmt, ...)
{
	char line[4096], copy[4096];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof line - 1, fmt, ap);
	va_end(ap);
	if (n < 0) {
		errno = EINVAL;
		return -1;
	}
	if ((size_t)n >= sizeof line - 1)
		n = sizeof line - 2;	/* only the reason text is cut */
	memcpy(copy, line, (size_t)n + 1);
	line[n] = '\n';
	if (write_full(st->fd, line, (size_t)n + 1) == -1) {
		/* A full disk may have taken part of it: no torn record in
		 * front of the next one (qstatus_open). */
		int saved = errno;

		if (ftruncate(st->fd, st->valid) == -1)
			log_warn("queue: status: cannot cut a partial record");
		errno = saved;
		return -1;
	}
	st->valid += n + 1;
	if (sync && (fdatasync(st->fd) == -1 || qstatus_sync_dir(st) == -1))
		return -1;
	apply_record(st, copy);
	return 0;
}

int
qstatus_sync(struct qstatus *st)
{
	return fdatasync(st->fd) == -1 ? -1 : qstatus_sync_dir(st);
}

/* The records that load to st's state: what was done and what is
 * pending, without the history of every pass. */
static int
compact_records(const struct qstatus *st, struct buf *b)
{
	int rc = 0;

	/*
	 * Of the begins, only the latest for each key not yet done.  A
	 * Maildir delivery that keeps failing (a full disk, a quota) gets
	 * a new begin at every pass; kept, they would be about half of
	 * what each pass adds, the file would never halve, and a message
	 * to thousands of such mailboxes would reach QSTATUS_MAX.  The
	 * older ones say nothing: qrun.c writes a begin only after
	 * maildir_has() found no file under the name of the latest one,
	 * while holding the message's lock, and only the pass that wrote a
	 * begin links a file under its name (names are unique).  So each
	 * older name was found missing when its successor was written, and
	 * cannot appear later; after a crash only the latest begin can name
	 * a delivered file, and it is kept: nothing is lost or delivered
	 * twice.  A done key is not delivered again and needs none (qrun.c
	 * asks qstatus_is_done before qstatus_find_begin).
	 */
	for (size_t i = 0; i < st->nbegins; i++) {
		const struct qstatus_begin *x = &st->begins[i];

		if (qstatus_find_begin(st, x->key) == x &&
		    !qstatus_is_done(st, x->key))
			rc |= buf_printf(b, "begin %u %s %s\n", x->rcpt,
			    x->key, x->name);
	}
	/* The recipient number and the rest of a done record are read by
	 * nobody: the key is what counts. */
	for (size_t i = 0; i < st->ndone; i++)
		rc |= buf_printf(b, "done - %s - compacted\n", st->done[i]);
	for (size_t i = 0; i < st->nrcpts; i++) {
		const struct qstatus_rcpt *r = &st->rcpts[i];

		if (r->complete)
			rc |= buf_printf(b, "complete %zu\n", i);
		else if (r->dsn)
			rc |= buf_printf(b, "defer %zu - %s 0 %s\n", i, r->dsn,
			    r->why ? r->why : "");
	}
	/* Each retry record counts one for the back-off, and clears the
	 * remote outcomes: those still pending come after. */
	for (unsigned i = 0; i < st->retries; i++)
		rc |= buf_printf(b, "retry %lld %lld\n",
		    (long long)st->last_attempt, (long long)st->next_retry);
	if (st->warned)
		rc |= buf_printf(b, "warned 0\n");
	for (size_t i = 0; i < st->nremotes; i++) {
		const struct qstatus_remote *x = &st->remotes[i];

		rc |= buf_printf(b, "remote %u %s %s %s 0 %s %s\n", x->rcpt,
		    x->key, x->outcome, x->dsn, x->relay, x->why);
	}
	return rc;
}

int
qstatus_compact(struct qstatus *st)
{
	char tmp[PATH_MAX + 8], dir[PATH_MAX], *slash;
	struct buf b;
	int fd = -1, saved;

	if (st->fd == -1 || st->valid < QSTATUS_COMPACT_AT)
		return 0;
	buf_init(&b, QSTATUS_MAX);
	if (compact_records(st, &b) == -1 || (off_t)b.len > st->valid / 2) {
		buf_free(&b);		/* nothing much to gain */
		return 0;
	}
	snprintf(tmp, sizeof tmp, "%s.new", st->path);	/* not a qid: */
	strlcpy(dir, st->path, sizeof dir);		/* no scan takes it */
	if ((slash = strrchr(dir, '/')) != NULL)
		*slash = '\0';
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND |
	    O_CLOEXEC, 0600)) == -1 ||
	    write_full(fd, b.data ? b.data : "", b.len) == -1 ||
	    fdatasync(fd) == -1 || rename(tmp, st->path) == -1)
		goto fail;
	/* Either file holds the same state: a crash before this fsync
	 * leaves one of them, both whole. */
	if (fsync_dir(dir) == -1)
		log_warn("queue: fsync %s", dir);
	close(st->fd);
	st->fd = fd;
	st->valid = (off_t)b.len;
	st->dir_unsynced = 0;
	buf_free(&b);
	return 0;
fail:
	saved = errno;
	if (fd != -1) {
		close(fd);
		unlink(tmp);
	}
	buf_free(&b);
	errno = saved;
	return -1;
}

void
qstatus_close(struct qstatus *st)
{
	/* A later pass opens the file as an existing one and would not
	 * know its entry was never flushed. */
	if (st->fd != -1 && st->dir_unsynced &&
	    (fdatasync(st->fd) == -1 || qstatus_sync_dir(st) == -1))
		log_warn("queue: flushing %s", st->path);
	if (st->fd != -1)
		close(st->fd);
	for (size_t i = 0; i < st->ndone; i++)
		free(st->done[i]);
	free(st->done);
	keyindex_free(&st->done_index);
	for (size_t i = 0; i < st->nbegins; i++) {
		free(st->begins[i].key);
		free(st->begins[i].name);
	}
	free(st->begins);
	keyindex_free(&st->begin_index);
	for (size_t i = 0; i < st->nrcpts; i++) {
		free(st->rcpts[i].dsn);
		free(st->rcpts[i].why);
	}
	free(st->rcpts);
	remotes_clear(st);
	memset(st, 0, sizeof *st);
	st->fd = -1;
}

int
qstatus_is_done(const struct qstatus *st, const char *key)
{
	return keyindex_find(&st->done_index, key, done_key, st) != SIZE_MAX;
}

const struct qstatus_begin *
qstatus_find_begin(const struct qstatus *st, const char *key)
{
	/* The latest attempt is the one that may have reached the box;
	 * through the index, since a pass asks for each of its local
	 * targets, and there may be tens of thousands. */
	size_t i = keyindex_find(&st->begin_index, key, begin_key, st);

	return i == SIZE_MAX ? NULL : &st->begins[i];
}

const struct qstatus_remote *
qstatus_find_remote(const struct qstatus *st, const char *key)
{
	size_t i = keyindex_find(&st->remote_index, key, remote_key, st);

	return i == SIZE_MAX ? NULL : &st->remotes[i];
}

const struct qstatus_rcpt *
qstatus_rcpt(const struct qstatus *st, size_t n)
{
	return n < st->nrcpts ? &st->rcpts[n] : NULL;
}
