/*
 * xalloc.h - allocation that aborts on failure ("x" means exactly that).
 * A mail server that runs out of memory mid-transaction must not limp on.
 */
#ifndef POSTERN_XALLOC_H
#define POSTERN_XALLOC_H

#include <stddef.h>

void	*xmalloc(size_t);
void	*xcalloc(size_t, size_t);
void	*xreallocarray(void *, size_t, size_t);
char	*xstrdup(const char *);
char	*xstrndup(const char *, size_t);
/* Room for element n of an array of n grown one element at a time (and
 * only so): it doubles when n reaches a power of two, so that n appends
 * cost O(n) copying, not O(n^2) (tens of thousands of recipients). */
void	*xgrowarray(void *, size_t n, size_t size);

#endif
