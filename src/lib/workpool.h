/*
 * workpool.h - a few threads that do an event loop's blocking work
 * (fsyncs, file creation, Maildir deliveries): jobs wait in one FIFO,
 * each runs on the first free thread, and its callback runs back on
 * the loop.  Used by the workers' commit pool (queue/qcommit.c) and the
 * queue managers' delivery passes (queue/qmgr.c).
 *
 * The caller owns each job's memory (embed a struct workpool_job in
 * its own state): submitting allocates nothing.
 */
#ifndef POSTERN_WORKPOOL_H
#define POSTERN_WORKPOOL_H

#include <event2/event.h>

struct workpool;

struct workpool_job {
	void			(*work)(struct workpool_job *);	/* a thread */
	void			(*done)(struct workpool_job *);	/* the loop */
	struct workpool_job	*next;				/* the pool's */
};

/* nthreads threads, their completions read by an event on base.
 * NULL (errno set) if a thread or the event cannot be made. */
struct workpool	*workpool_new(struct event_base *, unsigned nthreads);
/* Run job->work on a thread, then job->done on the loop.  The job must
 * stay allocated until done has run. */
void		 workpool_submit(struct workpool *, struct workpool_job *);
/* Let the threads finish every job submitted, stop them, and run the
 * callbacks still due (on the caller).  NULL is a no-op. */
void		 workpool_free(struct workpool *);

#endif
