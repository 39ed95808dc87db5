/*
 * listener.c - listener roles and their defaults, service-name lookup,
 * and binding.  Runs in the master, which may be root so that ports below
 * 1024 can be bound before the workers drop privileges.
 */
#include "listen/listener.h"
#include "lib/strutil.h"
#include "lib/xalloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* What each role means by default (DESIGN.md "Parts", RFC 8314 for 465). */
static const struct role_default {
	const char	*name;
	const char	*service;
	uint16_t	 fallback_port;	/* when /etc/services lacks the name */
	enum auth_policy auth;
	enum tls_mode	 tls;
} role_defaults[] = {
	[ROLE_SMTP]        = { "smtp",        "smtp",        25,  AUTH_OPTIONAL, TLS_STARTTLS },
	[ROLE_SUBMISSION]  = { "submission",  "submission",  587, AUTH_REQUIRED, TLS_STARTTLS },
	[ROLE_SUBMISSIONS] = { "submissions", "submissions", 465, AUTH_REQUIRED, TLS_IMPLICIT },
	[ROLE_POP3]        = { "pop3",        "pop3",        110, AUTH_REQUIRED, TLS_STARTTLS },
	[ROLE_POP3S]       = { "pop3s",       "pop3s",       995, AUTH_REQUIRED, TLS_IMPLICIT },
};

/* Names some /etc/services files use for the same ports. */
static const struct { const char *name; uint16_t port; } builtin_services[] = {
	{ "smtp", 25 }, { "submission", 587 }, { "submissions", 465 },
	{ "smtps", 465 }, { "ssmtp", 465 }, { "urd", 465 },
	{ "pop3", 110 }, { "pop-3", 110 }, { "pop3s", 995 },
};

const char *
listen_role_name(enum listen_role r)
{
	return role_defaults[r].name;
}

int
listen_role_lookup(const char *s, enum listen_role *r)
{
	for (size_t i = 0; i < sizeof role_defaults / sizeof role_defaults[0]; i++)
		if (strcasecmp(s, role_defaults[i].name) == 0) {
			*r = (enum listen_role)i;
			return 0;
		}
	return -1;
}

int
listen_is_smtp(enum listen_role r)
{
	return r == ROLE_SMTP || r == ROLE_SUBMISSION || r == ROLE_SUBMISSIONS;
}

int
listen_service_port(const char *s, uint16_t *port)
{
	struct servent *se;
	char *end;
	unsigned long v;

	if (*s >= '0' && *s <= '9') {
		v = strtoul(s, &end, 10);
		if (*end != '\0' || v == 0 || v > 65535)
			return -1;
		*port = (uint16_t)v;
		return 0;
	}
	if ((se = getservbyname(s, "tcp")) != NULL) {
		*port = ntohs((uint16_t)se->s_port);
		return 0;
	}
	for (size_t i = 0; i < sizeof builtin_services / sizeof builtin_services[0]; i++)
		if (strcasecmp(s, builtin_services[i].name) == 0) {
			*port = builtin_services[i].port;
			return 0;
		}
	return -1;
}

/*
 * Wherever SMTP AUTH is offered, an authenticated session sends as its
 * user: the sender must be one of the user's own addresses, the
 * spoofing protection ISPs apply.  Port 25 too (AUTH optional there):
 * a stolen password must not send as anyone from it either.
 */
enum sender_check
listen_sender_check_default(const struct listen_conf *lc)
{
	return lc->auth != AUTH_OFF && listen_is_smtp(lc->role) ?
	    SENDER_CHECK_ENVELOPE : SENDER_CHECK_OFF;
}

void
listen_conf_defaults(struct listen_conf *lc, enum listen_role r)
{
	const struct role_default *d = &role_defaults[r];

	memset(lc, 0, sizeof *lc);
	lc->role = r;
	if (listen_service_port(d->service, &lc->port) == -1)
		lc->port = d->fallback_port;
	lc->auth = d->auth;
	lc->tls = d->tls;
	lc->cleartext_auth = CLEARTEXT_NEVER;
	lc->sender_check = listen_sender_check_default(lc);
}

static int
bind_one(const struct sockaddr *sa, socklen_t salen, int v6only, FILE *errf,
    const char *what)
{
	int fd, one = 1;

	if ((fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1) {
		if (errf)
			fprintf(errf, "listen %s: socket: %s\n", what,
			    strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (sa->sa_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
	/* A deep backlog so that a burst of connects is not dropped as SYNs;
	 * the kernel caps it at net.core.somaxconn. */
	if (bind(fd, sa, salen) == -1 || listen(fd, 4096) == -1) {
		if (errf)
			fprintf(errf, "listen %s: %s\n", what, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int
listener_bind_all(const struct listen_conf *lcs, size_t n,
    struct listener **out, FILE *errf)
{
	struct listener *ls = NULL;
	size_t nls = 0;

	for (size_t i = 0; i < n; i++) {
		const struct listen_conf *lc = &lcs[i];
		struct addrinfo hints, *res, *ai;
		char port[8];
		int rc, bound = 0;

		snprintf(port, sizeof port, "%u", lc->port);
		memset(&hints, 0, sizeof hints);
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
		if (lc->addr[0])
			hints.ai_flags |= AI_NUMERICHOST;
		rc = getaddrinfo(lc->addr[0] ? lc->addr : NULL, port, &hints, &res);
		if (rc != 0) {
			if (errf)
				fprintf(errf, "listen %s on %s: %s\n",
				    listen_role_name(lc->role), lc->addr,
				    gai_strerror(rc));
			goto fail;
		}
		for (ai = res; ai; ai = ai->ai_next) {
			char host[64], what[128];
			int fd;

			if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
				continue;
			getnameinfo(ai->ai_addr, ai->ai_addrlen, host, sizeof host,
			    NULL, 0, NI_NUMERICHOST);
			snprintf(what, sizeof what, "%s %s%s%s:%u",
			    listen_role_name(lc->role),
			    ai->ai_family == AF_INET6 ? "[" : "", host,
			    ai->ai_family == AF_INET6 ? "]" : "", lc->port);
			fd = bind_one(ai->ai_addr, ai->ai_addrlen, 1,
			    /* a wildcard may lack one family; say nothing */
			    lc->addr[0] ? errf : NULL, what);
			if (fd == -1) {
				if (lc->addr[0]) {
					freeaddrinfo(res);
					goto fail;
				}
				continue;
			}
			ls = xreallocarray(ls, nls + 1, sizeof *ls);
			ls[nls].conf = lc;
			ls[nls].fd = fd;
			strlcpy(ls[nls].name, what, sizeof ls[nls].name);
			nls++;
			bound++;
		}
		freeaddrinfo(res);
		if (bound == 0) {
			if (errf)
				fprintf(errf, "listen %s port %u: could not bind "
				    "any address: %s\n", listen_role_name(lc->role),
				    lc->port, strerror(errno));
			goto fail;
		}
	}
	*out = ls;
	return (int)nls;
fail:
	for (size_t i = 0; i < nls; i++)
		close(ls[i].fd);
	free(ls);
	return -1;
}
