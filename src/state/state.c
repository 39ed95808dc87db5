/*
 * state.c - the auth process's share of the state (see state.h):
 * failures and blocks, kept locally (auth/throttle.c) or in Redis by the
 * `state` directive.  The workers' share is in state_async.c.
 */
#include "state/state.h"
#include "auth/throttle.h"
#include "lib/log.h"

#include <stdio.h>
#include <string.h>

#define KEY_MAX	160

static const struct conf *auth_conf;	/* auth process */

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
