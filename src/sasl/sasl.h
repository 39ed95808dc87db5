/*
 * sasl.h - SASL mechanisms shared by SMTP AUTH (RFC 4954), POP3 AUTH
 * (RFC 5034) and the smarthost client: PLAIN (RFC 4616), LOGIN,
 * CRAM-MD5 (RFC 2195), SCRAM-SHA-256 (RFC 5802, RFC 7677) and the legacy
 * DIGEST-MD5 (RFC 2831).
 *
 * The server side runs where the secrets are (the auth process): each
 * step takes the client's decoded message and produces the next
 * challenge.  Credentials are looked up through callbacks, so the
 * mechanisms themselves know nothing about files or processes.
 */
#ifndef POSTERN_SASL_H
#define POSTERN_SASL_H

#include <stddef.h>

#include "lib/buf.h"

#define SASL_USER_MAX		64
#define SASL_MSG_MAX		8192	/* one decoded client message */
#define SASL_NONCE_MAX		64

enum sasl_mech_id {
	SASL_PLAIN,
	SASL_LOGIN,
	SASL_CRAM_MD5,
	SASL_SCRAM_SHA_256,
	SASL_DIGEST_MD5,
	SASL__COUNT,
};

#define SASL_MECH_CLEARTEXT	0x01	/* reveals the password: TLS only */

struct sasl_mech {
	const char	*name;
	enum sasl_mech_id id;
	int		 flags;
};

enum sasl_status {
	SASL_CONTINUE,		/* out holds the next challenge */
	SASL_OK,		/* authenticated as s->user */
	SASL_FAIL,		/* wrong credentials, unknown user */
	SASL_MALFORMED,		/* the client broke the protocol */
	SASL_TEMPFAIL,		/* the user data could not be read */
	SASL_PENDING,		/* the backend answers later: pass its
				 * verdict to sasl_server_verdict() */
};

#define SASL_VERIFY_LATER	2

/* What a mechanism may ask of the user database. */
struct sasl_backend {
	void	*arg;
	/* 1: the password is right and the account usable; 0: not;
	 * -1: temporary failure; SASL_VERIFY_LATER: the backend took a
	 * copy of the password and gives one of the other three later,
	 * through sasl_server_verdict() (a hash verified on a thread). */
	int	(*verify_password)(void *arg, const char *user,
		    const char *password);
	/* Copy the named secret (from the users file's secrets field:
	 * "scram-sha-256", "cram-md5", "digest-md5") into dst; returns its
	 * length, 0 if the user or secret does not exist, -1 on error.
	 * The account must be usable (not locked, not expired). */
	int	(*get_secret)(void *arg, const char *user, const char *kind,
		    char *dst, size_t dstsz);
	/* DIGEST-MD5's digest-uri names a host (RFC 2831 section 2.1.2):
	 * 1 if host (a name, or an address without brackets) is this
	 * server as the client reached it, else 0.  NULL: only the
	 * hostname given to sasl_server_init is. */
	int	(*host_is_ours)(void *arg, const char *host);
};

struct sasl_server {
	const struct sasl_mech	*mech;
	const struct sasl_backend *be;
	int			 step;
	int			 pending;	/* SASL_PENDING given */
	char			 user[SASL_USER_MAX + 1];
	char			 hostname[256];
	char			 service[16];	/* "smtp", "pop" */
	char			 nonce[SASL_NONCE_MAX + 1];
	/* Why a step failed when the credentials were not the reason
	 * (a digest-uri for another server), for the log; else "". */
	char			 refusal[160];
	/* SCRAM keeps its messages for the AuthMessage and its keys for the
	 * final step. */
	struct buf		 saved;
	unsigned char		 server_key[32], stored_key[32];
};

const struct sasl_mech *sasl_mech_lookup(const char *name);
const struct sasl_mech *sasl_mech_by_id(enum sasl_mech_id);

void	sasl_server_init(struct sasl_server *, const struct sasl_mech *,
	    const struct sasl_backend *, const char *hostname,
	    const char *service);
/* Tests pin the server nonce to reproduce published exchanges. */
void	sasl_server_set_nonce(struct sasl_server *, const char *);
/*
 * One step.  The first call takes the initial response (in == NULL when
 * the client sent none; an empty one is in != NULL, inlen == 0).  On
 * SASL_CONTINUE, out holds the raw challenge to send (base64 is the
 * protocol's business).
 */
enum sasl_status sasl_server_step(struct sasl_server *, const unsigned char *in,
	    size_t inlen, struct buf *out);
/* After SASL_PENDING: the backend's verdict (1, 0 or -1, as
 * verify_password) turned into the step's result.  A step or a verdict
 * out of turn is SASL_MALFORMED. */
enum sasl_status sasl_server_verdict(struct sasl_server *, int verdict);
void	sasl_server_free(struct sasl_server *);

/* Build the secrets field entries for a password (postern user passwd).
 * kind as above; salt/iterations only for SCRAM. */
int	sasl_make_secret(const char *kind, const char *user, const char *realm,
	    const char *password, char *dst, size_t dstsz);

#endif
