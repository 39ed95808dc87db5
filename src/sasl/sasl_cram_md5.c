/*
 * sasl_cram_md5.c - CRAM-MD5 (RFC 2195).  The server needs HMAC-MD5
 * keyed with the password; the users file keeps the two MD5 states after
 * the inner and outer pads (as RFC 2104 section 4 suggests) rather than
 * the password, so the secret is no use anywhere but here.
 * This is the one place that needs MD5's internal state, hence the
 * legacy MD5_* interface.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "sasl/sasl_int.h"

#include <openssl/crypto.h>
#include <openssl/md5.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define CRAM_SECRET_HEX	64	/* two states of four 32-bit words */

static void
pad_state(const char *password, unsigned char pad, MD5_LONG st[4])
{
	unsigned char key[64] = { 0 }, block[64];
	size_t plen = strlen(password);
	MD5_CTX ctx;

	if (plen > 64)
		MD5((const unsigned char *)password, plen, key);
	else
		memcpy(key, password, plen);
	for (int i = 0; i < 64; i++)
		block[i] = key[i] ^ pad;
	MD5_Init(&ctx);
	MD5_Update(&ctx, block, sizeof block);
	st[0] = ctx.A;
	st[1] = ctx.B;
	st[2] = ctx.C;
	st[3] = ctx.D;
	OPENSSL_cleanse(key, sizeof key);
	OPENSSL_cleanse(&ctx, sizeof ctx);
}

int
sasl_cram_md5_secret(const char *password, char *dst, size_t dstsz)
{
	MD5_LONG st[8];
	size_t o = 0;

	if (dstsz < CRAM_SECRET_HEX + 1)
		return -1;
	pad_state(password, 0x36, st);
	pad_state(password, 0x5c, st + 4);
	for (int i = 0; i < 8; i++)
		o += (size_t)snprintf(dst + o, dstsz - o, "%08x", (unsigned)st[i]);
	return (int)o;
}

/* HMAC-MD5 from the two saved states. */
static int
cram_hmac(const char *secret, const unsigned char *msg, size_t n,
    unsigned char out[MD5_DIGEST_LENGTH])
{
	MD5_LONG st[8];
	MD5_CTX ctx;
	unsigned char inner[MD5_DIGEST_LENGTH];

	if (strlen(secret) != CRAM_SECRET_HEX)
		return -1;
	for (int i = 0; i < 8; i++) {
		unsigned v;
		if (sscanf(secret + 8 * i, "%8x", &v) != 1)
			return -1;
		st[i] = v;
	}
	MD5_Init(&ctx);
	ctx.A = st[0]; ctx.B = st[1]; ctx.C = st[2]; ctx.D = st[3];
	ctx.Nl = 512;			/* one 64-octet block already hashed */
	MD5_Update(&ctx, msg, n);
	MD5_Final(inner, &ctx);
	MD5_Init(&ctx);
	ctx.A = st[4]; ctx.B = st[5]; ctx.C = st[6]; ctx.D = st[7];
	ctx.Nl = 512;
	MD5_Update(&ctx, inner, sizeof inner);
	MD5_Final(out, &ctx);
	return 0;
}

enum sasl_status
sasl_cram_md5_step(struct sasl_server *s, const unsigned char *in, size_t n,
    struct buf *out)
{
	char secret[256], want[2 * MD5_DIGEST_LENGTH + 1];
	unsigned char mac[MD5_DIGEST_LENGTH];
	const unsigned char *sp;
	size_t ulen;
	int rc;

	if (s->step == 0) {
		/* The server speaks first: no initial response. */
		if (in != NULL)
			return SASL_MALFORMED;
		if (s->saved.len == 0) {
			if (s->nonce[0] == '\0') {
				char tmp[SASL_NONCE_MAX + 1];
				sasl_nonce(s, 20);
				snprintf(tmp, sizeof tmp, "<%.20s.%lld@", s->nonce,
				    (long long)time(NULL));
				buf_puts(&s->saved, tmp);
				buf_puts(&s->saved, s->hostname);
				buf_puts(&s->saved, ">");
			} else
				buf_puts(&s->saved, s->nonce);	/* tests */
		}
		buf_append(out, s->saved.data, s->saved.len);
		return SASL_CONTINUE;
	}
	/* "user SP 32 lower-case hex digits" */
	if (s->step != 1 || in == NULL || n < 34 ||
	    (sp = memchr(in, ' ', n)) == NULL || (size_t)(in + n - sp - 1) != 32)
		return SASL_MALFORMED;
	ulen = (size_t)(sp - in);
	if (!sasl_user_valid((const char *)in, ulen) || memchr(in, '\0', n))
		return SASL_MALFORMED;
	memcpy(s->user, in, ulen);
	s->user[ulen] = '\0';
	rc = s->be->get_secret(s->be->arg, s->user, "cram-md5", secret,
	    sizeof secret);
	if (rc < 0)
		return SASL_TEMPFAIL;
	if (rc == 0 || cram_hmac(secret, (const unsigned char *)s->saved.data,
	    s->saved.len, mac) == -1) {
		OPENSSL_cleanse(secret, sizeof secret);
		return SASL_FAIL;
	}
	OPENSSL_cleanse(secret, sizeof secret);
	sasl_hex(want, mac, sizeof mac);
	return CRYPTO_memcmp(want, sp + 1, 32) == 0 ? SASL_OK : SASL_FAIL;
}
