/*
 * state_async.c - the shared state as the processes ask it (see
 * state.h): POP-before-SMTP grants and sending counters in the workers,
 * failures and blocks in the auth process, without an event loop ever
 * waiting for Redis.
 *
 * With the local back end the answer is there at once (a grant file, a
 * counter in shared memory, the auth process's own failure table).  With
 * Redis each process keeps one connection, attached to its event loop
 * (hiredis' libevent adapter), and every question is one command on it:
 * sessions (or logins) wait for their own answer while the loop serves
 * the others, and the commands of many share the connection in flight.
 *
 * Each question has STATE_TIMEOUT_MS to be answered.  When one is not,
 * the connection fails, or Redis answers one with an error (a replica
 * after a failover refusing writes, a server out of memory or unable to
 * save), the connection is dropped and Redis counts as down for
 * STATE_RETRY seconds (the breaker): every question then waiting, and
 * every new one until the retry, gets the fallback answer at once: no
 * grant, the node's own counters, a grant not made, and for the auth
 * process "cannot tell" whether an address is blocked (a temporary
 * error for the login) and its own count of a failure.
 *
 * Keys:
 *
 *   postern:grant:ADDRESS           "user:NAME" (the POP3 login's),
 *                                   expires after pop-before-smtp; a
 *                                   value without "user:" (the "1" of
 *                                   earlier versions) is no grant
 *   postern:rate:K:KEY:HOUR         count of kind K (m|r) in that clock
 *                                   hour; expires after two hours
 *   postern:authfail:ADDRESS        failures; expires auth-throttle BLOCK
 *                                   after the first
 *   postern:authblock:ADDRESS       "1" while blocked; expires after BLOCK
 *
 * Every update is one atomic command or one Lua script (EVAL), so two
 * nodes never lose each other's counts.
 */
#include "state/state.h"
#include "auth/throttle.h"
#include "auth/userdb.h"
#include "policy/popbsmtp.h"
#include "lib/log.h"
#include "lib/netaddr.h"
#include "lib/strutil.h"
#include "lib/xalloc.h"

#include "deliver/dns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libevent.h>

enum ask_kind {
	ASK_GRANT_ADD,
	ASK_GRANT_CHECK,
	ASK_RATE,
	ASK_AUTH_BLOCKED,
	ASK_AUTH_FAIL,
};

struct state_ask {
	state_answer_fn		*fn;	/* NULL once cancelled */
	void			*arg;
	struct event		*timer;
	struct state_ask	*next;	/* waiting for the connection */
	char			*cmd;	/* while waiting: the command, in RESP */
	int			 cmdlen;
	enum ask_kind		 kind;
	/* What the fallback answer and the log need. */
	uint64_t		 sid;
	char			 addr[INET6_ADDRSTRLEN + 8];
	unsigned		 seconds;
	char			 user[STATE_USER_MAX + 1];	/* a grant's */
	char			*user_out;	/* the grant check's caller's */
	size_t			 user_outsz;
	char			 key[RATELIMIT_KEY_MAX];
	enum ratelimit_kind	 rate_kind;
	unsigned		 n, max;
	time_t			 now;
};

/*
 * The connection goes through three steps: the host name's addresses
 * (c-ares on the loop, as for MX look-ups: hiredis would call a
 * blocking getaddrinfo), the TCP connect (one address after another),
 * then ready.  Until it is ready, questions wait in the order asked, as
 * commands already formatted, each with its own timer running.
 *
 * An address that neither takes nor refuses the connect (its SYNs
 * dropped) is left after STATE_CONNECT_MS for the next one, as a
 * refused one is at once: the questions' own timers would drop the
 * whole attempt, and the next would look the name up again and start
 * at the same first address.  The last address has the questions'
 * time.
 */
static struct {
	struct event_base	*base;
	struct dns		*dns;		/* made for the first name */
	redisAsyncContext	*ac;
	int			 ready;		/* ac connected */
	int			 resolving;	/* a look-up is out */
	char			 host[256];
	int			 port, db;
	struct dns_addr		 addrs[DNS_ADDR_MAX];
	size_t			 naddrs, next;	/* next: the one to try */
	struct event		*connect_timer;	/* the address's time */
	/* The address whose connect last went unanswered: the next
	 * attempt starts after it (when its time ran out with the
	 * questions', as on a loaded machine or after a slow look-up). */
	struct sockaddr_storage	 silent;
	socklen_t		 silentlen;
	struct state_ask	*waiting, **waiting_tail;
	time_t			 down_until;	/* CLOCK_MONOTONIC seconds */
	int			 down;		/* an outage is being reported */
	int			 down_writes;	/* it is writes Redis refuses */
	const char		*down_means;	/* for the log, per process */
} ra = { .waiting_tail = &ra.waiting,
	 .down_means = "relay by POP grant refused" };

/* The auth process's configuration (state_auth_init); NULL elsewhere. */
static const struct conf *auth_conf;

/*
 * Sliding-hour estimate as in policy/ratelimit.c, done inside Redis so
 * that the read and the increment are one step for every node.
 * KEYS: current hour, previous hour; ARGV: n, max, seconds of the
 * previous hour still inside the last 60 minutes, lifetime.
 */
static const char rate_script[] =
    "local cur = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
    "local prev = tonumber(redis.call('GET', KEYS[2]) or '0')\n"
    "local est = cur + math.floor(prev * tonumber(ARGV[3]) / 3600)\n"
    "if est + tonumber(ARGV[1]) > tonumber(ARGV[2]) then return 0 end\n"
    "redis.call('INCRBY', KEYS[1], ARGV[1])\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[4])\n"
    "return 1\n";

/* KEYS: failures, block; ARGV: max, block seconds.  The failure window
 * starts at the first failure, as in auth/throttle.c. */
static const char fail_script[] =
    "local n = redis.call('INCR', KEYS[1])\n"
    "if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end\n"
    "if n >= tonumber(ARGV[1]) then\n"
    "  redis.call('SET', KEYS[2], '1', 'EX', ARGV[2])\n"
    "end\n"
    "return n\n";

static int	ask_fallback(struct state_ask *);
static int	ask_fallback_kept(struct state_ask *);
static int	throttle_count(const char *, time_t);
static void	ask_free(struct state_ask *);
static void	ask_replied(redisAsyncContext *, void *, void *);

void
state_async_init(struct event_base *base)
{
	ra.base = base;
}

/* Every question still waiting for the connection gets its fallback.
 * The list is taken first: an answer may lead its session to ask
 * again, and that question must not join this walk. */
static void
ra_fail_waiting(void)
{
	struct state_ask *q = ra.waiting, *next;
	int answer;

	ra.waiting = NULL;
	ra.waiting_tail = &ra.waiting;
	for (; q; q = next) {
		next = q->next;
		answer = ask_fallback_kept(q);
		if (q->fn)
			q->fn(q->arg, answer);
		ask_free(q);
	}
}

/* The breaker's clock: with the wall clock, a step back would keep it
 * open for as long as the step, and one forward would close it early. */
static time_t
ra_now(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* Redis counted as down: questions get their fallback at once. */
static int
ra_breaker_open(void)
{
	return ra.down && ra_now() < ra.down_until;
}

static void
ra_down(const char *reason)
{
	ra.down_until = ra_now() + STATE_RETRY;
	if (!ra.down) {
		/* Once per outage and process, not per session. */
		log_warnx("state: redis down (%s); %s, retrying every %ds",
		    reason, ra.down_means, STATE_RETRY);
		ra.down = 1;
	}
	ra_fail_waiting();
}

static void
ra_connect_timer_stop(void)
{
	if (ra.connect_timer)
		evtimer_del(ra.connect_timer);
}

/* Drop our connection: its questions are answered (with the fallback)
 * from inside redisAsyncFree, or right after the callback running now.
 * A look-up still out is left to finish: its addresses serve the next
 * connection. */
static void
ra_close(const char *reason)
{
	redisAsyncContext *ac = ra.ac;
	char why[320];

	/* reason may point into the context freed below. */
	(void)strlcpy(why, reason, sizeof why);
	ra_connect_timer_stop();
	ra.ac = NULL;
	ra.ready = 0;
	ra_down(why);
	if (ac)
		redisAsyncFree(ac);
}

/* hiredis is freeing this context itself (a failed connect, a lost
 * connection): forget it, it must not take new questions. */
static void
ra_lost(const redisAsyncContext *ac, const char *reason)
{
	if (ac != ra.ac)
		return;
	ra_connect_timer_stop();
	ra.ac = NULL;
	ra.ready = 0;
	ra_down(reason);
}

static void	ra_connect_next(void);

static void
ra_selected(redisAsyncContext *ac, void *reply, void *privdata)
{
	redisReply *r = reply;

	if (r == NULL)
		ra_lost(ac, "SELECT not answered");	/* going away */
	else if (ac == ra.ac && r->type == REDIS_REPLY_ERROR)
		ra_close("SELECT failed");
}

/* Connected: the database first, then the questions in the order asked
 * (hiredis keeps the order of its commands). */
static void
ra_ready(redisAsyncContext *ac)
{
	struct state_ask *q, *next;

	ra.ready = 1;
	if (ra.db != 0 && redisAsyncCommand(ac, ra_selected, NULL,
	    "SELECT %d", ra.db) != REDIS_OK) {
		ra_close("SELECT failed");
		return;
	}
	q = ra.waiting;
	ra.waiting = NULL;
	ra.waiting_tail = &ra.waiting;
	for (; q; q = next) {
		next = q->next;
		q->next = NULL;
		/* Its session is gone; a login failure is counted all the
		 * same (authd.c: a cancelled exchange's failure stays). */
		if (q->fn == NULL && q->kind != ASK_AUTH_FAIL) {
			ask_free(q);
			continue;
		}
		if (redisAsyncFormattedCommand(ac, ask_replied, q, q->cmd,
		    (size_t)q->cmdlen) != REDIS_OK) {
			/* Kept to be answered with the fallback, below. */
			*ra.waiting_tail = q;
			ra.waiting_tail = &q->next;
			continue;
		}
		redisFreeCommand(q->cmd);
		q->cmd = NULL;
	}
	if (ra.waiting)
		ra_close(ac->errstr[0] ? ac->errstr : "cannot send");
}

static void
ra_connected(const redisAsyncContext *ac, int status)
{
	if (ac != ra.ac)
		return;
	ra_connect_timer_stop();
	if (status == REDIS_OK) {
		ra_ready(ra.ac);
		return;
	}
	/* hiredis frees this context when we return. */
	if (ra.next < ra.naddrs) {
		ra.ac = NULL;
		ra_connect_next();
	} else
		ra_lost(ac, ac->errstr[0] ? ac->errstr : "cannot connect");
}

static void
ra_disconnected(const redisAsyncContext *ac, int status)
{
	ra_lost(ac, status == REDIS_OK ? "connection closed" :
	    ac->errstr[0] ? ac->errstr : "connection lost");
}

/* The address being connected to (the last one tried) did not answer. */
static void
ra_note_silent(void)
{
	if (ra.next == 0 || ra.next > ra.naddrs)
		return;
	memcpy(&ra.silent, &ra.addrs[ra.next - 1].ss,
	    ra.addrs[ra.next - 1].len);
	ra.silentlen = ra.addrs[ra.next - 1].len;
}

/* The address being connected to has not answered: the next one. */
static void
ra_connect_timed_out(evutil_socket_t fd, short ev, void *arg)
{
	redisAsyncContext *ac = ra.ac;

	if (ac == NULL || ra.ready)
		return;
	/* Forgotten first: its callbacks, from inside the free, are no
	 * longer about our connection. */
	ra_note_silent();
	ra.ac = NULL;
	redisAsyncFree(ac);
	ra_connect_next();
}

/* Connect to the next address of the host; the questions wait until
 * the connect callback says how it went, or, with addresses left, at
 * most STATE_CONNECT_MS. */
static void
ra_connect_next(void)
{
	struct timeval tv = { 0, STATE_CONNECT_MS * 1000 };
	char ip[INET6_ADDRSTRLEN], err[128] = "no address";

	while (ra.next < ra.naddrs) {
		const struct dns_addr *a = &ra.addrs[ra.next++];
		const void *in = a->ss.ss_family == AF_INET6 ?
		    (const void *)&((const struct sockaddr_in6 *)&a->ss)->sin6_addr :
		    (const void *)&((const struct sockaddr_in *)&a->ss)->sin_addr;

		/* A numeric address: hiredis' getaddrinfo of it does no
		 * look-up. */
		if (inet_ntop(a->ss.ss_family, in, ip, sizeof ip) == NULL)
			continue;
		if ((ra.ac = redisAsyncConnect(ip, ra.port)) == NULL) {
			(void)strlcpy(err, "out of memory", sizeof err);
			break;
		}
		if (ra.ac->err) {
			(void)strlcpy(err, ra.ac->errstr, sizeof err);
			redisAsyncFree(ra.ac);
			ra.ac = NULL;
			continue;
		}
		if (redisLibeventAttach(ra.ac, ra.base) != REDIS_OK) {
			ra_close("cannot attach to the event loop");
			return;
		}
		(void)redisAsyncSetConnectCallback(ra.ac, ra_connected);
		(void)redisAsyncSetDisconnectCallback(ra.ac, ra_disconnected);
		if (ra.next < ra.naddrs && ra.connect_timer == NULL)
			ra.connect_timer = evtimer_new(ra.base,
			    ra_connect_timed_out, NULL);
		/* Without the timer the questions' own still bound it. */
		if (ra.next < ra.naddrs && ra.connect_timer)
			evtimer_add(ra.connect_timer, &tv);
		return;
	}
	ra_down(err);
}

static void
ra_resolved(void *arg, enum dns_status st, const struct dns_addr *addrs,
    size_t n)
{
	char why[320];

	ra.resolving = 0;
	if (st != DNS_OK) {
		(void)snprintf(why, sizeof why, "cannot resolve %s: %s",
		    ra.host, dns_status_str(st));
		ra_down(why);
		return;
	}
	memcpy(ra.addrs, addrs, n * sizeof *addrs);
	ra.naddrs = n;
	ra.next = 0;
	/* After the address that did not answer last time, if it is
	 * still among them: the ones before it go last. */
	for (size_t i = 0; i + 1 < n; i++)
		if (ra.silentlen && addrs[i].len == ra.silentlen &&
		    memcmp(&addrs[i].ss, &ra.silent, ra.silentlen) == 0) {
			memcpy(ra.addrs, addrs + i + 1, (n - i - 1) *
			    sizeof *addrs);
			memcpy(ra.addrs + (n - i - 1), addrs, (i + 1) *
			    sizeof *addrs);
			break;
		}
	ra_connect_next();
}

/* redis://HOST[:PORT][/DB]: an address is connected to at once, a name
 * looked up first. */
static void
ra_start(const struct conf *c)
{

	if (ra.base == NULL || state_redis_parse_url(c->state, ra.host,
	    sizeof ra.host, &ra.port, &ra.db) == -1) {
		ra_down("bad URL in the state directive");
		return;
	}
	memset(ra.addrs, 0, sizeof ra.addrs[0]);
	ra.next = 0;
	if ((ra.addrs[0].len = sockaddr_numeric(ra.host, (uint16_t)ra.port,
	    &ra.addrs[0].ss)) > 0)
		ra.naddrs = 1;
	else {
		if (ra.dns == NULL)
			ra.dns = dns_new(ra.base, c->resolver);
		ra.resolving = 1;
		dns_lookup_addr(ra.dns, ra.host, DNS_CONFIGURED, (uint16_t)ra.port,
		    ra_resolved, NULL);
		return;
	}
	ra_connect_next();
}

/* The answer without Redis: what each question falls back to. */
static int
ask_fallback(struct state_ask *q)
{
	switch (q->kind) {
	case ASK_GRANT_ADD:
		log_warnx("%016" PRIx64 " pop3 grant address=%s failed: "
		    "state store unreachable", q->sid, q->addr);
		return -1;
	case ASK_GRANT_CHECK:
		return 0;	/* no grant: relay fails closed */
	case ASK_RATE:
		/* XXX: while Redis is down each node counts alone, so a
		 * sender may get up to (nodes x max) through; refusing all
		 * mail instead would also refuse mail for local users. */
		return ratelimit_take(q->key, q->rate_kind, q->n, q->max,
		    q->now);
	case ASK_AUTH_BLOCKED:
		return -1;	/* cannot tell: nobody gets in */
	case ASK_AUTH_FAIL:
		/* Counted by this process alone, as the rate counters are,
		 * and blocked here from the limit on (state_auth_blocked
		 * reads this table first).  "Not counted" would let each
		 * guess go without a delay and without end while a Redis
		 * that takes reads but not writes still says "not
		 * blocked". */
		return throttle_count(q->addr, q->now);
	}
	return -1;
}

/* The fallback, also for a question whose session is gone when it is a
 * login failure: that is counted whatever becomes of the session. */
static int
ask_fallback_kept(struct state_ask *q)
{
	if (q->fn == NULL && q->kind != ASK_AUTH_FAIL)
		return -1;
	return ask_fallback(q);
}

/* Whether the question writes: a Redis that refuses writes may still
 * answer reads, and is not back until a write goes through. */
static int
ask_writes(const struct state_ask *q)
{
	return q->kind == ASK_GRANT_ADD || q->kind == ASK_RATE ||
	    q->kind == ASK_AUTH_FAIL;
}

/* Redis answered (an integer or OK); the caller's answer. */
static int
ask_answer(struct state_ask *q, const redisReply *r)
{
	switch (q->kind) {
	case ASK_GRANT_ADD:
		log_info("%016" PRIx64 " pop3 grant address=%s for=%us "
		    "store=redis user=%s", q->sid, q->addr, q->seconds, q->user);
		return 0;
	case ASK_GRANT_CHECK:
		/* nil: no grant.  Written only while the caller waits: a
		 * cancelled question's buffer may be gone. */
		if (r->type != REDIS_REPLY_STRING || r->len < 5 ||
		    r->len - 5 > STATE_USER_MAX ||
		    strncmp(r->str, "user:", 5) != 0 || q->fn == NULL)
			return 0;
		(void)strlcpy(q->user, r->str + 5, sizeof q->user);
		if (!userdb_name_valid(q->user) ||
		    strlcpy(q->user_out, q->user, q->user_outsz) >=
		    q->user_outsz) {
			q->user_out[0] = '\0';
			return 0;
		}
		return 1;
	case ASK_RATE:
		return r->type == REDIS_REPLY_INTEGER && r->integer != 0;
	case ASK_AUTH_BLOCKED:	/* TTL: -2 no key; -1 a key without */
	case ASK_AUTH_FAIL:	/* expiry, not one of ours */
		if (r->type != REDIS_REPLY_INTEGER || r->integer <= 0)
			return 0;
		return r->integer > INT_MAX ? INT_MAX : (int)r->integer;
	}
	return -1;
}

static void
ask_free(struct state_ask *q)
{
	if (q->timer)
		event_free(q->timer);
	if (q->cmd)
		redisFreeCommand(q->cmd);
	free(q);
}

static void
ask_replied(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct state_ask *q = privdata;
	redisReply *r = reply;
	int answer;

	if (r == NULL) {
		/* The context is going away: ours, dropped by ra_close, or
		 * hiredis' own after an error. */
		ra_lost(ac, ac->errstr[0] ? ac->errstr : "no answer");
		answer = ask_fallback_kept(q);
	} else if (r->type == REDIS_REPLY_ERROR) {
		/* The server is up but will not do this (READONLY after a
		 * failover, MISCONF, OOM): the next question would most
		 * likely fail alike, and a store that takes reads but not
		 * writes would count no failure while it still answers
		 * "not blocked".  So it counts as down, as if unreachable;
		 * the other questions on the connection get their fallback
		 * after this callback. */
		if (ac == ra.ac) {
			ra.down_writes = ask_writes(q);
			ra_close(r->str);
		}
		answer = ask_fallback_kept(q);
	} else {
		if (ra.down && ac == ra.ac &&
		    (!ra.down_writes || ask_writes(q))) {
			log_info("state: redis back");
			ra.down = 0;
			ra.down_writes = 0;
		}
		answer = ask_answer(q, r);
	}
	if (q->fn)
		q->fn(q->arg, answer);
	ask_free(q);
}

static void
ask_timed_out(evutil_socket_t fd, short ev, void *arg)
{
	char why[320];

	/* The question itself is answered from inside ra_close, with
	 * every other one waiting or on the connection. */
	if (ra.resolving)
		(void)snprintf(why, sizeof why, "no address for %s within "
		    "%d ms", ra.host, STATE_TIMEOUT_MS);
	else if (ra.ac && !ra.ready) {
		(void)snprintf(why, sizeof why, "not connected within %d ms",
		    STATE_TIMEOUT_MS);
		ra_note_silent();
	}
	else
		(void)snprintf(why, sizeof why, "no answer within %d ms",
		    STATE_TIMEOUT_MS);
	ra_close(why);
}

/*
 * Send q as the command argv, or keep it until the connection is up.
 * STATE_PENDING: q->fn gets the answer later, and *ticket is q (for
 * state_ask_cancel).  Anything else is the answer now (Redis down: the
 * fallback), and q is gone.
 */
static int
ask_send(const struct conf *c, struct state_ask *q, int argc,
    const char **argv, struct state_ask **ticket)
{
	struct timeval tv = { 0, STATE_TIMEOUT_MS * 1000 };
	int answer;

	if (ra.ac == NULL && !ra.resolving && !ra_breaker_open())
		ra_start(c);
	/* While the breaker is open only a connection that is up takes
	 * questions (a look-up that ended meanwhile may have made one). */
	if ((!ra.ready && (ra_breaker_open() || (ra.ac == NULL &&
	    !ra.resolving))) ||
	    (q->timer = evtimer_new(ra.base, ask_timed_out, q)) == NULL)
		goto fallback;
	if (ra.ready) {
		if (redisAsyncCommandArgv(ra.ac, ask_replied, q, argc, argv,
		    NULL) != REDIS_OK) {
			ra_close(ra.ac->errstr[0] ? ra.ac->errstr :
			    "cannot send");
			goto fallback;
		}
	} else {
		if ((q->cmdlen = redisFormatCommandArgv(&q->cmd, argc, argv,
		    NULL)) <= 0)
			goto fallback;
		*ra.waiting_tail = q;
		ra.waiting_tail = &q->next;
	}
	evtimer_add(q->timer, &tv);
	*ticket = q;
	return STATE_PENDING;
fallback:
	answer = ask_fallback(q);
	ask_free(q);
	return answer;
}

static struct state_ask *
ask_new(enum ask_kind kind, state_answer_fn *fn, void *arg)
{
	struct state_ask *q = xcalloc(1, sizeof *q);

	q->kind = kind;
	q->fn = fn;
	q->arg = arg;
	return q;
}

void
state_ask_cancel(struct state_ask *q)
{
	/* Freed when its reply comes or its connection goes; its timer
	 * stays, since Redis is just as slow for the others. */
	if (q)
		q->fn = NULL;
}

int
state_grant_is_local(const struct conf *c)
{
	return c->state[0] == '\0';
}

int
state_grant_add(const struct conf *c, const struct sockaddr *sa,
    const char *user, uint64_t sid, time_t now, state_answer_fn *fn,
    void *arg, struct state_ask **ticket)
{
	struct state_ask *q;
	char key[STATE_KEY_MAX], secs[16], value[STATE_USER_MAX + 6];
	const char *argv[] = { "SET", key, value, "EX", secs };

	if (state_grant_is_local(c))
		return popbsmtp_grant(c, sa, user, sid, now);
	if (c->pop_before_smtp == 0)
		return 0;
	if (!userdb_name_valid(user))
		return -1;
	q = ask_new(ASK_GRANT_ADD, fn, arg);
	q->sid = sid;
	q->seconds = (unsigned)c->pop_before_smtp;
	(void)strlcpy(q->user, user, sizeof q->user);
	if (popbsmtp_key(c, sa, q->addr, sizeof q->addr) == -1) {
		free(q);
		return -1;
	}
	(void)snprintf(key, sizeof key, "postern:grant:%s", q->addr);
	(void)snprintf(value, sizeof value, "user:%s", user);
	(void)snprintf(secs, sizeof secs, "%u", q->seconds);
	return ask_send(c, q, 5, argv, ticket);
}

int
state_grant_check(const struct conf *c, const struct sockaddr *sa,
    time_t now, char *user, size_t usersz, state_answer_fn *fn, void *arg,
    struct state_ask **ticket)
{
	struct state_ask *q;
	char addr[INET6_ADDRSTRLEN + 8], key[STATE_KEY_MAX];
	const char *argv[] = { "GET", key };

	if (state_grant_is_local(c))
		return popbsmtp_granted(c, sa, now, user, usersz);
	user[0] = '\0';
	if (c->pop_before_smtp == 0 ||
	    popbsmtp_key(c, sa, addr, sizeof addr) == -1)
		return 0;
	(void)snprintf(key, sizeof key, "postern:grant:%s", addr);
	q = ask_new(ASK_GRANT_CHECK, fn, arg);
	q->user_out = user;
	q->user_outsz = usersz;
	return ask_send(c, q, 2, argv, ticket);
}

int
state_rate_take(const struct conf *c, const char *key,
    enum ratelimit_kind kind, unsigned n, unsigned max, time_t now,
    state_answer_fn *fn, void *arg, struct state_ask **ticket)
{
	struct state_ask *q;
	char cur[STATE_KEY_MAX], prev[STATE_KEY_MAX], ns[16], maxs[16];
	char lefts[16];
	time_t hour = now - now % 3600;
	const char *k = kind == RL_MESSAGES ? "m" : "r";
	const char *argv[] = { "EVAL", rate_script, "2", cur, prev, ns, maxs,
	    lefts, "7200" };

	if (max == 0)
		return 1;
	if (state_grant_is_local(c))	/* the same directive */
		return ratelimit_take(key, kind, n, max, now);
	if ((size_t)snprintf(cur, sizeof cur, "postern:rate:%s:%s:%lld", k,
	    key, (long long)hour) >= sizeof cur)
		return 1;	/* as ratelimit_take: an impossible key */
	(void)snprintf(prev, sizeof prev, "postern:rate:%s:%s:%lld", k, key,
	    (long long)(hour - 3600));
	(void)snprintf(ns, sizeof ns, "%u", n);
	(void)snprintf(maxs, sizeof maxs, "%u", max);
	(void)snprintf(lefts, sizeof lefts, "%lld",
	    (long long)(3600 - now % 3600));
	q = ask_new(ASK_RATE, fn, arg);
	strlcpy(q->key, key, sizeof q->key);
	q->rate_kind = kind;
	q->n = n;
	q->max = max;
	q->now = now;
	return ask_send(c, q, 9, argv, ticket);
}

/* redis://HOST[:PORT][/DB] */
int
state_redis_parse_url(const char *url, char *host, size_t hostsz, int *port,
    int *db)
{
	const char *p = url + 8, *end = p + strcspn(p, ":/");
	char *e;
	long v;

	if (strncmp(url, "redis://", 8) != 0 || end == p ||
	    (size_t)(end - p) >= hostsz)
		return -1;
	memcpy(host, p, (size_t)(end - p));
	host[end - p] = '\0';
	*port = 6379;
	*db = 0;
	if (*end == ':') {
		errno = 0;
		v = strtol(end + 1, &e, 10);
		if (errno || e == end + 1 || v < 1 || v > 65535)
			return -1;
		*port = (int)v;
		end = e;
	}
	if (*end == '/' && end[1]) {
		errno = 0;
		v = strtol(end + 1, &e, 10);
		if (errno || *e || v < 0 || v > INT_MAX)
			return -1;
		*db = (int)v;
	} else if (*end && strcmp(end, "/") != 0)
		return -1;
	return 0;
}

/* ---------------------------------------------------------------- */
/* the auth process's questions                                       */

void
state_auth_init(const struct conf *c, struct event_base *base)
{
	auth_conf = c;
	throttle_init(c->auth_max_failures, (unsigned)c->auth_block_time);
	state_async_init(base);
	ra.down_means = "relay by POP grant refused, authentication "
	    "answers a temporary error";
}

static int
state_auth_local(void)
{
	return auth_conf == NULL || auth_conf->state[0] == '\0';
}

/* A failure in the process's own table; the failures counted there. */
static int
throttle_count(const char *addr, time_t now)
{
	unsigned n = throttle_fail(addr, now);

	return n > INT_MAX ? INT_MAX : (int)n;
}

int
state_auth_blocked(const char *addr, time_t now, state_answer_fn *fn,
    void *arg, struct state_ask **ticket)
{
	char key[STATE_KEY_MAX];
	const char *argv[] = { "TTL", key };
	unsigned left = throttle_blocked(addr, now);

	/* With Redis, the table holds the failures Redis could not count
	 * (ask_fallback): their block holds on this node whatever Redis
	 * says. */
	if (state_auth_local() || left > 0)
		return left > INT_MAX ? INT_MAX : (int)left;
	(void)snprintf(key, sizeof key, "postern:authblock:%s", addr);
	return ask_send(auth_conf, ask_new(ASK_AUTH_BLOCKED, fn, arg), 2,
	    argv, ticket);
}

int
state_auth_fail(const char *addr, time_t now, state_answer_fn *fn,
    void *arg, struct state_ask **ticket)
{
	char fk[STATE_KEY_MAX], bk[STATE_KEY_MAX], maxs[16], blocks[16];
	const char *argv[] = { "EVAL", fail_script, "2", fk, bk, maxs, blocks };
	const struct conf *c = auth_conf;
	struct state_ask *q;

	if (state_auth_local())
		return throttle_count(addr, now);
	(void)snprintf(fk, sizeof fk, "postern:authfail:%s", addr);
	(void)snprintf(bk, sizeof bk, "postern:authblock:%s", addr);
	(void)snprintf(maxs, sizeof maxs, "%u",
	    c->auth_max_failures ? c->auth_max_failures : 1);
	(void)snprintf(blocks, sizeof blocks, "%u",
	    c->auth_block_time ? (unsigned)c->auth_block_time : 1);
	q = ask_new(ASK_AUTH_FAIL, fn, arg);
	(void)strlcpy(q->addr, addr, sizeof q->addr);
	q->now = now;
	return ask_send(c, q, 7, argv, ticket);
}

void
state_async_shutdown(void)
{
	/* Any question still out or waiting is answered with its
	 * fallback. */
	if (ra.connect_timer) {
		event_free(ra.connect_timer);
		ra.connect_timer = NULL;
	}
	if (ra.ac) {
		redisAsyncContext *ac = ra.ac;

		ra.ac = NULL;
		ra.ready = 0;
		redisAsyncFree(ac);
	}
	ra_fail_waiting();
	dns_free(ra.dns);	/* a look-up still out ends unanswered */
	ra.dns = NULL;
	ra.resolving = 0;
	ra.base = NULL;
}
