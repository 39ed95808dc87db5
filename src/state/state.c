/*
 * state.c - the shared short-lived state (see state.h): picks the local
 * implementation or Redis by the `state` directive.  Runs in the
 * workers and the auth process.
 */
#include "state/state.h"
#include "auth/throttle.h"
#include "lib/log.h"
#include "policy/popbsmtp.h"

#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#define KEY_MAX	160

static const struct conf *auth_conf;	/* auth process */

int
state_grant_add(const struct conf *c, const struct sockaddr *sa,
    uint64_t sid, time_t now)
{
	char addr[INET6_ADDRSTRLEN + 8], key[KEY_MAX];

	if (c->state[0] == '\0')
		return popbsmtp_grant(c, sa, sid, now);
	if (c->pop_before_smtp == 0)
		return 0;
	if (popbsmtp_key(c, sa, addr, sizeof addr) == -1)
		return -1;
	(void)snprintf(key, sizeof key, "postern:grant:%s", addr);
	if (state_redis_set_ex(c, key, (unsigned)c->pop_before_smtp) == -1) {
		log_warnx("%016" PRIx64 " pop3 grant address=%s failed: "
		    "state store unreachable", sid, addr);
		return -1;
	}
	log_info("%016" PRIx64 " pop3 grant address=%s for=%llus store=redis",
	    sid, addr, (unsigned long long)c->pop_before_smtp);
	return 0;
}

int
state_grant_is_local(const struct conf *c)
{
	return c->state[0] == '\0';
}

int
state_grant_check(const struct conf *c, const struct sockaddr *sa,
    time_t now)
{
	char addr[INET6_ADDRSTRLEN + 8], key[KEY_MAX];

	if (c->state[0] == '\0')
		return popbsmtp_granted(c, sa, now);
	if (c->pop_before_smtp == 0 ||
	    popbsmtp_key(c, sa, addr, sizeof addr) == -1)
		return 0;
	(void)snprintf(key, sizeof key, "postern:grant:%s", addr);
	/* -1 (unreachable) is no grant: relay fails closed. */
	return state_redis_exists(c, key) == 1;
}

int
state_rate_take(const struct conf *c, const char *key,
    enum ratelimit_kind kind, unsigned n, unsigned max, time_t now)
{
	int rc;

	if (max == 0)
		return 1;
	if (c->state[0] == '\0')
		return ratelimit_take(key, kind, n, max, now);
	if ((rc = state_redis_rate(c, key, kind, n, max, now)) != -1)
		return rc;
	/* XXX: while Redis is down each node counts alone, so a sender
	 * may get up to (nodes x max) through; refusing all mail instead
	 * would also refuse mail for local users. */
	return ratelimit_take(key, kind, n, max, now);
}

void
state_auth_init(const struct conf *c)
{
	auth_conf = c;
	throttle_init(c->auth_max_failures, (unsigned)c->auth_block_time);
}

long
state_auth_blocked(const char *addr, time_t now)
{
	char key[KEY_MAX];

	if (auth_conf == NULL || auth_conf->state[0] == '\0')
		return (long)throttle_blocked(addr, now);
	(void)snprintf(key, sizeof key, "postern:authblock:%s", addr);
	return state_redis_ttl(auth_conf, key);
}

unsigned
state_auth_fail(const char *addr, time_t now)
{
	long n;

	if (auth_conf == NULL || auth_conf->state[0] == '\0')
		return throttle_fail(addr, now);
	n = state_redis_fail(auth_conf, addr, auth_conf->auth_max_failures,
	    (unsigned)auth_conf->auth_block_time);
	return n < 0 ? 0 : (unsigned)n;
}

void
state_auth_success(const char *addr)
{
	char key[KEY_MAX];

	if (auth_conf == NULL || auth_conf->state[0] == '\0') {
		throttle_success(addr);
		return;
	}
	(void)snprintf(key, sizeof key, "postern:authfail:%s", addr);
	(void)state_redis_del(auth_conf, key);
}
