/*
 * bounce.h - delivery status notifications (RFC 3464): a non-delivery
 * report when recipients failed or expired, a delay warning when mail
 * has waited delay-warning.  A DSN is an ordinary message queued in the
 * spool (listener "bounce", envelope sender <>), sent to the original
 * envelope sender; a message from <> never gets one (RFC 5321 section
 * 4.5.5).  Runs in the queue manager.
 */
#ifndef POSTERN_BOUNCE_H
#define POSTERN_BOUNCE_H

#include <stddef.h>
#include <time.h>

#include "conf/conf.h"
#include "queue/qenv.h"
#include "queue/qid.h"

enum bounce_kind {
	BOUNCE_FAILED,		/* Action: failed */
	BOUNCE_DELAYED,		/* Action: delayed */
};

struct bounce_rcpt {
	const char	*orig;		/* the envelope recipient */
	const char	*final;		/* the address tried (after aliases) */
	const char	*dsn;		/* RFC 3463 status, "5.1.1" */
	const char	*why;		/* diagnostic text */
	const char	*remote_mta;	/* the server that answered, or NULL */
	const char	*smtp_diag;	/* that server's reply ("550 5.1.1
					   ..."), or NULL: why is ours */
};

/* Build the DSN for env and commit it to the spool (fsynced) before
 * returning.  0 with its queue id in qid_out, or -1 with errno. */
int	bounce_queue(const struct conf *, const struct qenv *, enum bounce_kind,
	    const struct bounce_rcpt *, size_t n, time_t now,
	    char qid_out[QID_LEN + 1]);

#endif
