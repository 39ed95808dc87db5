/*
 * ratelimit.c - hourly sending rates shared by all workers (see
 * ratelimit.h).
 *
 * A bounded open-addressing table under one robust lock.  A key not in
 * the table takes an empty slot, else one idle for two hours (its
 * counts can no longer matter), else the slot in its probe window whose
 * count weighs least now.  Evicting an active slot forgets that
 * client's count; the least one is chosen so that a flood of distinct
 * keys, each with a count of one or two, pushes out its own kind and
 * not a heavy sender: that one goes only when every slot of its window
 * is heavier still.  The table is sized far above the number of users
 * or clients active in one hour on one node.
 */
#include "policy/ratelimit.h"
#include "lib/shm.h"
#include "lib/strutil.h"

#include <stdint.h>
#include <string.h>

#define RL_SLOTS	16384
#define RL_PROBE	32
#define RL_WINDOW	3600

struct rl_slot {
	char		 key[RATELIMIT_KEY_MAX];	/* "" = empty */
	time_t		 window;		/* start of the current hour */
	uint32_t	 cur[2], prev[2];	/* by enum ratelimit_kind */
};

struct rl_table {
	pthread_mutex_t	 lock;
	struct rl_slot	 slots[RL_SLOTS];
};

static struct rl_table	*rl;

void
ratelimit_init(void)
{
	if (rl != NULL)
		return;
	rl = shm_xalloc(sizeof *rl);
	shm_mutex_init(&rl->lock);
}

static size_t
rl_hash(const char *key)
{
	uint32_t h = 2166136261u;	/* FNV-1a */

	for (; *key; key++)
		h = (h ^ (unsigned char)*key) * 16777619u;
	return h % RL_SLOTS;
}

static uint32_t
rl_sum(uint32_t a, uint32_t b)
{
	return a > UINT32_MAX - b ? UINT32_MAX : a + b;
}

/*
 * Move the slot's windows up to now's hour.  A window later than that
 * means the wall clock went back: a step of two seconds across the hour
 * must not give every sender a fresh hour.  The slot then moves back to
 * now's hour with both counts in the current one, weighing in full, as
 * they did at most at the later hour's start; a count goes no sooner
 * than it would have, and a long step forgets nothing either.
 */
static void
rl_roll(struct rl_slot *s, time_t now)
{
	time_t hour = now - now % RL_WINDOW;

	if (s->window == hour)
		return;
	if (s->window > hour) {
		for (size_t k = 0; k < 2; k++)
			s->cur[k] = rl_sum(s->cur[k], s->prev[k]);
		memset(s->prev, 0, sizeof s->prev);
	} else if (s->window == hour - RL_WINDOW) {
		memcpy(s->prev, s->cur, sizeof s->prev);
		memset(s->cur, 0, sizeof s->cur);
	} else {
		memset(s->prev, 0, sizeof s->prev);
		memset(s->cur, 0, sizeof s->cur);
	}
	s->window = hour;
}

/* What the slot's counts weigh at now, both kinds together, as
 * rl_estimate would see them after rl_roll (the slot is not changed). */
static uint64_t
rl_weight(const struct rl_slot *s, time_t now)
{
	time_t hour = now - now % RL_WINDOW;
	uint64_t left = (uint64_t)(RL_WINDOW - now % RL_WINDOW);
	uint64_t cur = (uint64_t)s->cur[0] + s->cur[1];
	uint64_t prev = (uint64_t)s->prev[0] + s->prev[1];

	if (s->window > hour)		/* the clock went back */
		return cur + prev;
	if (s->window == hour)
		return cur + prev * left / RL_WINDOW;
	if (s->window == hour - RL_WINDOW)
		return cur * left / RL_WINDOW;
	return 0;
}

static struct rl_slot *
rl_find(const char *key, time_t now)
{
	struct rl_slot *victim = NULL;
	uint64_t victim_weight = 0;
	size_t h = rl_hash(key);

	for (size_t k = 0; k < RL_PROBE; k++) {
		struct rl_slot *s = &rl->slots[(h + k) % RL_SLOTS];
		uint64_t w;

		if (strcmp(s->key, key) == 0)
			return s;
		if (s->key[0] == '\0' || s->window < now - 2 * RL_WINDOW)
			w = 0;		/* empty, or idle two hours */
		else
			w = rl_weight(s, now) + 1;
		if (victim == NULL || w < victim_weight ||
		    (w == victim_weight && s->window < victim->window)) {
			victim = s;
			victim_weight = w;
		}
	}
	memset(victim, 0, sizeof *victim);
	strlcpy(victim->key, key, sizeof victim->key);
	victim->window = now - now % RL_WINDOW;
	return victim;
}

static unsigned
rl_estimate(const struct rl_slot *s, enum ratelimit_kind kind, time_t now)
{
	/* The share of the previous hour still inside the last 60 min. */
	uint64_t left = (uint64_t)(RL_WINDOW - now % RL_WINDOW);

	return s->cur[kind] + (unsigned)(s->prev[kind] * left / RL_WINDOW);
}

int
ratelimit_take(const char *key, enum ratelimit_kind kind, unsigned n,
    unsigned max, time_t now)
{
	struct rl_slot *s;
	int ok;

	/* Keys are "user:NAME" (64 at most) or "ip:ADDRESS": a longer one
	 * is a bug, and is not limited rather than confused with another. */
	if (rl == NULL || max == 0 || *key == '\0' ||
	    strlen(key) >= RATELIMIT_KEY_MAX)
		return 1;
	shm_mutex_lock(&rl->lock);
	s = rl_find(key, now);
	rl_roll(s, now);
	ok = (uint64_t)rl_estimate(s, kind, now) + n <= max;
	if (ok)
		s->cur[kind] += n;
	shm_mutex_unlock(&rl->lock);
	return ok;
}

unsigned
ratelimit_rate(const char *key, enum ratelimit_kind kind, time_t now)
{
	struct rl_slot *s;
	unsigned r;

	if (rl == NULL || strlen(key) >= RATELIMIT_KEY_MAX)
		return 0;
	shm_mutex_lock(&rl->lock);
	s = rl_find(key, now);
	rl_roll(s, now);
	r = rl_estimate(s, kind, now);
	shm_mutex_unlock(&rl->lock);
	return r;
}
