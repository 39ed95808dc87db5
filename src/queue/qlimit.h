/*
 * qlimit.h - how many messages a queue manager keeps in flight at once
 * (handed to the SMTP client: its queue file open, and locked, until
 * every remote_msg of the pass has come back).  Each such message holds
 * one open file, however many destinations it goes to, so the limit
 * follows from the process's open-file limit, once the files the queue
 * manager needs for everything else are set aside: no queue file,
 * status file, Maildir file or socket then fails to open with EMFILE,
 * however large the remote backlog.  Postfix bounds its active queue
 * the same way (qmgr_message_active_limit).
 */
#ifndef POSTERN_QLIMIT_H
#define POSTERN_QLIMIT_H

#include "conf/conf.h"

/* Messages in flight for all the queue managers together, at most (each
 * takes its share, rounded up), whatever the open-file limit allows:
 * Postfix's default active queue, and far more than remote-connections
 * can keep busy; what a message in flight holds in memory is then
 * bounded too. */
#define QLIMIT_INFLIGHT_MAX	20000
/* The soft open-file limit is raised towards the hard one, but no
 * higher than this: enough for QLIMIT_INFLIGHT_MAX and the rest. */
#define QLIMIT_OPEN_FILES_MAX	65536

/* Raise this process's RLIMIT_NOFILE soft limit towards its hard limit
 * (at most QLIMIT_OPEN_FILES_MAX); the soft limit now in force. */
unsigned long	qlimit_raise_open_files(void);
/* The open files a queue manager (one of count) needs at most besides
 * its messages in flight, margin included, under that limit. */
unsigned long	qlimit_reserved_files(const struct conf *, unsigned count,
		    unsigned long nofile);
/* Messages in flight a queue manager (one of count) may have under an
 * open-file limit of nofile: at least 1. */
unsigned	qlimit_inflight(const struct conf *, unsigned count,
		    unsigned long nofile);

#endif
