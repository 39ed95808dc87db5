/*
 * throttle.c - per-address failure counters (see throttle.h).  A fixed
 * table: when full, the entry with the oldest activity is reused, so an
 * attacker cycling addresses costs memory only up to the table size.
 */
#include "auth/throttle.h"
#include "lib/strutil.h"

#include <string.h>

#define THROTTLE_SLOTS	4096

static struct throttle_entry {
	char	 addr[64];
	unsigned failures;
	time_t	 first, last, blocked_until;
} table[THROTTLE_SLOTS];

static unsigned	throttle_max = 10, throttle_block = 900;

void
throttle_init(unsigned max, unsigned block_seconds)
{
	throttle_max = max;
	throttle_block = block_seconds;
	memset(table, 0, sizeof table);
}

static struct throttle_entry *
find(const char *addr, int create, time_t now)
{
	struct throttle_entry *oldest = &table[0];

	for (size_t i = 0; i < THROTTLE_SLOTS; i++) {
		if (table[i].addr[0] && strcmp(table[i].addr, addr) == 0)
			return &table[i];
		if (table[i].last < oldest->last)
			oldest = &table[i];
	}
	if (!create)
		return NULL;
	memset(oldest, 0, sizeof *oldest);
	strlcpy(oldest->addr, addr, sizeof oldest->addr);
	oldest->first = oldest->last = now;
	return oldest;
}

unsigned
throttle_blocked(const char *addr, time_t now)
{
	struct throttle_entry *e = find(addr, 0, now);

	if (e == NULL || e->blocked_until <= now)
		return 0;
	return (unsigned)(e->blocked_until - now);
}

unsigned
throttle_fail(const char *addr, time_t now)
{
	struct throttle_entry *e = find(addr, 1, now);

	/* Failures older than the window no longer count. */
	if (now - e->first > (time_t)throttle_block) {
		e->failures = 0;
		e->first = now;
	}
	e->failures++;
	e->last = now;
	if (e->failures >= throttle_max)
		e->blocked_until = now + throttle_block;
	return e->failures;
}

