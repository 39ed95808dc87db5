/*
 * apop.h - APOP (RFC 1939 section 7): MD5(timestamp || secret), where
 * the secret is the password itself.  The users file keeps it as
 * "apop=<hex>" in the secrets field, written by `postern user passwd`
 * only when `apop on` is configured, since it is as good as the
 * password.  Verified in the auth process only.
 */
#ifndef POSTERN_APOP_H
#define POSTERN_APOP_H

#include <stddef.h>

#define APOP_DIGEST_LEN		32	/* lower-case hex MD5 */
#define APOP_TIMESTAMP_MAX	255

/* The secrets-field value for a password: its bytes in hex. */
int	apop_make_secret(const char *password, char *dst, size_t dstsz);
/* The digest a client must send for this timestamp and stored secret
 * (hex, as made above); -1 if the secret is malformed. */
int	apop_digest(const char *timestamp, const char *secret_hex,
	    char out[APOP_DIGEST_LEN + 1]);
/* 1 if the client's digest matches (compared in constant time). */
int	apop_check(const char *timestamp, const char *secret_hex,
	    const char *client_digest);

#endif
