/*
 * netcheck.h - the blocking client connection behind `postern check` and
 * `postern probe`: connect with a timeout (telling "refused" from
 * "silently dropped"), read SMTP (RFC 5321 section 4.2) and POP3
 * (RFC 1939) replies, STARTTLS/STLS or implicit TLS, and describe the
 * peer's certificate.  The caller's timeout bounds each step as a whole:
 * a connection attempt, a TLS handshake, a write, a reply (all of its
 * lines); a peer that sends an octet at a time cannot stretch it.
 * Runs in the administrator's process; nothing here is used by the daemon.
 */
#ifndef POSTERN_NETCHECK_H
#define POSTERN_NETCHECK_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/ssl.h>

#include "lib/buf.h"

/* How a connection attempt ended. */
enum nc_status {
	NC_OK,			/* connected */
	NC_REFUSED,		/* RST: a host answered, nothing listens there */
	NC_TIMEOUT,		/* no answer at all: dropped on the way */
	NC_UNREACH,		/* ICMP unreachable / prohibited, no route */
	NC_RESOLVE,		/* the name does not resolve */
	NC_ERROR,		/* anything else (errno in err) */
};

struct nc_conn {
	int		 fd;
	SSL_CTX		*ctx;
	SSL		*ssl;
	int		 timeout_ms;
	struct timespec	 deadline;	/* of the step under way */
	size_t		 got;		/* octets read in it */
	char		 peer[64];	/* numeric address connected to */
	char		 in[8192];
	size_t		 inlen;
	char		 err[256];	/* why the last call failed */
};

/* What a TLS session and the peer's certificate look like. */
struct nc_tlsinfo {
	char	 protocol[32];		/* "TLSv1.3" */
	char	 cipher[96];
	char	 subject[256];		/* one line, RFC 2253 */
	char	 issuer[256];
	char	 not_after[64];		/* "Mar 31 00:00:00 2027 GMT" */
	int	 days_left;		/* negative: expired */
	int	 self_signed;
	int	 name_match;		/* the certificate is valid for host */
	int	 verified;		/* chain to a trusted CA */
	char	 verify_error[128];	/* X509_verify_cert_error_string */
	int	 have_cert;
};

const char *nc_status_name(enum nc_status);

void	nc_init(struct nc_conn *, int timeout_ms);
/* Connect to every address of host in turn until one answers. */
enum nc_status nc_connect(struct nc_conn *, const char *host, unsigned port);
void	nc_close(struct nc_conn *);

/* TLS on the open connection (STARTTLS, STLS, or implicit). cafile may
 * be NULL: the system's trusted CAs are used either way.  0 or -1. */
int	nc_start_tls(struct nc_conn *, const char *host, const char *cafile);
void	nc_tls_describe(struct nc_conn *, const char *host,
	    struct nc_tlsinfo *);

int	nc_write(struct nc_conn *, const char *line);	/* adds CRLF */
/* One line without its CRLF into dst; -1 on EOF, timeout or overlong. */
int	nc_getline(struct nc_conn *, char *dst, size_t dstsz);

/* One SMTP reply, all lines "250-...\n250 ...", into text (reset first);
 * returns the code or -1. */
int	nc_smtp_reply(struct nc_conn *, struct buf *text);
/* Send a command and read its reply. */
int	nc_smtp_cmd(struct nc_conn *, struct buf *text, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
/* The EHLO reply lists keyword kw; when args is not NULL it gets the
 * rest of that line ("PLAIN LOGIN" for AUTH). */
int	nc_ehlo_has(const struct buf *ehlo, const char *kw, char *args,
	    size_t argssz);

/* POP3: 1 for +OK, 0 for -ERR, -1 when the connection failed; the line
 * goes to text. */
int	nc_pop_reply(struct nc_conn *, struct buf *text);
int	nc_pop_cmd(struct nc_conn *, struct buf *text, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
/* The body of a multi-line response up to ".", lines joined by spaces
 * (CAPA).  0 or -1. */
int	nc_pop_multiline(struct nc_conn *, struct buf *text);

#endif
