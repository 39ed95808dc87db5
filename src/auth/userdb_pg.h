/*
 * userdb_pg.h - the users on PostgreSQL (`users postgresql://...`,
 * docs/scaling.md): the same entries as the users file (auth/userdb.h),
 * read by the auth process and written by `postern user`.  The schema
 * lives in sql/NNN_*.sql, compiled in; the missing migrations are applied
 * at connection, under an advisory lock so that nodes starting together
 * do not race.
 */
#ifndef POSTERN_USERDB_PG_H
#define POSTERN_USERDB_PG_H

#include <stdio.h>
#include <time.h>

#include <event2/event.h>

#include "auth/userdb.h"

struct userdb_pg_migration {
	int		 version;
	const char	*name;
	const char	*sql;
};
/* Generated from sql/ by CMakeLists.txt; ends with a NULL name. */
extern const struct userdb_pg_migration userdb_pg_migrations[];

/* Is this `users` value a PostgreSQL URL? */
int	userdb_pg_is_url(const char *);

/*
 * The auth process's copy, *db.  userdb_pg_new loads the first one on
 * the caller's thread (bounded by a 2 s connect timeout).  After that,
 * userdb_pg_refresh sends a question at most once per `lifetime` seconds
 * to a thread of its own, which asks for the generation and reloads the
 * table when it moved; the answer replaces *db on base's loop, bumps
 * *generation and calls changed(arg).  userdb_pg_usable: 1 if the copy
 * may be used, 0 if the last question got no answer, or none within 5 s
 * (callers answer a temporary error until one comes).  An outage is
 * logged once.
 */
struct userdb_pg;
struct userdb_pg *userdb_pg_new(const char *url, unsigned lifetime,
	    struct event_base *base, struct userdb *db, unsigned *generation,
	    void (*changed)(void *), void *arg);
/* Ends a question still out (its socket is shut), then frees. */
void	userdb_pg_free(struct userdb_pg *);
void	userdb_pg_refresh(struct userdb_pg *, time_t now);
int	userdb_pg_usable(const struct userdb_pg *);

/*
 * `postern user`: one change, read-modify-write.  edit_begin connects,
 * waits for any other `postern user` to finish (an advisory lock held
 * until the end; not with exclusive 0, for show and list) and loads
 * every user into *db; NULL on failure.  store
 * and delete write one row; edit_end commits (or, commit 0, rolls back)
 * and frees.  0 or -1, with a message on errf.
 */
struct userdb_pg_edit;
struct userdb_pg_edit *userdb_pg_edit_begin(const char *url, int exclusive,
	    struct userdb *, FILE *errf);
int	userdb_pg_edit_store(struct userdb_pg_edit *, const struct user_entry *,
	    FILE *errf);
int	userdb_pg_edit_delete(struct userdb_pg_edit *, const char *name,
	    FILE *errf);
int	userdb_pg_edit_end(struct userdb_pg_edit *, int commit, FILE *errf);

#endif
