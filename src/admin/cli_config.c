/*
 * cli_config.c - `postern config [-c FILE] check`: validate the
 * configuration and the files it names without starting anything, print
 * problems as "FILE:LINE: what" and then the effective settings.
 */
#include "admin/cli.h"
#include "admin/config_audit.h"
#include "auth/userdb.h"
#include "auth/userdb_pg.h"
#include "conf/conf.h"
#include "deliver/aliases.h"
#include "policy/access.h"
#include "deliver/remote.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int
check_dir(const char *what, const char *path)
{
	struct stat st;

	if (stat(path, &st) == -1) {
		if (errno == ENOENT) {
			printf("note: %s %s does not exist yet; postern serve "
			    "creates it\n", what, path);
			return 0;
		}
		printf("error: %s %s: %s\n", what, path, strerror(errno));
		return 1;
	}
	if (!S_ISDIR(st.st_mode)) {
		printf("error: %s %s is not a directory\n", what, path);
		return 1;
	}
	return 0;
}

int
cli_config(int argc, char **argv, const char *conf_path)
{
	struct conf c;
	int nerr, nwarn = 0;

	if (argc != 1 || strcmp(argv[0], "check") != 0) {
		fprintf(stderr, "usage: postern config [-c FILE] check\n");
		return EX_USAGE;
	}
	nerr = conf_load(conf_path, &c, stderr);
	if (nerr) {
		fprintf(stderr, "%s: %d error%s\n", conf_path, nerr,
		    nerr == 1 ? "" : "s");
		conf_free(&c);
		return EX_CONFIG;
	}
	nerr += check_dir("spool", c.spool);
	if (c.users[0] && !userdb_pg_is_url(c.users)) {
		struct userdb db;
		nerr += userdb_load(c.users, &db, stdout) ? 1 : 0;
		userdb_free(&db);
	}
	if (c.aliases[0]) {
		struct aliases al;
		nerr += aliases_load(c.aliases, &al, stdout) ? 1 : 0;
		aliases_free(&al);
	}
	/* relay ... auth FILE: mode, presence, one "LOGIN PASSWORD" line;
	 * relay and submit ... tls ca FILE: certificates that load */
	nerr += remote_check_config(&c, stdout);
	if (c.submit_tls_ca[0] && remote_ca_check(c.submit_tls_ca, stdout) == -1)
		nerr++;
	if (c.access[0]) {
		int aerr = 0;
		struct access_map *m = access_map_load(c.access, stdout, &aerr);

		if (m == NULL)
			nerr += aerr ? aerr : 1;
		else {
			nwarn += access_map_lint(m, stdout);
			access_map_unref(m);
		}
	}
	if (!c.users[0] && !c.aliases[0] && c.ndomains) {
		printf("warning: neither 'users' nor 'aliases' is set: every "
		    "local part of %s%s is accepted\n", c.domains[0],
		    c.ndomains > 1 ? " (and the other local domains)" : "");
		nwarn++;
	}
	/* directories, permissions, certificate, open relays */
	nerr += config_audit(&c, stdout, &nwarn);
	printf("# effective settings\n");
	conf_print(&c, stdout);
	printf("%s: %s (%d warning%s)\n", c.path, nerr ? "errors" : "ok",
	    nwarn, nwarn == 1 ? "" : "s");
	conf_free(&c);
	return nerr ? EX_CONFIG : 0;
}
