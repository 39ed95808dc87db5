/*
 * qpool.h - unnamed message files made ahead of need.  Creating a file
 * allocates an inode, which can take long: on ext4 without a journal the
 * allocator scans past every inode freed in the last minute or so, and
 * a busy queue frees one per delivered message.  A worker's event loop
 * should not wait for that, so a thread of its own keeps a few unnamed
 * files (lib/fsio.h) open and ready, and the session takes one at DATA.
 * A spare file has no name: when the process ends or crashes it is
 * simply freed.  Runs inside each worker.  Where the files are made is
 * the caller's choice (qstore.c spreads them over directories).
 */
#ifndef POSTERN_QPOOL_H
#define POSTERN_QPOOL_H

/* Keep up to size spare files for dir, each made by make(arg): an
 * unnamed file (O_WRONLY, 0600) or -1 with errno.  make runs on the
 * pool's thread, and once here first.  -1 if the thread could not start
 * or make failed (then qpool_take always returns -1). */
int	qpool_start(const char *dir, int (*make)(void *), void *arg,
	    unsigned size);
/* A spare file for dir (O_WRONLY, mode 0600), or -1 when there is none
 * ready or the pool serves another directory: make one directly then. */
int	qpool_take(const char *dir);
/* Stop the thread and close the spare files. */
void	qpool_stop(void);

#endif
