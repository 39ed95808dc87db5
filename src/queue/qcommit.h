/*
 * qcommit.h - the spool commit pool: fsync and rename happen on threads
 * (a lib/workpool.h in each worker), off the event loop, so one slow
 * disk flush never stalls other sessions, and concurrent messages'
 * flushes proceed (and are grouped by the file system's journal)
 * together.  Completions come back on the loop.
 */
#ifndef POSTERN_QCOMMIT_H
#define POSTERN_QCOMMIT_H

#include <event2/event.h>

#include "queue/qstore.h"

struct qcommit_job;
typedef void (*qcommit_done_fn)(void *arg, int result, int err);

int	qcommit_init(struct event_base *, unsigned nthreads);
/* Commit qf on a pool thread; done(arg, 0|-1, errno) runs later on the
 * loop.  The qfile must stay allocated until then. */
void	qcommit_submit(struct qfile *, qcommit_done_fn, void *arg);
/* Wait for queued commits, stop the threads. */
void	qcommit_shutdown(void);

#endif
