/*
 * remote.h - remote delivery in the queue manager's event loop: MX
 * lookup (or a smarthost), outbound SMTP sessions with opportunistic or
 * required TLS and SASL, connection reuse per destination, and limits on
 * parallel connections.  The queue manager submits one message's remote
 * recipients for one domain, at most REMOTE_RCPT_MAX at a time, and gets
 * every recipient's outcome back in one callback; it records them (it
 * alone writes status/).
 */
#ifndef POSTERN_REMOTE_H
#define POSTERN_REMOTE_H

#include <stddef.h>
#include <sys/types.h>

#include "conf/conf.h"

struct event_base;
struct remote;

/*
 * Recipients per transaction: a domain's recipients beyond it go in
 * further remote_msgs of the same message, at once.  RFC 5321 section
 * 4.5.3.1.8 obliges every server to take 100, so no conforming server
 * refuses part of such a transaction for its number.  A smaller batch
 * (Postfix sends 50) would send the whole message once more per batch
 * to gain nothing: a server whose own limit is lower answers the rest
 * 452 (RFC 5321 section 4.5.3.1.10), and the SMTP client sends those
 * again at once in a new transaction (smtp_client.c).
 */
#define REMOTE_RCPT_MAX	100

enum remote_outcome {
	REMOTE_SENT,		/* 2xx for this recipient and for the data */
	REMOTE_TEMPFAIL,	/* retry later (4xx, no answer, DNS trouble) */
	REMOTE_PERMFAIL,	/* bounce (5xx, no such domain, null MX) */
};

struct remote_rcpt {
	const char		*addr;		/* in: the address to send to */
	void			*cookie;	/* in: the caller's, untouched */
	enum remote_outcome	 outcome;	/* out */
	char			 dsn[16];	/* out: "2.0.0", "5.1.1", ... */
	char			 why[512];	/* out: the remote reply or our reason */
	char			 relay[300];	/* out: "host[addr]:port" or "none" */
};

struct remote_msg;
typedef void (*remote_done_fn)(struct remote_msg *, void *arg);

struct remote_msg {
	/* in */
	char			 qid[32];
	const char		*from;		/* "" for <> */
	const char		*domain;	/* every rcpt is in this domain */
	int			 fd;		/* the queue file: read with
						 * pread(2) only (other
						 * remote_msgs of the message
						 * share it), never closed */
	off_t			 offset;	/* where the content starts */
	off_t			 size;		/* content octets */
	int			 body_8bit;	/* BODY=8BITMIME was declared */
	struct remote_rcpt	*rcpts;
	size_t			 nrcpts;	/* 1 to REMOTE_RCPT_MAX */
	remote_done_fn		 done;		/* runs once, on the loop;
						 * fd is remote's to read
						 * until then */
	void			*arg;
	/* remote's own */
	struct remote_msg	*next;
	void			*priv;
};

/* Check and load the relay rules' credentials files (mode 0600 or
 * stricter, one line "LOGIN PASSWORD") and "tls ca" files (PEM
 * certificates); returns the number of problems,
 * described on errf as "FILE: what"; on problems the credentials in
 * use stay as they were.  The master calls it as root
 * before it forks the queue manager, which inherits the credentials in
 * memory and never opens the files itself. */
int		 remote_check_config(const struct conf *, FILE *errf);
/* Whether a "tls ca" file loads (for "submit ... tls ca"); problems
 * as "FILE: what" on errf. */
int		 remote_ca_check(const char *path, FILE *errf);
/* Wipe and free the credentials (and CA stores): every child but the
 * queue manager calls it first, so that no worker holds a smarthost's
 * password. */
void		 remote_forget_credentials(void);
/* share: how many engines (queue managers) split remote-connections
 * and its per-domain limit between them (each gets its part, rounded
 * up). */
struct remote	*remote_new(struct event_base *, const struct conf *,
		    unsigned share);
void		 remote_submit(struct remote *, struct remote_msg *);
/* Begin to stop: messages not yet in a transaction are answered
 * REMOTE_TEMPFAIL at once, no session or transaction starts any more
 * (a session whose transaction ends says QUIT), and those under way go
 * on, so that their outcomes can be recorded. */
void		 remote_quiesce(struct remote *);
/* Stop: every recipient in flight without an outcome yet is answered
 * REMOTE_TEMPFAIL. */
void		 remote_free(struct remote *);

#endif
