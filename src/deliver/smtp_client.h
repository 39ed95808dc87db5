/*
 * smtp_client.h - one outbound SMTP connection (RFC 5321), driven by
 * remote.c: greeting, EHLO (HELO fallback), STARTTLS (RFC 3207) when
 * offered or required, AUTH (RFC 4954) for a smarthost, then any number
 * of transactions, each with PIPELINING (RFC 2920) of MAIL and RCPT,
 * SIZE (RFC 1870), BODY=8BITMIME (RFC 6152) and dot-stuffing, and
 * per-recipient results.  Recipients a server refuses as too many for
 * one transaction go in another one of the same message at once (RFC
 * 5321 section 4.5.3.1.10).  Timeouts per RFC 5321 section 4.5.3.2.
 */
#ifndef POSTERN_SMTP_CLIENT_H
#define POSTERN_SMTP_CLIENT_H

#include <openssl/ssl.h>
#include <sys/socket.h>

#include "deliver/remote.h"

struct event_base;
struct smtp_client;

struct smtp_client_cfg {
	const char	*helo;		/* our host name */
	SSL_CTX		*tls_ctx;	/* client context */
	const char	*servername;	/* SNI and certificate name */
	int		 tls_implicit;	/* TLS from the first byte (465) */
	int		 tls_verify;	/* only a verified TLS peer will do */
	X509_STORE	*tls_cas;	/* trust these, not tls_ctx's; or NULL */
	int		 no_starttls;	/* in the clear even if offered */
	const char	*auth_user;	/* NULL: no AUTH */
	const char	*auth_pass;
	unsigned	 timeout;	/* seconds for every step; 0: RFC */
	unsigned	 connect_timeout;
};

/* Why a connection could not be used; perm means no other host of the
 * same destination will do better (e.g. 535 from a smarthost). */
struct smtp_client_error {
	int	 perm;
	int	 tls_failed;	/* in the STARTTLS handshake */
	int	 auth_refused;	/* a 5xx to AUTH: our credentials are wrong */
	char	 dsn[16];
	char	 text[512];
};

/* ok: the session is ready for transactions; else err says why. */
typedef void (*smtp_client_ready_fn)(struct smtp_client *, int ok,
	    const struct smtp_client_error *err, void *arg);
/* The message is done with (in one transaction, or several when the
 * server refused recipients as too many): every rcpt of msg has its
 * outcome.  reusable says whether the connection may take another
 * transaction.  Until then, a rcpt with an empty dsn has none yet. */
typedef void (*smtp_client_tx_fn)(struct smtp_client *, struct remote_msg *,
	    int reusable, void *arg);

struct smtp_client *smtp_client_connect(struct event_base *,
	    const struct sockaddr *, socklen_t, const struct smtp_client_cfg *,
	    smtp_client_ready_fn, void *arg);
void	smtp_client_send(struct smtp_client *, struct remote_msg *,
	    smtp_client_tx_fn, void *arg);
/* Say QUIT and close in the background; the client is gone for the
 * caller either way. */
void	smtp_client_quit(struct smtp_client *);
void	smtp_client_free(struct smtp_client *);
/* Free the clients still saying QUIT (the process is stopping). */
void	smtp_client_free_quitting(void);
/* "host[addr]:port" for logs and DSNs. */
const char *smtp_client_peer(const struct smtp_client *);
/* Map a reply to an enhanced status code: its own "x.y.z", else the
 * class default (exposed for unit tests). */
void	smtp_client_dsn(int code, const char *text, char *dsn, size_t dsnsz);

#endif
