/*
 * keyd.h - the key process (keyd.c), the only postern process that
 * holds the TLS private key, and its client in the workers
 * (tls_keyclient.c), which gives OpenSSL a key whose private operations
 * are forwarded to it over <spool>/private/keyd.
 */
#ifndef POSTERN_KEYD_H
#define POSTERN_KEYD_H

#include <openssl/evp.h>
#include <stddef.h>
#include <sys/types.h>

#include "conf/conf.h"

#define KEYD_ID_LEN	32	/* SHA-256 of the DER SubjectPublicKeyInfo */

/* Master: create the listening socket <spool>/private/keyd, reachable by
 * root and the workers' group only. */
int	keyd_listen(const struct conf *, uid_t, gid_t);
int	keyd_socket_path(const struct conf *, char *dst, size_t dstsz);
/* Child: load the key, serve until SIGTERM. */
void	keyd_main(const struct conf *, int listen_fd) __attribute__((noreturn));
/* The key id of a public (or private) key; -1 on failure. */
int	keyd_key_id(EVP_PKEY *, unsigned char id[KEYD_ID_LEN]);

/* Worker, before it drops privileges: remember the socket and connect. */
void	keyclient_init(const struct conf *);
/* A key with pub's public half whose private operations go to keyd, or
 * NULL when keyd cannot do them for this type of key (EC and RSA only). */
EVP_PKEY *keyclient_pkey(EVP_PKEY *pub);
void	keyclient_shutdown(void);

#endif
