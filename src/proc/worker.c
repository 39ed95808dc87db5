/*
 * worker.c - an event-loop process (see worker.h).  Forked by the
 * master after the listening sockets are bound; drops to the
 * unprivileged user before it touches the network.
 *
 * Signals: SIGTERM closes every session with 421 and exits; SIGUSR1
 * (sent by the master on reload) stops accepting and exits when the
 * last session has ended.
 */
#include "proc/worker.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "queue/qcommit.h"
#include "queue/qstore.h"
#include "queue/qid.h"
#include "smtp/smtp_session.h"
#include "pop3/pop3_session.h"
#include "policy/popbsmtp.h"
#include "state/state.h"
#include "auth/authd.h"
#include "tls/tls.h"
#include "tls/keyd.h"

#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/listener.h>

#define QCOMMIT_THREADS	8	/* concurrent fsyncs per worker */
#define POP3_BOX_THREADS 2	/* mailbox opens and updates (pop3_box.c) */
#define QPOOL_SPARE	32	/* unnamed files made ahead (qpool.h) */

struct worker_listener {
	struct worker		*w;
	const struct listener	*l;
	struct evconnlistener	*evl;
};

static struct worker_listener	*wls;
static size_t			 nwls;

static int
listener_is_pop3(const struct listener *l)
{
	return l->conf->role == ROLE_POP3 || l->conf->role == ROLE_POP3S;
}

static void
worker_accept(struct evconnlistener *evl, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct worker_listener *wl = arg;

	/* One event loop serves both protocols; the listener's role says
	 * which one this connection speaks. */
	if (listener_is_pop3(wl->l))
		pop3_session_accept(wl->w, wl->l, fd, sa, (socklen_t)salen);
	else
		smtp_session_accept(wl->w, wl->l, fd, sa, (socklen_t)salen);
}

static void
worker_accept_resume(evutil_socket_t fd, short ev, void *arg)
{
	struct worker_listener *wl = arg;

	if (wl->evl)		/* NULL once the worker stops accepting */
		evconnlistener_enable(wl->evl);
}

/* Out of descriptors and the like: pause accepting for a second rather
 * than spin. */
static void
worker_accept_error(struct evconnlistener *evl, void *arg)
{
	struct worker_listener *wl = arg;
	struct timeval tv = { 1, 0 };

	log_warn("worker: accept on %s", wl->l->name);
	evconnlistener_disable(evl);
	event_base_once(wl->w->base, -1, EV_TIMEOUT, worker_accept_resume, wl,
	    &tv);
}

static void
worker_stop_accepting(void)
{
	for (size_t i = 0; i < nwls; i++)
		if (wls[i].evl) {
			evconnlistener_free(wls[i].evl);
			wls[i].evl = NULL;
		}
}

/* Every worker looks at the access map and the users view each second,
 * not only when a client happens to connect to it: otherwise a worker
 * that got no connection while a good file was in place would keep an
 * older table when the file later breaks. */
static void
worker_tick(evutil_socket_t fd, short ev, void *arg)
{
	struct worker *w = arg;
	time_t now = time(NULL);

	access_table_refresh(&w->access, now);
	rcpt_maps_refresh(&w->maps, now);
}

void
worker_session_closed(struct worker *w)
{
	w->nsessions--;
	if (w->stopping && w->nsessions == 0)
		event_base_loopbreak(w->base);
}

static void
worker_sigterm(evutil_socket_t sig, short ev, void *arg)
{
	struct worker *w = arg;
	static int terminating;

	/* Not w->stopping: a worker draining after a reload has that set
	 * too, and must still close its sessions now when told to stop. */
	if (terminating)
		return;
	terminating = 1;
	log_info("worker %u: stopping, %u sessions open", w->index,
	    w->nsessions);
	w->stopping = 1;
	worker_stop_accepting();
	smtp_session_shutdown_all(w);
	pop3_session_shutdown_all(w);
	if (w->nsessions == 0)
		event_base_loopbreak(w->base);
}

static void
worker_sigusr1(evutil_socket_t sig, short ev, void *arg)
{
	struct worker *w = arg;

	log_info("worker %u: draining, %u sessions open", w->index,
	    w->nsessions);
	worker_stop_accepting();
	/* Sessions finish on their own; exit when the last one ends. */
	w->stopping = 1;
	if (w->nsessions == 0)
		event_base_loopbreak(w->base);
}

static void
worker_drop_privileges(uid_t uid, gid_t gid)
{
	if (uid == (uid_t)-1)
		return;
	if (setgroups(1, &gid) == -1 || setresgid(gid, gid, gid) == -1 ||
	    setresuid(uid, uid, uid) == -1)
		fatal("worker: cannot drop privileges");
	if (setuid(0) != -1)
		fatalx("worker: privileges could be regained");
}

void
worker_main(const struct conf *conf, const struct access_table *access,
    struct listener *ls, size_t nls, unsigned index, unsigned procno,
    uid_t uid, gid_t gid)
{
	static struct worker w;
	struct event *ev_term, *ev_int, *ev_usr1, *ev_tick;
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGHUP, SIG_IGN);	/* the master reloads */
	signal(SIGPIPE, SIG_IGN);
	/* The certificate is read now, while it still can be; the private
	 * key stays in the key process, which signs for the handshakes
	 * (tls/keyd.h).  The connection to it is made before the drop. */
	for (size_t i = 0; i < nls; i++)
		if (ls[i].conf->tls != TLS_NONE && w.tls_ctx == NULL) {
			char cert[PATH_MAX], key[PATH_MAX], err[512];

			tls_paths(conf, cert, sizeof cert, key, sizeof key);
			keyclient_init(conf);
			if ((w.tls_ctx = tls_server_ctx_keyd(cert, key, err,
			    sizeof err)) == NULL)
				fatalx("worker: %s", err);
		}
	/* The access map as the master loaded and checked it (as root: a
	 * file only root can read still applies, and changes to it then
	 * need SIGHUP; docs/access.md).  A file that broke since then
	 * cannot leave a new worker without rules. */
	access_table_copy(&w.access, access, conf->access);
	worker_drop_privileges(uid, gid);

	w.conf = conf;
	w.index = index;
	TAILQ_INIT(&w.smtp_sessions);
	TAILQ_INIT(&w.pop3_sessions);
	qid_init(procno);
	if ((w.base = event_base_new()) == NULL)
		fatalx("worker: event_base_new failed");
	if (qcommit_init(w.base, QCOMMIT_THREADS) == -1)
		fatal("worker: commit threads");
	/* Without unnamed files, sessions make named ones. */
	if (qstore_spares_start(conf->spool, QPOOL_SPARE) == -1)
		log_debug("worker %u: no spare message files: %s", index,
		    strerror(errno));
	for (size_t i = 0; i < nls; i++)
		if (listener_is_pop3(&ls[i])) {
			if (pop3_box_init(w.base, POP3_BOX_THREADS) == -1)
				fatal("worker: mailbox threads");
			break;
		}
	rcpt_maps_init_view(&w.maps, conf);
	auth_client_init(w.base, conf);
	state_async_init(w.base);
	popbsmtp_worker_init(w.base, conf, index);

	wls = xcalloc(nls, sizeof *wls);
	nwls = nls;
	for (size_t i = 0; i < nls; i++) {
		wls[i].w = &w;
		wls[i].l = &ls[i];
		wls[i].evl = evconnlistener_new(w.base, worker_accept, &wls[i],
		    LEV_OPT_CLOSE_ON_EXEC, 0, ls[i].fd);
		if (wls[i].evl == NULL)
			fatalx("worker: cannot listen on %s", ls[i].name);
		evconnlistener_set_error_cb(wls[i].evl, worker_accept_error);
	}
	{
		struct timeval second = { 1, 0 };

		ev_tick = event_new(w.base, -1, EV_PERSIST, worker_tick, &w);
		event_add(ev_tick, &second);
	}
	ev_term = evsignal_new(w.base, SIGTERM, worker_sigterm, &w);
	ev_int = evsignal_new(w.base, SIGINT, worker_sigterm, &w);
	ev_usr1 = evsignal_new(w.base, SIGUSR1, worker_sigusr1, &w);
	evsignal_add(ev_term, NULL);
	evsignal_add(ev_int, NULL);
	evsignal_add(ev_usr1, NULL);

	log_debug("worker %u: running", index);
	event_base_dispatch(w.base);

	qcommit_shutdown();
	pop3_box_shutdown();
	qstore_spares_stop();
	auth_client_shutdown();
	state_async_shutdown();
	popbsmtp_worker_shutdown();
	rcpt_maps_free(&w.maps);
	access_table_free(&w.access);
	SSL_CTX_free(w.tls_ctx);
	keyclient_shutdown();
	event_free(ev_tick);
	event_free(ev_term);
	event_free(ev_int);
	event_free(ev_usr1);
	free(wls);
	event_base_free(w.base);
	log_debug("worker %u: exited", index);
	exit(0);
}
