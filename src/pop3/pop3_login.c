/*
 * pop3_login.c - the AUTHORIZATION state (RFC 1939 section 4): USER and
 * PASS, APOP (section 7), AUTH (RFC 5034), CAPA (RFC 2449), STLS
 * (RFC 2595), and what a successful login does: lock and read the
 * Maildir and record a POP-before-SMTP grant (on a thread: pop3_box.c).
 *
 * Every credential goes to the auth process, which alone reads the
 * users file's hashes and secrets and applies the lock, expiry and
 * brute-force rules; USER/PASS is sent as a SASL PLAIN exchange.
 * Passwords travel only inside TLS, or from loopback when the listener
 * says `cleartext-auth loopback`, the same rule as SMTP AUTH.
 */
#include "pop3/pop3_int.h"
#include "ev/conn.h"
#include "auth/apop.h"
#include "auth/authd.h"
#include "lib/base64.h"
#include "lib/log.h"
#include "lib/netaddr.h"
#include "lib/strutil.h"
#include "lib/xalloc.h"
#include "policy/popbsmtp.h"
#include "state/state.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>

int
pop3_login_allowed(const struct pop3_session *s)
{
	return (s->flags & POP3_F_TLS) ||
	    (s->l->conf->cleartext_auth == CLEARTEXT_LOOPBACK &&
	    sockaddr_is_loopback((const struct sockaddr *)&s->ss));
}

static int
pop3_stls_offered(const struct pop3_session *s)
{
	return s->w->tls_ctx != NULL && s->l->conf->tls == TLS_STARTTLS &&
	    !(s->flags & POP3_F_TLS);
}

static uint32_t
pop3_auth_flags(const struct pop3_session *s)
{
	uint32_t flags = MSG_AUTH_F_POP3;

	if (s->flags & POP3_F_TLS)
		flags |= MSG_AUTH_F_TLS;
	if (s->l->conf->cleartext_auth == CLEARTEXT_LOOPBACK &&
	    sockaddr_is_loopback((const struct sockaddr *)&s->ss))
		flags |= MSG_AUTH_F_LOOPBACK;
	return flags;
}

/* The credentials were right: a thread takes the mailbox (pop3_box.c),
 * and pop3_login_opened answers. */
static void
pop3_login_done(struct pop3_session *s, const char *user)
{
	(void)strlcpy(s->user, user, sizeof s->user);	/* authd's bound */
	pop3_box_start(s, POP3_BOX_OPEN);
}

/* The login is complete: the mailbox is ours, the grant made. */
static void
pop3_login_welcome(struct pop3_session *s)
{
	uint64_t octets;
	size_t n;
	char counts[64];

	pop3_enter_state(s, POP3_ST_TRANSACTION);
	pop3_count(s, &n, &octets);
	snprintf(counts, sizeof counts, "%zu messages (%" PRIu64 " octets)",
	    n, octets);
	pop3_reply(s, P_LOGIN_OK, counts);
}

/* The shared store answered for the login's grant (its line is logged
 * there); a failed grant does not fail the login. */
static void
pop3_login_granted(void *arg, int answer)
{
	struct pop3_session *s = arg;

	(void)answer;
	s->grant_ask = NULL;
	if (s->state != POP3_ST_BOX_WAIT)
		return;		/* closing already */
	pop3_login_welcome(s);
	pop3_box_resume(s);
}

/* The mailbox is locked and read (the login's line is logged), or why
 * it is not. */
void
pop3_login_opened(struct pop3_session *s, const struct pop3_box_job *job)
{
	const struct conf *c = s->w->conf;

	switch (job->opened) {
	case MAILDIR_OPEN_OK:
		break;
	case MAILDIR_OPEN_IN_USE:
		log_info("%016" PRIx64 " pop3 login user=%s mech=%s "
		    "result=in-use", s->id, s->user, s->login_mech);
		pop3_enter_state(s, POP3_ST_AUTHORIZATION);
		pop3_reply(s, P_IN_USE, NULL);
		s->user[0] = '\0';
		return;
	case MAILDIR_OPEN_FAIL:
		errno = job->err;
		log_warn("%016" PRIx64 " pop3 login user=%s: cannot open the "
		    "mailbox in %s", s->id, s->user, c->mailboxes);
		pop3_enter_state(s, POP3_ST_AUTHORIZATION);
		pop3_reply(s, P_MAILBOX_TEMPFAIL, NULL);
		s->user[0] = '\0';
		return;
	}
	/* DESIGN.md: a POP3 login opens relay on port 25 for a while
	 * (made on the thread where it is a file).  The grant is in place
	 * before the +OK: the client may send through port 25 right after
	 * it. */
	if (!job->granted && state_grant_add(c,
	    (const struct sockaddr *)&s->ss, s->user, s->id, time(NULL),
	    pop3_login_granted, s, &s->grant_ask) == STATE_PENDING)
		return;		/* still BOX_WAIT, for the shared store */
	pop3_login_welcome(s);
}

/* The auth process answered: a SASL challenge or the outcome. */
static void
pop3_auth_cb(void *arg, int is_result, enum msg_auth_result result,
    const uint8_t *data, size_t len, const char *user)
{
	struct pop3_session *s = arg;

	if (s->bev == NULL || s->state != POP3_ST_AUTH_WAIT)
		return;
	if (!is_result) {
		/* RFC 5034 section 4: "+" SP base64, even when empty. */
		auth_challenge_write(bufferevent_get_output(s->bev), "+", data,
		    len);
		pop3_enter_state(s, POP3_ST_AUTH_INPUT);
		pop3_resume(s);
		return;
	}
	s->auth_reqid = 0;
	pop3_enter_state(s, POP3_ST_AUTHORIZATION);
	if (result != AUTH_RESULT_OK)
		log_info("%016" PRIx64 " pop3 auth user=%s mech=%s result=%s",
		    s->id, user && *user ? user : "-", s->login_mech,
		    auth_result_name(result));
	switch (result) {
	case AUTH_RESULT_OK:
		pop3_login_done(s, user ? user : "");
		return;		/* reading resumes after the mailbox */
	case AUTH_RESULT_FAIL:
		pop3_reply(s, P_AUTH_FAILED, NULL);
		break;
	case AUTH_RESULT_MALFORMED:
		pop3_reply(s, P_AUTH_MALFORMED, NULL);
		break;
	case AUTH_RESULT_TEMPFAIL:
		pop3_reply(s, P_AUTH_TEMPFAIL, NULL);
		break;
	case AUTH_RESULT_BLOCKED:
		pop3_reply(s, P_AUTH_BLOCKED, NULL);
		pop3_close_after_reply(s, "auth-blocked");
		return;
	}
	pop3_resume(s);
}

/* Hand a first step to the auth process; commands wait meanwhile, but
 * a client who leaves calls the check off (pop3_free cancels it). */
static void
pop3_auth_begin(struct pop3_session *s, const char *mech,
    const uint8_t *ir, size_t irlen, int has_ir)
{
	pop3_enter_state(s, POP3_ST_AUTH_WAIT);
	conn_watch_start(s->bev, POP3_LINE_MAX);
	if (s->local[0] == '\0')
		conn_local_address(s->bev, s->local, sizeof s->local);
	s->auth_reqid = auth_client_start(mech, s->id, s->addr, s->local,
	    pop3_auth_flags(s), ir, irlen, has_ir, pop3_auth_cb, s);
	if (s->auth_reqid == 0) {
		pop3_enter_state(s, POP3_ST_AUTHORIZATION);
		pop3_reply(s, P_AUTH_TEMPFAIL, NULL);
		pop3_resume(s);
	}
}

static int
pop3_plain_enabled(const struct pop3_session *s)
{
	return (s->w->conf->auth_mechanisms & (1u << SASL_PLAIN)) != 0;
}

/* RFC 1939 section 7: USER name */
void
pop3_cmd_user(struct pop3_session *s, char *arg)
{
	size_t n = strlen(arg);

	if (!pop3_plain_enabled(s)) {
		pop3_reply(s, P_UNKNOWN, NULL);
		return;
	}
	if (!pop3_login_allowed(s)) {
		pop3_reply(s, P_AUTH_NEEDS_TLS, NULL);
		return;
	}
	while (n > 0 && (arg[n - 1] == ' ' || arg[n - 1] == '\t'))
		arg[--n] = '\0';
	if (n == 0 || n > SASL_USER_MAX) {
		pop3_reply(s, P_SYNTAX, NULL);
		return;
	}
	memcpy(s->user, arg, n + 1);
	s->flags |= POP3_F_USER;
	pop3_reply(s, P_USER_OK, NULL);
}

/* RFC 1939 section 7: PASS string.  The whole rest of the line is the
 * password, blanks included (the RFC allows a server to read it so). */
void
pop3_cmd_pass(struct pop3_session *s, char *arg)
{
	size_t ulen = strlen(s->user), plen = strlen(arg);
	uint8_t *ir;

	if (!(s->flags & POP3_F_USER)) {
		pop3_reply(s, P_NEED_USER, NULL);
		return;
	}
	s->flags &= ~POP3_F_USER;
	if (plen == 0 || 2 + ulen + plen > SASL_MSG_MAX) {
		s->user[0] = '\0';
		pop3_reply(s, P_SYNTAX, NULL);
		return;
	}
	/* RFC 4616: [authzid] NUL authcid NUL passwd */
	ir = xmalloc(2 + ulen + plen);
	ir[0] = '\0';
	memcpy(ir + 1, s->user, ulen);
	ir[1 + ulen] = '\0';
	memcpy(ir + 2 + ulen, arg, plen);
	s->login_mech = "USER";
	pop3_auth_begin(s, "PLAIN", ir, 2 + ulen + plen, 1);
	explicit_bzero(ir, 2 + ulen + plen);
	free(ir);
}

/* RFC 1939 section 7: APOP name digest.  The password never crosses
 * the wire, so no TLS is needed; the digest is checked by authd. */
void
pop3_cmd_apop(struct pop3_session *s, char *arg)
{
	char *av[POP3_ARGS_MAX];
	int ac;

	if (!s->w->conf->apop || s->apop_stamp[0] == '\0') {
		pop3_reply(s, P_APOP_OFF, NULL);
		return;
	}
	ac = pop3_cmd_split(arg, av, POP3_ARGS_MAX);
	if (ac != 2 || strlen(av[0]) > SASL_USER_MAX ||
	    strlen(av[1]) != APOP_DIGEST_LEN ||
	    strspn(av[1], "0123456789abcdefABCDEF") != APOP_DIGEST_LEN) {
		pop3_reply(s, P_SYNTAX, NULL);
		return;
	}
	s->login_mech = "APOP";
	pop3_enter_state(s, POP3_ST_AUTH_WAIT);
	conn_watch_start(s->bev, POP3_LINE_MAX);
	s->auth_reqid = auth_client_apop(av[0], s->addr, pop3_auth_flags(s),
	    s->apop_stamp, av[1], pop3_auth_cb, s);
	if (s->auth_reqid == 0) {
		pop3_enter_state(s, POP3_ST_AUTHORIZATION);
		pop3_reply(s, P_AUTH_TEMPFAIL, NULL);
		pop3_resume(s);
	}
}

static void
pop3_print_mechs(struct pop3_session *s, const char *sep)
{
	const struct conf *c = s->w->conf;

	for (unsigned i = 0; i < SASL__COUNT; i++)
		if (c->auth_mechanisms & (1u << i))
			pop3_printf(s, "%s%s", sep, sasl_mech_by_id(i)->name);
}

/* RFC 5034: AUTH mechanism [initial-response] */
void
pop3_cmd_auth(struct pop3_session *s, char *arg)
{
	const struct sasl_mech *m;
	char *av[POP3_ARGS_MAX];
	unsigned char *data;
	long n = 0;
	int ac = pop3_cmd_split(arg, av, POP3_ARGS_MAX);

	if (!pop3_login_allowed(s)) {
		pop3_reply(s, P_AUTH_NEEDS_TLS, NULL);
		return;
	}
	if (ac == 0) {
		/* Not in RFC 5034, but clients ask: the mechanism list. */
		pop3_reply(s, P_MECHS_FOLLOW, NULL);
		for (unsigned i = 0; i < SASL__COUNT; i++)
			if (s->w->conf->auth_mechanisms & (1u << i))
				pop3_printf(s, "%s\r\n", sasl_mech_by_id(i)->name);
		pop3_printf(s, ".\r\n");
		return;
	}
	if (ac < 0 || ac > 2) {
		pop3_reply(s, P_SYNTAX, NULL);
		return;
	}
	m = sasl_mech_lookup(av[0]);
	if (m == NULL || !(s->w->conf->auth_mechanisms & (1u << m->id))) {
		pop3_reply(s, P_AUTH_MECH_UNKNOWN, NULL);
		return;
	}
	s->login_mech = m->name;
	if (ac == 1) {
		pop3_auth_begin(s, m->name, NULL, 0, 0);
		return;
	}
	/* "=" is an empty initial response (RFC 5034 section 4). */
	data = xmalloc(BASE64_DECODED_MAX(strlen(av[1])) + 1);
	if (strcmp(av[1], "=") != 0 &&
	    (n = base64_decode(data, av[1], strlen(av[1]))) < 0) {
		free(data);
		pop3_reply(s, P_AUTH_BAD_BASE64, NULL);
		return;
	}
	pop3_auth_begin(s, m->name, data, (size_t)n, 1);
	explicit_bzero(data, (size_t)n);
	free(data);
}

/* A line answering a "+ " challenge: base64, or "*" to cancel. */
void
pop3_auth_input(struct pop3_session *s, const char *line, size_t len)
{
	unsigned char *data;
	long n;

	if (len == 1 && line[0] == '*') {
		auth_client_cancel(s->auth_reqid);
		s->auth_reqid = 0;
		pop3_enter_state(s, POP3_ST_AUTHORIZATION);
		log_info("%016" PRIx64 " pop3 auth mech=%s result=cancelled",
		    s->id, s->login_mech);
		pop3_reply(s, P_AUTH_CANCELLED, NULL);
		return;
	}
	data = xmalloc(BASE64_DECODED_MAX(len) + 1);
	if ((n = base64_decode(data, line, len)) < 0) {
		free(data);
		auth_client_cancel(s->auth_reqid);
		s->auth_reqid = 0;
		pop3_enter_state(s, POP3_ST_AUTHORIZATION);
		pop3_reply(s, P_AUTH_BAD_BASE64, NULL);
		return;
	}
	pop3_enter_state(s, POP3_ST_AUTH_WAIT);
	conn_watch_start(s->bev, POP3_LINE_MAX);
	auth_client_step(s->auth_reqid, data, (size_t)n);
	explicit_bzero(data, (size_t)n);
	free(data);
}

/* RFC 2449 section 5.  What may be used depends on the state and on
 * whether a password could be read off the wire right now. */
void
pop3_cmd_capa(struct pop3_session *s, char *arg)
{
	int auth = s->state == POP3_ST_AUTHORIZATION;

	pop3_reply(s, P_CAPA_FOLLOWS, NULL);
	pop3_printf(s, "TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n"
	    "PIPELINING\r\n");
	if (auth && pop3_login_allowed(s)) {
		if (pop3_plain_enabled(s))
			pop3_printf(s, "USER\r\n");
		if (s->w->conf->auth_mechanisms) {
			pop3_printf(s, "SASL");
			pop3_print_mechs(s, " ");
			pop3_printf(s, "\r\n");
		}
	}
	if (auth && pop3_stls_offered(s))
		pop3_printf(s, "STLS\r\n");
	pop3_printf(s, "IMPLEMENTATION postern\r\n.\r\n");
}

/* RFC 2595 section 4.  What the client sent after STLS came in the
 * clear and is thrown away (the STARTTLS injection of CVE-2011-0411):
 * the session starts over inside TLS, without the USER name. */
void
pop3_cmd_stls(struct pop3_session *s, char *arg)
{
	struct bufferevent *tls, *under;

	if (*arg) {
		pop3_reply(s, P_SYNTAX, NULL);
		return;
	}
	if (s->flags & POP3_F_TLS) {
		pop3_reply(s, P_TLS_ACTIVE, NULL);
		return;
	}
	if (!pop3_stls_offered(s)) {
		pop3_reply(s, P_STLS_UNAVAILABLE, NULL);
		return;
	}
	pop3_reply(s, P_STLS_GO, NULL);
	under = s->bev;
	if ((tls = conn_starttls(s->w->base, under, s->w->tls_ctx)) == NULL) {
		pop3_close_after_reply(s, "tls-setup");
		return;
	}
	s->bev = tls;
	s->user[0] = '\0';
	s->flags &= ~POP3_F_USER;
	s->flags |= POP3_F_TLS;
	pop3_enter_state(s, POP3_ST_AUTHORIZATION);
	if (pop3_setup_bev(s) == -1) {
		log_warnx("%016" PRIx64 " pop3 cannot watch the connection",
		    s->id);
		pop3_close_after_reply(s, "no-watch");
		return;
	}
	pop3_handshake_start(s);
}
