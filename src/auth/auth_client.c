/*
 * auth_client.c - the workers' side of the auth process: sends SASL
 * steps, matches answers to waiting sessions by request id, and
 * reconnects by itself.  While authd is unreachable every exchange gets
 * a temporary failure (454 4.7.0), never a success.  While it is only
 * slow (stopped for a moment, or behind a burst of logins), what its
 * socket cannot take yet waits in a queue (proc/msgq.h).
 */
#include "auth/authd.h"
#include "lib/base64.h"
#include "lib/log.h"
#include "lib/strutil.h"
#include "lib/xalloc.h"
#include "proc/msgq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

struct auth_pending {
	uint64_t		 reqid;
	auth_client_cb		 cb;
	void			*arg;
	TAILQ_ENTRY(auth_pending) entry;
};

static struct {
	struct event_base	*base;
	const struct conf	*conf;
	int			 fd;
	struct msgq		*q;		/* what goes to fd */
	struct event		*ev, *retry;
	uint64_t		 next_reqid;
	int			 warned;	/* log an outage once */
	TAILQ_HEAD(, auth_pending) pending;
} ac = { .fd = -1 };

static void	auth_client_connect(evutil_socket_t, short, void *);

static struct auth_pending *
pending_find(uint64_t reqid)
{
	struct auth_pending *p;

	TAILQ_FOREACH(p, &ac.pending, entry)
		if (p->reqid == reqid)
			return p;
	return NULL;
}

/* The connection is gone: every waiting session gets a tempfail. */
static void
auth_client_lost(void)
{
	struct timeval tv = { 1, 0 };

	if (ac.ev) {
		event_free(ac.ev);
		ac.ev = NULL;
	}
	msgq_free(ac.q);
	ac.q = NULL;
	if (ac.fd != -1) {
		close(ac.fd);
		ac.fd = -1;
	}
	while (!TAILQ_EMPTY(&ac.pending)) {
		struct auth_pending *p = TAILQ_FIRST(&ac.pending);
		TAILQ_REMOVE(&ac.pending, p, entry);
		p->cb(p->arg, 1, AUTH_RESULT_TEMPFAIL, NULL, 0, NULL);
		free(p);
	}
	evtimer_add(ac.retry, &tv);
}

static void
auth_client_read(evutil_socket_t fd, short ev, void *unused)
{
	struct msg *m = xmalloc(sizeof *m);
	int rc;

	while ((rc = msg_recv(fd, m)) == 1) {
		struct auth_pending *p = pending_find(m->reqid);
		uint32_t result;
		char user[128];
		const uint8_t *data;
		size_t len;

		if (m->type == MSG_AUTH_CHALLENGE) {
			if (msg_get_data(m, &data, &len) == -1 || msg_end(m) == -1)
				break;
			if (p)
				p->cb(p->arg, 0, AUTH_RESULT_OK, data, len, NULL);
		} else if (m->type == MSG_AUTH_RESULT) {
			if (msg_get_u32(m, &result) == -1 ||
			    result > AUTH_RESULT_BLOCKED ||
			    msg_get_str(m, user, sizeof user) == -1 ||
			    msg_end(m) == -1)
				break;
			if (p) {
				TAILQ_REMOVE(&ac.pending, p, entry);
				p->cb(p->arg, 1, result, NULL, 0, user);
				free(p);
			}
		} else
			break;
	}
	msg_free(m);
	if (rc == 1 || rc == -1) {
		log_warnx("auth: malformed message from the auth process");
		auth_client_lost();
	} else if (errno != EAGAIN && errno != EWOULDBLOCK) {
		log_warnx("auth: connection to the auth process lost");
		auth_client_lost();
	}
}

/* Messages that waited for room could not be sent after all. */
static void
auth_client_send_failed(void *unused)
{
	log_warn("auth: send");
	auth_client_lost();
}

static void
auth_client_connect(evutil_socket_t unused, short ev, void *arg)
{
	struct sockaddr_un sun;
	struct timeval tv = { 1, 0 };

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	authd_socket_path(ac.conf, sun.sun_path, sizeof sun.sun_path);
	ac.fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (ac.fd == -1 || connect(ac.fd, (struct sockaddr *)&sun,
	    sizeof sun) == -1) {
		if (!ac.warned++)
			log_warn("auth: cannot reach the auth process at %s; "
			    "retrying", sun.sun_path);
		if (ac.fd != -1)
			close(ac.fd);
		ac.fd = -1;
		evtimer_add(ac.retry, &tv);
		return;
	}
	if (ac.warned)
		log_info("auth: connected to the auth process again");
	ac.warned = 0;
	ac.ev = event_new(ac.base, ac.fd, EV_READ | EV_PERSIST, auth_client_read,
	    NULL);
	event_add(ac.ev, NULL);
	ac.q = msgq_new(ac.base, ac.fd, auth_client_send_failed, NULL);
}

void
auth_client_init(struct event_base *base, const struct conf *conf)
{
	ac.base = base;
	ac.conf = conf;
	ac.next_reqid = 1;
	TAILQ_INIT(&ac.pending);
	ac.retry = evtimer_new(base, auth_client_connect, NULL);
	auth_client_connect(-1, 0, NULL);
}

static int
auth_client_send(struct msg *m)
{
	if (ac.q == NULL || msgq_send(ac.q, m) == -1)
		return -1;
	return 0;
}

/* A new exchange, waiting for its answers. */
static struct auth_pending *
pending_new(auth_client_cb cb, void *arg)
{
	struct auth_pending *p = xcalloc(1, sizeof *p);

	p->reqid = ac.next_reqid++;
	p->cb = cb;
	p->arg = arg;
	TAILQ_INSERT_TAIL(&ac.pending, p, entry);
	return p;
}

/* Send the exchange's first message (and free it).  Returns the request
 * id, or 0 when the auth process cannot be reached: the exchange is
 * forgotten and the caller answers with a temporary failure itself. */
static uint64_t
pending_send(struct auth_pending *p, struct msg *m)
{
	uint64_t reqid = p->reqid;
	int rc = auth_client_send(m);

	msg_free(m);
	if (rc == 0)
		return reqid;
	TAILQ_REMOVE(&ac.pending, p, entry);
	free(p);
	if (ac.fd != -1) {
		log_warn("auth: send");
		auth_client_lost();
	}
	return 0;
}

uint64_t
auth_client_start(const char *mech, uint64_t session, const char *peer,
    const char *local, uint32_t flags, const uint8_t *ir, size_t irlen,
    int has_ir, auth_client_cb cb, void *arg)
{
	struct auth_pending *p = pending_new(cb, arg);
	struct msg *m = xmalloc(sizeof *m);

	msg_init(m, MSG_AUTH_START, p->reqid);
	msg_put_str(m, mech);
	msg_put_u64(m, session);
	msg_put_str(m, peer);
	msg_put_str(m, local);
	msg_put_u32(m, flags);
	msg_put_u32(m, has_ir ? 1 : 0);
	msg_put_data(m, ir ? (const void *)ir : "", ir ? irlen : 0);
	return pending_send(p, m);
}

uint64_t
auth_client_apop(const char *user, const char *peer, uint32_t flags,
    const char *timestamp, const char *digest, auth_client_cb cb, void *arg)
{
	struct auth_pending *p = pending_new(cb, arg);
	struct msg *m = xmalloc(sizeof *m);

	msg_init(m, MSG_AUTH_APOP, p->reqid);
	msg_put_str(m, user);
	msg_put_str(m, peer);
	msg_put_u32(m, flags);
	msg_put_str(m, timestamp);
	msg_put_str(m, digest);
	return pending_send(p, m);
}

void
auth_client_step(uint64_t reqid, const uint8_t *data, size_t len)
{
	struct msg *m = xmalloc(sizeof *m);

	msg_init(m, MSG_AUTH_STEP, reqid);
	msg_put_data(m, data, len);
	if (auth_client_send(m) == -1 && ac.fd != -1) {
		log_warn("auth: send");
		auth_client_lost();
	}
	msg_free(m);
}

void
auth_client_cancel(uint64_t reqid)
{
	struct auth_pending *p = pending_find(reqid);
	struct msg m;

	if (p == NULL)
		return;
	TAILQ_REMOVE(&ac.pending, p, entry);
	free(p);
	msg_init(&m, MSG_AUTH_CANCEL, reqid);
	(void)auth_client_send(&m);	/* authd forgets it on EOF anyway */
}

void
auth_client_shutdown(void)
{
	while (!TAILQ_EMPTY(&ac.pending)) {
		struct auth_pending *p = TAILQ_FIRST(&ac.pending);
		TAILQ_REMOVE(&ac.pending, p, entry);
		free(p);
	}
	if (ac.ev)
		event_free(ac.ev);
	msgq_free(ac.q);
	ac.q = NULL;
	if (ac.retry)
		event_free(ac.retry);
	if (ac.fd != -1)
		close(ac.fd);
	ac.fd = -1;
}

const char *
auth_result_name(enum msg_auth_result r)
{
	static const char *names[] = { "ok", "fail", "malformed", "tempfail",
	    "blocked" };

	return (size_t)r < sizeof names / sizeof names[0] ? names[r] : "?";
}

void
auth_challenge_write(struct evbuffer *out, const char *prefix,
    const uint8_t *data, size_t len)
{
	char *b64 = xmalloc(BASE64_ENCODED_LEN(len) + 1);

	base64_encode(b64, data, len);
	evbuffer_add_printf(out, "%s %s\r\n", prefix, b64);
	free(b64);
}
