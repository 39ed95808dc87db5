/*
 * userview.c - publishing the hash-free users view (see userview.h).
 * Runs as root in the auth process and the master.
 */
#include "auth/userview.h"
#include "lib/buf.h"
#include "lib/fsio.h"
#include "lib/log.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

int
userview_path(const struct conf *c, char *dst, size_t dstsz)
{
	return (size_t)snprintf(dst, dstsz, "%s/private/users.view", c->spool) >=
	    dstsz ? -1 : 0;
}

int
userview_publish(const struct conf *c, const struct userdb *db, gid_t gid)
{
	char path[PATH_MAX], line[8192];
	struct buf b;
	int rc;

	if (userview_path(c, path, sizeof path) == -1)
		return -1;
	buf_init(&b, 0);
	buf_puts(&b, "# postern users view, written by the auth process from "
	    "the users source;\n# no hashes, no secrets.  Do not edit.\n");
	for (size_t i = 0; i < db->nusers; i++) {
		struct user_entry v = db->users[i];

		v.hash = (char *)"x";
		v.secrets = (char *)"";
		if (userdb_format(&v, line, sizeof line) == -1)
			continue;	/* the source's own line was too long too */
		buf_printf(&b, "%s\n", line);
	}
	rc = write_file_atomic_group(path, b.data ? b.data : "", b.len, 0640,
	    geteuid() == 0 ? gid : (gid_t)-1);
	buf_free(&b);
	if (rc == -1) {
		log_warn("users: cannot write %s", path);
		return -1;
	}
	log_debug("users: published %zu users to %s", db->nusers, path);
	return 0;
}
