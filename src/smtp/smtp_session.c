/*
 * smtp_session.c - the inbound SMTP state machine (RFC 5321), with
 * PIPELINING (RFC 2920), SIZE (RFC 1870), 8BITMIME (RFC 6152) and
 * ENHANCEDSTATUSCODES (RFC 2034).  Runs in the workers, unprivileged,
 * many sessions per event loop.
 *
 * A session has a state (smtp_enter_state traces every change) and at
 * most one transaction (struct smtp_tx): MAIL creates it, RSET, EHLO or
 * the end of DATA frees it.  Input is taken line by line while commands
 * are expected, and as a byte stream through the DATA reader otherwise.
 * While the spool commit of a message is in flight the session reads
 * nothing, so pipelined commands wait for the 250 they depend on.
 */
#include "smtp/smtp_session.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/netaddr.h"
#include "lib/strutil.h"
#include "lib/xalloc.h"
#include "auth/authd.h"
#include "ev/conn.h"
#include "lib/base64.h"
#include "sasl/sasl.h"
#include "tls/tls.h"
#include "policy/access.h"
#include "policy/access_check.h"
#include "policy/relay.h"
#include "policy/client_key.h"
#include "policy/connlimit.h"
#include "policy/ratelimit.h"
#include "state/state.h"
#include "queue/qcommit.h"
#include "queue/qenv.h"
#include "queue/qid.h"
#include "queue/qstore.h"
#include "smtp/reply.h"
#include "smtp/smtp_addr.h"
#include "smtp/smtp_cmd.h"
#include "smtp/smtp_data.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>

enum smtp_state {
	SMTP_ST_CONNECTED,	/* greeting sent, no HELO yet */
	SMTP_ST_HELO,		/* greeted, no transaction */
	SMTP_ST_MAIL,		/* MAIL accepted, no recipient yet */
	SMTP_ST_RCPT,		/* at least one recipient */
	SMTP_ST_DATA,		/* reading the message */
	SMTP_ST_COMMIT,		/* message read; spool commit in flight */
	SMTP_ST_QUIT,		/* flushing the last reply, then close */
	SMTP_ST_AUTH_WAIT,	/* AUTH step sent to the auth process */
	SMTP_ST_AUTH_INPUT,	/* 334 sent; the next line is the client's */
	SMTP_ST_STATE_WAIT,	/* MAIL or RCPT asked the shared store */
};

static const char *smtp_state_names[] = {
	"CONNECTED", "HELO", "MAIL", "RCPT", "DATA", "COMMIT", "QUIT",
	"AUTH_WAIT", "AUTH_INPUT", "STATE_WAIT",
};

/* RFC 4954 section 4: an AUTH command line or response may be 12288
 * octets; ordinary commands keep the smaller limit. */
#define SMTP_AUTH_LINE_MAX	12288
#define SMTP_HEADER_MAX		(64 * 1024)	/* kept for the From: check */

#define SMTP_F_ESMTP		0x01	/* greeted with EHLO */
#define SMTP_F_TLS		0x02	/* TLS is active */
#define SMTP_F_AUTH		0x04	/* authenticated */
#define SMTP_F_SKIP_LINE	0x08	/* discarding an over-long line */
#define SMTP_F_ORPHAN		0x10	/* connection gone, commit in flight */
#define SMTP_F_CONNCOUNT	0x20	/* counted in connlimit: release */
#define SMTP_F_OUT_FULL		0x40	/* replies unread: no commands taken
					 * until they have gone */
#define SMTP_F_COMMITTING	0x80	/* the commit thread owns tx->qf */
#define SMTP_F_CLOSE_AFTER_COMMIT 0x100	/* then reply, and close */

/* RFC 5321 4.5.3.1.10: a client told 452 for too many recipients sends
 * the rest in another transaction, so those 452s are not errors; past
 * this many extra RCPTs they are a flood and count again. */
#define SMTP_RCPT_OVERSHOOT_MAX	20000

/* The recipients' records in a queue file's envelope, leaving room for
 * the others (qenv.h). */
#define SMTP_RCPT_OCTETS_MAX	(QENV_ENVELOPE_MAX - 64 * 1024)

struct smtp_tx {
	char		 qid[QID_LEN + 1];
	struct mailaddr	 from;
	char		**rcpts;
	size_t		 nrcpts;
	size_t		 rcpt_octets;	/* their records in the envelope */
	int		 body_8bit;
	struct data_reader dr;
	struct qfile	 qf;
	int		 qf_open;
	int		 too_big;
	struct buf	 head;		/* the header block, for sender-check
					 * header; complete when head_done */
	int		 head_done;
	int		 head_cut;	/* longer than SMTP_HEADER_MAX */
	/* Access rules that took the message (docs/access.md): it is
	 * dropped after DATA, or committed into hold/.  DISCARD wins. */
	const struct access_rule *discard, *hold;
	/* Relayed by a POP-before-SMTP grant: the message has counted
	 * toward the grant user's message rate (smtp_rcpt_granted). */
	int		 grant_counted;
};

/*
 * A MAIL or RCPT whose answer waits for the shared store (state.h):
 * what the command needs to finish when it comes.  Made only for the
 * wait; the session reads nothing meanwhile, so pipelined commands keep
 * their order.
 */
enum smtp_wait_step {
	WAIT_MAIL_RATE,		/* MAIL: the sender's message rate */
	WAIT_RCPT_GRANT,	/* RCPT: a POP-before-SMTP grant to relay */
	WAIT_RCPT_GRANT_MSG,	/* RCPT: the grant user's message rate */
	WAIT_RCPT_RATE,		/* RCPT: the sender's recipient rate */
};

struct smtp_wait {
	enum smtp_wait_step	 step;
	enum smtp_state		 back;		/* the state it came from */
	struct state_ask	*ticket;
	struct smtp_tx		*tx;		/* MAIL: started on a yes */
	struct access_verdict	 av;		/* RCPT: its access rule */
	char			 rcpt[SMTP_PATH_MAX + 1];
	char			 user[SASL_USER_MAX + 1];	/* RCPT: the
						 * grant's, when it relays */
	char			 key[RATELIMIT_KEY_MAX];	/* the rate's */
	enum ratelimit_kind	 kind;
	unsigned		 max;
	char			 cmdline[128];	/* for failed-command logs */
};

struct smtp_session {
	uint64_t		 id;
	struct worker		*w;
	const struct listener	*l;
	struct bufferevent	*bev;
	struct sockaddr_storage	 ss;
	char			 addr[64];
	char			 local[64];	/* the address it connected to */
	unsigned		 port;
	enum smtp_state		 state;
	int			 flags;
	char			 helo[SMTP_DOMAIN_MAX + 1];
	char			 user[SASL_USER_MAX + 1];	/* after AUTH */
	/* The user of the POP-before-SMTP grant a RCPT asked for: written
	 * by the shared store's answer, so not in the wait, which is a
	 * copy made after the question went out (state.h). */
	char			 grant_user[SASL_USER_MAX + 1];
	const struct sasl_mech	*auth_mech;	/* exchange in progress */
	uint64_t		 auth_reqid;
	struct smtp_tx		*tx;
	struct smtp_wait	*wait;		/* in SMTP_ST_STATE_WAIT */
	/* njunk: commands that move no message on (CMD_F_LIMIT, a repeated
	 * HELO/EHLO) since the last one accepted.  Each restarts the idle
	 * timer: a client doing nothing else is stopped at SMTP_JUNK_MAX,
	 * one that sends mail starts again with every message. */
	unsigned		 nerrors, njunk, nqueued;
	unsigned		 counts[CMD__COUNT + 1];	/* last: unknown */
	const char		*cmdline;	/* escaped, for failed-command logs */
	const char		*close_reason;
	struct conn_close	 closer;	/* after the last reply */
	struct conn_direct	 direct;	/* plaintext: ev/conn.h */
	/* A line (command, AUTH response or DATA line) must be complete
	 * within smtp-timeout of its first octet: the read timeout alone
	 * restarts with every octet, so a trickle would never end. */
	struct event		*deadline_ev;
	unsigned		 rcpt_overshoot;
	/* The access map as it was at connect, kept for the session (its
	 * rules are what tx->discard and tx->hold point to), and what the
	 * client address's rule does on this listener. */
	struct access_map	*amap;
	const struct access_rule *client_rule;
	enum access_action	 client_access;
	TAILQ_ENTRY(smtp_session) entry;
};

static void	smtp_process_input(struct smtp_session *);
static void	smtp_free(struct smtp_session *);
static void	smtp_read_cb(struct bufferevent *, void *);
static void	smtp_write_cb(struct bufferevent *, void *);
static void	smtp_event_cb(struct bufferevent *, short, void *);
static void	smtp_deadline_update(struct smtp_session *, int, int);

/* ---------------------------------------------------------------- */
/* replies, state, closing                                           */

static void
smtp_enter_state(struct smtp_session *s, enum smtp_state new)
{
	if (log_verbose() > 1)
		log_debug("%016" PRIx64 " smtp state %s -> %s", s->id,
		    smtp_state_names[s->state], smtp_state_names[new]);
	s->state = new;
}

/* Write one reply from the table.  4xx/5xx are logged with the command
 * that caused them and count toward the session's error limit. */
static void
smtp_reply(struct smtp_session *s, enum smtp_reply_id id, const char *arg)
{
	char line[512];
	size_t n = reply_format(line, sizeof line, id, arg);
	const struct smtp_reply_def *d = reply_def(id);

	if (s->bev == NULL)
		return;
	evbuffer_add(bufferevent_get_output(s->bev), line, n);
	if (d->code >= 400) {
		line[n - 2] = '\0';
		log_info("%016" PRIx64 " smtp failed-command command=\"%s\" "
		    "result=\"%s\"", s->id, s->cmdline ? s->cmdline : "",
		    line);
		if (d->code != 421)
			s->nerrors++;
	}
}

static void
smtp_free_later(evutil_socket_t fd, short ev, void *arg)
{
	smtp_free(arg);
}

/*
 * The last reply is written; the session ends when it has left (or at
 * the latest after a few seconds; ev/conn.h).  Never free here: the
 * caller still holds the session.
 */
static void
smtp_close_after_reply(struct smtp_session *s, const char *reason)
{
	unsigned wait = s->w->conf->smtp_timeout < 10 ?
	    (unsigned)s->w->conf->smtp_timeout : 10;

	s->close_reason = reason;
	if (s->flags & SMTP_F_COMMITTING) {
		/* The commit thread owns the message: the session stays in
		 * COMMIT, and smtp_commit_done replies and closes. */
		s->flags |= SMTP_F_CLOSE_AFTER_COMMIT;
		return;
	}
	/* An answer arriving now would take the session out of QUIT. */
	if (s->auth_reqid) {
		auth_client_cancel(s->auth_reqid);
		s->auth_reqid = 0;
	}
	smtp_enter_state(s, SMTP_ST_QUIT);
	conn_close_arm(&s->closer, s->w->base, s->bev, wait, smtp_free_later, s);
}

/* Reading resumes.  -1: the connection can no longer be watched (see
 * smtp_setup_bev), and is closed rather than left without events. */
static int
smtp_read_on(struct smtp_session *s)
{
	if (bufferevent_enable(s->bev, EV_READ) == 0)
		return 0;
	log_warnx("%016" PRIx64 " smtp cannot watch the connection", s->id);
	smtp_close_after_reply(s, "no-watch");
	return -1;
}

static void
smtp_tx_destroy(struct smtp_tx *tx)
{
	if (tx == NULL)
		return;
	if (tx->qf_open)
		qstore_abort(&tx->qf);
	for (size_t i = 0; i < tx->nrcpts; i++)
		free(tx->rcpts[i]);
	free(tx->rcpts);
	buf_free(&tx->head);
	free(tx);
}

static void
smtp_tx_free(struct smtp_session *s)
{
	smtp_tx_destroy(s->tx);
	s->tx = NULL;
}

/* A wait ended without its answer being used: the session is closing. */
static void
smtp_wait_drop(struct smtp_session *s)
{
	if (s->wait == NULL)
		return;
	state_ask_cancel(s->wait->ticket);
	smtp_tx_destroy(s->wait->tx);
	free(s->wait);
	s->wait = NULL;
}

static void
smtp_log_disconnect(struct smtp_session *s)
{
	static const char *names[CMD__COUNT + 1] = {
		"helo", "ehlo", "mail", "rcpt", "data", "rset", "noop", "quit",
		"vrfy", "help", "starttls", "auth", "expn", "etrn", "bdat",
		"turn", "unknown",
	};
	char counts[512] = "";
	size_t o = 0;

	for (size_t i = 0; i <= CMD__COUNT && o < sizeof counts; i++)
		if (s->counts[i])
			o += (size_t)snprintf(counts + o, sizeof counts - o,
			    "%s%s=%u", o ? "," : "", names[i], s->counts[i]);
	log_info("%016" PRIx64 " smtp disconnect reason=%s messages=%u "
	    "commands=%s", s->id, s->close_reason ? s->close_reason : "unknown",
	    s->nqueued, o ? counts : "none");
}

static void
smtp_free(struct smtp_session *s)
{
	struct worker *w = s->w;

	if (s->auth_reqid) {
		auth_client_cancel(s->auth_reqid);
		s->auth_reqid = 0;
	}
	smtp_wait_drop(s);
	conn_close_free(&s->closer);
	conn_direct_free(&s->direct);
	if (s->deadline_ev) {
		event_free(s->deadline_ev);
		s->deadline_ev = NULL;
	}
	if (s->flags & SMTP_F_CONNCOUNT) {
		connlimit_release((const struct sockaddr *)&s->ss);
		s->flags &= ~SMTP_F_CONNCOUNT;
	}
	if (s->bev) {
		smtp_log_disconnect(s);
		bufferevent_free(s->bev);
		s->bev = NULL;
	}
	if (s->flags & SMTP_F_COMMITTING) {
		/* The commit thread still owns tx->qf: finish when it is done
		 * (smtp_commit_done). */
		s->flags |= SMTP_F_ORPHAN;
		return;
	}
	smtp_tx_free(s);
	access_map_unref(s->amap);
	TAILQ_REMOVE(&w->smtp_sessions, s, entry);
	free(s);
	worker_session_closed(w);
}

/* ---------------------------------------------------------------- */
/* the access map (docs/access.md)                                    */

static void
smtp_log_access(struct smtp_session *s, enum access_stage st,
    const char *key, const struct access_verdict *v)
{
	char where[PATH_MAX + 16], k[256];

	access_rule_where(s->amap, v->rule, where, sizeof where);
	str_escape(k, sizeof k, key, strlen(key));
	log_info("%016" PRIx64 " smtp access stage=%s key=<%s> rule=%s "
	    "action=%s%s", s->id, access_stage_name(st), k, where,
	    access_action_name(v->rule->action),
	    v->action != v->rule->action ? " (no relay without AUTH on this "
	    "listener)" : "");
}

/* Before the greeting: the client address's rule.  Returns 1 when the
 * rule answered instead of the 220. */
static int
smtp_access_connect(struct smtp_session *s)
{
	struct access_verdict v;

	access_table_refresh(&s->w->access, time(NULL));
	s->amap = access_map_ref(s->w->access.map);
	access_decide(access_lookup_addr(s->amap,
	    (const struct sockaddr *)&s->ss), ACCESS_AT_CONNECT,
	    s->l->conf->role, &v);
	s->client_rule = v.rule;
	s->client_access = v.action;
	if (v.rule == NULL)
		return 0;
	smtp_log_access(s, ACCESS_AT_CONNECT, s->addr, &v);
	if (v.action == ACCESS_TEMPFAIL) {
		smtp_reply(s, v.reply, v.text);
		smtp_close_after_reply(s, "access-tempfail");
		return 1;
	}
	/* RFC 5321 section 3.1: after a 554 greeting, wait for QUIT and
	 * answer 503 to the rest (smtp_dispatch); max-errors ends it. */
	if (v.action == ACCESS_REJECT) {
		smtp_reply(s, v.reply, v.text);
		return 1;
	}
	return 0;
}

/* One rule's verdict inside a transaction: -1 after a refusal, else 0
 * with DISCARD and HOLD noted. */
static int
smtp_access_apply(struct smtp_session *s, enum access_stage st,
    const char *key, const struct access_verdict *v,
    const struct access_rule **discard, const struct access_rule **hold)
{
	if (v->rule == NULL)
		return 0;
	smtp_log_access(s, st, key, v);
	switch (v->action) {
	case ACCESS_REJECT:
	case ACCESS_TEMPFAIL:
		smtp_reply(s, v->reply, v->text);
		return -1;
	case ACCESS_DISCARD:
		if (*discard == NULL)
			*discard = v->rule;
		break;
	case ACCESS_HOLD:
		if (*hold == NULL)
			*hold = v->rule;
		break;
	default:
		break;
	}
	return 0;
}

/* MAIL: the client's DISCARD or HOLD, then the HELO name's and the
 * sender's rules, which a client OK or RELAY rule switches off. */
static int
smtp_access_mail(struct smtp_session *s, const struct mailaddr *from,
    const struct access_rule **discard, const struct access_rule **hold)
{
	struct access_verdict v;
	char key[SMTP_PATH_MAX + 1];
	enum listen_role role = s->l->conf->role;

	*discard = s->client_access == ACCESS_DISCARD ? s->client_rule : NULL;
	*hold = s->client_access == ACCESS_HOLD ? s->client_rule : NULL;
	if (s->amap == NULL || s->client_access == ACCESS_OK ||
	    s->client_access == ACCESS_RELAY)
		return 0;
	access_decide(access_lookup_helo(s->amap, s->helo), ACCESS_AT_HELO,
	    role, &v);
	if (smtp_access_apply(s, ACCESS_AT_HELO, s->helo, &v, discard,
	    hold) == -1)
		return -1;
	access_mail_key(from, key, sizeof key);
	access_decide(access_lookup_mail(s->amap, ACCESS_K_FROM, key),
	    ACCESS_AT_MAIL, role, &v);
	return smtp_access_apply(s, ACCESS_AT_MAIL, key, &v, discard, hold);
}

/* RCPT: the recipient's rule.  -1 after a refusal; else v says whether
 * it opens the relay (RELAY) or takes the message (DISCARD, HOLD) once
 * the recipient is accepted.  For a client with OK or RELAY only a
 * recipient's RELAY still counts. */
static int
smtp_access_rcpt(struct smtp_session *s, const struct mailaddr *to,
    struct access_verdict *v)
{
	char key[SMTP_PATH_MAX + 1];
	const struct access_rule *none = NULL, *unused = NULL;

	access_mail_key(to, key, sizeof key);
	access_decide(access_lookup_mail(s->amap, ACCESS_K_TO, key),
	    ACCESS_AT_RCPT, s->l->conf->role, v);
	if (v->rule && v->action != ACCESS_RELAY &&
	    (s->client_access == ACCESS_OK || s->client_access == ACCESS_RELAY))
		access_decide(NULL, ACCESS_AT_RCPT, s->l->conf->role, v);
	if (v->action == ACCESS_DISCARD || v->action == ACCESS_HOLD) {
		/* Noted by the caller once the recipient passes. */
		smtp_log_access(s, ACCESS_AT_RCPT, key, v);
		return 0;
	}
	return smtp_access_apply(s, ACCESS_AT_RCPT, key, v, &none, &unused);
}

/* ---------------------------------------------------------------- */
/* commands                                                           */

static void
smtp_reset_tx(struct smtp_session *s)
{
	smtp_tx_free(s);
	if (s->state != SMTP_ST_CONNECTED)
		smtp_enter_state(s, SMTP_ST_HELO);
}

static int
smtp_starttls_offered(const struct smtp_session *s)
{
	return s->w->tls_ctx != NULL && s->l->conf->tls == TLS_STARTTLS &&
	    !(s->flags & SMTP_F_TLS);
}

/* AUTH is offered only where the password cannot be read off the wire:
 * under TLS, or from loopback when the listener allows it (RFC 4954
 * section 4 and the OP25B documents: never in the clear elsewhere). */
static int
smtp_auth_offered(const struct smtp_session *s)
{
	if (s->l->conf->auth == AUTH_OFF || (s->flags & SMTP_F_AUTH))
		return 0;
	return (s->flags & SMTP_F_TLS) ||
	    (s->l->conf->cleartext_auth == CLEARTEXT_LOOPBACK &&
	    sockaddr_is_loopback((const struct sockaddr *)&s->ss));
}

/* HELO/EHLO argument: a domain or address literal; RFC 5321 4.1.4 says
 * not to refuse a session over a wrong one, so only syntax is checked. */
static int
smtp_helo_valid(const char *arg)
{
	size_t n = strlen(arg);

	if (n == 0 || n > SMTP_DOMAIN_MAX)
		return 0;
	for (const char *p = arg; *p; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
			return 0;
	return 1;
}

static void
smtp_greet(struct smtp_session *s, char *arg, int esmtp)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);
	const struct conf *c = s->w->conf;

	if (!smtp_helo_valid(arg)) {
		smtp_reply(s, R_SYNTAX_HELO, NULL);
		return;
	}
	strlcpy(s->helo, arg, sizeof s->helo);	/* length checked above */
	smtp_tx_free(s);
	smtp_enter_state(s, SMTP_ST_HELO);
	if (esmtp)
		s->flags |= SMTP_F_ESMTP;
	else
		s->flags &= ~SMTP_F_ESMTP;
	if (!esmtp) {
		evbuffer_add_printf(out, "250 %s\r\n", c->hostname);
		return;
	}
	evbuffer_add_printf(out, "250-%s\r\n", c->hostname);
	evbuffer_add_printf(out, "250-PIPELINING\r\n");
	evbuffer_add_printf(out, "250-SIZE %" PRIu64 "\r\n",
	    c->message_size_limit);
	evbuffer_add_printf(out, "250-8BITMIME\r\n");
	if (smtp_starttls_offered(s))
		evbuffer_add_printf(out, "250-STARTTLS\r\n");
	if (smtp_auth_offered(s)) {
		evbuffer_add_printf(out, "250-AUTH");
		for (unsigned i = 0; i < SASL__COUNT; i++)
			if (c->auth_mechanisms & (1u << i))
				evbuffer_add_printf(out, " %s",
				    sasl_mech_by_id(i)->name);
		evbuffer_add_printf(out, "\r\n");
	}
	evbuffer_add_printf(out, "250 ENHANCEDSTATUSCODES\r\n");
}

/* The user (the authenticated one, or a grant's) exists, and is neither
 * locked nor expired. */
static int
smtp_user_usable(struct smtp_session *s, const char *user)
{
	const struct user_entry *u;
	time_t now = time(NULL);

	rcpt_maps_refresh(&s->w->maps, now);
	u = userdb_lookup(&s->w->maps.users, user);
	return u != NULL && !u->locked && !(u->expires && now >= u->expires);
}

/* Is addr one of the user's addresses?  A user with none listed owns
 * NAME@ each local domain. */
static int
smtp_user_owns(struct smtp_session *s, const char *user, const char *addr)
{
	const struct user_entry *u = userdb_lookup(&s->w->maps.users, user);
	const char *at = strrchr(addr, '@');

	if (u == NULL || at == NULL)
		return 0;	/* <> and <postmaster> belong to nobody */
	if (u->naddresses == 0)
		return strlen(u->name) == (size_t)(at - addr) &&
		    strncasecmp(addr, u->name, (size_t)(at - addr)) == 0 &&
		    conf_is_local_domain(s->w->conf, at + 1);
	for (size_t i = 0; i < u->naddresses; i++)
		if (strcasecmp(u->addresses[i], addr) == 0)
			return 1;
	return 0;
}

/* One mailbox of a From: field (RFC 5322 3.4), comments already out:
 * the address in the angle brackets at lt if any, else the whole token,
 * without blanks.  Owned by the user, or not. */
static int
smtp_mailbox_owned(struct smtp_session *s, char *tok, char *lt)
{
	char *gt;

	if (lt != NULL && (gt = strchr(lt, '>')) != NULL) {
		*gt = '\0';
		tok = lt + 1;
	}
	while (*tok == ' ' || *tok == '\t')
		tok++;
	for (char *e = tok + strlen(tok); e > tok &&
	    (e[-1] == ' ' || e[-1] == '\t'); )
		*--e = '\0';
	return smtp_user_owns(s, s->user, tok);
}

/* sender-check header: every address of every From: field must be the
 * user's.  A field is "From", blanks allowed before its colon (RFC 5322
 * 4.5.1, obsolete but shown by readers), folded lines joined; mailboxes
 * are split at commas outside quotes, angle brackets and comments.
 * What cannot be checked whole (a field longer than the check holds, a
 * NUL, a header block longer than SMTP_HEADER_MAX) is not owned. */
static int
smtp_header_from_owned(struct smtp_session *s, const struct smtp_tx *tx)
{
	const struct buf *head = &tx->head;
	const char *p = head->data, *end = head->data + head->len;

	if (tx->head_cut)
		return 0;
	while (p && p < end) {
		const char *eol, *q = p;
		char value[4096];
		size_t vlen = 0;
		int quoted = 0, angle = 0, depth = 0;
		char *tok, *o, *lt;

		if (*p == '\r' || *p == '\n')
			break;			/* the end of the header */
		if (strncasecmp(q, "From", 4) == 0) {
			for (q += 4; q < end && (*q == ' ' || *q == '\t'); q++)
				;
		}
		if (q == p || q >= end || *q != ':') {
			p = memchr(p, '\n', (size_t)(end - p));
			p = p ? p + 1 : NULL;
			continue;
		}
		/* Unfold the field into value. */
		p = q + 1;
		for (;;) {
			eol = memchr(p, '\n', (size_t)(end - p));
			if (eol == NULL)
				eol = end;
			for (; p < eol; p++) {
				if (vlen + 1 >= sizeof value || *p == '\0')
					return 0;
				value[vlen++] = *p == '\r' ? ' ' : *p;
			}
			p = eol < end ? eol + 1 : end;
			if (p >= end || (*p != ' ' && *p != '\t'))
				break;
		}
		value[vlen] = '\0';
		/* One pass, rewriting value in place (o never passes c):
		 * comments dropped, mailboxes cut at commas outside quotes
		 * and angle brackets, the last '<' outside quotes kept. */
		tok = o = value;
		lt = NULL;
		for (const char *c = value; ; c++) {
			if (*c != '\0' && depth) {
				if (*c == '\\' && c[1])
					c++;
				else
					depth += (*c == '(') - (*c == ')');
				continue;
			}
			if (*c == '\\' && quoted && c[1]) {
				*o++ = *c++;
				*o++ = *c;
				continue;
			}
			if (*c == '(' && !quoted) {
				depth = 1;
				continue;
			}
			if (*c == '"')
				quoted = !quoted;
			else if (!quoted && *c == '<') {
				angle = 1;
				lt = o;
			} else if (!quoted && *c == '>')
				angle = 0;
			if (*c == '\0' || (*c == ',' && !quoted && !angle)) {
				int last = *c == '\0';

				*o = '\0';		/* o may be c */
				if (!smtp_mailbox_owned(s, tok, lt))
					return 0;
				if (last)
					break;
				tok = ++o;
				lt = NULL;
				continue;
			}
			*o++ = *c;
		}
	}
	return 1;	/* no From: at all is not a forgery of someone else */
}

static void
smtp_cmd_helo(struct smtp_session *s, char *arg)
{
	smtp_greet(s, arg, 0);
}

static void
smtp_cmd_ehlo(struct smtp_session *s, char *arg)
{
	smtp_greet(s, arg, 1);
}

/*
 * Sending limits (policy/ratelimit.h): an authenticated user's messages
 * and recipients per hour, and an unauthenticated client's messages per
 * hour on a listener without mandatory AUTH (port 25), mynetworks
 * exempt.  A recipient relayed by a POP-before-SMTP grant (w->user)
 * counts for the user whose login made the grant, as if that user had
 * authenticated: one POP3 login with a stolen password must not send
 * more than the account could through AUTH.  A message counts at a MAIL
 * about to be accepted, a recipient at its 250: what a hijacked account
 * or a flooding client tries is what costs it.  The rate's key and
 * limit go into w; 0: no limit applies.
 */
static int
smtp_rate_key(struct smtp_session *s, struct smtp_wait *w,
    enum ratelimit_kind kind)
{
	const struct conf *c = s->w->conf;
	const char *user = (s->flags & SMTP_F_AUTH) ? s->user : w->user;

	w->kind = kind;
	if (user[0] != '\0') {
		w->max = kind == RL_MESSAGES ? c->user_rate_limit_messages :
		    c->user_rate_limit_recipients;
		(void)snprintf(w->key, sizeof w->key, "user:%s", user);
	} else {
		struct relay_client rc = {
		    .peer = (const struct sockaddr *)&s->ss };
		size_t n = strlcpy(w->key, "ip:", sizeof w->key);

		if (kind != RL_MESSAGES || s->l->conf->auth == AUTH_REQUIRED ||
		    relay_client_trusted(c, &rc) ||
		    client_key_format((const struct sockaddr *)&s->ss,
		    w->key + n, sizeof w->key - n) == -1)
			return 0;
		w->max = c->ip_rate_limit;
	}
	return w->max != 0;
}

static void
smtp_rate_refused(struct smtp_session *s, const struct smtp_wait *w)
{
	log_info("%016" PRIx64 " smtp rate-limit %s kind=%s limit=%u/h",
	    s->id, w->key, w->kind == RL_MESSAGES ? "messages" : "recipients",
	    w->max);
	smtp_reply(s, R_RATE_LIMITED, NULL);
}

static void	smtp_state_answered(void *, int);

/*
 * What the shared store said (state.h), for the command's step: the
 * answer now, or STATE_PENDING, and then the session waits (a copy of
 * w, which may be the caller's) until smtp_state_answered.
 */
static int
smtp_ask(struct smtp_session *s, struct smtp_wait *w,
    enum smtp_wait_step step, int answer)
{
	if (answer != STATE_PENDING)
		return answer;
	w->step = step;
	w->back = s->state;
	(void)strlcpy(w->cmdline, s->cmdline ? s->cmdline : "",
	    sizeof w->cmdline);
	s->wait = xmalloc(sizeof *s->wait);
	*s->wait = *w;
	smtp_enter_state(s, SMTP_ST_STATE_WAIT);
	bufferevent_disable(s->bev, EV_READ);
	return STATE_PENDING;
}

/* The sender's rate of kind: 1 (counted, or no limit applies), 0 (over
 * it), or STATE_PENDING (the session waits at step). */
static int
smtp_rate_take(struct smtp_session *s, struct smtp_wait *w,
    enum ratelimit_kind kind, enum smtp_wait_step step)
{
	if (!smtp_rate_key(s, w, kind))
		return 1;
	return smtp_ask(s, w, step, state_rate_take(s->w->conf, w->key,
	    w->kind, 1, w->max, time(NULL), smtp_state_answered, s,
	    &w->ticket));
}

/* The sender's message rate allowed the MAIL, or not. */
static void
smtp_mail_rated(struct smtp_session *s, struct smtp_wait *w, int ok)
{
	if (!ok) {
		smtp_tx_destroy(w->tx);
		smtp_rate_refused(s, w);
		return;
	}
	s->tx = w->tx;
	smtp_enter_state(s, SMTP_ST_MAIL);
	smtp_reply(s, R_SENDER_OK, NULL);
}

static void
smtp_rcpt_accept(struct smtp_session *s, const struct smtp_wait *w)
{
	struct smtp_tx *tx = s->tx;

	if (w->av.action == ACCESS_DISCARD && tx->discard == NULL)
		tx->discard = w->av.rule;
	else if (w->av.action == ACCESS_HOLD && tx->hold == NULL)
		tx->hold = w->av.rule;
	tx->rcpts = xgrowarray(tx->rcpts, tx->nrcpts, sizeof *tx->rcpts);
	tx->rcpts[tx->nrcpts++] = xstrdup(w->rcpt);
	tx->rcpt_octets += strlen(w->rcpt) + sizeof "rcpt \n" - 1;
	smtp_enter_state(s, SMTP_ST_RCPT);
	smtp_reply(s, R_RCPT_OK, NULL);
}

static void
smtp_rcpt_rated(struct smtp_session *s, struct smtp_wait *w, int ok)
{
	if (ok)
		smtp_rcpt_accept(s, w);
	else
		smtp_rate_refused(s, w);
}

/* The recipient may be relayed to (or is local): its rate comes last. */
static void
smtp_rcpt_rate(struct smtp_session *s, struct smtp_wait *w)
{
	int ok = smtp_rate_take(s, w, RL_RECIPIENTS, WAIT_RCPT_RATE);

	if (ok != STATE_PENDING)
		smtp_rcpt_rated(s, w, ok);
}

/* The grant user's message rate allowed the message, or not. */
static void
smtp_rcpt_grant_counted(struct smtp_session *s, struct smtp_wait *w, int ok)
{
	if (!ok) {
		smtp_rate_refused(s, w);
		return;
	}
	s->tx->grant_counted = 1;
	smtp_rcpt_rate(s, w);
}

/*
 * A grant relays on the account of the user whose POP3 login made it
 * (s->grant_user), with what SMTP AUTH on the submission ports would
 * check: that user locked, expired or removed since relays no more (as
 * MAIL refuses an authenticated session then), the envelope sender must
 * be one of the user's addresses, and the message and its recipients
 * count toward the user's rates.  The message counts at its first
 * relayed recipient: at MAIL nothing says yet that a grant will be
 * used, and the client's address was counted then.  The header is not
 * checked: the smtp listener's sender-check is about its AUTH sessions
 * (docs/postern.conf.5).
 */
static void
smtp_rcpt_granted(struct smtp_session *s, struct smtp_wait *w, int granted)
{
	char from[SMTP_PATH_MAX + 1];
	int ok;

	if (!granted) {
		smtp_reply(s, R_RELAY_DENIED, NULL);
		return;
	}
	(void)strlcpy(w->user, s->grant_user, sizeof w->user);
	if (!smtp_user_usable(s, w->user)) {
		log_info("%016" PRIx64 " smtp grant refused user=%s reason=locked, "
		    "expired or removed", s->id, w->user);
		smtp_reply(s, R_RELAY_DENIED, NULL);
		return;
	}
	smtp_addr_format(&s->tx->from, from, sizeof from);
	if (!smtp_user_owns(s, w->user, from)) {
		smtp_reply(s, R_SENDER_NOT_OWNED, w->user);
		return;
	}
	if (s->tx->grant_counted) {
		smtp_rcpt_rate(s, w);
		return;
	}
	ok = smtp_rate_take(s, w, RL_MESSAGES, WAIT_RCPT_GRANT_MSG);
	if (ok != STATE_PENDING)
		smtp_rcpt_grant_counted(s, w, ok);
}

static void
smtp_state_answered(void *arg, int answer)
{
	struct smtp_session *s = arg;
	struct smtp_wait w;

	s->wait->ticket = NULL;		/* answered: nothing to cancel */
	if (s->state != SMTP_ST_STATE_WAIT) {
		/* Closing meanwhile (a stop): the answer is not wanted. */
		smtp_wait_drop(s);
		return;
	}
	w = *s->wait;
	free(s->wait);
	s->wait = NULL;
	smtp_enter_state(s, w.back);
	s->cmdline = w.cmdline;
	switch (w.step) {
	case WAIT_MAIL_RATE:
		smtp_mail_rated(s, &w, answer);
		break;
	case WAIT_RCPT_GRANT:
		smtp_rcpt_granted(s, &w, answer == 1);
		break;
	case WAIT_RCPT_GRANT_MSG:
		smtp_rcpt_grant_counted(s, &w, answer);
		break;
	case WAIT_RCPT_RATE:
		smtp_rcpt_rated(s, &w, answer);
		break;
	}
	s->cmdline = NULL;
	if (s->wait != NULL)
		return;		/* the next step asks in turn */
	/* Read on, from the loop: this may run inside another session's
	 * call (a dropped connection answers all its questions at once). */
	if (smtp_read_on(s) == -1)
		return;
	bufferevent_trigger(s->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS |
	    BEV_TRIG_DEFER_CALLBACKS);
}

/* RFC 3461 section 4: printable ASCII but '+' and '=', or '+' and two
 * upper-case hex digits. */
static int
smtp_xtext_valid(const char *v)
{
	for (; *v; v++) {
		if (*v == '+') {
			if (!isxdigit((unsigned char)v[1]) ||
			    !isxdigit((unsigned char)v[2]) ||
			    islower((unsigned char)v[1]) ||
			    islower((unsigned char)v[2]))
				return 0;
			v += 2;
		} else if (*v < 0x21 || *v > 0x7e || *v == '=')
			return 0;
	}
	return 1;
}

static void
smtp_cmd_mail(struct smtp_session *s, char *arg)
{
	struct smtp_param params[SMTP_PARAMS_MAX];
	struct mailaddr from;
	size_t nparams;
	int body_8bit = 0;
	const struct conf *c = s->w->conf;
	const struct access_rule *discard, *hold;
	struct smtp_wait w = { 0 };
	int ok;

	if (s->tx) {
		smtp_reply(s, R_NESTED_MAIL, NULL);
		return;
	}
	if (s->l->conf->auth == AUTH_REQUIRED && !(s->flags & SMTP_F_AUTH)) {
		smtp_reply(s, R_AUTH_REQUIRED, NULL);
		return;
	}
	if ((s->flags & SMTP_F_AUTH) && !smtp_user_usable(s, s->user)) {
		/* Locked or expired since it logged in: this is how an ISP
		 * stops a mass mailing from an open session. */
		log_info("%016" PRIx64 " smtp auth revoked user=%s reason=locked, "
		    "expired or removed", s->id, s->user);
		s->flags &= ~SMTP_F_AUTH;
		s->user[0] = '\0';
		smtp_reply(s, R_ACCOUNT_DISABLED, NULL);
		return;
	}
	if (smtp_addr_parse(arg, ADDR_MAIL, &from, params, &nparams) == -1) {
		smtp_reply(s, R_SYNTAX_MAIL, NULL);
		return;
	}
	if ((s->flags & SMTP_F_AUTH) &&
	    s->l->conf->sender_check != SENDER_CHECK_OFF) {
		char addr[SMTP_PATH_MAX + 1];

		smtp_addr_format(&from, addr, sizeof addr);
		if (!smtp_user_owns(s, s->user, addr)) {
			smtp_reply(s, R_SENDER_NOT_OWNED, s->user);
			return;
		}
	}
	for (size_t i = 0; i < nparams; i++) {
		const char *k = params[i].key, *v = params[i].value;

		/* Parameters are ESMTP: none after plain HELO. */
		if (!(s->flags & SMTP_F_ESMTP)) {
			smtp_reply(s, R_BAD_PARAM, k);
			return;
		}
		if (strcmp(k, "SIZE") == 0 && v) {
			char *end;
			unsigned long long n;

			errno = 0;
			n = strtoull(v, &end, 10);
			if (*end || errno || v[0] < '0' || v[0] > '9') {
				smtp_reply(s, R_SYNTAX, NULL);
				return;
			}
			if (n > c->message_size_limit) {
				smtp_reply(s, R_MSG_TOO_BIG, NULL);
				return;
			}
		} else if (strcmp(k, "BODY") == 0 && v &&
		    strcasecmp(v, "8BITMIME") == 0)
			body_8bit = 1;
		else if (strcmp(k, "BODY") == 0 && v && strcasecmp(v, "7BIT") == 0)
			body_8bit = 0;
		else if (strcmp(k, "AUTH") == 0 && v &&
		    s->l->conf->auth != AUTH_OFF) {
			/* RFC 4954 section 5: a relay that authenticated
			 * passes on who submitted the message.  Taken as
			 * AUTH=<> (not trusted, not passed on), but its
			 * syntax is checked. */
			if (!smtp_xtext_valid(v)) {
				smtp_reply(s, R_SYNTAX_PARAM, k);
				return;
			}
		} else {
			smtp_reply(s, R_BAD_PARAM, k);
			return;
		}
	}
	if (smtp_access_mail(s, &from, &discard, &hold) == -1)
		return;
	w.tx = xcalloc(1, sizeof *w.tx);
	w.tx->from = from;
	w.tx->body_8bit = body_8bit;
	w.tx->discard = discard;
	w.tx->hold = hold;
	if ((ok = smtp_rate_take(s, &w, RL_MESSAGES, WAIT_MAIL_RATE)) !=
	    STATE_PENDING)
		smtp_mail_rated(s, &w, ok);
}

static void
smtp_cmd_rcpt(struct smtp_session *s, char *arg)
{
	struct smtp_param params[SMTP_PARAMS_MAX];
	struct mailaddr to;
	struct relay_client rc;
	struct smtp_wait w = { 0 };
	size_t nparams;
	enum smtp_reply_id verdict;
	struct smtp_tx *tx = s->tx;

	if (tx == NULL) {
		smtp_reply(s, R_NEED_MAIL, NULL);
		return;
	}
	if (smtp_addr_parse(arg, ADDR_RCPT, &to, params, &nparams) == -1) {
		smtp_reply(s, R_SYNTAX_RCPT, NULL);
		return;
	}
	if (nparams > 0) {
		smtp_reply(s, R_BAD_PARAM, params[0].key);
		return;
	}
	/* Past the queue's envelope limit the message would be taken and
	 * then found unreadable: those go in another transaction, as with
	 * max-recipients (RFC 5321 4.5.3.1.10). */
	if (tx->nrcpts >= s->w->conf->max_recipients ||
	    tx->rcpt_octets + SMTP_PATH_MAX + 6 > SMTP_RCPT_OCTETS_MAX) {
		smtp_reply(s, R_TOO_MANY_RCPTS, NULL);
		if (s->rcpt_overshoot++ < SMTP_RCPT_OVERSHOOT_MAX)
			s->nerrors--;	/* counted by smtp_reply */
		return;
	}
	if (smtp_access_rcpt(s, &to, &w.av) == -1)
		return;
	rc.peer = (const struct sockaddr *)&s->ss;
	rc.authenticated = (s->flags & SMTP_F_AUTH) != 0;
	rc.access_relay = s->client_access == ACCESS_RELAY ||
	    w.av.action == ACCESS_RELAY;
	rcpt_maps_refresh(&s->w->maps, time(NULL));
	verdict = relay_check_rcpt(&s->w->maps, &rc, &to);
	smtp_addr_format(&to, w.rcpt, sizeof w.rcpt);
	if (verdict == R_RELAY_DENIED && s->l->conf->role == ROLE_SMTP) {
		/* A POP-before-SMTP grant relays (the smtp listener only: on
		 * the submission ports nothing replaces AUTH). */
		int granted = smtp_ask(s, &w, WAIT_RCPT_GRANT,
		    state_grant_check(s->w->conf, rc.peer, time(NULL),
		    s->grant_user, sizeof s->grant_user, smtp_state_answered, s,
		    &w.ticket));

		if (granted != STATE_PENDING)
			smtp_rcpt_granted(s, &w, granted == 1);
		return;
	}
	if (verdict != R_RCPT_OK) {
		smtp_reply(s, verdict, NULL);
		return;
	}
	smtp_rcpt_rate(s, &w);
}

/* RFC 3848 protocol names for the Received: header and the envelope. */
static const char *
smtp_protocol(const struct smtp_session *s)
{
	static const char *names[] = { "SMTP", "ESMTP", "ESMTPS", "ESMTPA",
	    "ESMTPSA" };

	if (!(s->flags & SMTP_F_ESMTP))
		return names[0];
	return names[1 + ((s->flags & SMTP_F_TLS) ? 1 : 0) +
	    ((s->flags & SMTP_F_AUTH) ? 2 : 0)];
}

/* Envelope records (src/queue/README) and our Received: header
 * (RFC 5321 section 4.4). */
static int
smtp_build_head(struct smtp_session *s, struct buf *b)
{
	const struct smtp_tx *tx = s->tx;
	char from[SMTP_PATH_MAX + 1], helo[SMTP_DOMAIN_MAX * 4 + 1], date[64];
	time_t now = time(NULL);
	struct tm tm;
	int rc = 0;

	smtp_addr_format(&tx->from, from, sizeof from);
	str_escape(helo, sizeof helo, s->helo, strlen(s->helo));
	rc |= buf_printf(b, QSTORE_VERSION_LINE "qid %s\narrival %lld\n"
	    "listener %s\nclient %s %u\nhelo %s\nprotocol %s\nbody %s\n"
	    "from %s\n", tx->qid, (long long)now,
	    listen_role_name(s->l->conf->role), s->addr, s->port, helo,
	    smtp_protocol(s), tx->body_8bit ? "8BITMIME" : "7BIT", from);
	for (size_t i = 0; i < tx->nrcpts; i++)
		rc |= buf_printf(b, "rcpt %s\n", tx->rcpts[i]);
	rc |= buf_puts(b, "\n");

	localtime_r(&now, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S %z", &tm);
	/* TCP-info is the address literal (RFC 5321 section 4.4). */
	rc |= buf_printf(b, "Received: from %s ([%s%s])\r\n"
	    "\tby %s (postern) with %s id %s",
	    helo, strchr(s->addr, ':') ? "IPv6:" : "", s->addr,
	    s->w->conf->hostname, smtp_protocol(s),
	    tx->qid);
	if (tx->nrcpts == 1)
		rc |= buf_printf(b, "\r\n\tfor <%s>", tx->rcpts[0]);
	rc |= buf_printf(b, "; %s\r\n", date);
	return rc;
}

static void
smtp_cmd_data(struct smtp_session *s, char *arg)
{
	struct smtp_tx *tx = s->tx;
	struct buf head;

	if (*arg) {
		smtp_reply(s, R_SYNTAX, NULL);
		return;
	}
	if (tx == NULL) {
		smtp_reply(s, R_NEED_MAIL, NULL);
		return;
	}
	if (tx->nrcpts == 0) {
		smtp_reply(s, R_NO_VALID_RCPTS, NULL);
		return;
	}
	qid_next(tx->qid);
	buf_init(&head, 0);
	if (smtp_build_head(s, &head) == -1 ||
	    qstore_create(&tx->qf, s->w->conf->spool, tx->qid, head.data,
	    head.len) == -1) {
		log_warn("%016" PRIx64 " smtp queue create qid=%s", s->id,
		    tx->qid);
		buf_free(&head);
		smtp_reply(s, errno == ENOSPC || errno == EDQUOT ?
		    R_QUEUE_FULL : R_QUEUE_TEMPFAIL, NULL);
		return;
	}
	/* The head is the envelope, its blank line, then our Received:
	 * header, which starts the message content. */
	tx->qf_open = 1;
	buf_free(&head);
	data_reader_init(&tx->dr);
	smtp_enter_state(s, SMTP_ST_DATA);
	smtp_reply(s, R_DATA_GO, NULL);
}

static void
smtp_cmd_rset(struct smtp_session *s, char *arg)
{
	smtp_reset_tx(s);
	smtp_reply(s, R_ACTION_OK, NULL);
}

static void
smtp_cmd_noop(struct smtp_session *s, char *arg)
{
	smtp_reply(s, R_ACTION_OK, NULL);
}

static void
smtp_cmd_quit(struct smtp_session *s, char *arg)
{
	smtp_reply(s, R_BYE, NULL);
	smtp_close_after_reply(s, "quit");
}

/* No user enumeration (RFC 5321 3.5.3 allows 252). */
static void
smtp_cmd_vrfy(struct smtp_session *s, char *arg)
{
	smtp_reply(s, *arg ? R_VRFY : R_SYNTAX, NULL);
}

static void
smtp_cmd_help(struct smtp_session *s, char *arg)
{
	smtp_reply(s, R_HELP, NULL);
}

static void
smtp_cmd_not_implemented(struct smtp_session *s, char *arg)
{
	smtp_reply(s, R_NOT_IMPLEMENTED, NULL);
}

/* Sendmail's M=E: the submission ports never run the queue for anyone. */
static void
smtp_cmd_etrn(struct smtp_session *s, char *arg)
{
	smtp_reply(s, s->l->conf->auth == AUTH_REQUIRED ? R_ETRN_REFUSED :
	    R_NOT_IMPLEMENTED, NULL);
}

/* -1: the connection cannot be watched (epoll_ctl refused it: the
 * watch limit, or no memory); without its read event a session would
 * never hear from its client again, nor time out. */
static int
smtp_setup_bev(struct smtp_session *s)
{
	struct timeval tv = { (time_t)s->w->conf->smtp_timeout, 0 };

	bufferevent_setcb(s->bev, smtp_read_cb, smtp_write_cb, smtp_event_cb, s);
	bufferevent_set_timeouts(s->bev, &tv, &tv);
	if (bufferevent_enable(s->bev, EV_READ) == -1)
		return -1;
	/* Plaintext (before any STARTTLS): replies are written directly. */
	if (!(s->flags & SMTP_F_TLS) && bufferevent_get_underlying(s->bev) ==
	    NULL && bufferevent_openssl_get_ssl(s->bev) == NULL &&
	    conn_direct_start(&s->direct, s->w->base, s->bev, smtp_write_cb,
	    s) == 0)
		return 0;
	return bufferevent_enable(s->bev, EV_WRITE);
}

/* RFC 3207.  Whatever the client sent after STARTTLS arrived in the
 * clear and is thrown away (CVE-2011-0411): the session starts over
 * inside TLS, without HELO, transaction or authentication. */
static void
smtp_cmd_starttls(struct smtp_session *s, char *arg)
{
	struct bufferevent *tls;

	if (*arg) {
		smtp_reply(s, R_SYNTAX, NULL);
		return;
	}
	if (s->flags & SMTP_F_TLS) {
		smtp_reply(s, R_TLS_ACTIVE, NULL);
		return;
	}
	if (!smtp_starttls_offered(s)) {
		smtp_reply(s, R_NOT_IMPLEMENTED, NULL);
		return;
	}
	smtp_reply(s, R_STARTTLS_GO, NULL);
	conn_direct_stop(&s->direct);	/* the 220 leaves through libevent */
	if ((tls = conn_starttls(s->w->base, s->bev, s->w->tls_ctx)) == NULL) {
		smtp_close_after_reply(s, "tls-setup");
		return;
	}
	s->bev = tls;
	smtp_tx_free(s);
	s->helo[0] = '\0';
	/* RFC 3207 section 4.2: everything learnt in the clear is forgotten,
	 * a login too (possible where cleartext-auth allows AUTH before
	 * TLS).  Nothing can be read through the TLS layer before the
	 * handshake is done, so every command from now on comes inside
	 * TLS. */
	s->flags &= ~(SMTP_F_ESMTP | SMTP_F_AUTH);
	s->user[0] = '\0';
	s->flags |= SMTP_F_TLS;
	smtp_enter_state(s, SMTP_ST_CONNECTED);
	if (smtp_setup_bev(s) == -1) {
		log_warnx("%016" PRIx64 " smtp cannot watch the connection",
		    s->id);
		smtp_close_after_reply(s, "no-watch");
		return;
	}
	smtp_deadline_update(s, 1, 1);		/* the handshake */
}

/* The auth process answered: a challenge or the outcome.  Reading
 * resumes through a deferred read callback, never from in here (this
 * may run inside a call made by the session itself). */
static void
smtp_auth_cb(void *arg, int is_result, enum msg_auth_result result,
    const uint8_t *data, size_t len, const char *user)
{
	struct smtp_session *s = arg;

	if (s->bev == NULL || s->state != SMTP_ST_AUTH_WAIT)
		return;
	if (!is_result) {
		auth_challenge_write(bufferevent_get_output(s->bev), "334", data,
		    len);
		smtp_enter_state(s, SMTP_ST_AUTH_INPUT);
	} else {
		s->auth_reqid = 0;
		smtp_enter_state(s, SMTP_ST_HELO);
		log_info("%016" PRIx64 " smtp auth user=%s mech=%s result=%s",
		    s->id, user && *user ? user : "-", s->auth_mech->name,
		    auth_result_name(result));
		switch (result) {
		case AUTH_RESULT_OK:
			s->flags |= SMTP_F_AUTH;
			strlcpy(s->user, user, sizeof s->user);
			smtp_reply(s, R_AUTH_OK, NULL);
			break;
		case AUTH_RESULT_FAIL:
			smtp_reply(s, R_AUTH_FAILED, NULL);
			break;
		case AUTH_RESULT_MALFORMED:
			smtp_reply(s, R_AUTH_MALFORMED, NULL);
			break;
		case AUTH_RESULT_TEMPFAIL:
			smtp_reply(s, R_AUTH_TEMPFAIL, NULL);
			break;
		case AUTH_RESULT_BLOCKED:
			smtp_reply(s, R_AUTH_BLOCKED, NULL);
			smtp_close_after_reply(s, "auth-blocked");
			return;
		}
	}
	conn_watch_stop(s->bev);
	if (smtp_read_on(s) == -1)
		return;
	bufferevent_trigger(s->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS |
	    BEV_TRIG_DEFER_CALLBACKS);
}

static void
smtp_auth_send(struct smtp_session *s, const uint8_t *data, size_t n,
    int first, int has_ir)
{
	uint32_t flags = 0;

	/* Commands wait, but a client who leaves calls the check off
	 * (smtp_free cancels it). */
	smtp_enter_state(s, SMTP_ST_AUTH_WAIT);
	conn_watch_start(s->bev, SMTP_LINE_MAX);
	if (!first) {
		auth_client_step(s->auth_reqid, data, n);
		return;
	}
	if (s->flags & SMTP_F_TLS)
		flags |= MSG_AUTH_F_TLS;
	if (s->l->conf->cleartext_auth == CLEARTEXT_LOOPBACK &&
	    sockaddr_is_loopback((const struct sockaddr *)&s->ss))
		flags |= MSG_AUTH_F_LOOPBACK;
	/* Asked here, not at accept: most sessions on port 25 never log
	 * in. */
	if (s->local[0] == '\0')
		conn_local_address(s->bev, s->local, sizeof s->local);
	s->auth_reqid = auth_client_start(s->auth_mech->name, s->id, s->addr,
	    s->local, flags, data, n, has_ir, smtp_auth_cb, s);
	if (s->auth_reqid == 0) {
		smtp_enter_state(s, SMTP_ST_HELO);
		conn_watch_stop(s->bev);
		smtp_reply(s, R_AUTH_TEMPFAIL, NULL);
	}
}

/* RFC 4954: AUTH mechanism [initial-response] */
static void
smtp_cmd_auth(struct smtp_session *s, char *arg)
{
	const struct sasl_mech *m;
	char *ir;
	unsigned char *data;
	long n = 0;

	if (s->l->conf->auth == AUTH_OFF) {
		smtp_reply(s, R_NOT_IMPLEMENTED, NULL);
		return;
	}
	if (s->flags & SMTP_F_AUTH) {
		smtp_reply(s, R_AUTH_ALREADY, NULL);
		return;
	}
	if (s->tx) {
		smtp_reply(s, R_AUTH_IN_TX, NULL);
		return;
	}
	if ((ir = strchr(arg, ' ')) != NULL)
		*ir++ = '\0';
	m = sasl_mech_lookup(arg);
	if (m == NULL || !(s->w->conf->auth_mechanisms & (1u << m->id))) {
		smtp_reply(s, R_AUTH_MECH_UNKNOWN, NULL);
		return;
	}
	if (!smtp_auth_offered(s)) {
		smtp_reply(s, R_AUTH_NEEDS_TLS, NULL);
		return;
	}
	s->auth_mech = m;
	if (ir == NULL) {
		smtp_auth_send(s, NULL, 0, 1, 0);
		return;
	}
	/* "=" is an empty initial response (RFC 4954 section 4). */
	data = xmalloc(BASE64_DECODED_MAX(strlen(ir)) + 1);
	if (strcmp(ir, "=") != 0 &&
	    (n = base64_decode(data, ir, strlen(ir))) < 0) {
		free(data);
		smtp_reply(s, R_AUTH_BAD_BASE64, NULL);
		return;
	}
	smtp_auth_send(s, data, (size_t)n, 1, 1);
	OPENSSL_cleanse(data, (size_t)n);	/* a PLAIN password */
	free(data);
}

/* A line answering a 334 challenge. */
static void
smtp_auth_input(struct smtp_session *s, const char *line, size_t len)
{
	unsigned char *data;
	long n;

	if (len == 1 && line[0] == '*') {
		auth_client_cancel(s->auth_reqid);
		s->auth_reqid = 0;
		smtp_enter_state(s, SMTP_ST_HELO);
		log_info("%016" PRIx64 " smtp auth mech=%s result=cancelled",
		    s->id, s->auth_mech->name);
		smtp_reply(s, R_AUTH_CANCELLED, NULL);
		return;
	}
	data = xmalloc(BASE64_DECODED_MAX(len) + 1);
	if ((n = base64_decode(data, line, len)) < 0) {
		free(data);
		auth_client_cancel(s->auth_reqid);
		s->auth_reqid = 0;
		smtp_enter_state(s, SMTP_ST_HELO);
		smtp_reply(s, R_AUTH_BAD_BASE64, NULL);
		return;
	}
	smtp_auth_send(s, data, (size_t)n, 0, 1);
	OPENSSL_cleanse(data, (size_t)n);	/* a LOGIN password */
	free(data);
}

typedef void (*smtp_cmd_handler)(struct smtp_session *, char *);

static const smtp_cmd_handler smtp_handlers[CMD__COUNT] = {
	[CMD_HELO]	= smtp_cmd_helo,
	[CMD_EHLO]	= smtp_cmd_ehlo,
	[CMD_MAIL]	= smtp_cmd_mail,
	[CMD_RCPT]	= smtp_cmd_rcpt,
	[CMD_DATA]	= smtp_cmd_data,
	[CMD_RSET]	= smtp_cmd_rset,
	[CMD_NOOP]	= smtp_cmd_noop,
	[CMD_QUIT]	= smtp_cmd_quit,
	[CMD_VRFY]	= smtp_cmd_vrfy,
	[CMD_HELP]	= smtp_cmd_help,
	[CMD_STARTTLS]	= smtp_cmd_starttls,
	[CMD_AUTH]	= smtp_cmd_auth,
	[CMD_EXPN]	= smtp_cmd_not_implemented,	/* no list enumeration */
	[CMD_ETRN]	= smtp_cmd_etrn,
	[CMD_BDAT]	= smtp_cmd_not_implemented,	/* CHUNKING not offered */
	[CMD_TURN]	= smtp_cmd_not_implemented,	/* RFC 2821: obsolete */
};

static void
smtp_dispatch(struct smtp_session *s, char *line, size_t len)
{
	struct smtp_cmd cmd;
	char logline[128];

	/* Parsing splits the line in place: keep a loggable copy.  Never
	 * an AUTH payload: only its verb and mechanism reach the log. */
	if (len > 5 && strncasecmp(line, "AUTH ", 5) == 0) {
		const char *sp = memchr(line + 5, ' ', len - 5);
		str_escape(logline, sizeof logline, line,
		    sp ? (size_t)(sp - line) : len);
	} else
		str_escape(logline, sizeof logline, line, len);
	s->cmdline = logline;
	if (smtp_cmd_parse(line, len, &cmd) == -1) {
		s->counts[CMD__COUNT]++;
		base64_word_hide(logline, sizeof logline, len);
		smtp_reply(s, memchr(line, '\0', len) ? R_NUL_IN_COMMAND :
		    R_UNRECOGNIZED, NULL);
		goto done;
	}
	if (cmd.def == NULL) {
		s->counts[CMD__COUNT]++;
		base64_word_hide(logline, sizeof logline, len);
		smtp_reply(s, R_UNRECOGNIZED, NULL);
		goto done;
	}
	s->counts[cmd.def->id]++;
	/* A HELO or EHLO after one already answered moves nothing on, like
	 * a NOOP; the one after STARTTLS is not a repeat (s->helo is
	 * forgotten there). */
	if (((cmd.def->flags & CMD_F_LIMIT) || ((cmd.def->id == CMD_HELO ||
	    cmd.def->id == CMD_EHLO) && s->helo[0] != '\0')) &&
	    ++s->njunk > SMTP_JUNK_MAX) {
		smtp_reply(s, R_TOO_MANY_ERRORS, NULL);
		smtp_close_after_reply(s, "junk-commands");
		goto done;
	}
	if (s->client_access == ACCESS_REJECT && cmd.def->id != CMD_QUIT) {
		smtp_reply(s, R_ACCESS_QUIT_ONLY, NULL);
		goto done;
	}
	if (s->state == SMTP_ST_CONNECTED && !(cmd.def->flags & CMD_F_PRE_HELO)) {
		smtp_reply(s, R_NEED_HELO, NULL);
		goto done;
	}
	smtp_handlers[cmd.def->id](s, cmd.arg);
done:
	s->cmdline = NULL;
}

/* ---------------------------------------------------------------- */
/* DATA and the spool commit                                         */

static void
smtp_data_out(void *arg, const char *p, size_t n)
{
	struct smtp_session *s = arg;
	struct smtp_tx *tx = s->tx;

	if (tx->too_big)
		return;
	if (tx->dr.size > s->w->conf->message_size_limit) {
		/* Keep reading to the end of DATA, storing nothing more. */
		tx->too_big = 1;
		return;
	}
	qstore_write(&tx->qf, p, n);
	if (s->l->conf->sender_check == SENDER_CHECK_HEADER && !tx->head_done) {
		/* Keep the header block (it ends at the first empty line). */
		if (tx->head.max == 0)
			buf_init(&tx->head, SMTP_HEADER_MAX);
		if (buf_append(&tx->head, p, n) == -1)
			tx->head_cut = tx->head_done = 1;
		else if (memmem(tx->head.data, tx->head.len, "\r\n\r\n", 4))
			tx->head_done = 1;
	}
}

/* event: queued or discarded; note (or NULL) ends the line. */
static void
smtp_log_queued(struct smtp_session *s, const char *event, const char *note)
{
	const struct smtp_tx *tx = s->tx;
	char from[SMTP_PATH_MAX + 1], to[1024];
	size_t o = 0;

	smtp_addr_format(&tx->from, from, sizeof from);
	for (size_t i = 0; i < tx->nrcpts && o < sizeof to - 1; i++)
		o += (size_t)snprintf(to + o, sizeof to - o, "%s<%s>",
		    i ? "," : "", tx->rcpts[i]);
	if (o >= sizeof to - 1)
		strlcpy(to + sizeof to - 5, "...", 5);
	log_info("%016" PRIx64 " smtp %s qid=%s from=<%s> to=%s nrcpt=%zu "
	    "size=%" PRIu64 "%s%s", s->id, event, tx->qid, from, o ? to : "",
	    tx->nrcpts, tx->dr.size, note ? " " : "", note ? note : "");
}

/* An access rule said DISCARD: the client hears the usual 250, nothing
 * is kept, and the log says which rule did it. */
static void
smtp_discard(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;
	char note[PATH_MAX + 64];
	size_t n = strlcpy(note, "status=discarded (discarded by access rule ",
	    sizeof note);

	access_rule_where(s->amap, tx->discard, note + n, sizeof note - n);
	(void)strlcat(note, ")", sizeof note);	/* a long path: cut is fine */
	qstore_abort(&tx->qf);
	tx->qf_open = 0;
	smtp_log_queued(s, "discarded", note);
	s->njunk = 0;		/* accepted, as far as the client knows */
	smtp_reply(s, R_QUEUED, tx->qid);
	smtp_reset_tx(s);
}

static void
smtp_commit_done(void *arg, int result, int err)
{
	struct smtp_session *s = arg;
	struct smtp_tx *tx = s->tx;

	s->flags &= ~SMTP_F_COMMITTING;
	tx->qf_open = 0;		/* committed or removed by qstore */
	if (result == 0 && tx->hold) {
		char note[PATH_MAX + 64];
		size_t n = strlcpy(note, "status=held (held by access rule ",
		    sizeof note);

		access_rule_where(s->amap, tx->hold, note + n, sizeof note - n);
		(void)strlcat(note, ")", sizeof note);
		smtp_log_queued(s, "queued", note);
		s->nqueued++;
	} else if (result == 0) {
		smtp_log_queued(s, "queued", NULL);
		s->nqueued++;
	} else {
		errno = err;
		log_warn("%016" PRIx64 " smtp queue commit qid=%s failed",
		    s->id, tx->qid);
	}
	smtp_enter_state(s, SMTP_ST_HELO);
	if (result == 0)
		s->njunk = 0;
	if (s->flags & SMTP_F_ORPHAN) {
		if (result == 0)
			log_info("%016" PRIx64 " smtp client left before the "
			    "reply for qid=%s; it may send it again", s->id,
			    tx->qid);
		smtp_free(s);
		return;
	}
	smtp_reply(s, result == 0 ? R_QUEUED : (err == ENOSPC ||
	    err == EDQUOT) ? R_QUEUE_FULL : R_QUEUE_TEMPFAIL,
	    result == 0 ? tx->qid : NULL);
	smtp_tx_free(s);
	if (s->flags & SMTP_F_CLOSE_AFTER_COMMIT) {
		/* Asked to close during the commit (a timeout): the
		 * message's reply is the last. */
		s->flags &= ~SMTP_F_CLOSE_AFTER_COMMIT;
		smtp_close_after_reply(s, s->close_reason);
		return;
	}
	if (s->w->stopping) {
		smtp_reply(s, R_SHUTDOWN, NULL);
		smtp_close_after_reply(s, "shutdown");
		return;
	}
	if (smtp_read_on(s) == -1)
		return;
	smtp_process_input(s);
}

/* The line deadline (see deadline_ev): a finished line stops it; a
 * partial one starts it unless it is already running. */
static void
smtp_deadline_update(struct smtp_session *s, int line_done, int partial)
{
	conn_deadline_update(s->deadline_ev, s->w->conf->smtp_timeout,
	    line_done, partial);
}

static void
smtp_deadline_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct smtp_session *s = arg;

	/* Waiting for the disk, the auth process or the shared store, or
	 * leaving anyway: not the client's fault.  Reading resumes through
	 * smtp_process_input, which starts the deadline again. */
	if (s->state == SMTP_ST_QUIT || s->state == SMTP_ST_COMMIT ||
	    s->state == SMTP_ST_AUTH_WAIT || s->state == SMTP_ST_STATE_WAIT)
		return;
	smtp_reply(s, R_TIMEOUT, NULL);
	smtp_close_after_reply(s, "line-deadline");
}

/* Feed what has arrived to the DATA reader. */
static void
smtp_data_input(struct smtp_session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct smtp_tx *tx = s->tx;
	enum data_result r = DATA_MORE;
	int line_done = 0;

	while (r == DATA_MORE && evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		size_t used;

		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		r = data_reader_feed(&tx->dr, v.iov_base, v.iov_len, &used,
		    smtp_data_out, s);
		if (memchr(v.iov_base, '\n', used) != NULL)
			line_done = 1;
		evbuffer_drain(in, used);
	}
	switch (r) {
	case DATA_MORE:
		smtp_deadline_update(s, line_done, tx->dr.state != DATA_BOL);
		return;
	case DATA_BARE_EOL:
		qstore_abort(&tx->qf);
		tx->qf_open = 0;
		smtp_reply(s, R_BARE_LF, NULL);
		smtp_close_after_reply(s, "bare-lf");
		return;
	case DATA_END:
		break;
	}
	if (tx->too_big) {
		smtp_reply(s, R_MSG_TOO_BIG, NULL);
		smtp_reset_tx(s);
		return;
	}
	if (s->l->conf->sender_check == SENDER_CHECK_HEADER &&
	    (s->flags & SMTP_F_AUTH) && tx->head.len &&
	    !smtp_header_from_owned(s, tx)) {
		smtp_reply(s, R_FROM_NOT_OWNED, s->user);
		smtp_reset_tx(s);
		return;
	}
	if (tx->discard) {
		smtp_discard(s);
		return;
	}
	tx->qf.hold = tx->hold != NULL;		/* committed into hold/ */
	smtp_enter_state(s, SMTP_ST_COMMIT);
	s->flags |= SMTP_F_COMMITTING;
	bufferevent_disable(s->bev, EV_READ);
	qcommit_submit(&tx->qf, smtp_commit_done, s);
}

/* ---------------------------------------------------------------- */
/* I/O                                                                */

static void
smtp_process_input(struct smtp_session *s)
{
	const struct conf *c = s->w->conf;

	for (;;) {
		/* STARTTLS replaces the bufferevent: look it up every time. */
		struct evbuffer *in = bufferevent_get_input(s->bev);
		char line[SMTP_AUTH_LINE_MAX + 3];
		size_t max = s->state == SMTP_ST_AUTH_INPUT ? SMTP_AUTH_LINE_MAX :
		    SMTP_LINE_MAX;
		struct evbuffer_ptr eol;
		size_t eol_len = 0, len;
		int secret = s->state == SMTP_ST_AUTH_INPUT;

		if (s->state == SMTP_ST_QUIT || s->state == SMTP_ST_COMMIT ||
		    s->state == SMTP_ST_AUTH_WAIT ||
		    s->state == SMTP_ST_STATE_WAIT)
			return;
		if (s->nerrors >= c->max_errors) {
			smtp_reply(s, R_TOO_MANY_ERRORS, NULL);
			smtp_close_after_reply(s, "too-many-errors");
			return;
		}
		if (s->state != SMTP_ST_DATA && conn_output_full(s->bev)) {
			s->flags |= SMTP_F_OUT_FULL;	/* smtp_write_cb */
			return;
		}
		if (s->state == SMTP_ST_DATA) {
			smtp_data_input(s);
			if (s->state == SMTP_ST_DATA || s->state == SMTP_ST_QUIT ||
			    s->state == SMTP_ST_COMMIT)
				return;
			continue;
		}
		eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
		len = eol.pos == -1 ? evbuffer_get_length(in) : (size_t)eol.pos;
		if (max == SMTP_LINE_MAX && !(s->flags & SMTP_F_SKIP_LINE)) {
			/* RFC 4954 section 4: the AUTH command line, with its
			 * initial response, may be as long as a response. */
			char verb[5];

			if (evbuffer_copyout(in, verb, 5) == 5 &&
			    strncasecmp(verb, "AUTH ", 5) == 0) {
				max = SMTP_AUTH_LINE_MAX;
				secret = 1;
			}
		}
		if (eol.pos == -1 && len <= max) {
			/* wait for the rest of the line */
			smtp_deadline_update(s, 0, len > 0 ||
			    (s->flags & SMTP_F_SKIP_LINE));
			return;
		}
		if ((s->flags & SMTP_F_SKIP_LINE) || len + eol_len > max) {
			/* Too long, whole or not: drop it, one reply per line,
			 * and keep memory bounded while its tail arrives. */
			evbuffer_drain(in, len + eol_len);
			if (!(s->flags & SMTP_F_SKIP_LINE)) {
				if (s->state == SMTP_ST_AUTH_INPUT) {
					auth_client_cancel(s->auth_reqid);
					s->auth_reqid = 0;
					smtp_enter_state(s, SMTP_ST_HELO);
				}
				/* RFC 4954 section 4 has a code of its own
				 * for an AUTH line or response. */
				smtp_reply(s, secret ? R_AUTH_LINE_TOO_LONG :
				    R_LINE_TOO_LONG, NULL);
			}
			if (eol.pos == -1)
				s->flags |= SMTP_F_SKIP_LINE;
			else
				s->flags &= ~SMTP_F_SKIP_LINE;
			continue;
		}
		if (secret)	/* PLAIN's response is the password */
			conn_take_secret(in, line, len + eol_len);
		else
			evbuffer_remove(in, line, len + eol_len);
		smtp_deadline_update(s, 1, 0);
		line[len] = '\0';
		if (len && line[len - 1] == '\r')
			line[--len] = '\0';
		if (s->state == SMTP_ST_AUTH_INPUT)
			smtp_auth_input(s, line, len);
		else
			smtp_dispatch(s, line, len);
		if (secret)
			explicit_bzero(line, len);
	}
}

static void
smtp_read_cb(struct bufferevent *bev, void *arg)
{
	smtp_process_input(arg);
}

static void
smtp_write_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_session *s = arg;

	conn_direct_resume(&s->direct);
	if (s->state == SMTP_ST_QUIT)
		conn_close_check(&s->closer);
	else if (s->flags & SMTP_F_OUT_FULL) {
		s->flags &= ~SMTP_F_OUT_FULL;
		if (smtp_read_on(s) == -1)
			return;
		smtp_process_input(s);
	}
}

static void
smtp_event_cb(struct bufferevent *bev, short events, void *arg)
{
	struct smtp_session *s = arg;

	if (events & BEV_EVENT_CONNECTED) {
		/* The TLS handshake is done (STARTTLS or implicit TLS). */
		char desc[128];

		tls_describe(bufferevent_openssl_get_ssl(bev), desc, sizeof desc);
		log_info("%016" PRIx64 " smtp tls %s", s->id, desc);
		smtp_deadline_update(s, 1, 0);
		return;
	}
	if ((events & BEV_EVENT_ERROR) && s->close_reason == NULL) {
		char why[160];

		if (conn_tls_error(bev, why, sizeof why)) {
			log_info("%016" PRIx64 " smtp tls error=\"%s\"", s->id, why);
			s->close_reason = "tls-error";
		}
	}
	if (events & BEV_EVENT_TIMEOUT) {
		if (s->state == SMTP_ST_QUIT) {
			s->close_reason = "write-timeout";
			smtp_free(s);
			return;
		}
		if (s->flags & SMTP_F_COMMITTING) {
			/* The message is being stored: its reply (a 250, not a
			 * 421 the client would take for a failure and send
			 * again) comes first, then the session ends. */
			bufferevent_enable(bev, EV_WRITE);
			smtp_close_after_reply(s, "timeout");
			return;
		}
		smtp_reply(s, R_TIMEOUT, NULL);
		/* Writing may still succeed; give it one more period. */
		bufferevent_enable(bev, EV_WRITE);
		smtp_close_after_reply(s, "timeout");
		return;
	}
	if (events & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		/* Half-closed during the AUTH check with more commands
		 * pipelined: they are answered first (conn.h). */
		if (!(events & BEV_EVENT_ERROR) &&
		    s->state == SMTP_ST_AUTH_WAIT && conn_eof_owed(bev))
			return;
		if (s->close_reason == NULL)
			s->close_reason = events & BEV_EVENT_EOF ?
			    (s->state == SMTP_ST_DATA ? "eof-in-data" : "eof") :
			    "io-error";
		/* A client that has finished sending (a half-close after a
		 * pipelined group) is still owed the replies not yet written,
		 * a 250 for a queued message among them: send, then close. */
		if (!(events & BEV_EVENT_ERROR) && s->state != SMTP_ST_COMMIT &&
		    evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
			smtp_close_after_reply(s, s->close_reason);
			return;
		}
		smtp_free(s);
		return;
	}
	log_warnx("%016" PRIx64 " smtp unexpected event 0x%x", s->id, events);
	abort();
}

/* ---------------------------------------------------------------- */
/* entry points                                                       */

void
smtp_session_accept(struct worker *w, const struct listener *l, int fd,
    const struct sockaddr *sa, socklen_t salen)
{
	struct smtp_session *s;
	char line[512];
	size_t n;
	int one = 1;

	/* Replies leave as soon as they are written: with Nagle a reply (or
	 * the TLS records after a handshake) could wait for the client's
	 * delayed ACK, 40 ms on Linux. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	s = xcalloc(1, sizeof *s);
	s->id = ((uint64_t)arc4random() << 32) | arc4random();
	s->w = w;
	s->l = l;
	memcpy(&s->ss, sa, salen < sizeof s->ss ? salen : sizeof s->ss);
	sockaddr_format(sa, s->addr, sizeof s->addr, &s->port);
	if (l->conf->tls == TLS_IMPLICIT) {
		/* RFC 8314: TLS from the first byte; the greeting waits in
		 * the output until the handshake is done. */
		if ((s->bev = conn_tls_accept(w->base, fd, w->tls_ctx)) != NULL)
			s->flags |= SMTP_F_TLS;
	} else
		s->bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (s->bev == NULL) {
		log_warnx("smtp: cannot set up the connection");
		if (l->conf->tls != TLS_IMPLICIT)
			close(fd);	/* conn_tls_accept's if TLS */
		free(s);
		return;
	}
	TAILQ_INSERT_TAIL(&w->smtp_sessions, s, entry);
	w->nsessions++;
	s->deadline_ev = evtimer_new(w->base, smtp_deadline_cb, s);
	if (s->deadline_ev == NULL)
		fatalx("smtp: evtimer_new failed");
	if (smtp_setup_bev(s) == -1) {
		log_warnx("%016" PRIx64 " smtp cannot watch the connection "
		    "from %s", s->id, s->addr);
		s->close_reason = "no-watch";
		smtp_free(s);
		return;
	}
	/* The TLS handshake is one "line": it must end in time too. */
	if (l->conf->tls == TLS_IMPLICIT)
		smtp_deadline_update(s, 0, 1);
	log_info("%016" PRIx64 " smtp connect address=%s port=%u listener=%s",
	    s->id, s->addr, s->port, l->name);

	if (w->nsessions > w->conf->max_sessions) {
		smtp_reply(s, R_TOO_MANY_SESSIONS, NULL);
		smtp_close_after_reply(s, "too-many-sessions");
		return;
	}
	if (!netprefix_match_list(w->conf->mynetworks, w->conf->nmynetworks,
	    sa)) {
		int rc = connlimit_acquire(sa, w->conf->max_connections_per_ip);

		if (rc == -1) {
			log_info("%016" PRIx64 " smtp connection-limit address=%s "
			    "limit=%u", s->id, s->addr,
			    w->conf->max_connections_per_ip);
			smtp_reply(s, R_TOO_MANY_CONN_IP, NULL);
			smtp_close_after_reply(s, "too-many-connections-per-ip");
			return;
		}
		if (rc == 1)
			s->flags |= SMTP_F_CONNCOUNT;
	}
	if (smtp_access_connect(s))
		return;
	n = (size_t)snprintf(line, sizeof line, "220 %s ESMTP postern\r\n",
	    w->conf->hostname);
	evbuffer_add(bufferevent_get_output(s->bev), line, n);
}

void
smtp_session_shutdown_all(struct worker *w)
{
	struct smtp_session *s, *next;

	for (s = TAILQ_FIRST(&w->smtp_sessions); s; s = next) {
		next = TAILQ_NEXT(s, entry);
		if (s->state == SMTP_ST_COMMIT || s->state == SMTP_ST_QUIT)
			continue;	/* smtp_commit_done closes it */
		smtp_reply(s, R_SHUTDOWN, NULL);
		smtp_close_after_reply(s, "shutdown");
	}
}
