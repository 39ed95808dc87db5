/*
 * netcheck.c - blocking client connections with poll(2) timeouts for
 * `postern check` and `postern probe` (see netcheck.h).  The socket stays
 * non-blocking; each step (a connection attempt, a TLS handshake, a
 * write, a reply) has the connection's timeout from its start, and every
 * wait in poll ends at that deadline: neither a silent peer nor one that
 * trickles an octet at a time holds the command longer.
 */
#include "admin/netcheck.h"
#include "lib/strutil.h"

#include <arpa/inet.h>
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
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#define NC_REPLY_MAX	(64 * 1024)	/* one multi-line reply */

const char *
nc_status_name(enum nc_status st)
{
	switch (st) {
	case NC_OK:		return "connected";
	case NC_REFUSED:	return "refused";
	case NC_TIMEOUT:	return "timeout";
	case NC_UNREACH:	return "unreachable";
	case NC_RESOLVE:	return "unresolved";
	case NC_ERROR:		return "error";
	}
	return "error";
}

void
nc_init(struct nc_conn *c, int timeout_ms)
{
	memset(c, 0, sizeof *c);
	c->fd = -1;
	c->timeout_ms = timeout_ms;
}

static void __attribute__((format(printf, 2, 3)))
nc_error(struct nc_conn *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof c->err, fmt, ap);
	va_end(ap);
}

/* A step begins: it has the timeout from now. */
static void
nc_step(struct nc_conn *c)
{
	clock_gettime(CLOCK_MONOTONIC, &c->deadline);
	c->deadline.tv_sec += c->timeout_ms / 1000;
	c->deadline.tv_nsec += (long)(c->timeout_ms % 1000) * 1000000;
	if (c->deadline.tv_nsec >= 1000000000) {
		c->deadline.tv_sec++;
		c->deadline.tv_nsec -= 1000000000;
	}
	c->got = 0;
}

/* Milliseconds left in the step, rounded up; 0 when it is over. */
static int
nc_left_ms(const struct nc_conn *c)
{
	struct timespec now;
	long long ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (long long)(c->deadline.tv_sec - now.tv_sec) * 1000 +
	    (c->deadline.tv_nsec - now.tv_nsec + 999999) / 1000000;
	return ms <= 0 ? 0 : ms > c->timeout_ms ? c->timeout_ms : (int)ms;
}

/* Wait until fd is ready for events, at most until the step's
 * deadline; 0, or -1 with c->err set. */
static int
nc_wait(struct nc_conn *c, short events)
{
	struct pollfd pfd = { .fd = c->fd, .events = events };
	int n = 0, left;

	while ((left = nc_left_ms(c)) > 0 &&
	    (n = poll(&pfd, 1, left)) == -1 && errno == EINTR)
		continue;
	if (left == 0 || n == 0) {
		if (c->got == 0)
			nc_error(c, "timeout after %d.%01d s",
			    c->timeout_ms / 1000, (c->timeout_ms % 1000) / 100);
		else
			nc_error(c, "not complete within %d.%01d s: %zu octets "
			    "came, too slowly", c->timeout_ms / 1000,
			    (c->timeout_ms % 1000) / 100, c->got);
		return -1;
	}
	if (n == -1) {
		nc_error(c, "poll: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static enum nc_status
nc_classify(int e)
{
	switch (e) {
	case ECONNREFUSED:
		return NC_REFUSED;
	case ETIMEDOUT:
		return NC_TIMEOUT;
	case EHOSTUNREACH:
	case ENETUNREACH:
	case EACCES:		/* ICMP administratively prohibited */
	case EPERM:		/* a local firewall said no */
		return NC_UNREACH;
	default:
		return NC_ERROR;
	}
}

/* One address: the outcome, and on NC_OK the socket in c->fd. */
static enum nc_status
nc_connect_one(struct nc_conn *c, const struct addrinfo *ai)
{
	socklen_t len = sizeof(int);
	int fd, e = 0;

	nc_step(c);
	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, ai->ai_protocol);
	if (fd == -1) {
		nc_error(c, "socket: %s", strerror(errno));
		return NC_ERROR;
	}
	c->fd = fd;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == -1) {
		if (errno != EINPROGRESS) {
			e = errno;
			goto fail;
		}
		if (nc_wait(c, POLLOUT) == -1) {
			e = ETIMEDOUT;
			goto fail;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) == -1)
			e = errno;
		if (e)
			goto fail;
	}
	return NC_OK;
fail:
	nc_error(c, "%s", strerror(e));
	close(fd);
	c->fd = -1;
	return nc_classify(e);
}

enum nc_status
nc_connect(struct nc_conn *c, const char *host, unsigned port)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
	    .ai_flags = AI_ADDRCONFIG }, *res, *ai;
	enum nc_status st = NC_ERROR, best = NC_ERROR;
	char portstr[8], besterr[sizeof c->err] = "";
	int e;

	snprintf(portstr, sizeof portstr, "%u", port);
	if ((e = getaddrinfo(host, portstr, &hints, &res)) != 0) {
		hints.ai_flags = 0;	/* AI_ADDRCONFIG hides ::1 in some sandboxes */
		if ((e = getaddrinfo(host, portstr, &hints, &res)) != 0) {
			nc_error(c, "%s: %s", host, gai_strerror(e));
			return NC_RESOLVE;
		}
	}
	for (ai = res; ai; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)ai->ai_addr)->
			    sin_addr, c->peer, sizeof c->peer);
		else if (ai->ai_family == AF_INET6)
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)ai->ai_addr)->
			    sin6_addr, c->peer, sizeof c->peer);
		st = nc_connect_one(c, ai);
		if (st == NC_OK)
			break;
		/* Report the most telling failure: a refusal proves the host
		 * is there, which matters more than a timeout elsewhere. */
		if (best == NC_ERROR || st == NC_REFUSED) {
			best = st;
			(void)strlcpy(besterr, c->err, sizeof besterr);
		}
	}
	freeaddrinfo(res);
	if (st != NC_OK) {
		(void)strlcpy(c->err, besterr, sizeof c->err);
		return best;
	}
	c->err[0] = '\0';
	return NC_OK;
}

void
nc_close(struct nc_conn *c)
{
	if (c->ssl) {
		/* A polite close_notify; do not wait for the peer's. */
		(void)SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->ctx) {
		SSL_CTX_free(c->ctx);
		c->ctx = NULL;
	}
	if (c->fd != -1) {
		close(c->fd);
		c->fd = -1;
	}
	c->inlen = 0;
}

/* Drive one SSL call that wants the socket; 1 to retry, 0 done, -1. */
static int
nc_ssl_retry(struct nc_conn *c, int r)
{
	switch (SSL_get_error(c->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		return nc_wait(c, POLLIN) == 0 ? 1 : -1;
	case SSL_ERROR_WANT_WRITE:
		return nc_wait(c, POLLOUT) == 0 ? 1 : -1;
	case SSL_ERROR_ZERO_RETURN:
		nc_error(c, "connection closed");
		return -1;
	default: {
		unsigned long e = ERR_get_error();

		if (e)
			ERR_error_string_n(e, c->err, sizeof c->err);
		else
			nc_error(c, "connection lost");
		ERR_clear_error();
		return -1;
	}
	}
}

int
nc_start_tls(struct nc_conn *c, const char *host, const char *cafile)
{
	struct in6_addr a6;
	struct in_addr a4;
	int r;

	if ((c->ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		nc_error(c, "SSL_CTX_new failed");
		return -1;
	}
	/* Verification is reported, not enforced: the check wants to see
	 * a bad certificate, not stop at it. */
	SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_default_verify_paths(c->ctx);
	if (cafile && SSL_CTX_load_verify_locations(c->ctx, cafile, NULL) != 1) {
		nc_error(c, "cannot load CA file %s", cafile);
		return -1;
	}
	if ((c->ssl = SSL_new(c->ctx)) == NULL) {
		nc_error(c, "SSL_new failed");
		return -1;
	}
	/* SNI only for names (RFC 6066 section 3: no literal addresses). */
	if (inet_pton(AF_INET, host, &a4) != 1 &&
	    inet_pton(AF_INET6, host, &a6) != 1)
		SSL_set_tlsext_host_name(c->ssl, host);
	SSL_set_fd(c->ssl, c->fd);
	/* Whatever was read before the handshake was plain text (RFC 3207
	 * section 4.2: discard it). */
	c->inlen = 0;
	nc_step(c);
	while ((r = SSL_connect(c->ssl)) != 1) {
		int again = nc_ssl_retry(c, r);

		if (again == 1)
			continue;
		if (c->err[0] == '\0')
			nc_error(c, "handshake failed");
		return -1;
	}
	return 0;
}

static void
name_oneline(X509_NAME *n, char *dst, size_t dstsz)
{
	BIO *b = BIO_new(BIO_s_mem());
	long len;
	char *p;

	dst[0] = '\0';
	if (b == NULL)
		return;
	X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
	len = BIO_get_mem_data(b, &p);
	if (len > 0)
		str_escape(dst, dstsz, p, (size_t)len);
	BIO_free(b);
}

void
nc_tls_describe(struct nc_conn *c, const char *host, struct nc_tlsinfo *ti)
{
	X509 *cert;
	const ASN1_TIME *na;
	struct in6_addr a6;
	struct in_addr a4;
	long vr;

	memset(ti, 0, sizeof *ti);
	if (c->ssl == NULL)
		return;
	(void)strlcpy(ti->protocol, SSL_get_version(c->ssl), sizeof ti->protocol);
	(void)strlcpy(ti->cipher, SSL_get_cipher_name(c->ssl), sizeof ti->cipher);
	if ((cert = SSL_get1_peer_certificate(c->ssl)) == NULL)
		return;
	ti->have_cert = 1;
	name_oneline(X509_get_subject_name(cert), ti->subject, sizeof ti->subject);
	name_oneline(X509_get_issuer_name(cert), ti->issuer, sizeof ti->issuer);
	if ((na = X509_get0_notAfter(cert)) != NULL) {
		BIO *b = BIO_new(BIO_s_mem());
		int days = 0, secs = 0;
		char *p;
		long len;

		if (b) {
			ASN1_TIME_print(b, na);
			len = BIO_get_mem_data(b, &p);
			if (len > 0)
				str_escape(ti->not_after, sizeof ti->not_after,
				    p, (size_t)len);
			BIO_free(b);
		}
		if (ASN1_TIME_diff(&days, &secs, NULL, na) == 1)
			ti->days_left = days - (secs < 0 && days == 0);
	}
	ti->self_signed = (X509_get_extension_flags(cert) & EXFLAG_SS) != 0;
	if (inet_pton(AF_INET, host, &a4) == 1 ||
	    inet_pton(AF_INET6, host, &a6) == 1)
		ti->name_match = X509_check_ip_asc(cert, host, 0) == 1;
	else
		ti->name_match = X509_check_host(cert, host, 0, 0, NULL) == 1;
	vr = SSL_get_verify_result(c->ssl);
	ti->verified = vr == X509_V_OK;
	(void)strlcpy(ti->verify_error, X509_verify_cert_error_string(vr),
	    sizeof ti->verify_error);
	X509_free(cert);
}

static int
nc_send(struct nc_conn *c, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w;

		if (c->ssl) {
			int r = SSL_write(c->ssl, p, (int)n);

			if (r <= 0) {
				if (nc_ssl_retry(c, r) == 1)
					continue;
				return -1;
			}
			w = r;
		} else {
			w = send(c->fd, p, n, MSG_NOSIGNAL);
			if (w == -1) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN || errno == EWOULDBLOCK) {
					if (nc_wait(c, POLLOUT) == -1)
						return -1;
					continue;
				}
				nc_error(c, "send: %s", strerror(errno));
				return -1;
			}
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int
nc_write(struct nc_conn *c, const char *line)
{
	nc_step(c);
	if (nc_send(c, line, strlen(line)) == -1 || nc_send(c, "\r\n", 2) == -1)
		return -1;
	return 0;
}

/* More input into c->in; -1 on EOF, error or timeout. */
static int
nc_fill(struct nc_conn *c)
{
	for (;;) {
		size_t room = sizeof c->in - c->inlen;
		ssize_t n;

		if (room == 0) {
			nc_error(c, "line too long");
			return -1;
		}
		if (c->ssl) {
			int r = SSL_read(c->ssl, c->in + c->inlen, (int)room);

			if (r <= 0) {
				if (nc_ssl_retry(c, r) == 1)
					continue;
				return -1;
			}
			n = r;
		} else {
			n = recv(c->fd, c->in + c->inlen, room, 0);
			if (n == -1) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN || errno == EWOULDBLOCK) {
					if (nc_wait(c, POLLIN) == -1)
						return -1;
					continue;
				}
				nc_error(c, "recv: %s", strerror(errno));
				return -1;
			}
			if (n == 0) {
				nc_error(c, "connection closed by the server");
				return -1;
			}
		}
		c->inlen += (size_t)n;
		c->got += (size_t)n;
		return 0;
	}
}

/* One line, within the step under way. */
static int
nc_readline(struct nc_conn *c, char *dst, size_t dstsz)
{
	char *nl;
	size_t ll;

	while ((nl = memchr(c->in, '\n', c->inlen)) == NULL)
		if (nc_fill(c) == -1)
			return -1;
	ll = (size_t)(nl - c->in);
	if (ll > 0 && c->in[ll - 1] == '\r')
		ll--;
	if (ll >= dstsz) {
		nc_error(c, "line too long");
		return -1;
	}
	memcpy(dst, c->in, ll);
	dst[ll] = '\0';
	/* A NUL in a reply would cut the line short: show it as '?'. */
	for (size_t i = 0; i < ll; i++)
		if (dst[i] == '\0')
			dst[i] = '?';
	ll = (size_t)(nl - c->in) + 1;
	memmove(c->in, c->in + ll, c->inlen - ll);
	c->inlen -= ll;
	return 0;
}

int
nc_getline(struct nc_conn *c, char *dst, size_t dstsz)
{
	nc_step(c);
	return nc_readline(c, dst, dstsz);
}

int
nc_smtp_reply(struct nc_conn *c, struct buf *text)
{
	char line[1024];

	buf_reset(text);
	nc_step(c);		/* one for all of its lines */
	for (;;) {
		if (nc_readline(c, line, sizeof line) == -1)
			return -1;
		if (strlen(line) < 3 || line[0] < '2' || line[0] > '5' ||
		    line[1] < '0' || line[1] > '9' || line[2] < '0' ||
		    line[2] > '9' || (line[3] != ' ' && line[3] != '-' &&
		    line[3] != '\0')) {
			nc_error(c, "malformed reply line: %.80s", line);
			return -1;
		}
		if (text->len > 0 && buf_putc(text, '\n') == -1)
			goto toolong;
		if (buf_puts(text, line) == -1)
			goto toolong;
		if (line[3] != '-')
			return (line[0] - '0') * 100 + (line[1] - '0') * 10 +
			    (line[2] - '0');
	}
toolong:
	nc_error(c, "reply too long");
	return -1;
}

/* Format and send one command line; the buffer is wiped afterwards, as
 * it may have held AUTH data.  0, or -1 with the error recorded. */
static int __attribute__((format(printf, 2, 0)))
nc_send_cmd(struct nc_conn *c, const char *fmt, va_list ap)
{
	char line[1024];
	int n = vsnprintf(line, sizeof line, fmt, ap);

	if (n < 0 || (size_t)n >= sizeof line) {
		nc_error(c, "command too long");
		return -1;
	}
	n = nc_write(c, line);
	explicit_bzero(line, sizeof line);
	return n == -1 ? -1 : 0;
}

int
nc_smtp_cmd(struct nc_conn *c, struct buf *text, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = nc_send_cmd(c, fmt, ap);
	va_end(ap);
	return rc == -1 ? -1 : nc_smtp_reply(c, text);
}

int
nc_ehlo_has(const struct buf *ehlo, const char *kw, char *args, size_t argssz)
{
	size_t kl = strlen(kw);

	for (const char *p = ehlo->data; p && *p; ) {
		const char *eol = strchr(p, '\n');
		size_t ll = eol ? (size_t)(eol - p) : strlen(p);

		/* "250-KEYWORD args": skip the first line (the greeting). */
		if (p != ehlo->data && ll >= 4 + kl &&
		    strncasecmp(p + 4, kw, kl) == 0 &&
		    (ll == 4 + kl || p[4 + kl] == ' ' || p[4 + kl] == '=')) {
			if (args) {
				size_t al = ll > 4 + kl ? ll - 5 - kl : 0;
				const char *a = p + 5 + kl;

				if (al >= argssz)
					al = argssz - 1;
				memcpy(args, al ? a : "", al);
				args[al] = '\0';
			}
			return 1;
		}
		p = eol ? eol + 1 : NULL;
	}
	if (args && argssz)
		args[0] = '\0';
	return 0;
}

int
nc_pop_reply(struct nc_conn *c, struct buf *text)
{
	char line[1024];

	buf_reset(text);
	if (nc_getline(c, line, sizeof line) == -1)
		return -1;
	(void)buf_puts(text, line);
	if (strncmp(line, "+OK", 3) == 0)
		return 1;
	if (strncmp(line, "-ERR", 4) == 0)
		return 0;
	nc_error(c, "malformed POP3 reply: %.80s", line);
	return -1;
}

int
nc_pop_cmd(struct nc_conn *c, struct buf *text, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = nc_send_cmd(c, fmt, ap);
	va_end(ap);
	return rc == -1 ? -1 : nc_pop_reply(c, text);
}

int
nc_pop_multiline(struct nc_conn *c, struct buf *text)
{
	char line[1024];

	buf_reset(text);
	nc_step(c);		/* one for all of its lines */
	for (int i = 0; i < 1000; i++) {
		if (nc_readline(c, line, sizeof line) == -1)
			return -1;
		if (strcmp(line, ".") == 0)
			return 0;
		if ((text->len && buf_putc(text, ' ') == -1) ||
		    buf_puts(text, line[0] == '.' ? line + 1 : line) == -1) {
			nc_error(c, "response too long");
			return -1;
		}
	}
	nc_error(c, "response too long");
	return -1;
}
