/*
 * relay.h - who may send to which recipient (RFC 5321 section 3.6.2:
 * a server must not be an open relay).  Local domains take mail from
 * anyone, for known users only; any other domain needs an authenticated
 * client or one in mynetworks.
 */
#ifndef POSTERN_RELAY_H
#define POSTERN_RELAY_H

#include <sys/socket.h>
#include <time.h>

#include "auth/userdb.h"
#include "conf/conf.h"
#include "deliver/aliases.h"
#include "lib/filewatch.h"
#include "smtp/reply.h"
#include "smtp/smtp_addr.h"

/* The local names that exist: the users file and the aliases file (or
 * its index, or without a file the default aliases), re-read when they
 * change on disk (checked at most once a second).  The workers' RCPT
 * check and the queue manager's delivery use the same maps. */
struct rcpt_maps {
	const struct conf *conf;
	char		 users_path[PATH_MAX];	/* the file or the view */
	unsigned	 users_generation;	/* loads so far */
	struct userdb	 users;
	struct aliases	 aliases;
	struct filewatch users_watch, aliases_watch, aliases_idx_watch;
	time_t		 checked;
	int		 aliases_default;	/* built-in table loaded */
};

struct relay_client {
	const struct sockaddr *peer;
	int		 authenticated;
	int		 access_relay;	/* an access rule says RELAY, on the
					 * smtp role (docs/access.md) */
};

/* From the users file itself: the auth process and the admin tools. */
void	rcpt_maps_init(struct rcpt_maps *, const struct conf *);
/* From the hash-free users view (auth/userview.h): the workers and the
 * queue manager. */
void	rcpt_maps_init_view(struct rcpt_maps *, const struct conf *);
void	rcpt_maps_free(struct rcpt_maps *);
void	rcpt_maps_refresh(struct rcpt_maps *, time_t now);

/* R_RCPT_OK, R_UNKNOWN_USER or R_RELAY_DENIED.  A POP-before-SMTP
 * grant is not looked at here: asking for it may take a round trip to
 * the shared store, which the session makes after an R_RELAY_DENIED
 * (state.h, on the smtp listener only). */
enum smtp_reply_id relay_check_rcpt(struct rcpt_maps *,
	    const struct relay_client *, const struct mailaddr *);
int	relay_client_trusted(const struct conf *, const struct relay_client *);

#endif
