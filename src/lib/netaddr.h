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
/* 1 if bits past the prefix length are set ("10.1.2.3/16": a typo for
 * /24 or /32, which would take in far more than meant); *masked gets
 * the prefix with them cleared, to suggest. */
int	netprefix_host_bits(const struct netprefix *, struct netprefix *masked);
/* ::ffff:a.b.c.d/n (n >= 96) into the IPv4 prefix it means: peers come
 * as IPv4, and the mapped form would never match them. */
void	netprefix_unmap(struct netprefix *);
/* "192.0.2.0/24", or the address alone for a full-length prefix. */
void	netprefix_format(const struct netprefix *, char *dst, size_t dstsz);
int	netprefix_match(const struct netprefix *, const struct sockaddr *);
int	netprefix_match_list(const struct netprefix *, size_t,
	    const struct sockaddr *);
/* Numeric host and port of a socket address, for logs and Received:. */
void	sockaddr_format(const struct sockaddr *, char *host, size_t hostsz,
	    unsigned *port);
/* The numeric address a connected socket's peer reached it at (its
 * local address); "" if it cannot be known. */
void	sockname_format(int fd, char *host, size_t hostsz);
int	sockaddr_is_loopback(const struct sockaddr *);
/* A numeric IPv4 or IPv6 address (no brackets) and a port into ss: its
 * length, or 0 if host is not such an address. */
socklen_t sockaddr_numeric(const char *host, uint16_t port,
	    struct sockaddr_storage *ss);

#endif
