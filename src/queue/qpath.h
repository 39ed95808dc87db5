/*
 * qpath.h - names below the spool: SPOOL/SUB/NAME (NAME may be "").
 */
#ifndef POSTERN_QPATH_H
#define POSTERN_QPATH_H

#include <stddef.h>

/* 0, or -1 with ENAMETOOLONG; dst then holds "", never a cut name, so
 * a caller that ignores the result gets ENOENT from the next call. */
int	qpath_make(char *dst, size_t dstsz, const char *spool, const char *sub,
	    const char *name);

#endif
