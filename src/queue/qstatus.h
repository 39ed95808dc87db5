/*
 * qstatus.h - the per-message delivery record, status/QID (see
 * src/queue/README): append-only text records, one per line, written
 * only by the queue manager.
 *
 *   begin N KEY NAME               about to deliver rcpt N to KEY as
 *                                  Maildir file NAME          (fsynced)
 *   done N KEY DSN ACTION TIME WHY KEY finished: delivered or failed
 *                                  (a DSN was queued first)   (fsynced)
 *   complete N                     every target of rcpt N is done
 *   defer N KEY DSN TIME WHY       a temporary failure (informational)
 *   remote N KEY OUTCOME DSN TIME RELAY WHY
 *                                  the SMTP client's outcome for the remote
 *                                  target KEY (OUTCOME sent, failed or
 *                                  deferred), recorded when it came back;
 *                                  the next pass acts on it (pending until
 *                                  a "retry" record follows)
 *   retry TIME NEXT                attempt at TIME; next one at NEXT
 *   warned TIME                    the delay warning DSN was queued
 *
 * KEY names a delivery target: "user:NAME", "remote:ADDR",
 * "fail:NAME" or "temp:NAME"; it never holds a space.  A torn last line
 * (a crash in the middle of a write) is ignored.
 */
#ifndef POSTERN_QSTATUS_H
#define POSTERN_QSTATUS_H

#include "lib/keyindex.h"

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

/* A message's status file, at most; each pass adds records for its
 * deferred targets, so a file past QSTATUS_COMPACT_AT is rewritten
 * with only what its records say now when a pass opens it
 * (qstatus_compact). */
#define QSTATUS_MAX		(64 * 1024 * 1024)
#define QSTATUS_COMPACT_AT	(1024 * 1024)

struct qstatus_begin {
	unsigned	 rcpt;
	char		*key;
	char		*name;
};

/* A remote outcome not yet acted on (qrun.c). */
struct qstatus_remote {
	unsigned	 rcpt;
	char		*key;
	char		*outcome;	/* "sent", "failed", "deferred" */
	char		*dsn;
	char		*relay;
	char		*why;		/* escaped, as written */
};

struct qstatus_rcpt {
	int		 complete;
	char		*dsn;		/* last deferral, or NULL */
	char		*why;
};

struct qstatus {
	int		 fd;		/* -1 unless opened for appending */
	char		 path[PATH_MAX];
	char		**done;		/* keys */
	size_t		 ndone;
	struct keyindex	 done_index;
	struct qstatus_begin *begins;	/* in the order read */
	size_t		 nbegins;
	struct keyindex	 begin_index;	/* the latest for each key */
	struct qstatus_rcpt *rcpts;	/* grown to the highest N seen */
	size_t		 nrcpts;
	unsigned	 retries;
	time_t		 next_retry;	/* 0: none recorded */
	time_t		 last_attempt;
	int		 warned;
	struct qstatus_remote *remotes;	/* pending remote outcomes */
	size_t		 nremotes;
	struct keyindex	 remote_index;	/* the latest for each key */
	unsigned	 nremote_records;	/* ever, pending or not */
	int		 dir_unsynced;	/* made by a link: status/ still
					 * to be fsynced with the first sync */
	off_t		 valid;		/* octets of whole records read */
};

/* Read status/QID (absent means empty).  0, or -1 with errno. */
int	qstatus_load(const char *spool, const char *qid, struct qstatus *);
/* The same, then open it for appending (created 0600 if absent). */
int	qstatus_open(const char *spool, const char *qid, struct qstatus *);
/* Append one record (a line without '\n'); with sync, fdatasync it.
 * The in-memory state is updated too. */
int	qstatus_append(struct qstatus *, int sync, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
int	qstatus_sync(struct qstatus *);
/* Past QSTATUS_COMPACT_AT, and when it would at least halve the file:
 * replace it (a new file, fsynced, renamed over it, status/ fsynced)
 * with records that load to the same state (of the begins, only the
 * latest for each key not done: the only ones qstatus_find_begin is
 * asked for), and append to that from then on.  The caller holds the
 * message's lock.  0 (also when there was nothing to do), or -1 with
 * the old file still in place. */
int	qstatus_compact(struct qstatus *);
void	qstatus_close(struct qstatus *);
int	qstatus_is_done(const struct qstatus *, const char *key);
/* The latest begin for key, or NULL. */
const struct qstatus_begin *qstatus_find_begin(const struct qstatus *,
	    const char *key);
/* The latest pending remote outcome for key, or NULL. */
const struct qstatus_remote *qstatus_find_remote(const struct qstatus *,
	    const char *key);
const struct qstatus_rcpt *qstatus_rcpt(const struct qstatus *, size_t n);
/* A target key: kind ("user", ...) ':' target, spaces and controls
 * escaped as \xNN. */
void	qstatus_key(char *dst, size_t dstsz, const char *kind,
	    const char *target);

#endif
