/*
 * sasl.c - the mechanism table and the server driver (see sasl.h).
 */
#include "sasl/sasl_int.h"
#include "lib/strutil.h"

#include <openssl/rand.h>
#include <string.h>
#include <strings.h>

static const struct sasl_mech sasl_mechs[SASL__COUNT] = {
	[SASL_PLAIN]		= { "PLAIN",		SASL_PLAIN,	SASL_MECH_CLEARTEXT },
	[SASL_LOGIN]		= { "LOGIN",		SASL_LOGIN,	SASL_MECH_CLEARTEXT },
	[SASL_CRAM_MD5]		= { "CRAM-MD5",		SASL_CRAM_MD5,	0 },
	[SASL_SCRAM_SHA_256]	= { "SCRAM-SHA-256",	SASL_SCRAM_SHA_256, 0 },
	[SASL_DIGEST_MD5]	= { "DIGEST-MD5",	SASL_DIGEST_MD5, 0 },
};

typedef enum sasl_status (*sasl_step_fn)(struct sasl_server *,
    const unsigned char *, size_t, struct buf *);

static const sasl_step_fn sasl_steps[SASL__COUNT] = {
	[SASL_PLAIN]		= sasl_plain_step,
	[SASL_LOGIN]		= sasl_login_step,
	[SASL_CRAM_MD5]		= sasl_cram_md5_step,
	[SASL_SCRAM_SHA_256]	= sasl_scram_step,
	[SASL_DIGEST_MD5]	= sasl_digest_md5_step,
};

const struct sasl_mech *
sasl_mech_lookup(const char *name)
{
	for (size_t i = 0; i < SASL__COUNT; i++)
		if (strcasecmp(name, sasl_mechs[i].name) == 0)
			return &sasl_mechs[i];
	return NULL;
}

const struct sasl_mech *
sasl_mech_by_id(enum sasl_mech_id id)
{
	return &sasl_mechs[id];
}

void
sasl_server_init(struct sasl_server *s, const struct sasl_mech *m,
    const struct sasl_backend *be, const char *hostname, const char *service)
{
	memset(s, 0, sizeof *s);
	s->mech = m;
	s->be = be;
	strlcpy(s->hostname, hostname, sizeof s->hostname);
	strlcpy(s->service, service, sizeof s->service);
	buf_init(&s->saved, SASL_MSG_MAX * 2);
}

void
sasl_server_set_nonce(struct sasl_server *s, const char *nonce)
{
	strlcpy(s->nonce, nonce, sizeof s->nonce);
}

enum sasl_status
sasl_server_step(struct sasl_server *s, const unsigned char *in, size_t inlen,
    struct buf *out)
{
	enum sasl_status st;

	buf_reset(out);
	if (s->pending || (in && inlen > SASL_MSG_MAX))
		return SASL_MALFORMED;
	st = sasl_steps[s->mech->id](s, in, inlen, out);
	s->step++;
	s->pending = st == SASL_PENDING;
	return st;
}

enum sasl_status
sasl_server_verdict(struct sasl_server *s, int verdict)
{
	if (!s->pending)
		return SASL_MALFORMED;
	s->pending = 0;
	return verdict == 1 ? SASL_OK : verdict == 0 ? SASL_FAIL :
	    SASL_TEMPFAIL;
}

void
sasl_server_free(struct sasl_server *s)
{
	buf_free(&s->saved);
	OPENSSL_cleanse(s->server_key, sizeof s->server_key);
	OPENSSL_cleanse(s->stored_key, sizeof s->stored_key);
}

void
sasl_nonce(struct sasl_server *s, size_t len)
{
	static const char set[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	unsigned char r[SASL_NONCE_MAX];

	if (s->nonce[0])
		return;
	if (len > SASL_NONCE_MAX)
		len = SASL_NONCE_MAX;
	RAND_bytes(r, (int)len);
	for (size_t i = 0; i < len; i++)
		s->nonce[i] = set[r[i] % (sizeof set - 1)];
	s->nonce[len] = '\0';
}

int
sasl_user_valid(const char *u, size_t n)
{
	if (n == 0 || n > SASL_USER_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)u[i] < 0x21 || u[i] == 0x7f)
			return 0;
	return 1;
}

void
sasl_hex(char *dst, const unsigned char *src, size_t n)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		dst[2 * i] = hex[src[i] >> 4];
		dst[2 * i + 1] = hex[src[i] & 15];
	}
	dst[2 * n] = '\0';
}

int
sasl_unhex(unsigned char *dst, const char *src, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int v = 0;
		for (int k = 0; k < 2; k++) {
			char c = src[2 * i + k];
			v <<= 4;
			if (c >= '0' && c <= '9')
				v |= c - '0';
			else if (c >= 'a' && c <= 'f')
				v |= c - 'a' + 10;
			else if (c >= 'A' && c <= 'F')
				v |= c - 'A' + 10;
			else
				return -1;
		}
		dst[i] = (unsigned char)v;
	}
	return 0;
}

int
sasl_make_secret(const char *kind, const char *user, const char *realm,
    const char *password, char *dst, size_t dstsz)
{
	if (strcmp(kind, "scram-sha-256") == 0) {
		unsigned char salt[16];

		if (RAND_bytes(salt, sizeof salt) != 1)
			return -1;
		return sasl_scram_secret(password, salt, sizeof salt,
		    SCRAM_ITER_MIN, dst, dstsz);
	}
	if (strcmp(kind, "cram-md5") == 0)
		return sasl_cram_md5_secret(password, dst, dstsz);
	if (strcmp(kind, "digest-md5") == 0)
		return sasl_digest_md5_secret(user, realm, password, dst, dstsz);
	return -1;
}
