/*
 * keyindex.c - string keys to array indexes (see keyindex.h).
 */
#include "lib/keyindex.h"
#include "lib/xalloc.h"

#include <stdlib.h>
#include <string.h>

static uint64_t
key_hash(const char *key)
{
	uint64_t h = 14695981039346656037ULL;	/* FNV-1a */

	for (; *key; key++)
		h = (h ^ (unsigned char)*key) * 1099511628211ULL;
	return h;
}

/* The slot holding key, or the empty one it would go to. */
static size_t *
keyindex_slot(const struct keyindex *ix, const char *key, keyindex_key_fn fn,
    const void *arr)
{
	size_t i = (size_t)key_hash(key) & (ix->cap - 1);

	while (ix->slot[i] != 0 && strcmp(fn(arr, ix->slot[i] - 1), key) != 0)
		i = (i + 1) & (ix->cap - 1);
	return &ix->slot[i];
}

size_t
keyindex_find(const struct keyindex *ix, const char *key, keyindex_key_fn fn,
    const void *arr)
{
	size_t *slot;

	if (ix->cap == 0)
		return SIZE_MAX;
	slot = keyindex_slot(ix, key, fn, arr);
	return *slot == 0 ? SIZE_MAX : *slot - 1;
}

void
keyindex_put(struct keyindex *ix, size_t i, keyindex_key_fn fn,
    const void *arr)
{
	size_t *slot;

	if ((ix->n + 1) * 2 > ix->cap) {
		struct keyindex big = { NULL, ix->cap ? ix->cap * 2 : 64, 0 };

		big.slot = xcalloc(big.cap, sizeof *big.slot);
		for (size_t k = 0; k < ix->cap; k++)
			if (ix->slot[k] != 0) {
				*keyindex_slot(&big, fn(arr, ix->slot[k] - 1),
				    fn, arr) = ix->slot[k];
				big.n++;
			}
		free(ix->slot);
		*ix = big;
	}
	slot = keyindex_slot(ix, fn(arr, i), fn, arr);
	if (*slot == 0)
		ix->n++;
	*slot = i + 1;
}

/*
 * Deletion without tombstones (linear probing): each entry after the
 * gap, up to the next empty slot, moves into the gap unless its home
 * slot lies cyclically after the gap and at or before where it is, so
 * that every entry stays reachable from its home by probing.
 */
void
keyindex_del(struct keyindex *ix, const char *key, keyindex_key_fn fn,
    const void *arr)
{
	size_t mask = ix->cap - 1, gap, j, home;
	size_t *slot;

	if (ix->cap == 0 || *(slot = keyindex_slot(ix, key, fn, arr)) == 0)
		return;
	gap = j = (size_t)(slot - ix->slot);
	ix->slot[gap] = 0;
	ix->n--;
	for (;;) {
		j = (j + 1) & mask;
		if (ix->slot[j] == 0)
			return;
		home = (size_t)key_hash(fn(arr, ix->slot[j] - 1)) & mask;
		if (gap <= j ? (gap < home && home <= j) :
		    (gap < home || home <= j))
			continue;		/* reachable as it is */
		ix->slot[gap] = ix->slot[j];
		ix->slot[j] = 0;
		gap = j;
	}
}

void
keyindex_free(struct keyindex *ix)
{
	free(ix->slot);
	memset(ix, 0, sizeof *ix);
}
