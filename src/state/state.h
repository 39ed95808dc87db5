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
 *                        node uses (state_async.c, docs/scaling.md).
 *
 * Asked in the workers (grants, counters) and the auth process
 * (failures), without waiting (state_async.c).  With Redis unreachable
 * the answers fail closed where that matters: no grant, "unavailable"
 * for the auth process; see each function.
 */
#ifndef POSTERN_STATE_H
#define POSTERN_STATE_H

#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "conf/conf.h"
#include "policy/ratelimit.h"

/*
 * The questions, asked from the processes' event loops.
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

/* After a POP3 login as user: let the client's address relay through
 * the smtp listener for pop-before-smtp, on that user's account.  0 or
 * -1 (nothing granted).  Grants that are local files may be made from
 * any thread, with fn NULL. */
int	state_grant_add(const struct conf *, const struct sockaddr *,
	    const char *user, uint64_t sid, time_t now, state_answer_fn *fn,
	    void *arg, struct state_ask **ticket);
/* Whether grants are local files (no `state` directive). */
int	state_grant_is_local(const struct conf *);
/* 1: the address holds a grant, and user (usersz: STATE_USER_MAX + 1 or
 * more) holds the name of the user who made it; 0: it does not, or the
 * shared store cannot be asked (fail closed: relay is refused), or the
 * grant names no user (made before grants did).  With STATE_PENDING,
 * user is written just before fn is called, never after a cancel: it
 * must live as long as the question. */
int	state_grant_check(const struct conf *, const struct sockaddr *,
	    time_t now, char *user, size_t usersz, state_answer_fn *fn,
	    void *arg, struct state_ask **ticket);

/* Count n more of kind for key ("user:NAME", "ip:ADDRESS") unless that
 * takes its hourly rate over max, atomically for every node.  1: counted;
 * 0: over the limit.  With Redis unreachable the node's own counters
 * decide (policy/ratelimit.h): a limit per node, not none. */
int	state_rate_take(const struct conf *, const char *key,
	    enum ratelimit_kind, unsigned n, unsigned max, time_t now,
	    state_answer_fn *fn, void *arg, struct state_ask **ticket);

/*
 * Authentication failures per client address, as the auth process asks
 * them: the same way as the workers' questions above (the local back
 * end is auth/throttle.c in that process).  state_auth_init first, with
 * the process's loop.
 * state_auth_blocked: seconds the address stays blocked, 0 if it is
 * not, -1 if the shared store cannot be asked (answer a temporary
 * error: nobody gets in while the blocks cannot be read).
 * state_auth_fail: a failure; the failures now counted for the address
 * (it is blocked from auth_max_failures on).  One the shared store
 * could not count (unreachable, or refusing writes) is counted by the
 * auth process alone, and its block then holds on this node.  A
 * success forgets nothing: the failures expire with their window (one
 * account's login must not reset the count of guesses at others from
 * the same address).
 */
void	state_auth_init(const struct conf *, struct event_base *);
int	state_auth_blocked(const char *addr, time_t now, state_answer_fn *,
	    void *arg, struct state_ask **ticket);
int	state_auth_fail(const char *addr, time_t now, state_answer_fn *,
	    void *arg, struct state_ask **ticket);

/* Each question's bound, and how long a failure (no answer, no
 * connection, or an error reply) counts Redis as down in that process
 * (the breaker). */
#define STATE_TIMEOUT_MS	100
/* An address's time to take the connect before the next is tried (a
 * host name with several); within a question's bound. */
#define STATE_CONNECT_MS	(STATE_TIMEOUT_MS / 2)
#define STATE_RETRY		3	/* seconds */
#define STATE_KEY_MAX		200	/* a key's length */
#define STATE_USER_MAX		64	/* a grant's user: userdb_name_valid */

/* redis://HOST[:PORT][/DB]; -1 if it is not one. */
int	state_redis_parse_url(const char *url, char *host, size_t hostsz,
	    int *port, int *db);

#endif
