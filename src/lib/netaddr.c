/* netaddr.c - address prefixes and socket address formatting. */
#include "lib/netaddr.h"
#include "lib/strutil.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

int
netprefix_parse(const char *s, struct netprefix *p)
{
	char tmp[64], *slash, *end, *host = tmp;
	unsigned long bits;
	size_t hl;

	if (strlcpy(tmp, s, sizeof tmp) >= sizeof tmp)
		return -1;
	memset(p, 0, sizeof *p);
	if ((slash = strchr(tmp, '/')) != NULL)
		*slash++ = '\0';
	hl = strlen(host);
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
		host[hl - 1] = '\0';
		host++;
	}
	if (inet_pton(AF_INET, host, p->addr) == 1) {
		p->family = AF_INET;
		p->bits = 32;
	} else if (inet_pton(AF_INET6, host, p->addr) == 1) {
		p->family = AF_INET6;
		p->bits = 128;
	} else
		return -1;
	if (slash) {
		/* Digits only: strtoul would also skip blanks and take a
		 * sign. */
		if (!isdigit((unsigned char)*slash))
			return -1;
		bits = strtoul(slash, &end, 10);
		if (*end != '\0' || bits > p->bits)
			return -1;
		p->bits = (unsigned)bits;
	}
	return 0;
}

static int
prefix_bytes_match(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned full = bits / 8, rest = bits % 8;

	if (memcmp(a, b, full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	return ((a[full] ^ b[full]) & (0xff << (8 - rest))) == 0;
}

int
netprefix_host_bits(const struct netprefix *np, struct netprefix *masked)
{
	unsigned len = np->family == AF_INET ? 4 : 16;

	*masked = *np;
	for (unsigned i = 0; i < len; i++) {
		unsigned keep = np->bits >= (i + 1) * 8 ? 8 :
		    np->bits > i * 8 ? np->bits - i * 8 : 0;

		masked->addr[i] &= keep ? (uint8_t)(0xff << (8 - keep)) : 0;
	}
	return memcmp(masked->addr, np->addr, len) != 0;
}

void
netprefix_unmap(struct netprefix *np)
{
	static const uint8_t mapped[12] = { 0,0,0,0,0,0,0,0,0,0,0xff,0xff };

	if (np->family == AF_INET6 && np->bits >= 96 &&
	    memcmp(np->addr, mapped, sizeof mapped) == 0) {
		memmove(np->addr, np->addr + 12, 4);
		memset(np->addr + 4, 0, 12);
		np->family = AF_INET;
		np->bits -= 96;
	}
}

void
netprefix_format(const struct netprefix *np, char *dst, size_t dstsz)
{
	char host[INET6_ADDRSTRLEN];

	inet_ntop(np->family, np->addr, host, sizeof host);
	if (np->bits == (np->family == AF_INET ? 32u : 128u))
		snprintf(dst, dstsz, "%s", host);
	else
		snprintf(dst, dstsz, "%s/%u", host, np->bits);
}

int
netprefix_match(const struct netprefix *p, const struct sockaddr *sa)
{
	static const uint8_t mapped[12] = { 0,0,0,0,0,0,0,0,0,0,0xff,0xff };
	const uint8_t *a;

	if (sa->sa_family == AF_INET) {
		if (p->family != AF_INET)
			return 0;
		a = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
		return prefix_bytes_match(a, p->addr, p->bits);
	}
	if (sa->sa_family != AF_INET6)
		return 0;
	a = (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
	if (p->family == AF_INET6)
		return prefix_bytes_match(a, p->addr, p->bits);
	if (memcmp(a, mapped, sizeof mapped) == 0)
		return prefix_bytes_match(a + 12, p->addr, p->bits);
	return 0;
}

int
netprefix_match_list(const struct netprefix *list, size_t n,
    const struct sockaddr *sa)
{
	for (size_t i = 0; i < n; i++)
		if (netprefix_match(&list[i], sa))
			return 1;
	return 0;
}

void
sockaddr_format(const struct sockaddr *sa, char *host, size_t hostsz,
    unsigned *port)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;
		inet_ntop(AF_INET, &in->sin_addr, host, (socklen_t)hostsz);
		if (port)
			*port = ntohs(in->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, (socklen_t)hostsz);
		if (port)
			*port = ntohs(in6->sin6_port);
	} else {
		strlcpy(host, "local", hostsz);
		if (port)
			*port = 0;
	}
}

void
sockname_format(int fd, char *host, size_t hostsz)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;

	host[0] = '\0';
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0 &&
	    (ss.ss_family == AF_INET || ss.ss_family == AF_INET6))
		sockaddr_format((struct sockaddr *)&ss, host, hostsz, NULL);
}

int
sockaddr_is_loopback(const struct sockaddr *sa)
{
	static struct netprefix lo4 = { AF_INET, { 127 }, 8 };
	static struct netprefix lo6 = { AF_INET6,
	    { 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1 }, 128 };

	return netprefix_match(&lo4, sa) || netprefix_match(&lo6, sa);
}

socklen_t
sockaddr_numeric(const char *host, uint16_t port, struct sockaddr_storage *ss)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof *ss);
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		return sizeof *sin;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		return sizeof *sin6;
	}
	return 0;
}
