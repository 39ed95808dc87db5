/*
 * check_ports.c - parse the --ports list shared by `postern check` and
 * `postern probe` (check_ports.h).
 */
#include "admin/check_ports.h"
#include "lib/strutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The role a well-known port number plays (RFC 5321, RFC 6409,
 * RFC 8314, RFC 1939). */
static const struct {
	unsigned	 port;
	enum listen_role role;
} well_known[] = {
	{ 25, ROLE_SMTP }, { 587, ROLE_SUBMISSION }, { 465, ROLE_SUBMISSIONS },
	{ 110, ROLE_POP3 }, { 995, ROLE_POP3S },
};

static int
role_of_port(unsigned port, enum listen_role *r)
{
	for (size_t i = 0; i < sizeof well_known / sizeof well_known[0]; i++)
		if (well_known[i].port == port) {
			*r = well_known[i].role;
			return 0;
		}
	return -1;
}

static int
parse_item(const char *item, struct check_port *cp, char *err, size_t errsz)
{
	char name[64];
	const char *eq = strchr(item, '=');
	uint16_t port;

	if (eq) {
		if ((size_t)(eq - item) >= sizeof name)
			goto bad;
		memcpy(name, item, (size_t)(eq - item));
		name[eq - item] = '\0';
		if (listen_role_lookup(name, &cp->role) == -1) {
			snprintf(err, errsz, "--ports: unknown service '%s' "
			    "(smtp, submission, submissions, pop3, pop3s)", name);
			return -1;
		}
		if (listen_service_port(eq + 1, &port) == -1)
			goto bad;
		cp->port = port;
		return 0;
	}
	if (*item >= '0' && *item <= '9') {
		if (listen_service_port(item, &port) == -1)
			goto bad;
		if (role_of_port(port, &cp->role) == -1) {
			snprintf(err, errsz, "--ports: port %u is not a "
			    "well-known mail port; say which service it is, "
			    "e.g. submission=%u", port, port);
			return -1;
		}
		cp->port = port;
		return 0;
	}
	if (listen_role_lookup(item, &cp->role) == 0) {
		struct listen_conf lc;

		listen_conf_defaults(&lc, cp->role);
		cp->port = lc.port;
		return 0;
	}
bad:
	snprintf(err, errsz, "--ports: '%s' is not a port, a service name "
	    "or SERVICE=PORT", item);
	return -1;
}

int
check_ports_parse(const char *spec, struct check_port *out, size_t *n,
    char *err, size_t errsz)
{
	char copy[512], *tok, *save;

	*n = 0;
	if (strlcpy(copy, spec, sizeof copy) >= sizeof copy) {
		snprintf(err, errsz, "--ports: list too long");
		return -1;
	}
	for (tok = strtok_r(copy, ", ", &save); tok;
	    tok = strtok_r(NULL, ", ", &save)) {
		if (*n == CHECK_PORTS_MAX) {
			snprintf(err, errsz, "--ports: at most %d ports",
			    CHECK_PORTS_MAX);
			return -1;
		}
		if (parse_item(tok, &out[*n], err, errsz) == -1)
			return -1;
		(*n)++;
	}
	if (*n == 0) {
		snprintf(err, errsz, "--ports: empty list");
		return -1;
	}
	return 0;
}
