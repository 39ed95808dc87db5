/*
 * userdb_file.c - parser and lookups for the users file (see userdb.h).
 * A malformed line is reported with the file name and line number and
 * skipped; the rest of the file still loads.
 */
#include "auth/userdb.h"
#include "lib/errlist.h"
#include "lib/fsio.h"
#include "lib/strutil.h"
#include "lib/xalloc.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define USERDB_FIELDS	6

int
userdb_name_valid(const char *s)
{
	size_t n = strlen(s);

	/* The name is also a directory below `mailboxes`: no ".", "..",
	 * nor hidden names. */
	if (n == 0 || n > 64 || s[0] == '.')
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("._-", *s))
			return 0;
	return 1;
}

int
userdb_parse_date(const char *s, time_t *out)
{
	struct tm tm;
	char *end;
	int mday, mon;

	if (*s == '\0') {
		*out = 0;
		return 0;
	}
	/* Exactly YYYY-MM-DD: strptime alone also takes "2024-1-1" and
	 * leading blanks. */
	for (int i = 0; i < 10; i++)
		if (i == 4 || i == 7 ? s[i] != '-' :
		    !isdigit((unsigned char)s[i]))
			return -1;
	memset(&tm, 0, sizeof tm);
	end = strptime(s, "%Y-%m-%d", &tm);
	if (end == NULL || *end != '\0')
		return -1;
	/* strptime takes day 31 in any month: a date that timegm has to
	 * move ("2024-02-30" -> March 1) does not exist. */
	mday = tm.tm_mday;
	mon = tm.tm_mon;
	/* Before 1970, 1969-12-31 would end at second 0, which means
	 * "never"; and years below 1000 do not print back as four digits
	 * (found by tests/fuzz/fuzz_userdb.c). */
	if (tm.tm_year < 70)
		return -1;
	if (timegm(&tm) == -1 || tm.tm_mday != mday || tm.tm_mon != mon)
		return -1;
	/* Valid through the whole day named, in UTC. */
	tm.tm_mday += 1;
	*out = timegm(&tm);
	return *out == -1 ? -1 : 0;
}

/* User names are case-insensitive, like the mail addresses they receive
 * (the recipient check looks them up in lower case). */
static int
user_cmp(const void *a, const void *b)
{
	return strcasecmp(((const struct user_entry *)a)->name,
	    ((const struct user_entry *)b)->name);
}

/* By name, then by line: the first of two equal names is the one kept. */
static int
user_line_cmp(const void *a, const void *b)
{
	const struct user_entry *x = a, *y = b;
	int c = user_cmp(a, b);

	return c ? c : (x->line > y->line) - (x->line < y->line);
}

/* By address, then by user: the lookup finds the first user (by name)
 * that lists an address, as a scan in name order would. */
static int
address_cmp(const void *a, const void *b)
{
	const struct userdb_address *x = a, *y = b;
	int c = strcasecmp(x->addr, y->addr);

	return c ? c : (x->user > y->user) - (x->user < y->user);
}

/* A string that held a hash or a mechanism secret, wiped before it is
 * freed: the master reads the users file before it forks the workers,
 * which would otherwise start with every hash in their free memory. */
static void
secret_free(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

static void
entry_free(struct user_entry *u)
{
	free(u->name);
	secret_free(u->hash);
	for (size_t i = 0; i < u->naddresses; i++)
		free(u->addresses[i]);
	free(u->addresses);
	secret_free(u->secrets);
}

/* Drop the later lines of a name given twice; users is sorted by
 * user_line_cmp. */
static void
drop_duplicates(const char *name, struct userdb *db, struct errlist *errs)
{
	size_t kept = 0;

	for (size_t i = 0; i < db->nusers; i++) {
		if (kept > 0 && user_cmp(&db->users[kept - 1],
		    &db->users[i]) == 0) {
			errlist_add(errs, name, db->users[i].line,
			    "duplicate user name");
			entry_free(&db->users[i]);
			continue;
		}
		db->users[kept++] = db->users[i];
	}
	db->nusers = kept;
}

void
userdb_index(struct userdb *db)
{
	size_t n = 0;

	free(db->by_address);
	db->by_address = NULL;
	db->naddresses = 0;
	if (db->nusers == 0)
		return;
	qsort(db->users, db->nusers, sizeof *db->users, user_cmp);
	for (size_t i = 0; i < db->nusers; i++)
		n += db->users[i].naddresses;
	db->by_address = xcalloc(n ? n : 1, sizeof *db->by_address);
	for (size_t i = 0; i < db->nusers; i++)
		for (size_t j = 0; j < db->users[i].naddresses; j++) {
			db->by_address[db->naddresses].addr =
			    db->users[i].addresses[j];
			db->by_address[db->naddresses++].user = i;
		}
	qsort(db->by_address, db->naddresses, sizeof *db->by_address,
	    address_cmp);
}

int
userdb_parse(const char *name, const char *text, struct userdb *db, FILE *errf)
{
	struct errlist errs = { 0 };
	const char *p = text;
	int line = 0;

	memset(db, 0, sizeof *db);
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		char *copy = xstrndup(p, len), *field[USERDB_FIELDS], *s = copy;
		struct user_entry u;
		size_t nf = 0;
		const char *why = NULL;

		line++;
		p += len + (nl != NULL);
		if (len && copy[len - 1] == '\r')
			copy[len - 1] = '\0';
		if (copy[0] == '#' || copy[strspn(copy, " \t")] == '\0') {
			secret_free(copy);
			continue;
		}
		while (nf < USERDB_FIELDS) {
			field[nf++] = s;
			if ((s = strchr(s, ':')) == NULL)
				break;
			*s++ = '\0';
		}
		memset(&u, 0, sizeof u);
		if (nf != USERDB_FIELDS || s != NULL)
			why = "expected 6 fields name:hash:expires:flags:addresses:secrets";
		else if (!userdb_name_valid(field[0]))
			why = "user name must be 1-64 letters, digits, '.', '_' or "
			    "'-', not starting with '.'";
		else if (userdb_parse_date(field[2], &u.expires) == -1)
			why = "expiry date must be YYYY-MM-DD or empty";
		else if (field[3][0] && strcmp(field[3], "locked") != 0)
			why = "flags must be empty or 'locked'";
		if (why) {
			errlist_add(&errs, name, line, "%s", why);
			explicit_bzero(copy, len);	/* split by '\0's */
			free(copy);
			continue;
		}
		u.name = xstrdup(field[0]);
		u.hash = xstrdup(field[1]);
		u.locked = field[3][0] != '\0';
		u.secrets = xstrdup(field[5]);
		u.line = line;
		for (char *a = strtok(field[4], ","); a; a = strtok(NULL, ",")) {
			u.addresses = xreallocarray(u.addresses, u.naddresses + 1,
			    sizeof *u.addresses);
			u.addresses[u.naddresses++] = xstrdup(a);
		}
		explicit_bzero(copy, len);
		free(copy);
		db->users = xreallocarray(db->users, db->nusers + 1,
		    sizeof *db->users);
		db->users[db->nusers++] = u;
	}
	/* Sorted once at the end, not per line: n log n for the file. */
	if (db->nusers > 0)
		qsort(db->users, db->nusers, sizeof *db->users, user_line_cmp);
	drop_duplicates(name, db, &errs);
	userdb_index(db);
	return (int)errlist_flush(&errs, errf);
}

int
userdb_load(const char *path, struct userdb *db, FILE *errf)
{
	char *text;
	int nerr;

	memset(db, 0, sizeof *db);
	if ((text = read_text_file(path, 1 << 30, errf)) == NULL)
		return 1;
	nerr = userdb_parse(path, text, db, errf);
	secret_free(text);
	return nerr;
}

void
userdb_free(struct userdb *db)
{
	for (size_t i = 0; i < db->nusers; i++)
		entry_free(&db->users[i]);
	free(db->users);
	free(db->by_address);
	memset(db, 0, sizeof *db);
}

const struct user_entry *
userdb_lookup(const struct userdb *db, const char *name)
{
	struct user_entry key = { .name = (char *)name };

	if (db->nusers == 0)
		return NULL;
	return bsearch(&key, db->users, db->nusers, sizeof *db->users, user_cmp);
}

const struct user_entry *
userdb_lookup_address(const struct userdb *db, const char *addr)
{
	size_t lo = 0, hi = db->naddresses;

	if (db->by_address == NULL) {
		/* Not indexed (built by hand): scan in name order. */
		for (size_t i = 0; i < db->nusers; i++)
			for (size_t j = 0; j < db->users[i].naddresses; j++)
				if (strcasecmp(db->users[i].addresses[j],
				    addr) == 0)
					return &db->users[i];
		return NULL;
	}
	/* The first entry not below addr: the lowest user among equals. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcasecmp(db->by_address[mid].addr, addr) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < db->naddresses &&
	    strcasecmp(db->by_address[lo].addr, addr) == 0)
		return &db->users[db->by_address[lo].user];
	return NULL;
}

int
userdb_format(const struct user_entry *u, char *dst, size_t dstsz)
{
	char date[16] = "";
	size_t o;

	if (u->expires) {
		time_t last = u->expires - 86400;
		struct tm tm;
		gmtime_r(&last, &tm);
		strftime(date, sizeof date, "%Y-%m-%d", &tm);
	}
	o = (size_t)snprintf(dst, dstsz, "%s:%s:%s:%s:", u->name, u->hash, date,
	    u->locked ? "locked" : "");
	for (size_t i = 0; i < u->naddresses && o < dstsz; i++)
		o += (size_t)snprintf(dst + o, dstsz - o, "%s%s", i ? "," : "",
		    u->addresses[i]);
	if (o < dstsz)
		o += (size_t)snprintf(dst + o, dstsz - o, ":%s", u->secrets);
	return o < dstsz ? 0 : -1;
}
