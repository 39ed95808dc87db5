/*
 * popbsmtp.h - POP before SMTP (DESIGN.md "story"; DRAC for qpopper):
 * a successful POP3 login lets the client's address relay through the
 * `smtp` listener for `pop-before-smtp DURATION`.  Grants are files
 * under <spool>/grants/, so that every worker sees them and they
 * survive a restart; see src/queue/README.
 */
#ifndef POSTERN_POPBSMTP_H
#define POSTERN_POPBSMTP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

#include "conf/conf.h"

struct event_base;

/* Master, at start: create <spool>/grants for the workers' user and
 * remove the grants that expired while postern was down. */
int	popbsmtp_prepare(const struct conf *, uid_t, gid_t);
/* Worker, after a POP3 login as user: record (or extend) the address's
 * grant, for that user.  sid is the session id for the log line.
 * Returns 0 or -1. */
int	popbsmtp_grant(const struct conf *, const struct sockaddr *,
	    const char *user, uint64_t sid, time_t now);
/* May this address relay by a grant right now?  1, with the user whose
 * login made it in user (the relay is charged to and checked against
 * that user), or 0. */
int	popbsmtp_granted(const struct conf *, const struct sockaddr *,
	    time_t now, char *user, size_t usersz);
/* Remove and log the expired grants; returns how many. */
unsigned popbsmtp_sweep(const struct conf *, time_t now);
/* The grant's file name for an address: "192.0.2.7", "2001:db8::1", or
 * "2001:db8:1:2::_64" with a prefix length.  -1 if not an IP address. */
int	popbsmtp_key(const struct conf *, const struct sockaddr *, char *dst,
	    size_t dstsz);
/* Worker 0 sweeps once a minute, on a thread, so that expiries are
 * logged on time. */
void	popbsmtp_worker_init(struct event_base *, const struct conf *,
	    unsigned worker_index);
void	popbsmtp_worker_shutdown(void);

#endif
