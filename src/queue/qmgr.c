/*
 * qmgr.c - a queue manager process (see qmgr.h).
 *
 * Partition: queue manager i of N looks only at the qids with
 * qid_owner(qid, N) == i, wherever they come from (the start-up scan,
 * inotify, a flush); a DSN it queues has a qid of its own and goes to
 * that qid's owner like any message.  The partition is about work, not
 * safety: qrun_start takes the message's flock(2), so two queue
 * managers never run a pass on the same message at once (after a
 * reload that changes N, the old and the new partition overlap for a
 * moment, which costs a retry a second later, nothing else).
 *
 * Scheduling: every message in its part of queue/ has an entry with a
 * libevent timer for its next attempt; due entries wait on a run list,
 * and up to queue-passes of them have a pass under way at once, each on
 * a delivery thread (lib/workpool.h): a pass spends most of its time
 * waiting for fsyncs (the status records, the Maildir file and its
 * directory, the removal), and several overlap those waits.  The loop
 * itself only dispatches passes, reloads the maps (under maps_lock),
 * and runs what must stay on it: the end of a pass with remote targets
 * or a DSN to queue (qrun_end_needs_loop).  New mail arrives as
 * IN_CREATE on queue/ (the commit links a whole, fsynced unnamed file)
 * or IN_MOVED_TO (the commit's rename where unnamed files are not
 * available, or `postern queue release`); nothing else creates files
 * there.  Deletions arrive as IN_MOVED_TO on delete/.  A full scan
 * runs at start-up, after an inotify overflow, and on flush (SIGUSR2,
 * sent by `postern queue flush`).  SIGTERM, and SIGUSR1 (reload), end
 * the process once the passes under way are over.
 *
 * Remote delivery runs on the same loop (deliver/remote.h): a pass
 * hands a message's remote targets to the SMTP client and returns
 * QRUN_INFLIGHT; the entry then waits, whatever timers, flushes or
 * inotify events say, until the last remote_msg has come back
 * (qmgr_landed), and the next pass acts on the recorded outcomes.  On
 * SIGTERM/SIGUSR1 no new pass, session or transaction starts, remote
 * messages not yet in a transaction come back at once (unrecorded:
 * tried again at the next start), and the loop waits up to
 * QMGR_DRAIN_SECS for the transactions under way.
 *
 * In-flight limit: a message in flight keeps its queue file open (one
 * descriptor, whatever the number of its domains: qrun.c), so the
 * messages in flight are bounded by what the open-file limit leaves,
 * which the queue manager raises at start (qlimit.h; Postfix bounds its
 * active queue alike).  Any pass may end in flight, so passes under way
 * count too.  While the limit is reached no pass starts that could put
 * another message in flight: due entries wait on the run list, in
 * order, and start as flights land.  An entry whose next pass only acts
 * on landed outcomes (it puts nothing in flight) waits on a list of its
 * own, which goes first.  A waiting entry holds no file and no lock, so
 * `postern queue hold|delete` take it as any other.
 *
 * A message has at most one pass under way (its entry is busy); an
 * event for it meanwhile (inotify, flush) is remembered and makes it
 * due again when the pass is over.
 */
#include "queue/qmgr.h"
#include "deliver/remote.h"
#include "lib/fsio.h"
#include "lib/log.h"
#include "lib/strutil.h"
#include "lib/workpool.h"
#include "lib/xalloc.h"
#include "queue/qpath.h"
#include "queue/qid.h"
#include "queue/qlimit.h"
#include "queue/qstatus.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <search.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#define QMGR_DRAIN_SECS	10	/* at stop, for remote sessions */
TAILQ_HEAD(qlist, qentry);

struct qentry {
	char			 qid[QID_LEN + 1];
	struct event		*timer;
	struct qlist		*on_list;	/* run_list, landed_list, NULL */
	int			 inflight;	/* remote deliveries under way */
	int			 landed;	/* next pass: QRUN_F_RESULTS */
	int			 busy;		/* a pass is under way */
	int			 again;		/* due when the pass is over */
	char			*unwritten;	/* outcome records for status/QID
						   that a full disk refused */
	TAILQ_ENTRY(qentry)	 run;
	TAILQ_ENTRY(qentry)	 all;
};

static struct qmgr		 qm;
static unsigned			 qm_index, qm_count;	/* i of N */
static struct event_base	*base;
static struct event		*ev_runner;
static void			*entry_index;	/* tsearch(3) tree by qid */
/* Due entries, in order; those whose next pass acts on outcomes that
 * came back (landed) wait apart: such a pass puts nothing in flight,
 * so the in-flight limit never holds it back. */
static struct qlist		 run_list = TAILQ_HEAD_INITIALIZER(run_list);
static struct qlist		 landed_list =
				    TAILQ_HEAD_INITIALIZER(landed_list);
static TAILQ_HEAD(, qentry)	 all_list = TAILQ_HEAD_INITIALIZER(all_list);
static int			 inotify_fd = -1, wd_queue = -1, wd_delete = -1;
static int			 stopping;
static struct event		*ev_drain;
static struct workpool		*passes;
static unsigned			 nbusy;		/* passes under way */
static unsigned			 nflights;	/* entries in flight */
static unsigned			 inflight_max;	/* qlimit_inflight() */
static int			 inflight_held;	/* the limit holds back a
						   due entry (logged) */

/* One pass, handed to a delivery thread and back. */
struct pass_job {
	struct workpool_job	 job;		/* first */
	struct qentry		*e;
	int			 flags;
	char			*unwritten;	/* written before the pass */
	enum qrun_result	 res;
	time_t			 next;
	struct pass		*p;	/* qrun_end still to run on the loop */
};

/* Is qid in this queue manager's part of the queue? */
static int
qmgr_mine(const char *qid)
{
	return qid_owner(qid, qm_count) == qm_index;
}

static int
entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct qentry *)a)->qid,
	    ((const struct qentry *)b)->qid);
}

static void
runner_kick(void)
{
	if ((!TAILQ_EMPTY(&run_list) || !TAILQ_EMPTY(&landed_list)) &&
	    !stopping)
		event_active(ev_runner, 0, 0);
}

static void
entry_make_due(struct qentry *e)
{
	evtimer_del(e->timer);
	if (e->busy) {
		e->again = 1;	/* pass_done makes it due */
		return;
	}
	if (e->inflight)
		return;		/* qmgr_landed makes it due */
	if (e->on_list == NULL) {
		/* landed does not change until the entry's next pass. */
		e->on_list = e->landed ? &landed_list : &run_list;
		TAILQ_INSERT_TAIL(e->on_list, e, run);
	}
	runner_kick();
}

static void
entry_timer(evutil_socket_t fd, short ev, void *arg)
{
	entry_make_due(arg);
}

static void
entry_free(struct qentry *e)
{
	if (e->on_list != NULL)
		TAILQ_REMOVE(e->on_list, e, run);
	TAILQ_REMOVE(&all_list, e, all);
	tdelete(e, &entry_index, entry_cmp);
	event_free(e->timer);
	free(e->unwritten);
	free(e);
}

/* Schedule qid at `when` (0 or past: now). */
static void
qmgr_schedule(const char *qid, time_t when)
{
	struct qentry key, *e, **found;
	time_t now = time(NULL);

	if (!qid_valid(qid) || !qmgr_mine(qid))
		return;
	(void)strlcpy(key.qid, qid, sizeof key.qid);	/* valid: fits */
	if ((found = tfind(&key, &entry_index, entry_cmp)) != NULL)
		e = *found;
	else {
		e = xcalloc(1, sizeof *e);
		(void)strlcpy(e->qid, qid, sizeof e->qid);
		e->timer = evtimer_new(base, entry_timer, e);
		tsearch(e, &entry_index, entry_cmp);
		TAILQ_INSERT_TAIL(&all_list, e, all);
	}
	if (when <= now || e->inflight || e->busy)
		entry_make_due(e);
	else if (e->on_list == NULL) {
		struct timeval tv = { when - now, 0 };
		evtimer_add(e->timer, &tv);
	}
}

/* Nothing under way any more while stopping: the loop can end. */
static void
qmgr_maybe_done(void)
{
	if (stopping && qm.inflight == 0 && nbusy == 0)
		event_base_loopbreak(base);
}

/* On a delivery thread: the pass, and its end if that need not wait
 * for the loop. */
static void
pass_work(struct workpool_job *wj)
{
	struct pass_job *j = (struct pass_job *)wj;
	struct pass *p;

	if (j->unwritten != NULL) {
		/* Outcomes the pass must see: until they are written, no
		 * pass (it would send again what was sent). */
		if (qrun_write_records(&qm, j->e->qid, j->unwritten) == -1) {
			j->res = QRUN_DEFERRED;
			j->next = time(NULL) + (qm.conf->retry_min ?
			    (time_t)qm.conf->retry_min : 1);
			return;
		}
		free(j->unwritten);
		j->unwritten = NULL;
	}
	p = qrun_start(&qm, j->e->qid, j->flags, &j->res, &j->next);
	if (p != NULL && qrun_end_needs_loop(p))
		j->p = p;
	else if (p != NULL)
		j->res = qrun_end(p, &j->next);
}

/* Back on the loop. */
static void
pass_done(struct workpool_job *wj)
{
	struct pass_job *j = (struct pass_job *)wj;
	struct qentry *e = j->e;
	enum qrun_result res = j->res;
	time_t next = j->next;

	nbusy--;
	e->busy = 0;
	if (j->unwritten != NULL) {		/* still not written */
		e->unwritten = j->unwritten;
		e->landed = (j->flags & QRUN_F_RESULTS) != 0;
	}
	if (j->p != NULL) {
		if (stopping) {
			qrun_abandon(j->p);
			res = QRUN_DEFERRED;
		} else
			res = qrun_end(j->p, &next);
	}
	free(j);
	switch (res) {
	case QRUN_REMOVED:
	case QRUN_GONE:
		/* Back under the same name meanwhile (`postern queue
		 * release`): a new pass finds it, or finds it gone. */
		if (e->again && !stopping) {
			e->again = 0;
			entry_make_due(e);
		} else
			entry_free(e);
		break;
	case QRUN_DEFERRED:
		if (e->again) {
			e->again = 0;
			next = 0;
		}
		qmgr_schedule(e->qid, next);
		break;
	case QRUN_INFLIGHT:
		e->again = 0;
		e->inflight = 1;
		nflights++;
		break;
	}
	qmgr_maybe_done();
	runner_kick();
}

/* The maps change only here, on the loop, under maps_lock: a look at
 * the files once a second, as each pass used to (the passes on the
 * threads only read them). */
static void
qmgr_maps_refresh(void)
{
	time_t now = time(NULL);

	if (now == qm.maps.checked)
		return;
	pthread_rwlock_wrlock(&qm.maps_lock);
	rcpt_maps_refresh(&qm.maps, now);
	pthread_rwlock_unlock(&qm.maps_lock);
}

/* Start e's pass on a delivery thread. */
static void
pass_start(struct qentry *e)
{
	struct pass_job *j = xcalloc(1, sizeof *j);

	TAILQ_REMOVE(e->on_list, e, run);
	e->on_list = NULL;
	e->busy = 1;
	j->job.work = pass_work;
	j->job.done = pass_done;
	j->e = e;
	j->flags = e->landed ? QRUN_F_RESULTS : 0;
	e->landed = 0;
	j->unwritten = e->unwritten;
	e->unwritten = NULL;
	nbusy++;
	workpool_submit(passes, &j->job);
}

/* May a pass that can put its message in flight start?  Any pass under
 * way may end in flight, so they count as in flight already. */
static int
inflight_room(void)
{
	return nflights + nbusy < inflight_max;
}

/* One line when the limit starts holding due entries back, one when it
 * no longer does and the messages in flight are down to three quarters
 * of it (not one per message at the edge). */
static void
inflight_note(void)
{
	if (!inflight_held && !TAILQ_EMPTY(&run_list) &&
	    nbusy < qm.conf->queue_passes && !inflight_room()) {
		inflight_held = 1;
		log_info("queue: in-flight limit reached: %u messages with "
		    "remote servers and %u passes under way (limit %u); due "
		    "messages wait for them", nflights, nbusy, inflight_max);
	} else if (inflight_held && TAILQ_EMPTY(&run_list) &&
	    nflights + nbusy <= inflight_max - inflight_max / 4) {
		inflight_held = 0;
		log_info("queue: in-flight limit cleared: %u messages with "
		    "remote servers and %u passes under way (limit %u)",
		    nflights, nbusy, inflight_max);
	}
}

/* Due entries get their pass, up to queue-passes at once: first those
 * that act on outcomes that came back (they put nothing in flight),
 * then the others in order, while the in-flight limit leaves room. */
static void
qmgr_runner(evutil_socket_t fd, short ev, void *arg)
{
	struct qentry *e;

	if (stopping)
		return;
	qmgr_maps_refresh();
	while (nbusy < qm.conf->queue_passes &&
	    (e = TAILQ_FIRST(&landed_list)) != NULL)
		pass_start(e);
	while (nbusy < qm.conf->queue_passes && inflight_room() &&
	    (e = TAILQ_FIRST(&run_list)) != NULL)
		pass_start(e);
	inflight_note();
}

/* The last remote_msg of qid's pass came back, its outcomes recorded:
 * the pass that acts on them is due. */
static void
qmgr_landed(const char *qid, char *unwritten)
{
	struct qentry key, **found;

	(void)strlcpy(key.qid, qid, sizeof key.qid);	/* fits */
	found = tfind(&key, &entry_index, entry_cmp);
	if (found != NULL && (*found)->inflight) {
		(*found)->inflight = 0;
		nflights--;		/* room: entry_make_due kicks */
	}
	if (found == NULL || stopping) {
		if (unwritten != NULL)
			log_warnx("%s queue: outcomes lost with the queue "
			    "manager's stop; their recipients may be sent "
			    "again", qid);
		free(unwritten);
		qmgr_maybe_done();
		return;
	}
	(*found)->landed = 1;
	if (unwritten != NULL) {
		/* Not expected (no pass runs while a flight is out, and a
		 * pass that could not write them put them back), but
		 * records are never dropped. */
		if ((*found)->unwritten != NULL) {
			size_t a = strlen((*found)->unwritten);
			size_t b = strlen(unwritten);

			(*found)->unwritten = xreallocarray((*found)->unwritten,
			    a + b + 1, 1);
			memcpy((*found)->unwritten + a, unwritten, b + 1);
			free(unwritten);
		} else
			(*found)->unwritten = unwritten;
	}
	entry_make_due(*found);
}

static void
qmgr_drain_timeout(evutil_socket_t fd, short ev, void *arg)
{
	log_info("queue: %u remote deliveries and %u passes still under "
	    "way; they are retried at the next start", qm.inflight, nbusy);
	event_base_loopbreak(base);
}

/* When a message found at start-up is due: its recorded next retry. */
static time_t
qmgr_due(const char *qid)
{
	struct qstatus st;
	time_t when = 0;

	if (qstatus_load(qm.conf->spool, qid, &st) == 0)
		when = st.next_retry;
	qstatus_close(&st);
	return when;
}

static void
qmgr_scan_dir(const char *sub, void (*fn)(const char *qid))
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d;

	(void)qpath_make(path, sizeof path, qm.conf->spool, sub, "");
	if ((d = opendir(path)) == NULL) {
		log_warn("queue: opendir %s", path);
		return;
	}
	while ((de = readdir(d)) != NULL)
		if (qid_valid(de->d_name))
			fn(de->d_name);
	closedir(d);
}

static void
scan_queue_one(const char *qid)
{
	struct qentry key, **found;

	if (!qmgr_mine(qid))
		return;
	(void)strlcpy(key.qid, qid, sizeof key.qid);
	if ((found = tfind(&key, &entry_index, entry_cmp)) == NULL)
		qmgr_schedule(qid, qmgr_due(qid));
}

static void
scan_delete_one(const char *qid)
{
	if (qmgr_mine(qid))
		qrun_remove_deleted(&qm, qid);
}

/* A status file whose message is in none of queue/, hold/, delete/ was
 * left by a crash between the two unlinks of a removal.  The message
 * may be renamed from one of them to another while they are looked at
 * (`postern queue hold|release|delete`), past the one being looked at
 * into one already looked at: a second look catches that move, which
 * is one rename and so never half done. */
static void
scan_status_one(const char *qid)
{
	static const char *dirs[] = { "queue", "hold", "delete", "incoming" };
	char path[PATH_MAX];

	if (!qmgr_mine(qid))
		return;
	for (int look = 0; look < 2; look++)
		for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
			(void)qpath_make(path, sizeof path, qm.conf->spool,
			    dirs[i], qid);
			if (access(path, F_OK) == 0 || errno != ENOENT)
				return;
		}
	(void)qpath_make(path, sizeof path, qm.conf->spool, "status", qid);
	if (unlink(path) == 0)
		log_info("%s queue: removed a leftover status file", qid);
}

static void
qmgr_scan(void)
{
	qmgr_scan_dir("delete", scan_delete_one);
	qmgr_scan_dir("queue", scan_queue_one);
}

static void
qmgr_inotify(evutil_socket_t fd, short ev, void *arg)
{
	char buf[16 * 1024] __attribute__((aligned(__alignof__(struct
	    inotify_event))));
	ssize_t n;

	while ((n = read(fd, buf, sizeof buf)) > 0) {
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *ie = (struct inotify_event *)p;

			if (ie->mask & IN_Q_OVERFLOW)
				qmgr_scan();
			else if (ie->len && ie->wd == wd_queue)
				qmgr_schedule(ie->name, 0);
			else if (ie->len && ie->wd == wd_delete &&
			    qmgr_mine(ie->name))
				qrun_remove_deleted(&qm, ie->name);
			p += sizeof *ie + ie->len;
		}
	}
	if (n == -1 && errno != EAGAIN && errno != EINTR)
		log_warn("queue: inotify read");
}

static void
qmgr_flush(evutil_socket_t sig, short ev, void *arg)
{
	struct qentry *e;
	unsigned n = 0;

	qmgr_scan();
	TAILQ_FOREACH(e, &all_list, all) {
		entry_make_due(e);
		n++;
	}
	log_info("queue: flush: %u messages due now", n);
}

static void
qmgr_stop(evutil_socket_t sig, short ev, void *arg)
{
	struct timeval tv = { QMGR_DRAIN_SECS, 0 };

	if (stopping)
		return;
	stopping = 1;
	/* Only what is under way is waited for: remote messages not yet in
	 * a transaction come back now as TEMPFAIL, unrecorded (qm.stopping),
	 * and go again at the next start, without a back-off; a new
	 * transaction begun now could be cut off by the drain's bound after
	 * the server took the message, and be sent twice. */
	qm.stopping = 1;
	if (qm.remote != NULL)
		remote_quiesce(qm.remote);
	if (qm.inflight == 0 && nbusy == 0) {
		log_info("queue: stopping (signal %d)", (int)sig);
		event_base_loopbreak(base);
		return;
	}
	/* Let the passes and SMTP sessions under way finish (and their
	 * outcomes be recorded), within a bound: the master waits for us. */
	log_info("queue: stopping (signal %d) after %u remote deliveries "
	    "and %u passes", (int)sig, qm.inflight, nbusy);
	ev_drain = evtimer_new(base, qmgr_drain_timeout, NULL);
	evtimer_add(ev_drain, &tv);
}

static void
qmgr_drop_privileges(uid_t uid, gid_t gid)
{
	if (uid == (uid_t)-1)
		return;
	if (setgroups(1, &gid) == -1 || setresgid(gid, gid, gid) == -1 ||
	    setresuid(uid, uid, uid) == -1)
		fatal("queue: cannot drop privileges");
	if (setuid(0) != -1)
		fatalx("queue: privileges could be regained");
}

/* The pid file of queue manager `index`, below the spool. */
static void
qmgr_pidfile(char *path, size_t sz, const char *spool, unsigned index)
{
	char name[32];

	snprintf(name, sizeof name, QMGR_PIDFILE_FMT, index);
	(void)qpath_make(path, sz, spool, name, "");
}

/* One queue manager per index and spool: a reloaded or restarted one
 * waits here until the previous one with its index (or an orphan) has
 * let go.  `postern queue flush` asks the kernel who holds each lock
 * (F_GETLK), so a stale pid in a file can never be signalled. */
static int
qmgr_lock(const char *spool, unsigned index)
{
	char path[PATH_MAX], pid[32];
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	int fd, n;

	qmgr_pidfile(path, sizeof path, spool, index);
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) == -1)
		fatal("queue: open %s", path);
	if (fcntl(fd, F_SETLK, &fl) == -1) {
		log_info("queue: waiting for the previous queue manager");
		while (fcntl(fd, F_SETLKW, &fl) == -1)
			if (errno != EINTR)
				fatal("queue: lock %s", path);
	}
	n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
	if (ftruncate(fd, 0) == -1 || pwrite(fd, pid, (size_t)n, 0) != n)
		log_warn("queue: write %s", path);
	return fd;
}

static int
qmgr_watch(const char *sub, uint32_t mask)
{
	char path[PATH_MAX];
	int wd;

	(void)qpath_make(path, sizeof path, qm.conf->spool, sub, "");
	if ((wd = inotify_add_watch(inotify_fd, path, mask)) == -1)
		fatal("queue: inotify watch %s", path);
	return wd;
}

unsigned
qmgr_count(const struct conf *c)
{
	long n;

	if (c->queue_managers)
		return c->queue_managers > QMGR_MAX ? QMGR_MAX :
		    c->queue_managers;
	/* One per core, and at least four: a delivery spends most of its
	 * time waiting for fsyncs, which other passes overlap (each process
	 * runs queue-passes of them; bench/README.md, "End to end"). */
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 4 ? 4 : n > 16 ? 16 : (unsigned)n;
}

void
qmgr_main(const struct conf *conf, unsigned procno, unsigned index,
    unsigned count, uid_t uid, gid_t gid)
{
	struct event *ev_term, *ev_int, *ev_usr1, *ev_usr2, *ev_ino;
	pthread_rwlockattr_t rwa;
	sigset_t none;
	unsigned long nofile;
	int lockfd;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGHUP, SIG_IGN);	/* the master reloads */
	signal(SIGPIPE, SIG_IGN);
	qmgr_drop_privileges(uid, gid);
	/* Two queue managers must never run at once: if the master dies,
	 * so does this one.  (Set after the credential change, which
	 * clears it.) */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() == 1)
		_exit(0);
	qm.conf = conf;
	qm.landed = qmgr_landed;
	qm_count = count;
	qm_index = index;
	if (qm_index >= qm_count)
		fatalx("queue: manager %u of %u", qm_index, qm_count);
	lockfd = qmgr_lock(conf->spool, qm_index);
	qid_init(procno);
	/* Every message in flight holds its queue file open: as many as
	 * the open files allow, once the rest is set aside (qlimit.h). */
	nofile = qlimit_raise_open_files();
	inflight_max = qlimit_inflight(conf, qm_count, nofile);
	if (nofile < qlimit_reserved_files(conf, qm_count, nofile) + 1)
		log_warnx("queue: %lu open files are too few for "
		    "queue-passes %u and remote-connections %u; one message "
		    "at a time goes to remote servers: raise the limit "
		    "(LimitNOFILE=, ulimit -n)", nofile, conf->queue_passes,
		    conf->remote_connections);

	if ((base = event_base_new()) == NULL)
		fatalx("queue: event_base_new failed");
	if ((qm.remote = remote_new(base, conf, qm_count)) == NULL)
		log_warnx("queue: remote delivery cannot start; mail for "
		    "other domains stays queued");
	ev_runner = event_new(base, -1, 0, qmgr_runner, NULL);
	if ((passes = workpool_new(base, conf->queue_passes)) == NULL)
		fatal("queue: delivery threads");
	if ((inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) == -1)
		fatal("queue: inotify_init1");
	/* Watch before scanning, so nothing arrives unseen in between. */
	wd_queue = qmgr_watch("queue", IN_CREATE | IN_MOVED_TO);
	wd_delete = qmgr_watch("delete", IN_MOVED_TO);
	ev_ino = event_new(base, inotify_fd, EV_READ | EV_PERSIST,
	    qmgr_inotify, NULL);
	event_add(ev_ino, NULL);
	ev_term = evsignal_new(base, SIGTERM, qmgr_stop, NULL);
	ev_int = evsignal_new(base, SIGINT, qmgr_stop, NULL);
	ev_usr1 = evsignal_new(base, SIGUSR1, qmgr_stop, NULL);
	ev_usr2 = evsignal_new(base, SIGUSR2, qmgr_flush, NULL);
	evsignal_add(ev_term, NULL);
	evsignal_add(ev_int, NULL);
	evsignal_add(ev_usr1, NULL);
	evsignal_add(ev_usr2, NULL);

	/* A reload waits for the reads under way, not for every later one. */
	pthread_rwlockattr_init(&rwa);
	pthread_rwlockattr_setkind_np(&rwa,
	    PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&qm.maps_lock, &rwa);
	pthread_rwlockattr_destroy(&rwa);
	rcpt_maps_init_view(&qm.maps, conf);
	qmgr_scan_dir("status", scan_status_one);
	qmgr_scan();
	log_info("queue: manager running, mailboxes %s, delivery passes %u, "
	    "messages in flight %u (open files %lu)", conf->mailboxes,
	    conf->queue_passes, inflight_max, nofile);
	event_base_dispatch(base);

	/* Whatever is still in flight comes back as TEMPFAIL, unrecorded
	 * (qm.stopping): the next start sends it again. */
	qm.stopping = 1;
	/* Passes still under way (after the drain's bound) finish here;
	 * their ends are left to the next start. */
	workpool_free(passes);
	if (qm.remote != NULL)
		remote_free(qm.remote);
	if (ev_drain != NULL)
		event_free(ev_drain);
	while (!TAILQ_EMPTY(&all_list))
		entry_free(TAILQ_FIRST(&all_list));
	rcpt_maps_free(&qm.maps);
	pthread_rwlock_destroy(&qm.maps_lock);
	event_free(ev_term);
	event_free(ev_int);
	event_free(ev_usr1);
	event_free(ev_usr2);
	event_free(ev_ino);
	event_free(ev_runner);
	event_base_free(base);
	close(inotify_fd);
	close(lockfd);
	log_debug("queue: exited");
	exit(0);
}

int
qmgr_prepare(const struct conf *c, unsigned count, uid_t uid, gid_t gid)
{
	static const char *dirs[] = { "hold", "delete", "status", "corrupt" };
	char path[PATH_MAX];
	int fd;

	for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
		if (qpath_mkdir(c->spool, dirs[i], uid, gid) == -1)
			return -1;
	/* The spool itself belongs to root: the pid files are made here. */
	for (unsigned i = 0; i < count; i++) {
		qmgr_pidfile(path, sizeof path, c->spool, i);
		if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC,
		    0644)) == -1 ||
		    (uid != (uid_t)-1 && fchown(fd, uid, gid) == -1)) {
			log_warn("queue: %s", path);
			if (fd != -1)
				close(fd);
			return -1;
		}
		close(fd);
	}
	/* Maildirs are created by the queue manager, as its user. */
	if (mkdir_p(c->mailboxes, 0700) == -1 ||
	    (uid != (uid_t)-1 && chown(c->mailboxes, uid, gid) == -1)) {
		log_warn("queue: mailboxes %s", c->mailboxes);
		return -1;
	}
	return 0;
}
