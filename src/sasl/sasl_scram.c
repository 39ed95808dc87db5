/*
 * sasl_scram.c - SCRAM-SHA-256 (RFC 5802, RFC 7677), server side, without
 * channel binding.  The users file keeps the salt, the iteration count,
 * StoredKey and ServerKey (RFC 5802 section 3), never the password.
 */
#include "sasl/sasl_int.h"
#include "lib/base64.h"
#include "lib/strutil.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCRAM_KEYLEN	SHA256_DIGEST_LENGTH

static void
hmac256(const unsigned char *key, size_t klen, const void *msg, size_t n,
    unsigned char out[SCRAM_KEYLEN])
{
	unsigned int len = SCRAM_KEYLEN;

	HMAC(EVP_sha256(), key, (int)klen, msg, n, out, &len);
}

int
sasl_scram_secret(const char *password, const unsigned char *salt,
    size_t saltlen, unsigned iterations, char *dst, size_t dstsz)
{
	unsigned char salted[SCRAM_KEYLEN], ck[SCRAM_KEYLEN], stored[SCRAM_KEYLEN],
	    sk[SCRAM_KEYLEN];
	char s64[BASE64_ENCODED_LEN(64) + 1], st64[BASE64_ENCODED_LEN(32) + 1],
	    sk64[BASE64_ENCODED_LEN(32) + 1];
	int n;

	if (saltlen > 64 || PKCS5_PBKDF2_HMAC(password, (int)strlen(password),
	    salt, (int)saltlen, (int)iterations, EVP_sha256(), sizeof salted,
	    salted) != 1)
		return -1;
	hmac256(salted, sizeof salted, "Client Key", 10, ck);
	SHA256(ck, sizeof ck, stored);
	hmac256(salted, sizeof salted, "Server Key", 10, sk);
	base64_encode(s64, salt, saltlen);
	base64_encode(st64, stored, sizeof stored);
	base64_encode(sk64, sk, sizeof sk);
	OPENSSL_cleanse(salted, sizeof salted);
	OPENSSL_cleanse(ck, sizeof ck);
	n = snprintf(dst, dstsz, "%u,%s,%s,%s", iterations, s64, st64, sk64);
	return n < 0 || (size_t)n >= dstsz ? -1 : n;
}

/* saslname: "=2C" is ',' and "=3D" is '='; anything else after '=' is
 * an error (RFC 5802 section 5.1). */
static int
scram_unescape(const char *p, size_t n, char *dst, size_t dstsz)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (c == '=') {
			if (i + 2 >= n)
				return -1;
			if (p[i + 1] == '2' && p[i + 2] == 'C')
				c = ',';
			else if (p[i + 1] == '3' && p[i + 2] == 'D')
				c = '=';
			else
				return -1;
			i += 2;
		}
		if (o + 1 >= dstsz)
			return -1;
		dst[o++] = c;
	}
	dst[o] = '\0';
	return 0;
}

/* Parse "ITER,SALT,STOREDKEY,SERVERKEY". */
static int
scram_parse_secret(const char *sec, unsigned *iter, char *salt64, size_t saltsz,
    unsigned char stored[SCRAM_KEYLEN], unsigned char server[SCRAM_KEYLEN])
{
	char copy[256], *f[4], *p = copy;
	unsigned char tmp[BASE64_DECODED_MAX(64)];
	unsigned long it;
	char *end;

	if (strlcpy(copy, sec, sizeof copy) >= sizeof copy)
		return -1;
	for (int i = 0; i < 4; i++) {
		f[i] = p;
		p = strchr(p, ',');
		if ((p == NULL) != (i == 3))
			return -1;
		if (p)
			*p++ = '\0';
	}
	it = strtoul(f[0], &end, 10);
	if (*end || it < SCRAM_ITER_MIN || it > SCRAM_ITER_MAX ||
	    strlcpy(salt64, f[1], saltsz) >= saltsz ||
	    strlen(f[2]) != BASE64_ENCODED_LEN(SCRAM_KEYLEN) ||
	    strlen(f[3]) != BASE64_ENCODED_LEN(SCRAM_KEYLEN) ||
	    base64_decode(tmp, f[2], strlen(f[2])) != SCRAM_KEYLEN)
		return -1;
	memcpy(stored, tmp, SCRAM_KEYLEN);
	if (base64_decode(tmp, f[3], strlen(f[3])) != SCRAM_KEYLEN)
		return -1;
	memcpy(server, tmp, SCRAM_KEYLEN);
	*iter = (unsigned)it;
	return 0;
}

/* client-first-message = gs2-header client-first-message-bare
 * gs2-header = ("n" / "y") "," ["a=" saslname] "," */
static enum sasl_status
scram_first(struct sasl_server *s, const unsigned char *in, size_t n,
    struct buf *out)
{
	const char *msg = (const char *)in, *bare, *r, *comma;
	char secret[256], salt64[128];
	unsigned iter = SCRAM_ITER_MIN;
	int rc;

	if (in == NULL)
		return SASL_CONTINUE;		/* empty challenge, then C-first */
	if (memchr(in, '\0', n) || n < 8 || (msg[0] != 'n' && msg[0] != 'y') ||
	    msg[1] != ',')
		return SASL_MALFORMED;		/* "p=": no channel binding */
	if (msg[2] == 'a')
		return SASL_FAIL;		/* no authorization identity */
	if (msg[2] != ',')
		return SASL_MALFORMED;
	bare = msg + 3;
	/* Remember the gs2 header for the c= check of the final message. */
	buf_append(&s->saved, msg, 3);
	buf_putc(&s->saved, '\n');
	if (strncmp(bare, "n=", 2) != 0 ||
	    (comma = memchr(bare, ',', (size_t)(msg + n - bare))) == NULL ||
	    msg + n - comma < 3 || strncmp(comma, ",r=", 3) != 0)
		return SASL_MALFORMED;
	if (scram_unescape(bare + 2, (size_t)(comma - bare - 2), s->user,
	    sizeof s->user) == -1 || !sasl_user_valid(s->user, strlen(s->user)))
		return SASL_MALFORMED;
	r = comma + 3;
	/* The client nonce runs to the end or to an extension we refuse. */
	if (memchr(r, ',', (size_t)(msg + n - r)) != NULL || msg + n - r < 8 ||
	    msg + n - r > 128)
		return SASL_MALFORMED;
	for (const char *p = r; p < msg + n; p++)
		if (*p < 0x21 || *p > 0x7e || *p == ',')
			return SASL_MALFORMED;

	rc = s->be->get_secret(s->be->arg, s->user, "scram-sha-256", secret,
	    sizeof secret);
	if (rc < 0)
		return SASL_TEMPFAIL;
	if (rc == 0 || scram_parse_secret(secret, &iter, salt64, sizeof salt64,
	    s->stored_key, s->server_key) == -1) {
		/* Unknown user: carry on and fail at the end, so the
		 * exchange does not tell who exists.  The salt is the same
		 * at every attempt, as a real user's is (a fresh one each
		 * time would tell), but nobody can compute it: an HMAC of
		 * the name under a key drawn when the process started. */
		static unsigned char fake_key[32];
		static int keyed;
		unsigned char fake[SCRAM_KEYLEN];

		iter = SCRAM_ITER_MIN;
		if (!keyed)
			keyed = RAND_bytes(fake_key, sizeof fake_key) == 1;
		hmac256(fake_key, sizeof fake_key, s->user, strlen(s->user),
		    fake);
		base64_encode(salt64, fake, 16);	/* sasl_make_secret's */
		RAND_bytes(s->stored_key, sizeof s->stored_key);
		s->stored_key[0] ^= 0xff;
		s->user[0] = '\0';	/* marks the exchange as doomed */
	}
	OPENSSL_cleanse(secret, sizeof secret);
	sasl_nonce(s, 24);
	/* saved = gs2-header "\n" client-first-bare "\n" server-first */
	buf_append(&s->saved, bare, (size_t)(msg + n - bare));
	buf_putc(&s->saved, '\n');
	buf_printf(out, "r=%.*s%s,s=%s,i=%u", (int)(msg + n - r), r, s->nonce,
	    salt64, iter);
	buf_append(&s->saved, out->data, out->len);
	return SASL_CONTINUE;
}

/* The proof matched the keys read at the first step; the account must
 * still have them: a password changed, or the account locked, expired
 * or removed, since then is a failure, as it is for PLAIN. */
static enum sasl_status
scram_still_current(struct sasl_server *s)
{
	char secret[256], salt64[128];
	unsigned char stored[SCRAM_KEYLEN], server[SCRAM_KEYLEN];
	unsigned iter;
	enum sasl_status st = SASL_FAIL;
	int rc;

	rc = s->be->get_secret(s->be->arg, s->user, "scram-sha-256", secret,
	    sizeof secret);
	if (rc < 0)
		st = SASL_TEMPFAIL;
	else if (rc > 0 && scram_parse_secret(secret, &iter, salt64,
	    sizeof salt64, stored, server) == 0 &&
	    CRYPTO_memcmp(stored, s->stored_key, SCRAM_KEYLEN) == 0 &&
	    CRYPTO_memcmp(server, s->server_key, SCRAM_KEYLEN) == 0)
		st = SASL_OK;
	OPENSSL_cleanse(secret, sizeof secret);
	OPENSSL_cleanse(stored, sizeof stored);
	OPENSSL_cleanse(server, sizeof server);
	return st;
}

/* client-final-message = "c=" base64(gs2-header) ",r=" nonce ",p=" proof */
static enum sasl_status
scram_final(struct sasl_server *s, const unsigned char *in, size_t n,
    struct buf *out)
{
	const char *msg = (const char *)in, *p, *gs2, *cfb, *sf;
	char c64[16], sig64[BASE64_ENCODED_LEN(SCRAM_KEYLEN) + 1];
	unsigned char proof[BASE64_DECODED_MAX(64)], sig[SCRAM_KEYLEN],
	    ck[SCRAM_KEYLEN], h[SCRAM_KEYLEN];
	struct buf auth;
	size_t without_proof, gs2len, cfblen;
	const char *nonce;
	long plen;
	enum sasl_status st = SASL_FAIL;

	if (in == NULL || memchr(in, '\0', n) || n < 8)
		return SASL_MALFORMED;
	gs2 = s->saved.data;
	cfb = strchr(gs2, '\n') + 1;
	sf = strchr(cfb, '\n') + 1;
	gs2len = (size_t)(cfb - 1 - gs2);
	cfblen = (size_t)(sf - 1 - cfb);
	base64_encode(c64, (const unsigned char *)gs2, gs2len);
	/* Input is not NUL-terminated: every strncmp below stays inside
	 * it (an over-read found by tests/fuzz/fuzz_sasl.c). */
	if (strncmp(msg, "c=", 2) != 0 || n < 2 + strlen(c64) + 3 ||
	    strncmp(msg + 2, c64, strlen(c64)) != 0 ||
	    strncmp(msg + 2 + strlen(c64), ",r=", 3) != 0)
		return SASL_MALFORMED;
	nonce = msg + 2 + strlen(c64) + 3;
	/* The nonce must be exactly the one in server-first. */
	{
		const char *sfr = sf + 2, *sfe = strchr(sf, ',');
		size_t rlen = (size_t)(sfe - sfr);

		if ((size_t)(msg + n - nonce) < rlen + 3 ||
		    strncmp(nonce, sfr, rlen) != 0 ||
		    strncmp(nonce + rlen, ",p=", 3) != 0)
			return SASL_MALFORMED;
		p = nonce + rlen + 3;
	}
	without_proof = (size_t)(p - 3 - msg);
	/* The proof is one key long: check the length before decoding into
	 * the fixed buffer (found by tests/fuzz/fuzz_sasl.c). */
	if ((size_t)(msg + n - p) != BASE64_ENCODED_LEN(SCRAM_KEYLEN))
		return SASL_MALFORMED;
	plen = base64_decode(proof, p, (size_t)(msg + n - p));
	if (plen != SCRAM_KEYLEN)
		return SASL_MALFORMED;

	/* AuthMessage = client-first-bare "," server-first ","
	 *               client-final-without-proof */
	buf_init(&auth, SASL_MSG_MAX * 3);
	buf_append(&auth, cfb, cfblen);
	buf_putc(&auth, ',');
	buf_puts(&auth, sf);
	buf_putc(&auth, ',');
	buf_append(&auth, msg, without_proof);

	hmac256(s->stored_key, sizeof s->stored_key, auth.data, auth.len, sig);
	for (int i = 0; i < SCRAM_KEYLEN; i++)
		ck[i] = proof[i] ^ sig[i];
	SHA256(ck, sizeof ck, h);
	if (s->user[0] && CRYPTO_memcmp(h, s->stored_key, SCRAM_KEYLEN) == 0)
		st = scram_still_current(s);
	if (st == SASL_OK) {
		hmac256(s->server_key, sizeof s->server_key, auth.data,
		    auth.len, sig);
		base64_encode(sig64, sig, sizeof sig);
		buf_printf(out, "v=%s", sig64);
		st = SASL_CONTINUE;	/* the client acknowledges with "" */
	}
	buf_free(&auth);
	OPENSSL_cleanse(ck, sizeof ck);
	return st;
}

enum sasl_status
sasl_scram_step(struct sasl_server *s, const unsigned char *in, size_t n,
    struct buf *out)
{
	switch (s->step) {
	case 0:
		if (in == NULL)
			return SASL_CONTINUE;
		s->step++;
		/* FALLTHROUGH */
	case 1:
		if (in == NULL)
			return SASL_MALFORMED;
		return scram_first(s, in, n, out);
	case 2:
		return scram_final(s, in, n, out);
	case 3:
		/* Server-final was accepted by the client. */
		return in != NULL && n == 0 ? SASL_OK : SASL_MALFORMED;
	default:
		return SASL_MALFORMED;
	}
}
