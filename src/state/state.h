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
 * Asked in the workers (grants, counters: without waiting, below) and
 * the auth process (failures).  With Redis unreachable the answers fail
 * closed where that matters: no grant, "unavailable" for the auth
 * process; see each function.
 */
#ifndef POSTERN_STATE_H
#define POSTERN_STATE_H

#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "conf/conf.h"
#include "policy/ratelimit.h"

/*
 * The workers' questions (state_async.c), asked from their event loops.
 * Each returns the answer at once where none needs a round trip (the
 * local back end, or Redis counted as down: then the fallback below),
 * or STATE_PENDING: then fn(arg, answer) comes later, from the event
 * loop, exactly once, unless state_ask_cancel(*ticket) comes first.
 */
#define STATE_PENDING	(-2)
typedef void	state_answer_fn(void *arg, int answer);
struct state_ask;
struct event_base;

void	state_async_init(struct event_base *);
void	state_async_shutdown(void);	/* answers what is still out */
void	state_ask_cancel(struct state_ask *);

/* After a POP3 login: let the client's address relay through the smtp
 * listener for pop-before-smtp.  0 or -1 (nothing granted).  Grants
 * that are local files may be made from any thread, with fn NULL. */
int	state_grant_add(const struct conf *, const struct sockaddr *,
	    uint64_t sid, time_t now, state_answer_fn *fn, void *arg,
	    struct state_ask **ticket);
/* Whether grants are local files (no `state` directive). */
int	state_grant_is_local(const struct conf *);
/* 1: the address holds a grant; 0: it does not, or the shared store
 * cannot be asked (fail closed: relay is refused). */
int	state_grant_check(const struct conf *, const struct sockaddr *,
	    time_t now, state_answer_fn *fn, void *arg,
	    struct state_ask **ticket);

/* Count n more of kind for key ("user:NAME", "ip:ADDRESS") unless that
 * takes its hourly rate over max, atomically for every node.  1: counted;
 * 0: over the limit.  With Redis unreachable the node's own counters
 * decide (policy/ratelimit.h): a limit per node, not none. */
int	state_rate_take(const struct conf *, const char *key,
	    enum ratelimit_kind, unsigned n, unsigned max, time_t now,
	    state_answer_fn *fn, void *arg, struct state_ask **ticket);

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

/* Both Redis clients: each command's bound, and how long a failure
 * counts Redis as down in that process (the breaker). */
#define STATE_TIMEOUT_MS	100
#define STATE_RETRY		3	/* seconds */
#define STATE_KEY_MAX		200	/* a key's length */

/* The auth process's Redis client (state_redis.c): synchronous; -1 =
 * unreachable. */
int	state_redis_parse_url(const char *url, char *host, size_t hostsz,
	    int *port, int *db);
long	state_redis_ttl(const struct conf *, const char *key);
long	state_redis_fail(const struct conf *, const char *addr, unsigned max,
	    unsigned block);
int	state_redis_del(const struct conf *, const char *key);

#endif
