/*
 * qlimit.c - the queue manager's open files, and the number of messages
 * it keeps in flight (see qlimit.h).  Runs in the queue manager, once at
 * start.
 */
#include "queue/qlimit.h"
#include "deliver/dns.h"

#include <sys/resource.h>

/* The process's own: the standard streams, the pid file's lock, the
 * loop's epoll and signal pipe, the delivery threads' eventfd, inotify
 * and the log (nine or ten at start); and what the loop opens for a
 * moment: a status file for a remote outcome, a DSN's file and its
 * directory, the users, aliases and index files being reloaded, the
 * trust store for "tls verify". */
#define FILES_OWN		32
/* A pass (qrun.c) holds the message and its status file, and opens a
 * Maildir file and the directory it fsyncs, or the status file's
 * compacted copy and its directory, or an alias include file: six at
 * the most. */
#define FILES_PER_PASS		8
/* A remote connection's socket, and one more per connection for those
 * still saying QUIT (for up to 5 s) after their slot went to another
 * (smtp_client_quit). */
#define FILES_PER_CONNECTION	2
/* What none of the above counts (libraries: c-ares, OpenSSL, libc)
 * gets an eighth of the limit. */
#define MARGIN_DIVISOR		8

unsigned long
qlimit_raise_open_files(void)
{
	struct rlimit rl;
	rlim_t want;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return 1024;		/* cannot fail; Linux's default */
	want = rl.rlim_max == RLIM_INFINITY ||
	    rl.rlim_max > QLIMIT_OPEN_FILES_MAX ? QLIMIT_OPEN_FILES_MAX :
	    rl.rlim_max;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
		struct rlimit raised = { want, rl.rlim_max };

		/* Within the hard limit: an unprivileged process may. */
		if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
			rl.rlim_cur = want;
	}
	return rl.rlim_cur == RLIM_INFINITY ? (unsigned long)-1 :
	    (unsigned long)rl.rlim_cur;
}

unsigned long
qlimit_reserved_files(const struct conf *c, unsigned count,
    unsigned long nofile)
{
	unsigned long conns;

	if (count == 0)
		count = 1;
	/* This queue manager's share, as remote_new counts it. */
	conns = (c->remote_connections + count - 1) / count;
	return FILES_OWN + (unsigned long)c->queue_passes * FILES_PER_PASS +
	    DNS_SOCKETS_MAX + conns * FILES_PER_CONNECTION +
	    nofile / MARGIN_DIVISOR;
}

unsigned
qlimit_inflight(const struct conf *c, unsigned count, unsigned long nofile)
{
	unsigned long reserved = qlimit_reserved_files(c, count, nofile);
	unsigned long n, ceiling;

	if (count == 0)
		count = 1;
	ceiling = (QLIMIT_INFLIGHT_MAX + count - 1) / count;
	n = nofile > reserved ? nofile - reserved : 0;
	if (n > ceiling)
		n = ceiling;
	/* With fewer files than that the queue manager is short anyway;
	 * one message at a time still moves the queue. */
	return n < 1 ? 1 : (unsigned)n;
}
