/*
 * pop3_session.h - an inbound POP3 session (RFC 1939), one per
 * connection on the pop3 and pop3s listeners, on the worker's event
 * loop next to the SMTP sessions.
 */
#ifndef POSTERN_POP3_SESSION_H
#define POSTERN_POP3_SESSION_H

#include <sys/socket.h>

#include "listen/listener.h"
#include "proc/worker.h"

void	pop3_session_accept(struct worker *, const struct listener *, int fd,
	    const struct sockaddr *, socklen_t);
/* SIGTERM: every session is closed; deletions not yet committed by a
 * QUIT are not done (RFC 1939 section 6). */
void	pop3_session_shutdown_all(struct worker *);
/* The threads that open and update mailboxes for the worker's sessions
 * (a login reads the whole Maildir; QUIT fsyncs it). */
int	pop3_box_init(struct event_base *, unsigned nthreads);
/* After the last session: waits for the threads. */
void	pop3_box_shutdown(void);

#endif
