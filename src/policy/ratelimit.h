/*
 * ratelimit.h - sending rates per hour, shared by every worker: the
 * ISP's brake on a hijacked account (user-rate-limit: messages and
 * recipients per authenticated user) and on a flooding client
 * (ip-rate-limit: messages per client address on unauthenticated
 * sessions outside mynetworks).
 *
 * A rate is estimated over a sliding hour from two fixed windows (the
 * current clock hour, and the previous one weighted by how much of it
 * still lies inside the last 60 minutes).  Counts live in shared
 * anonymous memory mapped by the master before it forks (lib/shm.h);
 * without ratelimit_init nothing is limited.
 */
#ifndef POSTERN_RATELIMIT_H
#define POSTERN_RATELIMIT_H

#include <sys/socket.h>
#include <time.h>

#define RATELIMIT_KEY_MAX	80

enum ratelimit_kind { RL_MESSAGES, RL_RECIPIENTS };

/* Master, before the first fork. */
void	ratelimit_init(void);
/*
 * Count n more of kind for key unless that takes its rate over max per
 * hour.  1: counted; 0: over the limit (nothing counted).  max 0 means
 * no limit (nothing is counted either).
 */
int	ratelimit_take(const char *key, enum ratelimit_kind, unsigned n,
	    unsigned max, time_t now);
/* The estimate for key now (tests, logs). */
unsigned ratelimit_rate(const char *key, enum ratelimit_kind, time_t now);

#endif
