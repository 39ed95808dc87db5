/*
 * qcommit.c - the commit pool (see qcommit.h): each commit is a job on
 * a workpool of its own, inside each worker.
 */
#include "queue/qcommit.h"
#include "lib/workpool.h"
#include "lib/xalloc.h"

#include <errno.h>
#include <stdlib.h>

struct qcommit_job {
	struct workpool_job	 job;		/* first */
	struct qfile		*qf;
	qcommit_done_fn		 done;
	void			*arg;
	int			 result, err;
};

static struct workpool *pool;

static void
qcommit_work(struct workpool_job *wj)
{
	struct qcommit_job *job = (struct qcommit_job *)wj;

	job->result = qstore_commit(job->qf);
	job->err = job->result == -1 ? errno : 0;
}

static void
qcommit_done(struct workpool_job *wj)
{
	struct qcommit_job *job = (struct qcommit_job *)wj;

	job->done(job->arg, job->result, job->err);
	free(job);
}

int
qcommit_init(struct event_base *base, unsigned nthreads)
{
	return (pool = workpool_new(base, nthreads)) == NULL ? -1 : 0;
}

void
qcommit_submit(struct qfile *qf, qcommit_done_fn done, void *arg)
{
	struct qcommit_job *job = xcalloc(1, sizeof *job);

	job->job.work = qcommit_work;
	job->job.done = qcommit_done;
	job->qf = qf;
	job->done = done;
	job->arg = arg;
	workpool_submit(pool, &job->job);
}

void
qcommit_shutdown(void)
{
	/* The callbacks of the last jobs run here: their sessions still
	 * get their 250. */
	workpool_free(pool);
	pool = NULL;
}
