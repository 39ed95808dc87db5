/*
 * keyindex.h - string keys to the indexes of an array the caller keeps
 * (open addressing, FNV-1a): a message may have tens of thousands of
 * recipients, and a lookup per recipient through a list would make its
 * delivery pass quadratic.  The index holds no keys, only indexes; key()
 * gives the key of index i in arr.
 */
#ifndef POSTERN_KEYINDEX_H
#define POSTERN_KEYINDEX_H

#include <stddef.h>
#include <stdint.h>

struct keyindex {
	size_t		*slot;		/* index + 1; 0: empty */
	size_t		 cap, n;	/* a power of two; n <= cap / 2 */
};

typedef const char *(*keyindex_key_fn)(const void *arr, size_t i);

/* The index stored under key, or SIZE_MAX. */
size_t	keyindex_find(const struct keyindex *, const char *key,
	    keyindex_key_fn, const void *arr);
/* Store index i under its key; a later index replaces an earlier one. */
void	keyindex_put(struct keyindex *, size_t i, keyindex_key_fn,
	    const void *arr);
/* Take key out; every other index stored must still have its key in
 * arr (they may be moved up to fill the gap). */
void	keyindex_del(struct keyindex *, const char *key, keyindex_key_fn,
	    const void *arr);
void	keyindex_free(struct keyindex *);

#endif
