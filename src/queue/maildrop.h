/*
 * maildrop.h - the hand-off between the sendmail command (an ordinary
 * user's process) and the server, without a network port: files in
 * SPOOL/maildrop (mode 3733: anyone may create, nobody may list, the
 * sticky bit keeps users from removing each other's files, the set-gid
 * bit gives every file the server's group).  docs/maildrop.md has the
 * reasoning; src/queue/pickup.c is the reader.
 *
 *   Tname   being written by the sendmail command; never read
 *   Mname   complete: written, fsynced, then renamed from Tname
 *   Pname   taken by the pickup (renamed from Mname) before it queues
 *           it; one left by a crash is queued again
 *
 * A file is text records, an empty line, then exactly `size` octets
 * of message (CRLF line ends, headers already completed):
 *
 *   postern-maildrop 1
 *   uid N            informational: the pickup trusts st_uid, not this
 *   sender ADDR      only when the caller asked for one (-f, MAIL FROM);
 *                    "sender" alone asks for <>
 *   body 7BIT|8BITMIME
 *   rcpt ADDR        one or more
 *   size N
 *   (empty line)
 */
#ifndef POSTERN_MAILDROP_H
#define POSTERN_MAILDROP_H

#define MAILDROP_DIR		"maildrop"
#define MAILDROP_MODE		03733	/* set-gid, sticky, rwx-wx-wx */
#define MAILDROP_FILE_MODE	0640	/* owner, and the server's group */
#define MAILDROP_VERSION	"postern-maildrop 1"
#define MAILDROP_TMP_PREFIX	'T'
#define MAILDROP_DONE_PREFIX	'M'
#define MAILDROP_TAKEN_PREFIX	'P'
#define MAILDROP_NAME_LEN	33	/* prefix + 32 hex digits */
#define MAILDROP_ENVELOPE_MAX	(1024 * 1024)

#endif
