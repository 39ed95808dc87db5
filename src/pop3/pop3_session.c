/*
 * pop3_session.c - the inbound POP3 session (RFC 1939): states, the
 * command dispatch, line input with limits, closing, and the entry
 * points the worker calls.  Runs in the workers, unprivileged, many
 * sessions per event loop, next to SMTP.
 *
 * States follow RFC 1939 section 3: AUTHORIZATION until a login
 * succeeds (USER/PASS, APOP or AUTH, all verified by the auth process),
 * then TRANSACTION over a locked snapshot of the Maildir, and UPDATE,
 * which is the QUIT handler itself.  Commands are taken one line at a
 * time; while a message streams out (SENDING), the auth process is
 * asked or a thread has the mailbox (BOX_WAIT), nothing more is read, so
 * pipelined commands (RFC 2449 PIPELINING) wait their turn.
 */
#include "pop3/pop3_int.h"
#include "state/state.h"
#include "ev/conn.h"
#include "auth/authd.h"
#include "lib/base64.h"
#include "lib/log.h"
#include "lib/netaddr.h"
#include "policy/connlimit.h"
#include "lib/strutil.h"
#include "lib/xalloc.h"
#include "tls/tls.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>

static const char *pop3_state_names[] = {
	"AUTHORIZATION", "AUTH_WAIT", "AUTH_INPUT", "TRANSACTION", "SENDING",
	"BOX_WAIT", "QUIT",
};

static void	pop3_process_input(struct pop3_session *);
static void	pop3_deadline_update(struct pop3_session *, int, int);

/* ---------------------------------------------------------------- */
/* replies, state, closing                                           */

void
pop3_enter_state(struct pop3_session *s, enum pop3_state new)
{
	if (log_verbose() > 1)
		log_debug("%016" PRIx64 " pop3 state %s -> %s", s->id,
		    pop3_state_names[s->state], pop3_state_names[new]);
	s->state = new;
}

/* Protocol errors count toward max-errors; "no such message" and the
 * like are ordinary answers that clients provoke on purpose. */
static int
pop3_reply_counts(enum pop3_reply_id id)
{
	switch (id) {
	case P_UNKNOWN:
	case P_BAD_STATE:
	case P_SYNTAX:
	case P_NUL_IN_COMMAND:
	case P_LINE_TOO_LONG:
	case P_AUTH_FAILED:
	case P_NEED_USER:
		return 1;
	default:
		return 0;
	}
}

void
pop3_reply(struct pop3_session *s, enum pop3_reply_id id, const char *arg)
{
	char line[512];
	size_t n = pop3_reply_format(line, sizeof line, id, arg);

	if (s->bev == NULL)
		return;
	evbuffer_add(bufferevent_get_output(s->bev), line, n);
	if (!pop3_reply_def(id)->ok) {
		line[n - 2] = '\0';
		log_info("%016" PRIx64 " pop3 failed-command command=\"%s\" "
		    "result=\"%s\"", s->id, s->cmdline ? s->cmdline : "", line);
		if (pop3_reply_counts(id))
			s->nerrors++;
	}
}

void
pop3_printf(struct pop3_session *s, const char *fmt, ...)
{
	va_list ap;

	if (s->bev == NULL)
		return;
	va_start(ap, fmt);
	evbuffer_add_vprintf(bufferevent_get_output(s->bev), fmt, ap);
	va_end(ap);
}

static void
pop3_free_later(evutil_socket_t fd, short ev, void *arg)
{
	pop3_free(arg);
}

/*
 * The last reply is written; the session ends when it has left (or at
 * the latest after 10 s; ev/conn.h).  Never frees here: the caller
 * still holds s.
 */
void
pop3_close_after_reply(struct pop3_session *s, const char *reason)
{
	s->close_reason = reason;
	/* An answer arriving now would take the session out of QUIT. */
	if (s->auth_reqid) {
		auth_client_cancel(s->auth_reqid);
		s->auth_reqid = 0;
	}
	state_ask_cancel(s->grant_ask);
	s->grant_ask = NULL;
	pop3_msg_close(s);
	pop3_enter_state(s, POP3_ST_QUIT);
	bufferevent_setwatermark(s->bev, EV_WRITE, 0, 0);
	conn_close_arm(&s->closer, s->w->base, s->bev, 10, pop3_free_later, s);
}

void
pop3_free(struct pop3_session *s)
{
	struct worker *w = s->w;

	if (s->auth_reqid) {
		auth_client_cancel(s->auth_reqid);
		s->auth_reqid = 0;
	}
	state_ask_cancel(s->grant_ask);
	s->grant_ask = NULL;
	conn_close_free(&s->closer);
	if (s->deadline_ev) {
		event_free(s->deadline_ev);
		s->deadline_ev = NULL;
	}
	if (s->flags & POP3_F_CONNCOUNT) {
		connlimit_release((const struct sockaddr *)&s->ss);
		s->flags &= ~POP3_F_CONNCOUNT;
	}
	pop3_msg_close(s);
	if (s->bev) {
		log_info("%016" PRIx64 " pop3 disconnect reason=%s user=%s "
		    "retr=%u dele=%u", s->id, s->close_reason ? s->close_reason :
		    "unknown", s->box_open ? s->user : "-", s->nretr, s->ndele);
		bufferevent_free(s->bev);
		s->bev = NULL;
	}
	if (s->flags & POP3_F_BOX_BUSY) {
		/* A thread still has the mailbox: the rest when it is done
		 * (pop3_box.c). */
		s->flags |= POP3_F_ORPHAN;
		return;
	}
	/* Closing without QUIT: RFC 1939 section 6, nothing is deleted. */
	if (s->box_open) {
		maildir_box_close(&s->box);
		s->box_open = 0;
	}
	TAILQ_REMOVE(&w->pop3_sessions, s, entry);
	explicit_bzero(s, sizeof *s);
	free(s);
	worker_session_closed(w);
}

void
pop3_resume(struct pop3_session *s)
{
	if (s->bev == NULL || s->state == POP3_ST_QUIT ||
	    s->state == POP3_ST_BOX_WAIT)
		return;
	conn_watch_stop(s->bev);
	if (bufferevent_enable(s->bev, EV_READ) == -1) {
		/* No longer watched (see pop3_setup_bev): closed rather
		 * than left without events. */
		log_warnx("%016" PRIx64 " pop3 cannot watch the connection",
		    s->id);
		pop3_close_after_reply(s, "no-watch");
		return;
	}
	bufferevent_trigger(s->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS |
	    BEV_TRIG_DEFER_CALLBACKS);
}

/* ---------------------------------------------------------------- */
/* commands                                                           */

typedef void (*pop3_cmd_handler)(struct pop3_session *, char *);

static const pop3_cmd_handler pop3_handlers[P3__COUNT] = {
	[P3_USER]	= pop3_cmd_user,
	[P3_PASS]	= pop3_cmd_pass,
	[P3_APOP]	= pop3_cmd_apop,
	[P3_AUTH]	= pop3_cmd_auth,
	[P3_CAPA]	= pop3_cmd_capa,
	[P3_STLS]	= pop3_cmd_stls,
	[P3_QUIT]	= pop3_cmd_quit,
	[P3_STAT]	= pop3_cmd_stat,
	[P3_LIST]	= pop3_cmd_list,
	[P3_RETR]	= pop3_cmd_retr,
	[P3_DELE]	= pop3_cmd_dele,
	[P3_NOOP]	= pop3_cmd_noop,
	[P3_RSET]	= pop3_cmd_rset,
	[P3_TOP]	= pop3_cmd_top,
	[P3_UIDL]	= pop3_cmd_uidl,
};

static void
pop3_dispatch(struct pop3_session *s, char *line, size_t len)
{
	struct pop3_cmd cmd;
	char logline[128];
	size_t loglen = len;
	int flag;

	/* Parsing splits the line in place: keep a loggable copy, never
	 * with a password, an APOP digest or an AUTH payload. */
	if (len >= 4 && (strncasecmp(line, "PASS", 4) == 0 ||
	    strncasecmp(line, "APOP", 4) == 0))
		loglen = 4;
	else if (len > 5 && strncasecmp(line, "AUTH ", 5) == 0) {
		const char *sp = memchr(line + 5, ' ', len - 5);
		loglen = sp ? (size_t)(sp - line) : len;
	}
	str_escape(logline, sizeof logline, line, loglen);
	s->cmdline = logline;
	if (pop3_cmd_parse(line, len, &cmd) == -1) {
		base64_word_hide(logline, sizeof logline, len);
		pop3_reply(s, memchr(line, '\0', len) ? P_NUL_IN_COMMAND :
		    P_UNKNOWN, NULL);
		goto done;
	}
	if (cmd.def == NULL) {
		base64_word_hide(logline, sizeof logline, len);
		pop3_reply(s, P_UNKNOWN, NULL);
		goto done;
	}
	flag = s->state == POP3_ST_TRANSACTION ? P3_F_TRANSACTION :
	    P3_F_AUTHORIZATION;
	if (!(cmd.def->flags & flag)) {
		pop3_reply(s, P_BAD_STATE, NULL);
		goto done;
	}
	/* USER must be followed by PASS at once (RFC 1939 section 7). */
	if (cmd.def->id != P3_PASS)
		s->flags &= ~POP3_F_USER;
	pop3_handlers[cmd.def->id](s, cmd.arg);
done:
	s->cmdline = NULL;
}

/* ---------------------------------------------------------------- */
/* I/O                                                                */

static void
pop3_process_input(struct pop3_session *s)
{
	const struct conf *c = s->w->conf;

	for (;;) {
		/* STLS replaces the bufferevent: look it up every time. */
		struct evbuffer *in;
		char line[POP3_AUTH_LINE_MAX + 3];
		size_t max = s->state == POP3_ST_AUTH_INPUT ?
		    POP3_AUTH_LINE_MAX : POP3_LINE_MAX;
		struct evbuffer_ptr eol;
		size_t eol_len = 0, len;

		if (s->bev == NULL || s->state == POP3_ST_QUIT ||
		    s->state == POP3_ST_AUTH_WAIT ||
		    s->state == POP3_ST_SENDING || s->state == POP3_ST_BOX_WAIT)
			return;
		if (s->nerrors >= c->max_errors) {
			pop3_reply(s, P_TOO_MANY_ERRORS, NULL);
			pop3_close_after_reply(s, "too-many-errors");
			return;
		}
		if (conn_output_full(s->bev)) {
			s->flags |= POP3_F_OUT_FULL;	/* pop3_write_cb */
			return;
		}
		in = bufferevent_get_input(s->bev);
		eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
		len = eol.pos == -1 ? evbuffer_get_length(in) : (size_t)eol.pos;
		if (eol.pos == -1 && len <= max) {
			/* wait for the rest of the line */
			pop3_deadline_update(s, 0, len > 0 ||
			    (s->flags & POP3_F_SKIP_LINE));
			return;
		}
		if ((s->flags & POP3_F_SKIP_LINE) || len + eol_len > max) {
			/* Too long: drop it, one reply per line, memory
			 * bounded while its tail arrives. */
			evbuffer_drain(in, len + eol_len);
			if (!(s->flags & POP3_F_SKIP_LINE)) {
				if (s->state == POP3_ST_AUTH_INPUT) {
					auth_client_cancel(s->auth_reqid);
					s->auth_reqid = 0;
					pop3_enter_state(s, POP3_ST_AUTHORIZATION);
				}
				pop3_reply(s, P_LINE_TOO_LONG, NULL);
			}
			if (eol.pos == -1)
				s->flags |= POP3_F_SKIP_LINE;
			else
				s->flags &= ~POP3_F_SKIP_LINE;
			continue;
		}
		/* USER/PASS, APOP and AUTH lines are most of what a POP3
		 * client sends: every line is taken as a secret. */
		conn_take_secret(in, line, len + eol_len);
		pop3_deadline_update(s, 1, 0);
		line[len] = '\0';
		if (len && line[len - 1] == '\r')
			line[--len] = '\0';
		if (s->state == POP3_ST_AUTH_INPUT)
			pop3_auth_input(s, line, len);
		else
			pop3_dispatch(s, line, len);
		explicit_bzero(line, len);	/* it may have held a password */
	}
}

/* The line deadline (deadline_ev): a finished line stops it; a partial
 * one starts it unless it is already running.  During a TLS handshake
 * nothing the line loop sees counts: the handshake's deadline runs on
 * until pop3_event_cb hears it is done. */
static void
pop3_deadline_update(struct pop3_session *s, int line_done, int partial)
{
	if (s->flags & POP3_F_HANDSHAKE)
		return;
	conn_deadline_update(s->deadline_ev, s->w->conf->smtp_timeout,
	    line_done, partial);
}

/* The handshake is one "line": it must end in time too. */
void
pop3_handshake_start(struct pop3_session *s)
{
	pop3_deadline_update(s, 1, 1);
	s->flags |= POP3_F_HANDSHAKE;
}

static void
pop3_deadline_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct pop3_session *s = arg;

	/* Waiting for the auth process, the shared store or a mailbox
	 * thread, sending a message, or leaving anyway: not the client's
	 * fault.  Reading resumes through pop3_process_input, which starts
	 * the deadline again. */
	if (s->state == POP3_ST_QUIT || s->state == POP3_ST_AUTH_WAIT ||
	    s->state == POP3_ST_BOX_WAIT || s->state == POP3_ST_SENDING)
		return;
	if (s->flags & POP3_F_HANDSHAKE) {
		/* A reply would wait behind the handshake that never
		 * ends. */
		s->close_reason = "line-deadline";
		pop3_free(s);
		return;
	}
	pop3_reply(s, P_TIMEOUT, NULL);
	pop3_close_after_reply(s, "line-deadline");
}

static void
pop3_read_cb(struct bufferevent *bev, void *arg)
{
	pop3_process_input(arg);
}

static void
pop3_write_cb(struct bufferevent *bev, void *arg)
{
	struct pop3_session *s = arg;

	if (s->state == POP3_ST_SENDING)
		pop3_pump(s);
	else if (s->state == POP3_ST_QUIT)
		conn_close_check(&s->closer);
	else if (s->flags & POP3_F_OUT_FULL) {
		s->flags &= ~POP3_F_OUT_FULL;
		pop3_resume(s);
	}
}

static void
pop3_event_cb(struct bufferevent *bev, short events, void *arg)
{
	struct pop3_session *s = arg;

	if (events & BEV_EVENT_CONNECTED) {
		/* The TLS handshake is done (STLS or implicit TLS). */
		char desc[128];

		tls_describe(bufferevent_openssl_get_ssl(bev), desc, sizeof desc);
		log_info("%016" PRIx64 " pop3 tls %s", s->id, desc);
		s->flags &= ~POP3_F_HANDSHAKE;
		pop3_deadline_update(s, 1, 0);
		return;
	}
	if ((events & BEV_EVENT_ERROR) && s->close_reason == NULL) {
		char why[160];

		if (conn_tls_error(bev, why, sizeof why)) {
			log_info("%016" PRIx64 " pop3 tls error=\"%s\"", s->id, why);
			s->close_reason = "tls-error";
		}
	}
	if (events & BEV_EVENT_TIMEOUT) {
		if (s->state == POP3_ST_QUIT || pop3_sending(s)) {
			s->close_reason = "write-timeout";
			pop3_free(s);
			return;
		}
		pop3_reply(s, P_TIMEOUT, NULL);
		bufferevent_enable(bev, EV_WRITE);
		pop3_close_after_reply(s, "timeout");
		return;
	}
	if (events & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		/* Half-closed during the login's check with more commands
		 * pipelined: they are answered first (conn.h). */
		if (!(events & BEV_EVENT_ERROR) &&
		    s->state == POP3_ST_AUTH_WAIT && conn_eof_owed(bev))
			return;
		if (s->close_reason == NULL)
			s->close_reason = events & BEV_EVENT_EOF ? "eof" :
			    "io-error";
		/* A client that half-closed after its last command is still
		 * owed the replies (QUIT's +OK among them). */
		if (!(events & BEV_EVENT_ERROR) && !pop3_sending(s) &&
		    evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
			pop3_close_after_reply(s, s->close_reason);
			return;
		}
		pop3_free(s);
		return;
	}
	log_warnx("%016" PRIx64 " pop3 unexpected event 0x%x", s->id, events);
	abort();
}

int
pop3_setup_bev(struct pop3_session *s)
{
	struct timeval tv = { POP3_TIMEOUT, 0 };

	bufferevent_setcb(s->bev, pop3_read_cb, pop3_write_cb, pop3_event_cb, s);
	bufferevent_set_timeouts(s->bev, &tv, &tv);
	bufferevent_setwatermark(s->bev, EV_WRITE, POP3_OUT_LOW, 0);
	return bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

/* ---------------------------------------------------------------- */
/* entry points                                                       */

void
pop3_session_accept(struct worker *w, const struct listener *l, int fd,
    const struct sockaddr *sa, socklen_t salen)
{
	struct pop3_session *s;

	s = xcalloc(1, sizeof *s);
	s->id = ((uint64_t)arc4random() << 32) | arc4random();
	s->w = w;
	s->l = l;
	s->msg_fd = -1;
	memcpy(&s->ss, sa, salen < sizeof s->ss ? salen : sizeof s->ss);
	sockaddr_format(sa, s->addr, sizeof s->addr, &s->port);
	if (l->conf->tls == TLS_IMPLICIT) {
		/* RFC 8314: TLS from the first byte; the greeting waits in
		 * the output until the handshake is done. */
		if ((s->bev = conn_tls_accept(w->base, fd, w->tls_ctx)) != NULL)
			s->flags |= POP3_F_TLS;
	} else
		s->bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (s->bev == NULL) {
		log_warnx("pop3: cannot set up the connection");
		if (l->conf->tls != TLS_IMPLICIT)
			close(fd);	/* conn_tls_accept's if TLS */
		free(s);
		return;
	}
	TAILQ_INSERT_TAIL(&w->pop3_sessions, s, entry);
	w->nsessions++;
	s->deadline_ev = evtimer_new(w->base, pop3_deadline_cb, s);
	if (s->deadline_ev == NULL)
		fatalx("pop3: evtimer_new failed");
	if (pop3_setup_bev(s) == -1) {
		log_warnx("%016" PRIx64 " pop3 cannot watch the connection "
		    "from %s", s->id, s->addr);
		s->close_reason = "no-watch";
		pop3_free(s);
		return;
	}
	if (l->conf->tls == TLS_IMPLICIT)
		pop3_handshake_start(s);
	log_info("%016" PRIx64 " pop3 connect address=%s port=%u listener=%s",
	    s->id, s->addr, s->port, l->name);

	if (w->nsessions > w->conf->max_sessions) {
		pop3_reply(s, P_TOO_MANY_SESSIONS, NULL);
		pop3_close_after_reply(s, "too-many-sessions");
		return;
	}
	/* The same per-address limit as SMTP, in the same shared table. */
	if (!netprefix_match_list(w->conf->mynetworks, w->conf->nmynetworks,
	    sa)) {
		int rc = connlimit_acquire(sa, w->conf->max_connections_per_ip);

		if (rc == -1) {
			log_info("%016" PRIx64 " pop3 connection-limit address=%s "
			    "limit=%u", s->id, s->addr,
			    w->conf->max_connections_per_ip);
			pop3_reply(s, P_TOO_MANY_SESSIONS, NULL);
			pop3_close_after_reply(s, "too-many-connections-per-ip");
			return;
		}
		if (rc == 1)
			s->flags |= POP3_F_CONNCOUNT;
	}
	/* RFC 1939 section 7: the APOP timestamp is unique per greeting:
	 * the session id is random, the time and pid make it certain. */
	if (w->conf->apop)
		snprintf(s->apop_stamp, sizeof s->apop_stamp,
		    "<%d.%016" PRIx64 ".%lld@%.180s>", (int)getpid(), s->id,
		    (long long)time(NULL), w->conf->hostname);
	pop3_printf(s, "+OK %s POP3 postern ready%s%s\r\n", w->conf->hostname,
	    s->apop_stamp[0] ? " " : "", s->apop_stamp);
}

void
pop3_session_shutdown_all(struct worker *w)
{
	struct pop3_session *s, *next;

	for (s = TAILQ_FIRST(&w->pop3_sessions); s; s = next) {
		next = TAILQ_NEXT(s, entry);
		if (s->state == POP3_ST_QUIT)
			continue;
		if (pop3_sending(s)) {
			/* A -ERR inside a message would be taken for part
			 * of it: just close (after a thread's read, when it
			 * is done). */
			s->close_reason = "shutdown";
			pop3_free(s);
			continue;
		}
		if (s->state == POP3_ST_BOX_WAIT) {
			/* Let a login or a QUIT's update finish and be
			 * answered. */
			s->flags |= POP3_F_SHUTDOWN;
			continue;
		}
		pop3_reply(s, P_SHUTDOWN, NULL);
		pop3_close_after_reply(s, "shutdown");
	}
}
