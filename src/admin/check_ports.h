/*
 * check_ports.h - the --ports list of `postern check` and `postern
 * probe`: "25,587,465", service names ("submission"), or ROLE=PORT for a
 * server on other ports ("smtp=2525,submission=2587").  A bare number
 * must be one of the well-known ports so that its role is known.
 */
#ifndef POSTERN_CHECK_PORTS_H
#define POSTERN_CHECK_PORTS_H

#include <stddef.h>

#include "listen/listener.h"

#define CHECK_PORTS_MAX	16

struct check_port {
	enum listen_role role;
	unsigned	 port;
};

/* 0, or -1 with the reason in err. */
int	check_ports_parse(const char *spec, struct check_port *out,
	    size_t *n, char *err, size_t errsz);

#endif
