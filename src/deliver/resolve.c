/*
 * resolve.c - recipient resolution (see resolve.h).
 */
#include "deliver/resolve.h"
#include "lib/strutil.h"
#include "lib/xalloc.h"
#include "smtp/smtp_addr.h"

#include <stdio.h>
#include <string.h>

int
resolve_mailbox_name_ok(const char *s)
{
	size_t len = strlen(s);

	return len > 0 && len <= 64 && s[0] != '.' && s[0] != '-' &&
	    strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789._+-") == len;
}

static const char *
resolve_user(void *arg, const char *local, const char *domain)
{
	struct rcpt_maps *m = arg;
	const struct conf *c = m->conf;
	const struct user_entry *u;
	char full[SMTP_LOCAL_MAX + SMTP_DOMAIN_MAX + 2];

	if (c->users[0]) {
		if ((u = userdb_lookup(&m->users, local)) != NULL)
			return u->name;
		if (domain != NULL && (size_t)snprintf(full, sizeof full, "%s@%s",
		    local, domain) < sizeof full &&
		    (u = userdb_lookup_address(&m->users, full)) != NULL)
			return u->name;
	} else if (resolve_mailbox_name_ok(local))
		/* No users file: every local part is a mailbox (the mode
		 * `postern config check` warns about). */
		return local;
	/* The postmaster must always reach someone (RFC 5321 4.5.1). */
	if (strcmp(local, "postmaster") == 0 && c->admin[0])
		return c->admin;
	return NULL;
}

static int
resolve_is_local(void *arg, const char *domain)
{
	struct rcpt_maps *m = arg;

	return conf_is_local_domain(m->conf, domain);
}

static void
resolve_fail(struct alias_expansion *out, const char *rcpt, const char *dsn,
    const char *reason)
{
	out->r = xreallocarray(out->r, out->n + 1, sizeof *out->r);
	out->r[out->n].kind = ALIAS_R_FAIL;
	out->r[out->n].target = xstrdup(rcpt);
	out->r[out->n].reason = xstrdup(reason);
	out->r[out->n].dsn = dsn;
	out->n++;
}

void
resolve_rcpt(struct rcpt_maps *m, const char *rcpt, struct alias_expansion *out)
{
	struct alias_ctx ctx = { &m->aliases, resolve_user, resolve_is_local,
	    m, 0 };
	struct mailaddr a;
	char local[SMTP_LOCAL_MAX + 1];

	memset(out, 0, sizeof *out);
	if (smtp_addr_parse_path(rcpt, strlen(rcpt), &a) == -1 ||
	    rcpt[0] == '\0') {
		resolve_fail(out, rcpt, "5.1.3", "bad recipient address syntax");
		return;
	}
	if (a.domain[0] == '\0') {		/* <postmaster> */
		aliases_expand(&ctx, "postmaster", NULL, out);
		return;
	}
	if (a.literal || !conf_is_local_domain(m->conf, a.domain)) {
		out->r = xcalloc(1, sizeof *out->r);
		out->r[0].kind = ALIAS_R_REMOTE;
		out->r[0].target = xstrdup(rcpt);
		out->n = 1;
		return;
	}
	/* Same rule as relay_check_rcpt(): no routing tricks locally. */
	if (smtp_addr_simple_local(&a, local, sizeof local) == -1 ||
	    strpbrk(local, "%!@") != NULL) {
		resolve_fail(out, rcpt, "5.1.1", "unknown user");
		return;
	}
	str_lower(local);
	aliases_expand(&ctx, local, a.domain, out);
}
