/*
 * msp_submit.c - the sendmail command's other way out: with `submit via
 * HOST[:PORT] [tls implicit] [tls verify] [auth FILE]` it submits each
 * message over SMTP (RFC 6409) itself: STARTTLS (RFC 3207) or implicit
 * TLS (RFC 8314), then AUTH PLAIN (RFC 4616) or LOGIN with the
 * credentials in FILE.  Blocking I/O with timeouts; runs in the
 * caller's process as the caller.
 */
#include "admin/cli.h"
#include "admin/msp.h"
#include "lib/base64.h"
#include "lib/fsio.h"
#include "lib/netaddr.h"
#include "lib/strutil.h"
#include "lib/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define SUBMIT_CONNECT_TIMEOUT	30	/* seconds */
#define SUBMIT_IO_TIMEOUT	300	/* RFC 5321 4.5.3.2: the longest */
#define SUBMIT_REPLY_MAX	(64 * 1024)

struct submit {
	int		 fd;
	SSL_CTX		*ctx;
	SSL		*ssl;
	int		 verbose;
	char		 in[4096];
	size_t		 inlen;
	struct buf	 reply;		/* the last reply, all lines */
	int		 code;
	const char	*host;
};

static void __attribute__((format(printf, 1, 2)))
submit_error(const char *fmt, ...)
{
	va_list ap;

	fputs("sendmail: submit: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* "LOGIN PASSWORD" (the password is the rest of the line), in a file
 * nobody else may read. */
static int
submit_read_auth(const char *path, char **login, char **password)
{
	struct stat st;
	char *text, *sp, *nl;
	int fd;

	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1) {
		submit_error("credentials %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1 || (st.st_mode & 077) != 0) {
		submit_error("credentials %s: mode %04o is readable by others; "
		    "refusing to use it (chmod 600 %s)", path,
		    (unsigned)(st.st_mode & 07777), path);
		close(fd);
		return -1;
	}
	close(fd);
	if ((text = read_text_file(path, 4096, stderr)) == NULL)
		return -1;
	if ((nl = strchr(text, '\n')) != NULL)
		*nl = '\0';
	if ((nl = strchr(text, '\r')) != NULL)
		*nl = '\0';
	if ((sp = strchr(text, ' ')) == NULL || sp == text || sp[1] == '\0') {
		submit_error("credentials %s: expected one line 'LOGIN PASSWORD'",
		    path);
		free(text);
		return -1;
	}
	*sp = '\0';
	*login = xstrdup(text);
	*password = xstrdup(sp + 1);
	explicit_bzero(text, strlen(sp + 1) + (size_t)(sp - text) + 1);
	free(text);
	return 0;
}

static int
submit_connect(struct submit *s, const char *host, unsigned port)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	struct timeval tv = { SUBMIT_IO_TIMEOUT, 0 };
	char portstr[8];
	int e;

	snprintf(portstr, sizeof portstr, "%u", port);
	if ((e = getaddrinfo(host, portstr, &hints, &res)) != 0) {
		submit_error("%s: %s", host, gai_strerror(e));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		struct pollfd pfd;
		socklen_t len = sizeof e;
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, ai->ai_protocol);

		if (fd == -1)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == -1 &&
		    errno != EINPROGRESS) {
			e = errno;
			close(fd);
			errno = e;
			continue;
		}
		pfd.fd = fd;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, SUBMIT_CONNECT_TIMEOUT * 1000) != 1 ||
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) == -1 || e) {
			close(fd);
			errno = e ? e : ETIMEDOUT;
			continue;
		}
		/* From here on, blocking with timeouts. */
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
		s->fd = fd;
		freeaddrinfo(res);
		return 0;
	}
	submit_error("cannot connect to %s port %u: %s", host, port,
	    strerror(errno));
	freeaddrinfo(res);
	return -1;
}

static ssize_t
submit_read(struct submit *s, void *p, size_t n)
{
	if (s->ssl) {
		int r = SSL_read(s->ssl, p, (int)n);
		return r > 0 ? r : -1;
	}
	return read(s->fd, p, n);
}

static int
submit_write(struct submit *s, const void *p, size_t n)
{
	if (s->ssl) {
		while (n) {
			int w = SSL_write(s->ssl, p, (int)(n > 65536 ? 65536 : n));

			if (w <= 0)
				return -1;
			p = (const char *)p + w;
			n -= (size_t)w;
		}
		return 0;
	}
	return write_full(s->fd, p, n);
}

/* One reply, possibly multi-line (RFC 5321 section 4.2.1); the code,
 * or -1 when the connection failed. */
static int
submit_reply(struct submit *s)
{
	buf_reset(&s->reply);
	for (;;) {
		char *nl = memchr(s->in, '\n', s->inlen);
		size_t ll;

		if (nl == NULL) {
			ssize_t n;

			if (s->inlen == sizeof s->in) {
				submit_error("%s: reply line too long", s->host);
				return -1;
			}
			n = submit_read(s, s->in + s->inlen,
			    sizeof s->in - s->inlen);
			if (n <= 0) {
				submit_error("%s: connection lost%s", s->host,
				    n == -1 && (errno == EAGAIN ||
				    errno == EWOULDBLOCK) ? " (timeout)" : "");
				return -1;
			}
			s->inlen += (size_t)n;
			continue;
		}
		ll = (size_t)(nl - s->in) + 1;
		if (buf_append(&s->reply, s->in, ll) == -1 || ll < 4 ||
		    s->in[0] < '2' || s->in[0] > '5') {
			submit_error("%s: malformed reply", s->host);
			return -1;
		}
		memmove(s->in, s->in + ll, s->inlen - ll);
		s->inlen -= ll;
		if (s->reply.data[s->reply.len - ll + 3] != '-') {
			s->code = atoi(s->reply.data + s->reply.len - ll);
			if (s->verbose)
				fprintf(stderr, "<<< %s", s->reply.data);
			return s->code;
		}
	}
}

/* Send a command (shown in verbose mode unless secret) and read the
 * reply. */
static int __attribute__((format(printf, 3, 4)))
submit_cmd(struct submit *s, int secret, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n + 2 >= sizeof line)
		return -1;
	if (s->verbose)
		fprintf(stderr, ">>> %s\n", secret ? "(credentials)" : line);
	memcpy(line + n, "\r\n", 3);
	if (submit_write(s, line, (size_t)n + 2) == -1) {
		submit_error("%s: write failed", s->host);
		explicit_bzero(line, sizeof line);
		return -1;
	}
	explicit_bzero(line, sizeof line);
	return submit_reply(s);
}

static int
submit_tls(struct submit *s, const struct conf *c)
{
	struct sockaddr_storage ss;

	s->ctx = SSL_CTX_new(TLS_client_method());
	if (s->ctx == NULL)
		return -1;
	SSL_CTX_set_min_proto_version(s->ctx, TLS1_2_VERSION);
	if (c->submit_tls_ca[0]) {
		/* "tls ca FILE": these CAs only, not the system's. */
		if (access(c->submit_tls_ca, R_OK) == -1) {
			/* Read as the sender: it must be readable by all. */
			submit_error("%s: %s", c->submit_tls_ca, strerror(errno));
			return -1;
		}
		if (SSL_CTX_load_verify_locations(s->ctx, c->submit_tls_ca,
		    NULL) != 1) {
			submit_error("%s: not a file of PEM certificates",
			    c->submit_tls_ca);
			return -1;
		}
		SSL_CTX_set_verify(s->ctx, SSL_VERIFY_PEER, NULL);
	} else if (c->submit_tls_verify) {
		SSL_CTX_set_default_verify_paths(s->ctx);
		SSL_CTX_set_verify(s->ctx, SSL_VERIFY_PEER, NULL);
	}
	if ((s->ssl = SSL_new(s->ctx)) == NULL)
		return -1;
	/* "submit via [192.0.2.1]" is kept without its brackets: an
	 * address gets no SNI (RFC 6066 section 3), and "tls verify"
	 * checks the certificate for the address, not for a name. */
	if (sockaddr_numeric(c->submit_host, 0, &ss) == 0) {
		SSL_set_tlsext_host_name(s->ssl, c->submit_host);
		if (c->submit_tls_verify)
			SSL_set1_host(s->ssl, c->submit_host);
	} else if (c->submit_tls_verify &&
	    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s->ssl),
	    c->submit_host) != 1) {
		submit_error("%s: TLS: cannot set the address to verify",
		    s->host);
		return -1;
	}
	SSL_set_fd(s->ssl, s->fd);
	if (SSL_connect(s->ssl) != 1) {
		unsigned long e = ERR_get_error();
		char detail[256] = "handshake failed";

		if (e)
			ERR_error_string_n(e, detail, sizeof detail);
		submit_error("%s: TLS: %s", s->host, detail);
		SSL_free(s->ssl);
		s->ssl = NULL;
		return -1;
	}
	return 0;
}

/* The EHLO reply lists this keyword (and, for AUTH, this mechanism). */
static int
ehlo_has(const struct buf *r, const char *kw, const char *mech)
{
	const char *p = r->data;

	while (p && *p) {
		const char *eol = strchr(p, '\n');
		size_t kl = strlen(kw);

		if (strlen(p) > 4 + kl && strncasecmp(p + 4, kw, kl) == 0 &&
		    (p[4 + kl] == ' ' || p[4 + kl] == '\r' || p[4 + kl] == '\n')) {
			if (mech == NULL)
				return 1;
			for (const char *m = p + 4 + kl; m < (eol ? eol : p +
			    strlen(p)); m++)
				if ((m[-1] == ' ') &&
				    strncasecmp(m, mech, strlen(mech)) == 0 &&
				    strchr(" \r\n", m[strlen(mech)]))
					return 1;
		}
		p = eol ? eol + 1 : NULL;
	}
	return 0;
}

static char *
b64(const char *s, size_t n)
{
	char *out = xmalloc(BASE64_ENCODED_LEN(n) + 1);

	base64_encode(out, (const unsigned char *)s, n);
	return out;
}

static int
submit_auth(struct submit *s, const char *login, const char *password)
{
	int code;

	if (ehlo_has(&s->reply, "AUTH", "PLAIN")) {
		size_t ll = strlen(login), pl = strlen(password);
		char *raw = xmalloc(ll + pl + 2), *enc;

		raw[0] = '\0';
		memcpy(raw + 1, login, ll);
		raw[ll + 1] = '\0';
		memcpy(raw + ll + 2, password, pl);
		enc = b64(raw, ll + pl + 2);
		explicit_bzero(raw, ll + pl + 2);
		free(raw);
		code = submit_cmd(s, 1, "AUTH PLAIN %s", enc);
		explicit_bzero(enc, strlen(enc));
		free(enc);
	} else if (ehlo_has(&s->reply, "AUTH", "LOGIN")) {
		char *enc;

		if ((code = submit_cmd(s, 0, "AUTH LOGIN")) != 334)
			goto done;
		enc = b64(login, strlen(login));
		code = submit_cmd(s, 1, "%s", enc);
		free(enc);
		if (code != 334)
			goto done;
		enc = b64(password, strlen(password));
		code = submit_cmd(s, 1, "%s", enc);
		explicit_bzero(enc, strlen(enc));
		free(enc);
	} else {
		submit_error("%s offers neither AUTH PLAIN nor AUTH LOGIN",
		    s->host);
		return EX_UNAVAILABLE;
	}
done:
	if (code == 235)
		return 0;
	if (code == -1)
		return EX_TEMPFAIL;
	submit_error("%s refused the credentials: %s", s->host, s->reply.data);
	return code >= 500 ? EX_NOPERM : EX_TEMPFAIL;
}

/* A failed step: 4xx is temporary, 5xx is not. */
static int
submit_fail(struct submit *s, const char *step, int code, int perm)
{
	if (code == -1)
		return EX_TEMPFAIL;
	submit_error("%s: %s: %s", s->host, step, s->reply.data ?
	    s->reply.data : "");
	return code >= 500 ? perm : EX_TEMPFAIL;
}

/* The content with dot-stuffing (RFC 5321 section 4.5.2), then ".". */
static int
submit_data(struct submit *s, const struct buf *content)
{
	const char *p = content->data ? content->data : "", *end = p + content->len;
	struct buf out;
	int rc = 0;

	buf_init(&out, 0);
	while (p < end && rc == 0) {
		const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
		const char *next = eol ? eol + 2 : end;

		if (*p == '.')
			buf_putc(&out, '.');
		buf_append(&out, p, (size_t)(next - p));
		if (!eol)
			buf_puts(&out, "\r\n");
		p = next;
		if (out.len > 65536 || p >= end) {
			rc = submit_write(s, out.data, out.len);
			buf_reset(&out);
		}
	}
	if (rc == 0)
		rc = submit_write(s, ".\r\n", 3);
	buf_free(&out);
	return rc;
}

int
msp_submit(const struct conf *c, const struct msp_msg *mm,
    const char *default_sender, int verbose)
{
	struct submit s = { .fd = -1, .verbose = verbose, .host = c->submit_host };
	char *login = NULL, *password = NULL;
	const char *sender;
	int code, rc = EX_TEMPFAIL;

	buf_init(&s.reply, SUBMIT_REPLY_MAX);
	if (c->submit_auth[0] &&
	    submit_read_auth(c->submit_auth, &login, &password) == -1) {
		rc = EX_CONFIG;
		goto done;
	}
	/* -f, else the login when it is an address, else user@origin. */
	sender = mm->sender ? mm->sender : login && strchr(login, '@') ? login :
	    default_sender;
	if (submit_connect(&s, c->submit_host, c->submit_port) == -1)
		goto done;
	if (c->submit_tls_implicit && submit_tls(&s, c) == -1)
		goto done;
	if ((code = submit_reply(&s)) != 220) {
		rc = submit_fail(&s, "greeting", code, EX_UNAVAILABLE);
		goto done;
	}
	if ((code = submit_cmd(&s, 0, "EHLO %s", c->hostname)) != 250) {
		rc = submit_fail(&s, "EHLO", code, EX_UNAVAILABLE);
		goto done;
	}
	if (!c->submit_tls_implicit) {
		/* Never send credentials or mail in the clear. */
		if (!ehlo_has(&s.reply, "STARTTLS", NULL)) {
			submit_error("%s does not offer STARTTLS; not sending",
			    s.host);
			rc = EX_UNAVAILABLE;
			goto done;
		}
		if ((code = submit_cmd(&s, 0, "STARTTLS")) != 220) {
			rc = submit_fail(&s, "STARTTLS", code, EX_UNAVAILABLE);
			goto done;
		}
		s.inlen = 0;	/* nothing sent before TLS is believed */
		if (submit_tls(&s, c) == -1)
			goto done;
		if ((code = submit_cmd(&s, 0, "EHLO %s", c->hostname)) != 250) {
			rc = submit_fail(&s, "EHLO", code, EX_UNAVAILABLE);
			goto done;
		}
	}
	if (login && (rc = submit_auth(&s, login, password)) != 0)
		goto done;
	rc = EX_TEMPFAIL;
	code = submit_cmd(&s, 0, "MAIL FROM:<%s>%s", sender,
	    mm->body_8bit && ehlo_has(&s.reply, "8BITMIME", NULL) ?
	    " BODY=8BITMIME" : "");
	if (code != 250) {
		rc = submit_fail(&s, "MAIL", code, EX_NOPERM);
		goto done;
	}
	for (size_t i = 0; i < mm->nrcpts; i++) {
		code = submit_cmd(&s, 0, "RCPT TO:<%s>", mm->rcpts[i]);
		if (code != 250 && code != 251) {
			/* all or nothing: the caller sees one outcome */
			rc = submit_fail(&s, mm->rcpts[i], code, EX_NOUSER);
			goto done;
		}
	}
	if ((code = submit_cmd(&s, 0, "DATA")) != 354) {
		rc = submit_fail(&s, "DATA", code, EX_UNAVAILABLE);
		goto done;
	}
	if (submit_data(&s, &mm->content) == -1) {
		submit_error("%s: write failed", s.host);
		goto done;
	}
	if ((code = submit_reply(&s)) != 250) {
		rc = submit_fail(&s, "end of data", code, EX_UNAVAILABLE);
		goto done;
	}
	if (verbose)
		fprintf(stderr, "sendmail: submitted to %s\n", s.host);
	rc = 0;
	(void)submit_cmd(&s, 0, "QUIT");
done:
	if (s.ssl) {
		SSL_shutdown(s.ssl);
		SSL_free(s.ssl);
	}
	SSL_CTX_free(s.ctx);
	if (s.fd != -1)
		close(s.fd);
	buf_free(&s.reply);
	if (password) {
		explicit_bzero(password, strlen(password));
		free(password);
	}
	free(login);
	return rc;
}
