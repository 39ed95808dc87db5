/*
 * qpath.h - names below the spool: SPOOL/SUB/NAME (NAME may be "").
 */
#ifndef POSTERN_QPATH_H
#define POSTERN_QPATH_H

#include <stddef.h>
#include <sys/types.h>

/* 0, or -1 with ENAMETOOLONG; dst then holds "", never a cut name, so
 * a caller that ignores the result gets ENOENT from the next call. */
int	qpath_make(char *dst, size_t dstsz, const char *spool, const char *sub,
	    const char *name);

/* SPOOL/SUB as a directory private to the queue's owner: made 0700 if
 * missing, and given to uid:gid unless uid is -1.  -1, logged, on
 * failure. */
int	qpath_mkdir(const char *spool, const char *sub, uid_t, gid_t);

#endif
