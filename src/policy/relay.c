/*
 * relay.c - recipient policy and the local name maps (see relay.h).
 * Runs in the workers.  Address tricks cannot open a relay here: the
 * address parser admits only RFC 5321 syntax, source routes are dropped,
 * and a local part holding '%', '!' or '@' is never a local name.
 */
#include "policy/relay.h"
#include "deliver/aliases_default.h"
#include "deliver/aliases_index.h"
#include "auth/userview.h"
#include "lib/log.h"
#include "lib/strutil.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* path is a new version, whole (lib/filewatch.h); a file that cannot be
 * looked at keeps what we have.  At start (now 0) as it is. */
static int
file_changed(struct filewatch *w, const char *path, time_t now)
{
	return filewatch_changed(w, path, now == 0) == 1;
}

/* The source or its index (`postern aliases`) changed.  Both are
 * checked every time so that each remembers its own version. */
static int
aliases_reload_due(const char *src, struct rcpt_maps *m, time_t now)
{
	char idx[PATH_MAX];
	int changed = file_changed(&m->aliases_watch, src, now);

	if (aliases_index_path(src, idx, sizeof idx) == 0 &&
	    file_changed(&m->aliases_idx_watch, idx, now))
		changed = 1;
	return changed;
}

void
rcpt_maps_init(struct rcpt_maps *m, const struct conf *c)
{
	memset(m, 0, sizeof *m);
	m->conf = c;
	strlcpy(m->users_path, c->users, sizeof m->users_path);
	rcpt_maps_refresh(m, 0);
}

void
rcpt_maps_init_view(struct rcpt_maps *m, const struct conf *c)
{
	memset(m, 0, sizeof *m);
	m->conf = c;
	if (c->users[0])
		userview_path(c, m->users_path, sizeof m->users_path);
	rcpt_maps_refresh(m, 0);
}

void
rcpt_maps_free(struct rcpt_maps *m)
{
	userdb_free(&m->users);
	aliases_free(&m->aliases);
}

void
rcpt_maps_refresh(struct rcpt_maps *m, time_t now)
{
	const struct conf *c = m->conf;

	if (now != 0 && now == m->checked)
		return;
	m->checked = now;
	if (m->users_path[0] &&
	    file_changed(&m->users_watch, m->users_path, now)) {
		struct userdb db;
		if (userdb_load(m->users_path, &db, stderr) == 0) {
			userdb_free(&m->users);
			m->users = db;
			m->users_generation++;
			log_debug("users: loaded %zu users from %s", db.nusers,
			    m->users_path);
		} else {
			log_warnx("users: %s has errors; keeping the previous "
			    "table", m->users_path);
			userdb_free(&db);
			/* Look again next time: it may be readable then. */
			filewatch_reset(&m->users_watch);
		}
	}
	if (!c->aliases[0] && !m->aliases_default) {
		aliases_default(&m->aliases, c->admin);
		m->aliases_default = 1;
	}
	if (c->aliases[0] && aliases_reload_due(c->aliases, m, now)) {
		struct aliases al;
		if (aliases_load_indexed(c->aliases, &al, stderr) == 0) {
			aliases_free(&m->aliases);
			m->aliases = al;
			log_debug("aliases: loaded %zu aliases from %s",
			    al.nentries, c->aliases);
		} else {
			log_warnx("aliases: %s has errors; keeping the previous "
			    "table", c->aliases);
			aliases_free(&al);
		}
	}
}

/* Is this local part (lower case, no domain) a user or alias here? */
static int
rcpt_maps_known(const struct rcpt_maps *m, const char *local)
{
	/* With neither map configured, every local part is accepted (and
	 * `postern config check` says so). */
	if (!m->conf->users[0] && !m->conf->aliases[0])
		return 1;
	return userdb_lookup(&m->users, local) != NULL ||
	    aliases_lookup(&m->aliases, local) != NULL;
}

int
relay_client_trusted(const struct conf *c, const struct relay_client *rc)
{
	return rc->authenticated || rc->access_relay ||
	    netprefix_match_list(c->mynetworks, c->nmynetworks, rc->peer);
}

enum smtp_reply_id
relay_check_rcpt(struct rcpt_maps *m, const struct relay_client *rc,
    const struct mailaddr *a)
{
	const struct conf *c = m->conf;
	char local[SMTP_LOCAL_MAX + 1], full[SMTP_LOCAL_MAX + SMTP_DOMAIN_MAX + 2];

	/* <postmaster> without a domain must always be accepted
	 * (RFC 5321 section 4.5.1). */
	if (a->domain[0] == '\0')
		return R_RCPT_OK;
	if (!a->literal && conf_is_local_domain(c, a->domain)) {
		if (smtp_addr_simple_local(a, local, sizeof local) == -1 ||
		    strpbrk(local, "%!@") != NULL)
			return R_UNKNOWN_USER;
		str_lower(local);
		if (strcmp(local, "postmaster") == 0 || rcpt_maps_known(m, local))
			return R_RCPT_OK;
		/* An address listed for a user counts too. */
		snprintf(full, sizeof full, "%s@%s", local, a->domain);
		if (userdb_lookup_address(&m->users, full) != NULL)
			return R_RCPT_OK;
		return R_UNKNOWN_USER;
	}
	return relay_client_trusted(c, rc) ? R_RCPT_OK : R_RELAY_DENIED;
}
