/*
 * resolve.h - from an envelope recipient to what delivery acts on:
 * mailboxes (local users), remote addresses, or a failure.  Uses the
 * same maps as the workers' RCPT check (policy/relay.h), so a recipient
 * accepted at RCPT time resolves here.  Runs in the queue manager.
 *
 *   <postmaster>                 the postmaster alias (RFC 5321 4.5.1)
 *   local@local-domain           aliases first, then the user of that
 *                                name, then the user listing the address
 *   anything else                remote
 */
#ifndef POSTERN_RESOLVE_H
#define POSTERN_RESOLVE_H

#include "deliver/aliases_expand.h"
#include "policy/relay.h"

void	resolve_rcpt(struct rcpt_maps *, const char *rcpt,
	    struct alias_expansion *out);
/* A name safe as a directory below `mailboxes` (no '/', no leading '.'). */
int	resolve_mailbox_name_ok(const char *);

#endif
