/*
 * qpool.h - unnamed message files made ahead of need.  Creating a file
 * allocates an inode, which can take long: on ext4 without a journal the
 * allocator scans past every inode freed in the last minute or so, and
 * a busy queue frees one per delivered message.  A worker's event loop
 * should not wait for that, so a thread of its own keeps a few unnamed
 * files (lib/fsio.h) open and ready, and the session takes one at DATA.
 * A spare file has no name: when the process ends or crashes it is
 * simply freed.  Runs inside each worker.
 *
 * On ext4 without a journal the spares are made in turn in the
 * subdirectories DIR/0 .. DIR/N-1 that qstore_prepare places apart from
 * each other (fsio_spread_subdirs): ext4 takes a new file's inode from
 * its directory's block group, so the files, and the inodes the queue
 * later frees, are spread over N groups, and the scan past recently
 * freed inodes (fsio_ext4_without_journal) up to N times shorter.
 */
#ifndef POSTERN_QPOOL_H
#define POSTERN_QPOOL_H

/* Keep up to size spare unnamed files for dir, made in dir/0 ..
 * dir/(spread-1) in turn (in dir itself where spread is 0 or such a
 * subdirectory is missing).  -1 if the thread could not start or the
 * file system has no unnamed files (then qpool_take always returns -1). */
int	qpool_start(const char *dir, unsigned spread, unsigned size);
/* A spare file for dir (O_WRONLY, mode 0600), or -1 when there is none
 * ready or the pool serves another directory: make one directly then. */
int	qpool_take(const char *dir);
/* Stop the thread and close the spare files. */
void	qpool_stop(void);

#endif
