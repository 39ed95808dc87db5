/*
 * pop3_int.h - what the parts of the POP3 session share: the session
 * itself (pop3_session.c: I/O, states, closing), the AUTHORIZATION
 * state's commands (pop3_login.c) and the TRANSACTION state's
 * (pop3_mail.c).  Not for use outside src/pop3.
 */
#ifndef POSTERN_POP3_INT_H
#define POSTERN_POP3_INT_H

#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "ev/conn.h"
#include "lib/workpool.h"
#include "pop3/maildir_read.h"
#include "pop3/pop3_cmd.h"
#include "pop3/pop3_reply.h"
#include "pop3/pop3_session.h"
#include "pop3/pop3_stuff.h"
#include "sasl/sasl.h"

struct state_ask;	/* state/state.h */

/* RFC 2449 section 4 allows 255 octets a command line; passwords and
 * AUTH initial responses get more room, SASL responses the RFC 4954
 * size. */
#define POP3_LINE_MAX		1024
#define POP3_AUTH_LINE_MAX	12288
/* RFC 1939 section 3: the autologout timer is at least 10 minutes. */
#define POP3_TIMEOUT		600
/* RETR streams the file: more is read once the output is below LOW,
 * and never past HIGH (for STLS, in the TLS layer's buffer too). */
#define POP3_OUT_LOW		(16 * 1024)
#define POP3_OUT_HIGH		(64 * 1024)
#define POP3_CHUNK		(16 * 1024)

enum pop3_state {
	POP3_ST_AUTHORIZATION,	/* greeted; USER may have been given */
	POP3_ST_AUTH_WAIT,	/* credentials at the auth process */
	POP3_ST_AUTH_INPUT,	/* "+ " sent: the next line answers it */
	POP3_ST_TRANSACTION,	/* logged in, mailbox locked */
	POP3_ST_SENDING,	/* streaming RETR or TOP; input waits */
	POP3_ST_BOX_WAIT,	/* the mailbox is opened or updated on a
				 * thread (pop3_box.c); input waits */
	POP3_ST_QUIT,		/* last reply on its way, then close */
};

#define POP3_F_TLS		0x01	/* TLS is active */
#define POP3_F_SKIP_LINE	0x02	/* discarding an over-long line */
#define POP3_F_USER		0x04	/* USER accepted; PASS may follow */
#define POP3_F_CONNCOUNT	0x08	/* counted in connlimit: release */
#define POP3_F_BOX_BUSY		0x10	/* a thread works on s->box */
#define POP3_F_ORPHAN		0x20	/* connection gone: freed when the
					 * thread is done */
#define POP3_F_SHUTDOWN		0x40	/* the worker stops: close once the
					 * thread is done */
#define POP3_F_OUT_FULL		0x80	/* replies unread: no commands taken
					 * until they have gone */
#define POP3_F_HANDSHAKE	0x100	/* TLS handshake under way: the
					 * deadline running is its own */

/* What a thread does with the mailbox, and what came of it.
 * POP3_BOX_MSG: the open of the message RETR or TOP asked for, into
 * s->msg_fd (a lookup and an open are round trips on NFS).
 * POP3_BOX_READ: a chunk of the message being sent that is not in the
 * page cache (pop3_pump), into s->read_buf. */
enum pop3_box_work { POP3_BOX_OPEN, POP3_BOX_UPDATE, POP3_BOX_MSG,
	POP3_BOX_READ };

struct pop3_box_job {
	struct workpool_job	 job;
	struct pop3_session	*s;
	enum pop3_box_work	 what;
	enum maildir_open_result opened;	/* POP3_BOX_OPEN */
	int			 err;		/* errno of a failed open */
	int			 granted;	/* POP-before-SMTP done there */
	long			 removed;	/* POP3_BOX_UPDATE; -1: failed */
	ssize_t			 nread;		/* POP3_BOX_READ; -1: err */
};

struct pop3_session {
	uint64_t		 id;
	struct worker		*w;
	const struct listener	*l;
	struct bufferevent	*bev;
	struct sockaddr_storage	 ss;
	char			 addr[64];
	char			 local[64];	/* the address it connected to */
	unsigned		 port;
	enum pop3_state		 state;
	int			 flags;
	char			 user[SASL_USER_MAX + 1];
	char			 apop_stamp[256];	/* "" when APOP is off;
							 * < APOP_TIMESTAMP_MAX */
	const char		*login_mech;	/* "USER", "APOP" or SASL's */
	uint64_t		 auth_reqid;
	struct state_ask	*grant_ask;	/* a login waiting for its
						 * grant in the shared store */
	struct maildir_box	 box;	/* a thread's while POP3_F_BOX_BUSY */
	int			 box_open;
	struct pop3_box_job	 box_job;
	/* the message being sent */
	int			 msg_fd;
	size_t			 msg_index;
	off_t			 msg_off;
	int			 msg_top;
	char			*read_buf;	/* POP3_CHUNK, made at the first
						 * read a thread did */
	int			 read_ready;	/* read_buf holds the next
						 * box_job.nread bytes */
	struct pop3_stuff	 stuff;
	unsigned		 nerrors, nretr, ndele;
	const char		*cmdline;	/* escaped, for failed-command logs */
	const char		*close_reason;
	struct conn_close	 closer;	/* after the last reply (ev/conn.h) */
	/* A command line, or the TLS handshake (995 or after STLS), must be
	 * complete within smtp-timeout of its first octet, as in SMTP: the
	 * idle timer restarts with every octet, so a trickle would never
	 * end. */
	struct event		*deadline_ev;
	TAILQ_ENTRY(pop3_session) entry;
};

/* pop3_session.c */
void	pop3_enter_state(struct pop3_session *, enum pop3_state);
void	pop3_reply(struct pop3_session *, enum pop3_reply_id, const char *arg);
void	pop3_printf(struct pop3_session *, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	pop3_close_after_reply(struct pop3_session *, const char *reason);
void	pop3_free(struct pop3_session *);
/* Reading resumes through a deferred callback, never from the caller's
 * stack. */
void	pop3_resume(struct pop3_session *);
/* -1: the connection cannot be watched (smtp_setup_bev says why). */
int	pop3_setup_bev(struct pop3_session *);
/* The TLS handshake (995, STLS) begins: its deadline starts. */
void	pop3_handshake_start(struct pop3_session *);

/* pop3_login.c */
int	pop3_login_allowed(const struct pop3_session *);
void	pop3_cmd_user(struct pop3_session *, char *);
void	pop3_cmd_pass(struct pop3_session *, char *);
void	pop3_cmd_apop(struct pop3_session *, char *);
void	pop3_cmd_auth(struct pop3_session *, char *);
void	pop3_cmd_capa(struct pop3_session *, char *);
void	pop3_cmd_stls(struct pop3_session *, char *);
void	pop3_auth_input(struct pop3_session *, const char *, size_t);

/* pop3_box.c: the login's mailbox open, QUIT's update, the open of a
 * message to send and the reads of it the page cache does not hold go
 * to the worker's mailbox threads; the session waits in
 * POP3_ST_BOX_WAIT. */
void	pop3_box_start(struct pop3_session *, enum pop3_box_work);
/* After the mailbox's work (and a login's grant): answer a stop, or read
 * on. */
void	pop3_box_resume(struct pop3_session *);
/* Streaming a message: SENDING, or waiting for a thread's read of it. */
int	pop3_sending(const struct pop3_session *);
void	pop3_login_opened(struct pop3_session *, const struct pop3_box_job *);
void	pop3_quit_updated(struct pop3_session *, const struct pop3_box_job *);

/* pop3_mail.c */
void	pop3_cmd_quit(struct pop3_session *, char *);
void	pop3_cmd_stat(struct pop3_session *, char *);
void	pop3_cmd_list(struct pop3_session *, char *);
void	pop3_cmd_retr(struct pop3_session *, char *);
void	pop3_cmd_dele(struct pop3_session *, char *);
void	pop3_cmd_noop(struct pop3_session *, char *);
void	pop3_cmd_rset(struct pop3_session *, char *);
void	pop3_cmd_top(struct pop3_session *, char *);
void	pop3_cmd_uidl(struct pop3_session *, char *);
/* Output drained below POP3_OUT_LOW while sending: add more. */
void	pop3_pump(struct pop3_session *);
void	pop3_msg_opened(struct pop3_session *, const struct pop3_box_job *);
void	pop3_read_done(struct pop3_session *, const struct pop3_box_job *);
void	pop3_msg_close(struct pop3_session *);
/* The messages not marked deleted, and their octets. */
void	pop3_count(const struct pop3_session *, size_t *n, uint64_t *octets);

#endif
