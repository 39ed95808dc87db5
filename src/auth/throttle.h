/*
 * throttle.h - brute-force throttling of authentication per client
 * address, in the auth process: each failure slows the next answer down
 * by a second more (up to 5), and after `max` failures within `block`
 * seconds the address is refused for `block` seconds.
 */
#ifndef POSTERN_THROTTLE_H
#define POSTERN_THROTTLE_H

#include <time.h>

void	 throttle_init(unsigned max, unsigned block_seconds);
/* Seconds the address stays blocked, or 0. */
unsigned throttle_blocked(const char *addr, time_t now);
/* Record a failure; returns the failures counted in the window. */
unsigned throttle_fail(const char *addr, time_t now);

#endif
