/*
 * aliases_expand.h - what a local name stands for: the mailboxes and
 * remote addresses reached through the aliases table (aliases(5)),
 * nested aliases and :include: files.  Pure: the users table and the
 * local domains are asked through callbacks, so unit tests need no
 * files but the include files themselves.  Runs in the queue manager.
 *
 * Rules:
 *   - names compare case-insensitively; results are unique;
 *   - an alias whose expansion reaches itself (or any alias already
 *     being expanded) stops there: if that name is a user, the user's
 *     mailbox gets the mail ("hoge: hoge, other"), otherwise it is a
 *     loop and that branch fails;
 *   - nesting (aliases and includes together) is limited in depth;
 *   - an unreadable include file is a temporary failure (retry), an
 *     unknown name a permanent one.
 */
#ifndef POSTERN_ALIASES_EXPAND_H
#define POSTERN_ALIASES_EXPAND_H

#include <stddef.h>

#include "deliver/aliases.h"

#define ALIAS_DEPTH_MAX		20
#define ALIAS_RESULTS_MAX	10000	/* one message, one recipient */
#define ALIAS_INCLUDE_MAX	(1 << 20)	/* bytes per include file */
#define ALIAS_STEPS_MAX		200000	/* targets looked at, per expansion */

enum alias_kind {
	ALIAS_R_USER,		/* target: a mailbox (user name) */
	ALIAS_R_REMOTE,		/* target: an address in another domain */
	ALIAS_R_FAIL,		/* target: the name that failed; permanent */
	ALIAS_R_TEMP,		/* target: the name that failed; retry */
};

struct alias_result {
	enum alias_kind	 kind;
	char		*target;
	char		*reason;	/* FAIL and TEMP: why, for the DSN */
	const char	*dsn;		/* FAIL and TEMP: RFC 3463 status */
};

struct alias_expansion {
	struct alias_result *r;
	size_t		 n;
};

/* The mailbox user a local part names, or NULL.  domain is NULL for a
 * bare name ("root"), else a local domain. */
typedef const char *(*alias_user_fn)(void *arg, const char *local,
	    const char *domain);
typedef int (*alias_local_domain_fn)(void *arg, const char *domain);

struct alias_ctx {
	const struct aliases	*aliases;
	alias_user_fn		 user;
	alias_local_domain_fn	 is_local;
	void			*arg;
	unsigned		 max_depth;	/* 0: ALIAS_DEPTH_MAX */
};

/* Expand local@domain (domain NULL or local).  out is always filled:
 * failures are results too. */
void	aliases_expand(const struct alias_ctx *, const char *local,
	    const char *domain, struct alias_expansion *out);
void	alias_expansion_free(struct alias_expansion *);

#endif
