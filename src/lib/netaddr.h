/*
 * netaddr.h - IPv4/IPv6 addresses and CIDR prefixes (mynetworks, access
 * maps).  IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) match IPv4 prefixes.
 */
#ifndef POSTERN_NETADDR_H
#define POSTERN_NETADDR_H

#include <stdint.h>
#include <sys/socket.h>

struct netprefix {
	int		family;		/* AF_INET or AF_INET6 */
	uint8_t		addr[16];
	unsigned	bits;
};

/* "192.0.2.0/24", "::1", "[2001:db8::]/32" -> 0, or -1 if malformed. */
int	netprefix_parse(const char *, struct netprefix *);
int	netprefix_match(const struct netprefix *, const struct sockaddr *);
int	netprefix_match_list(const struct netprefix *, size_t,
	    const struct sockaddr *);
/* Numeric host and port of a socket address, for logs and Received:. */
void	sockaddr_format(const struct sockaddr *, char *host, size_t hostsz,
	    unsigned *port);
int	sockaddr_is_loopback(const struct sockaddr *);
/* A numeric IPv4 or IPv6 address (no brackets) and a port into ss: its
 * length, or 0 if host is not such an address. */
socklen_t sockaddr_numeric(const char *host, uint16_t port,
	    struct sockaddr_storage *ss);

#endif
