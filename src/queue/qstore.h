/*
 * qstore.h - writing a message into the spool (see src/queue/README).
 * qstore_create/_write run on the event loop (page-cache writes);
 * qstore_commit blocks on fsync and runs on a commit thread (qcommit.h).
 */
#ifndef POSTERN_QSTORE_H
#define POSTERN_QSTORE_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "queue/qid.h"

#define QSTORE_BUFSZ	(32 * 1024)
/* Subdirectories of incoming/ the spare files are spread over on ext4
 * without a journal (qpool.h). */
#define QSTORE_SPREAD	256

struct qfile {
	int		 fd;
	int		 err;		/* first write error (errno), sticky */
	char		 qid[QID_LEN + 1];
	char		 spool[PATH_MAX];
	uint64_t	 size;		/* octets after the envelope (the
					   content), so far */
	uint32_t	 crc;		/* their CRC-32, for the seal */
	uint32_t	 env_crc;	/* the envelope's before the seal */
	off_t		 seal_at;	/* file offset of the seal record */
	off_t		 flushed;	/* octets in the file; buf follows */
	int		 unnamed;	/* O_TMPFILE: no name until commit */
	int		 hold;		/* commit into hold/, not queue/ (an
					 * access rule's HOLD) */
	size_t		 buflen;
	char		*buf;		/* QSTORE_BUFSZ */
};

/*
 * The seal: the envelope's last record, "content SIZE CRC ENVCRC", gives
 * the content's length and CRC-32, and the CRC-32 of the envelope's
 * octets before the seal.  It is written with a placeholder of the same
 * width and filled in at commit, when all three are known.  A file that
 * was linked into queue/ but not yet fsynced when the machine went down
 * may come back short, or with blocks of zeros or of an older file,
 * in its content or in an envelope longer than a block; its seal then
 * does not match, and the queue manager sets it aside (qenv_read,
 * qenv_check_content) instead of delivering it.
 */
/* The first line of every queue file written now: a file of this
 * version without its seal is one whose envelope a crash damaged.
 * Version 2 (a seal of the content only) and 1 (from before seals,
 * read unchecked) are still read. */
#define QSTORE_VERSION_LINE	"postern-queue 3\n"

#define QSTORE_SEAL_SIZE_DIGITS	20	/* decimal, zero-padded */
#define QSTORE_SEAL_CRC_DIGITS	8	/* hexadecimal, zero-padded */
#define QSTORE_SEAL_STR_(x)	#x
#define QSTORE_SEAL_STR(x)	QSTORE_SEAL_STR_(x)
#define QSTORE_SEAL_CRC_FMT	" %0" QSTORE_SEAL_STR(QSTORE_SEAL_CRC_DIGITS) "lx"
#define QSTORE_SEAL_FMT	"content %0" QSTORE_SEAL_STR(QSTORE_SEAL_SIZE_DIGITS) \
	"llu" QSTORE_SEAL_CRC_FMT QSTORE_SEAL_CRC_FMT "\n"
#define QSTORE_SEAL_LEN	(sizeof "content " - 1 + QSTORE_SEAL_SIZE_DIGITS + \
	2 * (1 + QSTORE_SEAL_CRC_DIGITS) + 1)

/* Create the message file in incoming/ (unnamed where the file system
 * allows, else incoming/QID) and start it with head: the envelope,
 * ending with its empty line, and possibly the first octets of the
 * content (our Received: field).  The seal's placeholder goes before
 * the empty line.  Buffered with the first octets of the message: a
 * write error may show only at commit.  -1 + errno (EINVAL: no empty
 * line in head). */
int	qstore_create(struct qfile *, const char *spool, const char *qid,
	    const char *head, size_t len);
/* Append message octets; errors are remembered and reported by commit. */
void	qstore_write(struct qfile *, const void *, size_t);
/* Seal, flush, link into queue/ and fsync (an unnamed file), or
 * fdatasync and rename (a named one); close; fsync queue/ unless the
 * file's fsync covered its entry (lib/fsio.h).  0 or -1 with errno.  The qfile is closed either way; on error the file is
 * removed. */
int	qstore_commit(struct qfile *);
/* Close and remove the message file. */
void	qstore_abort(struct qfile *);
/* Keep up to n unnamed files ready for qstore_create, made on a thread
 * of their own (qpool.h); -1 + errno if that cannot be done here. */
int	qstore_spares_start(const char *spool, unsigned n);
void	qstore_spares_stop(void);
/* An unnamed file (O_WRONLY, 0600) made in the next of incoming/0 ..
 * incoming/QSTORE_SPREAD-1, for what makes a file per message (the
 * workers' spare files, the queue manager's status files): -1 with
 * EOPNOTSUPP where the spool is not spread (ext4 with a journal, another
 * file system), else with the error. */
int	qstore_open_spread(const char *spool);
/* Make the spool's directories; remove what a crash left in incoming/. */
int	qstore_prepare(const char *spool, uid_t, gid_t);

#endif
