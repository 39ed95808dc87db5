/*
 * conf_parse.c - postern.conf(5): one directive a line, '#' comments.
 * A sorted keyword table maps each directive to its handler; every error
 * is reported as "FILE:LINE: what is wrong" and parsing goes on so that
 * the administrator sees all of them at once.  Runs in the master only.
 */
#include "auth/userdb.h"
#include "conf/conf.h"
#include "conf/conf_lex.h"
#include "lib/fsio.h"
#include "lib/strutil.h"
#include "lib/xalloc.h"
#include "sasl/sasl.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

struct conf_ctx {
	const char	*name;
	int		 line;
	int		 nerr;
	FILE		*errf;
};

static void __attribute__((format(printf, 2, 3)))
conf_error(struct conf_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	ctx->nerr++;
	if (ctx->errf == NULL)
		return;
	fprintf(ctx->errf, "%s:%d: ", ctx->name, ctx->line);
	va_start(ap, fmt);
	vfprintf(ctx->errf, fmt, ap);
	va_end(ap);
	fputc('\n', ctx->errf);
}

static int	conf_uint(struct conf_ctx *, const char *, const char *, unsigned,
		    unsigned, unsigned *);

typedef void (*conf_handler)(struct conf_ctx *, struct conf *, char **, size_t);

static int
copy_path(struct conf_ctx *ctx, char *dst, size_t dstsz, const char *kw,
    const char *v)
{
	if (v[0] != '/') {
		conf_error(ctx, "%s: '%s' is not an absolute path", kw, v);
		return -1;
	}
	if (strlcpy(dst, v, dstsz) >= dstsz) {
		conf_error(ctx, "%s: path too long", kw);
		return -1;
	}
	return 0;
}

/* RFC 1035 host name syntax, as RFC 5321 section 4.1.2 requires. */
static int
valid_domain(const char *d)
{
	size_t len = strlen(d), label = 0;

	if (len == 0 || len > 253 || d[0] == '.' || d[len - 1] == '.')
		return 0;
	for (const char *p = d; *p; p++) {
		if (*p == '.') {
			if (label == 0 || p[-1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)*p) && *p != '-')
			return 0;
		if (label == 0 && *p == '-')
			return 0;
		if (++label > 63)
			return 0;
	}
	return 1;
}

static void
kw_access(struct conf_ctx *ctx, struct conf *c, char **av, size_t ac)
{
	copy_path(ctx, c->access, sizeof c->access, av[0], av[1]);
}

static void
kw_admin(struct conf_ctx *ctx, struct conf *c, char **av, size_t ac)
{
	/* A local user name (the users file's syntax), not an address. */
	if (strlen(av[1]) >= sizeof c->admin || !userdb_name_valid(av[1]))
		conf_error(ctx, "admin: '%s' is not a local user name", av[1]);
	else
		strlcpy(c->admin, av[1], sizeof c->admin);
}

static void
kw_aliases(struct conf_ctx *ctx, struct conf *c, char **av, size_t ac)
{
	copy_path(ctx, c->aliases, sizeof c->aliases, av[0], av[1]);
}

/* The queue's durations: 1 second (tests) up to a year. */
static void
conf_queue_duration(struct conf_ctx *ctx, const char *kw, const char *v,
    int zero_ok, uint64_t *out)
{
	uint64_t d;

	if (parse_duration(v, &d) == -1 || (d == 0 && !zero_ok) ||
	    d > 366 * 86400ULL)
		conf_error(ctx, "%s: '%s' is not a duration from %s to 366d "
		    "(like 5m)", kw, v, zero_ok ? "0" : "1s");
	else
		*out = d;
}

static void
kw_delay_warning(struct conf_ctx *ctx, struct conf *c, char **av, size_t ac)
{
	conf_queue_duration(ctx, av[0], av[1], 1, &c->delay_warning);
}

static void
kw_auth_mechanisms(struct conf_ctx *ctx, struct conf *c, char **av, size_t ac)
{
	c->auth_mechanisms = 0;
	for (size_t i = 1; i < ac; i++) {
		const struct sasl_mech *m = sasl_mech_lookup(av[i]);

		if (m == NULL)
			conf_error(ctx, "auth-mechanisms: unknown mechanism '%s' "
			    "(PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-256, DIGEST-MD5)",
			    av[i]);
		else
			c->auth_mechanisms |= 1u << m->id;
	}
}

static void
kw_auth_throttle(struct conf_ctx *ctx, struct conf *c, char **av, size_t ac)
{
	/* auth-throttle FAILURES BLOCK-TIME */
	if (conf_uint(ctx, av[0], av[1], 1, 10000, &c->auth_max_failures) == 0 &&
	    (parse_duration(av[2], &c->auth_block_time) == -1 ||
	    c->auth_block_time == 0 || c->auth_block_time > 86400))
		conf_error(ctx, "auth-throttle: '%s' is not a duration from 1s "
		    "to 1d", av[2]);
}

static void
kw_domains(struct conf_ctx *ctx, struct conf *c, char **av, size_t ac)
{
	for (size_t i = 1; i < ac; i++) {
		char *d = av[i];

		if (!valid_domain(d)) {
			conf_error(ctx, "domains: '%s' is not a valid domain", d);
			continue;
		}
		str_lower(d);
		if (conf_is_local_domain(c, d))
			continue;
		c->domains = xreallocarray(c->domains, c->ndomains + 1,
		    sizeof *c->domains);
		c->domains[c->ndomains++] = xstrdup(d);
	}
}

static void
kw_hostname(struct conf_ctx *ctx, struct conf *c, char **av, size_t ac)
{
	if (!valid_domain(av[1]))
		conf_error(ctx, "hostname: '%s' is not a valid host name", av[1]);
	else
		strlcpy(c->hostname, av[1], sizeof c->hostname);
}

static void
kw_listen(struct conf_ctx *ctx, struct conf *c, char **av, size_t ac)
{
	struct listen_conf lc;
	enum listen_role role;
	size_t i;
	int sender_check_given;

	if (listen_role_lookup(av[1], &role) == -1) {
		conf_error(ctx, "listen: unknown role '%s' (smtp, submission, "
		    "submissions, pop3, pop3s)", av[1]);
		return;
	}
	listen_conf_defaults(&lc, role);
	lc.line = ctx->line;
	sender_check_given = 0;
	for (i = 2; i < ac; i++) {
		const char *opt = av[i], *val = i + 1 < ac ? av[i + 1] : NULL;

		if (val == NULL) {
			conf_error(ctx, "listen: '%s' needs a value", opt);
			return;
		}
		i++;
		if (strcmp(opt, "on") == 0) {
			struct netprefix np;
			if (strcmp(val, "*") == 0)
				lc.addr[0] = '\0';
			else if (netprefix_parse(val, &np) == -1 ||
			    strchr(val, '/') != NULL) {
				conf_error(ctx, "listen: '%s' is not an IPv4 or "
				    "IPv6 address", val);
				return;
			} else {
				size_t vl = strlen(val);
				/* accept [::1] as well as ::1 */
				if (val[0] == '[' && vl > 2) {
					memcpy(lc.addr, val + 1, vl - 2);
					lc.addr[vl - 2] = '\0';
				} else
					strlcpy(lc.addr, val, sizeof lc.addr);
			}
		} else if (strcmp(opt, "port") == 0) {
			if (listen_service_port(val, &lc.port) == -1) {
				conf_error(ctx, "listen: '%s' is neither a port "
				    "number nor a service in /etc/services", val);
				return;
			}
		} else if ((strcmp(opt, "auth") == 0 ||
		    strcmp(opt, "sender-check") == 0) &&
		    (role == ROLE_POP3 || role == ROLE_POP3S)) {
			/* Said and ignored, it would look like a change. */
			conf_error(ctx, "listen: '%s' is for SMTP listeners; "
			    "a POP3 session always needs a login", opt);
			return;
		} else if (strcmp(opt, "auth") == 0) {
			if (strcmp(val, "required") == 0)
				lc.auth = AUTH_REQUIRED;
			else if (strcmp(val, "optional") == 0)
				lc.auth = AUTH_OPTIONAL;
			else if (strcmp(val, "off") == 0)
				lc.auth = AUTH_OFF;
			else {
				conf_error(ctx, "listen: auth must be required, "
				    "optional or off, not '%s'", val);
				return;
			}
		} else if (strcmp(opt, "tls") == 0) {
			if (strcmp(val, "starttls") == 0)
				lc.tls = TLS_STARTTLS;
			else if (strcmp(val, "implicit") == 0)
				lc.tls = TLS_IMPLICIT;
			else if (strcmp(val, "off") == 0)
				lc.tls = TLS_NONE;
			else {
				conf_error(ctx, "listen: tls must be starttls, "
				    "implicit or off, not '%s'", val);
				return;
			}
		} else if (strcmp(opt, "cleartext-auth") == 0) {
			if (strcmp(val, "never") == 0)
				lc.cleartext_auth = CLEARTEXT_NEVER;
			else if (strcmp(val, "loopback") == 0)
				lc.cleartext_auth = CLEARTEXT_LOOPBACK;
			else {
				conf_error(ctx, "listen: cleartext-auth must be "
				    "never or loopback, not '%s'", val);
				return;
			}
		} else if (strcmp(opt, "sender-check") == 0) {
			sender_check_given = 1;
			if (strcmp(val, "off") == 0)
				lc.sender_check = SENDER_CHECK_OFF;
			else if (strcmp(val, "envelope") == 0)
				lc.sender_check = SENDER_CHECK_ENVELOPE;
			else if (strcmp(val, "header") == 0)
				lc.sender_check = SENDER_CHECK_HEADER;
			else {
				conf_error(ctx, "listen: sender-check must be off, "
				    "envelope or header, not '%s'", val);
				return;
			}
		} else {
			conf_error(ctx, "listen: unknown option '%s' (on, port, "
			    "auth, tls, cleartext-auth, sender-check)", opt);
			return;
		}
	}
	/* Unless the line says, from the auth the line ended with
	 * ("listen smtp ... auth required" is checked like 587). */
	if (!sender_check_given)
		lc.sender_check = listen_sender_check_default(&lc);
	for (i = 0; i < c->nlisteners; i++)
		if (c->listeners[i].port == lc.port &&
		    (strcmp(c->listeners[i].addr, lc.addr) == 0 ||
		    !c->listeners[i].addr[0] || !lc.addr[0])) {
			conf_error(ctx, "listen: port %u is already used by the "
			    "listener on line %d", lc.port, c->listeners[i].line);
			return;
		}
	c->listeners = xreallocarray(c->listeners, c->nlisteners + 1,
	    sizeof *c->listeners);
	c->listeners[c->nlisteners++] = lc;
}

static void
kw_log(struct conf_ctx *ctx, struct conf *c, char **av, size_t ac)
{
	if (strcmp(av[1], "syslog") == 0)
		c->log_syslog = 1;
	else if (strcmp(av[1], "stderr") == 0)
		c->log_syslog = 0;
	else
		conf_error(ctx, "log: must be syslog or stderr, not '%s'", av[1]);
}

static void
kw_mailboxes(struct conf_ctx *ctx, struct conf *c, char **av, size_t ac)
{
	copy_path(ctx, c->mailboxes, sizeof c->mailboxes, av[0], av[1]);
}

static int
conf_uint(struct conf_ctx *ctx, const char *kw, const char *v, unsigned min,
    unsigned max, unsigned *out)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(v, &end, 10);
	if (!isdigit((unsigned char)*v) || *end || errno || n < min || n > max) {
		conf_error(ctx, "%s: '%s' is not a number from %u to %u",
		    kw, v, min, max);
		return -1;
	}
	*out = (unsigned)n;
	return 0;
}

static void
kw_hop_limit(struct conf_ctx *ctx, struct conf *c, char **av, size_t ac)
{
	conf_uint(ctx, av[0], av[1], 1, 1000, &c->hop_limit);
}

static void
kw_max_errors(struct conf_ctx *ctx, struct conf *c, char **av, size_t ac)
{
	conf_uint(ctx, av[0], av[1], 1, 1000, &c->max_errors);
}

static void
kw_max_recipients(struct conf_ctx *ctx, struct conf *c, char **av, size_t ac)
{
	conf_uint(ctx, av[0], av[1], 1, 100000, &c->max_recipients);
}

static void
kw_max_sessions(struct conf_ctx *ctx, struct conf *c, char **av, size_t ac)
{
	conf_uint(ctx, av[0], av[1], 1, 1000000, &c->max_sessions);
}

static void
kw_max_connections_per_ip(struct conf_ctx *ctx, struct conf *c, char **av,
    size_t ac)
{
	conf_uint(ctx, av[0], av[1], 0, 1000000, &c->max_connections_per_ip);
}

/* user-rate-limit MESSAGES RECIPIENTS (per hour; 0 0 turns it off) */
static void
kw_user_rate_limit(struct conf_ctx *ctx, struct conf *c, char **av, size_t ac)
{
	if (conf_uint(ctx, av[0], av[1], 0, 10000000,
	    &c->user_rate_limit_messages) == 0)
		conf_uint(ctx, av[0], av[2], 0, 10000000,
		    &c->user_rate_limit_recipients);
}

static void
kw_ip_rate_limit(struct conf_ctx *ctx, struct conf *c, char **av, size_t ac)
{
	conf_uint(ctx, av[0], av[1], 0, 10000000, &c->ip_rate_limit);
}

static void
kw_message_size_limit(struct conf_ctx *ctx, struct conf *c, char **av,
    size_t ac)
{
	uint64_t v;

	/* Far below SIZE_MAX so size arithmetic can never overflow. */
	if (parse_size(av[1], &v) == -1 || v < 1024 || v > (1ULL << 40))
		conf_error(ctx, "message-size-limit: '%s' is not a size from "
		    "1k to 1024G (like 10M)", av[1]);
	else
		c->message_size_limit = v;
}

static void
kw_mynetworks(struct conf_ctx *ctx, struct conf *c, char **av, size_t ac)
{
	for (size_t i = 1; i < ac; i++) {
		struct netprefix np, masked;
		char want[64];

		if (netprefix_parse(av[i], &np) == -1) {
			conf_error(ctx, "mynetworks: '%s' is not an address or "
			    "prefix like 192.0.2.0/24 or 2001:db8::/32", av[i]);
			continue;
		}
		/* Relay is open to these: a typo must not open it wider
		 * ("192.168.1.0/2" for /24), as the access map refuses. */
		if (netprefix_host_bits(&np, &masked)) {
			netprefix_format(&masked, want, sizeof want);
			conf_error(ctx, "mynetworks: '%s' has bits set after the "
			    "prefix length; did you mean %s?", av[i], want);
			continue;
		}
		netprefix_unmap(&np);
		c->mynetworks = xreallocarray(c->mynetworks, c->nmynetworks + 1,
		    sizeof *c->mynetworks);
		c->mynetworks[c->nmynetworks++] = np;
	}
}

/* pop-before-smtp DURATION [ipv6-prefix BITS] */
static void
kw_pam_service(struct conf_ctx *ctx, struct conf *c, char **av, size_t ac)
{
	if (strlcpy(c->pam_service, av[1], sizeof c->pam_service) >=
	    sizeof c->pam_service || strchr(av[1], '/') != NULL)
		conf_error(ctx, "pam-service: '%s' is not a PAM service name",
		    av[1]);
}

static void
kw_pop_before_smtp(struct conf_ctx *ctx, struct conf *c, char **av, size_t ac)
{
	if (parse_duration(av[1], &c->pop_before_smtp) == -1)
		conf_error(ctx, "pop-before-smtp: '%s' is not a duration "
		    "(like 15m)", av[1]);
	else if (c->pop_before_smtp > 7 * 86400)
		/* A grant is a relay opened for an address: hours at most;
		 * the shared store and the time arithmetic want it small. */
		conf_error(ctx, "pop-before-smtp: '%s' is more than 7 days",
		    av[1]);
	if (ac == 3 || (ac == 4 && strcmp(av[2], "ipv6-prefix") != 0))
		conf_error(ctx, "pop-before-smtp: expected 'pop-before-smtp "
		    "DURATION [ipv6-prefix BITS]'");
	else if (ac == 4)
		conf_uint(ctx, "pop-before-smtp ipv6-prefix", av[3], 16, 128,
		    &c->pop_before_smtp_ipv6_prefix);
}

static void
kw_apop(struct conf_ctx *ctx, struct conf *c, char **av, size_t ac)
{
	if (strcmp(av[1], "on") == 0)
		c->apop = 1;
	else if (strcmp(av[1], "off") == 0)
		c->apop = 0;
	else
		conf_error(ctx, "apop: must be on or off, not '%s'", av[1]);
}

static void
kw_queue_lifetime(struct conf_ctx *ctx, struct conf *c, char **av, size_t ac)
{
	conf_queue_duration(ctx, av[0], av[1], 0, &c->queue_lifetime);
}

static void
kw_queue_manager(struct conf_ctx *ctx, struct conf *c, char **av, size_t ac)
{
	if (strcmp(av[1], "on") == 0)
		c->queue_manager = 1;
	else if (strcmp(av[1], "off") == 0)
		c->queue_manager = 0;
	else
		conf_error(ctx, "queue-manager: must be on or off, not '%s'",
		    av[1]);
}

static void
kw_queue_managers(struct conf_ctx *ctx, struct conf *c, char **av, size_t ac)
{
	conf_uint(ctx, av[0], av[1], 1, 64, &c->queue_managers);
}

static void
kw_queue_passes(struct conf_ctx *ctx, struct conf *c, char **av, size_t ac)
{
	conf_uint(ctx, av[0], av[1], 1, 64, &c->queue_passes);
}

/* "2001:db8::10" as a host: its last ':' would be taken for the port's. */
static int
bare_ipv6(const char *hostport)
{
	const char *first = strchr(hostport, ':');

	return hostport[0] != '[' && first != NULL && strchr(first + 1, ':');
}

/*
 * The server of "relay via" and "submit via": HOST, HOST:PORT,
 * HOST:SERVICE, [ADDRESS] or [ADDRESS]:PORT.  The host is stored
 * without its brackets, and *bracketed says it had them: remote
 * delivery then uses it as an address, without DNS (the effective
 * settings print them again).  A '[' without its ']' is an error: read
 * as HOST:PORT it would be a host "[2001:db8:" that no lookup finds.
 */
static int
via_hostport(struct conf_ctx *ctx, const char *what, char *s,
    uint16_t defport, char *host, size_t hostsz, uint16_t *port,
    int *bracketed)
{
	char *rest, *colon;

	*bracketed = s[0] == '[';
	if (bare_ipv6(s)) {
		conf_error(ctx, "%s: write an IPv6 address in brackets, "
		    "[%s] or [ADDRESS]:PORT", what, s);
		return -1;
	}
	if (s[0] == '[') {
		if ((rest = strchr(s, ']')) == NULL) {
			conf_error(ctx, "%s: '%s' has no closing ']'", what, s);
			return -1;
		}
		if (rest[1] != '\0' && rest[1] != ':') {
			conf_error(ctx, "%s: '%s': only ':PORT' may follow "
			    "']'", what, s);
			return -1;
		}
		*rest++ = '\0';
		colon = *rest == ':' ? rest : NULL;
		s++;
	} else
		colon = strrchr(s, ':');
	*port = defport;
	if (colon) {
		*colon = '\0';
		if (listen_service_port(colon + 1, port) == -1) {
			conf_error(ctx, "%s: '%s' is neither a port nor a "
			    "service in /etc/services", what, colon + 1);
			return -1;
		}
	}
	if (!s[0] || strchr(s, '[') || strchr(s, ']') ||
	    strlcpy(host, s, hostsz) >= hostsz) {
		conf_error(ctx, "%s: bad host", what);
		host[0] = '\0';
		return -1;
	}
	return 0;
}

static void
kw_relay(struct conf_ctx *ctx, struct conf *c, char **av, size_t ac)
{
	struct relay_rule r;
	size_t i = 1;

	memset(&r, 0, sizeof r);
	r.line = ctx->line;
	if (i + 1 < ac && strcmp(av[i], "for") == 0) {
		if (!valid_domain(av[i + 1])) {
			conf_error(ctx, "relay for: '%s' is not a domain",
			    av[i + 1]);
			return;
		}
		strlcpy(r.domain, av[i + 1], sizeof r.domain);
		str_lower(r.domain);
		i += 2;
	}
	if (i < ac && strcmp(av[i], "direct") == 0) {
		r.direct = 1;
		i++;
	} else if (i + 1 < ac && strcmp(av[i], "via") == 0) {
		if (via_hostport(ctx, "relay via", av[i + 1], 25, r.host,
		    sizeof r.host, &r.port, &r.bracketed) == -1)
			return;
		i += 2;
	} else {
		conf_error(ctx, "relay: expected '[for DOMAIN] direct' or "
		    "'[for DOMAIN] via HOST[:PORT] [tls implicit] [tls verify] "
		    "[tls ca FILE] [auth FILE]'");
		return;
	}
	while (i < ac) {
		if (i + 1 < ac && strcmp(av[i], "tls") == 0 &&
		    strcmp(av[i + 1], "ca") == 0) {
			if (i + 2 == ac) {
				conf_error(ctx, "relay: 'tls ca' needs a FILE");
				return;
			}
			/* Trusting a named CA only makes sense when verifying. */
			if (copy_path(ctx, r.tls_ca, sizeof r.tls_ca,
			    "relay tls ca", av[i + 2]) == -1)
				return;
			r.tls_verify = 1;
			i += 3;
			continue;
		}
		if (i + 1 < ac && strcmp(av[i], "tls") == 0 &&
		    strcmp(av[i + 1], "verify") == 0)
			r.tls_verify = 1;
		else if (i + 1 < ac && strcmp(av[i], "tls") == 0 &&
		    strcmp(av[i + 1], "implicit") == 0 && !r.direct)
			r.tls_implicit = 1;
		else if (i + 1 < ac && strcmp(av[i], "auth") == 0 && !r.direct) {
			if (copy_path(ctx, r.auth_file, sizeof r.auth_file,
			    "relay auth", av[i + 1]) == -1)
				return;
		} else {
			conf_error(ctx, "relay: unexpected '%s'", av[i]);
			return;
		}
		i += 2;
	}
	/* The last rule for a domain (or the default) wins; the default
	 * stays first so lookups can fall back to it. */
	for (size_t k = 0; k < c->nrelay_rules; k++)
		if (strcmp(c->relay_rules[k].domain, r.domain) == 0) {
			c->relay_rules[k] = r;
			return;
		}
	c->relay_rules = xreallocarray(c->relay_rules, c->nrelay_rules + 1,
	    sizeof *c->relay_rules);
	c->relay_rules[c->nrelay_rules++] = r;
}

static void
kw_remote_connect_timeout(struct conf_ctx *ctx, struct conf *c, char **av,
    size_t ac)
{
	if (parse_duration(av[1], &c->remote_connect_timeout) == -1 ||
	    c->remote_connect_timeout == 0 || c->remote_connect_timeout > 600)
		conf_error(ctx, "%s: '%s' is not a duration from 1s to 10m",
		    av[0], av[1]);
}

static void
kw_remote_timeout(struct conf_ctx *ctx, struct conf *c, char **av, size_t ac)
{
	if (parse_duration(av[1], &c->remote_timeout) == -1 ||
	    c->remote_timeout > 3600)
		conf_error(ctx, "%s: '%s' is not a duration up to 1h (0: the "
		    "RFC 5321 values)", av[0], av[1]);
}

static void
kw_remote_connections(struct conf_ctx *ctx, struct conf *c, char **av,
    size_t ac)
{
	if (conf_uint(ctx, av[0], av[1], 1, 10000, &c->remote_connections) == 0 &&
	    ac == 3)
		conf_uint(ctx, av[0], av[2], 1, 10000,
		    &c->remote_connections_per_domain);
}

/* "ADDRESS", "ADDRESS:PORT" (IPv4), "[ADDRESS]" or "[ADDRESS]:PORT":
 * what the resolver takes, checked here so that a mistake is this
 * file's error and not a process that stops when it first looks up. */
static int
resolver_valid(const char *s)
{
	char host[INET6_ADDRSTRLEN];
	struct in6_addr a6;
	struct in_addr a4;
	const char *port = NULL, *end;
	size_t len;

	if (inet_pton(AF_INET6, s, &a6) == 1)
		return 1;
	if (*s == '[') {
		if ((end = strchr(s, ']')) == NULL ||
		    (end[1] != '\0' && end[1] != ':'))
			return 0;
		len = (size_t)(end - s - 1);
		port = end[1] == ':' ? end + 2 : NULL;
		s++;
	} else {
		end = strchr(s, ':');
		len = end ? (size_t)(end - s) : strlen(s);
		port = end ? end + 1 : NULL;
	}
	if (len == 0 || len >= sizeof host)
		return 0;
	memcpy(host, s, len);
	host[len] = '\0';
	if (inet_pton(AF_INET6, host, &a6) != 1 &&
	    inet_pton(AF_INET, host, &a4) != 1)
		return 0;
	if (port != NULL) {
		char *stop;
		unsigned long n;

		errno = 0;
		n = strtoul(port, &stop, 10);
		if (!isdigit((unsigned char)*port) || *stop != '\0' ||
		    errno != 0 || n == 0 || n > 65535)
			return 0;
	}
	return 1;
}

static void
kw_resolver(struct conf_ctx *ctx, struct conf *c, char **av, size_t ac)
{
	if (!resolver_valid(av[1]))
		conf_error(ctx, "resolver: '%s' is not an address, "
		    "address:port or [address]:port", av[1]);
	else if (strlcpy(c->resolver, av[1], sizeof c->resolver) >=
	    sizeof c->resolver)
		conf_error(ctx, "resolver: too long");
}

static void
kw_probe_host(struct conf_ctx *ctx, struct conf *c, char **av, size_t ac)
{
	if (strlcpy(c->probe_host, av[1], sizeof c->probe_host) >=
	    sizeof c->probe_host)
		conf_error(ctx, "probe-host: too long");
}

static void
kw_retry_max(struct conf_ctx *ctx, struct conf *c, char **av, size_t ac)
{
	conf_queue_duration(ctx, av[0], av[1], 0, &c->retry_max);
}

static void
kw_retry_min(struct conf_ctx *ctx, struct conf *c, char **av, size_t ac)
{
	conf_queue_duration(ctx, av[0], av[1], 0, &c->retry_min);
}

static void
kw_smtp_timeout(struct conf_ctx *ctx, struct conf *c, char **av, size_t ac)
{
	if (parse_duration(av[1], &c->smtp_timeout) == -1 ||
	    c->smtp_timeout == 0 || c->smtp_timeout > 3600)
		conf_error(ctx, "smtp-timeout: '%s' is not a duration from 1s "
		    "to 1h", av[1]);
}

static void
kw_spool(struct conf_ctx *ctx, struct conf *c, char **av, size_t ac)
{
	copy_path(ctx, c->spool, sizeof c->spool, av[0], av[1]);
}

static void
kw_pid_file(struct conf_ctx *ctx, struct conf *c, char **av, size_t ac)
{
	copy_path(ctx, c->pid_file, sizeof c->pid_file, av[0], av[1]);
}

/* submit via HOST[:PORT|SERVICE] [tls implicit] [tls verify]
 * [tls ca FILE] [auth FILE] (the sendmail command; port 587 unless given) */
static void
kw_submit(struct conf_ctx *ctx, struct conf *c, char **av, size_t ac)
{
	int bracketed;

	if (strcmp(av[1], "via") != 0 || ac < 3) {
		conf_error(ctx, "submit: expected 'submit via HOST[:PORT] "
		    "[tls implicit] [tls verify] [tls ca FILE] [auth FILE]'");
		return;
	}
	if (via_hostport(ctx, "submit via", av[2], 587, c->submit_host,
	    sizeof c->submit_host, &c->submit_port, &bracketed) == -1)
		return;
	for (size_t i = 3; i < ac; i += 2) {
		if (i + 1 < ac && strcmp(av[i], "tls") == 0 &&
		    strcmp(av[i + 1], "ca") == 0) {
			if (i + 2 == ac) {
				conf_error(ctx, "submit: 'tls ca' needs a FILE");
				return;
			}
			if (copy_path(ctx, c->submit_tls_ca,
			    sizeof c->submit_tls_ca, "submit tls ca",
			    av[i + 2]) == -1)
				return;
			c->submit_tls_verify = 1;
			i++;		/* three words */
			continue;
		}
		if (i + 1 < ac && strcmp(av[i], "tls") == 0 &&
		    strcmp(av[i + 1], "implicit") == 0)
			c->submit_tls_implicit = 1;
		else if (i + 1 < ac && strcmp(av[i], "tls") == 0 &&
		    strcmp(av[i + 1], "verify") == 0)
			c->submit_tls_verify = 1;
		else if (i + 1 < ac && strcmp(av[i], "auth") == 0)
			copy_path(ctx, c->submit_auth, sizeof c->submit_auth,
			    "submit auth", av[i + 1]);
		else {
			conf_error(ctx, "submit: unexpected '%s'", av[i]);
			return;
		}
	}
}

static void
kw_tls(struct conf_ctx *ctx, struct conf *c, char **av, size_t ac)
{
	if (ac != 5 || strcmp(av[1], "cert") || strcmp(av[3], "key")) {
		conf_error(ctx, "tls: expected 'tls cert FILE key FILE'");
		return;
	}
	copy_path(ctx, c->tls_cert, sizeof c->tls_cert, "tls cert", av[2]);
	copy_path(ctx, c->tls_key, sizeof c->tls_key, "tls key", av[4]);
}

static void
kw_user(struct conf_ctx *ctx, struct conf *c, char **av, size_t ac)
{
	if (strlcpy(c->user, av[1], sizeof c->user) >= sizeof c->user)
		conf_error(ctx, "user: name too long");
}

/* users FILE | users postgresql://... (docs/scaling.md) */
static void
kw_users(struct conf_ctx *ctx, struct conf *c, char **av, size_t ac)
{
	if (strncmp(av[1], "postgresql://", 13) != 0 &&
	    strncmp(av[1], "postgres://", 11) != 0) {
		copy_path(ctx, c->users, sizeof c->users, av[0], av[1]);
		return;
	}
	if (strlcpy(c->users, av[1], sizeof c->users) >= sizeof c->users)
		conf_error(ctx, "users: URL too long");
}

/* users-cache DURATION: how long the auth process trusts what it read
 * from a users database before it asks again. */
static void
kw_users_cache(struct conf_ctx *ctx, struct conf *c, char **av, size_t ac)
{
	if (parse_duration(av[1], &c->users_cache) == -1 ||
	    c->users_cache == 0 || c->users_cache > 3600)
		conf_error(ctx, "users-cache: '%s' is not a duration from 1s "
		    "to 1h", av[1]);
}

/* state redis://HOST[:PORT][/DB] | state local */
static void
kw_state(struct conf_ctx *ctx, struct conf *c, char **av, size_t ac)
{
	if (strcmp(av[1], "local") == 0) {
		c->state[0] = '\0';
		return;
	}
	if (strncmp(av[1], "redis://", 8) != 0 || av[1][8] == '\0')
		conf_error(ctx, "state: expected 'local' or "
		    "'redis://HOST[:PORT][/DB]', not '%s'", av[1]);
	else if (strlcpy(c->state, av[1], sizeof c->state) >= sizeof c->state)
		conf_error(ctx, "state: URL too long");
}

static void
kw_workers(struct conf_ctx *ctx, struct conf *c, char **av, size_t ac)
{
	conf_uint(ctx, av[0], av[1], 1, 256, &c->workers);
}

/* Sorted by name: looked up with bsearch(3). */
static const struct conf_keyword {
	const char	*name;
	conf_handler	 fn;
	size_t		 minargs, maxargs;	/* words after the keyword */
} conf_keywords[] = {
	{ "access",		kw_access,		1, 1 },
	{ "admin",		kw_admin,		1, 1 },
	{ "aliases",		kw_aliases,		1, 1 },
	{ "apop",		kw_apop,		1, 1 },
	{ "auth-mechanisms",	kw_auth_mechanisms,	1, CONF_MAX_WORDS },
	{ "auth-throttle",	kw_auth_throttle,	2, 2 },
	{ "delay-warning",	kw_delay_warning,	1, 1 },
	{ "domains",		kw_domains,		1, CONF_MAX_WORDS },
	{ "hop-limit",		kw_hop_limit,		1, 1 },
	{ "hostname",		kw_hostname,		1, 1 },
	{ "ip-rate-limit",	kw_ip_rate_limit,	1, 1 },
	{ "listen",		kw_listen,		1, CONF_MAX_WORDS },
	{ "log",		kw_log,			1, 1 },
	{ "mailboxes",		kw_mailboxes,		1, 1 },
	{ "max-connections-per-ip", kw_max_connections_per_ip, 1, 1 },
	{ "max-errors",		kw_max_errors,		1, 1 },
	{ "max-recipients",	kw_max_recipients,	1, 1 },
	{ "max-sessions",	kw_max_sessions,	1, 1 },
	{ "message-size-limit",	kw_message_size_limit,	1, 1 },
	{ "mynetworks",		kw_mynetworks,		1, CONF_MAX_WORDS },
	{ "pam-service",	kw_pam_service,		1, 1 },
	{ "pid-file",		kw_pid_file,		1, 1 },
	{ "pop-before-smtp",	kw_pop_before_smtp,	1, 3 },
	{ "probe-host",		kw_probe_host,		1, 1 },
	{ "queue-lifetime",	kw_queue_lifetime,	1, 1 },
	{ "queue-manager",	kw_queue_manager,	1, 1 },
	{ "queue-managers",	kw_queue_managers,	1, 1 },
	{ "queue-passes",	kw_queue_passes,	1, 1 },
	{ "relay",		kw_relay,		1, CONF_MAX_WORDS },
	{ "remote-connect-timeout", kw_remote_connect_timeout, 1, 1 },
	{ "remote-connections",	kw_remote_connections,	1, 2 },
	{ "remote-timeout",	kw_remote_timeout,	1, 1 },
	{ "resolver",		kw_resolver,		1, 1 },
	{ "retry-max",		kw_retry_max,		1, 1 },
	{ "retry-min",		kw_retry_min,		1, 1 },
	{ "smtp-timeout",	kw_smtp_timeout,	1, 1 },
	{ "spool",		kw_spool,		1, 1 },
	{ "state",		kw_state,		1, 1 },
	{ "submit",		kw_submit,		2, 11 },
	{ "tls",		kw_tls,			4, 4 },
	{ "user",		kw_user,		1, 1 },
	{ "user-rate-limit",	kw_user_rate_limit,	2, 2 },
	{ "users",		kw_users,		1, 1 },
	{ "users-cache",	kw_users_cache,		1, 1 },
	{ "workers",		kw_workers,		1, 1 },
};

/* bsearch(3) needs the table in strcmp order; a unit test checks it. */
int
conf_keywords_sorted(void)
{
	for (size_t i = 1; i < sizeof conf_keywords / sizeof conf_keywords[0]; i++)
		if (strcmp(conf_keywords[i - 1].name, conf_keywords[i].name) >= 0)
			return 0;
	return 1;
}

static int
keyword_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct conf_keyword *)elem)->name);
}

static void
conf_defaults(struct conf *c)
{
	memset(c, 0, sizeof *c);
	if (gethostname(c->hostname, sizeof c->hostname) == -1 ||
	    !valid_domain(c->hostname))
		strlcpy(c->hostname, "localhost", sizeof c->hostname);
	strlcpy(c->spool, "/var/spool/postern", sizeof c->spool);
	strlcpy(c->mailboxes, "/var/mail/postern", sizeof c->mailboxes);
	strlcpy(c->user, "postern", sizeof c->user);
	strlcpy(c->pam_service, "postern", sizeof c->pam_service);
	c->workers = 0;				/* 0: one per core */
	c->message_size_limit = 25ULL * 1024 * 1024;
	c->max_recipients = 1000;		/* RFC 5321 4.5.3.1.8: >= 100 */
	c->smtp_timeout = 300;			/* RFC 5321 4.5.3.2.7 */
	c->max_errors = 10;
	c->max_sessions = 10000;
	/* Far above what a person or a normal peer sends in an hour. */
	c->max_connections_per_ip = 50;
	c->user_rate_limit_messages = 500;
	c->user_rate_limit_recipients = 2000;
	c->ip_rate_limit = 1000;
	c->remote_connect_timeout = 30;
	c->remote_connections = 50;		/* RFC 5321 4.5.3.2 asks for */
	c->remote_connections_per_domain = 10;	/* restraint per destination */
	/* DIGEST-MD5 is historic (RFC 6331): only when asked for. */
	c->auth_mechanisms = 1u << SASL_PLAIN | 1u << SASL_LOGIN |
	    1u << SASL_CRAM_MD5 | 1u << SASL_SCRAM_SHA_256;
	c->pop_before_smtp_ipv6_prefix = 128;	/* the exact address */
	c->auth_max_failures = 10;
	c->auth_block_time = 900;
	c->queue_manager = 1;
	c->retry_min = 5 * 60;
	c->retry_max = 60 * 60;
	c->queue_lifetime = 5 * 86400;
	c->delay_warning = 4 * 3600;
	c->hop_limit = 50;			/* RFC 5321 6.3: "large" */
	/* Delivery passes at once per queue manager.  On two cores, end
	 * to end: 4 queue managers with one pass each delivered about
	 * 1,000 msg/s, with 8 each about 1,700, and the CPU became the
	 * limit (bench/README.md, "End to end"). */
	c->queue_passes = 8;
	c->users_cache = 5;			/* docs/scaling.md */
}

/* Settings that only make sense together. */
static void
conf_validate(struct conf_ctx *ctx, struct conf *c)
{
	ctx->line = 0;
	if (c->nlisteners == 0) {
		ctx->line = 1;
		conf_error(ctx, "no 'listen' directive: postern would accept "
		    "nothing (try 'listen smtp')");
	}
	if (c->ndomains == 0)
		for (size_t i = 0; i < c->nlisteners; i++)
			if (c->listeners[i].role == ROLE_SMTP) {
				ctx->line = c->listeners[i].line;
				conf_error(ctx, "listen smtp: no local 'domains' "
				    "configured, so port 25 could take no mail");
				break;
			}
	if (c->retry_min > c->retry_max) {
		ctx->line = 1;
		conf_error(ctx, "retry-min (%llus) is longer than retry-max "
		    "(%llus)", (unsigned long long)c->retry_min,
		    (unsigned long long)c->retry_max);
	}
}

int
conf_parse_string(const char *name, const char *text, struct conf *c,
    FILE *errf)
{
	struct conf_ctx ctx = { name, 0, 0, errf };
	struct conf_line *cl = xmalloc(sizeof *cl);
	const char *p = text, *err;

	conf_defaults(c);
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		const struct conf_keyword *kw;

		ctx.line++;
		if (conf_lex_line(p, len, cl, &err) == -1)
			conf_error(&ctx, "%s", err);
		else if (cl->nword > 0) {
			kw = bsearch(cl->word[0], conf_keywords,
			    sizeof conf_keywords / sizeof conf_keywords[0],
			    sizeof conf_keywords[0], keyword_cmp);
			if (kw == NULL)
				conf_error(&ctx, "unknown directive '%s'",
				    cl->word[0]);
			else if (cl->nword - 1 < kw->minargs ||
			    (cl->nword - 1 > kw->maxargs &&
			    kw->maxargs == kw->minargs))
				conf_error(&ctx, "%s: expected %zu%s argument%s, "
				    "got %zu", kw->name, kw->minargs,
				    kw->maxargs > kw->minargs ? " or more" : "",
				    kw->minargs == 1 && kw->maxargs == 1 ? "" : "s",
				    cl->nword - 1);
			else if (cl->nword - 1 > kw->maxargs)
				conf_error(&ctx, "%s: expected at most %zu "
				    "argument%s, got %zu", kw->name, kw->maxargs,
				    kw->maxargs == 1 ? "" : "s", cl->nword - 1);
			else
				kw->fn(&ctx, c, cl->word, cl->nword);
		}
		p += len;
		if (*p == '\n')
			p++;
	}
	free(cl);
	if (ctx.nerr == 0)
		conf_validate(&ctx, c);
	return ctx.nerr;
}

int
conf_load(const char *path, struct conf *c, FILE *errf)
{
	char *text;
	int nerr;

	if ((text = read_text_file(path, 1 << 24, errf)) == NULL) {
		conf_defaults(c);
		return 1;
	}
	nerr = conf_parse_string(path, text, c, errf);
	free(text);
	if (realpath(path, c->path) == NULL)
		strlcpy(c->path, path, sizeof c->path);
	return nerr;
}

void
conf_free(struct conf *c)
{
	for (size_t i = 0; i < c->ndomains; i++)
		free(c->domains[i]);
	free(c->domains);
	free(c->mynetworks);
	free(c->listeners);
	free(c->relay_rules);
	memset(c, 0, sizeof *c);
}

int
conf_is_local_domain(const struct conf *c, const char *domain)
{
	for (size_t i = 0; i < c->ndomains; i++)
		if (strcasecmp(c->domains[i], domain) == 0)
			return 1;
	return 0;
}

static const char *
auth_name(enum auth_policy a)
{
	return a == AUTH_REQUIRED ? "required" : a == AUTH_OPTIONAL ?
	    "optional" : "off";
}

static const char *
tls_name(enum tls_mode t)
{
	return t == TLS_IMPLICIT ? "implicit" : t == TLS_STARTTLS ?
	    "starttls" : "off";
}

void
conf_print(const struct conf *c, FILE *f)
{
	fprintf(f, "hostname %s\n", c->hostname);
	fprintf(f, "domains");
	for (size_t i = 0; i < c->ndomains; i++)
		fprintf(f, " %s", c->domains[i]);
	fprintf(f, "\nspool %s\nmailboxes %s\n", c->spool, c->mailboxes);
	if (c->users[0])
		fprintf(f, "users %s\nusers-cache %llus\n", c->users,
		    (unsigned long long)c->users_cache);
	if (c->state[0])
		fprintf(f, "state %s\n", c->state);
	if (c->aliases[0])
		fprintf(f, "aliases %s\n", c->aliases);
	if (c->access[0])
		fprintf(f, "access %s\n", c->access);
	/* What is printed reads back as the same configuration: defaults
	 * that no directive can spell are comments. */
	fprintf(f, c->nmynetworks ? "mynetworks" : "# mynetworks: none");
	for (size_t i = 0; i < c->nmynetworks; i++) {
		char host[64];
		inet_ntop(c->mynetworks[i].family, c->mynetworks[i].addr,
		    host, sizeof host);
		fprintf(f, " %s/%u", host, c->mynetworks[i].bits);
	}
	fprintf(f, "\n");
	for (size_t i = 0; i < c->nlisteners; i++) {
		const struct listen_conf *l = &c->listeners[i];
		fprintf(f, "listen %s on %s port %u auth %s tls %s "
		    "cleartext-auth %s sender-check %s\n",
		    listen_role_name(l->role), l->addr[0] ? l->addr : "*",
		    l->port, auth_name(l->auth), tls_name(l->tls),
		    l->cleartext_auth == CLEARTEXT_LOOPBACK ? "loopback" : "never",
		    l->sender_check == SENDER_CHECK_HEADER ? "header" :
		    l->sender_check == SENDER_CHECK_ENVELOPE ? "envelope" : "off");
	}
	fprintf(f, "message-size-limit %llu\nmax-recipients %u\n"
	    "smtp-timeout %llus\nmax-errors %u\nmax-sessions %u\n"
	    "user %s\npam-service %s\n",
	    (unsigned long long)c->message_size_limit, c->max_recipients,
	    (unsigned long long)c->smtp_timeout, c->max_errors,
	    c->max_sessions, c->user, c->pam_service);
	if (c->workers)
		fprintf(f, "workers %u\n", c->workers);
	else
		fprintf(f, "# workers: one per core\n");
	fprintf(f, "log %s\n", c->log_syslog ? "syslog" : "stderr");
	fprintf(f, "max-connections-per-ip %u\nuser-rate-limit %u %u\n"
	    "ip-rate-limit %u\n", c->max_connections_per_ip,
	    c->user_rate_limit_messages, c->user_rate_limit_recipients,
	    c->ip_rate_limit);
	if (c->nrelay_rules == 0)
		fprintf(f, "relay direct\n");
	for (size_t i = 0; i < c->nrelay_rules; i++) {
		const struct relay_rule *r = &c->relay_rules[i];

		fprintf(f, "relay%s%s", r->domain[0] ? " for " : "", r->domain);
		if (r->direct)
			fprintf(f, " direct");
		else
			fprintf(f, " via %s%s%s:%u%s%s%s", r->bracketed ? "[" : "",
			    r->host, r->bracketed ? "]" : "", r->port,
			    r->tls_implicit ? " tls implicit" : "",
			    r->auth_file[0] ? " auth " : "", r->auth_file);
		if (r->tls_ca[0])
			fprintf(f, " tls ca %s\n", r->tls_ca);
		else
			fprintf(f, "%s\n", r->tls_verify ? " tls verify" : "");
	}
	fprintf(f, "remote-connect-timeout %llus\nremote-timeout %llus\n"
	    "remote-connections %u %u\n",
	    (unsigned long long)c->remote_connect_timeout,
	    (unsigned long long)c->remote_timeout, c->remote_connections,
	    c->remote_connections_per_domain);
	fprintf(f, "auth-mechanisms");
	for (unsigned i = 0; i < SASL__COUNT; i++)
		if (c->auth_mechanisms & (1u << i))
			fprintf(f, " %s", sasl_mech_by_id(i)->name);
	fprintf(f, "\nauth-throttle %u %llus\n", c->auth_max_failures,
	    (unsigned long long)c->auth_block_time);
	if (c->pop_before_smtp)
		fprintf(f, "pop-before-smtp %llus ipv6-prefix %u\n",
		    (unsigned long long)c->pop_before_smtp,
		    c->pop_before_smtp_ipv6_prefix);
	if (c->apop)
		fprintf(f, "apop on\n");
	if (c->tls_cert[0])
		fprintf(f, "tls cert %s key %s\n", c->tls_cert, c->tls_key);
	if (c->resolver[0])
		fprintf(f, "resolver %s\n", c->resolver);
	if (c->probe_host[0])
		fprintf(f, "probe-host %s\n", c->probe_host);
	if (c->admin[0])
		fprintf(f, "admin %s\n", c->admin);
	fprintf(f, "queue-manager %s\nretry-min %llus\nretry-max %llus\n"
	    "queue-lifetime %llus\ndelay-warning %llus\nhop-limit %u\n",
	    c->queue_manager ? "on" : "off",
	    (unsigned long long)c->retry_min, (unsigned long long)c->retry_max,
	    (unsigned long long)c->queue_lifetime,
	    (unsigned long long)c->delay_warning, c->hop_limit);
	if (c->queue_managers)
		fprintf(f, "queue-managers %u\n", c->queue_managers);
	fprintf(f, "queue-passes %u\n", c->queue_passes);
	if (c->pid_file[0])
		fprintf(f, "pid-file %s\n", c->pid_file);
	if (c->submit_host[0])
		fprintf(f, "submit via %s%s%s:%u%s%s%s%s%s%s\n",
		    strchr(c->submit_host, ':') ? "[" : "", c->submit_host,
		    strchr(c->submit_host, ':') ? "]" : "", c->submit_port,
		    c->submit_tls_implicit ? " tls implicit" : "",
		    c->submit_tls_verify && !c->submit_tls_ca[0] ?
		    " tls verify" : "",
		    c->submit_tls_ca[0] ? " tls ca " : "", c->submit_tls_ca,
		    c->submit_auth[0] ? " auth " : "", c->submit_auth);
}
