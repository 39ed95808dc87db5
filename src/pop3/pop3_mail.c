/*
 * pop3_mail.c - the TRANSACTION state (RFC 1939 section 5) over the
 * session's Maildir snapshot, and the UPDATE state that QUIT enters
 * (section 6).  RETR and TOP stream the file: a chunk is read, stuffed
 * (pop3_stuff.c) and written whenever the output has drained below
 * POP3_OUT_LOW, so a message of any size costs a bounded buffer.
 *
 * The loop reads only what the page cache holds (RWF_NOWAIT); a chunk
 * that would wait for the disk is read by a mailbox thread while the
 * session waits (pop3_box.c), so a mailbox on a slow or busy disk holds
 * up its own session and not every other one of the worker.  The open of
 * the file stays on the loop: the login's stat of every message brought
 * its inode in.
 */
#include "pop3/pop3_int.h"
#include "lib/log.h"
#include "lib/xalloc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

/* "msg" as a message number that exists and is not deleted; replies
 * itself and returns -1 otherwise. */
static int
pop3_msg_arg(struct pop3_session *s, const char *arg, size_t *index)
{
	unsigned long n;

	if (pop3_cmd_number(arg, &n) == -1) {
		pop3_reply(s, P_SYNTAX, NULL);
		return -1;
	}
	if (n == 0 || n > s->box.nmsgs) {
		pop3_reply(s, P_NO_SUCH_MSG, NULL);
		return -1;
	}
	if (s->box.msgs[n - 1].deleted) {
		pop3_reply(s, P_MSG_DELETED, arg);
		return -1;
	}
	*index = n - 1;
	return 0;
}

void
pop3_count(const struct pop3_session *s, size_t *n, uint64_t *octets)
{
	*n = 0;
	*octets = 0;
	for (size_t i = 0; i < s->box.nmsgs; i++)
		if (!s->box.msgs[i].deleted) {
			(*n)++;
			*octets += s->box.msgs[i].size;
		}
}

void
pop3_cmd_stat(struct pop3_session *s, char *arg)
{
	char text[64];
	size_t n;
	uint64_t octets;

	if (*arg) {
		pop3_reply(s, P_SYNTAX, NULL);
		return;
	}
	pop3_count(s, &n, &octets);
	/* RFC 1939 section 5: "+OK nn mm", nothing after. */
	snprintf(text, sizeof text, "%zu %" PRIu64, n, octets);
	pop3_reply(s, P_OK, text);
}

/* LIST and UIDL: one line for msg, or a listing of every message. */
static void
pop3_scan(struct pop3_session *s, char *arg, int uidl)
{
	char *av[POP3_ARGS_MAX];
	char text[128];
	size_t i;
	int ac = pop3_cmd_split(arg, av, POP3_ARGS_MAX);

	if (ac < 0 || ac > 1) {
		pop3_reply(s, P_SYNTAX, NULL);
		return;
	}
	if (ac == 1) {
		if (pop3_msg_arg(s, av[0], &i) == -1)
			return;
		if (uidl)
			snprintf(text, sizeof text, "%zu %s", i + 1,
			    s->box.msgs[i].uid);
		else
			snprintf(text, sizeof text, "%zu %" PRIu64, i + 1,
			    s->box.msgs[i].size);
		pop3_reply(s, P_OK, text);
		return;
	}
	pop3_reply(s, uidl ? P_UIDL_FOLLOWS : P_LIST_FOLLOWS, NULL);
	for (i = 0; i < s->box.nmsgs; i++) {
		if (s->box.msgs[i].deleted)
			continue;
		if (uidl)
			pop3_printf(s, "%zu %s\r\n", i + 1, s->box.msgs[i].uid);
		else
			pop3_printf(s, "%zu %" PRIu64 "\r\n", i + 1,
			    s->box.msgs[i].size);
	}
	pop3_printf(s, ".\r\n");
}

void
pop3_cmd_list(struct pop3_session *s, char *arg)
{
	pop3_scan(s, arg, 0);
}

void
pop3_cmd_uidl(struct pop3_session *s, char *arg)
{
	pop3_scan(s, arg, 1);
}

void
pop3_msg_close(struct pop3_session *s)
{
	/* A thread reading the message has its descriptor and buffer
	 * until it is done; pop3_free comes back then (pop3_box.c). */
	if (s->flags & POP3_F_BOX_BUSY)
		return;
	if (s->msg_fd != -1) {
		close(s->msg_fd);
		s->msg_fd = -1;
	}
	free(s->read_buf);
	s->read_buf = NULL;
	s->read_ready = 0;
}

int
pop3_sending(const struct pop3_session *s)
{
	return s->state == POP3_ST_SENDING ||
	    (s->state == POP3_ST_BOX_WAIT && s->box_job.what == POP3_BOX_READ);
}

/*
 * Set once the kernel or the mailboxes' file system has refused
 * preadv2(RWF_NOWAIT) (EINVAL, EOPNOTSUPP): from then on every chunk is
 * read on a thread.  A thread's round trip per 16 KiB is slower than a
 * read on the loop, but it never stops the loop.
 */
static int nowait_refused;

/* The next chunk if the page cache holds it: its length, 0 at the end,
 * -1 with EAGAIN when a thread must read it, or -1 with another errno. */
static ssize_t
pop3_read_cached(struct pop3_session *s, char *chunk, size_t len)
{
	struct iovec iov = { chunk, len };
	ssize_t n;

	if (nowait_refused) {
		errno = EAGAIN;
		return -1;
	}
	do
		n = preadv2(s->msg_fd, &iov, 1, s->msg_off, RWF_NOWAIT);
	while (n == -1 && errno == EINTR);
	if (n == -1 && (errno == EOPNOTSUPP || errno == EINVAL)) {
		nowait_refused = 1;
		errno = EAGAIN;
	}
	return n;
}

static void
pop3_read_failed(struct pop3_session *s, int err)
{
	/* The +OK has gone out: the only honest end now is to close the
	 * connection (RFC 1939 gives no other). */
	errno = err;
	log_warn("%016" PRIx64 " pop3 read cur/%s", s->id,
	    s->box.msgs[s->msg_index].name);
	pop3_close_after_reply(s, "read-error");
}

/* Send message i; body_lines -1 for RETR.  The open is a thread's
 * (pop3_msg_opened goes on). */
static void
pop3_send_msg(struct pop3_session *s, size_t i, long body_lines)
{
	s->msg_index = i;
	s->msg_off = 0;
	s->msg_top = body_lines >= 0;
	pop3_stuff_init(&s->stuff, body_lines);
	pop3_box_start(s, POP3_BOX_MSG);
}

/* On the loop, after a thread's POP3_BOX_MSG: the +OK and the first
 * chunks, or the -ERR and the next command. */
void
pop3_msg_opened(struct pop3_session *s, const struct pop3_box_job *job)
{
	size_t i = s->msg_index;
	char text[32];

	if (s->msg_fd == -1) {
		char num[24];

		snprintf(num, sizeof num, "%zu", i + 1);
		if (job->err == ENOENT)
			pop3_reply(s, P_MSG_GONE, num);
		else {
			errno = job->err;
			log_warn("%016" PRIx64 " pop3 open cur/%s", s->id,
			    s->box.msgs[i].name);
			pop3_reply(s, P_MAILBOX_TEMPFAIL, NULL);
		}
		pop3_enter_state(s, POP3_ST_TRANSACTION);
		pop3_box_resume(s);
		return;
	}
	if (s->flags & POP3_F_SHUTDOWN) {
		pop3_msg_close(s);
		pop3_enter_state(s, POP3_ST_TRANSACTION);
		pop3_box_resume(s);	/* says why, and closes */
		return;
	}
	if (!s->msg_top) {
		snprintf(text, sizeof text, "%" PRIu64, s->box.msgs[i].size);
		pop3_reply(s, P_RETR_FOLLOWS, text);
	} else
		pop3_reply(s, P_TOP_FOLLOWS, NULL);
	pop3_enter_state(s, POP3_ST_SENDING);
	bufferevent_disable(s->bev, EV_READ);
	pop3_pump(s);
}

void
pop3_pump(struct pop3_session *s)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);
	struct buf b;
	char chunk[POP3_CHUNK];
	int done = 0;

	buf_init(&b, 0);
	while (!done && evbuffer_get_length(out) < POP3_OUT_HIGH) {
		const char *data = chunk;
		ssize_t n;

		if (s->read_ready) {		/* a thread's read */
			data = s->read_buf;
			n = s->box_job.nread;
			s->read_ready = 0;
		} else if ((n = pop3_read_cached(s, chunk, sizeof chunk)) ==
		    -1 && errno == EAGAIN) {
			if (s->read_buf == NULL)
				s->read_buf = xmalloc(POP3_CHUNK);
			buf_free(&b);
			pop3_box_start(s, POP3_BOX_READ);
			return;		/* pop3_read_done calls again */
		}
		if (n == -1) {
			pop3_read_failed(s, errno);
			buf_free(&b);
			return;
		}
		if (n > 0) {
			s->msg_off += n;
			(void)pop3_stuff_feed(&s->stuff, data, (size_t)n, &b);
		}
		if (n == 0 || s->stuff.done) {
			(void)pop3_stuff_finish(&s->stuff, &b);
			done = 1;
		}
		if (b.len > 0)
			evbuffer_add(out, b.data, b.len);
		buf_reset(&b);
	}
	buf_free(&b);
	if (!done)
		return;		/* pop3_write_cb calls again */
	log_info("%016" PRIx64 " pop3 %s msg=%zu uid=%s octets=%" PRIu64,
	    s->id, s->msg_top ? "top" : "retr", s->msg_index + 1,
	    s->box.msgs[s->msg_index].uid, (uint64_t)s->msg_off);
	if (!s->msg_top)
		s->nretr++;
	pop3_msg_close(s);
	pop3_enter_state(s, POP3_ST_TRANSACTION);
	pop3_resume(s);
}

/* On the loop, after a thread's POP3_BOX_READ. */
void
pop3_read_done(struct pop3_session *s, const struct pop3_box_job *job)
{
	pop3_enter_state(s, POP3_ST_SENDING);
	if (job->nread == -1) {
		pop3_read_failed(s, job->err);
		return;
	}
	s->read_ready = 1;
	pop3_pump(s);
}

void
pop3_cmd_retr(struct pop3_session *s, char *arg)
{
	size_t i;

	if (pop3_msg_arg(s, arg, &i) == 0)
		pop3_send_msg(s, i, -1);
}

/* RFC 1939 section 7: TOP msg n, n >= 0 body lines after the header. */
void
pop3_cmd_top(struct pop3_session *s, char *arg)
{
	char *av[POP3_ARGS_MAX];
	unsigned long lines;
	size_t i;
	int ac = pop3_cmd_split(arg, av, POP3_ARGS_MAX);

	if (ac != 2 || pop3_cmd_number(av[1], &lines) == -1) {
		pop3_reply(s, P_SYNTAX, NULL);
		return;
	}
	if (pop3_msg_arg(s, av[0], &i) == 0)
		pop3_send_msg(s, i, (long)lines);
}

void
pop3_cmd_dele(struct pop3_session *s, char *arg)
{
	size_t i;
	char num[24];

	if (pop3_msg_arg(s, arg, &i) == -1)
		return;
	s->box.msgs[i].deleted = 1;
	s->ndele++;
	snprintf(num, sizeof num, "%zu", i + 1);
	pop3_reply(s, P_DELETED, num);
}

void
pop3_cmd_noop(struct pop3_session *s, char *arg)
{
	pop3_reply(s, P_OK, "");
}

void
pop3_cmd_rset(struct pop3_session *s, char *arg)
{
	char text[64];
	size_t n;
	uint64_t octets;

	for (size_t i = 0; i < s->box.nmsgs; i++)
		s->box.msgs[i].deleted = 0;
	s->ndele = 0;
	pop3_count(s, &n, &octets);
	snprintf(text, sizeof text, "%zu messages (%" PRIu64 " octets)", n,
	    octets);
	pop3_reply(s, P_OK, text);
}

/* RFC 1939 section 6: QUIT in TRANSACTION enters UPDATE, where (and
 * only where) the deleted messages are removed: on a thread
 * (pop3_box.c), then pop3_quit_updated answers. */
void
pop3_cmd_quit(struct pop3_session *s, char *arg)
{
	if (s->state != POP3_ST_TRANSACTION) {
		pop3_reply(s, P_BYE, NULL);
		pop3_close_after_reply(s, "quit");
		return;
	}
	pop3_box_start(s, POP3_BOX_UPDATE);
}

void
pop3_quit_updated(struct pop3_session *s, const struct pop3_box_job *job)
{
	char text[64];
	size_t kept;
	uint64_t octets;

	pop3_count(s, &kept, &octets);	/* the thread logged the outcome */
	if (job->removed < 0)
		pop3_reply(s, P_UPDATE_FAILED, NULL);
	else {
		snprintf(text, sizeof text, "%zu messages left", kept);
		pop3_reply(s, P_BYE_UPDATE, text);
	}
	pop3_close_after_reply(s, "quit");
}
