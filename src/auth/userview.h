/*
 * userview.h - the users as the unprivileged processes may see them:
 * names, addresses, expiry and lock, without password hashes or
 * mechanism secrets.  The auth process (and the master, once at start)
 * publishes it as <spool>/private/users.view in the users file's own
 * format (hash "x", no secrets) whenever the real source changes; the
 * workers and the queue manager load the view, never the users file,
 * which can therefore be readable by root alone (docs/privsep.md).
 */
#ifndef POSTERN_USERVIEW_H
#define POSTERN_USERVIEW_H

#include <stddef.h>
#include <sys/types.h>

#include "auth/userdb.h"
#include "conf/conf.h"

int	userview_path(const struct conf *, char *dst, size_t dstsz);
/* Write the view of db atomically, mode 0640, group gid (when root). */
int	userview_publish(const struct conf *, const struct userdb *, gid_t);

#endif
