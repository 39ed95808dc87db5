/*
 * aliases_default.c - the built-in aliases table (see aliases_default.h).
 * Built through the ordinary parser so that it obeys the same rules as
 * a file.
 */
#include "deliver/aliases_default.h"
#include "lib/buf.h"
#include "lib/log.h"

#include <string.h>

const char *const aliases_default_names[] = {
	/* RFC 5321 section 4.5.1 and RFC 2142 role mailboxes */
	"postmaster", "abuse", "hostmaster", "webmaster", "mailer-daemon",
	"root",
	/* Debian's system pseudo-accounts (base-passwd): mail for them is
	 * mail for whoever runs the machine. */
	"bin", "daemon", "sys", "sync", "games", "man", "lp", "mail", "news",
	"uucp", "proxy", "www-data", "backup", "list", "irc", "nobody",
	NULL,
};

void
aliases_default(struct aliases *al, const char *admin)
{
	struct buf text;

	memset(al, 0, sizeof *al);
	if (admin == NULL || admin[0] == '\0')
		return;
	buf_init(&text, 0);
	for (size_t i = 0; aliases_default_names[i] != NULL; i++)
		/* The administrator's own name cannot be an alias of itself:
		 * it is the mailbox. */
		if (strcmp(aliases_default_names[i], admin) != 0)
			buf_printf(&text, "%s: %s\n", aliases_default_names[i],
			    admin);
	if (text.data != NULL &&
	    aliases_parse("(default aliases)", text.data, al, NULL) != 0)
		log_warnx("aliases: the default table has errors (admin "
		    "'%s')", admin);
	buf_free(&text);
}
