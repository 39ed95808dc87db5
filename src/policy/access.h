/*
 * access.h - the access map (`access FILE`, docs/access.md): the
 * administrator's table of who may connect, relay and send.  One rule a
 * line, `KEY ACTION [text]`; client addresses and prefixes live in two
 * path-compressed binary prefix trees (IPv4, IPv6), names (helo:, from:,
 * to:) in one open-addressing hash table, so a lookup costs the same
 * with ten rules or a hundred thousand.  Used by the workers (and by
 * `postern access` / `postern config check`); a loaded map is
 * read-only and reference-counted, so a session keeps the table it
 * started with while the worker swaps in a newer one.
 */
#ifndef POSTERN_ACCESS_H
#define POSTERN_ACCESS_H

#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>

#include "lib/filewatch.h"

enum access_action {
	ACCESS_NONE,		/* no rule matched */
	ACCESS_OK,
	ACCESS_RELAY,
	ACCESS_REJECT,
	ACCESS_TEMPFAIL,
	ACCESS_DISCARD,
	ACCESS_HOLD,
};

enum access_kind {
	ACCESS_K_ADDR,		/* 192.0.2.0/24, 2001:db8::/32, 192.0.2.7 */
	ACCESS_K_HELO,		/* helo:NAME, helo:.SUFFIX */
	ACCESS_K_FROM,		/* from:USER@DOMAIN, from:DOMAIN, from:.SUFFIX */
	ACCESS_K_TO,		/* to:USER@DOMAIN, to:DOMAIN, to:.SUFFIX */
};

struct access_rule {
	enum access_kind   kind;
	enum access_action action;
	unsigned	   line;
	unsigned	   dup_of;	/* line of an earlier identical key, or 0 */
	char		  *key;		/* normalised, as printed: "from:example.com" */
	char		  *text;	/* reply or log text, or NULL */
};

struct access_map;

/* Parse text (a file's contents, named `name` in messages).  Errors go
 * to errf as "NAME:LINE: what"; the result is NULL when there was any,
 * and *nerr (if not NULL) counts them. */
struct access_map *access_map_parse(const char *name, const char *text,
	    FILE *errf, int *nerr);
/* The same from a file (at most 64 MiB). */
struct access_map *access_map_load(const char *path, FILE *errf, int *nerr);
struct access_map *access_map_ref(struct access_map *);
void	access_map_unref(struct access_map *);	/* frees at zero; NULL ok */

size_t	access_map_size(const struct access_map *);

/* Lookups: the most specific rule (docs/access.md), or NULL.  A NULL map
 * matches nothing.  Names and addresses are compared without regard to
 * case.  IPv4-mapped IPv6 peers are looked up as IPv4. */
const struct access_rule *access_lookup_addr(const struct access_map *,
	    const struct sockaddr *);
const struct access_rule *access_lookup_helo(const struct access_map *,
	    const char *name);
/* addr is "local@domain" (or "" for the null sender, which matches no
 * rule); kind is ACCESS_K_FROM or ACCESS_K_TO. */
const struct access_rule *access_lookup_mail(const struct access_map *,
	    enum access_kind, const char *addr);

/* "FILE:LINE" of a rule, for logs and replies to the administrator. */
void	access_rule_where(const struct access_map *, const struct access_rule *,
	    char *dst, size_t dstsz);
const char *access_action_name(enum access_action);

/* `postern config check`: rules that open a relay to much of the
 * internet, duplicates, rules that can never match or change nothing.
 * Writes "FILE:LINE: warning: ..." lines; returns how many. */
int	access_map_lint(const struct access_map *, FILE *out);

/* The table a worker uses: reloaded when the file's mtime changes,
 * checked at most once a second (as the users and aliases files are).
 * A file with errors keeps the previous table. */
struct access_table {
	const char	  *path;	/* "" or NULL: no access map */
	struct access_map *map;
	struct filewatch   watch;	/* the version loaded (or tried) */
	int		   missing;	/* said that the file is gone */
	time_t		   checked;
};

/* The table of path as it is now (none for "" or NULL), errors written
 * to errf: 0, or -1 with the errors counted in *nerr.  The master loads
 * it at start and at SIGHUP; its workers start from a copy. */
int	access_table_load(struct access_table *, const char *path, FILE *errf,
	    int *nerr);
/* dst shares src's map; path is the same file, as the child's conf
 * names it. */
void	access_table_copy(struct access_table *dst,
	    const struct access_table *src, const char *path);
void	access_table_refresh(struct access_table *, time_t now);
void	access_table_free(struct access_table *);

#endif
