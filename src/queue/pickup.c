/*
 * pickup.c - the pickup process (see pickup.h and maildrop.h).
 *
 * It notices complete maildrop files at once (inotify IN_MOVED_TO: the
 * sendmail command's rename), scans the directory at start-up and once
 * a minute (which also retries after a full disk), and handles one file
 * at a time: take it (rename Mname to Pname), check it, write the queue
 * file (qstore: fsynced, renamed, directory fsynced), then unlink it.
 * A file that cannot be taken (a maildrop directory made read-only) is
 * left alone and never queued: one that could be queued but not removed
 * would be queued again at every scan.  A crash between the commit and
 * the unlink queues the Pname file twice at the next scan: a duplicate,
 * never a loss (as for SMTP, RFC 5321 section 6.1).
 *
 * Who sent it is the file's owner.  The envelope sender a user asks for
 * (-f) is used when the user may claim it: root and the server's own
 * user may name any sender (<> included); anyone else only LOGIN@D,
 * where D is the host name or a local domain.  Otherwise the sender is
 * LOGIN@ORIGIN (ORIGIN: the first local domain, else the host name) and
 * the refusal is logged.
 */
#include "queue/pickup.h"
#include "lib/buf.h"
#include "lib/fsio.h"
#include "lib/log.h"
#include "lib/strutil.h"
#include "lib/xalloc.h"
#include "queue/maildrop.h"
#include "queue/qid.h"
#include "queue/qpath.h"
#include "queue/qstore.h"
#include "smtp/smtp_addr.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PICKUP_SCAN_INTERVAL	60		/* seconds */
#define PICKUP_STALE_TMP	(24 * 3600)	/* an abandoned Tname */

struct drop {
	uid_t		 uid;
	int		 has_sender;
	char		 sender[SMTP_PATH_MAX + 1];
	int		 body_8bit;
	char		**rcpts;
	size_t		 nrcpts;
	const char	*content;
	size_t		 size;
};

static const struct conf	*pconf;
static int			 dirfd_md = -1;

static const char *
pickup_origin(void)
{
	return pconf->ndomains ? pconf->domains[0] : pconf->hostname;
}

static void
drop_free(struct drop *d)
{
	for (size_t i = 0; i < d->nrcpts; i++)
		free(d->rcpts[i]);
	free(d->rcpts);
	memset(d, 0, sizeof *d);
}

static int
valid_path(const char *s, int allow_null)
{
	struct mailaddr ma;

	if (*s == '\0')
		return allow_null;
	return smtp_addr_parse_path(s, strlen(s), &ma) == 0 &&
	    ma.domain[0] != '\0';
}

/* Parse a maildrop file held in memory; -1 with the reason in why. */
/* The offset of the first CR not followed by LF or LF not preceded by
 * CR, or SIZE_MAX: the sendmail command writes CRLF only. */
static size_t
bare_eol(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((p[i] == '\r' && (i + 1 == n || p[i + 1] != '\n')) ||
		    (p[i] == '\n' && (i == 0 || p[i - 1] != '\r')))
			return i;
	return SIZE_MAX;
}

static int
drop_parse(char *data, size_t len, struct drop *d, char *why, size_t whysz)
{
	char *p = data, *end = data + len;
	int have_size = 0, have_body = 0, first = 1;
	unsigned long long size = 0;
	size_t off;

	for (;;) {
		char *nl = memchr(p, '\n', (size_t)(end - p)), *val;

		if (nl == NULL || (size_t)(nl - data) > MAILDROP_ENVELOPE_MAX) {
			snprintf(why, whysz, "no end of the envelope");
			return -1;
		}
		*nl = '\0';
		if (p == nl) {			/* the empty line */
			p = nl + 1;
			break;
		}
		if (first) {
			if (strcmp(p, MAILDROP_VERSION) != 0) {
				snprintf(why, whysz, "not a maildrop file of "
				    "version 1");
				return -1;
			}
			first = 0;
			p = nl + 1;
			continue;
		}
		if ((val = strchr(p, ' ')) != NULL)
			*val++ = '\0';
		if (strcmp(p, "sender") == 0) {
			if (d->has_sender || (val && !valid_path(val, 0)) ||
			    (val && strlcpy(d->sender, val, sizeof d->sender) >=
			    sizeof d->sender)) {
				snprintf(why, whysz, "bad sender record");
				return -1;
			}
			d->has_sender = 1;
		} else if (val == NULL) {
			snprintf(why, whysz, "bad record '%.40s'", p);
			return -1;
		} else if (strcmp(p, "uid") == 0) {
			char *e;
			unsigned long u = strtoul(val, &e, 10);

			if (*e || !isdigit((unsigned char)*val) ||
			    (uid_t)u != d->uid) {
				snprintf(why, whysz, "uid record %.20s does not "
				    "match the owner %u", val, (unsigned)d->uid);
				return -1;
			}
		} else if (strcmp(p, "body") == 0) {
			if (strcmp(val, "8BITMIME") == 0)
				d->body_8bit = 1;
			else if (strcmp(val, "7BIT") != 0) {
				snprintf(why, whysz, "bad body record");
				return -1;
			}
			have_body = 1;
		} else if (strcmp(p, "rcpt") == 0) {
			if (!valid_path(val, 0) || d->nrcpts >=
			    pconf->max_recipients) {
				snprintf(why, whysz, "bad or too many rcpt "
				    "records");
				return -1;
			}
			d->rcpts = xreallocarray(d->rcpts, d->nrcpts + 1,
			    sizeof *d->rcpts);
			d->rcpts[d->nrcpts++] = xstrdup(val);
		} else if (strcmp(p, "size") == 0) {
			char *e;

			size = strtoull(val, &e, 10);
			if (*e || !isdigit((unsigned char)*val)) {
				snprintf(why, whysz, "bad size record");
				return -1;
			}
			have_size = 1;
		} else {
			snprintf(why, whysz, "unknown record '%.40s'", p);
			return -1;
		}
		p = nl + 1;
	}
	if (!have_size || !have_body || d->nrcpts == 0) {
		snprintf(why, whysz, "incomplete envelope");
		return -1;
	}
	if ((unsigned long long)(end - p) != size) {
		snprintf(why, whysz, "%zu octets of message, the envelope says "
		    "%llu", (size_t)(end - p), size);
		return -1;
	}
	if (size > pconf->message_size_limit) {
		snprintf(why, whysz, "message of %llu octets is over "
		    "message-size-limit", size);
		return -1;
	}
	if (memchr(p, '\0', size) != NULL) {
		snprintf(why, whysz, "message contains NUL characters");
		return -1;
	}
	if ((off = bare_eol(p, size)) != SIZE_MAX) {
		/* As SMTP refuses it (smtp_data.c): relayed as it is, a
		 * bare LF could end the DATA early at a server that takes
		 * it for a line end, and smuggle a message of its own. */
		snprintf(why, whysz, "bare %s at octet %zu of the message "
		    "(lines must end in CRLF)", p[off] == '\r' ? "CR" : "LF",
		    off);
		return -1;
	}
	d->content = p;
	d->size = size;
	return 0;
}

/* Move a bad file aside, never deleting it: maildrop/NAME to
 * corrupt/AS, where AS is the name the sendmail command gave it, never
 * over a file already there (corrupt/ also keeps damaged queue files,
 * and anyone may name a file in maildrop/): AS.1, AS.2 ... then. */
static void
pickup_corrupt(const char *name, const char *as, uid_t uid, const char *why)
{
	char to[PATH_MAX], alt[NAME_MAX + 1];
	int rc;

	(void)qpath_make(to, sizeof to, pconf->spool, "corrupt", as);
	rc = renameat2(dirfd_md, name, AT_FDCWD, to, RENAME_NOREPLACE);
	for (int n = 1; rc == -1 && errno == EEXIST && n < 100; n++) {
		(void)snprintf(alt, sizeof alt, "%.200s.%d", as, n);
		(void)qpath_make(to, sizeof to, pconf->spool, "corrupt", alt);
		rc = renameat2(dirfd_md, name, AT_FDCWD, to, RENAME_NOREPLACE);
	}
	if (rc == -1)
		log_warn("pickup: maildrop/%s from uid %u: %s; cannot move it "
		    "to %s", as, (unsigned)uid, why, to);
	else
		log_warnx("pickup: maildrop/%s from uid %u: %s; moved to %s",
		    as, (unsigned)uid, why, to);
}

/* May this user claim this sender?  (The rule is in the header.) */
static int
sender_allowed(uid_t uid, const char *login, const char *sender)
{
	const char *at = strrchr(sender, '@');
	size_t ll = strlen(login);

	if (uid == 0 || uid == geteuid())
		return 1;
	if (at == NULL || (size_t)(at - sender) != ll ||
	    strncasecmp(sender, login, ll) != 0)
		return 0;
	return strcasecmp(at + 1, pconf->hostname) == 0 ||
	    conf_is_local_domain(pconf, at + 1);
}

static int
pickup_build_head(struct buf *b, const char *qid, const struct drop *d,
    const char *from)
{
	char date[64];
	time_t now = time(NULL);
	struct tm tm;
	int rc = 0;

	rc |= buf_printf(b, QSTORE_VERSION_LINE "qid %s\narrival %lld\n"
	    "listener sendmail\nbody %s\nfrom %s\n", qid, (long long)now,
	    d->body_8bit ? "8BITMIME" : "7BIT", from);
	for (size_t i = 0; i < d->nrcpts; i++)
		rc |= buf_printf(b, "rcpt %s\n", d->rcpts[i]);
	rc |= buf_puts(b, "\n");
	localtime_r(&now, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S %z", &tm);
	rc |= buf_printf(b, "Received: from local (uid %u)\r\n"
	    "\tby %s (postern) with local id %s", (unsigned)d->uid,
	    pconf->hostname, qid);
	if (d->nrcpts == 1)
		rc |= buf_printf(b, "\r\n\tfor <%s>", d->rcpts[0]);
	rc |= buf_printf(b, "; %s\r\n", date);
	return rc;
}

/* Read the whole file (bounded); NULL with why. */
static char *
pickup_read(int fd, const struct stat *st, size_t *len, char *why,
    size_t whysz)
{
	size_t max = MAILDROP_ENVELOPE_MAX + pconf->message_size_limit, n = 0;
	char *data;

	if ((uint64_t)st->st_size > max) {
		snprintf(why, whysz, "file of %lld octets is too big",
		    (long long)st->st_size);
		return NULL;
	}
	data = xmalloc((size_t)st->st_size + 1);
	while (n < (size_t)st->st_size + 1) {
		ssize_t r = read(fd, data + n, (size_t)st->st_size + 1 - n);

		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	if (n != (size_t)st->st_size) {
		snprintf(why, whysz, "file changed while it was read");
		free(data);
		return NULL;
	}
	data[n] = '\0';
	*len = n;
	return data;
}

/* One complete maildrop file.  -1 when it should be tried again later
 * (a temporary problem: the file stays). */
static int
pickup_file(const char *found)
{
	struct drop d;
	struct stat st;
	struct qfile qf;
	struct buf head;
	struct passwd *pw;
	char why[256], login[64], from[SMTP_PATH_MAX + 1], qid[QID_LEN + 1];
	char name[MAILDROP_NAME_LEN + 1], as[MAILDROP_NAME_LEN + 1];
	char *data = NULL;
	size_t len;
	int fd;

	/* Taken first: what cannot be renamed could not be removed either,
	 * and must not be queued. */
	(void)strlcpy(name, found, sizeof name);	/* name_is_drop: fits */
	name[0] = MAILDROP_TAKEN_PREFIX;
	(void)strlcpy(as, found, sizeof as);	/* logs: the sendmail name */
	as[0] = MAILDROP_DONE_PREFIX;
	if (found[0] != MAILDROP_TAKEN_PREFIX && renameat2(dirfd_md, found,
	    dirfd_md, name, RENAME_NOREPLACE) == -1) {
		if (errno != ENOENT)
			log_warn("pickup: cannot take maildrop/%s; it stays "
			    "there, not queued", found);
		return 0;
	}
	memset(&d, 0, sizeof d);
	fd = openat(dirfd_md, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC);
	if (fd == -1) {
		if (errno == ENOENT)
			return 0;
		snprintf(why, sizeof why, "cannot open: %s", strerror(errno));
		st.st_uid = (uid_t)-1;
		if (fstatat(dirfd_md, name, &st, AT_SYMLINK_NOFOLLOW) == 0 ||
		    errno != ENOENT)
			pickup_corrupt(name, as, st.st_uid, why);
		return 0;
	}
	if (fstat(fd, &st) == -1) {
		log_warn("pickup: fstat maildrop/%s", as);
		close(fd);
		return -1;
	}
	/* A hard link to someone else's file would make it theirs. */
	if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
		close(fd);
		pickup_corrupt(name, as, st.st_uid,
		    "not a plain file with one link");
		return 0;
	}
	d.uid = st.st_uid;
	if ((data = pickup_read(fd, &st, &len, why, sizeof why)) == NULL ||
	    drop_parse(data, len, &d, why, sizeof why) == -1) {
		close(fd);
		free(data);
		drop_free(&d);
		pickup_corrupt(name, as, st.st_uid, why);
		return 0;
	}
	close(fd);

	/* A login name that can stand as a local part as it is. */
	if ((pw = getpwuid(st.st_uid)) != NULL && pw->pw_name[0] &&
	    pw->pw_name[0] != '.' && strlen(pw->pw_name) < sizeof login &&
	    strspn(pw->pw_name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP"
	    "QRSTUVWXYZ0123456789._-") == strlen(pw->pw_name))
		(void)strlcpy(login, pw->pw_name, sizeof login); /* fits */
	else
		snprintf(login, sizeof login, "uid-%u", (unsigned)st.st_uid);
	str_lower(login);
	if (d.has_sender && sender_allowed(st.st_uid, login, d.sender))
		(void)strlcpy(from, d.sender, sizeof from);	/* same size */
	else {
		snprintf(from, sizeof from, "%s@%s", login, pickup_origin());
		if (d.has_sender)
			log_warnx("pickup: uid %u (%s) may not use the sender "
			    "<%s>; the sender is <%s>", (unsigned)st.st_uid,
			    login, d.sender, from);
	}

	qid_next(qid);
	buf_init(&head, 0);
	if (pickup_build_head(&head, qid, &d, from) == -1 ||
	    qstore_create(&qf, pconf->spool, qid, head.data, head.len) == -1) {
		log_warn("%s pickup: queue create", qid);
		goto tempfail;
	}
	qstore_write(&qf, d.content, d.size);
	if (qstore_commit(&qf) == -1) {
		log_warn("%s pickup: queue commit", qid);
		goto tempfail;
	}
	log_info("%s pickup queued uid=%u user=%s from=<%s> nrcpt=%zu size=%zu "
	    "maildrop=%s", qid, (unsigned)st.st_uid, login, from, d.nrcpts,
	    d.size, as);
	if (unlinkat(dirfd_md, name, 0) == -1)
		log_warn("%s pickup: unlink maildrop/%s", qid, as);
	else
		(void)fsync(dirfd_md);
	buf_free(&head);
	free(data);
	drop_free(&d);
	return 0;
tempfail:
	buf_free(&head);
	free(data);
	drop_free(&d);
	return -1;
}

static int
name_is_drop(const char *name, char prefix)
{
	if (name[0] != prefix || strlen(name) != MAILDROP_NAME_LEN)
		return 0;
	for (const char *p = name + 1; *p; p++)
		if (!isxdigit((unsigned char)*p))
			return 0;
	return 1;
}

/* Every complete file; stale temporary files are removed, and names
 * the sendmail command never makes are moved aside. */
static int
pickup_scan(void)
{
	DIR *d;
	struct dirent *de;
	int fd, again = 0;
	time_t now = time(NULL);

	if ((fd = dup(dirfd_md)) == -1 || (d = fdopendir(fd)) == NULL) {
		log_warn("pickup: opendir maildrop");
		if (fd != -1)
			close(fd);
		return -1;
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		if (name_is_drop(de->d_name, MAILDROP_DONE_PREFIX) ||
		    name_is_drop(de->d_name, MAILDROP_TAKEN_PREFIX)) {
			if (pickup_file(de->d_name) == -1)
				again = 1;
		} else if (name_is_drop(de->d_name, MAILDROP_TMP_PREFIX)) {
			if (fstatat(dirfd_md, de->d_name, &st,
			    AT_SYMLINK_NOFOLLOW) == 0 &&
			    now - st.st_mtime > PICKUP_STALE_TMP &&
			    unlinkat(dirfd_md, de->d_name, 0) == 0)
				log_info("pickup: removed maildrop/%s, "
				    "abandoned by uid %u", de->d_name,
				    (unsigned)st.st_uid);
		} else if (fstatat(dirfd_md, de->d_name, &st,
		    AT_SYMLINK_NOFOLLOW) == 0) {
			char as[NAME_MAX + 1];

			/* Apart from the queue files' names there. */
			(void)snprintf(as, sizeof as, "maildrop-%.200s",
			    de->d_name);
			pickup_corrupt(de->d_name, as, st.st_uid,
			    "not a maildrop file name");
		}
	}
	closedir(d);
	return again ? -1 : 0;
}

static void
pickup_drop_privileges(uid_t uid, gid_t gid)
{
	if (uid == (uid_t)-1)
		return;
	if (setgroups(1, &gid) == -1 || setresgid(gid, gid, gid) == -1 ||
	    setresuid(uid, uid, uid) == -1)
		fatal("pickup: cannot drop privileges");
	if (setuid(0) != -1)
		fatalx("pickup: privileges could be regained");
}

void
pickup_main(const struct conf *c, unsigned procno, uid_t uid, gid_t gid)
{
	char path[PATH_MAX];
	sigset_t set;
	int ino, sfd, wd;
	time_t next_scan;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_SETMASK, &set, NULL);
	signal(SIGHUP, SIG_IGN);	/* the master reloads */
	signal(SIGPIPE, SIG_IGN);
	log_set_procname("postern/pickup");
	pickup_drop_privileges(uid, gid);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() == 1)
		_exit(0);
	pconf = c;
	qid_init(procno);
	(void)qpath_make(path, sizeof path, c->spool, MAILDROP_DIR, "");
	if ((dirfd_md = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		fatal("pickup: open %s", path);
	/* One pickup per spool: after a reload the new one waits here
	 * until the old one has finished its file. */
	while (flock(dirfd_md, LOCK_EX) == -1)
		if (errno != EINTR)
			fatal("pickup: lock %s", path);
	if ((sfd = signalfd(-1, &set, SFD_CLOEXEC)) == -1 ||
	    (ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) == -1)
		fatal("pickup: signalfd/inotify");
	/* Watch before scanning, so nothing arrives unseen in between. */
	if ((wd = inotify_add_watch(ino, path, IN_MOVED_TO)) == -1)
		fatal("pickup: inotify watch %s", path);
	log_info("pickup: watching %s", path);
	next_scan = 0;
	for (;;) {
		struct pollfd pfd[2] = { { sfd, POLLIN, 0 }, { ino, POLLIN, 0 } };
		time_t now = time(NULL);
		int timeout;

		if (now >= next_scan) {
			next_scan = now + (pickup_scan() == -1 ? 10 :
			    PICKUP_SCAN_INTERVAL);
			continue;
		}
		timeout = (int)(next_scan - now) * 1000;
		if (poll(pfd, 2, timeout) == -1 && errno != EINTR)
			fatal("pickup: poll");
		if (pfd[0].revents & POLLIN) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
				log_info("pickup: stopping (signal %u)",
				    si.ssi_signo);
				break;
			}
		}
		if (pfd[1].revents & POLLIN) {
			char buf[8192] __attribute__((aligned(__alignof__(struct
			    inotify_event))));
			ssize_t n;

			while ((n = read(ino, buf, sizeof buf)) > 0)
				for (char *p = buf; p < buf + n;) {
					struct inotify_event *ie = (void *)p;

					if (ie->mask & IN_Q_OVERFLOW)
						next_scan = 0;
					else if (ie->len && ie->wd == wd &&
					    name_is_drop(ie->name,
					    MAILDROP_DONE_PREFIX) &&
					    pickup_file(ie->name) == -1)
						next_scan = time(NULL) + 10;
					p += sizeof *ie + ie->len;
				}
		}
	}
	close(ino);
	close(sfd);
	close(dirfd_md);
	exit(0);
}

int
pickup_prepare(const struct conf *c, uid_t uid, gid_t gid)
{
	char path[PATH_MAX];
	struct stat st;

	(void)qpath_make(path, sizeof path, c->spool, MAILDROP_DIR, "");
	if (mkdir(path, 0700) == -1 && errno != EEXIST) {
		log_warn("pickup: mkdir %s", path);
		return -1;
	}
	/* mkdir's mode passes through the umask: set it exactly. */
	if ((uid != (uid_t)-1 && chown(path, uid, gid) == -1) ||
	    chmod(path, MAILDROP_MODE) == -1 || stat(path, &st) == -1) {
		log_warn("pickup: %s", path);
		return -1;
	}
	if ((st.st_mode & 07777) != MAILDROP_MODE) {
		log_warnx("pickup: %s has mode %04o, not %04o", path,
		    (unsigned)(st.st_mode & 07777), MAILDROP_MODE);
		return -1;
	}
	return 0;
}
