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

#endif
