/*
 * conn.h - what the SMTP and POP3 sessions share about their client
 * connection: putting TLS under it (STARTTLS per RFC 3207 and RFC 2595,
 * implicit TLS per RFC 8314), the bytes still owed to the client, and
 * closing once the last reply has left.  Runs in the workers.
 */
#ifndef POSTERN_CONN_H
#define POSTERN_CONN_H

#include <stddef.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/ssl.h>

/* A TLS server connection from the first byte.  fd is given away: on
 * failure (NULL) it has been closed, and is not the caller's to close
 * again. */
struct bufferevent *conn_tls_accept(struct event_base *, int fd, SSL_CTX *);
/*
 * STARTTLS/STLS after its positive reply was written to plain: whatever
 * the client sent in the clear after the command is thrown away
 * (CVE-2011-0411), and a TLS layer goes over the connection.  The reply
 * leaves before the first TLS record.  Returns the new bufferevent (the
 * session's from now on), or NULL if TLS could not be set up.
 */
struct bufferevent *conn_starttls(struct event_base *, struct bufferevent *plain,
	    SSL_CTX *);
/*
 * While a session waits for the auth process it takes no commands, but
 * it still reads, so that a client who leaves is seen (the event
 * callback's EOF) and the wait called off: conn_watch_start() keeps
 * reading, at most slack octets past what is already in, which wait
 * unparsed (libevent stops reading at the high-water mark).
 * conn_watch_stop() lifts the limit when the session reads again.
 */
void	conn_watch_start(struct bufferevent *, size_t slack);
void	conn_watch_stop(struct bufferevent *);
/*
 * A client that leaves during such a wait calls it off; one that only
 * half-closed after pipelining more commands is still owed their
 * replies.  conn_eof_owed() tells them apart: 1 if a whole command line
 * waits in the input, and then reading stops until the session reads
 * again (the socket gives the EOF once more).
 */
int	conn_eof_owed(struct bufferevent *);
/*
 * Replies a client leaves unread.  conn_output_full() is 1 once more
 * than CONN_OUT_MAX octets of them wait, and then reading stops: the
 * session takes no further command until its write callback finds the
 * output drained and reads again, so a client that sends without
 * reading fills its own socket, not the server's memory.
 */
#define CONN_OUT_MAX	(64 * 1024)
int	conn_output_full(struct bufferevent *);
/*
 * Take a line that may hold a password (an AUTH command, a SASL
 * response, POP3's PASS) out of the input: copied to dst, then wiped
 * where it lay before the buffer lets go of it, so that it does not
 * stay in freed memory for the life of the worker.
 */
void	conn_take_secret(struct evbuffer *in, char *dst, size_t n);
/* Octets not yet handed to the kernel, TLS layer included. */
size_t	conn_pending_output(struct bufferevent *);
/* After an error event: the OpenSSL reason, if TLS is why (1), else 0. */
int	conn_tls_error(struct bufferevent *, char *dst, size_t dstsz);

/*
 * Closing after the last reply.  conn_close_arm() arranges for
 * done(arg) to run once everything written has left (conn_close_check()
 * from the write callback tells it the output may have drained; a TLS
 * layer's socket buffer is watched too), or after max_wait seconds at
 * the latest; never from inside the call itself, whose caller still
 * holds the session.  conn_close_free() when the session goes.
 */
struct conn_close {
	struct event		*ev;
	struct bufferevent	*bev;
};

void	conn_close_arm(struct conn_close *, struct event_base *,
	    struct bufferevent *, unsigned max_wait, event_callback_fn done,
	    void *arg);
void	conn_close_check(struct conn_close *);
void	conn_close_free(struct conn_close *);

/*
 * Direct writes on a plaintext connection.  libevent's socket
 * bufferevent arms EPOLLOUT for each reply and disarms it once the reply
 * is written: two epoll_ctl calls and a turn of the loop per command.
 * In direct mode EV_WRITE stays disabled; whatever the session added to
 * the output during one turn of the loop (one reply, or the replies to
 * a pipelined group) is written at the end of that turn with one
 * writev(2), and drained(bev, arg) runs as the write callback would.
 * Only when the socket does not take it all (or fails) is EV_WRITE
 * enabled, and libevent finishes as usual: the session's write
 * callback then calls conn_direct_resume().  conn_direct_stop() before
 * putting TLS over the connection (libevent writes from then on),
 * conn_direct_free() when the session goes.
 */
struct conn_direct {
	struct bufferevent	*bev;
	struct event		*flush_ev;
	struct evbuffer_cb_entry *added_cb;
	bufferevent_data_cb	 drained;
	void			*arg;
};

int	conn_direct_start(struct conn_direct *, struct event_base *,
	    struct bufferevent *, bufferevent_data_cb drained, void *arg);
void	conn_direct_resume(struct conn_direct *);
void	conn_direct_stop(struct conn_direct *);
/* The same without handing anything to libevent: the session is going. */
void	conn_direct_free(struct conn_direct *);

/*
 * A session's line deadline (deadline_ev, a timer of secs): a finished
 * line stops it, a partial one starts it unless it already runs, so a
 * client that trickles a line octet by octet gets no more time than one
 * that sends nothing.
 */
void	conn_deadline_update(struct event *deadline_ev, unsigned secs,
	    int line_done, int partial);
/* The address the client connected to, as text ("" if unknown), for
 * the auth process: TLS layers or not. */
void	conn_local_address(struct bufferevent *, char *dst, size_t dstsz);

#endif
