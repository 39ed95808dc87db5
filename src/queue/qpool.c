/*
 * qpool.c - spare unnamed message files (see qpool.h).  One mutex guards
 * a small stack of descriptors; the filler thread sleeps on a condition
 * until takes have used half of them, then makes them all again: woken
 * once per size/2 messages instead of once per message, which is a
 * futex call and a context switch saved on each of the others.
 */
#include "queue/qpool.h"
#include "lib/log.h"
#include "lib/strutil.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#define QPOOL_MAX	64

static struct {
	pthread_mutex_t	 lock;
	pthread_cond_t	 room;
	pthread_t	 thread;
	int		 running, stopping;
	char		 dir[PATH_MAX];
	int		(*make)(void *);
	void		*arg;
	unsigned	 size, n;
	int		 fds[QPOOL_MAX];
} pool = { .lock = PTHREAD_MUTEX_INITIALIZER,
    .room = PTHREAD_COND_INITIALIZER };

static void *
qpool_fill(void *unused)
{
	pthread_mutex_lock(&pool.lock);
	while (!pool.stopping) {
		int fd;

		/* Sleep while more than half are left (see qpool_take). */
		if (pool.n > pool.size / 2) {
			pthread_cond_wait(&pool.room, &pool.lock);
			continue;
		}
		while (pool.n < pool.size && !pool.stopping) {
			pthread_mutex_unlock(&pool.lock);
			fd = pool.make(pool.arg);
			pthread_mutex_lock(&pool.lock);
			if (fd == -1) {
				/* Out of descriptors or inodes: the sessions
				 * make their own (and report it) until a take
				 * wakes us. */
				log_warn("queue: spare file in %s", pool.dir);
				pthread_cond_wait(&pool.room, &pool.lock);
				break;
			}
			pool.fds[pool.n++] = fd;
		}
	}
	pthread_mutex_unlock(&pool.lock);
	return NULL;
}

int
qpool_start(const char *dir, int (*make)(void *), void *arg, unsigned size)
{
	int fd;

	if (strlcpy(pool.dir, dir, sizeof pool.dir) >= sizeof pool.dir) {
		errno = ENAMETOOLONG;
		return -1;
	}
	pool.make = make;
	pool.arg = arg;
	/* The first one here, so that the file system's answer (and the
	 * probe behind it) comes before any thread is running. */
	if ((fd = make(arg)) == -1)
		return -1;
	pool.size = size < QPOOL_MAX ? size : QPOOL_MAX;
	pool.fds[0] = fd;
	pool.n = 1;
	pool.stopping = 0;
	if (pthread_create(&pool.thread, NULL, qpool_fill, NULL) != 0) {
		close(fd);
		pool.n = 0;
		return -1;
	}
	pool.running = 1;
	return 0;
}

int
qpool_take(const char *dir)
{
	int fd = -1;

	if (!pool.running || strcmp(dir, pool.dir) != 0)
		return -1;
	pthread_mutex_lock(&pool.lock);
	if (pool.n > 0)
		fd = pool.fds[--pool.n];
	if (pool.n <= pool.size / 2)
		pthread_cond_signal(&pool.room);
	pthread_mutex_unlock(&pool.lock);
	return fd;
}

void
qpool_stop(void)
{
	if (!pool.running)
		return;
	pthread_mutex_lock(&pool.lock);
	pool.stopping = 1;
	pthread_cond_signal(&pool.room);
	pthread_mutex_unlock(&pool.lock);
	pthread_join(pool.thread, NULL);
	while (pool.n > 0)
		close(pool.fds[--pool.n]);
	pool.running = 0;
}
