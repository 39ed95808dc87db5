/*
 * dns.c - c-ares driven by libevent (see dns.h).  c-ares tells us which
 * sockets to watch through its socket-state callback; each gets an
 * event, and one timer covers c-ares' own retransmission timeouts.
 */
#include "deliver/dns.h"
#include "lib/log.h"
#include "lib/strutil.h"
#include "lib/xalloc.h"

#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

struct dns {
	struct event_base	*base;
	ares_channel		 channel;
	struct event		*timer;
	struct {
		ares_socket_t	 fd;
		struct event	*ev;
	} socks[DNS_SOCKETS_MAX];
};

/* An MX look-up. */
struct dns_query {
	struct dns	*dns;
	dns_mx_cb	 mx_cb;
	void		*arg;
};

static void	dns_rearm(struct dns *);

const char *
dns_status_str(enum dns_status st)
{
	static const char *names[] = { "ok", "no such domain",
	    "no records", "null MX: the domain accepts no mail",
	    "temporary DNS failure" };
	return names[st];
}

static void
dns_io(evutil_socket_t fd, short what, void *arg)
{
	struct dns *d = arg;

	ares_process_fd(d->channel,
	    (what & EV_READ) ? fd : ARES_SOCKET_BAD,
	    (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	dns_rearm(d);
}

static void
dns_tick(evutil_socket_t fd, short what, void *arg)
{
	struct dns *d = arg;

	ares_process_fd(d->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_rearm(d);
}

/* Schedule the timer for c-ares' next timeout, if any query waits. */
static void
dns_rearm(struct dns *d)
{
	struct timeval max = { 5, 0 }, tv, *t;

	t = ares_timeout(d->channel, &max, &tv);
	evtimer_add(d->timer, t);
}

static void
dns_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns *d = data;
	int i, freeslot = -1;

	for (i = 0; i < DNS_SOCKETS_MAX; i++) {
		if (d->socks[i].ev && d->socks[i].fd == fd)
			break;
		if (!d->socks[i].ev && freeslot == -1)
			freeslot = i;
	}
	if (i < DNS_SOCKETS_MAX) {
		event_free(d->socks[i].ev);
		d->socks[i].ev = NULL;
	} else
		i = freeslot;
	if (!readable && !writable)
		return;
	if (i == -1) {
		log_warnx("dns: more than %d resolver sockets", DNS_SOCKETS_MAX);
		return;
	}
	d->socks[i].fd = fd;
	d->socks[i].ev = event_new(d->base, fd, EV_PERSIST |
	    (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0), dns_io, d);
	event_add(d->socks[i].ev, NULL);
}

struct dns *
dns_new(struct event_base *base, const char *resolver)
{
	struct dns *d = xcalloc(1, sizeof *d);
	struct ares_options opt;
	static int initialized;

	if (!initialized && ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS)
		fatalx("dns: cannot initialise c-ares");
	initialized = 1;
	memset(&opt, 0, sizeof opt);
	opt.sock_state_cb = dns_sock_state;
	opt.sock_state_cb_data = d;
	opt.timeout = 3000;		/* ms per try */
	opt.tries = 3;
	d->base = base;
	if (ares_init_options(&d->channel, &opt, ARES_OPT_SOCK_STATE_CB |
	    ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES) != ARES_SUCCESS)
		fatalx("dns: cannot create a resolver");
	if (resolver && *resolver &&
	    ares_set_servers_ports_csv(d->channel, resolver) != ARES_SUCCESS)
		fatalx("dns: bad resolver address '%s'", resolver);
	d->timer = evtimer_new(base, dns_tick, d);
	return d;
}

void
dns_free(struct dns *d)
{
	if (d == NULL)
		return;
	ares_destroy(d->channel);	/* runs pending callbacks (cancelled) */
	for (int i = 0; i < DNS_SOCKETS_MAX; i++)
		if (d->socks[i].ev)
			event_free(d->socks[i].ev);
	event_free(d->timer);
	free(d);
}

static enum dns_status
dns_map_error(int status)
{
	switch (status) {
	case ARES_SUCCESS:
		return DNS_OK;
	case ARES_ENOTFOUND:
		return DNS_NXDOMAIN;
	case ARES_ENODATA:
		return DNS_NODATA;
	default:
		return DNS_TEMPFAIL;
	}
}

void
dns_mx_order(struct dns_mx *mx, size_t n)
{
	/* Shuffle first, then a stable insertion sort by preference:
	 * equal preferences stay in random order. */
	for (size_t i = n; i > 1; i--) {
		size_t j = arc4random_uniform((uint32_t)i);
		struct dns_mx t = mx[i - 1];
		mx[i - 1] = mx[j];
		mx[j] = t;
	}
	for (size_t i = 1; i < n; i++) {
		struct dns_mx t = mx[i];
		size_t j = i;
		while (j > 0 && mx[j - 1].pref > t.pref) {
			mx[j] = mx[j - 1];
			j--;
		}
		mx[j] = t;
	}
}

static void
dns_mx_done(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_query *q = arg;
	struct ares_mx_reply *reply = NULL, *r;
	struct dns_mx mx[DNS_MX_MAX];
	size_t n = 0;
	enum dns_status st = dns_map_error(status);

	if (st == DNS_OK) {
		int prc = ares_parse_mx_reply(abuf, alen, &reply);
		if (prc != ARES_SUCCESS)
			st = prc == ARES_ENODATA ? DNS_NODATA : DNS_TEMPFAIL;
	}
	/* The DNS_MX_MAX most preferred, whatever the answer's order: a
	 * full table gives up its least preferred for a better one. */
	for (r = reply; st == DNS_OK && r; r = r->next) {
		size_t k = n;

		if (n == DNS_MX_MAX) {
			k = 0;
			for (size_t j = 1; j < n; j++)
				if (mx[j].pref > mx[k].pref)
					k = j;
			if (r->priority >= mx[k].pref)
				continue;
		} else
			n++;
		strlcpy(mx[k].host, r->host ? r->host : "", sizeof mx[k].host);
		mx[k].pref = r->priority;
	}
	if (reply)
		ares_free_data(reply);
	if (st == DNS_OK && n == 0)
		st = DNS_NODATA;
	/* RFC 7505: a single MX for the root with preference 0. */
	if (st == DNS_OK && n == 1 && (mx[0].host[0] == '\0' ||
	    strcmp(mx[0].host, ".") == 0))
		st = DNS_NULLMX;
	if (st == DNS_OK)
		dns_mx_order(mx, n);
	if (status != ARES_EDESTRUCTION)
		q->mx_cb(q->arg, st, mx, st == DNS_OK ? n : 0);
	free(q);
}

void
dns_lookup_mx(struct dns *d, const char *domain, dns_mx_cb cb, void *arg)
{
	struct dns_query *q = xcalloc(1, sizeof *q);

	q->dns = d;
	q->mx_cb = cb;
	q->arg = arg;
	ares_query(d->channel, domain, ns_c_in, ns_t_mx, dns_mx_done, q);
	dns_rearm(d);
}

/*
 * IPv6 and IPv4 are asked separately: ares_getaddrinfo with AF_UNSPEC
 * reports the status of whichever answer came last, so an AAAA "no
 * records" could hide an A lookup that timed out, and turn a passing
 * DNS failure into a permanent one (remote.c bounces a host without
 * addresses).
 */
struct dns_addr_query;

/* One family's question: what c-ares calls back with. */
struct dns_addr_half {
	struct dns_addr_query	*q;
	int			 k;		/* 0 IPv6, 1 IPv4 */
};

struct dns_addr_query {
	struct dns		*dns;
	dns_addr_cb		 cb;
	void			*arg;
	int			 pending;
	int			 cancelled;
	struct dns_addr_half	 half[2];
	enum dns_status		 st[2];
	struct dns_addr		 addrs[2][DNS_ADDR_MAX];
	size_t			 n[2];
};

static void
dns_addr_done(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
	struct dns_addr_half *h = arg;
	struct dns_addr_query *q = h->q;
	int k = h->k;
	struct dns_addr addrs[DNS_ADDR_MAX];
	enum dns_status st;
	size_t n = 0;

	q->st[k] = dns_map_error(status);
	if (status == ARES_EDESTRUCTION)
		q->cancelled = 1;
	for (struct ares_addrinfo_node *nd = ai ? ai->nodes : NULL;
	    q->st[k] == DNS_OK && nd && q->n[k] < DNS_ADDR_MAX;
	    nd = nd->ai_next) {
		if (nd->ai_family != (k == 0 ? AF_INET6 : AF_INET) ||
		    nd->ai_addrlen > sizeof q->addrs[k][0].ss)
			continue;
		memcpy(&q->addrs[k][q->n[k]].ss, nd->ai_addr, nd->ai_addrlen);
		q->addrs[k][q->n[k]].len = nd->ai_addrlen;
		q->n[k]++;
	}
	if (ai)
		ares_freeaddrinfo(ai);
	if (q->st[k] == DNS_OK && q->n[k] == 0)
		q->st[k] = DNS_NODATA;
	if (--q->pending > 0)
		return;
	/* IPv6 first, then IPv4 (RFC 6724 would refine this). */
	for (int j = 0; j < 2; j++)
		for (size_t i = 0; i < q->n[j] && n < DNS_ADDR_MAX; i++)
			addrs[n++] = q->addrs[j][i];
	if (n > 0)
		st = DNS_OK;
	else if (q->st[0] == DNS_NXDOMAIN || q->st[1] == DNS_NXDOMAIN)
		st = DNS_NXDOMAIN;	/* the name itself does not exist */
	else if (q->st[0] == DNS_NODATA && q->st[1] == DNS_NODATA)
		st = DNS_NODATA;	/* both said so */
	else
		st = DNS_TEMPFAIL;
	if (!q->cancelled)
		q->cb(q->arg, st, addrs, st == DNS_OK ? n : 0);
	free(q);
}

/* "localhost", or a name under it, with or without the final dot. */
static int
dns_is_localhost(const char *host)
{
	size_t len = strlen(host);

	if (len > 0 && host[len - 1] == '.')
		len--;
	if (len == 9)
		return strncasecmp(host, "localhost", 9) == 0;
	return len > 10 && strncasecmp(host + len - 10, ".localhost", 10) == 0;
}

/* RFC 6761 section 6.3: localhost names are the loopback addresses,
 * asked of no one (a smarthost "localhost:10025" is a filter on this
 * machine).  This also keeps such lookups away from c-ares 1.18, which
 * leaks a copy of the name on each of them. */
static void
dns_loopback(uint16_t port, dns_addr_cb cb, void *arg)
{
	struct dns_addr a[2];
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a[0].ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&a[1].ss;

	memset(a, 0, sizeof a);
	s6->sin6_family = AF_INET6;
	s6->sin6_addr = in6addr_loopback;
	s6->sin6_port = htons(port);
	a[0].len = sizeof *s6;
	s4->sin_family = AF_INET;
	s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s4->sin_port = htons(port);
	a[1].len = sizeof *s4;
	cb(arg, DNS_OK, a, 2);		/* IPv6 first, as for other names */
}

void
dns_lookup_addr(struct dns *d, const char *host, enum dns_name kind,
    uint16_t port, dns_addr_cb cb, void *arg)
{
	struct dns_addr_query *q;
	struct ares_addrinfo_hints hints;
	char service[8], fqdn[DNS_HOST_MAX + 2];
	size_t len = strlen(host);

	if (dns_is_localhost(host)) {
		dns_loopback(port, cb, arg);
		return;
	}
	q = xcalloc(1, sizeof *q);

	/* A final dot keeps c-ares from trying the name again with
	 * resolv.conf's search domains (or LOCALDOMAIN's) appended when
	 * it does not exist: mail for mx.example.com must never reach a
	 * host of the local network that answers to
	 * mx.example.com.corp.example.  (ARES_FLAG_NOSEARCH is not
	 * honoured by ares_getaddrinfo before c-ares 1.20.) */
	if (kind == DNS_ABSOLUTE && len > 0 && host[len - 1] != '.' &&
	    len + 1 < sizeof fqdn) {
		memcpy(fqdn, host, len);
		fqdn[len] = '.';
		fqdn[len + 1] = '\0';
		host = fqdn;
	}

	q->dns = d;
	q->cb = cb;
	q->arg = arg;
	q->pending = 2;
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = ARES_AI_NUMERICSERV;
	snprintf(service, sizeof service, "%u", port);
	for (int k = 0; k < 2; k++) {
		q->half[k].q = q;
		q->half[k].k = k;
		hints.ai_family = k == 0 ? AF_INET6 : AF_INET;
		/* The callback may run before this returns (a name c-ares
		 * refuses at once): q lives until both have. */
		ares_getaddrinfo(d->channel, host, service, &hints,
		    dns_addr_done, &q->half[k]);
	}
	dns_rearm(d);
}
