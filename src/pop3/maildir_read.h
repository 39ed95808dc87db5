/*
 * maildir_read.h - a POP3 session's view of <mailboxes>/<user>/, a
 * Maildir written by local delivery (src/deliver/local_maildir.c):
 * an exclusive lock, a snapshot of the messages taken at login, and
 * the deletions done at QUIT.  Runs in the workers, as the unprivileged
 * user that owns the mailboxes: the open and the expunge on the
 * worker's mailbox threads (pop3/pop3_box.c), the rest on the event
 * loop.  Everything here is readdir, stat, rename, unlink and one
 * fsync, bounded by MAILDIR_READ_MAX; and the read of each file that
 * has no W= size tag in its name (one not written by postern), whose
 * size as RETR sends it the login has to count.
 */
#ifndef POSTERN_MAILDIR_READ_H
#define POSTERN_MAILDIR_READ_H

#include <stddef.h>
#include <stdint.h>

#define MAILDIR_READ_MAX	50000	/* messages in one snapshot */
#define MAILDIR_UID_MAX		70	/* RFC 1939 section 7: 1-70 octets */
#define MAILDIR_LOCK_NAME	"postern-pop3.lock"

struct maildir_entry {
	char		*name;		/* file name in cur/ */
	uint64_t	 size;		/* octets, as RETR sends them */
	char		 uid[MAILDIR_UID_MAX + 1];
	int		 deleted;	/* DELE'd in this session */
};

struct maildir_box {
	int		 curfd;		/* <box>/cur */
	int		 lockfd;	/* flock(2)ed while the session lasts */
	struct maildir_entry *msgs;	/* sorted by name: oldest first */
	size_t		 nmsgs;
	size_t		 skipped;	/* beyond MAILDIR_READ_MAX */
};

enum maildir_open_result {
	MAILDIR_OPEN_OK,
	MAILDIR_OPEN_IN_USE,	/* another session holds the lock */
	MAILDIR_OPEN_FAIL,	/* errno says why */
};

/* Lock the user's Maildir (creating it when no mail came yet), move
 * new/ into cur/ and take the snapshot. */
enum maildir_open_result maildir_box_open(struct maildir_box *,
	    const char *mailboxes, const char *user);
/* The message's file, read-only; -1 with errno (ENOENT: it is gone). */
int	maildir_box_open_msg(struct maildir_box *, size_t i);
/* RFC 1939 section 6: remove the messages marked deleted and make
 * that durable.  Returns how many were removed, or -1 if some could not
 * be (those stay in the mailbox). */
long	maildir_box_expunge(struct maildir_box *);
/* Unlock and forget the snapshot. */
void	maildir_box_close(struct maildir_box *);

/* The unique-id of a Maildir file name: the part before ':', which no
 * reader changes, or a digest of it if it is too long or holds octets
 * RFC 1939 does not allow.  Stable across sessions and restarts. */
void	maildir_uid(const char *name, char uid[MAILDIR_UID_MAX + 1]);

#endif
