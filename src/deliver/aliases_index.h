/*
 * aliases_index.h - FILE.idx, the index `postern aliases` (newaliases)
 * builds next to the aliases file: the validated entries, sorted, one a
 * line, tagged with the source file's mtime and size.  The servers load
 * the index when it matches the source (no parsing, no sorting: large
 * tables load in one pass) and the source itself otherwise, so an
 * edited file is never silently ignored.
 *
 *     postern-aliases-index 1 MTIME_SEC MTIME_NSEC SIZE
 *     name TAB target TAB target ...
 */
#ifndef POSTERN_ALIASES_INDEX_H
#define POSTERN_ALIASES_INDEX_H

#include <stddef.h>
#include <stdio.h>

#include "deliver/aliases.h"

/* src + ".idx"; -1 if too long. */
int	aliases_index_path(const char *src, char *dst, size_t dstsz);
/* Write the index for src from its parsed table, atomically (temp file,
 * fsync, rename, directory fsync).  0 or -1 with errno. */
int	aliases_index_write(const char *src, const struct aliases *);
/* Load the index of src if it is current; -1 if missing, stale or bad. */
int	aliases_index_load(const char *src, struct aliases *);
/* The index when current, else the source; errors as aliases_load(). */
int	aliases_load_indexed(const char *src, struct aliases *, FILE *errf);

#endif
