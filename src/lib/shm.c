/*
 * shm.c - shared anonymous memory and robust process-shared locks (see
 * shm.h).  Used by the policy tables that every worker must see alike
 * (per-IP connection counts, sending rates).
 */
#include "lib/shm.h"
#include "lib/log.h"

#include <errno.h>
#include <sys/mman.h>

void *
shm_xalloc(size_t n)
{
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		fatal("shm: mmap %zu bytes", n);
	return p;
}

void
shm_mutex_init(pthread_mutex_t *m)
{
	pthread_mutexattr_t a;

	if (pthread_mutexattr_init(&a) != 0 ||
	    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED) != 0 ||
	    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST) != 0 ||
	    pthread_mutex_init(m, &a) != 0)
		fatalx("shm: cannot make a process-shared mutex");
	pthread_mutexattr_destroy(&a);
}

int
shm_mutex_lock(pthread_mutex_t *m)
{
	int rc = pthread_mutex_lock(m);

	/* The owner died inside its critical section.  Every section is a
	 * few stores to counters, so a table is at worst off by one where
	 * it was interrupted; the caller may repair it. */
	if (rc == EOWNERDEAD) {
		log_warnx("shm: a process died holding a table lock; "
		    "recovering it");
		pthread_mutex_consistent(m);
		return 1;
	}
	if (rc != 0)
		fatalx("shm: pthread_mutex_lock failed (%d)", rc);
	return 0;
}

void
shm_mutex_unlock(pthread_mutex_t *m)
{
	pthread_mutex_unlock(m);
}
