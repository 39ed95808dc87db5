/*
 * config_audit.c - the checks of `postern config check` that look past
 * the syntax (see config_audit.h).  Runs in the administrator's
 * process; reads only metadata and the certificate, never a secret.
 */
#include "admin/config_audit.h"
#include "lib/fsio.h"
#include "lib/strutil.h"
#include "queue/maildrop.h"
#include "queue/qpath.h"
#include "queue/qstore.h"
#include "tls/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define AUDIT_CERT_DAYS	30	/* warn this long before expiry */

struct audit {
	FILE	*f;
	int	 nerr;
	int	 nwarn;
};

static void __attribute__((format(printf, 3, 4)))
audit_say(struct audit *a, int error, const char *fmt, ...)
{
	va_list ap;

	fputs(error ? "error: " : "warning: ", a->f);
	va_start(ap, fmt);
	vfprintf(a->f, fmt, ap);
	va_end(ap);
	fputc('\n', a->f);
	if (error)
		a->nerr++;
	else
		a->nwarn++;
}

/* A file that holds secrets: present, a file, private to its owner
 * (group read allowed when group_ok). */
static void
audit_secret(struct audit *a, const char *what, const char *path,
    int group_ok)
{
	struct stat st;
	mode_t bad = group_ok ? 027 : 077;

	if (stat(path, &st) == -1) {
		audit_say(a, 1, "%s %s: %s", what, path, strerror(errno));
		return;
	}
	if (!S_ISREG(st.st_mode)) {
		audit_say(a, 1, "%s %s is not a regular file", what, path);
		return;
	}
	if (st.st_mode & bad)
		audit_say(a, 1, "%s %s has mode %04o: others can read it "
		    "(chmod %s %s)", what, path, (unsigned)(st.st_mode & 07777),
		    group_ok ? "640" : "600", path);
}

/* A file of trusted certificates: whoever may change it may add his
 * own CA, and be believed to be the smarthost. */
static void
audit_trust(struct audit *a, const char *what, const char *path)
{
	struct stat st;

	if (stat(path, &st) == -1)
		return;			/* loading it says why */
	if (st.st_mode & 022)
		audit_say(a, 1, "%s %s has mode %04o: others could add a CA "
		    "of their own and take the credentials (chmod 644)", what,
		    path, (unsigned)(st.st_mode & 07777));
	else if (st.st_uid != 0 && st.st_uid != geteuid())
		audit_say(a, 0, "%s %s is owned by uid %u: its owner decides "
		    "whom postern trusts", what, path, (unsigned)st.st_uid);
}

static void
audit_dirs(struct audit *a, const struct conf *c)
{
	static const char *private[] = { "incoming", "queue", "hold",
	    "delete", "status", "corrupt" };
	char path[PATH_MAX];
	struct stat st;

	if (stat(c->spool, &st) == 0 && S_ISDIR(st.st_mode)) {
		if ((st.st_mode & 002) && !(st.st_mode & S_ISVTX))
			audit_say(a, 1, "spool %s is writable by everyone",
			    c->spool);
		for (size_t i = 0; i < sizeof private / sizeof private[0]; i++) {
			if (qpath_make(path, sizeof path, c->spool, private[i],
			    "") == 0 && stat(path, &st) == 0 &&
			    (st.st_mode & 077))
				audit_say(a, 0, "%s has mode %04o: queued mail is "
				    "open to others (postern serve makes it "
				    "0700)", path, (unsigned)(st.st_mode & 07777));
		}
		if (qpath_make(path, sizeof path, c->spool, MAILDROP_DIR,
		    "") == 0 && stat(path, &st) == 0 &&
		    (st.st_mode & 07777) != MAILDROP_MODE)
			audit_say(a, 0, "%s has mode %04o, not %04o: local users "
			    "could read or remove each other's mail (postern "
			    "serve sets it)", path, (unsigned)(st.st_mode & 07777),
			    MAILDROP_MODE);
	}
	if (stat(c->mailboxes, &st) == -1) {
		if (errno != ENOENT)
			audit_say(a, 1, "mailboxes %s: %s", c->mailboxes,
			    strerror(errno));
		else
			fprintf(a->f, "note: mailboxes %s does not exist yet; "
			    "postern serve creates it\n", c->mailboxes);
	} else if (!S_ISDIR(st.st_mode))
		audit_say(a, 1, "mailboxes %s is not a directory", c->mailboxes);
	else if (st.st_mode & 002)
		audit_say(a, 1, "mailboxes %s is writable by everyone",
		    c->mailboxes);
	else if (st.st_mode & 005)
		audit_say(a, 0, "mailboxes %s has mode %04o: others can look "
		    "into the mailboxes (chmod 700)", c->mailboxes,
		    (unsigned)(st.st_mode & 07777));
	if (c->pid_file[0]) {
		char dir[PATH_MAX], *slash;

		(void)strlcpy(dir, c->pid_file, sizeof dir);	/* same size */
		if ((slash = strrchr(dir, '/')) != NULL)
			slash[slash == dir ? 1 : 0] = '\0';
		if (stat(dir, &st) == -1 || !S_ISDIR(st.st_mode))
			audit_say(a, 0, "pid-file %s: directory %s does not "
			    "exist", c->pid_file, dir);
	}
}

static void
audit_files(struct audit *a, const struct conf *c)
{
	struct stat st;

	/* Password hashes and SCRAM keys: like /etc/shadow.  Only the auth
	 * process (root) reads it; group read is a warning, others an error. */
	if (c->users[0] && stat(c->users, &st) == 0 && (st.st_mode & 006))
		audit_say(a, 1, "users %s has mode %04o: it holds password "
		    "hashes and must not be readable by others (chmod 600)",
		    c->users, (unsigned)(st.st_mode & 07777));
	else if (c->users[0] && stat(c->users, &st) == 0 && (st.st_mode & 060))
		audit_say(a, 0, "users %s has mode %04o: only root needs to "
		    "read it; the workers use a view without hashes (chmod 600)",
		    c->users, (unsigned)(st.st_mode & 07777));
	if (c->aliases[0] && stat(c->aliases, &st) == 0 && (st.st_mode & 022))
		audit_say(a, 1, "aliases %s has mode %04o: others could "
		    "redirect mail (chmod 644)", c->aliases,
		    (unsigned)(st.st_mode & 07777));
	if (c->submit_host[0] && c->submit_auth[0])
		audit_secret(a, "submit auth", c->submit_auth, 0);
	if (c->submit_host[0] && !c->submit_tls_verify)
		audit_say(a, 0, "submit via %s: without 'tls verify' the "
		    "server's certificate is not checked", c->submit_host);
	for (size_t i = 0; i < c->nrelay_rules; i++) {
		const struct relay_rule *r = &c->relay_rules[i];

		/* The password goes over TLS anyway, but to whoever can
		 * answer the handshake on the path. */
		if (r->auth_file[0] && !r->tls_verify)
			audit_say(a, 0, "%s line %d: relay via %s: without 'tls "
			    "verify' or 'tls ca FILE' the smarthost's "
			    "certificate is not checked before the credentials "
			    "go out", c->path, r->line, r->host);
		if (r->tls_ca[0])
			audit_trust(a, "relay tls ca", r->tls_ca);
	}
	if (c->submit_tls_ca[0])
		audit_trust(a, "submit tls ca", c->submit_tls_ca);
}

static void
audit_cert(struct audit *a, const struct conf *c)
{
	char cert[PATH_MAX], key[PATH_MAX], subject[256], date[64];
	const ASN1_TIME *na;
	struct stat st;
	struct tm tm;
	time_t soon;
	FILE *fp;
	X509 *x;

	tls_paths(c, cert, sizeof cert, key, sizeof key);
	if ((fp = fopen(cert, "r")) == NULL) {
		if (!c->tls_cert[0] && errno == ENOENT)
			fprintf(a->f, "note: no 'tls cert': postern serve will "
			    "make a self-signed certificate in %s\n", cert);
		else
			audit_say(a, 1, "certificate %s: %s", cert,
			    strerror(errno));
		return;
	}
	x = PEM_read_X509(fp, NULL, NULL, NULL);
	fclose(fp);
	if (x == NULL) {
		audit_say(a, 1, "certificate %s: not a PEM certificate", cert);
		return;
	}
	X509_NAME_oneline(X509_get_subject_name(x), subject, sizeof subject);
	na = X509_get0_notAfter(x);
	memset(&tm, 0, sizeof tm);
	if (ASN1_TIME_to_tm(na, &tm) == 1)
		strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S UTC", &tm);
	else
		(void)strlcpy(date, "?", sizeof date);
	fprintf(a->f, "note: certificate %s: subject %s, expires %s\n", cert,
	    subject, date);
	soon = time(NULL) + AUDIT_CERT_DAYS * 86400;
	if (X509_cmp_current_time(na) <= 0)
		audit_say(a, 1, "certificate %s expired on %s", cert, date);
	else if (X509_cmp_time(na, &soon) <= 0)
		audit_say(a, 0, "certificate %s expires on %s, in less than "
		    "%d days", cert, date, AUDIT_CERT_DAYS);
	if (X509_check_issued(x, x) == X509_V_OK)
		audit_say(a, 0, "certificate %s is self-signed: clients will "
		    "not trust it", cert);
	if (X509_check_host(x, c->hostname, 0, 0, NULL) != 1)
		audit_say(a, 0, "certificate %s does not name the host name %s",
		    cert, c->hostname);
	X509_free(x);
	if (stat(key, &st) == 0 && (st.st_mode & 004))
		audit_say(a, 1, "key %s has mode %04o: others can read the "
		    "private key (chmod 600)", key, (unsigned)(st.st_mode & 07777));
}

static void
audit_listeners(struct audit *a, const struct conf *c)
{
	int smtp = 0;

	for (size_t i = 0; i < c->nlisteners; i++)
		smtp |= c->listeners[i].role == ROLE_SMTP;
	for (size_t k = 0; k < c->nmynetworks && !smtp; k++)
		if (c->mynetworks[k].bits == 0)
			audit_say(a, 0, "mynetworks contains a /0 prefix: that "
			    "is an open relay for the whole internet");
	for (size_t i = 0; i < c->nlisteners; i++) {
		const struct listen_conf *l = &c->listeners[i];

		if (l->role == ROLE_SMTP) {
			for (size_t k = 0; k < c->nmynetworks; k++) {
				char host[64];

				if (c->mynetworks[k].bits != 0)
					continue;
				inet_ntop(c->mynetworks[k].family,
				    c->mynetworks[k].addr, host, sizeof host);
				audit_say(a, 1, "listen smtp (line %d, port %u): "
				    "mynetworks contains %s/0, so anyone can "
				    "relay through it without authentication: "
				    "an open relay", l->line, l->port, host);
			}
		} else if ((l->role == ROLE_SUBMISSION ||
		    l->role == ROLE_SUBMISSIONS) && l->auth != AUTH_REQUIRED)
			audit_say(a, 1, "listen %s (line %d, port %u): auth %s: "
			    "the submission ports must require authentication "
			    "(use 'auth required', the default)",
			    listen_role_name(l->role), l->line, l->port,
			    l->auth == AUTH_OFF ? "off" : "optional");
	}
}

/* A note, not a warning: nothing is unsafe (fsio.h says what it costs). */
static void
audit_spool_fs(struct audit *a, const struct conf *c)
{
	char dev[64];

	if (fsio_ext4_without_journal(c->spool, dev, sizeof dev) == 1)
		fprintf(a->f, "note: spool %s is on ext4 without a journal "
		    "(%s): each new queue file makes the kernel scan past the "
		    "inodes freed in the last minute or so, which costs more "
		    "the more mail flows; postern spreads its queue files over "
		    "%u directories to shorten the scan, and a journaled file "
		    "system avoids it\n", c->spool, dev, QSTORE_SPREAD);
}

int
config_audit(const struct conf *c, FILE *f, int *nwarn)
{
	struct audit a = { f, 0, 0 };

	audit_dirs(&a, c);
	audit_spool_fs(&a, c);
	audit_files(&a, c);
	audit_cert(&a, c);
	audit_listeners(&a, c);
	*nwarn += a.nwarn;
	return a.nerr;
}
