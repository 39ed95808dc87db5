/*
 * client_key.h - the unit a per-client limit counts: one IPv4 address,
 * or one IPv6 /64 (a single host usually holds a whole /64, so counting
 * single IPv6 addresses would be no limit at all).  IPv4-mapped IPv6
 * addresses count as the IPv4 address.
 */
#ifndef POSTERN_CLIENT_KEY_H
#define POSTERN_CLIENT_KEY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define CLIENT_KEY_LEN	16

/* 16 octets: the IPv4 address as ::ffff:a.b.c.d, or the IPv6 /64
 * followed by zeros.  -1 for other address families (unix sockets). */
int	client_key(const struct sockaddr *, uint8_t key[CLIENT_KEY_LEN]);
/* The same as text, for rate-limit keys and logs: "192.0.2.7",
 * "2001:db8:1:2::/64". */
int	client_key_format(const struct sockaddr *, char *dst, size_t dstsz);

#endif
