/*
 * cli_check.c - `postern check HOST`: the administrator's telnet
 * sessions of the OP25B documents, automated, against any mail server.
 * Port 25 (RFC 5321) must take mail for its own domains without AUTH and
 * relay for nobody; 587 (RFC 6409) and 465 (RFC 8314) must demand AUTH
 * (RFC 4954) before MAIL and offer it only inside TLS (RFC 3207); POP3
 * (RFC 1939, RFC 2595) should not take passwords in the clear.  One
 * verdict per line; DATA is never sent, so no mail is ever delivered.
 * Runs in the administrator's process, with blocking sockets.
 */
#include "admin/check_ports.h"
#include "admin/cli.h"
#include "admin/netcheck.h"
#include "lib/base64.h"
#include "lib/netaddr.h"
#include "lib/strutil.h"
#include "lib/xalloc.h"
#include "sasl/sasl_client.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/crypto.h>

#define CHECK_DEFAULT_TIMEOUT	10	/* seconds per connect or reply */
#define CHECK_REPLY_MAX		(64 * 1024)

enum verdict { V_PASS, V_INFO, V_WARN, V_FAIL };

static const char *const verdict_names[] = { "PASS", "INFO", "WARN", "FAIL" };

struct check_result {
	unsigned	 port;
	enum listen_role role;
	char		 name[32];	/* "banner", "starttls", ... */
	enum verdict	 verdict;
	char		 detail[640];
	char		 advice[400];
};

struct checker {
	const char	*host;
	const char	*user;
	char		*pass;
	const char	*from;		/* envelope sender of the tests */
	const char	*auth_from;	/* sender of the authenticated one */
	const char	*local_rcpt;
	const char	*foreign_rcpt;
	const char	*cafile;
	const char	*helo;
	int		 json;
	int		 insecure;	/* credentials to an unverified server */
	int		 timeout_ms;
	int		 nreachable;
	struct check_result *res;
	size_t		 nres, cap;
};

/* The transcript of one port. */
struct session {
	struct checker	*ck;
	struct check_port cp;
	struct nc_conn	 nc;
	struct buf	 r;		/* the last reply */
	struct buf	 ehlo;		/* the last EHLO reply */
	int		 tls;
	int		 tls_trusted;	/* certificate verified, name matching */
};

static void __attribute__((format(printf, 5, 6)))
report(struct session *s, const char *name, enum verdict v,
    const char *advice, const char *fmt, ...)
{
	struct checker *ck = s->ck;
	struct check_result *r;
	va_list ap;

	if (ck->nres == ck->cap) {
		ck->cap = ck->cap ? ck->cap * 2 : 32;
		ck->res = xreallocarray(ck->res, ck->cap, sizeof *ck->res);
	}
	r = &ck->res[ck->nres++];
	memset(r, 0, sizeof *r);
	r->port = s->cp.port;
	r->role = s->cp.role;
	(void)strlcpy(r->name, name, sizeof r->name);
	r->verdict = v;
	va_start(ap, fmt);
	vsnprintf(r->detail, sizeof r->detail, fmt, ap);
	va_end(ap);
	/* Replies can hold anything; keep the output one line per check. */
	for (char *p = r->detail; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
		else if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
			*p = '?';
	if (advice)
		(void)strlcpy(r->advice, advice, sizeof r->advice);
	if (!ck->json) {
		char where[32];

		snprintf(where, sizeof where, "%u/%s", r->port,
		    listen_role_name(r->role));
		printf("%s  %-16s %-20s %s\n", verdict_names[v], where, r->name,
		    r->detail);
		if (r->advice[0] && v != V_PASS)
			printf("      -> %s\n", r->advice);
		fflush(stdout);
	}
}

/* The reply's last line, for a detail ("530 5.7.0 Authentication
 * required"). */
static const char *
last_line(const struct buf *b)
{
	const char *nl;

	if (b->data == NULL)
		return "";
	nl = strrchr(b->data, '\n');
	return nl ? nl + 1 : b->data;
}

/* The keywords of an EHLO reply, one line: "PIPELINING SIZE 10240000 ...". */
static void
ehlo_keywords(const struct buf *ehlo, char *dst, size_t dstsz)
{
	const char *p = ehlo->data ? strchr(ehlo->data, '\n') : NULL;

	dst[0] = '\0';
	while (p) {
		const char *eol;
		size_t len, used = strlen(dst);

		p++;
		eol = strchr(p, '\n');
		len = eol ? (size_t)(eol - p) : strlen(p);
		if (len > 4 && used + len < dstsz) {
			if (used)
				dst[used++] = ' ';
			memcpy(dst + used, p + 4, len - 4);
			dst[used + len - 4] = '\0';
		}
		p = eol;
	}
}

static int
has_word(const char *list, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = list; p && *p; ) {
		while (*p == ' ')
			p++;
		if (strncasecmp(p, word, n) == 0 && (p[n] == ' ' || p[n] == '\0'))
			return 1;
		p = strchr(p, ' ');
	}
	return 0;
}

static const char *
domain_of(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at ? at + 1 : addr;
}

/* The reply failed: say so once for this port and stop the session. */
static void
lost(struct session *s, const char *step)
{
	report(s, step, V_FAIL, "the server closed the connection or stopped "
	    "answering; look at its log", "no reply: %s", s->nc.err);
}

static int
smtp_cmd(struct session *s, const char *step, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
smtp_cmd(struct session *s, const char *step, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int code, n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof line)
		return -1;
	if ((code = nc_smtp_cmd(&s->nc, &s->r, "%s", line)) == -1)
		lost(s, step);
	explicit_bzero(line, sizeof line);
	return code;
}

static void
report_tls(struct session *s, const char *name)
{
	struct nc_tlsinfo ti;
	const char *host = s->ck->host;

	nc_tls_describe(&s->nc, host, &ti);
	s->tls_trusted = ti.have_cert && ti.verified && ti.name_match;
	report(s, name, V_PASS, NULL, "%s %s", ti.protocol, ti.cipher);
	if (!ti.have_cert) {
		report(s, "certificate", V_FAIL, "configure a certificate",
		    "the server sent no certificate");
		return;
	}
	report(s, "certificate", V_INFO, NULL, "subject %s; issuer %s; "
	    "notAfter %s", ti.subject, ti.issuer, ti.not_after);
	if (ti.days_left < 0)
		report(s, "cert-expiry", V_FAIL, "renew the certificate (tls cert "
		    "FILE key FILE) and send SIGHUP", "expired %d days ago",
		    -ti.days_left);
	else if (ti.days_left < 14)
		report(s, "cert-expiry", V_WARN, "renew the certificate soon",
		    "expires in %d days", ti.days_left);
	else
		report(s, "cert-expiry", V_PASS, NULL, "valid for %d more days",
		    ti.days_left);
	if (ti.self_signed)
		report(s, "cert-trust", V_WARN, "clients that verify will refuse "
		    "it: install a certificate from a CA (e.g. ACME) with "
		    "'tls cert FILE key FILE'", "self-signed certificate");
	else if (!ti.verified)
		report(s, "cert-trust", V_WARN, "install the full chain, or pass "
		    "--cafile for a private CA", "not verified: %s",
		    ti.verify_error);
	else
		report(s, "cert-trust", V_PASS, NULL, "verified by a trusted CA");
	if (ti.name_match)
		report(s, "cert-name", V_PASS, NULL, "valid for %s", host);
	else
		report(s, "cert-name", V_WARN, "clients configured with this "
		    "name will refuse the certificate: put it in the "
		    "certificate's subjectAltName", "not valid for %s", host);
}

/*
 * May the password be sent on this connection?  Only inside TLS, and
 * only to a server whose certificate is verified for the name asked
 * for: anyone on the path, or a server posing as this one, would
 * otherwise get it.  A loopback peer cannot be on the way, and
 * --insecure sends it to an unverified certificate (a self-signed one
 * being set up).  0: not sent, and said why.
 */
static int
credentials_may_go(struct session *s, const char *step)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;

	if (getpeername(s->nc.fd, (struct sockaddr *)&ss, &len) == 0 &&
	    sockaddr_is_loopback((struct sockaddr *)&ss))
		return 1;
	if (!s->tls) {
		report(s, step, V_FAIL, "offer AUTH inside TLS only",
		    "credentials not sent: no TLS on this connection");
		return 0;
	}
	if (!s->tls_trusted && !s->ck->insecure) {
		report(s, step, V_FAIL, "pass --cafile FILE for a private CA, "
		    "or --insecure to send them to this certificate anyway",
		    "credentials not sent: the certificate is not verified "
		    "for %s", s->ck->host);
		return 0;
	}
	return 1;
}

/* AUTH with the given credentials; 1 when the server said 235. */
static int
smtp_auth(struct session *s, const char *mechs)
{
	struct checker *ck = s->ck;
	const struct sasl_mech *m = sasl_client_choose(mechs);
	struct sasl_client sc;
	struct buf out;
	enum sasl_status st;
	unsigned char *dec = NULL;
	char *enc = NULL;
	int has_ir, code, ok = 0;

	if (m == NULL) {
		report(s, "auth-login", V_FAIL, "offer PLAIN, LOGIN, CRAM-MD5 or "
		    "SCRAM-SHA-256", "no mechanism postern knows among '%s'",
		    mechs);
		return 0;
	}
	if (!credentials_may_go(s, "auth-login"))
		return 0;
	sasl_client_init(&sc, m, ck->user, ck->pass);
	buf_init(&out, SASL_MSG_MAX);
	st = sasl_client_step(&sc, NULL, 0, &out, &has_ir);
	enc = xmalloc(BASE64_ENCODED_LEN(SASL_MSG_MAX) + 1);
	dec = xmalloc(SASL_MSG_MAX);
	if (st != SASL_CONTINUE)
		goto done;
	base64_encode(enc, (const unsigned char *)(out.data ? out.data : ""),
	    out.len);
	if (has_ir)
		code = smtp_cmd(s, "auth-login", "AUTH %s %s", m->name,
		    out.len ? enc : "=");
	else
		code = smtp_cmd(s, "auth-login", "AUTH %s", m->name);
	/* A bounded exchange: no mechanism needs more than three steps. */
	for (int round = 0; code == 334 && round < 4; round++) {
		const char *ch = last_line(&s->r);

		ch += strlen(ch) >= 3 ? 3 : strlen(ch);	/* past "334" */
		long n;

		while (*ch == ' ')
			ch++;
		if (strlen(ch) > BASE64_ENCODED_LEN(SASL_MSG_MAX - 3) ||
		    (n = base64_decode(dec, ch, strlen(ch))) < 0) {
			code = smtp_cmd(s, "auth-login", "*");
			break;
		}
		st = sasl_client_step(&sc, dec, (size_t)n, &out, &has_ir);
		if (st == SASL_OK)
			code = smtp_cmd(s, "auth-login", "%s", "");
		else if (st == SASL_CONTINUE) {
			base64_encode(enc, (const unsigned char *)
			    (out.data ? out.data : ""), out.len);
			code = smtp_cmd(s, "auth-login", "%s", enc);
		} else {
			code = smtp_cmd(s, "auth-login", "*");
			/* SASL_FAIL: the server's e= (often our wrong
			 * password) or a signature that does not match. */
			report(s, "auth-login", V_FAIL, st == SASL_FAIL ?
			    "the SCRAM exchange failed: a wrong password, or a "
			    "server that cannot prove it knows it (the reason "
			    "says which)" : "the server's SCRAM challenge breaks RFC "
			    "5802 or RFC 7677 (at least 4096 iterations): mend "
			    "the server, or look for something on the path that "
			    "rewrites it", "AUTH %s: bad server challenge%s%s",
			    m->name, sc.error[0] ? ": " : "", sc.error);
			goto done;
		}
	}
	/* SCRAM: a 235 counts only after the server proved itself (its
	 * signature checked, the third step). */
	if (code == 235 && m->id == SASL_SCRAM_SHA_256 && sc.step < 3) {
		report(s, "auth-login", V_FAIL, "the server could not prove it "
		    "knows the password (SCRAM)", "AUTH %s: accepted without "
		    "the server's signature", m->name);
		goto done;
	}
	if (code == 235) {
		report(s, "auth-login", V_PASS, NULL, "AUTH %s as %s: %s",
		    m->name, ck->user, last_line(&s->r));
		ok = 1;
	} else if (code != -1)
		report(s, "auth-login", V_FAIL, "check the user name and "
		    "password, and that the account is not locked or expired "
		    "(postern user show NAME)", "AUTH %s as %s: %s", m->name,
		    ck->user, last_line(&s->r));
done:
	if (enc) {
		OPENSSL_cleanse(enc, strlen(enc));
		free(enc);
	}
	free(dec);
	if (out.data)
		OPENSSL_cleanse(out.data, out.cap);
	buf_free(&out);
	sasl_client_free(&sc);
	return ok;
}

/* MAIL FROM, as a new transaction; the code. */
static int
smtp_mail(struct session *s, const char *step, const char *from)
{
	return smtp_cmd(s, step, "MAIL FROM:<%s>", from);
}

static void
smtp_rset(struct session *s)
{
	(void)nc_smtp_cmd(&s->nc, &s->r, "RSET");
}

/* Port 25: local mail without AUTH, and no relay for strangers. */
static void
check_mx_policy(struct session *s)
{
	struct checker *ck = s->ck;
	const char *ldom = domain_of(ck->local_rcpt);
	char user[128], fdom[256], tricks[5][600];
	const char *at;
	int code;

	code = smtp_mail(s, "mail-no-auth", ck->from);
	if (code == -1)
		return;
	if (code == 530) {
		report(s, "mail-no-auth", V_FAIL, "port 25 must take mail from "
		    "other servers without AUTH; require AUTH on 587/465 "
		    "instead", "MAIL without AUTH refused: %s", last_line(&s->r));
		return;
	}
	if (code / 100 != 2) {
		report(s, "mail-no-auth", code / 100 == 4 ? V_WARN : V_FAIL,
		    "check the sender policy (use --from ADDR to test another "
		    "sender)", "MAIL FROM:<%s>: %s", ck->from, last_line(&s->r));
		return;
	}
	code = smtp_cmd(s, "local-rcpt", "RCPT TO:<%s>", ck->local_rcpt);
	if (code == -1)
		return;
	if (code / 100 == 2)
		report(s, "local-rcpt", V_PASS, NULL, "mail for %s accepted "
		    "without AUTH: %s", ck->local_rcpt, last_line(&s->r));
	else
		report(s, "local-rcpt", code / 100 == 4 ? V_WARN : V_FAIL,
		    "port 25 must accept mail for the local domains from "
		    "anyone; is the domain listed in 'domains', does the "
		    "recipient exist (or give --local-rcpt)?",
		    "RCPT TO:<%s>: %s", ck->local_rcpt, last_line(&s->r));
	smtp_rset(s);

	/* The open-relay probes of old: routing through the local domain
	 * with %, ! and source routes (RFC 5321 appendix C), a quoted local
	 * part, a trailing dot, and the plain foreign address. */
	at = strrchr(ck->foreign_rcpt, '@');
	if (at == NULL || (size_t)(at - ck->foreign_rcpt) >= sizeof user ||
	    strlen(at + 1) >= sizeof fdom)
		return;
	memcpy(user, ck->foreign_rcpt, (size_t)(at - ck->foreign_rcpt));
	user[at - ck->foreign_rcpt] = '\0';
	(void)strlcpy(fdom, at + 1, sizeof fdom);
	snprintf(tricks[0], sizeof tricks[0], "%s@%s", user, fdom);
	snprintf(tricks[1], sizeof tricks[1], "%s%%%s@%s", user, fdom, ldom);
	snprintf(tricks[2], sizeof tricks[2], "%s!%s@%s", fdom, user, ldom);
	snprintf(tricks[3], sizeof tricks[3], "@%s:%s@%s", ldom, user, fdom);
	snprintf(tricks[4], sizeof tricks[4], "\"%s@%s\"@%s", user, fdom, ldom);
	for (int i = 0; i < 6; i++) {
		char rcpt[620];

		if (i < 5)
			(void)strlcpy(rcpt, tricks[i], sizeof rcpt);
		else
			snprintf(rcpt, sizeof rcpt, "%s@%s.", user, fdom);
		if ((code = smtp_mail(s, "open-relay", ck->from)) == -1)
			return;
		if (code / 100 != 2) {
			report(s, "open-relay", V_INFO, NULL, "cannot test "
			    "<%s>: MAIL refused: %s", rcpt, last_line(&s->r));
			smtp_rset(s);
			continue;
		}
		if ((code = smtp_cmd(s, "open-relay", "RCPT TO:<%s>", rcpt)) == -1)
			return;
		if (code / 100 == 2)
			report(s, "open-relay", V_FAIL, "an open relay is found "
			    "and abused within hours: relay only for "
			    "authenticated users and mynetworks (never 0.0.0.0/0)",
			    "RCPT TO:<%s> accepted without AUTH: %s", rcpt,
			    last_line(&s->r));
		else if (code / 100 == 4)
			report(s, "open-relay", V_WARN, "a temporary refusal may "
			    "be greylisting; check that it is permanent",
			    "RCPT TO:<%s>: %s", rcpt, last_line(&s->r));
		else
			report(s, "open-relay", V_PASS, NULL, "RCPT TO:<%s> "
			    "refused: %s", rcpt, last_line(&s->r));
		smtp_rset(s);
	}
}

/* 587/465: AUTH before MAIL, and with credentials a real login. */
static void
check_submission_policy(struct session *s, const char *mechs)
{
	struct checker *ck = s->ck;
	int code;

	code = smtp_mail(s, "mail-before-auth", ck->from);
	if (code == -1)
		return;
	if (code == 530 && strstr(last_line(&s->r), "5.7.0"))
		report(s, "mail-before-auth", V_PASS, NULL, "MAIL before AUTH "
		    "refused: %s", last_line(&s->r));
	else if (code / 100 == 5)
		report(s, "mail-before-auth", V_WARN, "refuse with 530 5.7.0 "
		    "(RFC 4954) so that clients know they must log in",
		    "MAIL before AUTH refused, but not with 530 5.7.0: %s",
		    last_line(&s->r));
	else if (code / 100 == 4)
		report(s, "mail-before-auth", V_WARN, "refuse with 530 5.7.0",
		    "MAIL before AUTH refused temporarily: %s", last_line(&s->r));
	else {
		char first[300];

		(void)strlcpy(first, last_line(&s->r), sizeof first);
		code = smtp_cmd(s, "mail-before-auth", "RCPT TO:<%s>",
		    ck->foreign_rcpt);
		if (code == -1)
			return;
		report(s, "mail-before-auth", V_FAIL, "open submission: require "
		    "AUTH on this port ('listen submission' without 'auth "
		    "optional'); MAIL must get 530 5.7.0", "MAIL accepted "
		    "without AUTH (%s); RCPT TO:<%s> %s: %s", first,
		    ck->foreign_rcpt, code / 100 == 2 ? "accepted, an open "
		    "relay" : "refused", last_line(&s->r));
		smtp_rset(s);
	}
	if (ck->user == NULL)
		return;
	if (!smtp_auth(s, mechs))
		return;
	code = smtp_mail(s, "test-transaction", ck->auth_from);
	if (code == -1)
		return;
	if (code / 100 != 2) {
		report(s, "test-transaction", V_FAIL, "the sender must be one "
		    "of the user's addresses; give it with --from ADDR",
		    "MAIL FROM:<%s> after AUTH: %s", ck->auth_from,
		    last_line(&s->r));
		smtp_rset(s);
		return;
	}
	code = smtp_cmd(s, "test-transaction", "RCPT TO:<%s>", ck->foreign_rcpt);
	if (code == -1)
		return;
	if (code / 100 == 2)
		report(s, "test-transaction", V_PASS, NULL, "MAIL FROM:<%s> RCPT "
		    "TO:<%s> accepted after AUTH, then RSET (nothing was sent)",
		    ck->auth_from, ck->foreign_rcpt);
	else
		report(s, "test-transaction", V_FAIL, "authenticated users must "
		    "be able to send anywhere", "RCPT TO:<%s> after AUTH: %s",
		    ck->foreign_rcpt, last_line(&s->r));
	smtp_rset(s);
}

static void
check_smtp(struct session *s)
{
	struct checker *ck = s->ck;
	enum listen_role role = s->cp.role;
	char mechs[256], caps[1024];
	int code;

	if (role == ROLE_SUBMISSIONS) {
		if (nc_start_tls(&s->nc, ck->host, ck->cafile) == -1) {
			report(s, "implicit-tls", V_FAIL, "port 465 speaks TLS from "
			    "the first byte (RFC 8314): 'listen submissions'",
			    "TLS handshake failed: %s", s->nc.err);
			return;
		}
		s->tls = 1;
		report_tls(s, "implicit-tls");
	}
	if ((code = nc_smtp_reply(&s->nc, &s->r)) == -1) {
		lost(s, "banner");
		return;
	}
	if (code != 220) {
		report(s, "banner", V_FAIL, "the server refuses this client "
		    "address or is overloaded", "%s", last_line(&s->r));
		return;
	}
	report(s, "banner", V_PASS, NULL, "%s", last_line(&s->r));
	if ((code = smtp_cmd(s, "ehlo", "EHLO %s", ck->helo)) == -1)
		return;
	if (code != 250) {
		report(s, "ehlo", V_FAIL, "every server today speaks ESMTP",
		    "EHLO refused: %s", last_line(&s->r));
		return;
	}
	buf_reset(&s->ehlo);
	(void)buf_puts(&s->ehlo, s->r.data);
	ehlo_keywords(&s->ehlo, caps, sizeof caps);
	report(s, "ehlo", V_INFO, NULL, "%s", caps);

	if (!s->tls) {
		if (nc_ehlo_has(&s->ehlo, "AUTH", mechs, sizeof mechs)) {
			if (has_word(mechs, "PLAIN") || has_word(mechs, "LOGIN"))
				report(s, "auth-before-tls", V_FAIL, "offer AUTH "
				    "only after STARTTLS: PLAIN and LOGIN send "
				    "the password in the clear",
				    "AUTH %s offered without TLS", mechs);
			else
				report(s, "auth-before-tls", V_WARN, "offer AUTH "
				    "only after STARTTLS", "AUTH %s offered "
				    "without TLS (no cleartext mechanism)", mechs);
		} else
			report(s, "auth-before-tls", V_PASS, NULL,
			    "AUTH not offered before TLS");
		if (!nc_ehlo_has(&s->ehlo, "STARTTLS", NULL, 0)) {
			report(s, "starttls", role == ROLE_SMTP ? V_WARN : V_FAIL,
			    "configure 'tls cert FILE key FILE' (postern makes "
			    "a self-signed one when none is set)",
			    "STARTTLS not offered: everything crosses the "
			    "network in the clear");
		} else if ((code = smtp_cmd(s, "starttls", "STARTTLS")) == -1)
			return;
		else if (code != 220)
			report(s, "starttls", V_FAIL, "check the certificate and "
			    "key files", "STARTTLS refused: %s", last_line(&s->r));
		else if (nc_start_tls(&s->nc, ck->host, ck->cafile) == -1) {
			report(s, "starttls", V_FAIL, "check the certificate and "
			    "key files, and the server log", "TLS handshake "
			    "failed: %s", s->nc.err);
			return;
		} else {
			s->tls = 1;
			report_tls(s, "starttls");
			if ((code = smtp_cmd(s, "ehlo-tls", "EHLO %s",
			    ck->helo)) == -1)
				return;
			if (code != 250) {
				report(s, "ehlo-tls", V_FAIL, "EHLO must work after "
				    "STARTTLS", "%s", last_line(&s->r));
				return;
			}
			buf_reset(&s->ehlo);
			(void)buf_puts(&s->ehlo, s->r.data);
		}
	}
	if (!nc_ehlo_has(&s->ehlo, "AUTH", mechs, sizeof mechs)) {
		if (role == ROLE_SMTP)
			report(s, "auth", V_INFO, NULL, "AUTH not offered%s "
			    "(users submit on 587/465)", s->tls ? " after TLS" : "");
		else
			report(s, "auth", V_FAIL, "users cannot log in: enable "
			    "AUTH (a 'users' file) on this listener",
			    "AUTH not offered%s", s->tls ? " after TLS" : "");
	} else
		report(s, "auth", role == ROLE_SMTP ? V_INFO : V_PASS, NULL,
		    "AUTH %s%s", mechs, s->tls ? " (inside TLS)" : "");
	if (role == ROLE_SMTP)
		check_mx_policy(s);
	else
		check_submission_policy(s, mechs);
	(void)nc_smtp_cmd(&s->nc, &s->r, "QUIT");
}

static void
check_pop3(struct session *s)
{
	struct checker *ck = s->ck;
	int ok;

	if (s->cp.role == ROLE_POP3S) {
		if (nc_start_tls(&s->nc, ck->host, ck->cafile) == -1) {
			report(s, "implicit-tls", V_FAIL, "port 995 speaks TLS from "
			    "the first byte: 'listen pop3s'",
			    "TLS handshake failed: %s", s->nc.err);
			return;
		}
		s->tls = 1;
		report_tls(s, "implicit-tls");
	}
	if ((ok = nc_pop_reply(&s->nc, &s->r)) != 1) {
		if (ok == -1)
			lost(s, "banner");
		else
			report(s, "banner", V_FAIL, NULL, "%s", s->r.data);
		return;
	}
	report(s, "banner", V_PASS, NULL, "%s", s->r.data);
	if ((ok = nc_pop_cmd(&s->nc, &s->r, "CAPA")) == -1) {
		lost(s, "capa");
		return;
	}
	if (ok == 1 && nc_pop_multiline(&s->nc, &s->r) == 0)
		report(s, "capa", V_INFO, NULL, "%s", s->r.data);
	else
		report(s, "capa", V_WARN, "CAPA (RFC 2449) tells clients about "
		    "STLS and SASL", "CAPA not supported");
	if (!s->tls) {
		int has_stls = ok == 1 && has_word(s->r.data, "STLS");
		int has_user = ok == 1 && has_word(s->r.data, "USER");

		/* Ask, without a password: does USER work in the clear? */
		if ((ok = nc_pop_cmd(&s->nc, &s->r, "USER %s",
		    ck->user ? ck->user : "postern-check")) == -1) {
			lost(s, "user-before-tls");
			return;
		}
		if (ok == 1 || has_user)
			report(s, "user-before-tls", V_WARN, "refuse USER/PASS "
			    "before STLS: the password would cross the network "
			    "in the clear", "USER accepted without TLS: %s",
			    s->r.data);
		else
			report(s, "user-before-tls", V_PASS, NULL, "USER refused "
			    "without TLS: %s", s->r.data);
		if (ok == 1 && nc_pop_cmd(&s->nc, &s->r, "QUIT") == -1)
			return;
		if (ok == 1) {
			/* USER left the session half-way; start again. */
			nc_close(&s->nc);
			if (nc_connect(&s->nc, ck->host, s->cp.port) != NC_OK ||
			    nc_pop_reply(&s->nc, &s->r) != 1) {
				lost(s, "stls");
				return;
			}
		}
		if (!has_stls) {
			report(s, "stls", V_FAIL, "offer STLS (RFC 2595) or use "
			    "995", "STLS not offered");
			return;
		}
		if ((ok = nc_pop_cmd(&s->nc, &s->r, "STLS")) != 1) {
			if (ok == -1)
				lost(s, "stls");
			else
				report(s, "stls", V_FAIL, NULL, "%s", s->r.data);
			return;
		}
		if (nc_start_tls(&s->nc, ck->host, ck->cafile) == -1) {
			report(s, "stls", V_FAIL, "check the certificate",
			    "TLS handshake failed: %s", s->nc.err);
			return;
		}
		s->tls = 1;
		report_tls(s, "stls");
	}
	if (ck->user && credentials_may_go(s, "pop-login")) {
		ok = nc_pop_cmd(&s->nc, &s->r, "USER %s", ck->user);
		if (ok == 1)
			ok = nc_pop_cmd(&s->nc, &s->r, "PASS %s", ck->pass);
		if (ok == -1) {
			lost(s, "pop-login");
			return;
		}
		report(s, "pop-login", ok == 1 ? V_PASS : V_FAIL, ok == 1 ? NULL :
		    "check the user name and password", "USER/PASS as %s: %s",
		    ck->user, s->r.data);
	}
	(void)nc_pop_cmd(&s->nc, &s->r, "QUIT");
}

static void
check_port(struct checker *ck, const struct check_port *cp)
{
	struct session s;
	enum nc_status st;

	memset(&s, 0, sizeof s);
	s.ck = ck;
	s.cp = *cp;
	buf_init(&s.r, CHECK_REPLY_MAX);
	buf_init(&s.ehlo, CHECK_REPLY_MAX);
	nc_init(&s.nc, ck->timeout_ms);
	st = nc_connect(&s.nc, ck->host, cp->port);
	if (st != NC_OK) {
		/* 465 is recommended, not required: users behind OP25B
		 * manage with 587. */
		report(&s, "connect", cp->role == ROLE_SUBMISSIONS ? V_WARN :
		    V_FAIL, st == NC_TIMEOUT ? "no answer at all: a firewall "
		    "(perhaps OP25B on this network: try 'postern probe') or "
		    "a host that is down" : st == NC_REFUSED ? "nothing "
		    "listens there: add a 'listen' line for this service" :
		    NULL, "%s: %s", nc_status_name(st), s.nc.err);
	} else {
		ck->nreachable++;
		report(&s, "connect", V_PASS, NULL, "connected to %s port %u",
		    s.nc.peer, cp->port);
		if (listen_is_smtp(cp->role))
			check_smtp(&s);
		else
			check_pop3(&s);
	}
	nc_close(&s.nc);
	buf_free(&s.r);
	buf_free(&s.ehlo);
}

static void
json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static void
print_json(const struct checker *ck)
{
	printf("[");
	for (size_t i = 0; i < ck->nres; i++) {
		const struct check_result *r = &ck->res[i];

		printf("%s\n  {\"host\": ", i ? "," : "");
		json_string(ck->host);
		printf(", \"port\": %u, \"service\": \"%s\", \"check\": ",
		    r->port, listen_role_name(r->role));
		json_string(r->name);
		printf(", \"verdict\": \"%s\", \"detail\": ",
		    verdict_names[r->verdict]);
		json_string(r->detail);
		printf(", \"advice\": ");
		json_string(r->advice);
		printf("}");
	}
	printf("\n]\n");
}

static int
usage(void)
{
	fprintf(stderr, "usage: postern check HOST [--user U --password-stdin] "
	    "[--ports 25,587,465[,110,995]]\n"
	    "                     [--json] [--timeout S] [--from ADDR] "
	    "[--local-rcpt ADDR]\n"
	    "                     [--foreign-rcpt ADDR] [--helo NAME] "
	    "[--cafile FILE] [--insecure]\n"
	    "  --ports also takes SERVICE=PORT (smtp=2525,submission=2587)\n");
	return EX_USAGE;
}

/* The first line of stdin, without its newline. */
static char *
read_password(void)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, stdin);

	if (n <= 0) {
		free(line);
		return NULL;
	}
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	return line;
}

static int
valid_addr(const char *a)
{
	const char *at = strrchr(a, '@');

	if (at == NULL || at == a || at[1] == '\0' || strlen(a) > 254)
		return 0;
	for (; *a; a++)
		if ((unsigned char)*a <= ' ' || *a == '<' || *a == '>')
			return 0;
	return 1;
}

int
cli_check(int argc, char **argv)
{
	struct checker ck;
	struct check_port ports[CHECK_PORTS_MAX];
	size_t nports = 0;
	const char *portspec = "25,587,465";
	char local_rcpt[300], auth_from[300], err[256];
	int pw_stdin = 0, from_given = 0, nfail = 0;
	unsigned long t;

	memset(&ck, 0, sizeof ck);
	ck.timeout_ms = CHECK_DEFAULT_TIMEOUT * 1000;
	ck.from = "postern-check@example.org";
	ck.foreign_rcpt = "postern-check@example.net";
	ck.helo = "postern-check.invalid";
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		int more = i + 1 < argc;

		if (strcmp(a, "--json") == 0)
			ck.json = 1;
		else if (strcmp(a, "--password-stdin") == 0)
			pw_stdin = 1;
		else if (strcmp(a, "--user") == 0 && more)
			ck.user = argv[++i];
		else if (strcmp(a, "--ports") == 0 && more)
			portspec = argv[++i];
		else if (strcmp(a, "--from") == 0 && more) {
			ck.from = argv[++i];
			from_given = 1;
		}
		else if (strcmp(a, "--local-rcpt") == 0 && more)
			ck.local_rcpt = argv[++i];
		else if (strcmp(a, "--foreign-rcpt") == 0 && more)
			ck.foreign_rcpt = argv[++i];
		else if (strcmp(a, "--helo") == 0 && more)
			ck.helo = argv[++i];
		else if (strcmp(a, "--cafile") == 0 && more)
			ck.cafile = argv[++i];
		else if (strcmp(a, "--insecure") == 0)
			ck.insecure = 1;
		else if (strcmp(a, "--timeout") == 0 && more) {
			char *end;

			t = strtoul(argv[++i], &end, 10);
			if (*end || t == 0 || t > 600) {
				fprintf(stderr, "postern check: --timeout: 1 to "
				    "600 seconds\n");
				return EX_USAGE;
			}
			ck.timeout_ms = (int)t * 1000;
		} else if (a[0] == '-' && a[1] != '\0')
			return usage();
		else if (ck.host == NULL)
			ck.host = a;
		else
			return usage();
	}
	if (ck.host == NULL || (ck.user != NULL) != pw_stdin)
		return usage();
	if (check_ports_parse(portspec, ports, &nports, err, sizeof err) == -1) {
		fprintf(stderr, "postern check: %s\n", err);
		return EX_USAGE;
	}
	/* The local recipient: postmaster of HOST's domain (RFC 5321
	 * section 4.5.1 makes postmaster mandatory), "mail.example.jp" ->
	 * example.jp. */
	if (ck.local_rcpt == NULL) {
		const char *dom = ck.host, *dot = strchr(ck.host, '.');
		struct in6_addr a6;

		if (dot && strchr(dot + 1, '.') && !inet_pton(AF_INET6, ck.host,
		    &a6) && !isdigit((unsigned char)ck.host[strlen(ck.host) - 1]))
			dom = dot + 1;
		snprintf(local_rcpt, sizeof local_rcpt, "postmaster@%s", dom);
		ck.local_rcpt = local_rcpt;
	}
	if (ck.user) {
		if ((ck.pass = read_password()) == NULL) {
			fprintf(stderr, "postern check: no password on standard "
			    "input\n");
			return EX_USAGE;
		}
		/* The authenticated test sends as the user, unless told. */
		if (from_given)
			ck.auth_from = ck.from;
		else if (strchr(ck.user, '@'))
			ck.auth_from = ck.user;
		else {
			snprintf(auth_from, sizeof auth_from, "%s@%s", ck.user,
			    domain_of(ck.local_rcpt));
			ck.auth_from = auth_from;
		}
	}
	if (!valid_addr(ck.from) || !valid_addr(ck.local_rcpt) ||
	    !valid_addr(ck.foreign_rcpt) || (ck.auth_from &&
	    !valid_addr(ck.auth_from))) {
		fprintf(stderr, "postern check: addresses must look like "
		    "local@domain\n");
		return EX_USAGE;
	}
	if (!ck.json)
		printf("postern check %s: local recipient <%s>, foreign "
		    "recipient <%s>; no message is sent\n", ck.host,
		    ck.local_rcpt, ck.foreign_rcpt);
	for (size_t i = 0; i < nports; i++)
		check_port(&ck, &ports[i]);
	for (size_t i = 0; i < ck.nres; i++)
		if (ck.res[i].verdict == V_FAIL)
			nfail++;
	if (ck.json)
		print_json(&ck);
	else if (ck.nreachable == 0)
		printf("%s: unreachable on every port checked\n", ck.host);
	else
		printf("%s: %d check%s failed\n", ck.host, nfail,
		    nfail == 1 ? "" : "s");
	if (ck.pass) {
		OPENSSL_cleanse(ck.pass, strlen(ck.pass));
		free(ck.pass);
	}
	free(ck.res);
	if (ck.nreachable == 0)
		return 2;
	return nfail ? 1 : 0;
}
