/*
 * tls.h - TLS with OpenSSL 3 for the server side: contexts for STARTTLS
 * (RFC 3207) and implicit TLS (RFC 8314), TLS 1.2 and 1.3 only, and the
 * self-signed certificate made on first start when none is configured.
 */
#ifndef POSTERN_TLS_H
#define POSTERN_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <sys/types.h>

#include "conf/conf.h"

/* The certificate and key the server uses: the configured ones, or the
 * self-signed pair under <spool>/tls/. */
void	tls_paths(const struct conf *, char *cert, size_t certsz, char *key,
	    size_t keysz);
/* Master, at start and reload: when no certificate is configured, make
 * the self-signed one if it does not exist yet (ECDSA P-256, the host
 * name as subject and DNS name) and warn that it must be replaced; then
 * check that the certificate and key match.  Runs in a child process. */
int	tls_prepare(const struct conf *);
/* A server context, or NULL with the reason in err. */
SSL_CTX	*tls_server_ctx(const char *cert, const char *key, char *err,
	    size_t errsz);
/* The same for a worker: the certificate only, with a key whose private
 * operations the key process does (keyclient_init first).  A type of
 * key it cannot forward is loaded from the key file, with a warning. */
SSL_CTX	*tls_server_ctx_keyd(const char *cert, const char *key, char *err,
	    size_t errsz);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384" for logs. */
void	tls_describe(SSL *, char *dst, size_t dstsz);

#endif
