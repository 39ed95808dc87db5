/*
 * aliases_default.h - the aliases postern behaves as if it had when no
 * `aliases` file is configured: the role addresses (RFC 2142) and the
 * system pseudo-accounts all go to the administrator (`admin NAME`).
 * docs/aliases.example holds the same table as a file.
 */
#ifndef POSTERN_ALIASES_DEFAULT_H
#define POSTERN_ALIASES_DEFAULT_H

#include "deliver/aliases.h"

/* The names routed to the administrator, NULL-terminated. */
extern const char *const aliases_default_names[];

/* Fill al with "NAME: admin" for every default name; empty when admin
 * is empty. */
void	aliases_default(struct aliases *al, const char *admin);

#endif
