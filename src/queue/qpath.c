/* qpath.c - spool path names (see qpath.h). */
#include "queue/qpath.h"

#include <errno.h>
#include <stdio.h>

int
qpath_make(char *dst, size_t dstsz, const char *spool, const char *sub,
    const char *name)
{
	int n = name[0] ? snprintf(dst, dstsz, "%s/%s/%s", spool, sub, name) :
	    snprintf(dst, dstsz, "%s/%s", spool, sub);

	if (n < 0 || (size_t)n >= dstsz) {
		if (dstsz)
			dst[0] = '\0';
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}
