/*
 * aliases.h - the aliases file in the /etc/aliases format (aliases(5)):
 *
 *     name: target, target
 *         continued-target          # a line starting with a blank continues
 *
 * Targets are local names, addresses, or ":include:/path" (a file with
 * one target per line).  Program ("|cmd") and file ("/path") targets are
 * refused: a mail server should not run commands for the network.
 * Names are case-insensitive.
 */
#ifndef POSTERN_ALIASES_H
#define POSTERN_ALIASES_H

#include <stddef.h>
#include <stdio.h>

struct alias_entry {
	char	*name;		/* lower case */
	char	**targets;
	size_t	 ntargets;
	int	 line;
};

struct aliases {
	struct alias_entry *entries;	/* sorted by name */
	size_t	 nentries;
};

int	aliases_parse(const char *name, const char *text, struct aliases *,
	    FILE *errf);
int	aliases_load(const char *path, struct aliases *, FILE *errf);
void	aliases_free(struct aliases *);
const struct alias_entry *aliases_lookup(const struct aliases *,
	    const char *name);

#endif
