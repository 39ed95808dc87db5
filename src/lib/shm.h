/*
 * shm.h - memory shared by the master and every process it forks
 * (MAP_SHARED|MAP_ANONYMOUS, created before the first fork), and the
 * lock that guards a table in it.  The lock is a process-shared, robust
 * pthread mutex: when a process dies holding it (a crashed worker), the
 * next locker gets the lock back instead of waiting forever.
 */
#ifndef POSTERN_SHM_H
#define POSTERN_SHM_H

#include <pthread.h>
#include <stddef.h>

/* Zero-filled shared memory; aborts if it cannot be had. */
void	*shm_xalloc(size_t);
void	 shm_mutex_init(pthread_mutex_t *);
/* 1 if the lock came back from a process that died holding it (the
 * table may be half-updated: its owner may want to check it), else 0. */
int	 shm_mutex_lock(pthread_mutex_t *);
void	 shm_mutex_unlock(pthread_mutex_t *);

#endif
