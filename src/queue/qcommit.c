/*
 * qcommit.c - commit thread pool (see qcommit.h).  Jobs wait in a FIFO
 * under one mutex; finished jobs go to a done list and an eventfd wakes
 * the loop, which runs their callbacks.  Runs inside each worker.
 */
#include "queue/qcommit.h"
#include "lib/log.h"
#include "lib/xalloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct qcommit_job {
	struct qfile		*qf;
	qcommit_done_fn		 done;
	void			*arg;
	int			 result, err;
	struct qcommit_job	*next;
};

static struct {
	pthread_mutex_t		 lock;
	pthread_cond_t		 cond;
	struct qcommit_job	*todo, **todo_tail;
	struct qcommit_job	*done;
	pthread_t		*threads;
	unsigned		 nthreads;
	int			 stopping;
	int			 efd;
	struct event		*ev;
} pool = { .lock = PTHREAD_MUTEX_INITIALIZER,
    .cond = PTHREAD_COND_INITIALIZER };

static void *
qcommit_thread(void *unused)
{
	for (;;) {
		struct qcommit_job *job;
		uint64_t one = 1;
		int wake;

		pthread_mutex_lock(&pool.lock);
		while (pool.todo == NULL && !pool.stopping)
			pthread_cond_wait(&pool.cond, &pool.lock);
		if (pool.todo == NULL) {
			pthread_mutex_unlock(&pool.lock);
			return NULL;
		}
		job = pool.todo;
		pool.todo = job->next;
		if (pool.todo == NULL)
			pool.todo_tail = &pool.todo;
		pthread_mutex_unlock(&pool.lock);

		job->result = qstore_commit(job->qf);
		job->err = job->result == -1 ? errno : 0;

		/* Only the job that finds the done list empty wakes the
		 * loop: the others are reaped with it, one write fewer each.
		 * (A write after the loop has taken the list is a spurious
		 * wake-up with nothing to reap, never a lost one.) */
		pthread_mutex_lock(&pool.lock);
		wake = pool.done == NULL;
		job->next = pool.done;
		pool.done = job;
		pthread_mutex_unlock(&pool.lock);
		if (wake && write(pool.efd, &one, sizeof one) == -1 &&
		    errno != EAGAIN)
			log_warn("qcommit: eventfd write");
	}
}

/* On the loop: run the callbacks of every finished job, oldest first. */
static void
qcommit_reap(evutil_socket_t fd, short ev, void *unused)
{
	struct qcommit_job *list, *rev = NULL, *next;
	uint64_t n;

	if (read(pool.efd, &n, sizeof n) == -1 && errno != EAGAIN)
		log_warn("qcommit: eventfd read");
	pthread_mutex_lock(&pool.lock);
	list = pool.done;
	pool.done = NULL;
	pthread_mutex_unlock(&pool.lock);
	for (; list; list = next) {
		next = list->next;
		list->next = rev;
		rev = list;
	}
	for (; rev; rev = next) {
		next = rev->next;
		rev->done(rev->arg, rev->result, rev->err);
		free(rev);
	}
}

int
qcommit_init(struct event_base *base, unsigned nthreads)
{
	pool.todo = NULL;
	pool.todo_tail = &pool.todo;
	pool.done = NULL;
	pool.stopping = 0;
	if ((pool.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1)
		return -1;
	pool.ev = event_new(base, pool.efd, EV_READ | EV_PERSIST, qcommit_reap,
	    NULL);
	if (pool.ev == NULL || event_add(pool.ev, NULL) == -1)
		return -1;
	pool.threads = xcalloc(nthreads, sizeof *pool.threads);
	for (pool.nthreads = 0; pool.nthreads < nthreads; pool.nthreads++)
		if (pthread_create(&pool.threads[pool.nthreads], NULL,
		    qcommit_thread, NULL) != 0)
			return -1;
	return 0;
}

void
qcommit_submit(struct qfile *qf, qcommit_done_fn done, void *arg)
{
	struct qcommit_job *job = xcalloc(1, sizeof *job);

	job->qf = qf;
	job->done = done;
	job->arg = arg;
	pthread_mutex_lock(&pool.lock);
	*pool.todo_tail = job;
	pool.todo_tail = &job->next;
	pthread_cond_signal(&pool.cond);
	pthread_mutex_unlock(&pool.lock);
}

void
qcommit_shutdown(void)
{
	pthread_mutex_lock(&pool.lock);
	pool.stopping = 1;
	pthread_cond_broadcast(&pool.cond);
	pthread_mutex_unlock(&pool.lock);
	for (unsigned i = 0; i < pool.nthreads; i++)
		pthread_join(pool.threads[i], NULL);
	/* Callbacks of the last jobs: their sessions still get their 250. */
	qcommit_reap(-1, 0, NULL);
	free(pool.threads);
	pool.threads = NULL;
	pool.nthreads = 0;
	if (pool.ev)
		event_free(pool.ev);
	pool.ev = NULL;
	close(pool.efd);
}
