/*
 * cli_user.c - `postern user`: the useradd / usermod / chage / userdel
 * of postern's users file.
 *
 *   postern user [-c FILE] add NAME [--password-stdin] [--address ADDR]...
 *                              [--expires YYYY-MM-DD]
 *   postern user [-c FILE] passwd NAME [--password-stdin]
 *   postern user [-c FILE] lock|unlock|del|show NAME
 *   postern user [-c FILE] expire NAME YYYY-MM-DD|never
 *   postern user [-c FILE] list
 *
 * Every change is a read-modify-write under an exclusive lock on
 * FILE.lock (on PostgreSQL, an advisory lock held by the transaction:
 * auth/userdb_pg.h), written atomically (temp file, fsync, rename), mode 0600:
 * only the auth process reads it, and publishes a view without hashes
 * for the workers.  The running server picks it up within a second or
 * two (it watches the file's mtime) and never sees half a file.
 */
#include "admin/cli.h"
#include "auth/apop.h"
#include "auth/pwhash.h"
#include "auth/userdb.h"
#include "auth/userdb_pam.h"
#include "auth/userdb_pg.h"
#include "conf/conf.h"
#include "lib/buf.h"
#include "lib/fsio.h"
#include "lib/strutil.h"
#include "lib/xalloc.h"
#include "sasl/sasl.h"
#include "smtp/smtp_addr.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define PASSWORD_MAX	1024

struct user_opts {
	int		 password_stdin;
	int		 pam;		/* the system account's password */
	const char	*expires;
	const char	**addresses;
	size_t		 naddresses;
};

static int
user_usage(void)
{
	fprintf(stderr,
	    "usage: postern user [-c FILE] add NAME [--password-stdin | --pam] "
	    "[--address ADDR]... [--expires YYYY-MM-DD]\n"
	    "       postern user [-c FILE] passwd NAME [--password-stdin]\n"
	    "       postern user [-c FILE] lock|unlock|del|show NAME\n"
	    "       postern user [-c FILE] expire NAME YYYY-MM-DD|never\n"
	    "       postern user [-c FILE] list\n");
	return EX_USAGE;
}

/* One line from stdin, or twice from the terminal without echo. */
static int
read_password(int from_stdin, char *dst, size_t dstsz)
{
	char again[PASSWORD_MAX + 2];
	struct termios old, quiet;
	size_t n;

	if (!from_stdin && !isatty(STDIN_FILENO)) {
		fprintf(stderr, "postern: standard input is not a terminal; "
		    "use --password-stdin\n");
		return -1;
	}
	for (int round = 0; round < (from_stdin ? 1 : 2); round++) {
		char *buf = round == 0 ? dst : again;
		size_t bufsz = round == 0 ? dstsz : sizeof again;

		if (!from_stdin) {
			fprintf(stderr, round == 0 ? "New password: " :
			    "Again: ");
			tcgetattr(STDIN_FILENO, &old);
			quiet = old;
			quiet.c_lflag &= ~(tcflag_t)ECHO;
			tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
		}
		if (fgets(buf, (int)bufsz, stdin) == NULL)
			buf[0] = '\0';
		if (!from_stdin) {
			tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
			fputc('\n', stderr);
		}
		n = strlen(buf);
		if (n && buf[n - 1] == '\n')
			buf[--n] = '\0';
		if (n && buf[n - 1] == '\r')
			buf[--n] = '\0';
	}
	if (!from_stdin && strcmp(dst, again) != 0) {
		fprintf(stderr, "postern: the passwords do not match\n");
		OPENSSL_cleanse(again, sizeof again);
		return -1;
	}
	OPENSSL_cleanse(again, sizeof again);
	n = strlen(dst);
	if (n == 0 || n > PASSWORD_MAX) {
		fprintf(stderr, "postern: a password must be 1 to %d characters\n",
		    PASSWORD_MAX);
		return -1;
	}
	return 0;
}

/* The hash and the secrets of every enabled challenge mechanism. */
static int
set_password(const struct conf *c, struct user_entry *u, const char *password)
{
	static const struct { enum sasl_mech_id id; const char *kind; } kinds[] = {
		{ SASL_SCRAM_SHA_256, "scram-sha-256" },
		{ SASL_CRAM_MD5, "cram-md5" },
		{ SASL_DIGEST_MD5, "digest-md5" },
	};
	char hash[256], secret[512];
	struct buf b;

	if (pwhash_make(password, hash, sizeof hash) == -1) {
		fprintf(stderr, "postern: cannot hash the password\n");
		return -1;
	}
	buf_init(&b, 4096);
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
		if (!(c->auth_mechanisms & (1u << kinds[i].id)))
			continue;
		if (sasl_make_secret(kinds[i].kind, u->name, c->hostname, password,
		    secret, sizeof secret) < 0) {
			fprintf(stderr, "postern: cannot make the %s secret\n",
			    kinds[i].kind);
			buf_free(&b);
			return -1;
		}
		buf_printf(&b, "%s%s=%s", b.len ? ";" : "", kinds[i].kind, secret);
		OPENSSL_cleanse(secret, sizeof secret);
	}
	/* APOP needs the password itself (RFC 1939 section 7): kept only
	 * when the administrator turned APOP on. */
	if (c->apop) {
		if (apop_make_secret(password, secret, sizeof secret) == -1) {
			fprintf(stderr, "postern: password too long for APOP\n");
			buf_free(&b);
			return -1;
		}
		buf_printf(&b, "%sapop=%s", b.len ? ";" : "", secret);
		OPENSSL_cleanse(secret, sizeof secret);
	}
	free(u->hash);
	u->hash = xstrdup(hash);
	free(u->secrets);
	u->secrets = xstrdup(b.data ? b.data : "");
	buf_free(&b);
	return 0;
}

/* The users file's own reader decides: a date it would refuse must
 * never be written (every later command, and the server, would stop at
 * the file). */
static int
parse_expiry(const char *s, time_t *out)
{
	if (strcmp(s, "never") == 0) {
		*out = 0;
		return 0;
	}
	return *s == '\0' ? -1 : userdb_parse_date(s, out);
}

static int
write_users(const struct conf *c, const struct userdb *db)
{
	struct buf b;
	char line[8192];
	int rc;

	buf_init(&b, 0);
	buf_puts(&b, "# postern users file; edit with `postern user`.\n"
	    "# name:password-hash:expires:flags:addresses:secrets\n");
	for (size_t i = 0; i < db->nusers; i++) {
		if (userdb_format(&db->users[i], line, sizeof line) == -1) {
			fprintf(stderr, "postern: entry for %s too long\n",
			    db->users[i].name);
			buf_free(&b);
			return -1;
		}
		buf_printf(&b, "%s\n", line);
	}
	/* Only the auth process reads it: the workers see a view without
	 * hashes (auth/userview.h). */
	rc = write_file_atomic(c->users, b.data, b.len, 0600);
	buf_free(&b);
	if (rc == -1) {
		fprintf(stderr, "postern: cannot write %s: %s\n", c->users,
		    strerror(errno));
		return -1;
	}
	return 0;
}

static void
show_user(const struct user_entry *u, int verbose)
{
	char date[16] = "never";
	int has_pw = u->hash[0] && u->hash[0] != '!' && u->hash[0] != '*';

	if (u->expires) {
		time_t last = u->expires - 86400;
		struct tm tm;
		gmtime_r(&last, &tm);
		strftime(date, sizeof date, "%Y-%m-%d", &tm);
	}
	if (!verbose) {
		printf("%s\t%s\texpires=%s\t", u->name, u->locked ? "locked" :
		    has_pw ? "active" : "no-password", date);
		for (size_t i = 0; i < u->naddresses; i++)
			printf("%s%s", i ? "," : "", u->addresses[i]);
		printf("\n");
		return;
	}
	printf("name:        %s\n", u->name);
	printf("status:      %s\n", u->locked ? "locked" : has_pw ? "active" :
	    "no password set");
	printf("expires:     %s\n", date);
	printf("addresses:  ");
	for (size_t i = 0; i < u->naddresses; i++)
		printf(" %s", u->addresses[i]);
	printf("%s\n", u->naddresses ? "" : " (none: NAME@ each local domain)");
	printf("password:    %s\n", strcmp(u->hash, USERDB_PAM_HASH) == 0 ?
	    "the system account's, through PAM (PLAIN and LOGIN only)" :
	    !has_pw ? "none" :
	    strncmp(u->hash, "$y$", 3) == 0 ? "yescrypt" :
	    strncmp(u->hash, "$6$", 3) == 0 ? "sha512-crypt" : "crypt(3)");
	printf("mechanisms: ");
	if (has_pw)
		printf(" PLAIN LOGIN");
	if (strstr(u->secrets, "scram-sha-256="))
		printf(" SCRAM-SHA-256");
	if (strstr(u->secrets, "cram-md5="))
		printf(" CRAM-MD5");
	if (strstr(u->secrets, "digest-md5="))
		printf(" DIGEST-MD5");
	printf("\n");
}

/* A mail address the users file can hold: ':' ends its field and ','
 * separates addresses, so a quoted local part may not use them. */
static int
valid_address(const char *a)
{
	struct mailaddr m;

	return smtp_addr_parse_path(a, strlen(a), &m) == 0 && m.domain[0] &&
	    strpbrk(a, ":,") == NULL;
}

int
cli_user(int argc, char **argv, const char *conf_path)
{
	struct conf c;
	struct userdb db;
	struct user_opts o = { 0 };
	struct user_entry *u = NULL;
	struct userdb_pg_edit *pg = NULL;
	const char *verb, *name = NULL, *arg2 = NULL;
	char lockpath[PATH_MAX], password[PASSWORD_MAX + 2] = "";
	int lockfd = -1, rc = EX_SOFTWARE, changed = 0, deleted = 0, nerr;
	int reads_only, wants_password;

	if (argc < 1)
		return user_usage();
	verb = argv[0];
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--password-stdin") == 0)
			o.password_stdin = 1;
		else if (strcmp(argv[i], "--pam") == 0)
			o.pam = 1;
		else if (strcmp(argv[i], "--address") == 0 && i + 1 < argc) {
			o.addresses = xreallocarray(o.addresses, o.naddresses + 1,
			    sizeof *o.addresses);
			o.addresses[o.naddresses++] = argv[++i];
		} else if (strcmp(argv[i], "--expires") == 0 && i + 1 < argc)
			o.expires = argv[++i];
		else if (argv[i][0] == '-') {
			free(o.addresses);
			return user_usage();
		} else if (name == NULL)
			name = argv[i];
		else if (arg2 == NULL)
			arg2 = argv[i];
		else {
			free(o.addresses);
			return user_usage();
		}
	}
	if ((strcmp(verb, "list") != 0 && name == NULL) ||
	    (strcmp(verb, "expire") == 0) != (arg2 != NULL)) {
		free(o.addresses);
		return user_usage();
	}

	if ((nerr = conf_load(conf_path, &c, stderr)) != 0) {
		free(o.addresses);
		return EX_CONFIG;
	}
	if (!c.users[0]) {
		fprintf(stderr, "postern: %s sets no 'users' file\n", c.path);
		rc = EX_CONFIG;
		goto out_conf;
	}
	/* The password is read, and the name checked, before anything is
	 * locked: other administrators must not wait for someone typing. */
	reads_only = strcmp(verb, "show") == 0 || strcmp(verb, "list") == 0;
	wants_password = strcmp(verb, "passwd") == 0 ||
	    (strcmp(verb, "add") == 0 && !o.pam &&
	    (o.password_stdin || isatty(STDIN_FILENO)));
	if (strcmp(verb, "add") == 0 && !userdb_name_valid(name)) {
		fprintf(stderr, "postern: '%s': a user name is 1-64 letters, "
		    "digits, '.', '_' or '-', not starting with '.'\n", name);
		rc = EX_DATAERR;
		goto out_conf;
	}
	if (wants_password && read_password(o.password_stdin, password,
	    sizeof password) == -1) {
		rc = EX_DATAERR;
		goto out_conf;
	}
	/* A users database: read it all and write back one row (the
	 * change), in one transaction that other editors wait for; show
	 * and list read without waiting. */
	if (userdb_pg_is_url(c.users)) {
		if ((pg = userdb_pg_edit_begin(c.users, !reads_only, &db,
		    stderr)) == NULL) {
			rc = EX_UNAVAILABLE;
			goto out_conf;
		}
		goto loaded;
	}
	if ((size_t)snprintf(lockpath, sizeof lockpath, "%s.lock", c.users) >=
	    sizeof lockpath) {
		fprintf(stderr, "postern: %s: path too long\n", c.users);
		rc = EX_CONFIG;
		goto out_conf;
	}
	/* The file is replaced whole by rename: a reader needs no lock. */
	if (!reads_only && ((lockfd = open(lockpath, O_RDWR | O_CREAT |
	    O_CLOEXEC, 0600)) == -1 || flock(lockfd, LOCK_EX) == -1)) {
		fprintf(stderr, "postern: cannot lock %s: %s\n", lockpath,
		    strerror(errno));
		rc = EX_CANTCREAT;
		goto out_conf;
	}
	if (access(c.users, F_OK) == -1 && errno == ENOENT)
		memset(&db, 0, sizeof db);	/* the first user creates it */
	else if (userdb_load(c.users, &db, stderr) != 0) {
		fprintf(stderr, "postern: fix %s first\n", c.users);
		rc = EX_DATAERR;
		goto out_lock;
	}
loaded:
	if (name && strcmp(verb, "add") != 0 &&
	    (u = (struct user_entry *)userdb_lookup(&db, name)) == NULL) {
		fprintf(stderr, "postern: no user '%s' in %s\n", name, c.users);
		rc = EX_NOUSER;
		goto out_db;
	}

	if (strcmp(verb, "add") == 0) {
		struct user_entry n = { 0 };

		if (userdb_lookup(&db, name) != NULL) {
			fprintf(stderr, "postern: user '%s' already exists\n", name);
			rc = EX_DATAERR;
			goto out_db;
		}
		for (size_t i = 0; i < o.naddresses; i++)
			if (!valid_address(o.addresses[i])) {
				fprintf(stderr, "postern: '%s' is not a mail "
				    "address the users file can hold (':' and "
				    "',' separate its fields)\n", o.addresses[i]);
				rc = EX_DATAERR;
				goto out_db;
			}
		n.name = xstrdup(name);
		n.hash = xstrdup("!");
		n.secrets = xstrdup("");
		if (o.expires && parse_expiry(o.expires, &n.expires) == -1) {
			fprintf(stderr, "postern: --expires takes a date "
			    "YYYY-MM-DD from 1970 on\n");
			rc = EX_USAGE;
			goto out_db;
		}
		for (size_t i = 0; i < o.naddresses; i++) {
			n.addresses = xreallocarray(n.addresses, n.naddresses + 1,
			    sizeof *n.addresses);
			n.addresses[n.naddresses++] = xstrdup(o.addresses[i]);
		}
		db.users = xreallocarray(db.users, db.nusers + 1, sizeof *db.users);
		db.users[db.nusers++] = n;
		u = &db.users[db.nusers - 1];
		if (o.pam) {
			/* The password is the system account's (PAM). */
			free(u->hash);
			u->hash = xstrdup(USERDB_PAM_HASH);
		} else if (wants_password &&
		    set_password(&c, u, password) == -1) {
			rc = EX_DATAERR;
			goto out_db;
		}
		changed = 1;
	} else if (strcmp(verb, "passwd") == 0) {
		if (set_password(&c, u, password) == -1) {
			rc = EX_DATAERR;
			goto out_db;
		}
		changed = 1;
	} else if (strcmp(verb, "lock") == 0 || strcmp(verb, "unlock") == 0) {
		u->locked = strcmp(verb, "lock") == 0;
		changed = 1;
	} else if (strcmp(verb, "expire") == 0) {
		if (parse_expiry(arg2, &u->expires) == -1) {
			fprintf(stderr, "postern: expire takes a date "
			    "YYYY-MM-DD from 1970 on, or never\n");
			rc = EX_USAGE;
			goto out_db;
		}
		changed = 1;
	} else if (strcmp(verb, "del") == 0) {
		size_t i = (size_t)(u - db.users);
		struct user_entry gone = db.users[i];
		int wrc;

		/* Move it last, write the table without it, then count it
		 * again so that userdb_free releases it. */
		memmove(&db.users[i], &db.users[i + 1],
		    (db.nusers - i - 1) * sizeof *db.users);
		db.users[db.nusers - 1] = gone;
		db.nusers--;
		wrc = pg ? userdb_pg_edit_delete(pg, gone.name, stderr) :
		    write_users(&c, &db);
		db.nusers++;
		if (wrc == -1) {
			rc = EX_IOERR;
			goto out_db;
		}
		deleted = 1;
	} else if (strcmp(verb, "show") == 0) {
		show_user(u, 1);
	} else if (strcmp(verb, "list") == 0) {
		for (size_t i = 0; i < db.nusers; i++)
			show_user(&db.users[i], 0);
	} else {
		rc = user_usage();
		goto out_db;
	}
	if (changed && (pg ? userdb_pg_edit_store(pg, u, stderr) :
	    write_users(&c, &db)) == -1) {
		rc = EX_IOERR;
		goto out_db;
	}
	if (pg && userdb_pg_edit_end(pg, 1, stderr) == -1) {
		pg = NULL;
		rc = EX_IOERR;
		goto out_db;
	}
	pg = NULL;
	if (changed || deleted)
		printf("postern: %s %s: done\n", verb, name);
	rc = 0;
out_db:
	(void)userdb_pg_edit_end(pg, 0, stderr);
	userdb_free(&db);
out_lock:
	if (lockfd != -1)
		close(lockfd);
out_conf:
	OPENSSL_cleanse(password, sizeof password);
	conf_free(&c);
	free(o.addresses);
	return rc;
}
