/*
 * maildir_read.c - the reading side of a Maildir, for POP3 (see
 * maildir_read.h).
 *
 * One session per mailbox: an flock(2) on <box>/postern-pop3.lock.  The
 * lock belongs to the open file, so two sessions in one worker exclude
 * each other as well as two workers do, and it goes away with the
 * process if a worker dies.  Delivery takes no lock: it only ever adds
 * files to new/, which a session sees at its next login.
 *
 * Deleting is unlink(2) at QUIT, then fsync(2) of cur/, before the +OK:
 * a connection that drops before QUIT deletes nothing.
 */
#include "pop3/maildir_read.h"
#include "deliver/local_maildir.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "pop3/pop3_stuff.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

void
maildir_uid(const char *name, char uid[MAILDIR_UID_MAX + 1])
{
	static const char hex[] = "0123456789abcdef";
	size_t n = strcspn(name, ":");
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int plain = n > 0 && n <= MAILDIR_UID_MAX;

	for (size_t i = 0; plain && i < n; i++)
		if ((unsigned char)name[i] < 0x21 || (unsigned char)name[i] > 0x7e)
			plain = 0;
	if (plain) {
		memcpy(uid, name, n);
		uid[n] = '\0';
		return;
	}
	/* A long host name makes a long unique name; its digest is as
	 * stable as the name itself. */
	if (EVP_Digest(name, n, md, &mdlen, EVP_sha256(), NULL) != 1)
		mdlen = 0;
	for (unsigned i = 0; i < mdlen && 2 * i + 2 <= MAILDIR_UID_MAX; i++) {
		uid[2 * i] = hex[md[i] >> 4];
		uid[2 * i + 1] = hex[md[i] & 15];
	}
	uid[mdlen ? 2 * mdlen : 0] = '\0';
	if (mdlen == 0)
		strcpy(uid, "0");
}

/* Maildir readers move what is in new/ to cur/ with the info suffix
 * ":2," (no flags yet).  RENAME_NOREPLACE: a name that somehow exists
 * in cur/ already stays in new/ rather than replace a message. */
static void
maildir_box_take_new(struct maildir_box *b, int newfd)
{
	DIR *d;
	struct dirent *de;
	size_t moved = 0;
	int fd = dup(newfd);

	if (fd == -1 || (d = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		log_warn("pop3: maildir new/");
		return;
	}
	while ((de = readdir(d)) != NULL && moved < MAILDIR_READ_MAX) {
		char target[NAME_MAX + 1];

		if (de->d_name[0] == '.')
			continue;
		if ((size_t)snprintf(target, sizeof target, "%s%s", de->d_name,
		    strchr(de->d_name, ':') ? "" : ":2,") >= sizeof target)
			continue;
		if (renameat2(newfd, de->d_name, b->curfd, target,
		    RENAME_NOREPLACE) == -1) {
			if (errno != ENOENT)
				log_warn("pop3: maildir rename new/%s", de->d_name);
			continue;
		}
		moved++;
	}
	closedir(d);
}

static int
maildir_entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct maildir_entry *)a)->name,
	    ((const struct maildir_entry *)b)->name);
}

/* The W= tag of a Maildir++ name (the size with CRLF line ends), in
 * the part before ':': 0 and *w, or -1 when there is none. */
static int
maildir_name_w(const char *name, uint64_t *w)
{
	size_t n = strcspn(name, ":");
	const char *t;

	for (t = name; (t = memchr(t, ',', n - (size_t)(t - name))) != NULL;
	    t++) {
		char *end;
		unsigned long long v;

		if (t[1] != 'W' || t[2] != '=' || !isdigit((unsigned char)t[3]))
			continue;
		errno = 0;
		v = strtoull(t + 3, &end, 10);
		if (errno == 0 && (*end == ',' || *end == ':' || *end == '\0')) {
			*w = v;
			return 0;
		}
	}
	return -1;
}

/* The size RETR sends for a file without a W= tag (written by another
 * program: its lines may end in a bare LF), by reading it; the size on
 * disk if it cannot be read (RETR will say why). */
static uint64_t
maildir_count_size(int dirfd, const char *name, uint64_t on_disk)
{
	struct pop3_size z;
	struct stat st;
	char buf[64 * 1024];
	ssize_t n;
	int fd;

	if ((fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC)) == -1)
		return on_disk;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		close(fd);
		return on_disk;
	}
	pop3_size_init(&z);
	while ((n = read(fd, buf, sizeof buf)) != 0) {
		if (n == -1) {
			if (errno == EINTR)
				continue;
			close(fd);
			return on_disk;
		}
		pop3_size_feed(&z, buf, (size_t)n);
	}
	close(fd);
	return pop3_size_finish(&z);
}

/*
 * While scanning, b->msgs is a max-heap by name (the newest on top), so
 * that a mailbox over MAILDIR_READ_MAX keeps its oldest messages, as a
 * POP3 client that downloads and deletes expects, whatever order the
 * directory lists them in.
 */
static void
heap_sift_down(struct maildir_entry *h, size_t n, size_t i)
{
	for (;;) {
		size_t big = i, l = 2 * i + 1, r = l + 1;
		struct maildir_entry t;

		if (l < n && strcmp(h[l].name, h[big].name) > 0)
			big = l;
		if (r < n && strcmp(h[r].name, h[big].name) > 0)
			big = r;
		if (big == i)
			return;
		t = h[i];
		h[i] = h[big];
		h[big] = t;
		i = big;
	}
}

static void
heap_sift_up(struct maildir_entry *h, size_t i)
{
	while (i > 0 && strcmp(h[(i - 1) / 2].name, h[i].name) < 0) {
		struct maildir_entry t = h[i];

		h[i] = h[(i - 1) / 2];
		h[(i - 1) / 2] = t;
		i = (i - 1) / 2;
	}
}

static int
maildir_box_scan(struct maildir_box *b)
{
	DIR *d;
	struct dirent *de;
	size_t cap = 0;
	int fd = dup(b->curfd);

	if (fd == -1 || (d = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		struct maildir_entry *e;
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		if (fstatat(b->curfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
		    !S_ISREG(st.st_mode))
			continue;
		if (b->nmsgs == MAILDIR_READ_MAX) {
			/* Full: the newest of them all stays out. */
			b->skipped++;
			if (strcmp(de->d_name, b->msgs[0].name) >= 0)
				continue;
			free(b->msgs[0].name);
			b->msgs[0].name = xstrdup(de->d_name);
			b->msgs[0].size = (uint64_t)st.st_size;
			heap_sift_down(b->msgs, b->nmsgs, 0);
			continue;
		}
		if (b->nmsgs == cap) {
			cap = cap ? cap * 2 : 64;
			b->msgs = xreallocarray(b->msgs, cap, sizeof *b->msgs);
		}
		e = &b->msgs[b->nmsgs++];
		e->name = xstrdup(de->d_name);
		e->size = (uint64_t)st.st_size;		/* on disk, for now */
		heap_sift_up(b->msgs, b->nmsgs - 1);
	}
	closedir(d);
	if (b->nmsgs > 1)
		qsort(b->msgs, b->nmsgs, sizeof *b->msgs, maildir_entry_cmp);
	/* Only the messages kept are sized (a read for those without a
	 * W= tag) and named. */
	for (size_t i = 0; i < b->nmsgs; i++) {
		struct maildir_entry *e = &b->msgs[i];

		if (maildir_name_w(e->name, &e->size) == -1)
			e->size = maildir_count_size(b->curfd, e->name, e->size);
		e->deleted = 0;
		maildir_uid(e->name, e->uid);
	}
	return 0;
}

enum maildir_open_result
maildir_box_open(struct maildir_box *b, const char *mailboxes,
    const char *user)
{
	char box[PATH_MAX], path[PATH_MAX];
	int newfd = -1, saved;

	memset(b, 0, sizeof *b);
	b->curfd = b->lockfd = -1;
	/* Names come from the users file; none may leave <mailboxes>. */
	if (user[0] == '\0' || user[0] == '.' || strchr(user, '/') != NULL) {
		errno = EINVAL;
		return MAILDIR_OPEN_FAIL;
	}
	if ((size_t)snprintf(box, sizeof box, "%s/%s", mailboxes, user) >=
	    sizeof box || (size_t)snprintf(path, sizeof path, "%s/%s", box,
	    MAILDIR_LOCK_NAME) >= sizeof path) {
		errno = ENAMETOOLONG;
		return MAILDIR_OPEN_FAIL;
	}
	/* A user without mail yet gets an empty box, so that the lock
	 * file has a place. */
	if (maildir_prepare(box) == -1)
		return MAILDIR_OPEN_FAIL;
	if ((b->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
	    0600)) == -1)
		return MAILDIR_OPEN_FAIL;
	if (flock(b->lockfd, LOCK_EX | LOCK_NB) == -1) {
		saved = errno;
		close(b->lockfd);
		b->lockfd = -1;
		errno = saved;
		return saved == EWOULDBLOCK ? MAILDIR_OPEN_IN_USE :
		    MAILDIR_OPEN_FAIL;
	}
	/* box fits with room for the longer lock file name: no truncation */
	if ((size_t)snprintf(path, sizeof path, "%s/cur", box) >= sizeof path ||
	    (b->curfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		goto fail;
	if ((size_t)snprintf(path, sizeof path, "%s/new", box) >= sizeof path ||
	    (newfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		goto fail;
	maildir_box_take_new(b, newfd);
	close(newfd);
	newfd = -1;
	if (maildir_box_scan(b) == -1)
		goto fail;
	if (b->skipped)
		log_warnx("pop3: %s holds more than %d messages; this session "
		    "sees the oldest %d, %zu newer wait for the next ones", box,
		    MAILDIR_READ_MAX, MAILDIR_READ_MAX, b->skipped);
	return MAILDIR_OPEN_OK;
fail:
	saved = errno;
	if (newfd != -1)
		close(newfd);
	maildir_box_close(b);
	errno = saved;
	return MAILDIR_OPEN_FAIL;
}

/* Another Maildir reader (an IMAP server, say) may have renamed the file
 * to change its flags since the snapshot: find it by its unique part. */
static int
maildir_box_find_renamed(struct maildir_box *b, size_t i)
{
	struct maildir_entry *e = &b->msgs[i];
	size_t n = strcspn(e->name, ":");
	DIR *d;
	struct dirent *de;
	int fd = dup(b->curfd), found = 0;

	if (fd == -1 || (d = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		return 0;
	}
	/* The copy shares the offset of curfd, which the listing at open
	 * left at the end. */
	rewinddir(d);
	while (!found && (de = readdir(d)) != NULL)
		if (strncmp(de->d_name, e->name, n) == 0 &&
		    (de->d_name[n] == ':' || de->d_name[n] == '\0') &&
		    strcmp(de->d_name, e->name) != 0) {
			free(e->name);
			e->name = xstrdup(de->d_name);
			found = 1;
		}
	closedir(d);
	return found;
}

/* A regular file only: a FIFO put in its place would hold the open (and
 * the thread) for ever, a directory fail every read. */
static int
maildir_open_regular(int dirfd, const char *name)
{
	struct stat st;
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC);

	if (fd == -1)
		return -1;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		close(fd);
		errno = ENOENT;		/* not a message any more */
		return -1;
	}
	return fd;
}

int
maildir_box_open_msg(struct maildir_box *b, size_t i)
{
	int fd;

	fd = maildir_open_regular(b->curfd, b->msgs[i].name);
	if (fd == -1 && errno == ENOENT) {
		if (!maildir_box_find_renamed(b, i)) {
			errno = ENOENT;
			return -1;
		}
		fd = maildir_open_regular(b->curfd, b->msgs[i].name);
	}
	return fd;
}

long
maildir_box_expunge(struct maildir_box *b)
{
	long removed = 0;
	int failed = 0;

	for (size_t i = 0; i < b->nmsgs; i++) {
		struct maildir_entry *e = &b->msgs[i];

		if (!e->deleted)
			continue;
		if (unlinkat(b->curfd, e->name, 0) == 0) {
			removed++;
			continue;
		}
		if (errno == ENOENT) {
			if (!maildir_box_find_renamed(b, i))
				continue;	/* gone already: nothing to do */
			if (unlinkat(b->curfd, e->name, 0) == 0) {
				removed++;
				continue;
			}
		}
		log_warn("pop3: maildir unlink cur/%s", e->name);
		failed = 1;
	}
	if (removed > 0 && fsync(b->curfd) == -1) {
		log_warn("pop3: maildir fsync cur/");
		failed = 1;
	}
	return failed ? -1 : removed;
}

void
maildir_box_close(struct maildir_box *b)
{
	for (size_t i = 0; i < b->nmsgs; i++)
		free(b->msgs[i].name);
	free(b->msgs);
	b->msgs = NULL;
	b->nmsgs = 0;
	if (b->curfd != -1)
		close(b->curfd);
	if (b->lockfd != -1)
		close(b->lockfd);	/* releases the flock */
	b->curfd = b->lockfd = -1;
}
