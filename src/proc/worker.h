/*
 * worker.h - an event-loop process: it accepts on the listeners the
 * master bound, and runs every session of its connections (thousands per
 * process; no process or thread per connection).
 */
#ifndef POSTERN_WORKER_H
#define POSTERN_WORKER_H

#include <sys/queue.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "conf/conf.h"
#include "listen/listener.h"
#include "policy/access.h"
#include "policy/relay.h"

struct smtp_session;
struct pop3_session;

struct worker {
	const struct conf	*conf;
	struct event_base	*base;
	unsigned		 index;		/* 0..workers-1 */
	struct rcpt_maps	 maps;
	struct access_table	 access;	/* `access FILE`, reloaded on change */
	SSL_CTX			*tls_ctx;	/* NULL if no listener uses TLS */
	unsigned		 nsessions;
	int			 stopping;	/* SIGTERM: closing everything */
	TAILQ_HEAD(, smtp_session) smtp_sessions;
	TAILQ_HEAD(, pop3_session) pop3_sessions;
};

/* Runs in the child: drop privileges, loop until told to stop. */
/* access: the master's table, which the worker starts from. */
void	worker_main(const struct conf *, const struct access_table *access,
	    struct listener *, size_t nlisteners, unsigned index,
	    unsigned procno, uid_t, gid_t) __attribute__((noreturn));
/* A session ended: the worker may exit if it is stopping. */
void	worker_session_closed(struct worker *);

#endif
