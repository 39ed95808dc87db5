/*
 * state_redis.c - the shared state on a Redis server (see state.h and
 * docs/scaling.md).  Keys:
 *
 *   postern:grant:ADDRESS           "1", expires after pop-before-smtp
 *   postern:rate:K:KEY:HOUR         count of kind K (m|r) in that clock
 *                                   hour; expires after two hours
 *   postern:authfail:ADDRESS        failures; expires auth-throttle BLOCK
 *                                   after the first
 *   postern:authblock:ADDRESS       "1" while blocked; expires after BLOCK
 *
 * Every update is one atomic command or one Lua script (EVAL), so two
 * nodes never lose each other's counts.
 *
 * This is the auth process's client: synchronous, since that process
 * answers one step at a time anyway.  XXX: a Redis that answers slowly
 * delays every authentication by up to 100 ms per call (the timeout for
 * connecting and for each answer); a failure marks Redis down for
 * STATE_RETRY seconds in this process (the breaker), during which
 * nothing is tried and the callers take their fallback at once.  The
 * workers ask without waiting (state_async.c).
 *
 * One connection per process, opened at its first use.
 */
#include "state/state.h"
#include "lib/log.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

static struct {
	redisContext	*ctx;
	pid_t		 pid;		/* the process that connected */
	time_t		 down_until;
	int		 down;		/* an outage is being reported */
} rs;

/* KEYS: failures, block; ARGV: max, block seconds.  The failure window
 * starts at the first failure, as in auth/throttle.c. */
static const char fail_script[] =
    "local n = redis.call('INCR', KEYS[1])\n"
    "if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end\n"
    "if n >= tonumber(ARGV[1]) then\n"
    "  redis.call('SET', KEYS[2], '1', 'EX', ARGV[2])\n"
    "end\n"
    "return n\n";

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

static void
mark_down(const char *reason)
{
	char why[128];
	time_t now = time(NULL);

	/* reason may point into the context freed below. */
	(void)snprintf(why, sizeof why, "%s", reason);
	if (rs.ctx) {
		redisFree(rs.ctx);
		rs.ctx = NULL;
	}
	rs.down_until = now + STATE_RETRY;
	if (!rs.down) {
		/* Once per outage and process, not per session. */
		log_warnx("state: redis down (%s); relay by POP grant refused, "
		    "authentication answers a temporary error, retrying every "
		    "%ds", why, STATE_RETRY);
		rs.down = 1;
	}
}

static redisContext *
conn(const struct conf *c)
{
	struct timeval tv = { 0, STATE_TIMEOUT_MS * 1000 };
	char host[256];
	int port, db;

	if (rs.ctx && rs.pid != getpid()) {
		/* Inherited over fork: the parent's connection. */
		redisFree(rs.ctx);
		rs.ctx = NULL;
	}
	if (rs.ctx)
		return rs.ctx;
	if (rs.down && time(NULL) < rs.down_until)
		return NULL;
	if (state_redis_parse_url(c->state, host, sizeof host, &port, &db) == -1) {
		mark_down("bad URL in the state directive");
		return NULL;
	}
	rs.ctx = redisConnectWithTimeout(host, port, tv);
	if (rs.ctx == NULL || rs.ctx->err) {
		mark_down(rs.ctx ? rs.ctx->errstr : "out of memory");
		return NULL;
	}
	rs.pid = getpid();
	if (redisSetTimeout(rs.ctx, tv) != REDIS_OK) {
		mark_down("cannot set a timeout");
		return NULL;
	}
	if (db != 0) {
		char dbs[16];
		const char *argv[] = { "SELECT", dbs };
		redisReply *r;

		(void)snprintf(dbs, sizeof dbs, "%d", db);
		r = redisCommandArgv(rs.ctx, 2, argv, NULL);
		if (r == NULL || r->type == REDIS_REPLY_ERROR) {
			if (r)
				freeReplyObject(r);
			mark_down("SELECT failed");
			return NULL;
		}
		freeReplyObject(r);
	}
	return rs.ctx;
}

/* One command; the reply (to free), or NULL with Redis marked down. */
static redisReply *
cmd(const struct conf *c, int argc, const char **argv)
{
	int reused = rs.ctx != NULL && rs.pid == getpid();
	redisContext *ctx = conn(c);
	redisReply *r;

	if (ctx == NULL)
		return NULL;
	r = redisCommandArgv(ctx, argc, argv, NULL);
	if (r == NULL && reused) {
		/* A connection that sat idle may have been closed by a
		 * restarted Redis or a timeout: one fresh try first. */
		redisFree(rs.ctx);
		rs.ctx = NULL;
		if ((ctx = conn(c)) == NULL)
			return NULL;
		r = redisCommandArgv(ctx, argc, argv, NULL);
	}
	if (r == NULL) {
		mark_down(ctx->errstr[0] ? ctx->errstr : "no answer");
		return NULL;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		/* An answer, so the server is up; this is a bug or a Redis
		 * that refuses writes (read-only replica, out of memory). */
		log_warnx("state: redis %s: %s", argv[0], r->str);
		freeReplyObject(r);
		return NULL;
	}
	if (rs.down) {
		log_info("state: redis back");
		rs.down = 0;
	}
	return r;
}

static long long
int_reply(redisReply *r)
{
	long long v = -1;

	if (r == NULL)
		return -1;
	if (r->type == REDIS_REPLY_INTEGER)
		v = r->integer;
	freeReplyObject(r);
	return v;
}

int
state_redis_del(const struct conf *c, const char *key)
{
	const char *argv[] = { "DEL", key };

	return int_reply(cmd(c, 2, argv)) < 0 ? -1 : 0;
}

long
state_redis_ttl(const struct conf *c, const char *key)
{
	const char *argv[] = { "TTL", key };
	redisReply *r = cmd(c, 2, argv);
	long long v;

	if (r == NULL)
		return -1;
	v = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
	freeReplyObject(r);
	/* -2: no key; -1: a key without expiry, not one of ours. */
	return v > 0 ? (long)v : 0;
}

long
state_redis_fail(const struct conf *c, const char *addr, unsigned max,
    unsigned block)
{
	char fk[STATE_KEY_MAX], bk[STATE_KEY_MAX], maxs[16], blocks[16];
	const char *argv[] = { "EVAL", fail_script, "2", fk, bk, maxs, blocks };

	(void)snprintf(fk, sizeof fk, "postern:authfail:%s", addr);
	(void)snprintf(bk, sizeof bk, "postern:authblock:%s", addr);
	(void)snprintf(maxs, sizeof maxs, "%u", max ? max : 1);
	(void)snprintf(blocks, sizeof blocks, "%u", block ? block : 1);
	return (long)int_reply(cmd(c, 7, argv));
}
