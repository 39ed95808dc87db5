/*
 * sasl_int.h - what the mechanism files share inside src/sasl/.
 */
#ifndef POSTERN_SASL_INT_H
#define POSTERN_SASL_INT_H

#include "sasl/sasl.h"

enum sasl_status sasl_plain_step(struct sasl_server *, const unsigned char *,
	    size_t, struct buf *);
enum sasl_status sasl_login_step(struct sasl_server *, const unsigned char *,
	    size_t, struct buf *);
enum sasl_status sasl_cram_md5_step(struct sasl_server *, const unsigned char *,
	    size_t, struct buf *);
enum sasl_status sasl_scram_step(struct sasl_server *, const unsigned char *,
	    size_t, struct buf *);
enum sasl_status sasl_digest_md5_step(struct sasl_server *,
	    const unsigned char *, size_t, struct buf *);

/* Fill s->nonce with random printable characters unless a test set it. */
void	sasl_nonce(struct sasl_server *, size_t len);
/* A user name as SASL carries it: 1..64 octets, no controls. */
int	sasl_user_valid(const char *, size_t);
void	sasl_hex(char *dst, const unsigned char *src, size_t n);
int	sasl_unhex(unsigned char *dst, const char *src, size_t n);

/* CRAM-MD5 precomputed HMAC-MD5 states (sasl_cram_md5.c). */
int	sasl_cram_md5_secret(const char *password, char *dst, size_t dstsz);
/*
 * SCRAM-SHA-256 iteration counts, for the users file and for the
 * servers postern logs in to.  RFC 7677 section 4: at least 4096.  The
 * most is what a login can afford: a million rounds of PBKDF2 take a
 * quarter of a second on one core, while a server free to ask for 2^31
 * would stall its client for minutes.
 */
#define SCRAM_ITER_MIN	4096
#define SCRAM_ITER_MAX	1000000

/* SCRAM-SHA-256 keys "ITER,SALT,STOREDKEY,SERVERKEY" (sasl_scram.c). */
int	sasl_scram_secret(const char *password, const unsigned char *salt,
	    size_t saltlen, unsigned iterations, char *dst, size_t dstsz);
/* DIGEST-MD5 "REALM,HEX(MD5(user:realm:password))" (sasl_digest_md5.c). */
int	sasl_digest_md5_secret(const char *user, const char *realm,
	    const char *password, char *dst, size_t dstsz);

#endif
