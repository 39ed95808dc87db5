/* msgq.c - messages waiting for room in a peer's socket (see msgq.h). */
#include "proc/msgq.h"
#include "lib/log.h"
#include "lib/xalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>

struct msgq_item {
	TAILQ_ENTRY(msgq_item)	 entry;
	size_t			 len;
	uint8_t			 data[];	/* the datagram, as msg_send's */
};

struct msgq {
	int			 fd;
	int			 error;		/* the peer is lost: why */
	struct event		*ev;		/* EV_WRITE, while items wait */
	void			(*lost)(void *);
	void			*arg;
	size_t			 n;
	TAILQ_HEAD(, msgq_item)	 items;		/* oldest first */
};

/* One datagram, never blocking the loop: 0, or -1 with errno. */
static int
msgq_put(int fd, const uint8_t *p, size_t len)
{
	while (send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT) == -1)
		if (errno != EINTR)
			return -1;
	return 0;
}

static void
msgq_item_free(struct msgq_item *it)
{
	explicit_bzero(it->data, it->len);
	free(it);
}

/* The socket has room: send what waits, oldest first, for as long as
 * it takes them. */
static void
msgq_writable(evutil_socket_t fd, short ev, void *arg)
{
	struct msgq *q = arg;
	struct msgq_item *it;

	while ((it = TAILQ_FIRST(&q->items)) != NULL) {
		if (msgq_put(q->fd, it->data, it->len) == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			/* Not watched any more: a failed socket stays
			 * writable, and the owner may free the queue late. */
			q->error = errno;
			event_del(q->ev);
			q->lost(q->arg);
			return;
		}
		TAILQ_REMOVE(&q->items, it, entry);
		q->n--;
		msgq_item_free(it);
	}
	event_del(q->ev);
}

struct msgq *
msgq_new(struct event_base *base, int fd, void (*lost)(void *), void *arg)
{
	struct msgq *q = xcalloc(1, sizeof *q);

	q->fd = fd;
	q->lost = lost;
	q->arg = arg;
	TAILQ_INIT(&q->items);
	if ((q->ev = event_new(base, fd, EV_WRITE | EV_PERSIST, msgq_writable,
	    q)) == NULL)
		fatalx("msgq: event_new failed");
	return q;
}

int
msgq_send(struct msgq *q, const struct msg *m)
{
	struct msgq_item *it;

	if (q->error) {
		errno = q->error;
		return -1;
	}
	if (m->bad) {
		errno = EMSGSIZE;
		return -1;
	}
	/* Behind others, a message waits its turn: the order is the
	 * protocol's (a step after its start, a cancel after both). */
	if (q->n == 0) {
		if (msgq_put(q->fd, m->data, m->len) == 0)
			return 0;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
	}
	if (q->n >= MSGQ_MAX) {
		errno = ENOBUFS;
		return -1;
	}
	it = xmalloc(sizeof *it + m->len);
	it->len = m->len;
	memcpy(it->data, m->data, m->len);
	TAILQ_INSERT_TAIL(&q->items, it, entry);
	if (q->n++ == 0)
		event_add(q->ev, NULL);
	return 0;
}

size_t
msgq_len(const struct msgq *q)
{
	return q->n;
}

void
msgq_free(struct msgq *q)
{
	struct msgq_item *it;

	if (q == NULL)
		return;
	while ((it = TAILQ_FIRST(&q->items)) != NULL) {
		TAILQ_REMOVE(&q->items, it, entry);
		msgq_item_free(it);
	}
	event_free(q->ev);
	free(q);
}
