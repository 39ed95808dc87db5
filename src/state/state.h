/*
 * state.h - short-lived state that several postern nodes may share:
 * POP-before-SMTP grants, hourly sending counters, and authentication
 * failure counters and blocks.  Two back ends behind one interface:
 *
 *   local (the default)  grants are files under <spool>/grants
 *                        (policy/popbsmtp.c), counters live in the
 *                        node's shared memory (policy/ratelimit.c),
 *                        failures in the auth process (auth/throttle.c);
 *   redis://HOST:PORT/DB keys with expiry on one Redis server that every
 *                        node uses (state_redis.c, docs/scaling.md).
 *
 * Called in the workers (grants, counters) and the auth process
 * (failures).  With Redis unreachable the answers fail closed where that
 * matters: no grant, "unavailable" for the auth process; see each
 * function.
 */
#ifndef POSTERN_STATE_H
#define POSTERN_STATE_H

#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "conf/conf.h"
#include "policy/ratelimit.h"

/* After a POP3 login: let the client's address relay through the smtp
 * listener for pop-before-smtp.  0 or -1 (nothing granted). */
int	state_grant_add(const struct conf *, const struct sockaddr *,
	    uint64_t sid, time_t now);
/* Whether grants are local files, which any thread may write; the
 * shared store's connection belongs to the caller's event loop. */
int	state_grant_is_local(const struct conf *);
/* 1: the address holds a grant; 0: it does not, or the shared store
 * cannot be asked (fail closed: relay is refused). */
int	state_grant_check(const struct conf *, const struct sockaddr *,
	    time_t now);

/* Count n more of kind for key ("user:NAME", "ip:ADDRESS") unless that
 * takes its hourly rate over max, atomically for every node.  1: counted;
 * 0: over the limit.  With Redis unreachable the node's own counters
 * decide (policy/ratelimit.h): a limit per node, not none. */
int	state_rate_take(const struct conf *, const char *key,
	    enum ratelimit_kind, unsigned n, unsigned max, time_t now);

/* Authentication failures per client address (auth process).
 * state_auth_blocked: seconds the address stays blocked, 0 if it is
 * not, -1 if the shared store cannot be asked (answer a temporary
 * error: nobody gets in while the blocks cannot be read). */
void	state_auth_init(const struct conf *);
long	state_auth_blocked(const char *addr, time_t now);
/* A failure; returns the failures counted for the address (0 if the
 * store was unreachable). */
unsigned state_auth_fail(const char *addr, time_t now);
void	state_auth_success(const char *addr);

/* Redis back end (state_redis.c); same contracts, plus -1 = unreachable. */
int	state_redis_set_ex(const struct conf *, const char *key,
	    unsigned seconds);
int	state_redis_exists(const struct conf *, const char *key);
int	state_redis_rate(const struct conf *, const char *key,
	    enum ratelimit_kind, unsigned n, unsigned max, time_t now);
long	state_redis_ttl(const struct conf *, const char *key);
long	state_redis_fail(const struct conf *, const char *addr, unsigned max,
	    unsigned block);
int	state_redis_del(const struct conf *, const char *key);

#endif
