/*
 * errlist.h - the errors of a parse, kept until its end and then
 * printed in line order.  A table parser that finds some errors only
 * once every line is in (a name given twice, found after sorting) still
 * reports them all as a reader of the file expects: by line, and in the
 * order found within a line.
 */
#ifndef POSTERN_ERRLIST_H
#define POSTERN_ERRLIST_H

#include <stddef.h>
#include <stdio.h>

struct errlist {
	struct errlist_item {
		int	 line;
		size_t	 seq;		/* order of adding */
		char	*text;		/* "FILE:LINE: message" */
	}		*v;
	size_t		 n;
};

void	errlist_add(struct errlist *, const char *file, int line,
	    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Print each on its own line to errf (if not NULL), by line, and free
 * them.  Returns how many there were. */
size_t	errlist_flush(struct errlist *, FILE *errf);

#endif
