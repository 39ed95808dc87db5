/*
 * workpool.c - blocking work off the event loop (see workpool.h).  Jobs
 * wait in a FIFO under one mutex; finished jobs go to a done list and
 * an eventfd wakes the loop, which runs their callbacks oldest first.
 */
#include "lib/workpool.h"
#include "lib/log.h"
#include "lib/xalloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct workpool {
	pthread_mutex_t		 lock;
	pthread_cond_t		 cond;
	struct workpool_job	*todo, **todo_tail;
	struct workpool_job	*done;		/* newest first */
	pthread_t		*threads;
	unsigned		 nthreads;
	int			 stopping;
	int			 efd;
	struct event		*ev;
};

static void *
workpool_thread(void *arg)
{
	struct workpool *wp = arg;

	for (;;) {
		struct workpool_job *job;
		uint64_t one = 1;
		int wake;

		pthread_mutex_lock(&wp->lock);
		while (wp->todo == NULL && !wp->stopping)
			pthread_cond_wait(&wp->cond, &wp->lock);
		if (wp->todo == NULL) {
			pthread_mutex_unlock(&wp->lock);
			return NULL;
		}
		job = wp->todo;
		wp->todo = job->next;
		if (wp->todo == NULL)
			wp->todo_tail = &wp->todo;
		pthread_mutex_unlock(&wp->lock);

		job->work(job);

		/* Only the job that finds the done list empty wakes the
		 * loop: the others are reaped with it, one write fewer each.
		 * (A write after the loop has taken the list is a spurious
		 * wake-up with nothing to reap, never a lost one.) */
		pthread_mutex_lock(&wp->lock);
		wake = wp->done == NULL;
		job->next = wp->done;
		wp->done = job;
		pthread_mutex_unlock(&wp->lock);
		if (wake && write(wp->efd, &one, sizeof one) == -1 &&
		    errno != EAGAIN)
			log_warn("workpool: eventfd write");
	}
}

/* On the loop: the callbacks of every finished job, oldest first. */
static void
workpool_reap(evutil_socket_t fd, short ev, void *arg)
{
	struct workpool *wp = arg;
	struct workpool_job *list, *rev = NULL, *next;
	uint64_t n;

	if (read(wp->efd, &n, sizeof n) == -1 && errno != EAGAIN)
		log_warn("workpool: eventfd read");
	pthread_mutex_lock(&wp->lock);
	list = wp->done;
	wp->done = NULL;
	pthread_mutex_unlock(&wp->lock);
	for (; list; list = next) {
		next = list->next;
		list->next = rev;
		rev = list;
	}
	for (; rev; rev = next) {
		next = rev->next;
		rev->done(rev);
	}
}

struct workpool *
workpool_new(struct event_base *base, unsigned nthreads)
{
	struct workpool *wp = xcalloc(1, sizeof *wp);

	pthread_mutex_init(&wp->lock, NULL);
	pthread_cond_init(&wp->cond, NULL);
	wp->todo_tail = &wp->todo;
	if ((wp->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1)
		goto fail;
	wp->ev = event_new(base, wp->efd, EV_READ | EV_PERSIST, workpool_reap,
	    wp);
	if (wp->ev == NULL || event_add(wp->ev, NULL) == -1)
		goto fail;
	wp->threads = xcalloc(nthreads, sizeof *wp->threads);
	for (; wp->nthreads < nthreads; wp->nthreads++) {
		int rc = pthread_create(&wp->threads[wp->nthreads], NULL,
		    workpool_thread, wp);
		if (rc != 0) {
			errno = rc;
			goto fail;
		}
	}
	return wp;
fail:
	workpool_free(wp);
	return NULL;
}

void
workpool_submit(struct workpool *wp, struct workpool_job *job)
{
	job->next = NULL;
	pthread_mutex_lock(&wp->lock);
	*wp->todo_tail = job;
	wp->todo_tail = &job->next;
	pthread_cond_signal(&wp->cond);
	pthread_mutex_unlock(&wp->lock);
}

void
workpool_free(struct workpool *wp)
{
	int saved = errno;

	if (wp == NULL)
		return;
	pthread_mutex_lock(&wp->lock);
	wp->stopping = 1;
	pthread_cond_broadcast(&wp->cond);
	pthread_mutex_unlock(&wp->lock);
	for (unsigned i = 0; i < wp->nthreads; i++)
		pthread_join(wp->threads[i], NULL);
	if (wp->efd != -1)
		workpool_reap(-1, 0, wp);
	if (wp->ev != NULL)
		event_free(wp->ev);
	if (wp->efd != -1)
		close(wp->efd);
	pthread_cond_destroy(&wp->cond);
	pthread_mutex_destroy(&wp->lock);
	free(wp->threads);
	free(wp);
	errno = saved;
}
