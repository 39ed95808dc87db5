/*
 * local_maildir.h - delivery into <mailboxes>/<user>/, a Maildir
 * (tmp/, new/, cur/; directories 0700, files 0600; created on first
 * delivery).  The file is written in tmp/, fsynced, linked into new/
 * and its entry made durable (new/ fsynced, or on ext4 the file's
 * own fsync after the link: lib/fsio.h) before success is reported, so
 * a reported delivery survives a crash.  Every error is temporary: the message
 * stays queued and is retried, never lost.  Runs in the queue manager.
 */
#ifndef POSTERN_LOCAL_MAILDIR_H
#define POSTERN_LOCAL_MAILDIR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MAILDIR_NAME_MAX	256

struct maildir_msg {
	const char	*return_path;	/* envelope sender; "" for <> */
	const char	*delivered_to;	/* the address being delivered */
	int		 fd;		/* the queue file */
	off_t		 offset;	/* where the content starts */
	uint64_t	 size;		/* octets of content from there */
};

/* A fresh unique name "SEC.M<usec>P<pid>Q<n>.<host>,S=<n>,W=<n>" (the
 * Maildir convention, with the Maildir++ size tags) for delivering m:
 * S is the file's size and W its size with CRLF line ends, the same
 * here (queued content is CRLF throughout), so that a POP3 reader
 * knows the size RETR sends without reading the file. */
void	maildir_name_new(char *dst, size_t dstsz, const struct maildir_msg *m);
/* Deliver under the given name.  0, or -1 with errno and a short reason
 * in why (for the log and the DSN). */
int	maildir_deliver(const char *mailboxes, const char *user,
	    const char *name, const struct maildir_msg *, char *why,
	    size_t whysz);
/* Is a message of that name in new/ or cur/ (a crash after the link
 * and before the queue manager recorded it)?  1, 0, or -1 on error. */
int	maildir_has(const char *mailboxes, const char *user, const char *name);

/* Make box/, box/tmp, box/new and box/cur (mode 0700) if missing. */
int	maildir_prepare(const char *box);

#endif
