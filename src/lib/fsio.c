/* fsio.c - durable file-system helpers. */
#include "lib/fsio.h"
#include "lib/strutil.h"
#include "lib/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

int
write_full(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t w = write(fd, c, n);

		if (w == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

/* The name through which linkat(2) gives an unnamed file a name where
 * AT_EMPTY_PATH is refused to this process. */
static int
fd_path(char *dst, size_t dstsz, int fd)
{
	return (size_t)snprintf(dst, dstsz, "/proc/self/fd/%d", fd) < dstsz ?
	    0 : -1;
}

/*
 * Whether linkat(fd, "", AT_EMPTY_PATH) works here: -1 until it has
 * been tried.  Linux 6.10 and later allow it when the file was opened
 * with the caller's own credentials; otherwise it takes
 * CAP_DAC_READ_SEARCH, and a refusal is ENOENT.  Where it works it
 * saves the walk through /proc, which every message's commit would
 * otherwise pay.  ENOENT can also be the link's own failure (no such
 * directory), so it is told apart by trying /proc, and only a link that
 * works that way turns AT_EMPTY_PATH off for the rest of the process.
 */
static _Atomic int flink_works = -1;

int
fsio_link_unnamed(int fd, const char *path)
{
	char self[64];

	if (flink_works != 0) {
		if (linkat(fd, "", AT_FDCWD, path, AT_EMPTY_PATH) == 0) {
			flink_works = 1;
			return 0;
		}
		if (errno != ENOENT && errno != EPERM)
			return -1;
	}
	if (fd_path(self, sizeof self, fd) == -1) {
		errno = EINVAL;
		return -1;
	}
	if (linkat(AT_FDCWD, self, AT_FDCWD, path, AT_SYMLINK_FOLLOW) == -1)
		return -1;
	flink_works = 0;
	return 0;
}

int
fsio_publish_unnamed(int fd, const char *path)
{
	int saved;

	if (fsio_link_unnamed(fd, path) == -1) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fsio_sync_new_link(fd, path);
}

int
fsio_sync_new_link(int fd, const char *path)
{
	int named = -1, saved;

	/* Synced through its new name, the unnamed descriptor closed
	 * first: the file then has that one name in the dentry cache,
	 * held by the descriptor being synced, and that name's directory
	 * is the one ext4 flushes with the file (fsio.h). */
	if ((named = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1) {
		if (errno != ENOENT)
			goto unlink;
		/* Already taken away by its reader (a queue manager that
		 * delivered and removed it, a POP3 login that moved it to
		 * cur/): only the file is left to sync, through the
		 * descriptor there is, and failing for the missing name
		 * would have it sent again.  (The unlink below then finds
		 * nothing: names are never reused.) */
		named = fd;
	} else if (close(fd) == -1) {
		fd = -1;
		goto unlink;
	}
	fd = -1;
	if (fsync(named) == -1)
		goto unlink;
	if (close(named) == -1) {
		named = -1;
		goto unlink;
	}
	return 0;
unlink:
	saved = errno;
	(void)unlink(path);
	if (named != -1)
		close(named);
	if (fd != -1)
		close(fd);
	errno = saved;
	return -1;
}

/* The ext4 driver's name for the block device under fd's file system
 * (its directory in /sys/fs/ext4/), or -1 if ext4 does not have it. */
static int
ext4_device(int fd, char *name, size_t namesz)
{
	char sys[PATH_MAX], link[PATH_MAX];
	const char *base;
	struct statfs sfs;
	struct stat st;
	ssize_t n;

	if (fstatfs(fd, &sfs) == -1 || sfs.f_type != EXT4_SUPER_MAGIC ||
	    fstat(fd, &st) == -1)
		return -1;
	if ((size_t)snprintf(sys, sizeof sys, "/sys/dev/block/%u:%u",
	    major(st.st_dev), minor(st.st_dev)) >= sizeof sys ||
	    (n = readlink(sys, link, sizeof link - 1)) <= 0)
		return -1;		/* no block device to ask about */
	link[n] = '\0';
	base = strrchr(link, '/') ? strrchr(link, '/') + 1 : link;
	/* The ext2 and ext3 drivers share the magic number, not this. */
	if ((size_t)snprintf(sys, sizeof sys, "/sys/fs/ext4/%s", base) >=
	    sizeof sys || access(sys, F_OK) == -1 ||
	    strlcpy(name, base, namesz) >= namesz)
		return -1;
	return 0;
}

/* What fsio_file_sync_covers_entry found, per file system: a few
 * entries are plenty (the spool, the mailboxes). */
static struct {
	dev_t	 dev;
	int	 covers;
} covers_seen[8];
static size_t covers_nseen;
static pthread_mutex_t covers_lock = PTHREAD_MUTEX_INITIALIZER;

int
fsio_file_sync_covers_entry(int fd)
{
	char name[64];
	struct stat st;
	int covers;

	if (fstat(fd, &st) == -1)
		return 0;
	pthread_mutex_lock(&covers_lock);
	for (size_t i = 0; i < covers_nseen; i++)
		if (covers_seen[i].dev == st.st_dev) {
			covers = covers_seen[i].covers;
			pthread_mutex_unlock(&covers_lock);
			return covers;
		}
	pthread_mutex_unlock(&covers_lock);
	covers = ext4_device(fd, name, sizeof name) == 0;
	pthread_mutex_lock(&covers_lock);
	if (covers_nseen < sizeof covers_seen / sizeof covers_seen[0]) {
		covers_seen[covers_nseen].dev = st.st_dev;
		covers_seen[covers_nseen++].covers = covers;
	}
	pthread_mutex_unlock(&covers_lock);
	return covers;
}

/* Whether unnamed files can be linked in this process: tried once, in
 * the first directory that takes unnamed files, on a probe file of its
 * own (a file once linked and unlinked again cannot be linked anew). */
static _Atomic int unnamed_linkable = -1;
static pthread_mutex_t unnamed_probe_lock = PTHREAD_MUTEX_INITIALIZER;

static int
unnamed_probe(const char *dir)
{
	char probe[PATH_MAX];
	int fd, ok = 0;

	if ((size_t)snprintf(probe, sizeof probe, "%s/probe.%ld", dir,
	    (long)getpid()) >= sizeof probe ||
	    (fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600)) == -1)
		return 0;
	(void)unlink(probe);
	if (fsio_link_unnamed(fd, probe) == 0) {
		(void)unlink(probe);
		ok = 1;
	}
	close(fd);
	return ok;
}

int
fsio_open_unnamed(const char *dir, mode_t mode)
{
	int fd;

	if (unnamed_linkable == 0) {
		errno = EOPNOTSUPP;
		return -1;
	}
	if ((fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, mode)) == -1)
		return -1;
	if (unnamed_linkable == -1) {
		/* Two threads must not probe at once: they share the name. */
		pthread_mutex_lock(&unnamed_probe_lock);
		if (unnamed_linkable == -1)
			unnamed_linkable = unnamed_probe(dir);
		pthread_mutex_unlock(&unnamed_probe_lock);
	}
	if (unnamed_linkable == 0) {
		close(fd);
		errno = EOPNOTSUPP;
		return -1;
	}
	return fd;
}

int
fsio_spread_subdirs(const char *path)
{
	int fd, flags, rc = -1;

	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	/* The kernel reads and writes an int, whatever the macro says. */
	if (ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0) {
		if (flags & FS_TOPDIR_FL)
			rc = 0;
		else {
			flags |= FS_TOPDIR_FL;
			rc = ioctl(fd, FS_IOC_SETFLAGS, &flags);
		}
	}
	close(fd);
	return rc;
}

int
fsio_ext4_without_journal(const char *path, char *dev, size_t devsz)
{
	char sys[PATH_MAX], name[64], task[32];
	FILE *f;
	int fd, none = 0;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_PATH)) == -1)
		return 0;
	if (ext4_device(fd, name, sizeof name) == -1) {
		close(fd);
		return 0;
	}
	close(fd);
	if ((size_t)snprintf(sys, sizeof sys, "/sys/fs/ext4/%s/journal_task",
	    name) >= sizeof sys || (f = fopen(sys, "re")) == NULL)
		return 0;
	if (fgets(task, sizeof task, f) != NULL &&
	    strncmp(task, "<none>", 6) == 0)
		none = 1;
	fclose(f);
	if (none && dev)
		strlcpy(dev, name, devsz);
	return none;
}

int
fsync_dir(const char *path)
{
	int fd, rc;

	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

int
write_file_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
	return write_file_atomic_group(path, data, len, mode, (gid_t)-1);
}

int
write_file_atomic_group(const char *path, const void *data, size_t len,
    mode_t mode, gid_t gid)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	char *slash;
	int fd, saved;

	if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%d", path,
	    (int)getpid()) >= sizeof tmp ||
	    strlcpy(dir, path, sizeof dir) >= sizeof dir) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((slash = strrchr(dir, '/')) == NULL)
		strlcpy(dir, ".", sizeof dir);
	else if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';

	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    mode)) == -1)
		return -1;
	/* Readers see the file only after the rename: give it its group
	 * first, so that no reader ever meets it with the wrong one. */
	if (gid != (gid_t)-1 && fchown(fd, (uid_t)-1, gid) == -1)
		goto fail;
	if (write_full(fd, data, len) == -1 || fsync(fd) == -1)
		goto fail;
	if (close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) == -1)
		goto fail;
	return fsync_dir(dir);
fail:
	saved = errno;
	if (fd != -1)
		close(fd);
	unlink(tmp);
	errno = saved;
	return -1;
}

int
mkdir_p(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];
	char *p;

	if (strlcpy(tmp, path, sizeof tmp) >= sizeof tmp) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) == -1 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(tmp, mode) == -1 && errno != EEXIST)
		return -1;
	return 0;
}

char *
read_file(const char *path, size_t max, size_t *lenp, FILE *errf)
{
	struct stat st;
	char *text;
	ssize_t n;
	size_t got = 0;
	int fd, saved;

	/* O_NONBLOCK: a FIFO put in a file's place must not hang the
	 * open; it fails the regular-file test below instead. */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) == -1) {
		saved = errno;
		if (errf)
			fprintf(errf, "%s: %s\n", path, strerror(saved));
		errno = saved;
		return NULL;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    (size_t)st.st_size > max) {
		if (errf)
			fprintf(errf, "%s: not a regular file of at most %zu "
			    "bytes\n", path, max);
		close(fd);
		errno = EFBIG;
		return NULL;
	}
	text = xmalloc((size_t)st.st_size + 1);
	while (got < (size_t)st.st_size &&
	    (n = read(fd, text + got, (size_t)st.st_size - got)) != 0) {
		if (n == -1) {
			if (errno == EINTR)
				continue;
			saved = errno;
			if (errf)
				fprintf(errf, "%s: %s\n", path, strerror(saved));
			free(text);
			close(fd);
			errno = saved;
			return NULL;
		}
		got += (size_t)n;
	}
	close(fd);
	text[got] = '\0';
	*lenp = got;
	return text;
}

char *
read_text_file(const char *path, size_t max, FILE *errf)
{
	size_t len;
	char *text = read_file(path, max, &len, errf);

	if (text != NULL && memchr(text, '\0', len) != NULL) {
		if (errf)
			fprintf(errf, "%s: contains a NUL byte; not a text file\n",
			    path);
		free(text);
		errno = EINVAL;
		return NULL;
	}
	return text;
}
