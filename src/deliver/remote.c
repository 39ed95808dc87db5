/*
 * remote.c - remote delivery scheduling (see remote.h), in the queue
 * manager.  Messages wait in a destination: the domain's MX hosts
 * ("mx:DOMAIN") or a smarthost rule ("via:N").  A destination opens up
 * to remote-connections PER-DOMAIN connections (and all together up to
 * TOTAL); each connection walks the MX hosts in order and their
 * addresses (RFC 5321 section 5.1) until one greets and accepts EHLO,
 * then takes the destination's messages one after the other over the
 * same session, and says QUIT when none is left.  A temporary refusal
 * while another session to the destination is up lowers its number of
 * sessions for a minute (a server that takes so many per client)
 * instead of deferring what waits.
 *
 * Credentials files, and the CA files of "tls ca", are read by the
 * master, as root, before the queue manager drops privileges
 * (remote_check_config); the queue manager keeps them in memory only.
 */
#include "deliver/remote.h"
#include "deliver/dns.h"
#include "deliver/smtp_client.h"
#include "lib/fsio.h"
#include "lib/keyindex.h"
#include "lib/netaddr.h"
#include "lib/log.h"
#include "lib/strutil.h"
#include "lib/xalloc.h"
#include "smtp/smtp_addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

/* How long a destination that turned a session away keeps to fewer. */
#define REMOTE_CAP_SECS	60
#define CA_FILE_MAX	(4 << 20)	/* a system's whole bundle: 200 KiB */
#define CRED_USER_MAX	256
#define CRED_PASS_MAX	1024

/* Loaded by the master, inherited by the queue manager. */
static struct credential {
	char	user[CRED_USER_MAX];
	char	pass[CRED_PASS_MAX];
} *credentials;
static size_t ncredentials;
/* The same way, per relay rule: the CAs of its "tls ca", else NULL. */
static X509_STORE **rule_cas;

struct rdest {
	struct remote		*r;
	char			 key[300];
	const struct relay_rule	*rule;		/* NULL: direct, no options */
	size_t			 rule_index;
	char			 domain[256];
	struct remote_msg	*head, **tail;
	size_t			 nqueued;
	unsigned		 nconns;
	size_t			 index;		/* in remote.dests */
	unsigned		 kicking;	/* inside rdest_kick */
	int			 waiting;	/* on remote.waiting */
	/* Sessions at once, lowered when the server turned one away while
	 * another of ours was up (a limit per client, RFC 5321's 421),
	 * until cap_until; then remote-connections' per-domain figure is
	 * tried again. */
	unsigned		 conn_cap;
	time_t			 cap_until;
	TAILQ_ENTRY(rdest)	 wait_entry;
};

struct rconn {
	struct remote		*r;
	struct rdest		*d;
	struct smtp_client	*client;
	struct remote_msg	*msg;		/* the transaction under way */
	TAILQ_ENTRY(rconn)	 entry;
	struct dns_mx		 mx[DNS_MX_MAX];
	size_t			 nmx, imx;
	struct dns_addr		 addrs[DNS_ADDR_MAX];
	size_t			 naddrs, iaddr;
	char			 host[256];	/* the one being tried */
	int			 implicit_mx;	/* no MX: the domain's address */
	int			 plain_retry;	/* this address, without TLS */
	int			 temp_seen;	/* a failure that may pass */
	int			 last_perm;
	int			 last_logged;	/* last_err has had its line */
	char			 last_dsn[16];
	char			 last_err[512];
};

struct remote {
	struct event_base	*base;
	const struct conf	*conf;
	struct dns		*dns;
	SSL_CTX			*tls_ctx;
	int			 quiescing;	/* remote_quiesce: no new work */
	unsigned		 nconns;
	unsigned		 max_conns;	/* this engine's part of the */
	unsigned		 max_per_domain; /* configured limits */
	/* The destinations with messages queued or connections open, by
	 * key; one is freed when it has neither. */
	struct rdest		**dests;
	size_t			 ndests;
	struct keyindex		 dest_index;
	/* Those that wait for a slot under the total limit, in order. */
	TAILQ_HEAD(, rdest)	 waiting;
	TAILQ_HEAD(, rconn)	 conns;
};

static void	rconn_next_host(struct rconn *);
static void	rdest_kick(struct rdest *);

/* ---------------------------------------------------------------- */
/* credentials                                                        */

/* One line "LOGIN PASSWORD"; the password is the rest of the line. */
static int
cred_read(const char *path, struct credential *cr, FILE *errf)
{
	struct stat st;
	char *text, *nl, *sp;

	if (stat(path, &st) == -1) {
		if (errf)
			fprintf(errf, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	if (st.st_mode & 077) {
		if (errf)
			fprintf(errf, "%s: readable by others (mode %04o); it holds "
			    "a password: chmod 600 it\n", path,
			    (unsigned)(st.st_mode & 07777));
		return -1;
	}
	if ((text = read_text_file(path, 4096, errf)) == NULL)
		return -1;
	if ((nl = strchr(text, '\n')) != NULL)
		*nl = '\0';
	if (nl && nl > text && nl[-1] == '\r')
		nl[-1] = '\0';
	sp = strchr(text, ' ');
	if (sp == NULL || sp == text || sp[1] == '\0' ||
	    (size_t)(sp - text) >= sizeof cr->user ||
	    strlen(sp + 1) >= sizeof cr->pass) {
		if (errf)
			fprintf(errf, "%s: expected one line 'LOGIN PASSWORD'\n",
			    path);
		OPENSSL_cleanse(text, strlen(text));
		free(text);
		return -1;
	}
	memcpy(cr->user, text, (size_t)(sp - text));
	cr->user[sp - text] = '\0';
	strlcpy(cr->pass, sp + 1, sizeof cr->pass);
	OPENSSL_cleanse(text, strlen(text));
	free(text);
	return 0;
}

/* A "tls ca" file: PEM certificates, the only ones trusted for that
 * rule's servers (a smarthost with a private CA, or its own self-signed
 * certificate, pinned).  Read whole, as root, by the master: a regular
 * file of bounded size (read_text_file), never a FIFO to hang on. */
static X509_STORE *
ca_read(const char *path, FILE *errf)
{
	X509_STORE *st;
	X509 *x;
	BIO *bio;
	char *pem;
	unsigned long e;
	int n = 0;

	if ((pem = read_text_file(path, CA_FILE_MAX, errf)) == NULL)
		return NULL;
	if ((st = X509_STORE_new()) == NULL ||
	    (bio = BIO_new_mem_buf(pem, -1)) == NULL)
		fatalx("remote: out of memory for a CA store");
	ERR_clear_error();
	while ((x = PEM_read_bio_X509_AUX(bio, NULL, NULL, NULL)) != NULL) {
		if (X509_STORE_add_cert(st, x) == 1)
			n++;
		X509_free(x);
	}
	/* The end of the text ends the loop as "no start line". */
	e = ERR_peek_last_error();
	if (n > 0 && ERR_GET_LIB(e) == ERR_LIB_PEM &&
	    ERR_GET_REASON(e) == PEM_R_NO_START_LINE)
		e = 0;
	BIO_free(bio);
	free(pem);
	ERR_clear_error();
	if (n == 0 || e != 0) {
		const char *why = e ? ERR_reason_error_string(e) : NULL;

		if (n == 0 && (e == 0 || ERR_GET_REASON(e) ==
		    PEM_R_NO_START_LINE))
			why = "no certificate in it";
		if (errf)
			fprintf(errf, "%s: not a file of PEM certificates (%s)\n",
			    path, why ? why : "unreadable");
		X509_STORE_free(st);
		return NULL;
	}
	return st;
}

int
remote_ca_check(const char *path, FILE *errf)
{
	X509_STORE *st = ca_read(path, errf);
	int rc = st ? 0 : -1;

	X509_STORE_free(st);
	return rc;
}

static void
cred_set_free(struct credential *creds, X509_STORE **cas, size_t n)
{
	if (creds) {
		OPENSSL_cleanse(creds, n * sizeof *creds);
		free(creds);
	}
	if (cas) {
		for (size_t i = 0; i < n; i++)
			X509_STORE_free(cas[i]);
		free(cas);
	}
}

int
remote_check_config(const struct conf *c, FILE *errf)
{
	size_t n = c->nrelay_rules ? c->nrelay_rules : 1;
	struct credential *creds = xcalloc(n, sizeof *creds);
	X509_STORE **cas = xcalloc(n, sizeof *cas);
	int problems = 0;

	for (size_t i = 0; i < c->nrelay_rules; i++) {
		const struct relay_rule *rule = &c->relay_rules[i];

		if (rule->auth_file[0] &&
		    cred_read(rule->auth_file, &creds[i], errf) == -1)
			problems++;
		if (rule->tls_ca[0] &&
		    (cas[i] = ca_read(rule->tls_ca, errf)) == NULL)
			problems++;
	}
	/* Only a complete set replaces the one in use. */
	if (problems) {
		cred_set_free(creds, cas, n);
		return problems;
	}
	cred_set_free(credentials, rule_cas, ncredentials);
	credentials = creds;
	rule_cas = cas;
	ncredentials = c->nrelay_rules;
	return problems;
}

void
remote_forget_credentials(void)
{
	cred_set_free(credentials, rule_cas, ncredentials);
	credentials = NULL;
	rule_cas = NULL;
	ncredentials = 0;
}

/* ---------------------------------------------------------------- */
/* messages                                                           */

/* The descriptor is the caller's, and with it the message's flock: it
 * lets them go once done() has recorded the outcomes, so that another
 * queue manager that takes the lock next finds them (src/queue/README).
 * m may be freed by done(). */
static void
rmsg_done(struct remote *r, struct remote_msg *m)
{
	m->fd = -1;
	m->done(m, m->arg);
}

/* Every recipient of m gets the same outcome. */
static void
rmsg_set_all(struct remote_msg *m, int perm, const char *dsn, const char *why,
    const char *relay)
{
	for (size_t i = 0; i < m->nrcpts; i++) {
		m->rcpts[i].outcome = perm ? REMOTE_PERMFAIL : REMOTE_TEMPFAIL;
		strlcpy(m->rcpts[i].dsn, dsn, sizeof m->rcpts[i].dsn);
		strlcpy(m->rcpts[i].why, why, sizeof m->rcpts[i].why);
		strlcpy(m->rcpts[i].relay, relay, sizeof m->rcpts[i].relay);
	}
}

static void
rmsg_fail(struct remote *r, struct remote_msg *m, int perm, const char *dsn,
    const char *why, const char *relay)
{
	rmsg_set_all(m, perm, dsn, why, relay);
	rmsg_done(r, m);
}

/* Stopping in the middle of m: recipients the server has answered for
 * keep their outcome (some may have had the message in an earlier
 * transaction of it, smtp_client.c), which is recorded; the others
 * (an empty dsn: no outcome yet) are tried again at the next start. */
static void
rmsg_stop_open(struct remote *r, struct remote_msg *m)
{
	for (size_t i = 0; i < m->nrcpts; i++) {
		struct remote_rcpt *rc = &m->rcpts[i];

		if (rc->dsn[0] != '\0')
			continue;
		rc->outcome = REMOTE_TEMPFAIL;
		strlcpy(rc->dsn, "4.3.2", sizeof rc->dsn);
		strlcpy(rc->why, "the queue manager is stopping",
		    sizeof rc->why);
		strlcpy(rc->relay, "none", sizeof rc->relay);
	}
	rmsg_done(r, m);
}

static struct remote_msg *
rdest_pop(struct rdest *d)
{
	struct remote_msg *m = d->head;

	if (m) {
		d->head = m->next;
		if (d->head == NULL)
			d->tail = &d->head;
		d->nqueued--;
		m->next = NULL;
	}
	return m;
}

/* The destination cannot be reached: everything waiting for it fails
 * alike (the next messages would meet the same fate). */
static void
rdest_fail_all(struct rdest *d, int perm, const char *dsn, const char *why,
    const char *relay)
{
	struct remote_msg *list = NULL, **tail = &list, *m;

	while ((m = rdest_pop(d)) != NULL) {
		*tail = m;
		tail = &m->next;
	}
	/* The callbacks may submit again: the list is ours now. */
	while ((m = list) != NULL) {
		list = m->next;
		m->next = NULL;
		rmsg_fail(d->r, m, perm, dsn, why, relay);
	}
}

/* ---------------------------------------------------------------- */
/* connections                                                        */

static void
rconn_free(struct rconn *k)
{
	struct remote *r = k->r;
	struct rdest *d = k->d, *e;

	if (k->client)
		smtp_client_free(k->client);
	TAILQ_REMOVE(&r->conns, k, entry);
	r->nconns--;
	d->nconns--;
	free(k);
	/* A slot is free: the destination's own next message may use it,
	 * else whoever waited longest under the total limit. */
	rdest_kick(d);
	while (r->nconns < r->max_conns &&
	    (e = TAILQ_FIRST(&r->waiting)) != NULL) {
		TAILQ_REMOVE(&r->waiting, e, wait_entry);
		e->waiting = 0;
		rdest_kick(e);
	}
}

/* Why the latest attempt failed: what the messages get if nothing
 * after it succeeds. */
static void __attribute__((format(printf, 4, 5)))
rconn_note(struct rconn *k, int perm, const char *dsn, const char *fmt, ...)
{
	va_list ap;

	k->last_perm = perm;
	k->last_logged = 0;
	k->temp_seen |= !perm;
	strlcpy(k->last_dsn, dsn, sizeof k->last_dsn);
	va_start(ap, fmt);
	vsnprintf(k->last_err, sizeof k->last_err, fmt, ap);
	va_end(ap);
}

/* Nothing left to try: fail what waits, give up the slot. */
static void
rconn_give_up(struct rconn *k)
{
	struct rdest *d = k->d;

	/* A temporary failure while other sessions of ours are open to the
	 * same destination says more about how many it takes from us than
	 * about the messages: they wait for those sessions, which open no
	 * more than there are now.  A message with many recipients is
	 * several remote_msgs, and would otherwise be deferred whole by a
	 * server that takes one session per client. */
	if (!k->last_perm && d->nconns > 1) {
		d->conn_cap = d->nconns - 1;
		d->cap_until = time(NULL) + REMOTE_CAP_SECS;
		log_info("remote: %s: %s; the messages wait for the %u other "
		    "session%s", d->key, k->last_err, d->conn_cap,
		    d->conn_cap == 1 ? "" : "s");
		rconn_free(k);
		return;
	}
	/* A host's failure has had its line already (rconn_ready); each
	 * message's own line follows. */
	if (!k->last_logged)
		log_info("remote: %s: %s", d->key, k->last_err);
	rdest_fail_all(d, k->last_perm, k->last_dsn, k->last_err, "none");
	rconn_free(k);
}

static void	rconn_take_next(struct rconn *);

static void
rconn_tx_done(struct smtp_client *c, struct remote_msg *m, int reusable,
    void *arg)
{
	struct rconn *k = arg;

	k->msg = NULL;
	rmsg_done(k->r, m);
	if (!reusable) {
		smtp_client_free(c);
		k->client = NULL;
		rconn_free(k);		/* kicks the destination again */
		return;
	}
	rconn_take_next(k);
}

static void
rconn_take_next(struct rconn *k)
{
	struct remote_msg *m = rdest_pop(k->d);

	if (m == NULL) {
		/* No more work: leave politely. */
		smtp_client_quit(k->client);
		k->client = NULL;
		rconn_free(k);
		return;
	}
	k->msg = m;
	smtp_client_send(k->client, m, rconn_tx_done, k);
}

static void	rconn_try_addr(struct rconn *);

/* To the domain's own hosts (MX, or an address literal), not through
 * a smarthost. */
static int
rconn_direct(const struct rconn *k)
{
	return k->d->rule == NULL || k->d->rule->direct;
}

/* TLS is a must for this destination: verified, or carrying our
 * credentials. */
static int
rconn_tls_required(const struct rconn *k)
{
	const struct relay_rule *rule = k->d->rule;

	return rule && (rule->tls_verify || rule->tls_implicit ||
	    rule->auth_file[0]);
}

static void
rconn_ready(struct smtp_client *c, int ok, const struct smtp_client_error *err,
    void *arg)
{
	struct rconn *k = arg;

	if (ok) {
		log_debug("remote: %s: session with %s", k->d->key,
		    smtp_client_peer(c));
		rconn_take_next(k);
		return;
	}
	smtp_client_free(c);
	k->client = NULL;
	rconn_note(k, err->perm, err->dsn, "%s", err->text);
	log_info("remote: %s: %s", k->d->key, err->text);
	k->last_logged = 1;
	if (err->perm || err->auth_refused) {
		/* No other address will think otherwise.  The smarthost
		 * refused our credentials: the messages wait (a temporary
		 * failure), but trying them at every address of it, at
		 * every retry, could get the account locked as well. */
		rconn_give_up(k);
		return;
	}
	if (err->tls_failed && !k->plain_retry && !rconn_tls_required(k)) {
		/* STARTTLS was only opportunistic: a server whose handshake
		 * fails (an old protocol version, a broken key) gets the
		 * message in the clear, as one that offered no STARTTLS
		 * would.  An attacker on the path gains nothing by it: he
		 * could as well have removed the offer. */
		log_info("remote: %s: trying %s again without TLS", k->d->key,
		    k->host);
		k->plain_retry = 1;
		rconn_try_addr(k);
		return;
	}
	k->plain_retry = 0;
	k->iaddr++;
	rconn_try_addr(k);
}

static void
rconn_try_addr(struct rconn *k)
{
	struct remote *r = k->r;
	const struct relay_rule *rule = k->d->rule;
	struct smtp_client_cfg cfg;
	const struct credential *cr = NULL;

	if (k->iaddr >= k->naddrs) {
		k->imx++;
		rconn_next_host(k);
		return;
	}
	if (rule && rule->auth_file[0] && k->d->rule_index < ncredentials)
		cr = &credentials[k->d->rule_index];
	memset(&cfg, 0, sizeof cfg);
	cfg.helo = r->conf->hostname;
	cfg.tls_ctx = r->tls_ctx;
	if (rule && rule->tls_ca[0]) {
		/* Never the system's CAs in place of the rule's own. */
		if (k->d->rule_index >= ncredentials ||
		    rule_cas[k->d->rule_index] == NULL) {
			rconn_note(k, 0, "4.7.5", "the CA file %s of line %d is "
			    "not loaded", rule->tls_ca, rule->line);
			rconn_give_up(k);
			return;
		}
		cfg.tls_cas = rule_cas[k->d->rule_index];
	}
	cfg.servername = k->host;
	cfg.tls_implicit = rule ? rule->tls_implicit : 0;
	cfg.tls_verify = rule ? rule->tls_verify : 0;
	cfg.no_starttls = k->plain_retry;
	cfg.auth_user = cr && cr->user[0] ? cr->user : NULL;
	cfg.auth_pass = cr ? cr->pass : NULL;
	cfg.timeout = (unsigned)r->conf->remote_timeout;
	cfg.connect_timeout = (unsigned)r->conf->remote_connect_timeout;
	k->client = smtp_client_connect(r->base,
	    (struct sockaddr *)&k->addrs[k->iaddr].ss, k->addrs[k->iaddr].len,
	    &cfg, rconn_ready, k);
}

static void
rconn_addrs(void *arg, enum dns_status st, const struct dns_addr *a, size_t n)
{
	struct rconn *k = arg;

	if (st != DNS_OK) {
		/* A host name without an address is an error of the
		 * domain's (RFC 5321 section 5.1): the message bounces if
		 * no host of the domain did better or failed for a reason
		 * that may pass.  A smarthost's name is ours to mend. */
		int perm = (st == DNS_NXDOMAIN || st == DNS_NODATA) &&
		    !k->temp_seen && rconn_direct(k);

		if (k->implicit_mx && perm)
			rconn_note(k, perm, "5.4.4", "domain %s has no MX and "
			    "no address (DNS: %s)", k->host, dns_status_str(st));
		else
			rconn_note(k, perm, perm ? "5.4.4" : "4.4.3", "cannot "
			    "find the address of %s: %s", k->host,
			    dns_status_str(st));
		k->imx++;
		rconn_next_host(k);
		return;
	}
	memcpy(k->addrs, a, n * sizeof *a);
	k->naddrs = n;
	k->iaddr = 0;
	rconn_try_addr(k);
}

/*
 * A smarthost given as an address ("relay via [192.0.2.1]:587") is
 * that address: no DNS, which would only fail for it.  Its name
 * becomes the address literal of RFC 5321 section 4.1.3, which the
 * SMTP client knows for one: no SNI, and "tls verify" checks the
 * certificate for the address.  0 if the host was not written in
 * brackets, or is a name in them ("[smtp.isp.example]", as Postfix
 * users write it), which is looked up as without them.
 */
static int
rconn_via_address(struct rconn *k)
{
	const struct relay_rule *rule = k->d->rule;

	if (!rule->bracketed)
		return 0;
	if ((k->addrs[0].len = sockaddr_numeric(rule->host, rule->port,
	    &k->addrs[0].ss)) == 0)
		return 0;
	snprintf(k->host, sizeof k->host, "[%s%.64s]",
	    k->addrs[0].ss.ss_family == AF_INET6 ? "IPv6:" : "", rule->host);
	k->naddrs = 1;
	k->iaddr = 0;
	rconn_try_addr(k);
	return 1;
}

static void
rconn_next_host(struct rconn *k)
{
	const struct relay_rule *rule = k->d->rule;

	if (k->imx >= k->nmx) {
		rconn_give_up(k);
		return;
	}
	strlcpy(k->host, k->mx[k->imx].host, sizeof k->host);
	if (!rconn_direct(k) && rconn_via_address(k))
		return;
	dns_lookup_addr(k->r->dns, k->host, rconn_direct(k) ? DNS_ABSOLUTE :
	    DNS_CONFIGURED, rule && !rule->direct ? rule->port : 25,
	    rconn_addrs, k);
}

/* Host names equal without regard to case or a final dot. */
static int
host_eq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la > 0 && a[la - 1] == '.')
		la--;
	if (lb > 0 && b[lb - 1] == '.')
		lb--;
	return la == lb && strncasecmp(a, b, la) == 0;
}

/*
 * RFC 5321 section 5.1: if we are in the list, only hosts more
 * preferred than we are may take the message; the rest would hand it
 * back or to a peer of ours.  Returns how many hosts are left.
 */
static size_t
rconn_mx_drop_self(struct rconn *k, const char *me, struct dns_mx *mx,
    size_t n)
{
	size_t i, j;
	unsigned mine = 0;
	int found = 0;

	for (i = 0; i < n; i++)
		if (host_eq(mx[i].host, me) && (!found || mx[i].pref < mine)) {
			mine = mx[i].pref;
			found = 1;
		}
	if (!found)
		return n;
	for (i = j = 0; i < n; i++)
		if (mx[i].pref < mine)
			mx[j++] = mx[i];
	log_info("remote: %s: %s is MX %u for %s: %zu more preferred "
	    "host%s left", k->d->key, me, mine, k->d->domain, j,
	    j == 1 ? "" : "s");
	return j;
}

static void
rconn_mx(void *arg, enum dns_status st, const struct dns_mx *mx, size_t n)
{
	struct rconn *k = arg;
	const char *dom = k->d->domain;

	switch (st) {
	case DNS_OK:
		memcpy(k->mx, mx, n * sizeof *mx);
		k->nmx = rconn_mx_drop_self(k, k->r->conf->hostname, k->mx, n);
		if (k->nmx == 0) {
			/* We are the best host left: sending on would hand
			 * the message to ourselves until the hop limit.  A
			 * mistake in DNS or in our relay rules, to be mended
			 * while the message waits. */
			rconn_note(k, 0, "4.4.6", "MX list for %s loops back "
			    "to myself, %s", dom, k->r->conf->hostname);
			rconn_give_up(k);
			return;
		}
		break;
	case DNS_NODATA:
		/* No MX: the domain itself is the implicit MX (RFC 5321
		 * section 5.1). */
		strlcpy(k->mx[0].host, dom, sizeof k->mx[0].host);
		k->mx[0].pref = 0;
		k->nmx = 1;
		k->implicit_mx = 1;
		break;
	case DNS_NXDOMAIN:
		rconn_note(k, 1, "5.1.2", "domain %s does not exist (DNS: %s)",
		    dom, dns_status_str(st));
		rconn_give_up(k);
		return;
	case DNS_NULLMX:
		/* RFC 7505 section 4.2 */
		rconn_note(k, 1, "5.1.10", "domain %s publishes a null MX: it "
		    "accepts no mail", dom);
		rconn_give_up(k);
		return;
	case DNS_TEMPFAIL:
		rconn_note(k, 0, "4.4.3", "MX lookup for %s failed: %s", dom,
		    dns_status_str(st));
		rconn_give_up(k);
		return;
	}
	k->imx = 0;
	rconn_next_host(k);
}

/*
 * "This network", multicast, reserved or broadcast: no host is there.
 * (Loopback and private addresses are left alone: a domain of the
 * sender's own can point at them too, so refusing them as literals
 * would protect nothing.)
 */
static int
literal_unusable(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET) {
		uint32_t a = ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr);

		return (a >> 24) == 0 || (a >> 28) >= 14;
	}
	if (ss->ss_family == AF_INET6) {
		const struct in6_addr *a6 =
		    &((const struct sockaddr_in6 *)ss)->sin6_addr;

		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			struct sockaddr_storage v4 = { .ss_family = AF_INET };

			memcpy(&((struct sockaddr_in *)&v4)->sin_addr,
			    &a6->s6_addr[12], 4);
			return literal_unusable(&v4);
		}
		return IN6_IS_ADDR_UNSPECIFIED(a6) || IN6_IS_ADDR_MULTICAST(a6);
	}
	return 1;
}

/*
 * An address literal, "[192.0.2.1]" or "[IPv6:2001:db8::1]" (RFC 5321
 * section 4.1.3): that address on port 25, no DNS.  The session's RCPT
 * check has already accepted its form.
 */
static void
rconn_literal(struct rconn *k)
{
	const char *dom = k->d->domain;
	char host[64];

	strlcpy(k->host, dom, sizeof k->host);
	k->nmx = 1;			/* the literal is the only "host" */
	if (smtp_addr_literal_host(dom, strlen(dom), host, sizeof host) == -1 ||
	    (k->addrs[0].len = sockaddr_numeric(host, 25,
	    &k->addrs[0].ss)) == 0 || literal_unusable(&k->addrs[0].ss))
		goto bad;
	k->naddrs = 1;
	k->iaddr = 0;
	rconn_try_addr(k);
	return;
bad:
	rconn_note(k, 1, "5.1.2", "%s is not an address mail can go to",
	    dom);
	rconn_give_up(k);
}

static void
rconn_start(struct rdest *d)
{
	struct remote *r = d->r;
	struct rconn *k = xcalloc(1, sizeof *k);

	k->r = r;
	k->d = d;
	TAILQ_INSERT_TAIL(&r->conns, k, entry);
	r->nconns++;
	d->nconns++;
	/* What the messages get if no host is ever tried; not a failure
	 * seen (temp_seen stays 0). */
	strlcpy(k->last_dsn, "4.4.1", sizeof k->last_dsn);
	strlcpy(k->last_err, "no host could be reached", sizeof k->last_err);
	if (!rconn_direct(k)) {
		strlcpy(k->mx[0].host, d->rule->host, sizeof k->mx[0].host);
		k->nmx = 1;
		rconn_next_host(k);
	} else if (d->domain[0] == '[')
		rconn_literal(k);
	else
		dns_lookup_mx(r->dns, d->domain, rconn_mx, k);
}

static const char *
rdest_key(const void *arr, size_t i)
{
	return ((struct rdest *const *)arr)[i]->key;
}

/* Forget a destination with nothing queued and no connection: a queue
 * manager that runs for months meets a great many domains. */
static void
rdest_release(struct rdest *d)
{
	struct remote *r = d->r;
	struct rdest *last;

	if (d->nqueued || d->nconns || d->kicking)
		return;
	if (d->waiting)
		TAILQ_REMOVE(&r->waiting, d, wait_entry);
	keyindex_del(&r->dest_index, d->key, rdest_key, r->dests);
	last = r->dests[--r->ndests];
	if (last != d) {
		r->dests[d->index] = last;
		last->index = d->index;
		keyindex_put(&r->dest_index, d->index, rdest_key, r->dests);
	}
	free(d);
}

/* Open connections for what waits, within the limits.  A connection
 * may fail and be freed before rconn_start returns (a look-up answered
 * at once), so d is held until the loop ends. */
static void
rdest_kick(struct rdest *d)
{
	struct remote *r = d->r;
	unsigned per_domain = r->max_per_domain;

	if (d->conn_cap > 0 && time(NULL) < d->cap_until)
		per_domain = d->conn_cap;
	d->kicking++;
	while (d->nqueued > d->nconns && d->nconns < per_domain &&
	    r->nconns < r->max_conns)
		rconn_start(d);
	if (d->nqueued > d->nconns && d->nconns < per_domain &&
	    !d->waiting && !r->quiescing) {
		/* Held back only by the total: next in line for a slot. */
		TAILQ_INSERT_TAIL(&r->waiting, d, wait_entry);
		d->waiting = 1;
	}
	d->kicking--;
	rdest_release(d);
}

/* ---------------------------------------------------------------- */
/* entry points                                                       */

static const struct relay_rule *
remote_rule(const struct conf *c, const char *domain, size_t *index)
{
	const struct relay_rule *def = NULL;

	for (size_t i = 0; i < c->nrelay_rules; i++) {
		const struct relay_rule *r = &c->relay_rules[i];

		if (r->domain[0] == '\0' && def == NULL) {
			def = r;
			*index = i;
		} else if (r->domain[0] && strcasecmp(r->domain, domain) == 0) {
			*index = i;
			return r;
		}
	}
	return def;
}

struct remote *
remote_new(struct event_base *base, const struct conf *c, unsigned share)
{
	struct remote *r = xcalloc(1, sizeof *r);

	if (share == 0)
		share = 1;
	r->base = base;
	r->conf = c;
	r->max_conns = (c->remote_connections + share - 1) / share;
	r->max_per_domain = (c->remote_connections_per_domain + share - 1) /
	    share;
	r->dns = dns_new(base, c->resolver);
	TAILQ_INIT(&r->waiting);
	TAILQ_INIT(&r->conns);
	if ((r->tls_ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		fatalx("remote: cannot create a TLS context");
	SSL_CTX_set_min_proto_version(r->tls_ctx, TLS1_2_VERSION);
	/* The system's trust store, for destinations with "tls verify"
	 * (a rule's "tls ca" replaces it for that rule's sessions). */
	SSL_CTX_set_default_verify_paths(r->tls_ctx);
	SSL_CTX_set_mode(r->tls_ctx, SSL_MODE_RELEASE_BUFFERS);
	return r;
}

void
remote_submit(struct remote *r, struct remote_msg *m)
{
	const struct relay_rule *rule;
	struct rdest *d;
	size_t idx = 0, i;
	char key[300];

	m->next = NULL;
	rule = remote_rule(r->conf, m->domain, &idx);
	if (rule && !rule->direct)
		snprintf(key, sizeof key, "via:%zu %s:%u", idx, rule->host,
		    rule->port);
	else
		snprintf(key, sizeof key, "mx %.250s", m->domain);
	if ((i = keyindex_find(&r->dest_index, key, rdest_key, r->dests)) !=
	    SIZE_MAX)
		d = r->dests[i];
	else {
		d = xcalloc(1, sizeof *d);
		d->r = r;
		strlcpy(d->key, key, sizeof d->key);
		d->rule = rule;
		d->rule_index = idx;
		strlcpy(d->domain, m->domain, sizeof d->domain);
		str_lower(d->domain);
		d->tail = &d->head;
		r->dests = xgrowarray(r->dests, r->ndests, sizeof *r->dests);
		d->index = r->ndests;
		r->dests[r->ndests++] = d;
		keyindex_put(&r->dest_index, d->index, rdest_key, r->dests);
	}
	*d->tail = m;
	d->tail = &m->next;
	d->nqueued++;
	rdest_kick(d);
	if (r->quiescing)		/* nothing would ever take it */
		rdest_fail_all(d, 0, "4.3.2", "the queue manager is stopping",
		    "none");
}

void
remote_quiesce(struct remote *r)
{
	r->quiescing = 1;
	r->max_conns = 0;	/* no session starts any more */
	/* Backwards: a destination left with nothing is released, and the
	 * last one takes its place in the array. */
	for (size_t i = r->ndests; i-- > 0; ) {
		struct rdest *d = r->dests[i];

		d->kicking++;		/* not freed under the callbacks */
		rdest_fail_all(d, 0, "4.3.2", "the queue manager is stopping",
		    "none");
		d->kicking--;
		rdest_release(d);
	}
}

void
remote_free(struct remote *r)
{
	struct rdest *d;
	struct rconn *k;

	r->max_conns = 0;	/* the callbacks below start nothing */
	/* Pending lookups are cancelled without their callbacks. */
	dns_free(r->dns);
	r->dns = NULL;
	/* Transactions under way and messages not yet taken are answered
	 * "try later"; nothing new starts (max_conns is zero). */
	while ((k = TAILQ_FIRST(&r->conns)) != NULL) {
		if (k->client)
			smtp_client_free(k->client);
		k->client = NULL;
		if (k->msg)
			rmsg_stop_open(r, k->msg);
		TAILQ_REMOVE(&r->conns, k, entry);
		free(k);
	}
	for (size_t i = 0; i < r->ndests; i++) {
		d = r->dests[i];
		d->kicking++;		/* freed here, not by the callbacks */
		rdest_fail_all(d, 0, "4.3.2", "the queue manager is stopping",
		    "none");
		free(d);
	}
	free(r->dests);
	keyindex_free(&r->dest_index);
	smtp_client_free_quitting();
	SSL_CTX_free(r->tls_ctx);
	free(r);
}
