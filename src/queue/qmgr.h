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

#include <pthread.h>
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
	pthread_rwlock_t	 maps_lock;	/* passes read maps under it;
						   the loop reloads them */
	struct remote		*remote;	/* NULL: remote targets wait */
	unsigned		 inflight;	/* remote_msgs not yet done */
	int			 stopping;	/* drop TEMPFAIL outcomes */
	/* Every remote_msg of one pass came back and is recorded, except
	 * `unwritten` (NULL, or the records that could not be appended,
	 * a line each; the callee takes it): no pass may act on the
	 * message before those are in its status file. */
	void			(*landed)(const char *qid, char *unwritten);
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
int	qmgr_prepare(const struct conf *, unsigned count, uid_t, gid_t);
/* The child, queue manager `index` of `count` (the qmgr_count() the
 * master spawned its generation with, so that a manager restarted after
 * the number of CPUs changed still splits the queue as its siblings
 * do): never returns. */
void	qmgr_main(const struct conf *, unsigned procno, unsigned index,
	    unsigned count, uid_t, gid_t) __attribute__((noreturn));

/* Append records kept by landed() to status/QID and fsync it: 0, or -1
 * with nothing known to be written (the caller keeps them). */
int	qrun_write_records(struct qmgr *, const char *qid,
	    const char *records);

/*
 * One delivery pass over queue/QID (qrun.c), in two steps, so that the
 * part that waits for the disk runs on a delivery thread (qmgr.c):
 *
 *   qrun_start  open and lock the message, read its envelope and status,
 *               make its local deliveries, and collect its remote
 *               targets and failures.  Any thread.  NULL when the pass
 *               ended early: *res says how (QRUN_GONE, or QRUN_DEFERRED
 *               until *next).
 *   qrun_end    the rest: hand the remote targets to the SMTP client,
 *               queue a DSN for the failures, mark finished recipients,
 *               remove the message or record its next retry.  On the
 *               loop when qrun_end_needs_loop() (remote delivery and
 *               DSNs live there), else on the same thread.  Frees the
 *               pass.
 *
 * qrun_abandon frees a pass without its end (the process is stopping;
 * what was recorded stays, the rest is done at the next start).
 */
struct pass;
struct pass	*qrun_start(struct qmgr *, const char *qid, int flags,
		    enum qrun_result *res, time_t *next);
int		 qrun_end_needs_loop(const struct pass *);
enum qrun_result qrun_end(struct pass *, time_t *next);
void		 qrun_abandon(struct pass *);
/* Remove delete/QID and its status (qrun.c). */
void	qrun_remove_deleted(struct qmgr *, const char *qid);

#endif
