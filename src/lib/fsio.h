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
 * or this process cannot do it (no O_TMPFILE, or neither AT_EMPTY_PATH
 * nor /proc to link through: tried once per process); the caller then
 * makes a named file.
 */
int	fsio_open_unnamed(const char *dir, mode_t mode);
/* Give it PATH; never replaces an existing file (EEXIST). */
int	fsio_link_unnamed(int fd, const char *path);
/*
 * The same, with the link made durable: the file's link count goes from
 * 0 to 1, and that is the file's own metadata, which fsync(2) of the
 * directory does not write.  On ext4 without a journal the inode
 * otherwise stays on disk with no links for as long as writeback takes,
 * and the file-system check after a crash takes it for a deleted file
 * and removes the new entry.  So the file is fsynced after the link (on
 * the ext4 that has a journal, that commits the link and the entry
 * together).  That fsync also writes whatever of the file's data is not
 * on disk yet: a caller that links a file before its data is durable
 * must be able to tell, after a crash, a file the crash cut short (the
 * queue's seal, queue/qstore.h); others fdatasync first.  The fsync is
 * made through the new name, with fd closed first (so the file has only
 * that name: see fsio_file_sync_covers_entry).  fd is closed either
 * way; on failure the name is removed again.  The caller fsyncs the
 * directory unless fsio_file_sync_covers_entry says it need not.
 */
int	fsio_publish_unnamed(int fd, const char *path);
/* Its second half, for fd just linked as path: the fsync through the
 * name, or through fd where a reader has already taken the name away
 * (the file then has to be durable all the same).  Closes fd; on
 * failure removes path. */
int	fsio_sync_new_link(int fd, const char *path);
/*
 * Whether, on the file system of fd, an fsync of a file just linked or
 * created in a directory also makes the new directory entry durable, so
 * that an fsync of the directory would add nothing: 1 where the ext4
 * driver has the file system.  With a journal, the file's fsync commits
 * the transaction that made the link, and the link made the entry and
 * the new link count in one.  Without one, an fsync of a file just
 * added to a directory also writes that directory, which nothing else
 * would write before writeback (ext4_sync_parent in fs/ext4/fsync.c);
 * ext4 finds the directory through the file's name in the dentry cache,
 * which is why fsio_publish_unnamed syncs through the one new name.
 * POSIX promises neither, so everywhere else the directory is fsynced.
 * test_acknowledged_mail_survives_a_crash checks both kinds of ext4 by
 * copying the disk right after a 250.  Cached per file system.
 */
int	fsio_file_sync_covers_entry(int fd);
/* Ask the file system to place the subdirectories made in path from now
 * on apart from each other, and so the files made in them: ext4's
 * "top of a directory hierarchy" flag (chattr +T), which its allocator
 * reads as "spread the children over the block groups".  A hint: -1 +
 * errno where the file system has no such flag, and nothing is lost. */
int	fsio_spread_subdirs(const char *path);
/*
 * Whether path is on ext4 without a journal: 1 (and the block device's
 * name in dev), else 0.  Such a file system does not reuse an inode
 * freed in the last minute or so (six while its inode-table block is
 * dirty) and scans past each one, from the start of the block group, on
 * every create: a spool that makes and deletes a file per message pays
 * more the more mail flows.  The kernel names the journal's thread in
 * /sys/fs/ext4/DEV/journal_task, "<none>" without one.
 */
int	fsio_ext4_without_journal(const char *path, char *dev, size_t devsz);
/* Read a whole regular file of at most max bytes into a new buffer,
 * NUL-terminated after its *lenp bytes; NULL with errno set (EFBIG: too
 * large or not a regular file) and "PATH: why" written to errf. */
char	*read_file(const char *path, size_t max, size_t *lenp, FILE *errf);
/* The same for a text file: no NUL bytes in it (EINVAL). */
char	*read_text_file(const char *path, size_t max, FILE *errf);

#endif
