/*
 * popbsmtp.c - POP before SMTP grants (see popbsmtp.h).
 *
 * One file per granted address, <spool>/grants/<key>, holding
 * "until <epoch seconds>\nuser <name>\n" and written atomically (tmp,
 * fsync, rename, fsync of the directory: lib/fsio.c), so that a grant is
 * either there whole or not at all after a crash.  A grant is valid while
 * now < until; an expired file is harmless and is removed by the sweep
 * (worker 0, once a minute on a thread of its own, and the master at
 * start), which logs the expiry.
 *
 * The user is the one whose POP3 login made the grant: relay by it is
 * charged to that user's rate and checked against that user's addresses
 * and lock (smtp/smtp_session.c), as for SMTP AUTH.  A file without one
 * (written before grants named their user) grants nothing: a grant that
 * nobody answers for would relay unchecked for up to 7 days.  The sweep
 * still removes it at its expiry; the client's next POP3 login makes a
 * new one.
 * Runs in the workers (grant, check, sweep) and the master (prepare).
 */
#include "policy/popbsmtp.h"
#include "auth/userdb.h"
#include "lib/fsio.h"
#include "lib/log.h"
#include "lib/strutil.h"
#include "lib/workpool.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#define GRANTS_DIR		"grants"
#define GRANT_FILE_MAX		128
#define SWEEP_INTERVAL		60	/* seconds */
#define SWEEP_MAX		100000	/* files looked at per sweep */

/*
 * Worker 0's sweep reads every grant file, up to SWEEP_MAX of them: on
 * the event loop, that worker's sessions would wait for all of it once
 * a minute.  It runs on a thread of its own, and a sweep still running
 * when the next is due is not started twice.
 */
static struct event	*sweep_ev;
static const struct conf *sweep_conf;
static struct workpool	*sweep_pool;
static void popbsmtp_sweep_work(struct workpool_job *);
static void popbsmtp_sweep_done(struct workpool_job *);
static struct workpool_job sweep_job = {
	.work = popbsmtp_sweep_work, .done = popbsmtp_sweep_done };
static int		 sweep_running;

static int
grants_path(const struct conf *c, const char *key, char *dst, size_t dstsz)
{
	return (size_t)snprintf(dst, dstsz, "%s/%s%s%s", c->spool, GRANTS_DIR,
	    key ? "/" : "", key ? key : "") >= dstsz ? -1 : 0;
}

static void
format_time(time_t t, char *dst, size_t dstsz)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(dst, dstsz, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int
popbsmtp_key(const struct conf *c, const struct sockaddr *sa, char *dst,
    size_t dstsz)
{
	static const uint8_t mapped[12] = { 0,0,0,0,0,0,0,0,0,0,0xff,0xff };
	uint8_t a[16];
	unsigned bits = c->pop_before_smtp_ipv6_prefix;

	if (sa->sa_family == AF_INET)
		return inet_ntop(AF_INET,
		    &((const struct sockaddr_in *)sa)->sin_addr, dst,
		    (socklen_t)dstsz) ? 0 : -1;
	if (sa->sa_family != AF_INET6)
		return -1;
	memcpy(a, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	/* An IPv4 client on a dual-stack socket is an IPv4 client. */
	if (memcmp(a, mapped, sizeof mapped) == 0)
		return inet_ntop(AF_INET, a + 12, dst, (socklen_t)dstsz) ? 0 : -1;
	if (bits == 0 || bits >= 128)
		return inet_ntop(AF_INET6, a, dst, (socklen_t)dstsz) ? 0 : -1;
	/* A prefix: clear the host bits, name it NETWORK_BITS ('/' cannot
	 * be in a file name). */
	for (unsigned i = 0; i < 16; i++) {
		unsigned keep = bits > i * 8 ? bits - i * 8 : 0;
		if (keep < 8)
			a[i] &= (uint8_t)(0xff << (8 - keep));
	}
	if (inet_ntop(AF_INET6, a, dst, (socklen_t)dstsz) == NULL)
		return -1;
	return strlcat(dst, "_", dstsz) >= dstsz ||
	    (size_t)snprintf(dst + strlen(dst), dstsz - strlen(dst), "%u",
	    bits) >= dstsz - strlen(dst) ? -1 : 0;
}

/* "until N\nuser NAME\n": N, or -1 if the file is not a grant; NAME in
 * user if it is asked for, "" if the file has none. */
static long long
grant_read(int dirfd, const char *name, struct stat *st, char *user,
    size_t usersz)
{
	char text[GRANT_FILE_MAX], *end, *name_end;
	ssize_t n;
	long long until;
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd == -1)
		return -1;
	if ((st && fstat(fd, st) == -1) ||
	    (n = read(fd, text, sizeof text - 1)) <= 0) {
		close(fd);
		return -1;
	}
	close(fd);
	text[n] = '\0';
	if (strncmp(text, "until ", 6) != 0 || text[6] < '0' || text[6] > '9')
		return -1;
	errno = 0;
	until = strtoll(text + 6, &end, 10);
	if (errno || (*end != '\n' && *end != '\0'))
		return -1;
	if (user == NULL)
		return until;
	user[0] = '\0';
	if (*end == '\n' && strncmp(end + 1, "user ", 5) == 0 &&
	    (name_end = strchr(end + 6, '\n')) != NULL &&
	    (size_t)(name_end - (end + 6)) < usersz) {
		*name_end = '\0';
		if (userdb_name_valid(end + 6))
			(void)strlcpy(user, end + 6, usersz);
	}
	return until;
}

int
popbsmtp_grant(const struct conf *c, const struct sockaddr *sa,
    const char *user, uint64_t sid, time_t now)
{
	char key[INET6_ADDRSTRLEN + 8], path[PATH_MAX], text[GRANT_FILE_MAX];
	char when[32];
	time_t until = now + (time_t)c->pop_before_smtp;
	int n;

	if (c->pop_before_smtp == 0)
		return 0;
	if (!userdb_name_valid(user) ||
	    popbsmtp_key(c, sa, key, sizeof key) == -1 ||
	    grants_path(c, key, path, sizeof path) == -1)
		return -1;
	n = snprintf(text, sizeof text, "until %lld\nuser %s\n",
	    (long long)until, user);
	/* Durable before the login's +OK, so that it survives a restart;
	 * a POP3 mailbox thread waits for the fsync (pop3/pop3_box.c). */
	if (write_file_atomic(path, text, (size_t)n, 0600) == -1) {
		log_warn("%016" PRIx64 " pop3 grant address=%s failed", sid, key);
		return -1;
	}
	format_time(until, when, sizeof when);
	log_info("%016" PRIx64 " pop3 grant address=%s until=%s user=%s", sid,
	    key, when, user);
	return 0;
}

int
popbsmtp_granted(const struct conf *c, const struct sockaddr *sa, time_t now,
    char *user, size_t usersz)
{
	char key[INET6_ADDRSTRLEN + 8], dir[PATH_MAX];
	long long until;
	int dirfd;

	user[0] = '\0';
	if (c->pop_before_smtp == 0 || popbsmtp_key(c, sa, key,
	    sizeof key) == -1 || grants_path(c, NULL, dir, sizeof dir) == -1)
		return 0;
	if ((dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return 0;
	until = grant_read(dirfd, key, NULL, user, usersz);
	close(dirfd);
	if (until > 0 && (long long)now < until && user[0] != '\0')
		return 1;
	user[0] = '\0';
	return 0;
}

unsigned
popbsmtp_sweep(const struct conf *c, time_t now)
{
	char dir[PATH_MAX];
	DIR *d;
	struct dirent *de;
	unsigned removed = 0, seen = 0;

	if (grants_path(c, NULL, dir, sizeof dir) == -1 ||
	    (d = opendir(dir)) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL && seen++ < SWEEP_MAX) {
		struct stat st, now_st;
		long long until;
		char when[32];

		/* write_file_atomic's temporary files hold '.'-free keys
		 * followed by ".tmp."; an IPv4 key has dots but no ".tmp". */
		if (de->d_name[0] == '.' || strstr(de->d_name, ".tmp.") != NULL)
			continue;
		until = grant_read(dirfd(d), de->d_name, &st, NULL, 0);
		if (until > 0 && (long long)now < until)
			continue;
		/* Renewed between the read and now?  Then it is another
		 * file (rename), and stays. */
		if (fstatat(dirfd(d), de->d_name, &now_st,
		    AT_SYMLINK_NOFOLLOW) == -1 || (until > 0 &&
		    now_st.st_ino != st.st_ino))
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) == -1)
			continue;
		removed++;
		if (until > 0) {
			format_time((time_t)until, when, sizeof when);
			log_info("popbsmtp: grant address=%s expired at %s",
			    de->d_name, when);
		} else
			log_info("popbsmtp: removed grants/%s: not a grant",
			    de->d_name);
	}
	closedir(d);
	return removed;
}

int
popbsmtp_prepare(const struct conf *c, uid_t uid, gid_t gid)
{
	char dir[PATH_MAX];

	if (c->pop_before_smtp == 0)
		return 0;
	if (grants_path(c, NULL, dir, sizeof dir) == -1) {
		log_warnx("popbsmtp: spool path too long");
		return -1;
	}
	if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
		log_warn("popbsmtp: mkdir %s", dir);
		return -1;
	}
	if (uid != (uid_t)-1 && chown(dir, uid, gid) == -1) {
		log_warn("popbsmtp: chown %s", dir);
		return -1;
	}
	(void)popbsmtp_sweep(c, time(NULL));
	return 0;
}

static void
popbsmtp_sweep_work(struct workpool_job *job)
{
	(void)popbsmtp_sweep(sweep_conf, time(NULL));
}

static void
popbsmtp_sweep_done(struct workpool_job *job)
{
	sweep_running = 0;
}

static void
popbsmtp_sweep_cb(evutil_socket_t fd, short ev, void *arg)
{
	if (sweep_running)
		return;
	sweep_running = 1;
	workpool_submit(sweep_pool, &sweep_job);
}

void
popbsmtp_worker_init(struct event_base *base, const struct conf *c,
    unsigned worker_index)
{
	struct timeval tv = { SWEEP_INTERVAL, 0 };

	if (c->pop_before_smtp == 0 || worker_index != 0)
		return;
	sweep_conf = c;
	if ((sweep_pool = workpool_new(base, 1)) == NULL) {
		/* Expired grants are harmless (popbsmtp_granted checks the
		 * time); only their removal and its log line wait for the
		 * master's sweep at the next start. */
		log_warn("popbsmtp: no sweep thread");
		return;
	}
	sweep_ev = event_new(base, -1, EV_PERSIST, popbsmtp_sweep_cb, NULL);
	if (sweep_ev)
		event_add(sweep_ev, &tv);
}

void
popbsmtp_worker_shutdown(void)
{
	if (sweep_ev) {
		event_free(sweep_ev);
		sweep_ev = NULL;
	}
	/* A sweep under way ends first: it is bounded by SWEEP_MAX. */
	workpool_free(sweep_pool);
	sweep_pool = NULL;
}
