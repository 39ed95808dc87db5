/*
 * smtp_client.c - the outbound SMTP state machine (see smtp_client.h).
 * Runs in the queue manager's event loop.  One read callback collects
 * (possibly multi-line) replies and hands each complete one to
 * sc_reply(), which switches on the state; every way out of a
 * transaction gives each recipient an outcome before the callback runs,
 * and nothing touches the client after a callback (the owner may free
 * it there).
 */
#include "deliver/smtp_client.h"
#include "lib/base64.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/netaddr.h"
#include "lib/strutil.h"
#include "lib/xalloc.h"
#include "sasl/sasl_client.h"
#include "smtp/smtp_addr.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <linux/sockios.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#define SC_LINE_MAX	2048		/* a reply line; RFC 5321 says 512 */
#define SC_REPLY_MAX	8192		/* all lines of one reply */
#define SC_CHUNK	(64 * 1024)	/* message read size */
#define SC_OUT_HIGH	(256 * 1024)	/* stop filling the socket buffer */

/* RFC 5321 section 4.5.3.2 */
#define T_GREETING	300
#define T_MAIL		300
#define T_RCPT		300
#define T_DATA		120
#define T_BLOCK		180
#define T_DOT		600

enum sc_state {
	SC_CONNECTING,	/* TCP (and TLS for 465) handshake */
	SC_GREETING,	/* waiting for 220 */
	SC_EHLO,
	SC_HELO,
	SC_STARTTLS,	/* STARTTLS sent */
	SC_TLS,		/* TLS handshake after STARTTLS */
	SC_AUTH,	/* an AUTH exchange */
	SC_READY,	/* idle between transactions */
	SC_MAIL,	/* MAIL and RCPTs sent, collecting their replies */
	SC_DATA,	/* DATA sent */
	SC_BODY,	/* streaming the message */
	SC_DOT,		/* "." sent */
	SC_RSET,	/* RSET after a transaction that sent no data */
	SC_QUIT,
};

#define CAP_STARTTLS	0x01
#define CAP_PIPELINING	0x02
#define CAP_SIZE	0x04
#define CAP_8BITMIME	0x08
#define CAP_AUTH	0x10

struct smtp_client {
	LIST_ENTRY(smtp_client)	 quitting_entry;	/* smtp_client_quit */
	int			 quitting;
	struct event_base	*base;
	struct bufferevent	*bev;
	struct smtp_client_cfg	 cfg;
	char			 helo[256], servername[256], user[256],
				 pass[1024];
	char			 peer[320];
	enum sc_state		 state;
	int			 caps, tls, ehlo_done;
	unsigned long long	 size_limit;
	char			 auth_mechs[256];
	struct sasl_client	 sasl;
	int			 sasl_active;
	struct buf		 reply;		/* lines of the current reply */
	int			 reply_code;
	int			 reply_done;	/* reply holds a complete one */
	int			 busy;		/* inside a callback of ours */
	int			 dead;		/* freed while busy */
	/* setup */
	smtp_client_ready_fn	 ready;
	void			*ready_arg;
	/* the transaction */
	struct remote_msg	*msg;
	smtp_client_tx_fn	 txdone;
	void			*tx_arg;
	size_t			 replies_wanted, replies_got, naccepted;
	size_t			 next_rcpt;	/* without PIPELINING */
	unsigned char		*accepted;	/* per rcpt: 250 to RCPT */
	/* The rcpts (indexes in msg) that this transaction names: all of
	 * them, then those refused as too many (sc_tx_again). */
	size_t			*round;
	size_t			 nround;
	unsigned char		*again;		/* per rcpt: "too many" */
	size_t			 nagain;
	int			 mail_ok;
	off_t			 body_off;
	int			 body_bol, body_lastlf;
	char			*chunk;
	/* The end of the body, gone from our buffer but not yet taken by
	 * the server (sc_drain_tick). */
	struct event		*drain_ev;
	int			 drain_left;	/* octets the kernel still holds */
	time_t			 drain_moved;	/* when that last went down */
	char			 lastcmd[16];	/* for "in reply to X" */
	int			 connect_errno;	/* connect(2) failed at once */
};

static void	sc_send(struct smtp_client *, const char *fmt, ...)
		    __attribute__((format(printf, 2, 3)));
static void	sc_broken(struct smtp_client *, const char *);
static void	sc_enter(struct smtp_client *);
static void	sc_leave(struct smtp_client *);

const char *
smtp_client_peer(const struct smtp_client *c)
{
	return c->peer;
}

void
smtp_client_dsn(int code, const char *text, char *dsn, size_t dsnsz)
{
	/* "250 2.1.5 Ok": an enhanced code whose class matches the reply */
	if (isdigit((unsigned char)text[0]) && text[1] == '.' &&
	    text[0] == '0' + code / 100) {
		size_t n = strspn(text, "0123456789.");
		if (n >= 5 && n < dsnsz && (text[n] == ' ' || text[n] == '\0')) {
			memcpy(dsn, text, n);
			dsn[n] = '\0';
			return;
		}
	}
	snprintf(dsn, dsnsz, "%d.0.0", code / 100);
}

static void
sc_timeout(struct smtp_client *c, unsigned rfc)
{
	struct timeval tv = { c->cfg.timeout ? c->cfg.timeout : rfc, 0 };

	bufferevent_set_timeouts(c->bev, &tv, &tv);
}

/*
 * While the message goes out the server says nothing, so a read timeout
 * would measure the upload, not the server: a slow link would never get
 * a large message through, and a timeout that closes the connection
 * with the final "." already in the socket gets the message accepted
 * there while it is recorded as deferred, then sent again.  Until the
 * server has taken all of it, only progress is timed, each block afresh
 * (RFC 5321 section 4.5.3.2.5): the writes from our buffer, then the
 * kernel's send queue draining (sc_drain_tick); the reply to the "."
 * then gets its own time.  A stall resets the connection instead of
 * closing it, so that what the kernel still holds is never sent.
 */
static unsigned
sc_block_time(const struct smtp_client *c)
{
	return c->cfg.timeout ? c->cfg.timeout : T_BLOCK;
}

static void
sc_timeout_sending(struct smtp_client *c)
{
	struct timeval tv = { sc_block_time(c), 0 };

	bufferevent_set_timeouts(c->bev, NULL, &tv);
}

static int
sc_fd(struct smtp_client *c)
{
	struct bufferevent *under = bufferevent_get_underlying(c->bev);

	return bufferevent_getfd(under ? under : c->bev);
}

static void
sc_reset(struct smtp_client *c)
{
	struct linger reset = { 1, 0 };
	int fd = sc_fd(c);

	if (fd != -1)
		(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset,
		    sizeof reset);
}

/* Octets on their way to the server and not yet acknowledged: the
 * kernel's send queue, and under TLS the records waiting for it; -1 if
 * it cannot be told. */
static int
sc_kernel_queue(struct smtp_client *c)
{
	struct bufferevent *under = bufferevent_get_underlying(c->bev);
	int fd = sc_fd(c), n;

	if (fd == -1 || ioctl(fd, SIOCOUTQ, &n) == -1)
		return -1;
	if (under != NULL)
		n += (int)evbuffer_get_length(bufferevent_get_output(under));
	return n;
}

static void
sc_drain_tick(evutil_socket_t unused, short ev, void *arg)
{
	struct smtp_client *c = arg;
	struct timeval tick = { 0, 200000 };
	time_t now = time(NULL);
	int left;

	if (c->state != SC_DOT)
		return;			/* the reply came meanwhile */
	left = sc_kernel_queue(c);
	if (left <= 0) {
		sc_timeout(c, T_DOT);	/* all taken: the reply's time */
		return;
	}
	if (left < c->drain_left)
		c->drain_moved = now;
	c->drain_left = left;
	if (now - c->drain_moved >= (time_t)sc_block_time(c)) {
		sc_enter(c);
		sc_reset(c);
		sc_broken(c, "sending the message (timeout)");
		sc_leave(c);
		return;
	}
	evtimer_add(c->drain_ev, &tick);
}

/* Our buffer is empty: time the kernel's part. */
static void
sc_drain_start(struct smtp_client *c)
{
	if (c->drain_ev == NULL &&
	    (c->drain_ev = evtimer_new(c->base, sc_drain_tick, c)) == NULL) {
		sc_timeout(c, T_DOT);
		return;
	}
	bufferevent_set_timeouts(c->bev, NULL, NULL);
	c->drain_left = INT_MAX;
	c->drain_moved = time(NULL);
	sc_drain_tick(-1, 0, c);
}

static void
sc_send(struct smtp_client *c, const char *fmt, ...)
{
	va_list ap;
	char line[1100];
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof line - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof line - 2)
		n = (int)sizeof line - 3;
	/* The verb, for "(in reply to MAIL command)" in failures. */
	snprintf(c->lastcmd, sizeof c->lastcmd, "%.*s", (int)strcspn(line, " "),
	    line);
	line[n++] = '\r';
	line[n++] = '\n';
	evbuffer_add(bufferevent_get_output(c->bev), line, (size_t)n);
}

/* The reply as one line for a DSN: "host said: 550 5.1.1 ... (in reply
 * to RCPT command)". */
static void
sc_describe(struct smtp_client *c, char *dst, size_t dstsz, const char *cmd)
{
	char text[400];
	const char *r = c->reply.data ? c->reply.data : "";
	size_t n = 0;

	for (; *r && n + 1 < sizeof text; r++)
		text[n++] = *r == '\n' ? ' ' : *r;
	text[n] = '\0';
	/* Bounded parts: a DSN's Diagnostic-Code, not a transcript.  No
	 * command yet: the reply was the greeting. */
	if (cmd[0] == '\0')
		snprintf(dst, dstsz, "%.200s said: %d %.250s (in its greeting)",
		    c->peer, c->reply_code, text);
	else
		snprintf(dst, dstsz, "%.200s said: %d %.250s (in reply to "
		    "%.15s command)", c->peer, c->reply_code, text, cmd);
}

static void
sc_rcpt_set(struct remote_rcpt *r, enum remote_outcome o, const char *dsn,
    const char *why, const char *relay)
{
	r->outcome = o;
	strlcpy(r->dsn, dsn, sizeof r->dsn);
	strlcpy(r->why, why, sizeof r->why);
	strlcpy(r->relay, relay, sizeof r->relay);
}

/* Every recipient of the transaction without a final outcome yet (none
 * so far, or accepted at RCPT and waiting for the data) gets this one. */
static void
sc_fail_open(struct smtp_client *c, enum remote_outcome o, const char *dsn,
    const char *why)
{
	for (size_t i = 0; i < c->msg->nrcpts; i++)
		if (c->msg->rcpts[i].dsn[0] == '\0' || c->accepted[i]) {
			sc_rcpt_set(&c->msg->rcpts[i], o, dsn, why, c->peer);
			c->accepted[i] = 0;
		}
}

static void
sc_tx_end(struct smtp_client *c, int reusable)
{
	struct remote_msg *m = c->msg;
	smtp_client_tx_fn fn = c->txdone;
	void *arg = c->tx_arg;

	c->msg = NULL;
	free(c->chunk);
	c->chunk = NULL;
	free(c->accepted);
	c->accepted = NULL;
	free(c->again);
	c->again = NULL;
	free(c->round);
	c->round = NULL;
	if (reusable) {
		c->state = SC_READY;
		sc_timeout(c, T_MAIL);
	}
	fn(c, m, reusable, arg);	/* may free c */
}

static void
sc_setup_failed(struct smtp_client *c, int perm, const char *dsn,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
sc_setup_failed(struct smtp_client *c, int perm, const char *dsn,
    const char *fmt, ...)
{
	struct smtp_client_error err;
	va_list ap;

	err.perm = perm;
	err.tls_failed = c->state == SC_TLS;
	err.auth_refused = c->state == SC_AUTH && c->reply_code / 100 == 5;
	strlcpy(err.dsn, dsn, sizeof err.dsn);
	va_start(ap, fmt);
	vsnprintf(err.text, sizeof err.text, fmt, ap);
	va_end(ap);
	c->ready(c, 0, &err, c->ready_arg);	/* frees c */
}

/* The connection broke: whoever waits learns it. */
static void
sc_broken(struct smtp_client *c, const char *what)
{
	char why[512];

	if (c->msg) {
		snprintf(why, sizeof why, "lost connection with %s while %s",
		    c->peer, what);
		sc_fail_open(c, REMOTE_TEMPFAIL, "4.4.2", why);
		sc_tx_end(c, 0);
	} else if (c->state < SC_READY)
		sc_setup_failed(c, 0, "4.4.2", "lost connection with %s while %s",
		    c->peer, what);
	else
		smtp_client_free(c);	/* idle or quitting */
}

/* ---------------------------------------------------------------- */
/* setup: greeting, EHLO, STARTTLS, AUTH                             */

static void
sc_parse_ehlo(struct smtp_client *c)
{
	char *save, *line, *copy = xstrdup(c->reply.data ? c->reply.data : "");
	int first = 1;

	c->caps = 0;
	c->size_limit = 0;
	c->auth_mechs[0] = '\0';
	for (line = strtok_r(copy, "\n", &save); line;
	    line = strtok_r(NULL, "\n", &save)) {
		if (first) {		/* the greeting line names the host */
			first = 0;
			continue;
		}
		if (strcasecmp(line, "STARTTLS") == 0)
			c->caps |= CAP_STARTTLS;
		else if (strcasecmp(line, "PIPELINING") == 0)
			c->caps |= CAP_PIPELINING;
		else if (strcasecmp(line, "8BITMIME") == 0)
			c->caps |= CAP_8BITMIME;
		else if (strncasecmp(line, "SIZE", 4) == 0 &&
		    (line[4] == ' ' || line[4] == '\0')) {
			c->caps |= CAP_SIZE;
			c->size_limit = strtoull(line + 4, NULL, 10);
		} else if (strncasecmp(line, "AUTH", 4) == 0 &&
		    (line[4] == ' ' || line[4] == '=')) {
			c->caps |= CAP_AUTH;
			strlcpy(c->auth_mechs, line + 5, sizeof c->auth_mechs);
		}
	}
	free(copy);
}

static void
sc_auth_step(struct smtp_client *c, const unsigned char *in, size_t n)
{
	struct buf out;
	int has_ir;
	enum sasl_status st;
	char *b64;

	buf_init(&out, SASL_MSG_MAX);
	st = sasl_client_step(&c->sasl, in, n, &out, &has_ir);
	if (st == SASL_FAIL || st == SASL_MALFORMED) {
		buf_free(&out);
		sc_send(c, "*");
		sc_setup_failed(c, 0, "4.7.0", "%s: the AUTH %s exchange failed "
		    "(%s)", c->peer, c->sasl.mech->name, c->sasl.error[0] ?
		    c->sasl.error : st == SASL_FAIL ? "the server could not "
		    "prove it knows the password" : "malformed challenge");
		return;
	}
	b64 = xmalloc(BASE64_ENCODED_LEN(out.len) + 2);
	base64_encode(b64, (const unsigned char *)(out.data ? out.data : ""),
	    out.len);
	if (in == NULL) {
		/* RFC 4954 section 4: "=" is an empty initial response. */
		if (has_ir)
			sc_send(c, "AUTH %s %s", c->sasl.mech->name,
			    out.len ? b64 : "=");
		else
			sc_send(c, "AUTH %s", c->sasl.mech->name);
	} else
		sc_send(c, "%s", b64);
	OPENSSL_cleanse(b64, strlen(b64));
	free(b64);
	buf_free(&out);
}

/* After EHLO/HELO (and TLS): authenticate, or be ready. */
static void
sc_after_ehlo(struct smtp_client *c)
{
	const struct sasl_mech *m;

	if (c->cfg.tls_verify && !c->tls) {
		sc_setup_failed(c, 0, "4.7.5", "%s: TLS is required for this "
		    "destination but the server does not offer STARTTLS",
		    c->peer);
		return;
	}
	if (c->cfg.auth_user) {
		/* A missing STARTTLS may be an attacker's doing: the
		 * password never goes out in the clear. */
		if (!c->tls) {
			sc_setup_failed(c, 0, "4.7.0", "%s: not sending our "
			    "credentials without TLS (STARTTLS %s)", c->peer,
			    (c->caps & CAP_STARTTLS) ? "failed" : "not offered");
			return;
		}
		if (!(c->caps & CAP_AUTH) ||
		    (m = sasl_client_choose(c->auth_mechs)) == NULL) {
			sc_setup_failed(c, 0, "4.7.0", "%s offers no SASL "
			    "mechanism we share (AUTH %s)", c->peer,
			    c->auth_mechs[0] ? c->auth_mechs : "not offered");
			return;
		}
		sasl_client_init(&c->sasl, m, c->user, c->pass);
		c->sasl_active = 1;
		c->state = SC_AUTH;
		sc_auth_step(c, NULL, 0);
		return;
	}
	c->state = SC_READY;
	c->ready(c, 1, NULL, c->ready_arg);
}

/* SNI and, for "tls verify", the name the certificate must bear: a
 * host name, or for an address literal ("[192.0.2.1]", "[IPv6:...]")
 * no SNI (RFC 6066 section 3) and the address itself; and the CAs it
 * must chain to, where the rule names its own ("tls ca"). */
static void
sc_tls_names(SSL *ssl, const char *servername, int verify, X509_STORE *cas)
{
	char ip[64];

	if (servername[0] != '[')
		SSL_set_tlsext_host_name(ssl, servername);
	if (!verify)
		return;
	SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
	/* A rule's own CAs: its server is checked against them alone. */
	if (cas != NULL && SSL_set1_verify_cert_store(ssl, cas) != 1)
		fatalx("smtp client: cannot use a rule's CA store");
	if (servername[0] == '[' && smtp_addr_literal_host(servername,
	    strlen(servername), ip, sizeof ip) == 0 &&
	    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), ip) == 1)
		return;
	/* A host name; or, for what is not an address, a name with its
	 * brackets, which no certificate bears. */
	SSL_set1_host(ssl, servername);
}

static void
sc_starttls(struct smtp_client *c)
{
	SSL *ssl = SSL_new(c->cfg.tls_ctx);
	struct bufferevent *tls;

	if (ssl == NULL) {
		sc_setup_failed(c, 0, "4.7.5", "TLS: cannot create a session");
		return;
	}
	sc_tls_names(ssl, c->servername, c->cfg.tls_verify, c->cfg.tls_cas);
	/* A failure past the BIO frees ssl itself (ev/conn.c). */
	tls = bufferevent_openssl_filter_new(c->base, c->bev, ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (tls == NULL) {
		sc_setup_failed(c, 0, "4.7.5", "TLS: cannot start");
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(tls, 1);
	/* Records go into the socket's buffer only as it drains, so that
	 * the write callback above tells progress on the wire. */
	bufferevent_setwatermark(c->bev, EV_WRITE, 0, SC_OUT_HIGH / 4);
	c->bev = tls;
	c->state = SC_TLS;
	sc_timeout(c, T_GREETING);
	/* callbacks are set by the caller (sc_setcb) */
}

static void	sc_setcb(struct smtp_client *);

static void
sc_reply_setup(struct smtp_client *c, int code)
{
	int cls = code / 100;
	char why[512];

	switch (c->state) {
	case SC_GREETING:
		if (cls != 2) {
			sc_describe(c, why, sizeof why, "initial greeting");
			/* Another MX may do better, even after a 5xx. */
			sc_setup_failed(c, 0, cls == 5 ? "4.4.0" : "4.4.0", "%s",
			    why);
			return;
		}
		c->state = SC_EHLO;
		sc_timeout(c, T_MAIL);
		sc_send(c, "EHLO %s", c->helo);
		return;
	case SC_EHLO:
		if (cls == 2) {
			sc_parse_ehlo(c);
			if (!c->tls && (c->caps & CAP_STARTTLS) &&
			    c->cfg.tls_ctx && !c->cfg.no_starttls) {
				c->state = SC_STARTTLS;
				sc_send(c, "STARTTLS");
				return;
			}
			sc_after_ehlo(c);
			return;
		}
		if (cls == 5 && !c->tls && !c->cfg.auth_user &&
		    !c->cfg.tls_verify) {
			c->state = SC_HELO;
			sc_send(c, "HELO %s", c->helo);
			return;
		}
		sc_describe(c, why, sizeof why, "EHLO");
		sc_setup_failed(c, 0, "4.4.0", "%s", why);
		return;
	case SC_HELO:
		if (cls != 2) {
			sc_describe(c, why, sizeof why, "HELO");
			sc_setup_failed(c, 0, "4.4.0", "%s", why);
			return;
		}
		c->caps = 0;
		sc_after_ehlo(c);
		return;
	case SC_STARTTLS:
		if (code == 220) {
			sc_starttls(c);
			if (c->state == SC_TLS)
				sc_setcb(c);
			return;
		}
		/* Opportunistic: carry on in the clear unless TLS is a must. */
		sc_after_ehlo(c);
		return;
	case SC_AUTH:
		if (code == 334) {
			const char *b64 = c->reply.data ? c->reply.data + 0 : "";
			unsigned char *in = xmalloc(BASE64_DECODED_MAX(strlen(b64)) + 1);
			long n = base64_decode(in, b64, strlen(b64));

			if (n < 0) {
				free(in);
				sc_send(c, "*");
				sc_setup_failed(c, 0, "4.7.0", "%s sent a malformed "
				    "AUTH challenge", c->peer);
				return;
			}
			sc_auth_step(c, in, (size_t)n);
			free(in);
			return;
		}
		if (cls == 2) {
			/* SCRAM: the server must have proved itself. */
			if (c->sasl.mech->id == SASL_SCRAM_SHA_256 &&
			    c->sasl.step < 3) {
				sc_setup_failed(c, 0, "4.7.0", "%s accepted SCRAM "
				    "without proving it knows the password",
				    c->peer);
				return;
			}
			c->state = SC_READY;
			c->ready(c, 1, NULL, c->ready_arg);
			return;
		}
		sc_describe(c, why, sizeof why, "AUTH");
		if (cls == 5) {
			/* 535 and its kin: our credentials are wrong, which
			 * is the administrator's to mend (a rotated password),
			 * not the senders' fault.  Bouncing would lose every
			 * message queued for the smarthost; deferred, they go
			 * out once the credentials are fixed, or bounce at
			 * queue-lifetime.  The server's enhanced code, made
			 * temporary, or 4.7.8. */
			char dsn[16];

			smtp_client_dsn(c->reply_code, c->reply.data ?
			    c->reply.data : "", dsn, sizeof dsn);
			if (dsn[0] == '5' && strcmp(dsn + 1, ".0.0") != 0)
				dsn[0] = '4';
			else
				strlcpy(dsn, "4.7.8", sizeof dsn);
			sc_setup_failed(c, 0, dsn, "the smarthost refused our "
			    "credentials, mail waits until they are fixed: %s",
			    why);
			return;
		}
		sc_setup_failed(c, 0, "4.7.0", "%s", why);
		return;
	default:
		break;
	}
}

/* ---------------------------------------------------------------- */
/* transactions                                                       */

/* Fill the output with the next part of the message, dot-stuffed
 * (RFC 5321 section 4.5.2); the final "." when it is all there. */
static void
sc_body_fill(struct smtp_client *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	struct remote_msg *m = c->msg;
	off_t end = m->offset + m->size;

	while (evbuffer_get_length(out) < SC_OUT_HIGH && c->body_off < end) {
		size_t want = (size_t)(end - c->body_off) < SC_CHUNK ?
		    (size_t)(end - c->body_off) : SC_CHUNK;
		ssize_t n = pread(m->fd, c->chunk, want, c->body_off);
		size_t run = 0;

		if (n <= 0) {
			char why[256];

			snprintf(why, sizeof why, "cannot read the queue file: %s",
			    n == 0 ? "short file" : strerror(errno));
			/* Abort the DATA: closing the connection is the only
			 * way that cannot deliver half a message. */
			sc_fail_open(c, REMOTE_TEMPFAIL, "4.3.0", why);
			sc_tx_end(c, 0);
			return;
		}
		for (size_t i = 0; i < (size_t)n; i++) {
			if (c->body_bol && c->chunk[i] == '.') {
				evbuffer_add(out, c->chunk + run, i - run);
				evbuffer_add(out, ".", 1);
				run = i;
			}
			c->body_bol = c->chunk[i] == '\n';
		}
		evbuffer_add(out, c->chunk + run, (size_t)n - run);
		c->body_lastlf = c->chunk[n - 1] == '\n';
		c->body_off += n;
	}
	if (c->body_off >= end) {
		if (!c->body_lastlf && m->size > 0)
			evbuffer_add(out, "\r\n", 2);
		evbuffer_add(out, ".\r\n", 3);
		c->state = SC_DOT;
		/* sc_write_cb once it has all gone. */
		bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
	}
}

static int
sc_has_8bit(struct smtp_client *c)
{
	struct remote_msg *m = c->msg;
	char buf[16384];
	off_t off = m->offset, end = m->offset + m->size;

	while (off < end) {
		size_t want = (size_t)(end - off) < sizeof buf ?
		    (size_t)(end - off) : sizeof buf;
		ssize_t n = pread(m->fd, buf, want, off);

		if (n <= 0)
			return 0;
		for (ssize_t i = 0; i < n; i++)
			if ((unsigned char)buf[i] & 0x80)
				return 1;
		off += n;
	}
	return 0;
}

/* The k-th RCPT of the transaction. */
static void
sc_send_rcpt(struct smtp_client *c, size_t k)
{
	sc_send(c, "RCPT TO:<%s>", c->msg->rcpts[c->round[k]].addr);
}

/* MAIL and the RCPTs of the round, pipelined when the server can. */
static void
sc_tx_start(struct smtp_client *c)
{
	struct remote_msg *m = c->msg;
	char params[64] = "";

	if (c->caps & CAP_SIZE)
		snprintf(params, sizeof params, " SIZE=%lld", (long long)m->size);
	if (m->body_8bit && (c->caps & CAP_8BITMIME))
		strlcat(params, " BODY=8BITMIME", sizeof params);
	c->state = SC_MAIL;
	c->mail_ok = 0;
	c->naccepted = 0;
	c->nagain = 0;
	c->replies_got = 0;
	c->replies_wanted = 1 + c->nround;
	/* A tick of the last transaction's drain must not time this one's
	 * (sc_drain_tick). */
	if (c->drain_ev != NULL)
		evtimer_del(c->drain_ev);
	sc_timeout(c, T_MAIL);
	sc_send(c, "MAIL FROM:<%s>%s", m->from, params);
	if (c->caps & CAP_PIPELINING) {
		for (size_t k = 0; k < c->nround; k++)
			sc_send_rcpt(c, k);
		c->next_rcpt = c->nround;
	} else
		c->next_rcpt = 0;
}

/*
 * The message went through, and the server refused some recipients as
 * too many for one transaction: RFC 5321 section 4.5.3.1.10 has the
 * client send them in another, so they go at once rather than after
 * the back-off.  Only after a transaction that delivered to at least
 * one recipient: each one then leaves fewer behind, so there are never
 * more transactions than recipients, and a server that refuses every
 * one left ("not now", whatever the code says) has them deferred.
 */
static void
sc_tx_again(struct smtp_client *c)
{
	struct remote_msg *m = c->msg;
	size_t n = 0;

	for (size_t i = 0; i < m->nrcpts; i++)
		if (c->again[i]) {
			c->again[i] = 0;
			c->round[n++] = i;
			m->rcpts[i].dsn[0] = '\0';	/* open again */
			m->rcpts[i].why[0] = '\0';
		}
	log_info("%s remote relay=%s: %zu recipient%s refused as too many, "
	    "sent again in a new transaction", m->qid, c->peer, n,
	    n == 1 ? "" : "s");
	c->nround = n;
	free(c->chunk);
	c->chunk = NULL;
	sc_tx_start(c);
}

void
smtp_client_send(struct smtp_client *c, struct remote_msg *m,
    smtp_client_tx_fn fn, void *arg)
{
	c->msg = m;
	c->txdone = fn;
	c->tx_arg = arg;
	c->accepted = xcalloc(m->nrcpts ? m->nrcpts : 1, 1);
	c->again = xcalloc(m->nrcpts ? m->nrcpts : 1, 1);
	c->round = xcalloc(m->nrcpts ? m->nrcpts : 1, sizeof *c->round);
	for (size_t i = 0; i < m->nrcpts; i++) {
		m->rcpts[i].dsn[0] = '\0';	/* no outcome yet */
		m->rcpts[i].why[0] = '\0';
		c->round[i] = i;
	}
	c->nround = m->nrcpts;
	if ((c->caps & CAP_SIZE) && c->size_limit &&
	    (unsigned long long)m->size > c->size_limit) {
		char why[512];
		snprintf(why, sizeof why, "message size %lld exceeds the limit "
		    "of %llu announced by %s", (long long)m->size,
		    c->size_limit, c->peer);
		sc_fail_open(c, REMOTE_PERMFAIL, "5.3.4", why);
		sc_tx_end(c, 1);
		return;
	}
	if (m->body_8bit && !(c->caps & CAP_8BITMIME) && sc_has_8bit(c)) {
		/* RFC 6152 section 3: 8-bit data needs 8BITMIME at the next
		 * hop; postern does not convert. */
		char why[512];
		snprintf(why, sizeof why, "%s does not accept 8-bit data "
		    "(no 8BITMIME) and the message has some", c->peer);
		sc_fail_open(c, REMOTE_PERMFAIL, "5.6.3", why);
		sc_tx_end(c, 1);
		return;
	}
	sc_tx_start(c);
}

/*
 * A refused RCPT.  452 is the server's limit of recipients per
 * transaction, and 552 is what servers following RFC 821 said for it,
 * which RFC 5321 section 4.5.3.1.10 has clients take as 452: a
 * temporary failure (its enhanced code made temporary too, for the
 * delay notice and the queue listing), and a recipient to try again in
 * a new transaction if this one goes through (sc_tx_again).  The
 * server's own words stay in why.
 */
static void
sc_rcpt_refused(struct smtp_client *c, size_t i, int code, char *dsn)
{
	int too_many = code == 452 || code == 552;
	char why[512];

	sc_describe(c, why, sizeof why, "RCPT TO");
	if (too_many) {
		dsn[0] = '4';
		c->again[i] = 1;
		c->nagain++;
	}
	sc_rcpt_set(&c->msg->rcpts[i], code / 100 == 5 && !too_many ?
	    REMOTE_PERMFAIL : REMOTE_TEMPFAIL, dsn, why, c->peer);
}

static void
sc_reply_tx(struct smtp_client *c, int code)
{
	struct remote_msg *m = c->msg;
	int cls = code / 100;
	char dsn[16], why[512];

	smtp_client_dsn(code, c->reply.data ? c->reply.data : "", dsn,
	    sizeof dsn);
	switch (c->state) {
	case SC_MAIL:
		if (c->replies_got++ == 0) {	/* the MAIL reply */
			c->mail_ok = cls == 2;
			if (!c->mail_ok) {
				sc_describe(c, why, sizeof why, "MAIL FROM");
				sc_fail_open(c, cls == 5 ? REMOTE_PERMFAIL :
				    REMOTE_TEMPFAIL, dsn, why);
				/* Without PIPELINING no RCPT went out. */
				if (!(c->caps & CAP_PIPELINING))
					c->replies_wanted = 1;
			} else if (!(c->caps & CAP_PIPELINING))
				sc_send_rcpt(c, c->next_rcpt++);
		} else {
			size_t i = c->round[c->replies_got - 2];

			if (c->mail_ok) {
				if (cls == 2) {
					c->naccepted++;
					c->accepted[i] = 1;
				} else
					sc_rcpt_refused(c, i, code, dsn);
			}
			if (!(c->caps & CAP_PIPELINING) &&
			    c->next_rcpt < c->nround)
				sc_send_rcpt(c, c->next_rcpt++);
		}
		if (c->replies_got < c->replies_wanted)
			return;
		if (c->mail_ok && c->naccepted > 0) {
			c->state = SC_DATA;
			sc_timeout(c, T_DATA);
			sc_send(c, "DATA");
		} else {
			c->state = SC_RSET;
			sc_send(c, "RSET");
		}
		return;
	case SC_DATA:
		if (code != 354) {
			sc_describe(c, why, sizeof why, "DATA");
			sc_fail_open(c, cls == 5 ? REMOTE_PERMFAIL : REMOTE_TEMPFAIL,
			    dsn, why);
			c->state = SC_RSET;
			sc_send(c, "RSET");
			return;
		}
		c->state = SC_BODY;
		c->body_off = m->offset;
		c->body_bol = 1;
		c->body_lastlf = 1;
		c->chunk = xmalloc(SC_CHUNK);
		bufferevent_setwatermark(c->bev, EV_WRITE, SC_OUT_HIGH / 4, 0);
		sc_timeout_sending(c);
		sc_body_fill(c);
		return;
	case SC_DOT:
		if (cls == 2) {
			/* RFC 3464 wants the reply in the log and DSNs. */
			snprintf(why, sizeof why, "%.200s said: %d %.300s", c->peer,
			    code, c->reply.data ? c->reply.data : "");
			for (size_t i = 0; i < m->nrcpts; i++)
				if (c->accepted[i]) {
					sc_rcpt_set(&m->rcpts[i], REMOTE_SENT, dsn,
					    why, c->peer);
					c->accepted[i] = 0;
				}
			if (c->nagain > 0) {
				sc_tx_again(c);
				return;
			}
		} else {
			sc_describe(c, why, sizeof why, "end of DATA");
			sc_fail_open(c, cls == 5 ? REMOTE_PERMFAIL : REMOTE_TEMPFAIL,
			    dsn, why);
		}
		sc_tx_end(c, 1);
		return;
	case SC_RSET:
		/* Whatever RSET says, the outcomes are settled. */
		sc_fail_open(c, REMOTE_TEMPFAIL, "4.0.0", "no recipient accepted");
		sc_tx_end(c, cls == 2);
		return;
	default:
		return;
	}
}

/* ---------------------------------------------------------------- */
/* I/O                                                                */

static void
sc_reply(struct smtp_client *c, int code)
{
	if (code == 421 && c->state != SC_QUIT) {
		/* The server is closing: no more commands on this link. */
		char why[512];

		sc_describe(c, why, sizeof why, c->lastcmd);
		if (c->msg) {
			sc_fail_open(c, REMOTE_TEMPFAIL, "4.4.2", why);
			sc_tx_end(c, 0);
		} else if (c->state < SC_READY)
			sc_setup_failed(c, 0, "4.4.0", "%s", why);
		else
			smtp_client_free(c);
		return;
	}
	switch (c->state) {
	case SC_GREETING: case SC_EHLO: case SC_HELO: case SC_STARTTLS:
	case SC_AUTH:
		sc_reply_setup(c, code);
		return;
	case SC_MAIL: case SC_DATA: case SC_DOT: case SC_RSET:
		sc_reply_tx(c, code);
		return;
	case SC_QUIT:
		smtp_client_free(c);
		return;
	case SC_READY:
	case SC_BODY:
	case SC_CONNECTING:
	case SC_TLS:
		/* A reply nobody asked for: the peer is confused. */
		sc_broken(c, "it sent an unexpected reply");
		return;
	}
}

static void	sc_destroy(struct smtp_client *);

/* Callbacks may free the client (smtp_client_free only marks it while
 * we are inside one of ours); sc_leave destroys it on the way out. */
static void
sc_enter(struct smtp_client *c)
{
	c->busy++;
}

static void
sc_leave(struct smtp_client *c)
{
	if (--c->busy == 0 && c->dead)
		sc_destroy(c);
}

static void
sc_read_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_client *c = arg;
	char *line;
	size_t len;

	sc_enter(c);
	/* Several replies may be waiting (PIPELINING): take them all, as
	 * long as the client lives and STARTTLS has not swapped the
	 * connection under us. */
	while (!c->dead && c->bev == bev && (line = evbuffer_readln(
	    bufferevent_get_input(bev), &len, EVBUFFER_EOL_CRLF)) != NULL) {
		int final;

		if (c->reply_done) {
			buf_reset(&c->reply);
			c->reply_done = 0;
		}
		if (len < 3 || len > SC_LINE_MAX || !isdigit((unsigned char)line[0]) ||
		    !isdigit((unsigned char)line[1]) ||
		    !isdigit((unsigned char)line[2]) ||
		    (len > 3 && line[3] != ' ' && line[3] != '-') ||
		    (c->reply.len > 0 && atoi(line) != c->reply_code)) {
			free(line);
			sc_broken(c, "it sent a malformed reply");
			break;
		}
		final = len == 3 || line[3] == ' ';
		if (c->reply.len == 0)
			c->reply_code = atoi(line);
		else
			buf_putc(&c->reply, '\n');
		/* Over-long replies are cut, not fatal. */
		(void)buf_puts(&c->reply, len > 4 ? line + 4 : "");
		free(line);
		if (final) {
			c->reply_done = 1;
			if (log_verbose() > 1) {
				char esc[512];
				str_escape(esc, sizeof esc, c->reply.data,
				    c->reply.len);
				log_debug("smtp client %s: state %d reply %d %s",
				    c->peer, c->state, c->reply_code, esc);
			}
			sc_reply(c, c->reply_code);
		}
	}
	if (!c->dead && c->bev == bev &&
	    evbuffer_get_length(bufferevent_get_input(bev)) > SC_LINE_MAX)
		sc_broken(c, "it sent an over-long reply line");
	sc_leave(c);
}

static void
sc_write_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_client *c = arg;

	sc_enter(c);
	if (c->state == SC_BODY) {
		sc_timeout_sending(c);		/* progress: the next block */
		sc_body_fill(c);
	} else if (c->state == SC_DOT &&
	    evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		sc_drain_start(c);
	sc_leave(c);
}

static void	sc_event(struct smtp_client *, struct bufferevent *, short);

/* errno as libevent left it after a failed handshake: trusted only
 * when it is one a connection gets, since other calls may have run
 * since the failure. */
static const char *
sc_connect_error(int err)
{
	switch (err) {
	case ECONNREFUSED:
	case ECONNRESET:
	case ECONNABORTED:
	case ETIMEDOUT:
	case EHOSTUNREACH:
	case ENETUNREACH:
	case EADDRNOTAVAIL:
	case EPIPE:
		return strerror(err);
	default:
		return "the connection closed in the TLS handshake";
	}
}

static void
sc_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_client *c = arg;

	sc_enter(c);
	sc_event(c, bev, what);
	sc_leave(c);
}

static void
sc_event(struct smtp_client *c, struct bufferevent *bev, short what)
{
	if (what & BEV_EVENT_CONNECTED) {
		if (c->state == SC_CONNECTING) {
			c->state = SC_GREETING;
			c->tls = c->cfg.tls_implicit;
			sc_timeout(c, T_GREETING);
			return;
		}
		if (c->state == SC_TLS) {
			c->tls = 1;
			c->state = SC_EHLO;
			sc_timeout(c, T_MAIL);
			sc_send(c, "EHLO %s", c->helo);
		}
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		int sending = (what & BEV_EVENT_WRITING) &&
		    (c->state == SC_BODY || c->state == SC_DOT);

		if (sending)
			sc_reset(c);	/* see sc_timeout_sending */
		sc_broken(c, c->state == SC_CONNECTING ? "connecting (timeout)" :
		    sending ? "sending the message (timeout)" :
		    "waiting for a reply (timeout)");
		return;
	}
	if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) {
		unsigned long e = bufferevent_get_openssl_error(bev);
		char why[300];

		if (c->state == SC_CONNECTING && c->connect_errno) {
			sc_setup_failed(c, 0, "4.4.1", "connect to %s: %s", c->peer,
			    strerror(c->connect_errno));
			return;
		}
		if (c->state == SC_CONNECTING && !(what & BEV_EVENT_EOF) &&
		    EVUTIL_SOCKET_ERROR()) {
			sc_setup_failed(c, 0, "4.4.1", "connect to %s: %s", c->peer,
			    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
			return;
		}
		if (c->state == SC_CONNECTING && e != 0 && ERR_GET_LIB(e) == 0) {
			/* Not OpenSSL's error: libevent's mark of a system
			 * call that failed under the handshake (with TLS
			 * from the first byte, a refused connection). */
			sc_setup_failed(c, 0, "4.4.1", "connect to %s: %s", c->peer,
			    sc_connect_error(EVUTIL_SOCKET_ERROR()));
			return;
		}
		if (e) {
			char ssl[200];
			ERR_error_string_n(e, ssl, sizeof ssl);
			snprintf(why, sizeof why, "in the TLS handshake (%s)", ssl);
			if (c->state < SC_READY) {
				sc_setup_failed(c, 0, "4.7.5", "%s: TLS failed: %s",
				    c->peer, ssl);
				return;
			}
		} else
			snprintf(why, sizeof why, "%s", c->state == SC_BODY ?
			    "sending the message" : "waiting for a reply");
		sc_broken(c, why);
	}
}

static void
sc_setcb(struct smtp_client *c)
{
	bufferevent_setcb(c->bev, sc_read_cb, sc_write_cb, sc_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_WRITE, SC_OUT_HIGH / 4, 0);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

struct smtp_client *
smtp_client_connect(struct event_base *base, const struct sockaddr *sa,
    socklen_t salen, const struct smtp_client_cfg *cfg,
    smtp_client_ready_fn ready, void *arg)
{
	struct smtp_client *c = xcalloc(1, sizeof *c);
	struct timeval tv = { cfg->connect_timeout ? cfg->connect_timeout : 30,
	    0 };
	char host[64];
	unsigned port;

	c->base = base;
	c->cfg = *cfg;
	strlcpy(c->helo, cfg->helo, sizeof c->helo);
	strlcpy(c->servername, cfg->servername, sizeof c->servername);
	if (cfg->auth_user) {
		strlcpy(c->user, cfg->auth_user, sizeof c->user);
		strlcpy(c->pass, cfg->auth_pass, sizeof c->pass);
		c->cfg.auth_user = c->user;
		c->cfg.auth_pass = c->pass;
	}
	c->cfg.helo = c->helo;
	c->cfg.servername = c->servername;
	c->ready = ready;
	c->ready_arg = arg;
	buf_init(&c->reply, SC_REPLY_MAX);
	sockaddr_format(sa, host, sizeof host, &port);
	if (c->servername[0] == '[')	/* an address literal: no name */
		snprintf(c->peer, sizeof c->peer, "[%s]:%u", host, port);
	else
		snprintf(c->peer, sizeof c->peer, "%.250s[%s]:%u",
		    c->servername, host, port);
	c->state = SC_CONNECTING;
	if (cfg->tls_implicit) {
		SSL *ssl = SSL_new(cfg->tls_ctx);

		if (ssl == NULL)
			fatalx("smtp client: cannot create a TLS session");
		sc_tls_names(ssl, c->servername, cfg->tls_verify, cfg->tls_cas);
		c->bev = bufferevent_openssl_socket_new(base, -1, ssl,
		    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
		if (c->bev != NULL)
			bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	} else
		c->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	/* Without a socket yet, only an allocation can fail here. */
	if (c->bev == NULL)
		fatalx("smtp client: out of memory");
	sc_setcb(c);
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	errno = 0;
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)sa,
	    (int)salen) == -1) {
		/* libevent reports no event for a connect(2) that fails
		 * at once (ENETUNREACH, EADDRNOTAVAIL...): without one we
		 * would wait out the connect timeout.  Deferred, so that
		 * the failure is reported from the loop, never from inside
		 * the caller, and is dropped if the client is freed. */
		c->connect_errno = errno ? errno : ECONNABORTED;
		log_debug("smtp client: connect %s failed at once: %s",
		    c->peer, strerror(c->connect_errno));
		bufferevent_trigger_event(c->bev, BEV_EVENT_ERROR,
		    BEV_TRIG_DEFER_CALLBACKS);
	}
	return c;
}

/* Clients saying QUIT on their own: nobody else holds them, and a
 * process that ends meanwhile frees them (smtp_client_free_quitting). */
static LIST_HEAD(, smtp_client) quitting = LIST_HEAD_INITIALIZER(quitting);

void
smtp_client_quit(struct smtp_client *c)
{
	struct timeval tv = { 5, 0 };

	LIST_INSERT_HEAD(&quitting, c, quitting_entry);
	c->quitting = 1;
	c->state = SC_QUIT;
	sc_send(c, "QUIT");
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	/* sc_reply or sc_broken frees it. */
}

void
smtp_client_free(struct smtp_client *c)
{
	if (c->busy) {
		c->dead = 1;
		if (c->bev)
			bufferevent_disable(c->bev, EV_READ | EV_WRITE);
		return;
	}
	sc_destroy(c);
}

void
smtp_client_free_quitting(void)
{
	struct smtp_client *c;

	while ((c = LIST_FIRST(&quitting)) != NULL) {
		LIST_REMOVE(c, quitting_entry);
		c->quitting = 0;
		smtp_client_free(c);
	}
}

static void
sc_destroy(struct smtp_client *c)
{
	if (c->quitting) {
		LIST_REMOVE(c, quitting_entry);
		c->quitting = 0;
	}
	if (c->drain_ev)
		event_free(c->drain_ev);
	if (c->sasl_active)
		sasl_client_free(&c->sasl);
	OPENSSL_cleanse(c->pass, sizeof c->pass);
	if (c->bev)
		bufferevent_free(c->bev);
	buf_free(&c->reply);
	free(c->chunk);
	free(c->accepted);
	free(c->again);
	free(c->round);
	free(c);
}
