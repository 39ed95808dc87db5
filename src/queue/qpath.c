/* qpath.c - spool path names (see qpath.h). */
#include "queue/qpath.h"

#include "lib/log.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

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

int
qpath_mkdir(const char *spool, const char *sub, uid_t uid, gid_t gid)
{
	char path[PATH_MAX];

	if (qpath_make(path, sizeof path, spool, sub, "") == -1) {
		log_warn("queue: %s/%s", spool, sub);
		return -1;
	}
	if (mkdir(path, 0700) == -1 && errno != EEXIST) {
		log_warn("queue: mkdir %s", path);
		return -1;
	}
	if (uid != (uid_t)-1 && chown(path, uid, gid) == -1) {
		log_warn("queue: chown %s", path);
		return -1;
	}
	return 0;
}
