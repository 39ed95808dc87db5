/*
 * smtp_session.h - an inbound SMTP session (RFC 5321), one per
 * connection, on the worker's event loop.
 */
#ifndef POSTERN_SMTP_SESSION_H
#define POSTERN_SMTP_SESSION_H

#include <sys/socket.h>

#include "listen/listener.h"
#include "proc/worker.h"

#define SMTP_LINE_MAX	4096	/* command line incl. CRLF; RFC 5321 4.5.3.1.4
				 * says 512, extensions need more */
#define SMTP_JUNK_MAX	100	/* NOOP/RSET/VRFY... between accepted
				 * messages */

void	smtp_session_accept(struct worker *, const struct listener *, int fd,
	    const struct sockaddr *, socklen_t);
/* SIGTERM: every session gets 421 and is closed; one waiting for its
 * commit gets its answer first. */
void	smtp_session_shutdown_all(struct worker *);

#endif
