/*
 * cli_aliases.c - `postern aliases [-c FILE]` (also `newaliases`):
 * check the aliases file, report "FILE:LINE: what" for every problem,
 * and when there is none, write the index FILE.idx atomically.  The
 * running workers and queue manager notice the new index by its mtime;
 * nothing needs a restart.
 */
#include "admin/cli.h"
#include "auth/userdb.h"
#include "conf/conf.h"
#include "deliver/aliases.h"
#include "deliver/aliases_default.h"
#include "deliver/aliases_index.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

/* Targets that are bare local names must be users or aliases; a typo
 * would otherwise bounce mail much later.  Warnings, not errors: the
 * user may be added after the alias. */
static int
aliases_warn_unknown(const struct conf *c, const struct aliases *al)
{
	struct userdb db;
	int nwarn = 0;

	if (!c->users[0] || userdb_load(c->users, &db, NULL) != 0)
		return 0;
	for (size_t i = 0; i < al->nentries; i++)
		for (size_t j = 0; j < al->entries[i].ntargets; j++) {
			const char *t = al->entries[i].targets[j];
			char name[256];

			if (strchr(t, '@') || strncmp(t, ":include:", 9) == 0 ||
			    t[0] == '"' || strlen(t) >= sizeof name)
				continue;
			strcpy(name, t);	/* length checked above */
			for (char *p = name; *p; p++)
				if (*p >= 'A' && *p <= 'Z')
					*p = (char)(*p - 'A' + 'a');
			if (aliases_lookup(al, name) == NULL &&
			    userdb_lookup(&db, name) == NULL) {
				printf("%s:%d: warning: '%s' is neither a user "
				    "nor an alias\n", c->aliases,
				    al->entries[i].line, t);
				nwarn++;
			}
		}
	userdb_free(&db);
	return nwarn;
}

int
cli_aliases(int argc, char **argv, const char *conf_path)
{
	struct conf c;
	struct aliases al;
	char idx[PATH_MAX];
	int nerr;

	if (argc != 0) {
		fprintf(stderr, "usage: postern aliases [-c FILE]\n");
		return EX_USAGE;
	}
	if (conf_load(conf_path, &c, stderr) != 0) {
		conf_free(&c);
		return EX_CONFIG;
	}
	if (!c.aliases[0]) {
		size_t n = 0;
		while (aliases_default_names[n] != NULL)
			n++;
		if (c.admin[0])
			printf("postern: no 'aliases' file in %s: the built-in "
			    "table sends %zu names (postmaster, abuse, root, "
			    "...) to '%s'\n", c.path, n, c.admin);
		else
			printf("postern: no 'aliases' file and no 'admin' in "
			    "%s: mail to postmaster has nowhere to go; set "
			    "'admin NAME'\n", c.path);
		conf_free(&c);
		return 0;
	}
	if ((nerr = aliases_load(c.aliases, &al, stdout)) != 0) {
		fprintf(stderr, "postern: %s: %d error%s; index not written\n",
		    c.aliases, nerr, nerr == 1 ? "" : "s");
		aliases_free(&al);
		conf_free(&c);
		return EX_DATAERR;
	}
	aliases_warn_unknown(&c, &al);
	if (aliases_index_path(c.aliases, idx, sizeof idx) == -1 ||
	    aliases_index_write(c.aliases, &al) == -1) {
		fprintf(stderr, "postern: cannot write %s.idx: %s\n", c.aliases,
		    strerror(errno));
		aliases_free(&al);
		conf_free(&c);
		return EX_CANTCREAT;
	}
	printf("postern: %s: %zu aliases; index %s written\n", c.aliases,
	    al.nentries, idx);
	aliases_free(&al);
	conf_free(&c);
	return 0;
}
