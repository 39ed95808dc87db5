/*
 * msp.c - the sendmail command (see msp.h and postern(8)).  Runs as the
 * calling user.  It reads one message (or, with -bs, an SMTP dialogue
 * on stdin/stdout), completes the header the way local mail programs
 * expect (Date:, Message-ID:, From: when missing; Bcc: removed; RFC
 * 5322 section 3.6), and hands it to the server through the maildrop
 * (src/queue/maildrop.h): a temporary file, fsynced, renamed to its
 * final name only when complete.  Exit codes are sysexits(3).
 */
#include "admin/cli.h"
#include "admin/msp.h"
#include "lib/base64.h"
#include "lib/fsio.h"
#include "lib/strutil.h"
#include "lib/xalloc.h"
#include "queue/maildrop.h"
#include "smtp/smtp_addr.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MSP_LINE_MAX		998	/* RFC 5322 section 2.1.1 */
#define MSP_SMTP_LINE_MAX	4096	/* -bs command lines */

enum msp_mode { MSP_DELIVER, MSP_SMTP, MSP_MAILQ, MSP_NEWALIASES,
    MSP_FLUSH };

struct msp_opts {
	enum msp_mode	 mode;
	int		 extract;	/* -t */
	int		 ignore_dots;	/* -i, -oi */
	int		 verbose;	/* -v */
	const char	*sender;	/* -f, -r */
	const char	*fullname;	/* -F */
};

struct rcptlist {
	char		**v;
	size_t		 n;
};

static const char	*msp_prog = "sendmail";

static void __attribute__((format(printf, 1, 2)))
msp_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", msp_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

const char *
msp_origin(const struct conf *c)
{
	return c->ndomains ? c->domains[0] : c->hostname;
}

/* ------------------------------------------------------------------ */
/* addresses */

/* An address as a caller wrote it ("root", "a@b", "<a@b>") into
 * "local@domain"; unqualified ones get the origin domain.  "" for an
 * empty input only when allow_null.  0 or -1. */
static int
addr_normalize(const struct conf *c, const char *s, size_t len, char *out,
    size_t outsz, int allow_null)
{
	char tmp[SMTP_PATH_MAX + 1];
	struct mailaddr ma;
	int n;

	while (len && isspace((unsigned char)*s))
		s++, len--;
	while (len && isspace((unsigned char)s[len - 1]))
		len--;
	if (len >= 2 && s[0] == '<' && s[len - 1] == '>')
		s++, len -= 2;
	if (len == 0) {
		if (!allow_null)
			return -1;
		out[0] = '\0';
		return 0;
	}
	if (memchr(s, '@', len) == NULL || (s[0] == '"' && s[len - 1] == '"'))
		n = snprintf(tmp, sizeof tmp, "%.*s@%s", (int)len, s,
		    msp_origin(c));
	else
		n = snprintf(tmp, sizeof tmp, "%.*s", (int)len, s);
	if (n < 0 || (size_t)n >= sizeof tmp)
		return -1;
	if (smtp_addr_parse_path(tmp, strlen(tmp), &ma) == -1 ||
	    ma.domain[0] == '\0')
		return -1;
	smtp_addr_format(&ma, out, outsz);
	return 0;
}

static void
rcptlist_add(struct rcptlist *l, const char *a)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcasecmp(l->v[i], a) == 0)
			return;			/* once per recipient */
	l->v = xreallocarray(l->v, l->n + 1, sizeof *l->v);
	l->v[l->n++] = xstrdup(a);
}

static void
rcptlist_free(struct rcptlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static int
addr_add(const struct conf *c, struct rcptlist *l, const char *s, size_t len)
{
	char a[SMTP_PATH_MAX + 1];

	if (addr_normalize(c, s, len, a, sizeof a, 0) == -1) {
		char esc[200];

		msp_error("bad recipient address '%s'",
		    str_escape(esc, sizeof esc, s, len));
		return -1;
	}
	rcptlist_add(l, a);
	return 0;
}

/*
 * An RFC 5322 address-list (section 3.4) as in To:, Cc:, Bcc: and on
 * the command line: display names, comments, quoted strings, <angle
 * addresses>, groups ("team: a@b, c@d;" and "undisclosed-recipients:;").
 * Each mailbox found goes through addr_add().  0 or -1.
 */
static int
addrlist_parse(const struct conf *c, struct rcptlist *l, const char *s,
    size_t len)
{
	struct buf plain, angle;
	int in_angle = 0, seen_angle = 0, rc = 0;
	size_t i = 0;

	buf_init(&plain, 0);
	buf_init(&angle, 0);
	for (;;) {
		int ch = i < len ? (unsigned char)s[i] : -1;

		if (ch == -1 || (!in_angle && (ch == ',' || ch == ';'))) {
			/* the end of one mailbox */
			const struct buf *b = seen_angle ? &angle : &plain;
			size_t a = 0, z = b->len;

			while (a < z && isspace((unsigned char)b->data[a]))
				a++;
			while (z > a && isspace((unsigned char)b->data[z - 1]))
				z--;
			if (z > a || seen_angle) {
				if (!seen_angle && memchr(b->data + a, ' ',
				    z - a) != NULL && b->data[a] != '"') {
					char esc[200];
					msp_error("bad address '%s' (a name "
					    "without <address>?)", str_escape(esc,
					    sizeof esc, b->data + a, z - a));
					rc = -1;
				} else if (addr_add(c, l, b->data + a, z - a) == -1)
					rc = -1;
			}
			buf_reset(&plain);
			buf_reset(&angle);
			seen_angle = 0;
			if (ch == -1)
				break;
			i++;
			continue;
		}
		if (ch == '"') {
			/* quoted-string: copied with its quotes */
			struct buf *b = in_angle ? &angle : &plain;
			size_t j = i + 1;

			while (j < len && s[j] != '"')
				j += (s[j] == '\\' && j + 1 < len) ? 2 : 1;
			if (j < len)
				j++;
			buf_append(b, s + i, j - i);
			i = j;
			continue;
		}
		if (ch == '(') {
			/* comment, possibly nested: skipped */
			int depth = 0;

			do {
				if (s[i] == '\\' && i + 1 < len)
					i++;
				else if (s[i] == '(')
					depth++;
				else if (s[i] == ')')
					depth--;
				i++;
			} while (i < len && depth > 0);
			buf_putc(&plain, ' ');
			continue;
		}
		if (ch == '[') {
			/* domain literal: may hold ':' */
			struct buf *b = in_angle ? &angle : &plain;
			const char *e = memchr(s + i, ']', len - i);
			size_t j = e ? (size_t)(e - s) + 1 : len;

			buf_append(b, s + i, j - i);
			i = j;
			continue;
		}
		if (!in_angle && ch == '<') {
			in_angle = seen_angle = 1;
			buf_reset(&angle);
			i++;
			continue;
		}
		if (in_angle && ch == '>') {
			in_angle = 0;
			i++;
			continue;
		}
		if (!in_angle && ch == ':') {
			/* "group-name:" - what came before was its name */
			buf_reset(&plain);
			i++;
			continue;
		}
		buf_putc(in_angle ? &angle : &plain, ch);
		i++;
	}
	buf_free(&plain);
	buf_free(&angle);
	return rc;
}

/* ------------------------------------------------------------------ */
/* the message */

/* Input lines with CRLF ends (a lone LF or CR ends a line too); lines
 * longer than RFC 5322 allows are broken.  Notes 8-bit octets and NULs. */
static int
msp_normalize(const char *p, size_t n, struct buf *out, int *eightbit,
    int *nul)
{
	size_t i = 0;

	while (i < n) {
		size_t s = i, e;

		while (i < n && p[i] != '\n' && p[i] != '\r')
			i++;
		e = i;
		if (i < n)
			i += (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n') ? 2 : 1;
		for (size_t k = s; k < e; k++) {
			if ((unsigned char)p[k] >= 0x80)
				*eightbit = 1;
			else if (p[k] == '\0')
				*nul = 1;
		}
		for (size_t k = s;;) {
			size_t chunk = e - k > MSP_LINE_MAX ? MSP_LINE_MAX : e - k;

			if (buf_append(out, p + k, chunk) == -1 ||
			    buf_append(out, "\r\n", 2) == -1)
				return -1;
			k += chunk;
			if (k >= e)
				break;
		}
	}
	return 0;
}

/* "Name:" with RFC 5322 section 2.2 field-name characters. */
static size_t
field_name_len(const char *p, size_t n)
{
	size_t i = 0;

	while (i < n && p[i] >= 33 && p[i] <= 126 && p[i] != ':')
		i++;
	return i > 0 && i < n && p[i] == ':' ? i : 0;
}

static int
field_is(const char *p, size_t namelen, const char *name)
{
	return strlen(name) == namelen && strncasecmp(p, name, namelen) == 0;
}

/* A display name as a phrase: atoms as they are, otherwise a quoted
 * string, and RFC 2047 encoded words for non-ASCII text. */
static void
put_display_name(struct buf *b, const char *name)
{
	int plain = 1, ascii = 1;

	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		if (*p >= 0x80)
			ascii = 0;
		else if (!isalnum(*p) && *p != ' ' && !strchr("!#$%&'*+-/=?^_`{|}~", *p))
			plain = 0;
		else if (*p < 0x20)
			plain = 0;
	}
	if (!ascii) {
		/* Encoded words of at most 75 octets (RFC 2047 section 2),
		 * never splitting a UTF-8 sequence. */
		size_t len = strlen(name), i = 0;

		while (i < len) {
			size_t j = i + 45 < len ? i + 45 : len;
			char enc[BASE64_ENCODED_LEN(48) + 1];

			/* Back to a character's first octet; a run of 45
			 * continuation octets (not UTF-8 at all) is cut where
			 * it is, so that every word moves on. */
			while (j > i && j < len &&
			    ((unsigned char)name[j] & 0xc0) == 0x80)
				j--;
			if (j == i)
				j = i + 45 < len ? i + 45 : len;
			base64_encode(enc, (const unsigned char *)name + i, j - i);
			buf_printf(b, "%s=?UTF-8?B?%s?=", i ? " " : "", enc);
			i = j;
		}
		buf_puts(b, " ");
		return;
	}
	if (plain) {
		buf_printf(b, "%s ", name);
		return;
	}
	buf_putc(b, '"');
	for (const char *p = name; *p; p++) {
		if (*p == '"' || *p == '\\')
			buf_putc(b, '\\');
		if ((unsigned char)*p >= 0x20)
			buf_putc(b, *p);
	}
	buf_puts(b, "\" ");
}

/* Who sends: the effective user, who owns the maildrop file and whom
 * the pickup therefore trusts; the real one may differ under a set-uid
 * wrapper, and the From: field must agree with the envelope. */
static void
caller_identity(char *login, size_t loginsz, char *gecos, size_t gecossz)
{
	struct passwd *pw = getpwuid(geteuid());

	if (pw != NULL && strlen(pw->pw_name) < loginsz) {
		(void)strlcpy(login, pw->pw_name, loginsz);	/* checked */
		(void)strlcpy(gecos, pw->pw_gecos ? pw->pw_gecos : "", gecossz);
		gecos[strcspn(gecos, ",")] = '\0';	/* the full name only */
	} else {
		snprintf(login, loginsz, "uid-%u", (unsigned)geteuid());
		gecos[0] = '\0';
	}
}

/*
 * Build the final content from normalized lines: the header fields as
 * given (less Bcc:), those that are missing, an empty line, the body.
 * With extract, To/Cc/Bcc recipients are added to rl.  0, or a
 * sysexits code.
 */
static int
msp_finish(const struct conf *c, const struct msp_opts *o, struct buf *in,
    struct rcptlist *rl, struct buf *out)
{
	const char *m = in->data ? in->data : "";
	size_t len = in->len, pos = 0, body;
	int have_from = 0, have_date = 0, have_msgid = 0, blank = 0, rc = 0;

	/* A leading mbox "From " line is an envelope, not a header. */
	if (len >= 5 && memcmp(m, "From ", 5) == 0) {
		const char *eol = memmem(m, len, "\r\n", 2);
		size_t skip = eol ? (size_t)(eol - m) + 2 : len;
		m += skip;
		len -= skip;
	}
	/* The header fields: name ":" or a continuation line. */
	while (pos < len) {
		const char *eol = memmem(m + pos, len - pos, "\r\n", 2);
		size_t ll = (size_t)(eol - (m + pos)), name, fend;

		if (ll == 0) {
			blank = 1;
			break;
		}
		if ((name = field_name_len(m + pos, ll)) == 0)
			break;			/* the body starts here */
		/* the whole field, continuation lines included */
		fend = (size_t)(eol - m) + 2;
		while (fend < len && (m[fend] == ' ' || m[fend] == '\t'))
			fend = (size_t)((const char *)memmem(m + fend, len - fend,
			    "\r\n", 2) - m) + 2;
		if (field_is(m + pos, name, "From"))
			have_from = 1;
		else if (field_is(m + pos, name, "Date"))
			have_date = 1;
		else if (field_is(m + pos, name, "Message-ID"))
			have_msgid = 1;
		if (o->extract && (field_is(m + pos, name, "To") ||
		    field_is(m + pos, name, "Cc") ||
		    field_is(m + pos, name, "Bcc"))) {
			struct buf v;

			buf_init(&v, 0);
			for (size_t k = pos + name + 1; k < fend; k++)
				if (m[k] != '\r' && m[k] != '\n')
					buf_putc(&v, m[k]);
			if (addrlist_parse(c, rl, v.data ? v.data : "", v.len) == -1)
				rc = EX_DATAERR;
			buf_free(&v);
		}
		/* Bcc: is for the envelope only (RFC 5322 section 3.6.3). */
		if (!field_is(m + pos, name, "Bcc"))
			buf_append(out, m + pos, fend - pos);
		pos = fend;
	}
	body = blank ? pos + 2 : pos;

	if (!have_from) {
		char login[64], gecos[256];
		const char *name;

		caller_identity(login, sizeof login, gecos, sizeof gecos);
		name = o->fullname ? o->fullname : gecos;
		buf_puts(out, "From: ");
		if (name[0]) {
			put_display_name(out, name);
			buf_printf(out, "<%s@%s>\r\n", login, msp_origin(c));
		} else
			buf_printf(out, "%s@%s\r\n", login, msp_origin(c));
	}
	if (!have_date || !have_msgid) {
		time_t now = time(NULL);
		struct tm tm;
		char date[64], stamp[32];

		localtime_r(&now, &tm);
		if (!have_date) {
			/* RFC 5322 section 3.3, in the C locale */
			strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S %z",
			    &tm);
			buf_printf(out, "Date: %s\r\n", date);
		}
		if (!have_msgid) {
			unsigned char r[8];
			char hex[17];

			if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
				memset(r, 0, sizeof r);
			for (size_t i = 0; i < sizeof r; i++)
				snprintf(hex + 2 * i, 3, "%02X", r[i]);
			strftime(stamp, sizeof stamp, "%Y%m%d%H%M%S", &tm);
			buf_printf(out, "Message-ID: <%s.%s@%s>\r\n", stamp, hex,
			    c->hostname);
		}
	}
	if (buf_puts(out, "\r\n") == -1 ||
	    (len > body && buf_append(out, m + body, len - body) == -1))
		return EX_DATAERR;
	return rc;
}

/* ------------------------------------------------------------------ */
/* the maildrop */

static int
tempfail_errno(int e)
{
	return e == ENOSPC || e == EDQUOT || e == EFBIG || e == EROFS ||
	    e == EACCES || e == EPERM || e == EIO || e == ENOENT ||
	    e == EMFILE || e == ENFILE || e == EINTR;
}

static int
msp_maildrop(const struct conf *c, const struct msp_msg *mm, int verbose,
    char *name_out, size_t name_outsz)
{
	char dir[PATH_MAX], tmp[PATH_MAX], fin[PATH_MAX], hex[33];
	unsigned char r[16];
	struct buf env;
	int fd, saved, renamed = 0;

	if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
		msp_error("getrandom: %s", strerror(errno));
		return EX_OSERR;
	}
	for (size_t i = 0; i < sizeof r; i++)
		snprintf(hex + 2 * i, 3, "%02x", r[i]);
	if ((size_t)snprintf(dir, sizeof dir, "%s/%s", c->spool, MAILDROP_DIR)
	    >= sizeof dir ||
	    (size_t)snprintf(tmp, sizeof tmp, "%s/%c%s", dir,
	    MAILDROP_TMP_PREFIX, hex) >= sizeof tmp ||
	    (size_t)snprintf(fin, sizeof fin, "%s/%c%s", dir,
	    MAILDROP_DONE_PREFIX, hex) >= sizeof fin) {
		msp_error("spool path %s is too long", c->spool);
		return EX_CONFIG;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    MAILDROP_FILE_MODE);
	if (fd == -1) {
		saved = errno;
		msp_error("cannot create a file in the maildrop %s: %s%s; the "
		    "message was not sent", dir, strerror(saved),
		    saved == ENOENT ? " (has 'postern serve' ever run with "
		    "this configuration?)" : "");
		return tempfail_errno(saved) ? EX_TEMPFAIL : EX_CANTCREAT;
	}
	buf_init(&env, MAILDROP_ENVELOPE_MAX);
	buf_printf(&env, "%s\nuid %u\n", MAILDROP_VERSION, (unsigned)geteuid());
	if (mm->sender)
		buf_printf(&env, mm->sender[0] ? "sender %s\n" : "sender\n",
		    mm->sender);
	buf_printf(&env, "body %s\n", mm->body_8bit ? "8BITMIME" : "7BIT");
	for (size_t i = 0; i < mm->nrcpts; i++)
		buf_printf(&env, "rcpt %s\n", mm->rcpts[i]);
	if (buf_printf(&env, "size %zu\n\n", mm->content.len) == -1) {
		buf_free(&env);
		close(fd);
		unlink(tmp);
		msp_error("too many recipients");
		return EX_DATAERR;
	}
	/* The umask must not take the server's group's read access away;
	 * then the data, then fsync: only a complete file gets the final
	 * name. */
	if (fchmod(fd, MAILDROP_FILE_MODE) == -1 ||
	    write_full(fd, env.data, env.len) == -1 ||
	    write_full(fd, mm->content.data, mm->content.len) == -1 ||
	    fsync(fd) == -1)
		goto fail;
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, fin, RENAME_NOREPLACE) == -1)
		goto fail;
	renamed = 1;
	/* The rename must survive a crash.  Without read access to the
	 * directory (mode 3733) it cannot be fsynced by itself: sync the
	 * file system instead. */
	if (fsync_dir(dir) == -1 && ((errno != EACCES && errno != EPERM) ||
	    syncfs(fd) == -1))
		goto fail;
	close(fd);
	buf_free(&env);
	if (verbose)
		fprintf(stderr, "%s: handed to the server as %s/%c%s\n",
		    msp_prog, dir, MAILDROP_DONE_PREFIX, hex);
	snprintf(name_out, name_outsz, "%c%s", MAILDROP_DONE_PREFIX, hex);
	return 0;
fail:
	saved = errno;
	close(fd);
	buf_free(&env);
	/* Nothing half-written stays behind; a renamed file whose rename
	 * may not be durable is taken back unless the server already has
	 * it. */
	if (!renamed)
		unlink(tmp);
	else if (unlink(fin) == -1 && errno == ENOENT)
		return 0;
	msp_error("cannot write to the maildrop %s: %s; the message was not "
	    "sent", dir, strerror(saved));
	return tempfail_errno(saved) ? EX_TEMPFAIL : EX_IOERR;
}

static int
msp_send(const struct conf *c, struct msp_msg *mm, int verbose, char *name,
    size_t namesz)
{
	char login[64], gecos[256], dflt[SMTP_PATH_MAX + 1];

	if (c->submit_host[0]) {
		caller_identity(login, sizeof login, gecos, sizeof gecos);
		if ((size_t)snprintf(dflt, sizeof dflt, "%s@%s", login,
		    msp_origin(c)) >= sizeof dflt) {
			fprintf(stderr, "sendmail: the default sender address "
			    "is too long\n");
			return EX_SOFTWARE;
		}
		/* A label for messages only: a cut one is harmless. */
		if ((size_t)snprintf(name, namesz, "(submitted to %s)",
		    c->submit_host) >= namesz)
			name[namesz - 1] = '\0';
		return msp_submit(c, mm, dflt, verbose);
	}
	return msp_maildrop(c, mm, verbose, name, namesz);
}

/* ------------------------------------------------------------------ */
/* -bm: one message on stdin */

/* Read stdin; without -i a line holding only "." ends the message
 * (what sendmail does), and nothing after it is read. */
static int
msp_read_input(const struct msp_opts *o, uint64_t limit, struct buf *raw)
{
	char chunk[16384];
	size_t scan = 0;

	for (;;) {
		ssize_t n = read(STDIN_FILENO, chunk, sizeof chunk);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			msp_error("read: %s", strerror(errno));
			return EX_IOERR;
		}
		if (n == 0)
			break;
		if (raw->len + (size_t)n > limit) {
			msp_error("message too big: the limit is %llu octets",
			    (unsigned long long)limit);
			return EX_DATAERR;
		}
		buf_append(raw, chunk, (size_t)n);
		if (o->ignore_dots)
			continue;
		for (;;) {
			const char *nl = memchr(raw->data + scan, '\n',
			    raw->len - scan);
			size_t ll;

			if (nl == NULL)
				break;
			ll = (size_t)(nl - (raw->data + scan));
			if (raw->data[scan] == '.' && (ll == 1 ||
			    (ll == 2 && raw->data[scan + 1] == '\r'))) {
				raw->len = scan;
				raw->data[scan] = '\0';
				return 0;
			}
			scan = (size_t)(nl - raw->data) + 1;
		}
	}
	/* a final "." without a newline ends it too */
	if (!o->ignore_dots && raw->len - scan == 1 && raw->data[scan] == '.')
		raw->len = scan;
	return 0;
}

static int
msp_deliver(const struct conf *c, const struct msp_opts *o,
    struct rcptlist *rl)
{
	struct buf raw, lines;
	struct msp_msg mm;
	char sender[SMTP_PATH_MAX + 1], name[64];
	int eightbit = 0, nul = 0, rc;

	memset(&mm, 0, sizeof mm);
	if (o->sender) {
		if (strcmp(o->sender, "<>") == 0)
			sender[0] = '\0';
		else if (addr_normalize(c, o->sender, strlen(o->sender), sender,
		    sizeof sender, 1) == -1) {
			msp_error("bad sender address '%s'", o->sender);
			return EX_DATAERR;
		}
		mm.sender = sender;
	}
	if (!o->extract && rl->n == 0) {
		/* before reading anything, as sendmail does */
		msp_error("no recipients: name them as arguments or use -t");
		return EX_NOUSER;
	}
	buf_init(&raw, 0);
	buf_init(&lines, 0);
	buf_init(&mm.content, 0);
	if ((rc = msp_read_input(o, c->message_size_limit, &raw)) != 0)
		goto done;
	if (raw.len)
		msp_normalize(raw.data, raw.len, &lines, &eightbit, &nul);
	if (nul) {
		msp_error("the message contains NUL characters");
		rc = EX_DATAERR;
		goto done;
	}
	if ((rc = msp_finish(c, o, &lines, rl, &mm.content)) != 0)
		goto done;
	if (mm.content.len > c->message_size_limit) {
		msp_error("message too big: the limit is %llu octets",
		    (unsigned long long)c->message_size_limit);
		rc = EX_DATAERR;
		goto done;
	}
	if (rl->n == 0) {
		msp_error("no recipients: name them as arguments%s",
		    o->extract ? " or in To:, Cc: or Bcc:" : " or use -t");
		rc = EX_NOUSER;
		goto done;
	}
	if (rl->n > c->max_recipients) {
		msp_error("too many recipients (max-recipients is %u)",
		    c->max_recipients);
		rc = EX_DATAERR;
		goto done;
	}
	mm.rcpts = rl->v;
	mm.nrcpts = rl->n;
	mm.body_8bit = eightbit;
	rc = msp_send(c, &mm, o->verbose, name, sizeof name);
done:
	buf_free(&raw);
	buf_free(&lines);
	buf_free(&mm.content);
	return rc;
}

/* ------------------------------------------------------------------ */
/* -bs: SMTP on stdin and stdout, one maildrop file per message */

static void __attribute__((format(printf, 1, 2)))
bs_reply(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputs("\r\n", stdout);
	fflush(stdout);
}

/* One line without its end; -1 at EOF, -2 when too long (the rest of
 * the line is skipped). */
static ssize_t
bs_getline(char *line, size_t sz)
{
	size_t n = 0;
	int ch, toolong = 0;

	while ((ch = getchar()) != EOF && ch != '\n') {
		if (n + 1 < sz)
			line[n++] = (char)ch;
		else
			toolong = 1;
	}
	if (ch == EOF && n == 0)
		return -1;
	if (n && line[n - 1] == '\r')
		n--;
	line[n] = '\0';
	return toolong ? -2 : (ssize_t)n;
}

/* "FROM:<a@b> BODY=8BITMIME" -> address; params are checked. */
static int
bs_path(const struct conf *c, const char *arg, const char *prefix, char *out,
    size_t outsz, int is_mail, int *eightbit)
{
	const char *lt, *gt, *p;
	size_t plen = strlen(prefix);

	if (strncasecmp(arg, prefix, plen) != 0)
		return -1;
	arg += plen;
	while (*arg == ' ')
		arg++;
	if (*arg != '<' || (lt = arg, gt = strchr(lt, '>')) == NULL)
		return -1;
	if (addr_normalize(c, lt + 1, (size_t)(gt - lt - 1), out, outsz,
	    is_mail) == -1)
		return -1;
	for (p = gt + 1; *p;) {
		const char *w;
		size_t wl;

		while (*p == ' ')
			p++;
		w = p;
		while (*p && *p != ' ')
			p++;
		if ((wl = (size_t)(p - w)) == 0)
			break;
		if (is_mail && wl == 13 && strncasecmp(w, "BODY=8BITMIME", 13) == 0)
			*eightbit = 1;
		else if (is_mail && wl == 9 && strncasecmp(w, "BODY=7BIT", 9) == 0)
			;
		else if (is_mail && wl > 5 && strncasecmp(w, "SIZE=", 5) == 0)
			;
		else
			return -2;
	}
	return 0;
}

static int
msp_smtp_stdio(const struct conf *c, const struct msp_opts *o)
{
	struct rcptlist rl = { NULL, 0 };
	char line[MSP_SMTP_LINE_MAX], sender[SMTP_PATH_MAX + 1];
	char addr[SMTP_PATH_MAX + 1], name[64];
	int have_mail = 0, eightbit = 0;
	ssize_t n;

	bs_reply("220 %s ESMTP postern (sendmail -bs)", c->hostname);
	while ((n = bs_getline(line, sizeof line)) != -1) {
		char *arg;
		int r;

		if (n == -2) {
			bs_reply("500 5.5.2 Line too long");
			continue;
		}
		arg = line + strcspn(line, " ");
		if (*arg)
			*arg++ = '\0';
		if (strcasecmp(line, "EHLO") == 0 || strcasecmp(line, "HELO") == 0) {
			rcptlist_free(&rl);
			have_mail = 0;
			if (line[0] == 'H' || line[0] == 'h')
				bs_reply("250 %s", c->hostname);
			else
				bs_reply("250-%s\r\n250-PIPELINING\r\n250-8BITMIME"
				    "\r\n250-ENHANCEDSTATUSCODES\r\n250 SIZE %llu",
				    c->hostname,
				    (unsigned long long)c->message_size_limit);
		} else if (strcasecmp(line, "MAIL") == 0) {
			if (have_mail) {
				bs_reply("503 5.5.1 Error: nested MAIL command");
				continue;
			}
			eightbit = 0;
			r = bs_path(c, arg, "FROM:", sender, sizeof sender, 1,
			    &eightbit);
			if (r == -1)
				bs_reply("501 5.1.7 Bad sender address syntax");
			else if (r == -2)
				bs_reply("555 5.5.4 Unsupported option");
			else {
				have_mail = 1;
				bs_reply("250 2.1.0 Ok");
			}
		} else if (strcasecmp(line, "RCPT") == 0) {
			if (!have_mail)
				bs_reply("503 5.5.1 Error: need MAIL command");
			else if (rl.n >= c->max_recipients)
				bs_reply("452 4.5.3 Too many recipients");
			else if ((r = bs_path(c, arg, "TO:", addr, sizeof addr,
			    0, &eightbit)) == -1)
				bs_reply("501 5.1.3 Bad recipient address syntax");
			else if (r == -2)
				bs_reply("555 5.5.4 Unsupported option");
			else {
				rcptlist_add(&rl, addr);
				bs_reply("250 2.1.5 Ok");
			}
		} else if (strcasecmp(line, "DATA") == 0) {
			struct buf raw, lines;
			struct msp_msg mm;
			struct msp_opts o2 = *o;
			struct rcptlist none = { NULL, 0 };
			int nul = 0, toobig = 0, toolong = 0, rc, eof = 1;

			if (!have_mail || rl.n == 0) {
				bs_reply("503 5.5.1 Error: need RCPT command");
				continue;
			}
			bs_reply("354 End data with <CR><LF>.<CR><LF>");
			buf_init(&raw, 0);
			buf_init(&lines, 0);
			/* dot-stuffing undone (RFC 5321 section 4.5.2) */
			while ((n = bs_getline(line, sizeof line)) != -1) {
				if (n >= 0 && strcmp(line, ".") == 0) {
					eof = 0;
					break;
				}
				if (n == -2)
					toolong = 1;	/* cut: refused below */
				if (raw.len > c->message_size_limit)
					toobig = 1;
				else
					buf_printf(&raw, "%s\n",
					    line[0] == '.' ? line + 1 : line);
			}
			memset(&mm, 0, sizeof mm);
			buf_init(&mm.content, 0);
			o2.extract = 0;
			rc = 0;
			if (eof)
				rc = -1;
			else if (toobig)
				bs_reply("552 5.3.4 Message size exceeds fixed "
				    "limit");
			else if (toolong)
				/* Never a 250 for a message with a line cut. */
				bs_reply("552 5.3.4 A line of the message is "
				    "over %zu octets", sizeof line - 2);
			else if (msp_normalize(raw.data ? raw.data : "", raw.len,
			    &lines, &mm.body_8bit, &nul) == -1 || nul)
				bs_reply("554 5.6.0 Message contains NUL "
				    "characters");
			else if (msp_finish(c, &o2, &lines, &none,
			    &mm.content) != 0)
				bs_reply("554 5.6.0 Malformed message");
			else {
				mm.sender = sender;
				mm.rcpts = rl.v;
				mm.nrcpts = rl.n;
				mm.body_8bit |= eightbit;
				if ((rc = msp_send(c, &mm, o->verbose, name,
				    sizeof name)) == 0)
					bs_reply("250 2.0.0 Ok: queued as %s",
					    name);
				else if (rc == EX_TEMPFAIL)
					bs_reply("451 4.3.0 Cannot queue the "
					    "message now; try again later");
				else
					bs_reply("554 5.3.0 Cannot queue the "
					    "message");
			}
			buf_free(&raw);
			buf_free(&lines);
			buf_free(&mm.content);
			rcptlist_free(&none);
			rcptlist_free(&rl);
			have_mail = 0;
			if (eof)
				break;
		} else if (strcasecmp(line, "RSET") == 0) {
			rcptlist_free(&rl);
			have_mail = 0;
			bs_reply("250 2.0.0 Ok");
		} else if (strcasecmp(line, "NOOP") == 0)
			bs_reply("250 2.0.0 Ok");
		else if (strcasecmp(line, "VRFY") == 0)
			bs_reply("252 2.0.0 Send some mail, I'll try my best");
		else if (strcasecmp(line, "HELP") == 0)
			bs_reply("214 2.0.0 See postern(8)");
		else if (strcasecmp(line, "QUIT") == 0) {
			bs_reply("221 2.0.0 Bye");
			break;
		} else
			bs_reply("500 5.5.2 Error: command not recognized");
	}
	rcptlist_free(&rl);
	return 0;
}

/* ------------------------------------------------------------------ */

static void
msp_usage(void)
{
	fprintf(stderr,
	    "usage: %s [-t] [-i] [-f FROM] [-F NAME] [-v] [-C FILE] [--] [RCPT...]\n"
	    "       %s -bs | -bp | -bi | -q\n", msp_prog, msp_prog);
}

static void
msp_note(const struct msp_opts *o, const char *what, const char *arg)
{
	if (o->verbose)
		fprintf(stderr, "%s: note: %s%s%s ignored\n", msp_prog, what,
		    arg ? " " : "", arg ? arg : "");
}

int
msp_main(int argc, char **argv, const char *conf_path, int as_postern)
{
	static char *list[] = { "list", NULL }, *flush[] = { "flush", NULL };
	struct msp_opts o = { .mode = MSP_DELIVER };
	struct rcptlist rl = { NULL, 0 };
	struct conf c;
	int ch, rc, err = 0;

	msp_prog = as_postern ? "postern sendmail" : "sendmail";
	/* A file-size limit becomes EFBIG, a temporary failure. */
	signal(SIGXFSZ, SIG_IGN);
	opterr = 0;
	/* -v among the options makes the notes about those before it
	 * visible too. */
	optind = 1;
	while ((ch = getopt(argc, argv,
	    "+B:b:C:c:F:f:Gh:iL:mN:nO:o:q::R:r:tUV:vX:")) != -1)
		if (ch == 'v')
			o.verbose = 1;
	optind = 1;
	/* "+": options end at the first recipient, as in sendmail. */
	while ((ch = getopt(argc, argv,
	    "+B:b:C:c:F:f:Gh:iL:mN:nO:o:q::R:r:tUV:vX:")) != -1) {
		switch (ch) {
		case 'b':
			if (strcmp(optarg, "m") == 0)
				o.mode = MSP_DELIVER;
			else if (strcmp(optarg, "s") == 0)
				o.mode = MSP_SMTP;
			else if (strcmp(optarg, "p") == 0)
				o.mode = MSP_MAILQ;
			else if (strcmp(optarg, "i") == 0)
				o.mode = MSP_NEWALIASES;
			else if (optarg[0] == 'd' || optarg[0] == 'D') {
				msp_error("-b%s: run 'postern serve' instead",
				    optarg);
				return EX_USAGE;
			} else {
				msp_error("-b%s is not supported", optarg);
				return EX_USAGE;
			}
			break;
		case 'C':
		case 'c':
			conf_path = optarg;
			break;
		case 'F':
			o.fullname = optarg;
			break;
		case 'f':
		case 'r':
			o.sender = optarg;
			break;
		case 'i':
			o.ignore_dots = 1;
			break;
		case 'o':
			if (strcmp(optarg, "i") == 0)
				o.ignore_dots = 1;
			else if (optarg[0] == 'd')	/* -odi -odb -odq */
				;
			else
				msp_note(&o, "option -o", optarg);
			break;
		case 'q':
			o.mode = MSP_FLUSH;
			if (optarg)
				msp_note(&o, "-q argument", optarg);
			break;
		case 't':
			o.extract = 1;
			break;
		case 'v':
			o.verbose = 1;
			break;
		case 'B': case 'h': case 'L': case 'N': case 'O': case 'R':
		case 'V': case 'X': {
			char opt[3] = { '-', (char)ch, '\0' };
			msp_note(&o, opt, optarg);
			break;
		}
		case 'G': case 'm': case 'n': case 'U': {
			char opt[3] = { '-', (char)ch, '\0' };
			msp_note(&o, opt, NULL);
			break;
		}
		default:
			if (optopt && strchr("BbCcFfhLNOoRrVX", optopt))
				msp_error("option -%c needs a value", optopt);
			else
				msp_error("unknown option -%c", optopt);
			msp_usage();
			return EX_USAGE;
		}
	}
	/* Options end at the first recipient; a word after it that looks
	 * like one ("sendmail bob -v") is a mistake, not the address
	 * "-v@ORIGIN" (Postfix does not deliver to such addresses either:
	 * allow_min_user).  After an explicit "--" it is meant. */
	if (optind < 2 || strcmp(argv[optind - 1], "--") != 0)
		for (int i = optind; i < argc; i++)
			if (argv[i][0] == '-') {
				msp_error("'%s': options go before the recipients "
				    "(after '--', a recipient may begin with "
				    "'-')", argv[i]);
				return EX_USAGE;
			}
	argc -= optind;
	argv += optind;

	switch (o.mode) {
	case MSP_MAILQ:
	case MSP_NEWALIASES:
	case MSP_FLUSH:
		if (argc) {
			msp_usage();
			return EX_USAGE;
		}
		if (o.mode == MSP_MAILQ)
			return cli_queue(1, list, conf_path);
		if (o.mode == MSP_FLUSH)
			return cli_queue(1, flush, conf_path);
		return cli_aliases(0, list + 1, conf_path);
	case MSP_SMTP:
		if (argc) {
			msp_usage();
			return EX_USAGE;
		}
		break;
	case MSP_DELIVER:
		break;
	}
	if (conf_load(conf_path, &c, stderr) != 0) {
		msp_error("%s has errors; nothing was sent", conf_path);
		conf_free(&c);
		return EX_CONFIG;
	}
	if (o.mode == MSP_SMTP) {
		rc = msp_smtp_stdio(&c, &o);
		conf_free(&c);
		return rc;
	}
	for (int i = 0; i < argc; i++)
		if (addrlist_parse(&c, &rl, argv[i], strlen(argv[i])) == -1)
			err = 1;
	rc = err ? EX_DATAERR : msp_deliver(&c, &o, &rl);
	rcptlist_free(&rl);
	conf_free(&c);
	return rc;
}
