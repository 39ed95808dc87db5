/*
 * local_maildir.c - Maildir delivery (see local_maildir.h).
 *
 * The delivered file is "Return-Path: <sender>" and "Delivered-To:
 * <address>" (RFC 5322 section 3.6.7 trace fields, added by the final
 * delivery) followed by the queued content byte for byte, CRLF line
 * endings as received.
 */
#include "deliver/local_maildir.h"
#include "lib/fsio.h"
#include "lib/strutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define COPY_BUFSZ	(64 * 1024)
#define MAILDIR_HEAD_MAX	(2 * 512)	/* two paths and their names */

/* The host part of a Maildir name: '/' and ':' would break it, so they
 * are written as octal escapes. */
static void
maildir_host(char *dst, size_t dstsz)
{
	char host[256];
	size_t o = 0;

	if (gethostname(host, sizeof host) == -1)
		strlcpy(host, "localhost", sizeof host);
	host[sizeof host - 1] = '\0';
	for (const char *p = host; *p && o + 5 < dstsz; p++) {
		if (*p == '/')
			o += (size_t)snprintf(dst + o, dstsz - o, "\\057");
		else if (*p == ':')
			o += (size_t)snprintf(dst + o, dstsz - o, "\\072");
		else if (*p == ',')	/* starts a size tag */
			o += (size_t)snprintf(dst + o, dstsz - o, "\\054");
		else
			dst[o++] = *p;
	}
	dst[o] = '\0';
}

static char maildir_hostname[128];

static void
maildir_host_init(void)
{
	maildir_host(maildir_hostname, sizeof maildir_hostname);
}

/* The trace fields in front of the content; their length, or -1. */
static int
maildir_head(char *dst, size_t dstsz, const struct maildir_msg *m)
{
	int n = snprintf(dst, dstsz, "Return-Path: <%s>\r\n"
	    "Delivered-To: %s\r\n", m->return_path, m->delivered_to);

	if (n < 0 || (size_t)n >= dstsz) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return n;
}

void
maildir_name_new(char *dst, size_t dstsz, const struct maildir_msg *m)
{
	char head[MAILDIR_HEAD_MAX];
	int n = maildir_head(head, sizeof head, m);
	unsigned long long octets = (n < 0 ? 0 : (unsigned long long)n) +
	    m->size;
	static _Atomic unsigned long count;
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct timeval tv;

	pthread_once(&once, maildir_host_init);
	gettimeofday(&tv, NULL);
	/* Q<n> counts deliveries in this process (on all its threads), so
	 * two in the same microsecond still differ. */
	snprintf(dst, dstsz, "%lld.M%ldP%dQ%lu.%s,S=%llu,W=%llu",
	    (long long)tv.tv_sec, (long)tv.tv_usec, (int)getpid(), ++count,
	    maildir_hostname, octets, octets);
}

static int
mkdir_owned(const char *path)
{
	if (mkdir(path, 0700) == -1 && errno != EEXIST)
		return -1;
	return 0;
}

int
maildir_prepare(const char *box)
{
	static const char *sub[] = { "tmp", "new", "cur" };
	char path[PATH_MAX];

	if (mkdir_owned(box) == -1)
		return -1;
	for (size_t i = 0; i < 3; i++) {
		if ((size_t)snprintf(path, sizeof path, "%s/%s", box, sub[i]) >=
		    sizeof path) {
			errno = ENAMETOOLONG;
			return -1;
		}
		if (mkdir_owned(path) == -1)
			return -1;
	}
	return 0;
}

static int
maildir_copy(int out, const struct maildir_msg *m)
{
	char buf[COPY_BUFSZ];
	off_t off = m->offset;
	ssize_t n;

	for (;;) {
		n = pread(m->fd, buf, sizeof buf, off);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			return 0;
		if (write_full(out, buf, (size_t)n) == -1)
			return -1;
		off += n;
	}
}

int
maildir_deliver(const char *mailboxes, const char *user, const char *name,
    const struct maildir_msg *m, char *why, size_t whysz)
{
	char box[PATH_MAX], tmp[PATH_MAX], new[PATH_MAX], newdir[PATH_MAX];
	char tmpdir[PATH_MAX], head[MAILDIR_HEAD_MAX];
	int fd = -1, unnamed = 0, dir_synced = 0, saved, n;
	const char *step = "create";

	if ((size_t)snprintf(box, sizeof box, "%s/%s", mailboxes, user) >=
	    sizeof box ||
	    (size_t)snprintf(tmp, sizeof tmp, "%s/tmp/%s", box, name) >=
	    sizeof tmp ||
	    (size_t)snprintf(new, sizeof new, "%s/new/%s", box, name) >=
	    sizeof new ||
	    (size_t)snprintf(newdir, sizeof newdir, "%s/new", box) >=
	    sizeof newdir) {
		errno = ENAMETOOLONG;
		goto fail;
	}
	step = "create maildir";
	if (maildir_prepare(box) == -1)
		goto fail;
	/* Unnamed in tmp/ where the file system allows: no tmp/ entry to
	 * make and remove, and nothing left there by a crash. */
	step = "create file";
	if ((size_t)snprintf(tmpdir, sizeof tmpdir, "%s/tmp", box) <
	    sizeof tmpdir && (fd = fsio_open_unnamed(tmpdir, 0600)) != -1)
		unnamed = 1;
	else if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600)) == -1)
		goto fail;
	step = "write";
	if ((n = maildir_head(head, sizeof head, m)) == -1)
		goto fail;
	if (write_full(fd, head, (size_t)n) == -1 || maildir_copy(fd, m) == -1)
		goto fail;
	step = "fsync";
	if (fsync(fd) == -1)
		goto fail;
	/* link(2), not rename(2): an existing name is never replaced.
	 * On ext4 the file's fsync after its link also makes the entry
	 * durable, and new/ need not be synced (fsio.h). */
	step = "link into new/";
	if (unnamed) {
		int publish = fd;

		dir_synced = fsio_file_sync_covers_entry(fd);
		fd = -1;
		if (fsio_publish_unnamed(publish, new) == -1)
			goto fail;
	} else {
		step = "close";
		if (close(fd) == -1) {
			fd = -1;
			goto fail;
		}
		fd = -1;
		step = "link into new/";
		if (link(tmp, new) == -1)
			goto fail;
		unlink(tmp);
	}
	step = "fsync new/";
	if (!dir_synced && fsync_dir(newdir) == -1)
		goto fail;
	return 0;
fail:
	saved = errno;
	if (fd != -1)
		close(fd);
	if (!unnamed && strcmp(step, "fsync new/") != 0)
		unlink(tmp);
	snprintf(why, whysz, "maildir %s: %s", step, strerror(saved));
	errno = saved;
	return -1;
}

int
maildir_has(const char *mailboxes, const char *user, const char *name)
{
	char path[PATH_MAX];
	size_t nlen = strlen(name);
	struct dirent *de;
	DIR *d;
	int found = 0;

	if ((size_t)snprintf(path, sizeof path, "%s/%s/new/%s", mailboxes,
	    user, name) >= sizeof path)
		return -1;
	if (access(path, F_OK) == 0)
		return 1;
	if (errno != ENOENT)
		return -1;
	/* A reader may have moved it to cur/ as NAME:2,FLAGS already. */
	snprintf(path, sizeof path, "%s/%s/cur", mailboxes, user);
	if ((d = opendir(path)) == NULL)
		return errno == ENOENT ? 0 : -1;
	while (!found && (de = readdir(d)) != NULL)
		if (strncmp(de->d_name, name, nlen) == 0 &&
		    (de->d_name[nlen] == '\0' || de->d_name[nlen] == ':'))
			found = 1;
	closedir(d);
	return found;
}
