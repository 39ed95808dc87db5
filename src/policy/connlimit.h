/*
 * connlimit.h - concurrent connections per client address, counted
 * across every worker process (max-connections-per-ip).
 *
 * The table lives in shared anonymous memory that the master maps
 * before it forks anything, so all workers (and the workers of a
 * reloaded generation) count in the same place.  Each worker counts in
 * its own column; when a worker exits or crashes, the master clears its
 * column, so connections a dead worker held are never counted forever.
 * Without connlimit_init (unit tests, `postern config check`) every
 * connection is allowed and nothing is counted.
 */
#ifndef POSTERN_CONNLIMIT_H
#define POSTERN_CONNLIMIT_H

#include <sys/socket.h>
#include <sys/types.h>

/* Master, before the first fork. */
void	connlimit_init(void);
/* Master, around forking a worker: pick a free column for the child
 * (it inherits the choice) and record who has it. pid -1: fork failed. */
void	connlimit_before_fork(void);
void	connlimit_after_fork(pid_t);
/* Master, for every child reaped. */
void	connlimit_child_exited(pid_t);

/* Worker: count one more connection from this client unless it already
 * has max.  1: counted (call connlimit_release later); 0: not counted
 * (no limit, no table, no room); -1: over the limit. */
int	connlimit_acquire(const struct sockaddr *, unsigned max);
void	connlimit_release(const struct sockaddr *);

#endif
