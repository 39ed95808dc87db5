/*
 * qmgr.h - the queue manager: one process, forked by the master next to
 * the workers, as the same unprivileged user.  It notices committed
 * messages at once (inotify on queue/), resolves and delivers each
 * recipient, records every outcome in status/QID before the next step,
 * retries with back-off, bounces, and removes finished messages.  It is
 * the only writer of status/ and the only process that removes queued
 * messages (`postern queue` only renames them; src/queue/README).
 */
#ifndef POSTERN_QMGR_H
#define POSTERN_QMGR_H

#include <sys/types.h>
#include <time.h>

#include "conf/conf.h"
#include "policy/relay.h"

#define QMGR_PIDFILE	"qmgr.pid"	/* below the spool; locked while running */

struct remote;

struct qmgr {
	const struct conf	*conf;
	struct rcpt_maps	 maps;
	struct remote		*remote;	/* NULL: remote targets wait */
	unsigned		 inflight;	/* remote_msgs not yet done */
	int			 stopping;	/* drop TEMPFAIL outcomes */
	/* Every remote_msg of one pass came back and is recorded. */
	void			(*landed)(const char *qid);
};

enum qrun_result {
	QRUN_REMOVED,		/* every recipient done; files removed */
	QRUN_DEFERRED,		/* try again at *next */
	QRUN_GONE,		/* not in queue/ (held, deleted, moved) */
	QRUN_INFLIGHT,		/* remote deliveries under way: no pass
				   until q->landed(qid) */
};

/* qrun_message flags */
#define QRUN_F_RESULTS	0x1	/* after landed(): act on the recorded
				   remote outcomes, submit nothing */

/* Master, as root, before forking: the queue manager's directories,
 * the pid file and the mailboxes directory, owned by uid/gid. */
int	qmgr_prepare(const struct conf *, uid_t, gid_t);
/* The child: never returns. */
void	qmgr_main(const struct conf *, unsigned procno, uid_t, gid_t)
	    __attribute__((noreturn));

/* One delivery pass over queue/QID (qrun.c). */
enum qrun_result qrun_message(struct qmgr *, const char *qid, int flags,
	    time_t *next);
/* Exponential back-off after `retries` failed passes (qrun.c). */
time_t	qrun_backoff(const struct conf *, unsigned retries);
/* Remove delete/QID and its status (qrun.c). */
void	qrun_remove_deleted(struct qmgr *, const char *qid);

#endif
