/*
 * filewatch.h - has a file the server reads (access map, users file,
 * aliases) changed, and is the new version whole?  Each process looks
 * at its files once a second.  A file replaced by rename (a new inode:
 * `postern user`, `mv`) is whole at once.  A file edited in place
 * (truncated, then written) may be caught half-written, when an empty
 * table would replace the one in use; such a change is reported only
 * once the file has stayed the same from one look to the next.
 */
#ifndef POSTERN_FILEWATCH_H
#define POSTERN_FILEWATCH_H

#include <sys/types.h>
#include <time.h>

struct filewatch {
	struct timespec	mtime;		/* of the version last reported */
	ino_t		ino;
	struct timespec	seen_mtime;	/* a change in place, seen once */
	off_t		seen_size;
};

/* 1 when path is not the version last reported and is whole (replaced,
 * or unchanged since the previous look; with at_once, as soon as it is
 * seen: at start), 0 when there is nothing to load yet, -1 with errno
 * when path cannot be looked at. */
int	filewatch_changed(struct filewatch *, const char *path, int at_once);
/* Forget the version reported: the next look reports the file again. */
void	filewatch_reset(struct filewatch *);

#endif
