/*
 * pop3_box.c - a POP3 session's mailbox work, on threads: the open at
 * login (the lock, new/ moved into cur/, a stat of every message) with
 * the POP-before-SMTP grant where that is a file (written and fsynced),
 * the UPDATE at QUIT (an unlink per deleted message, an fsync of cur/),
 * the open of a message to send, and the chunks of it that the page
 * cache does not hold (pop3_mail.c).  A mailbox of thousands of
 * messages is thousands of system calls, and an fsync, a read from the
 * disk or a lookup on NFS waits for it: on the event loop, every other
 * session of the worker would wait too.
 *
 * While a thread has the mailbox, the session reads nothing
 * (POP3_ST_BOX_WAIT) and the loop does not touch s->box, nor the
 * message's descriptor and read buffer.  The connection may end
 * meanwhile (an error, a timeout, the worker stopping during a
 * message): pop3_free then ends the connection but leaves the session's
 * memory, the message and the mailbox lock to pop3_box_done
 * (POP3_F_ORPHAN), as an SMTP session does while its message commits.
 */
#include "pop3/pop3_int.h"
#include "lib/log.h"
#include "proc/worker.h"
#include "state/state.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/bufferevent.h>

static struct workpool *box_pool;

/* On a thread: only s->box, s->read_buf and the job's own fields are
 * written. */
static void
pop3_box_work(struct workpool_job *wj)
{
	struct pop3_box_job *job = (struct pop3_box_job *)wj;
	struct pop3_session *s = job->s;
	const struct conf *c = s->w->conf;
	size_t n;
	uint64_t octets;

	switch (job->what) {
	case POP3_BOX_OPEN:
		job->opened = maildir_box_open(&s->box, c->mailboxes, s->user);
		job->err = errno;
		if (job->opened != MAILDIR_OPEN_OK)
			break;
		pop3_count(s, &n, &octets);
		/* Logged here, so that it comes before the grant's line. */
		log_info("%016" PRIx64 " pop3 login user=%s mech=%s "
		    "messages=%zu octets=%" PRIu64, s->id, s->user,
		    s->login_mech, n, octets);
		/* The grant is durable before the +OK; the shared store's
		 * connection belongs to the loop (pop3_login_opened). */
		if (state_grant_is_local(c)) {
			(void)state_grant_add(c, (const struct sockaddr *)&s->ss,
			    s->user, s->id, time(NULL), NULL, NULL, NULL);
			job->granted = 1;
		}
		break;
	case POP3_BOX_UPDATE:
		job->removed = maildir_box_expunge(&s->box);
		pop3_count(s, &n, &octets);
		log_info("%016" PRIx64 " pop3 quit user=%s deleted=%ld "
		    "kept=%zu%s", s->id, s->user, job->removed < 0 ? 0 :
		    job->removed, n, job->removed < 0 ?
		    " result=update-failed" : "");
		break;
	case POP3_BOX_MSG:
		s->msg_fd = maildir_box_open_msg(&s->box, s->msg_index);
		job->err = errno;
		break;
	case POP3_BOX_READ:
		do
			job->nread = pread(s->msg_fd, s->read_buf, POP3_CHUNK,
			    s->msg_off);
		while (job->nread == -1 && errno == EINTR);
		job->err = errno;
		break;
	}
}

/* On the loop. */
static void
pop3_box_done(struct workpool_job *wj)
{
	struct pop3_box_job *job = (struct pop3_box_job *)wj;
	struct pop3_session *s = job->s;

	s->flags &= ~POP3_F_BOX_BUSY;
	if (job->what == POP3_BOX_OPEN && job->opened == MAILDIR_OPEN_OK)
		s->box_open = 1;	/* pop3_free closes it, whatever else */
	if (s->flags & POP3_F_ORPHAN) {
		pop3_free(s);
		return;
	}
	if (s->state != POP3_ST_BOX_WAIT)
		return;		/* closing already (a write timeout) */
	if (job->what == POP3_BOX_READ) {
		pop3_read_done(s, job);
		return;
	}
	if (job->what == POP3_BOX_MSG) {
		pop3_msg_opened(s, job);
		return;
	}
	if (job->what == POP3_BOX_OPEN)
		pop3_login_opened(s, job);
	else
		pop3_quit_updated(s, job);
	if (s->state == POP3_ST_BOX_WAIT)
		return;		/* the login's grant: pop3_login_granted */
	pop3_box_resume(s);
}

void
pop3_box_resume(struct pop3_session *s)
{
	if ((s->flags & POP3_F_SHUTDOWN) && s->state != POP3_ST_QUIT) {
		pop3_reply(s, P_SHUTDOWN, NULL);
		pop3_close_after_reply(s, "shutdown");
		return;
	}
	pop3_resume(s);
}

void
pop3_box_start(struct pop3_session *s, enum pop3_box_work what)
{
	struct pop3_box_job *job = &s->box_job;

	memset(job, 0, sizeof *job);
	job->job.work = pop3_box_work;
	job->job.done = pop3_box_done;
	job->s = s;
	job->what = what;
	pop3_enter_state(s, POP3_ST_BOX_WAIT);
	bufferevent_disable(s->bev, EV_READ);
	s->flags |= POP3_F_BOX_BUSY;
	workpool_submit(box_pool, &job->job);
}

int
pop3_box_init(struct event_base *base, unsigned nthreads)
{
	return (box_pool = workpool_new(base, nthreads)) == NULL ? -1 : 0;
}

void
pop3_box_shutdown(void)
{
	workpool_free(box_pool);
	box_pool = NULL;
}
