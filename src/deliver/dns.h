/*
 * dns.h - asynchronous DNS for remote delivery (c-ares on the queue
 * manager's event loop): MX records in delivery order (RFC 5321 section
 * 5.1: by preference, random among equals), null MX (RFC 7505), and the
 * A/AAAA addresses of a host.
 */
#ifndef POSTERN_DNS_H
#define POSTERN_DNS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct event_base;
struct dns;

enum dns_status {
	DNS_OK,
	DNS_NXDOMAIN,	/* the name does not exist: permanent */
	DNS_NODATA,	/* the name exists, no records of that type */
	DNS_NULLMX,	/* "MX 0 .": the domain takes no mail (permanent) */
	DNS_TEMPFAIL,	/* timeout, SERVFAIL, refused: try later */
};

#define DNS_MX_MAX	16
/* Resolver sockets watched at once, at most (the queue manager counts
 * them among its open files: queue/qlimit.c). */
#define DNS_SOCKETS_MAX	16
#define DNS_ADDR_MAX	16
#define DNS_HOST_MAX	255	/* octets of a name, RFC 1035 section 2.3.4 */

struct dns_mx {
	char		host[DNS_HOST_MAX + 1];
	unsigned	pref;
};

struct dns_addr {
	struct sockaddr_storage	ss;
	socklen_t		len;
};

typedef void (*dns_mx_cb)(void *arg, enum dns_status, const struct dns_mx *,
	    size_t n);
typedef void (*dns_addr_cb)(void *arg, enum dns_status,
	    const struct dns_addr *, size_t n);

/* resolver: "" for /etc/resolv.conf, else "ADDR[:PORT]" or "[V6]:PORT". */
struct dns	*dns_new(struct event_base *, const char *resolver);
void		 dns_free(struct dns *);
const char	*dns_status_str(enum dns_status);
void		 dns_lookup_mx(struct dns *, const char *domain, dns_mx_cb,
		    void *arg);
/* IPv6 and IPv4 addresses of host, with port filled in ("localhost"
 * and names under it: ::1 and 127.0.0.1, RFC 6761; cb may then run
 * before this returns, as for any name c-ares answers at once).
 * DNS_ABSOLUTE:
 * host came from the DNS (an MX host, a mail domain) and is looked up
 * as it stands; DNS_CONFIGURED: a name from the configuration, which
 * may rely on /etc/hosts or resolv.conf's search list, as any
 * program's host names do. */
enum dns_name { DNS_ABSOLUTE, DNS_CONFIGURED };
void		 dns_lookup_addr(struct dns *, const char *host, enum dns_name,
		    uint16_t port, dns_addr_cb, void *arg);
/* Sort MX records into delivery order (exposed for unit tests). */
void		 dns_mx_order(struct dns_mx *, size_t n);

#endif
