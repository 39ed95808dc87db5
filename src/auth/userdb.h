/*
 * userdb.h - the users file: one account a line,
 *
 *     name:password-hash:expires:flags:addresses:secrets
 *
 * password-hash is crypt(3) output (yescrypt by default) or "!" for no
 * password login; expires is YYYY-MM-DD or empty; flags is a comma list
 * ("locked"); addresses is a comma list of the user's mail addresses;
 * secrets holds the challenge mechanisms' keys.  '#' starts a comment.
 * Loaded where it is needed (recipient checks, authentication); the
 * network-facing code sees names and addresses, never hashes, once the
 * auth process exists.
 */
#ifndef POSTERN_USERDB_H
#define POSTERN_USERDB_H

#include <stddef.h>
#include <stdio.h>
#include <time.h>

struct user_entry {
	char	*name;
	char	*hash;
	time_t	 expires;	/* 0: never; else the first second it is over */
	int	 locked;
	char	**addresses;
	size_t	 naddresses;
	char	*secrets;
	int	 line;
};

/* One address of one user, for the lookup by address. */
struct userdb_address {
	const char	*addr;		/* the user entry's own string */
	size_t		 user;		/* index into users */
};

struct userdb {
	struct user_entry *users;	/* sorted by name */
	size_t		 nusers;
	struct userdb_address *by_address; /* sorted by address, then user;
					   NULL: not indexed (scan) */
	size_t		 naddresses;
};

/* Parse text named `name`; errors "NAME:LINE: what" to errf; returns
 * the number of errors; *out is set (possibly partial) either way. */
int	userdb_parse(const char *name, const char *text, struct userdb *out,
	    FILE *errf);
int	userdb_load(const char *path, struct userdb *out, FILE *errf);
/* 1-64 letters, digits, '.', '_' or '-', not starting with '.'. */
int	userdb_name_valid(const char *);
/* Sort the users by name and index their addresses: O(n log n), where
 * a users file of an ISP holds tens of thousands of lines and every
 * worker reloads it when it changes.  userdb_parse and the PostgreSQL
 * loader call it; code that changes users afterwards must call it
 * again before looking up by address. */
void	userdb_index(struct userdb *);
/* An expiry date as the users file holds it, "YYYY-MM-DD" (1970 on),
 * to the first second after that day in UTC; "" is 0, never.  -1 for
 * anything else, a date that does not exist included. */
int	userdb_parse_date(const char *, time_t *);
void	userdb_free(struct userdb *);
const struct user_entry *userdb_lookup(const struct userdb *, const char *name);
/* The user owning an address (exact, case-insensitive), or NULL. */
const struct user_entry *userdb_lookup_address(const struct userdb *,
	    const char *addr);
/* Format one entry as a line (no newline) for writing the file back. */
int	userdb_format(const struct user_entry *, char *dst, size_t dstsz);

#endif
