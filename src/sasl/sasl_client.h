/*
 * sasl_client.h - the client side of PLAIN, LOGIN, CRAM-MD5 and
 * SCRAM-SHA-256, for the smarthost relay and the sendmail command's
 * submission.  SCRAM checks the server's signature, so a server that
 * does not know the password cannot pretend to.
 */
#ifndef POSTERN_SASL_CLIENT_H
#define POSTERN_SASL_CLIENT_H

#include "sasl/sasl.h"

struct sasl_client {
	const struct sasl_mech	*mech;
	int			 step;
	char			 user[256];
	char			 pass[1024];
	char			 nonce[SASL_NONCE_MAX + 1];
	struct buf		 saved;		/* SCRAM AuthMessage parts */
	unsigned char		 server_sig[32];
	/* Why the last step failed, for the log, the DSN and postern
	 * check: "" when the step did not fail. */
	char			 error[192];
};

/* The best mechanism both sides have: the server's EHLO AUTH list. */
const struct sasl_mech *sasl_client_choose(const char *offered);
void	sasl_client_init(struct sasl_client *, const struct sasl_mech *,
	    const char *user, const char *pass);
/* Tests pin the client nonce to reproduce published exchanges. */
void	sasl_client_set_nonce(struct sasl_client *, const char *);
/*
 * in == NULL asks for the initial response (SASL_CONTINUE with out set,
 * or SASL_CONTINUE with out empty and has_initial 0 for LOGIN/CRAM).
 * Afterwards in is the server's decoded challenge.  SASL_OK means the
 * exchange is complete from the client's side; SASL_FAIL that the server
 * could not prove itself (SCRAM).  SCRAM refuses a server-first-message
 * that RFC 5802 section 7 does not allow, or whose iteration count is
 * outside SCRAM_ITER_MIN..SCRAM_ITER_MAX (sasl_int.h), as
 * SASL_MALFORMED; c->error then says why.
 */
enum sasl_status sasl_client_step(struct sasl_client *, const unsigned char *in,
	    size_t inlen, struct buf *out, int *has_initial);
void	sasl_client_free(struct sasl_client *);

#endif
