/*
 * qenv.h - reading a queued message: the envelope records (see
 * src/queue/README), where the content starts, and the content's header
 * section (for loop detection and for the DSN's text/rfc822-headers).
 * Used by the queue manager and `postern queue`.
 */
#ifndef POSTERN_QENV_H
#define POSTERN_QENV_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "lib/buf.h"
#include "queue/qid.h"

#define QENV_ENVELOPE_MAX	(4 * 1024 * 1024)
#define QENV_HEADERS_MAX	(256 * 1024)	/* kept for the DSN */

struct qenv {
	char		 qid[QID_LEN + 1];
	time_t		 arrival;
	char		 listener[32];
	char		*from;		/* "" for <> */
	char		**rcpts;
	size_t		 nrcpts;
	int		 body_8bit;
	off_t		 content;	/* offset of the content in the file */
	off_t		 size;		/* octets of content */
	struct buf	 headers;	/* the content's header section (CRLF),
					   possibly truncated */
	unsigned	 nreceived;	/* Received: fields in it */
	int		 version;	/* of the file's format: 1, 2 or 3 */
	int		 sealed;	/* a "content" record (queue/qstore.h);
					   version 1 files may have none */
	uint64_t	 seal_size;
	uint32_t	 seal_crc;
	uint32_t	 seal_env_crc;	/* version 3: the envelope's, which
					   qenv_read checks */
};

/* Read from an open queue file.  0, or -1 with a reason in why (an
 * envelope whose CRC-32, from version 3 on, or a content whose length is
 * not its seal's among them). */
int	qenv_read(int fd, struct qenv *, char *why, size_t whysz);
/* Read the whole content and check it against the seal: 0 if it matches
 * (or the file has no seal), else -1 with a reason in why.  What a crash
 * between the link and the fsync of a commit can leave (qstore.h) fails
 * here; the queue manager checks every message before delivering it. */
int	qenv_check_content(int fd, const struct qenv *, char *why,
	    size_t whysz);
void	qenv_free(struct qenv *);

#endif
