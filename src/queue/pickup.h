/*
 * pickup.h - the pickup process: forked by the master next to the
 * queue manager, as the same unprivileged user.  It turns each complete
 * file in SPOOL/maildrop (written by the sendmail command, see
 * maildrop.h) into a queue file (S1 -> S2 in src/queue/README), then
 * removes it.  The submitting user is the file's owner (st_uid), never
 * what the file says.
 */
#ifndef POSTERN_PICKUP_H
#define POSTERN_PICKUP_H

#include <sys/types.h>

#include "conf/conf.h"

/* Master, as root, before forking: SPOOL/maildrop with mode 3733,
 * owned by uid/gid. */
int	pickup_prepare(const struct conf *, uid_t, gid_t);
/* The child: never returns. */
void	pickup_main(const struct conf *, unsigned procno, uid_t, gid_t)
	    __attribute__((noreturn));

#endif
