/*
 * fsio.h - file-system operations with the durability rules of the queue:
 * data is fsynced before it is renamed into place, and the directory is
 * fsynced after (see src/queue/README).
 */
#ifndef POSTERN_FSIO_H
#define POSTERN_FSIO_H

#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

int	fsync_dir(const char *path);
/* Write path atomically: tmp file, fsync, rename, fsync directory. */
int	write_file_atomic(const char *path, const void *, size_t, mode_t);
/* The same, with the file's group set before it becomes visible. */
int	write_file_atomic_group(const char *path, const void *, size_t, mode_t,
	    gid_t);
/* Create a directory (and parents) if missing, with mode and owner. */
int	mkdir_p(const char *path, mode_t mode);
int	write_full(int fd, const void *, size_t);
/*
 * Unnamed files (O_TMPFILE): a file that gets its only name, with
 * fsio_link_unnamed, once it is whole and fsynced, so a crash leaves
 * nothing half-written behind and no name has to be made and removed
 * again.  fsio_open_unnamed returns -1 with errno when the file system
 * or this process cannot do it (no O_TMPFILE, or no /proc to link
 * through: tried once per process); the caller then makes a named file.
 */
int	fsio_open_unnamed(const char *dir, mode_t mode);
/* Give it PATH; never replaces an existing file (EEXIST). */
int	fsio_link_unnamed(int fd, const char *path);
/* Read a whole text file (at most max bytes, no NUL bytes) into a new
 * NUL-terminated string; NULL with "PATH: why" written to errf. */
char	*read_text_file(const char *path, size_t max, FILE *errf);

#endif
