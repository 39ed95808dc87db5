/*
 * qmgr.h - the queue managers: N processes (queue-managers), forked by
 * the master next to the workers, as the same unprivileged user.  Queue
 * manager i of N handles the messages whose qid_owner(QID, N) is i.  It
 * notices committed messages at once (inotify on queue/), resolves and
 * delivers each recipient, records every outcome in status/QID before
 * the next step, retries with back-off, bounces, and removes finished
 * messages.  The queue managers are the only writers of status/ and the
 * only processes that remove queued messages (`postern queue` only
 * renames them; src/queue/README).
 */
#ifndef POSTERN_QMGR_H
#define POSTERN_QMGR_H

#include <sys/types.h>
#include <time.h>

#include "conf/conf.h"
#include "policy/relay.h"

/* Below the spool, one per queue manager: "qmgr.I.pid", locked while
 * queue manager I runs. */
#define QMGR_PIDFILE_FMT	"qmgr.%u.pid"
#define QMGR_MAX		64

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

/* How many queue managers the configuration asks for. */
unsigned qmgr_count(const struct conf *);
/* Master, as root, before forking: the queue managers' directories,
 * their pid files and the mailboxes directory, owned by uid/gid. */
int	qmgr_prepare(const struct conf *, uid_t, gid_t);
/* The child, queue manager `index` of qmgr_count(): never returns. */
void	qmgr_main(const struct conf *, unsigned procno, unsigned index,
	    uid_t, gid_t) __attribute__((noreturn));

/* One delivery pass over queue/QID (qrun.c). */
enum qrun_result qrun_message(struct qmgr *, const char *qid, int flags,
	    time_t *next);
/* Exponential back-off after `retries` failed passes (qrun.c). */
time_t	qrun_backoff(const struct conf *, unsigned retries);
/* Remove delete/QID and its status (qrun.c). */
void	qrun_remove_deleted(struct qmgr *, const char *qid);

#endif
