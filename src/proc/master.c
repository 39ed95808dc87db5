/*
 * master.c - process supervision (see master.h).  The master never
 * talks to the network: it binds, forks, waits for signals and children.
 * Signals are blocked and taken synchronously with sigtimedwait(2), so
 * there is no handler code to get wrong.
 */
#include "proc/master.h"
#include "lib/log.h"
#include "lib/strutil.h"
#include "lib/xalloc.h"
#include "auth/authd.h"
#include "auth/userview.h"
#include "auth/userdb_pg.h"
#include "deliver/remote.h"
#include "tls/tls.h"
#include "tls/keyd.h"
#include "proc/worker.h"
#include "proc/sdnotify.h"
#include "queue/pickup.h"
#include "queue/qmgr.h"
#include "queue/qstore.h"
#include "policy/connlimit.h"
#include "policy/ratelimit.h"
#include "policy/popbsmtp.h"
#include "policy/access.h"

#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#define MASTER_STOP_GRACE	20	/* seconds before SIGKILL at shutdown */

/*
 * The processes the master runs (STYLE.md section 2): one table says
 * what each is, one routine starts any of them, one restarts any that
 * dies.  Each child closes what it must not hold: only workers keep the
 * listening sockets, only the auth process and the key process their own
 * sockets.
 */
enum proc_kind { PROC_AUTHD, PROC_KEYD, PROC_WORKER, PROC_QMGR, PROC_PICKUP };

static const struct proc_def {
	const char	*name;		/* in logs */
	int		 procno;	/* writes queue ids: a number of its own */
	int		 reload_sig;	/* SIGUSR1: finish what it does, then go */
} proc_defs[] = {
	[PROC_AUTHD]	= { "auth process",	0, SIGTERM },
	[PROC_KEYD]	= { "key process",	0, SIGTERM },
	[PROC_WORKER]	= { "worker",		1, SIGUSR1 },
	[PROC_QMGR]	= { "queue manager",	1, SIGUSR1 },
	[PROC_PICKUP]	= { "pickup",		1, SIGUSR1 },
};

struct child {
	pid_t		 pid;
	enum proc_kind	 kind;
	unsigned	 index;		/* workers: 0..workers-1; queue
					   managers: 0..mctx.qmgr_count-1 */
	time_t		 started;
	int		 draining;	/* an old generation finishing its work */
};

static struct child	*children;
static size_t		 nchildren;
/* Every spawn gets a fresh number for its queue ids, so a restarted or
 * reloaded process never shares one with a process still running. */
static unsigned		 next_procno;
static int		 spawn_quiet;	/* retrying: no warning per fork */
static int		 authd_fd = -1;	/* the auth process's listening socket */
static int		 keyd_fd = -1;	/* the key process's listening socket */

/* What every child needs; set once by master_run, conf and access on
 * reload. */
static struct {
	struct conf	*conf;
	struct access_table access;	/* the last good access map: new
					 * workers start from it */
	struct listener	*ls;
	size_t		 nls;
	uid_t		 uid;
	gid_t		 gid;
	unsigned	 qmgr_count;	/* of the current generation: fixed
					 * until a reload, whatever the CPUs */
} mctx;

/* The child's side of a fork: keep only what this kind may hold. */
static void __attribute__((noreturn))
master_child(enum proc_kind kind, unsigned index, unsigned procno)
{
	struct conf *c = mctx.conf;

	if (kind != PROC_WORKER)
		for (size_t i = 0; i < mctx.nls; i++)
			close(mctx.ls[i].fd);
	if (kind != PROC_AUTHD && authd_fd != -1)
		close(authd_fd);
	if (kind != PROC_KEYD && keyd_fd != -1)
		close(keyd_fd);
	if (kind != PROC_QMGR)
		remote_forget_credentials();
	switch (kind) {
	case PROC_AUTHD:
		authd_main(c, authd_fd);
	case PROC_KEYD:
		keyd_main(c, keyd_fd);
	case PROC_WORKER:
		worker_main(c, &mctx.access, mctx.ls, mctx.nls, index, procno,
		    mctx.uid, mctx.gid);
	case PROC_QMGR:
		qmgr_main(c, procno, index, mctx.qmgr_count, mctx.uid,
		    mctx.gid);
	case PROC_PICKUP:
		pickup_main(c, procno, mctx.uid, mctx.gid);
	}
	fatalx("master: no such process kind %d", (int)kind);
}

static pid_t
master_spawn(enum proc_kind kind, unsigned index)
{
	unsigned procno = 0;
	pid_t pid;

	if (kind == PROC_QMGR && !mctx.conf->queue_manager)
		return 0;		/* "queue-manager off" */
	if (proc_defs[kind].procno)
		procno = next_procno = next_procno % 4095 + 1;
	if (kind == PROC_WORKER)
		connlimit_before_fork();	/* the worker's column of counts */
	pid = fork();
	if (kind == PROC_WORKER && pid != 0)
		connlimit_after_fork(pid);
	if (pid == -1) {
		if (!spawn_quiet)
			log_warn("master: fork %s", proc_defs[kind].name);
		return -1;
	}
	if (pid == 0)
		master_child(kind, index, procno);
	children = xreallocarray(children, nchildren + 1, sizeof *children);
	memset(&children[nchildren], 0, sizeof children[nchildren]);
	children[nchildren].pid = pid;
	children[nchildren].kind = kind;
	children[nchildren].index = index;
	children[nchildren].started = time(NULL);
	nchildren++;
	return pid;
}

/*
 * Children whose fork failed after the start (no memory, or the
 * process limit reached): tried again at each tick of the loop until
 * they start, so that a passing shortage cannot leave the server
 * without its auth or key process, or short of workers, until a
 * reload.
 */
static struct owed {
	enum proc_kind	 kind;
	unsigned	 index;
} *owed;
static size_t nowed;
static time_t owed_next;	/* the next try, a second after a failure */

static void
master_spawn_or_owe(enum proc_kind kind, unsigned index)
{
	if (master_spawn(kind, index) != -1)
		return;
	owed = xreallocarray(owed, nowed + 1, sizeof *owed);
	owed[nowed].kind = kind;
	owed[nowed++].index = index;
	owed_next = time(NULL) + 1;
}

/* One line per try, however many are owed. */
static void
master_spawn_owed(void)
{
	struct owed *list = owed;
	size_t n = nowed;

	if (n == 0 || time(NULL) < owed_next)
		return;
	owed = NULL;
	nowed = 0;
	spawn_quiet = 1;
	for (size_t i = 0; i < n; i++)
		master_spawn_or_owe(list[i].kind, list[i].index);
	spawn_quiet = 0;
	if (nowed > 0)
		log_warn("master: %zu of %zu owed children still cannot be "
		    "forked; trying again every second", nowed, n);
	else
		log_info("master: owed children started: %zu", n);
	free(list);
}

static void
master_signal_all(int sig, int draining_too)
{
	for (size_t i = 0; i < nchildren; i++)
		if (draining_too || !children[i].draining)
			kill(children[i].pid, sig);
}

/* Reap exited children and restart any that died while it should have
 * been running. */
static void
master_reap(int stopping)
{
	pid_t pid;
	int status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct child dead;
		size_t i;

		for (i = 0; i < nchildren && children[i].pid != pid; i++)
			;
		if (i == nchildren)
			continue;
		/* Whatever connections it counted are gone with it. */
		connlimit_child_exited(pid);
		dead = children[i];
		children[i] = children[--nchildren];
		if (stopping || dead.draining)
			continue;
		log_warnx("master: %s %u (pid %d) %s %d; restarting it",
		    proc_defs[dead.kind].name, dead.index, (int)pid,
		    WIFSIGNALED(status) ? "killed by signal" :
		    "exited with status", WIFSIGNALED(status) ?
		    WTERMSIG(status) : WEXITSTATUS(status));
		/* A child that dies at once would spin: slow it down. */
		if (time(NULL) - dead.started < 2)
			sleep(1);
		master_spawn_or_owe(dead.kind, dead.index);
	}
}

static int
listeners_equal(const struct conf *a, const struct conf *b)
{
	if (a->nlisteners != b->nlisteners)
		return 0;
	for (size_t i = 0; i < a->nlisteners; i++) {
		const struct listen_conf *x = &a->listeners[i], *y = &b->listeners[i];
		if (x->role != y->role || x->port != y->port ||
		    strcmp(x->addr, y->addr) != 0)
			return 0;
	}
	return 1;
}

static unsigned
worker_count(const struct conf *c)
{
	long n;

	if (c->workers)
		return c->workers;
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > 64 ? 64 : (unsigned)n;
}

/* SIGHUP: parse the file again; if it is good, start a new generation of
 * workers with it and let the old one finish its sessions (SIGUSR1).
 * A bad file changes nothing. */
static void
master_reload(struct conf **cp)
{
	struct listener *ls = mctx.ls;
	size_t nls = mctx.nls;
	uid_t uid = mctx.uid;
	gid_t gid = mctx.gid;
	struct conf *old = *cp, *c = xcalloc(1, sizeof *c);
	struct access_table access;
	size_t i, n;
	int nerr;

	log_info("master: reloading %s", old->path);
	if (conf_load(old->path, c, stderr) != 0) {
		log_warnx("master: %s has errors; keeping the running "
		    "configuration", old->path);
		conf_free(c);
		free(c);
		return;
	}
	/* New workers start from this table: a broken map keeps the
	 * running generation and its table. */
	if (access_table_load(&access, c->access, stderr, &nerr) == -1) {
		log_warnx("master: %s has %d error%s; keeping the running "
		    "configuration", c->access, nerr, nerr == 1 ? "" : "s");
		access_table_free(&access);
		conf_free(c);
		free(c);
		return;
	}
	if (!listeners_equal(old, c)) {
		log_warnx("master: listeners changed in %s; that needs a "
		    "restart, keeping the running configuration", old->path);
		access_table_free(&access);
		conf_free(c);
		free(c);
		return;
	}
	/* New workers load the certificate again: check it first. */
	if (tls_prepare(c) == -1) {
		log_warnx("master: TLS certificate problem; keeping the running "
		    "configuration");
		access_table_free(&access);
		conf_free(c);
		free(c);
		return;
	}
	/* Last check: it also loads the relay credentials and CAs that the
	 * next queue manager inherits (only when all of them are good). */
	if (remote_check_config(c, stderr) != 0) {
		log_warnx("master: relay credentials or CA problem; keeping "
		    "the running configuration");
		access_table_free(&access);
		conf_free(c);
		free(c);
		return;
	}
	/* Same listeners in the same order: point them at the new conf. */
	for (i = 0; i < nls; i++)
		ls[i].conf = &c->listeners[ls[i].conf - old->listeners];
	for (i = 0; i < nchildren; i++) {
		if (children[i].draining)
			continue;
		children[i].draining = 1;
		/* Workers finish their sessions; the auth process has none
		 * worth keeping (clients get 454 and retry); the key process
		 * restarts with the key that goes with the new certificate. */
		kill(children[i].pid, proc_defs[children[i].kind].reload_sig);
	}
	mctx.conf = c;
	access_table_free(&mctx.access);
	mctx.access = access;
	(void)popbsmtp_prepare(c, uid, gid);	/* it logs a failure */
	/* A whole new set: what the old one still owed is not wanted. */
	free(owed);
	owed = NULL;
	nowed = 0;
	master_spawn_or_owe(PROC_AUTHD, 0);
	master_spawn_or_owe(PROC_KEYD, 0);
	n = worker_count(c);
	for (i = 0; i < n; i++)
		master_spawn_or_owe(PROC_WORKER, (unsigned)i);
	/* Each new queue manager waits for the old one with its index. */
	mctx.qmgr_count = qmgr_count(c);
	if (qmgr_prepare(c, mctx.qmgr_count, uid, gid) == 0)
		for (unsigned q = 0; q < mctx.qmgr_count; q++)
			master_spawn_or_owe(PROC_QMGR, q);
	if (pickup_prepare(c, uid, gid) == 0)
		master_spawn_or_owe(PROC_PICKUP, 0);
	/* The old workers have their own copy of the old configuration. */
	conf_free(old);
	free(old);
	*cp = c;
	log_info("master: reloaded; %u workers started", (unsigned)n);
}

/* libevent's own complaints ("Epoll ADD(1) on fd 13 failed") in the
 * log's format and destination, not as bare lines on stderr; every
 * child inherits the callback. */
static void
master_libevent_log(int severity, const char *msg)
{
	if (severity >= EVENT_LOG_WARN)
		log_warnx("libevent: %s", msg);
	else if (severity == EVENT_LOG_MSG)
		log_info("libevent: %s", msg);
}

int
master_run(struct conf *c, struct access_table *access, int verbose)
{
	struct listener *ls = NULL;
	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1;
	sigset_t set;
	int nls, stopping = 0;
	time_t stop_deadline = 0;
	/* as written at start: a reload does not move it */
	static char pid_file[PATH_MAX];
	unsigned n;

	log_init(c->log_syslog ? LOG_DEST_SYSLOG : LOG_DEST_STDERR, verbose);
	event_set_log_callback(master_libevent_log);
	if (geteuid() == 0) {
		struct passwd *pw = getpwnam(c->user);

		if (pw == NULL)
			fatalx("user '%s' does not exist: create it (useradd "
			    "--system --no-create-home --shell /usr/sbin/nologin "
			    "%s) or name another with 'user' in %s", c->user,
			    c->user, c->path);
		if (pw->pw_uid == 0)
			fatalx("user '%s' is root: the network-facing workers "
			    "must not run as root", c->user);
		uid = pw->pw_uid;
		gid = pw->pw_gid;
	}
	/* A smarthost's credentials file must be there, well formed and
	 * private, and its CA file loadable, before anything starts
	 * (problems as "FILE: what"). */
	if (remote_check_config(c, stderr) != 0)
		fatalx("master: remote delivery is misconfigured; see above");
	if (qstore_prepare(c->spool, uid, gid) == -1)
		fatalx("master: cannot prepare the spool %s", c->spool);
	/* Counted once: the managers spawned below are exactly those
	 * prepared here, whatever CPUs come and go meanwhile. */
	mctx.qmgr_count = qmgr_count(c);
	if (qmgr_prepare(c, mctx.qmgr_count, uid, gid) == -1)
		fatalx("master: cannot prepare the queue manager's directories");
	if (pickup_prepare(c, uid, gid) == -1)
		fatalx("master: cannot prepare the maildrop");
	if (popbsmtp_prepare(c, uid, gid) == -1)
		fatalx("master: cannot prepare the POP-before-SMTP grants");
	if (tls_prepare(c) == -1)
		fatalx("master: TLS is not usable; see above");
	if ((nls = listener_bind_all(c->listeners, c->nlisteners, &ls,
	    stderr)) == -1)
		fatalx("master: cannot bind the configured listeners");
	if ((authd_fd = authd_listen(c, uid, gid)) == -1)
		fatalx("master: cannot create the auth socket");
	if ((keyd_fd = keyd_listen(c, uid, gid)) == -1)
		fatalx("master: cannot create the key process's socket");
	/* The workers' first look at the users must find the view; the auth
	 * process keeps it current from then on.  A users database is read by
	 * the auth process alone, which publishes the view at its start. */
	if (c->users[0] && !userdb_pg_is_url(c->users)) {
		struct userdb db;

		if (userdb_load(c->users, &db, stderr) == 0)
			(void)userview_publish(c, &db, gid);
		else
			log_warnx("master: %s has errors; workers start without "
			    "users", c->users);
		userdb_free(&db);
	}
	mctx.conf = c;
	mctx.ls = ls;
	mctx.nls = (size_t)nls;
	mctx.uid = uid;
	mctx.gid = gid;
	mctx.access = *access;		/* ours now */
	for (int i = 0; i < nls; i++)
		log_info("master: listening %s", ls[i].name);

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* Shared by every child forked from here on, reloads included:
	 * per-address connection counts and sending rates
	 * (docs/privsep.md). */
	connlimit_init();
	ratelimit_init();
	if (master_spawn(PROC_AUTHD, 0) == -1)
		fatalx("master: cannot start the auth process");
	/* Before the workers: they connect to it at their start. */
	if (master_spawn(PROC_KEYD, 0) == -1)
		fatalx("master: cannot start the key process");
	n = worker_count(c);
	for (unsigned i = 0; i < n; i++)
		if (master_spawn(PROC_WORKER, i) == -1)
			fatalx("master: cannot start workers");
	for (unsigned q = 0; q < mctx.qmgr_count; q++)
		if (master_spawn(PROC_QMGR, q) == -1)
			fatalx("master: cannot start the queue managers");
	if (master_spawn(PROC_PICKUP, 0) == -1)
		fatalx("master: cannot start the pickup process");
	log_info("master: started %u workers, hostname %s, config %s", n,
	    c->hostname, c->path);
	/* Listeners bound, children started: tell whoever waits. */
	(void)strlcpy(pid_file, c->pid_file, sizeof pid_file); /* same size */
	if (pid_file[0])
		(void)pidfile_write(pid_file);
	{
		char ready[64];
		snprintf(ready, sizeof ready, "READY=1\nMAINPID=%d",
		    (int)getpid());
		(void)sdnotify_send(ready);
	}

	for (;;) {
		struct timespec tick = { 1, 0 };
		int sig = sigtimedwait(&set, NULL, &tick);

		switch (sig) {
		case SIGTERM:
		case SIGINT:
			if (!stopping) {
				log_info("master: stopping");
				(void)sdnotify_send("STOPPING=1");
				stopping = 1;
				stop_deadline = time(NULL) + MASTER_STOP_GRACE;
				master_signal_all(SIGTERM, 1);
			}
			break;
		case SIGHUP:
			if (!stopping)
				master_reload(&c);
			break;
		default:		/* SIGCHLD, or the tick */
			break;
		}
		master_reap(stopping);
		if (!stopping)
			master_spawn_owed();
		if (stopping && nchildren == 0)
			break;
		if (stopping && time(NULL) > stop_deadline) {
			log_warnx("master: workers still running after %ds; "
			    "killing them", MASTER_STOP_GRACE);
			master_signal_all(SIGKILL, 1);
			stop_deadline = time(NULL) + 5;
		}
	}
	for (int i = 0; i < nls; i++)
		close(ls[i].fd);
	free(ls);
	free(children);
	free(owed);
	if (pid_file[0])
		pidfile_remove(pid_file);
	log_info("master: stopped");
	/* The configuration is ours: a reload may have replaced the one
	 * the caller passed in (master_reload frees the old one). */
	access_table_free(&mctx.access);
	conf_free(c);
	free(c);
	return 0;
}
