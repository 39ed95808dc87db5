/*
 * msgq.h - messages to one peer over a non-blocking SOCK_SEQPACKET
 * socket (proc/msg.h), in order, without losing any to a full socket.
 *
 * Such a socket's send buffer holds a few hundred small messages.  A
 * peer that is slow for a moment (stopped, or busy on a long callback)
 * is not a lost peer: the messages the socket refuses with EAGAIN wait
 * here, copied, and go out as soon as it is writable again.  Only a
 * real error, or more than MSGQ_MAX messages waiting (a peer that no
 * longer reads), loses the peer.  A message may carry a password: each
 * copy is wiped when it has been sent or is dropped.
 */
#ifndef POSTERN_MSGQ_H
#define POSTERN_MSGQ_H

#include <event2/event.h>

#include "proc/msg.h"

#define MSGQ_MAX	4096	/* messages waiting for one peer */

struct msgq;

/*
 * A queue for fd, whose writability is watched on base while messages
 * wait.  lost(arg) runs on the loop when a waiting message cannot be
 * sent (errno says why); the owner then frees the queue, from lost or
 * later, and closes fd.  Like xmalloc, aborts if it cannot be made.
 */
struct msgq	*msgq_new(struct event_base *, int fd, void (*lost)(void *),
		    void *arg);
/* Send m now, or keep a copy behind the ones waiting.  0, or -1 with
 * errno set (EMSGSIZE: m overflowed; ENOBUFS: MSGQ_MAX are waiting;
 * otherwise send's) when the peer is lost. */
int		 msgq_send(struct msgq *, const struct msg *);
/* Messages waiting. */
size_t		 msgq_len(const struct msgq *);
/* Wipe and drop what waits, and free the queue (not fd).  NULL is a
 * no-op. */
void		 msgq_free(struct msgq *);

#endif
